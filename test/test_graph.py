"""The node graph shared by the launch file and the runner: arguments, overrides, commands."""
from __future__ import annotations

import py_compile

import pytest

from humimic_core.graph import LAUNCH_ARGUMENTS, add_camera_subscriber, imitation_graph, node_parameters
from humimic_core.paths import config_file, share_dir
from humimic_core.runner import command


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
    assert recorder.executable == "ros2" and recorder.arguments[:5] == ["bag", "record", "-s", "mcap", "-o"]
    assert recorder.fallback.module == "humimic_experiments.record_node"
    with_camera = imitation_graph({"record": "/tmp/rec"}, include_external=False)
    add_camera_subscriber(with_camera)
    assert by_name(with_camera)["camera"].parameters["min_subscribers"] == 3  # perception, recorder, monitor


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
