"""The node graph shared by the launch file and the runner: arguments, overrides, commands."""
from __future__ import annotations

import py_compile
from pathlib import Path
import subprocess
import sys
import time

import pytest

from humimic_bringup.graph import (LAUNCH_ARGUMENTS, InputError, add_camera_subscriber, imitation_graph,
                                known_parameters, node_parameters, validate_inputs)
from humimic_core.paths import config_file, share_dir
from humimic_bringup.runner import command


def by_name(specs):
    return {s.name: s for s in specs}


def test_defaults_run_the_four_nodes_and_the_emulator():
    specs = by_name(imitation_graph({}, include_external=False))
    assert list(specs) == ["servo_emulator", "dynamixel_driver", "retarget", "face_perception", "camera"]
    assert all(s.params_file == str(config_file("humimic.yaml")) for n, s in specs.items() if n != "servo_emulator")
    assert specs["camera"].parameters == {"use_sim_time": False}, "empty arguments override nothing"


def test_arguments_become_typed_overrides():
    specs = by_name(imitation_graph({"video": "0", "baud_rate": "4000000", "realtime": "false",
                                     "serial_port": "/tmp/x", "use_sim_time": "true", "sim": "false"},
                                    include_external=False))
    assert "servo_emulator" not in specs
    assert specs["camera"].parameters == {"use_sim_time": True, "source": "0", "realtime": False}
    assert specs["dynamixel_driver"].parameters["baud_rate"] == 4_000_000
    cmd = command(specs["camera"])
    assert cmd[cmd.index("-r") + 1] == "__node:=camera"
    assert 'source:="0"' in cmd, "a numeric-looking string stays a string on the command line"


def test_record_and_camera_arguments():
    specs = by_name(imitation_graph({"record": "/tmp/rec", "camera": "false"}, include_external=False))
    assert "camera" not in specs
    recorder = specs["recorder"]
    assert recorder.executable == "ros2" and recorder.arguments[:4] == ["bag", "record", "-s", "mcap"]
    assert recorder.requires == ("ros2bag", "rosbag2_storage_mcap")  # ros2cli alone records nothing
    assert recorder.fallback.module == "humimic_experiments.record_node"
    with_camera = imitation_graph({"record": "/tmp/rec"}, include_external=False)
    add_camera_subscriber(with_camera)
    assert by_name(with_camera)["camera"].parameters["min_subscribers"] == 3  # perception, recorder, monitor


def test_the_robot_face_is_recorded_when_it_is_watched():
    """With the robot-face camera (or the twin) on, its images and its perception are recorded too;
    the self-model's uncertainty always is (published only with a self-model)."""
    from humimic_bringup.runner import command

    face = {"/robot_face/camera/image_raw", "/robot_face/face/action_units", "/robot_face/face/landmarks",
            "/robot_face/face/head_pose"}
    plain = by_name(imitation_graph({"record": "/tmp/rec"}, include_external=False))["recorder"]
    assert "/retarget/self_model_std" in plain.arguments and not face & set(plain.arguments)
    assert "topics" not in plain.fallback.parameters  # humimic-record's default: all but the robot face's
    watched = by_name(imitation_graph({"record": "/tmp/rec", "robot_face": "twin"}, include_external=False))["recorder"]
    assert face <= set(watched.arguments) and face <= set(watched.fallback.parameters["topics"])
    assert "/retarget/self_model_std" in watched.fallback.parameters["topics"]
    assert any(arg.startswith("topics:=['/camera/image_raw'") for arg in command(watched.fallback))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown launch arguments: colour"):
        imitation_graph({"colour": "red"})
    with pytest.raises(ValueError, match="realtime"):
        imitation_graph({"realtime": "sometimes"})
    with pytest.raises(ValueError, match="baud_rate"):
        imitation_graph({"baud_rate": "fast"})


def test_parameter_file_is_read_as_ros_does():
    params = node_parameters(config_file("humimic.yaml"), "face_perception")
    assert params["smoothing.enabled"] is True and "smoothing.gaze.beta" in params
    assert set(LAUNCH_ARGUMENTS) >= {"video", "serial_port", "baud_rate", "robot_config", "sim", "rviz", "record"}


def test_launch_file_compiles():
    py_compile.compile(str(share_dir() / "launch" / "imitate.launch.py"), doraise=True)


# --- inputs checked before any process starts (one line, exit 2, well under 2 s) ---------------

BAD_INPUTS = {
    # name: (arguments, files to write {name: text} (NAME in arguments = its path), first words of the line)
    "missing video": (["--video", "/nonexistent/clip.mp4"], {},
                      "video: source '/nonexistent/clip.mp4': no such camera, video file or image folder"),
    "not a video": (["--video", "NOTES"], {"NOTES": "hello\n"}, "video: cannot open video file"),
    "missing camera": (["--video", "/dev/video97"], {}, "video: no camera '/dev/video97' (no such device)"),
    "misspelt robot config key": (["--robot-config", "ROBOT"], {"ROBOT": "constraint"},
                                  "robot config ROBOT: constraint: unknown key (did you mean constraints?"),
    "unpublished channel": (["--robot-config", "ROBOT"], {"ROBOT": "AU62"},
                            "robot config ROBOT: mapping.jaw.weights.AU62: unknown channel"),
    "broken robot YAML": (["--robot-config", "ROBOT"], {"ROBOT": "servos: [\n"}, "ROBOT: not valid YAML: line "),
    "missing robot config": (["--robot-config", "/nonexistent/robot.yaml"], {},
                             "cannot read robot config /nonexistent/robot.yaml"),
    "unknown parameter": (["--params-file", "PARAMS"],
                          {"PARAMS": "retarget:\n  ros__parameters:\n    max_velocty: 2.0\n"},
                          "params_file PARAMS: retarget.ros__parameters.max_velocty: unknown parameter "
                          "(did you mean max_velocity?"),
    "integer for a float": (["--params-file", "PARAMS"], {"PARAMS": "camera:\n  ros__parameters:\n    fps: 30\n"},
                            "params_file PARAMS: camera.ros__parameters.fps: expected a floating-point number"),
    "unknown node": (["--params-file", "PARAMS"], {"PARAMS": "retargeter:\n  ros__parameters:\n    rate: 5.0\n"},
                     "params_file PARAMS: retargeter: unknown node (did you mean retarget?"),
    "missing serial port": (["--sim", "false", "--serial-port", "/dev/ttyUSB97"], {},
                            "serial_port: serial port /dev/ttyUSB97: no such device"),
    "bad flag": (["--realtime", "sometimes"], {}, "launch argument realtime: expected true or false"),
}


def _bad_input(tmp_path, case):
    """(arguments, expected line start) of a BAD_INPUTS case with its files written in tmp_path."""
    args, files, line = BAD_INPUTS[case]
    robot = config_file("robot_face.yaml").read_text()
    edits = {"constraint": robot.replace("\nconstraints:", "\nconstraint:"),
             "AU62": robot.replace("jaw: {weights: {AU25: 0.06", "jaw: {weights: {AU62: 0.06")}
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(edits.get(text, text))
        args = [str(path) if a == name else a for a in args]
        line = line.replace(name, str(path))
    return args, line


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_naming_it(tmp_path, case):
    args, line = _bad_input(tmp_path, case)
    values = {a[2:].replace("-", "_"): v for a, v in zip(args[::2], args[1::2])}
    with pytest.raises(InputError) as err:
        validate_inputs(values)
    assert str(err.value).startswith(line) and "\n" not in str(err.value)


def test_good_inputs_pass():
    validate_inputs({})
    validate_inputs({"sim": "false", "serial_port": "/dev/null"})  # a device that exists


@pytest.mark.parametrize("program, cases", [
    ("humimic_bringup.runner", sorted(BAD_INPUTS)),
    ("humimic_bringup.demo", ["missing video", "misspelt robot config key", "unknown parameter", "missing serial port"]),
])
def test_bad_input_ends_the_program_before_start(tmp_path, capsys, program, cases):
    """humimic-run / ./run demo: one line on stderr, exit code 2, nothing started, well under 2 s."""
    figures = []
    demo = program.endswith("demo")
    prog = "humimic-demo" if demo else "humimic-run"
    for case in cases:
        args, line = _bad_input(tmp_path, case)
        out = ["--out", str(tmp_path / "out")] if demo else ["--log-dir", str(tmp_path / "out")]
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-m", program, *args, *out], capture_output=True, text=True,
                              timeout=60)
        seconds = time.monotonic() - start
        figures.append(f"{case} {seconds:.2f} s")
        assert done.returncode == 2, (case, done.stderr)
        assert done.stderr.splitlines() == [f"{prog}: {done.stderr[len(prog) + 2:].strip()}"], done.stderr
        assert done.stderr.startswith(f"{prog}: {line}"), done.stderr
        assert not (tmp_path / "out").exists(), "nothing written, nothing started"
        assert seconds < 6.0, (case, seconds)  # 0.3-0.7 s measured on a 2-core VM; generous for loaded CI
    with capsys.disabled():
        print(f"\n{program} time to a clear error: " + "; ".join(figures))


def test_launch_file_checks_inputs_before_any_process(monkeypatch):
    """The launch file's OpaqueFunction runs graph.validate_inputs before making any action (ROS
    launch stand-ins: only a ROS install has the launch packages)."""
    import importlib.util
    import types

    made = []

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    def stub(name, **attributes):
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)

    anything = lambda *a, **k: made.append(a)  # noqa: E731
    stub("launch", LaunchDescription=anything)
    stub("launch.actions", DeclareLaunchArgument=anything, EmitEvent=anything, ExecuteProcess=anything,
         LogInfo=anything, OpaqueFunction=anything, RegisterEventHandler=anything, SetEnvironmentVariable=anything)
    stub("launch.event_handlers", OnProcessExit=anything)
    stub("launch.events", Shutdown=anything)
    stub("launch.substitutions", LaunchConfiguration=LaunchConfiguration)
    stub("launch_ros")
    stub("launch_ros.actions", Node=anything)
    stub("launch_ros.parameter_descriptions", ParameterValue=anything)
    spec = importlib.util.spec_from_file_location("imitate_launch", share_dir() / "launch" / "imitate.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = {name: default for name, (default, _) in LAUNCH_ARGUMENTS.items()}
    context["video"] = "/nonexistent/clip.mp4"
    with pytest.raises(InputError, match="^video: source '/nonexistent/clip.mp4': no such camera"):
        module._processes(context)
    assert not made, "no process action made"


def test_known_parameters_are_what_the_nodes_declare():
    """The parameter names the check accepts are those the real nodes declare (no rclpy-free list
    drifts away from the nodes)."""
    import rclpy

    from humimic_driver.driver_settings import DriverNodeSettings, DriverSettings
    from humimic_perception.camera_node import CameraNode
    from humimic_perception.perception_node import PerceptionNode
    from humimic_retarget.retarget_node import RetargetNode

    known = known_parameters()
    # the driver needs a bus to start: its settings dataclasses are what it declares
    driver = {p.name: type(p.default) for p in DriverNodeSettings.parameters() + DriverSettings.parameters()}
    assert {n: known["dynamixel_driver"].get(n) for n in driver} == driver
    rclpy.init()
    try:
        for factory in (CameraNode, PerceptionNode, RetargetNode):
            node = factory()
            try:
                declared = set(node._parameters)
                accepted = {n for n in declared if _accepted(known[node.get_name()], n)}
                assert accepted == declared, (node.get_name(), declared - accepted)
                listed = {n for n in known[node.get_name()] if not n.endswith(".")}
                assert listed - declared <= {"start_type_description_service", "use_sim_time"} | {
                    n for n in listed if n.startswith("gains.")}, (node.get_name(), listed - declared)
            finally:
                node.destroy_node()
    finally:
        rclpy.shutdown()


def _accepted(known, name):
    return name in known or any(k.endswith(".") and name.startswith(k) for k in known)


def test_code_defaults_equal_the_parameter_file():
    """A node started without a parameter file behaves as with config/humimic.yaml: every default the
    nodes declare is the file's value, and the file sets every parameter of their settings dataclasses
    (the driver, which needs a bus to start: its two settings dataclasses, all it declares)."""
    import rclpy

    from humimic_core.parameters import node_parameters
    from humimic_driver.driver_settings import DriverNodeSettings, DriverSettings
    from humimic_perception.camera_node import CameraNode
    from humimic_perception.perception_node import PerceptionNode
    from humimic_perception.settings import CameraSettings, PerceptionSettings
    from humimic_retarget.offline.pose_grid import PlaybackSettings
    from humimic_retarget.offline.pose_playback_node import PosePlaybackNode
    from humimic_retarget.retarget_node import RetargetNode
    from humimic_retarget.retargeter import RetargetNodeSettings, RetargetParams

    shipped = config_file("humimic.yaml")
    for node, settings in {"dynamixel_driver": [DriverNodeSettings, DriverSettings], "camera": [CameraSettings],
                           "face_perception": [PerceptionSettings], "pose_playback": [PlaybackSettings],
                           "retarget": [RetargetNodeSettings, RetargetParams]}.items():
        values = node_parameters(shipped, node)
        params = [p for cls in settings for p in cls.parameters()]
        assert {p.name: values.get(p.name) for p in params} == {p.name: p.default for p in params}, node
    rclpy.init()
    try:
        for factory in (CameraNode, PerceptionNode, RetargetNode, PosePlaybackNode):
            node = factory()
            try:
                values = node_parameters(shipped, node.get_name())
                assert {n: node.get_parameter(n).value for n in values} == values, node.get_name()
            finally:
                node.destroy_node()
    finally:
        rclpy.shutdown()


def test_parameters_that_cannot_change_live_are_read_only_and_numbers_have_ranges():
    """`ros2 param set` on a value a node reads once is refused, not accepted and ignored; every number
    carries its range, and a value out of it is refused by ROS before the node sees it."""
    import rclpy
    from rclpy.parameter import Parameter

    from humimic_driver.driver_settings import DriverNodeSettings, DriverSettings
    from humimic_perception.camera_node import CameraNode
    from humimic_perception.perception_node import PerceptionNode
    from humimic_retarget.offline.pose_playback_node import PosePlaybackNode
    from humimic_retarget.retarget_node import RetargetNode

    live = {"face_perception": lambda n: n in ("publish_debug_image", "max_frame_lag") or n.startswith("smoothing."),
            "retarget": lambda n: n in ("max_velocity", "max_acceleration", "neutral_velocity", "face_lost_timeout",
                                        "smoothing", "mirror") or n.startswith("gains.")}
    driver = DriverNodeSettings.parameters() + DriverSettings.parameters()  # the driver needs a bus to start
    assert all(p.read_only for p in driver)
    assert all(p.bounds for p in driver if type(p.default) in (int, float))
    rclpy.init()
    try:
        for factory in (CameraNode, PerceptionNode, RetargetNode, PosePlaybackNode):
            node = factory()
            try:
                name = node.get_name()
                described = [d for d in node.describe_parameters(list(node._parameters)) if d.name != "use_sim_time"]
                assert [d.name for d in described if d.read_only == live.get(name, lambda n: False)(d.name)] == [], name
                numbers = [d for d in described if node.get_parameter(d.name).type_ in (
                    Parameter.Type.INTEGER, Parameter.Type.DOUBLE)]
                assert [d.name for d in numbers if not (d.integer_range or d.floating_point_range)] == [], name
            finally:
                node.destroy_node()
        camera = CameraNode()
        try:
            assert not camera.set_parameters([Parameter("fps", value=5.0)])[0].successful
        finally:
            camera.destroy_node()
        node = RetargetNode()
        try:
            described = {d.name: d for d in node.describe_parameters(list(node._parameters))}
            assert described["smoothing"].floating_point_range[0].to_value == 10.0
            assert not node.set_parameters([Parameter("smoothing", value=50.0)])[0].successful
            assert not node.set_parameters([Parameter("rate", value=20.0)])[0].successful
            assert node.set_parameters([Parameter("smoothing", value=0.1)])[0].successful
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown()


def test_remap_reaches_every_humimic_node_from_the_runner_and_the_launch_file():
    """`remap` (launch argument and humimic-run option) remaps the relative topic names of every
    humimic node; a malformed one is refused before start."""
    specs = imitation_graph({"remap": "joint_commands:=/robot2/joint_commands"}, include_external=False)
    nodes = [s for s in specs if s.ros_node]
    assert {s.name for s in nodes} == {"dynamixel_driver", "retarget", "face_perception", "camera"}
    for spec in nodes:
        assert spec.remappings == [("joint_commands", "/robot2/joint_commands")]
        line = command(spec)
        assert line[line.index("--ros-args"):][3:5] == ["-r", "joint_commands:=/robot2/joint_commands"]
    launch = (Path(__file__).resolve().parent.parent / "launch" / "imitate.launch.py").read_text()
    assert "remappings=spec.remappings" in launch
    # the recorder records the names the nodes use: ros2 bag record is told them, humimic-record remaps
    specs = imitation_graph({"remap": "__ns:=/robot2 joint_commands:=goals", "record": "out/rec"},
                            include_external=False)
    recorder = next(s for s in specs if s.name == "recorder")
    assert {"/robot2/goals", "/robot2/face/action_units", "/diagnostics"} <= set(recorder.arguments)
    assert "/joint_commands" not in recorder.arguments
    assert recorder.fallback.remappings == [("__ns", "/robot2"), ("joint_commands", "goals")]
    with pytest.raises(InputError, match="launch argument remap: expected from:=to, got 'joint_commands'"):
        validate_inputs({"remap": "joint_commands"})
