"""Which processes the imitation pipeline runs, with which parameters: one description for both
`ros2 launch humimic imitate.launch.py` and the launch-free runner (`humimic-run`).

Launch arguments default to "" where the value lives in the parameter file or the robot config:
an empty argument changes nothing, so no default is copied here from config/*.yaml.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

from humimic_core.channels import PUBLISHED
from humimic_core.known_keys import unknown, yaml_problem
from humimic_core.parameters import flatten_parameters, node_parameters
from humimic_core.paths import config_file, share_dir
from humimic_core.robot_config import ConfigError, load_robot_config

#: name -> (default, description) of every launch argument (and `humimic-run` option).
LAUNCH_ARGUMENTS: Dict[str, Tuple[str, str]] = {
    "video": ("", "Camera source: V4L2 index or /dev/videoN, a video file or an image folder "
                  "(empty = camera.source of the params file: the sample video)"),
    "realtime": ("", "Video files: true = pace at the file's rate, false = as fast as perception keeps up "
                     "(empty = params file)"),
    "loop": ("", "Video files and image folders: start again at the end (empty = params file)"),
    "serial_port": ("", "Serial port of the servo bus (empty = bus.port of the robot config)"),
    "baud_rate": ("", "Servo bus baud rate (empty = bus.baud_rate of the robot config)"),
    "robot_config": ("", "Robot config YAML (empty = the package's config/robot_face.yaml)"),
    "params_file": ("", "Node parameter file (empty = the package's config/humimic.yaml)"),
    "sim": ("true", "Start the emulated servo bus on a pseudo-terminal at serial_port"),
    "rviz": ("false", "Start rviz2 with the humimic layout (ROS installs only)"),
    "robot_state_publisher": ("true", "Start robot_state_publisher (/robot_description and the robot's TF; "
                                      "skipped with a note where not installed)"),
    "hri": ("false", "Start the ROS4HRI bridge humimic-hri-bridge (needs hri_msgs)"),
    "use_sim_time": ("false", "All nodes take time from /clock (bag replay)"),
    "record": ("", "Record every humimic topic into this folder (ros2 bag record, MCAP, where rosbag2 is "
                   "installed, else humimic-record); empty = no recording"),
    "camera": ("true", "Start the camera node (false: frames come from elsewhere, e.g. a bag replay)"),
    "robot_face": ("", "Watch the robot's face: 'twin' = render it from /joint_states (humimic-face-twin), "
                       "else a camera source pointed at it (as video takes); a second perception reads it, "
                       "all in the robot_face namespace (robot_face/face/action_units); empty = off"),
    "remap": ("", "Topic remappings of every humimic node, 'from:=to' separated by spaces, names as in "
                  "humimic_core/topics.py (e.g. joint_commands:=/robot2/joint_commands)"),
}

# launch argument -> [(node, parameter, type)] it overrides when not empty
_OVERRIDES: Dict[str, List[Tuple[str, str, type]]] = {
    "video": [("camera", "source", str)],
    "realtime": [("camera", "realtime", bool)],
    "loop": [("camera", "loop", bool)],
    "serial_port": [("dynamixel_driver", "port", str)],
    "baud_rate": [("dynamixel_driver", "baud_rate", int)],
    "robot_config": [("retarget", "robot_config", str), ("dynamixel_driver", "robot_config", str),
                     ("face_twin", "robot_config", str)],
}


@dataclass
class ProcessSpec:
    """One process of the pipeline.

    ROS nodes of this package run as `python -m module` (runner) or `executable` (launch_ros);
    `package` names another ROS package's executable (robot_state_publisher, rviz2), which only
    a ROS install has. A `required` process that exits ends the whole pipeline (launch: an
    OnProcessExit handler); an optional one is skipped with a note where not installed.
    """

    name: str
    executable: str
    module: str = ""
    package: str = "humimic"
    ros_node: bool = True
    params_file: Optional[str] = None
    parameters: Dict[str, Any] = field(default_factory=dict)
    arguments: List[str] = field(default_factory=list)
    #: what runs instead where `executable` is not installed (no ROS install)
    fallback: Optional["ProcessSpec"] = None
    required: bool = True
    #: ROS packages it needs besides its own (e.g. rosbag2's MCAP storage, hri_msgs)
    requires: Tuple[str, ...] = ()
    #: (from, to) topic remappings of a ROS node
    remappings: List[Tuple[str, str]] = field(default_factory=list)
    #: ROS namespace of the node ("" = the root); its parameters then come in `parameters`, not the file
    namespace: str = ""


def executable_on_path(name: str) -> bool:
    return shutil.which(name) is not None


def ament_package_found(name: str) -> bool:
    """Whether a ROS package is installed (in the ament index of the sourced workspaces)."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    except ImportError:
        return False
    try:
        get_package_prefix(name)
    except (PackageNotFoundError, ValueError, OSError):  # OSError: no AMENT_PREFIX_PATH (no ROS sourced)
        return False
    return True


def installed(spec: ProcessSpec) -> Optional[ProcessSpec]:
    """The spec, else its fallback, that can run here (its executable and the packages it needs are
    installed); None when neither can."""
    if spec.package == "humimic":
        found = True
    elif spec.ros_node:
        found = ament_package_found(spec.package)
    else:
        found = executable_on_path(spec.executable)
    if found and all(ament_package_found(p) for p in spec.requires):
        return spec
    return installed(spec.fallback) if spec.fallback is not None else None


#: optional process -> the launch argument that leaves it out
OPTIONAL_ARGUMENT = {"robot_state_publisher": "robot_state_publisher", "rviz2": "rviz", "hri_bridge": "hri"}


def not_installed(spec: ProcessSpec, launch: bool = True) -> str:
    """The one line for an optional process skipped because it is not installed."""
    missing = [p for p in (spec.package, *spec.requires) if p != "humimic" and not ament_package_found(p)]
    what = f"ROS package {', '.join(missing)}" if missing else spec.executable
    arg = OPTIONAL_ARGUMENT.get(spec.name)
    off = "" if arg is None else f" ({arg}:=false leaves it out)" if launch else \
        f" (--{arg.replace('_', '-')} false leaves it out)"
    return f"{spec.name}: not installed ({what}): skipped{off}"


#: seconds the emulated bus keeps serving after SIGINT while the driver still holds the port
BUS_LINGER = 10.0


def fastdds_profile() -> Path:
    """The package's Fast DDS profile (large frames over shared memory, loopback UDP)."""
    return config_file("fastdds.xml")


def process_environment(base: Mapping[str, str]) -> Dict[str, str]:
    """The environment the pipeline's processes run in: the Fast DDS profile unless one is set."""
    env = dict(base)
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(fastdds_profile()))
    return env


def parse_bool(text: str, name: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"launch argument {name}: expected true or false, got {text!r}")


def parse_remaps(text: str) -> List[Tuple[str, str]]:
    """The (from, to) pairs of the remap launch argument ('a:=b c:=d')."""
    pairs = []
    for item in text.split():
        source, sep, target = item.partition(":=")
        if not (sep and source and target):
            raise ValueError(f"launch argument remap: expected from:=to, got {item!r}")
        pairs.append((source, target))
    return pairs


def _typed(text: str, kind: type, name: str) -> Any:
    if kind is bool:
        return parse_bool(text, name)
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"launch argument {name}: expected an integer, got {text!r}") from None
    return text


def resolve_arguments(values: Mapping[str, str]) -> Dict[str, str]:
    """Every launch argument with its default filled in; unknown names are an error."""
    unknown = set(values) - set(LAUNCH_ARGUMENTS)
    if unknown:
        raise ValueError(f"unknown launch arguments: {', '.join(sorted(unknown))}")
    return {name: str(values.get(name, default)) for name, (default, _) in LAUNCH_ARGUMENTS.items()}


def imitation_graph(values: Mapping[str, str], include_external: bool = True) -> List[ProcessSpec]:
    """The processes of `imitate.launch.py` for these launch argument values."""
    args = resolve_arguments(values)
    params_file = args["params_file"] or str(config_file("humimic.yaml"))
    robot_config = (args["robot_config"] or node_parameters(params_file, "dynamixel_driver").get("robot_config")
                    or str(config_file("robot_face.yaml")))
    sim_time = parse_bool(args["use_sim_time"], "use_sim_time")
    overrides: Dict[str, Dict[str, Any]] = {}
    for arg, targets in _OVERRIDES.items():
        if args[arg]:
            for node, param, kind in targets:
                overrides.setdefault(node, {})[param] = _typed(args[arg], kind, arg)

    remaps = parse_remaps(args["remap"])

    def node(name: str, module: str, executable: str) -> ProcessSpec:
        parameters = {"use_sim_time": sim_time, **overrides.get(name, {})}
        return ProcessSpec(name, executable, module, params_file=params_file, parameters=parameters,
                           remappings=list(remaps))

    specs: List[ProcessSpec] = []
    if parse_bool(args["sim"], "sim"):
        driver = {**node_parameters(params_file, "dynamixel_driver"), **overrides.get("dynamixel_driver", {})}
        bus = load_robot_config(robot_config).bus
        arguments = ["--link", str(driver.get("port") or bus.port), "--robot-config", robot_config,
                     "--baud", str(driver.get("baud_rate") or bus.baud_rate), "--linger", str(BUS_LINGER)]
        specs.append(ProcessSpec("servo_emulator", "humimic-servo-emulator", "humimic_driver.sim.emulated_bus",
                                 ros_node=False, arguments=arguments))
    if args["record"]:
        from humimic_core.topics import NAMES, installed, recorded, resolve, TOPICS

        # the first frame waits for perception and the recorder
        overrides.setdefault("camera", {})["min_subscribers"] = 2
        topics = recorded(robot_face=bool(args["robot_face"]))
        fallback = {"output": args["record"], "use_sim_time": sim_time}
        if args["robot_face"]:
            fallback["topics"] = [t for t in topics if installed(TOPICS[t][0])]
        # the names the nodes use after `remap` (humimic-record resolves them itself, given the same rules)
        specs.append(ProcessSpec(
            "recorder", "ros2", package="ros2cli", ros_node=False, requires=("ros2bag", "rosbag2_storage_mcap"),
            arguments=["bag", "record", "-s", "mcap", "--storage-preset-profile", "zstd_fast", "--max-bag-duration",
                       "10", "-o", args["record"], *(resolve(NAMES[name], remaps) for name in topics)],
            fallback=ProcessSpec("recorder", "humimic-record", "humimic_experiments.record_node",
                                 parameters=fallback, remappings=list(remaps))))
    specs += [
        node("dynamixel_driver", "humimic_driver.driver_node", "humimic-driver"),
        node("retarget", "humimic_retarget.retarget_node", "humimic-retarget"),
        node("face_perception", "humimic_perception.perception_node", "humimic-perception"),
    ]
    if parse_bool(args["camera"], "camera"):
        specs.append(node("camera", "humimic_perception.camera_node", "humimic-camera"))
    if args["robot_face"]:
        specs += robot_face_specs(args["robot_face"], params_file, sim_time, node)
    if parse_bool(args["hri"], "hri"):
        specs.append(ProcessSpec("hri_bridge", "humimic-hri-bridge", "humimic_perception.hri_bridge_node",
                                 parameters={"use_sim_time": sim_time}, required=False,
                                 requires=("hri_msgs", "tf2_msgs"), remappings=list(remaps)))
    if include_external:
        from humimic_bringup.urdf import robot_urdf

        if parse_bool(args["robot_state_publisher"], "robot_state_publisher"):
            specs.append(ProcessSpec("robot_state_publisher", "robot_state_publisher", package="robot_state_publisher",
                                     parameters={"robot_description": robot_urdf(load_robot_config(robot_config)),
                                                 "use_sim_time": sim_time}, required=False))
        if parse_bool(args["rviz"], "rviz"):
            specs.append(ProcessSpec("rviz2", "rviz2", package="rviz2", parameters={"use_sim_time": sim_time},
                                     arguments=["-d", str(share_dir() / "rviz" / "humimic.rviz")], required=False))
    return specs


#: the robot-face camera's optical frame (the person's camera keeps camera_optical_frame)
ROBOT_FACE_FRAME = "robot_face_camera_optical_frame"


def robot_face_specs(source: str, params_file: str, sim_time: bool, node: Any) -> List[ProcessSpec]:
    """The robot-face camera (a camera source, or the face twin for source "twin") and a second
    perception on it, in the robot_face namespace, so the person's pipeline is unchanged; its head
    pose TF goes to /robot_face/tf (the person's "head" frame stays theirs)."""
    from humimic_core.topics import ROBOT_FACE, TF

    def namespaced(name: str, module: str, executable: str, of: str, **extra: Any) -> ProcessSpec:
        parameters = {**node_parameters(params_file, of), "use_sim_time": sim_time, **extra}
        return ProcessSpec(name, executable, module, parameters=parameters, namespace=ROBOT_FACE)

    if source == "twin":
        camera = node("face_twin", "humimic_perception.sim.twin_node", "humimic-face-twin")
    else:
        camera = namespaced("robot_face_camera", "humimic_perception.camera_node", "humimic-camera", "camera",
                            source=source, frame_id=ROBOT_FACE_FRAME, min_subscribers=1)
    perception = namespaced("robot_face_perception", "humimic_perception.perception_node", "humimic-perception",
                            "face_perception")
    perception.remappings.append((TF, f"/{ROBOT_FACE}{TF}"))
    return [camera, perception]


def add_camera_subscriber(specs: List[ProcessSpec]) -> None:
    """Make the camera wait for one more subscriber before its first frame (a monitor that must
    see every frame, beside perception and a recorder)."""
    for spec in specs:
        if spec.name == "camera":
            current = spec.parameters.get("min_subscribers")
            if current is None:
                current = node_parameters(spec.params_file, "camera").get("min_subscribers", 1)
            spec.parameters["min_subscribers"] = int(current) + 1


class InputError(ValueError):
    """A bad input found before any process starts; the message is one line naming it."""


#: Parameters a node declares besides those of the package's config/humimic.yaml, by type
#: ("*": every node; a name ending in "." is a prefix).
EXTRA_PARAMETERS: Dict[str, Dict[str, Optional[type]]] = {
    "*": {"use_sim_time": bool, "start_type_description_service": bool, "qos_overrides.": None},
    "retarget": {"mirror": bool, **{f"gains.{c}": float for c in PUBLISHED}},
}


def _type_name(kind: type) -> str:
    return {bool: "true or false", int: "an integer", float: "a floating-point number (e.g. 1.0; ROS refuses "
            "an integer here)", str: "a string", list: "a list"}.get(kind, kind.__name__)


def known_parameters() -> Dict[str, Dict[str, Optional[type]]]:
    """node -> parameter -> type (None = any) of every node the package's parameter file names."""
    shipped = yaml.safe_load(config_file("humimic.yaml").read_text())
    known = {}
    for node, entry in shipped.items():
        types = {name: type(value) for name, value in flatten_parameters(entry["ros__parameters"]).items()}
        known[node] = {**types, **EXTRA_PARAMETERS["*"], **EXTRA_PARAMETERS.get(node, {})}
    return known


def _parameter_type(known: Mapping[str, Optional[type]], name: str) -> Tuple[bool, Optional[type]]:
    if name in known:
        return True, known[name]
    return any(k.endswith(".") and name.startswith(k) for k in known), None


def check_parameter_file(path: str | Path) -> None:
    """Every node name and parameter of a parameter file is one the package knows, of its type
    (as ROS would refuse it, or silently ignore an unknown one); InputError names the first that is not."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise InputError(f"params_file {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise InputError(f"params_file {path}: not valid YAML: {yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise InputError(f"params_file {path}: expected node names at the top level")
    known = known_parameters()
    nodes = sorted(known)
    for node, entry in data.items():
        if node not in known and node != "/**":
            raise InputError(f"params_file {path}: {unknown(str(node), node, nodes, 'node')}")
        if not isinstance(entry, dict) or set(entry) != {"ros__parameters"}:
            raise InputError(f"params_file {path}: {node}: expected only ros__parameters")
        accepted = known.get(node) or {k: v for n in known.values() for k, v in n.items()}
        for name, value in flatten_parameters(entry["ros__parameters"]).items():
            where = f"{node}.ros__parameters.{name}"
            found, kind = _parameter_type(accepted, name)
            if not found:
                names = sorted(k for k in accepted if not k.endswith(".") and not k.startswith("gains."))
                raise InputError(f"params_file {path}: {unknown(where, name, names, 'parameter')}")
            if kind is not None and not (type(value) is kind or (kind is list and isinstance(value, list))):
                raise InputError(f"params_file {path}: {where}: expected {_type_name(kind)}, got {value!r}")


def _robot_config(path: str) -> Any:
    try:
        config = load_robot_config(path)
    except ConfigError as exc:
        message = str(exc)
        raise InputError(message if path in message else f"robot config {path}: {message}") from None
    if config.mapping.model is not None and not config.mapping.model.is_file():
        raise InputError(f"robot config {path}: mapping.model.path: no such file {config.mapping.model}")
    return config


def _check_video(spec: str, what: str) -> None:
    from humimic_perception.frame_source import FrameSourceError, check_source

    try:
        check_source(spec)
    except FrameSourceError as exc:
        raise InputError(f"{what}: {exc}") from None


def _check_serial_port(port: str, what: str) -> None:
    if not Path(port).exists():
        raise InputError(f"{what}: serial port {port}: no such device (is the adapter plugged in? sim:=true "
                         "emulates the bus)")
    if not os.access(port, os.R_OK | os.W_OK):
        raise InputError(f"{what}: serial port {port}: permission denied (add the user to the dialout group)")


def _check_forecast(params_file: str) -> None:
    """The retarget node's forecast.* parameters, its learned model loaded (InputError otherwise)."""
    from humimic_retarget.forecast import forecast_settings, make_forecaster

    try:
        make_forecaster(forecast_settings(node_parameters(params_file, "retarget")))
    except ValueError as exc:
        raise InputError(f"{params_file}: retarget {exc}") from None


def validate_inputs(values: Mapping[str, str]) -> None:
    """Check every input of the pipeline before any process starts: launch arguments, the parameter
    file, the robot config(s), the video source and (sim off) the serial port. InputError is one
    line naming the argument, file or field and what is wrong."""
    try:
        args = resolve_arguments(values)
        flags = {name: parse_bool(args[name], name)
                 for name in ("sim", "rviz", "use_sim_time", "camera", "robot_state_publisher", "hri")}
        parse_remaps(args["remap"])
        for arg, targets in _OVERRIDES.items():
            if args[arg]:
                _typed(args[arg], targets[0][2], arg)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    params_file = args["params_file"] or str(config_file("humimic.yaml"))
    check_parameter_file(params_file)
    paths = {n: args["robot_config"] or node_parameters(params_file, n).get("robot_config")
             or str(config_file("robot_face.yaml")) for n in ("retarget", "dynamixel_driver")}
    configs = {path: _robot_config(path) for path in dict.fromkeys(paths.values())}
    _check_forecast(params_file)
    if args["robot_face"] == "twin":
        from humimic_perception.sim.neutral_face import resolve_source

        neutral = resolve_source(str(node_parameters(params_file, "face_twin").get("neutral_face", "")))
        if not neutral.is_file():
            raise InputError(f"robot_face twin: neutral face {neutral}: no such file ({params_file}: "
                             "face_twin.neutral_face; the default is the sample media of `./run setup`)")
    elif args["robot_face"]:
        _check_video(args["robot_face"], "robot_face")
    if flags["camera"]:
        source = args["video"] or str(node_parameters(params_file, "camera").get("source", ""))
        _check_video(source, "video" if args["video"] else f"{params_file}: camera.source")
    if not flags["sim"]:
        port = node_parameters(params_file, "dynamixel_driver").get("port")
        what = ("serial_port" if args["serial_port"] else f"{params_file}: dynamixel_driver.port" if port
                else f"robot config {paths['dynamixel_driver']}: bus.port")
        _check_serial_port(args["serial_port"] or port or configs[paths["dynamixel_driver"]].bus.port, what)
