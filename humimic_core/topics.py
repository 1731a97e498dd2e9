"""The pipeline's topics with their message types and QoS kind: what gets recorded and replayed."""
from __future__ import annotations

import importlib
from typing import Dict, Tuple

#: QoS kinds: sensor data (best effort), reliable, latched (reliable, transient local, keep last 1)
SENSOR, RELIABLE, LATCHED = "sensor", "reliable", "latched"

#: topic -> (ROS 2 message type, QoS kind)
TOPICS: Dict[str, Tuple[str, str]] = {
    "/camera/image_raw": ("sensor_msgs/msg/Image", SENSOR),
    "/camera/camera_info": ("sensor_msgs/msg/CameraInfo", SENSOR),
    "/face/landmarks": ("sensor_msgs/msg/PointCloud2", SENSOR),
    "/face/action_units": ("sensor_msgs/msg/JointState", RELIABLE),
    "/face/head_pose": ("geometry_msgs/msg/PoseStamped", RELIABLE),
    "/face/gaze": ("geometry_msgs/msg/Vector3Stamped", RELIABLE),
    "/face/gaze/right": ("geometry_msgs/msg/Vector3Stamped", RELIABLE),
    "/face/gaze/left": ("geometry_msgs/msg/Vector3Stamped", RELIABLE),
    "/face/mesh_markers": ("visualization_msgs/msg/MarkerArray", RELIABLE),
    "/face/boxes": ("visualization_msgs/msg/MarkerArray", RELIABLE),
    "/face/debug_image": ("sensor_msgs/msg/Image", SENSOR),
    "/face/forecast": ("sensor_msgs/msg/JointState", RELIABLE),  # retarget node, forecast.enabled
    "/joint_commands": ("sensor_msgs/msg/JointState", RELIABLE),
    "/driver/written_goals": ("sensor_msgs/msg/JointState", RELIABLE),
    "/joint_states": ("sensor_msgs/msg/JointState", RELIABLE),
    "/diagnostics": ("diagnostic_msgs/msg/DiagnosticArray", RELIABLE),
    "/tf": ("tf2_msgs/msg/TFMessage", RELIABLE),
    "/tf_static": ("tf2_msgs/msg/TFMessage", LATCHED),
    "/robot_description": ("std_msgs/msg/String", LATCHED),
}

#: the topics a camera source produces: what a replay feeds back into the pipeline
CAMERA_TOPICS = ("/camera/image_raw", "/camera/camera_info")


def message_class(msgtype: str) -> type:
    """The Python class of a ROS 2 message type name such as 'sensor_msgs/msg/Image'."""
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def installed(msgtype: str) -> bool:
    """Whether the message type's package is installed (the PyPI wheels have no tf2_msgs)."""
    try:
        message_class(msgtype)
    except ModuleNotFoundError:
        return False
    return True
