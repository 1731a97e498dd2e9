"""The pipeline's topics with their message types and QoS kind: what gets recorded and replayed."""
from __future__ import annotations

import importlib
from typing import Dict, List, Sequence, Tuple

#: QoS kinds: sensor data (best effort), reliable, latched (reliable, transient local, keep last 1)
SENSOR, RELIABLE, LATCHED = "sensor", "reliable", "latched"

# The pipeline's topic names, relative (ROS 2 naming): they resolve in each node's namespace ("/" by
# default: /camera/image_raw, ...) and can be remapped (`--ros-args -r joint_commands:=/robot2/joint_commands`,
# or a namespace for all: `-r __ns:=/robot2`). This module is the one place that names them.
CAMERA_IMAGE = "camera/image_raw"
CAMERA_INFO = "camera/camera_info"
LANDMARKS = "face/landmarks"
ACTION_UNITS = "face/action_units"
HEAD_POSE = "face/head_pose"
GAZE = "face/gaze"
GAZE_RIGHT = "face/gaze/right"
GAZE_LEFT = "face/gaze/left"
MESH_MARKERS = "face/mesh_markers"
BOXES = "face/boxes"
DEBUG_IMAGE = "face/debug_image"
FORECAST = "face/forecast"  # retarget node, forecast.enabled
#: retarget node, a self-model with a variance: each model joint's predicted standard deviation (rad)
SELF_MODEL_STD = "retarget/self_model_std"
JOINT_COMMANDS = "joint_commands"
WRITTEN_GOALS = "driver/written_goals"
JOINT_STATES = "joint_states"
#: per-frame latency trace of every node (humimic_core/trace.py), in batches
TRACE = "trace"
#: the namespace of the robot-face camera (or the face twin) and of the perception that watches it:
#: robot_face/camera/image_raw, robot_face/face/action_units, ...
ROBOT_FACE = "robot_face"
ROBOT_FACE_IMAGE = f"{ROBOT_FACE}/{CAMERA_IMAGE}"
ROBOT_FACE_INFO = f"{ROBOT_FACE}/{CAMERA_INFO}"
#: perception's service that starts a new neutral-face capture
RECAPTURE_NEUTRAL = "face/recapture_neutral"
#: diagnostics stay absolute, where diagnostic aggregators and rqt look for them (REP-107)
DIAGNOSTICS = "/diagnostics"
#: TF stays absolute too, where tf2 listeners and rviz look for it
TF = "/tf"
TF_STATIC = "/tf_static"
#: robot_state_publisher's URDF (relative, like robot_state_publisher names it)
ROBOT_DESCRIPTION = "robot_description"


def absolute(name: str) -> str:
    """A topic's name in the root namespace: how recordings, the runner and the demo name it."""
    return name if name.startswith("/") else "/" + name


_TOPICS = (
    (CAMERA_IMAGE, ("sensor_msgs/msg/Image", SENSOR)),
    (CAMERA_INFO, ("sensor_msgs/msg/CameraInfo", SENSOR)),
    (LANDMARKS, ("sensor_msgs/msg/PointCloud2", SENSOR)),
    (ACTION_UNITS, ("sensor_msgs/msg/JointState", RELIABLE)),
    (HEAD_POSE, ("geometry_msgs/msg/PoseStamped", RELIABLE)),
    (GAZE, ("geometry_msgs/msg/Vector3Stamped", RELIABLE)),
    (GAZE_RIGHT, ("geometry_msgs/msg/Vector3Stamped", RELIABLE)),
    (GAZE_LEFT, ("geometry_msgs/msg/Vector3Stamped", RELIABLE)),
    (MESH_MARKERS, ("visualization_msgs/msg/MarkerArray", RELIABLE)),
    (BOXES, ("visualization_msgs/msg/MarkerArray", RELIABLE)),
    (DEBUG_IMAGE, ("sensor_msgs/msg/Image", SENSOR)),
    (FORECAST, ("sensor_msgs/msg/JointState", RELIABLE)),
    (SELF_MODEL_STD, ("sensor_msgs/msg/JointState", RELIABLE)),
    (JOINT_COMMANDS, ("sensor_msgs/msg/JointState", RELIABLE)),
    (WRITTEN_GOALS, ("sensor_msgs/msg/JointState", RELIABLE)),
    (JOINT_STATES, ("sensor_msgs/msg/JointState", RELIABLE)),
    (TRACE, ("std_msgs/msg/Float64MultiArray", RELIABLE)),
    (DIAGNOSTICS, ("diagnostic_msgs/msg/DiagnosticArray", RELIABLE)),
    (TF, ("tf2_msgs/msg/TFMessage", RELIABLE)),
    (TF_STATIC, ("tf2_msgs/msg/TFMessage", LATCHED)),
    (ROBOT_DESCRIPTION, ("std_msgs/msg/String", LATCHED)),
)
#: the robot-face camera's (or the twin's) topics and its perception's, recorded when it is on
_ROBOT_FACE_TOPICS = tuple((f"{ROBOT_FACE}/{name}", kind) for name, kind in _TOPICS
                           if name in (CAMERA_IMAGE, CAMERA_INFO, LANDMARKS, ACTION_UNITS, HEAD_POSE, GAZE))
_TOPICS += _ROBOT_FACE_TOPICS
#: recorded topic (default name: absolute, in the root namespace) -> (ROS 2 message type, QoS kind)
TOPICS: Dict[str, Tuple[str, str]] = {absolute(name): kind for name, kind in _TOPICS}
#: default name -> the name as the nodes give it (relative but for /diagnostics and TF): what a
#: subscriber uses so that a namespace and remappings apply to it as to the nodes
NAMES: Dict[str, str] = {absolute(name): name for name, _ in _TOPICS}

#: the robot face's topics (default names): recorded with the rest when the robot-face camera is on
ROBOT_FACE_TOPICS = tuple(absolute(name) for name, _ in _ROBOT_FACE_TOPICS)


def recorded(robot_face: bool) -> List[str]:
    """The topics a recording holds (default names): all but the robot face's unless it is on."""
    return [t for t in TOPICS if robot_face or t not in ROBOT_FACE_TOPICS]


#: the topics a camera source produces: what a replay feeds back into the pipeline
CAMERA_TOPICS = (absolute(CAMERA_IMAGE), absolute(CAMERA_INFO))


def resolve(name: str, remappings: Sequence[Tuple[str, str]], node: str = "") -> str:
    """The fully qualified name node `node` uses for topic `name` under `--ros-args -r from:=to`
    rules, as rcl resolves it: `__ns:=` sets the namespace relative names expand in, the first rule
    whose expanded `from` equals the expanded name replaces it, `node:from:=to` rules apply to that
    node only."""
    namespace, rules = None, []
    for source, target in remappings:
        owner, _, match = source.rpartition(":")
        if owner and owner != node:
            continue
        if match == "__ns":
            namespace = namespace or target
        elif not match.startswith("__"):
            rules.append((match, target))

    def expand(topic: str) -> str:
        return topic if topic.startswith("/") else f"{(namespace or '/').rstrip('/')}/{topic}"

    full = expand(name)
    return next((expand(target) for match, target in rules if expand(match) == full), full)


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
