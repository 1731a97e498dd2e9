"""The launch file's logic, run with stand-ins for launch / launch_ros (only a ROS install has
them): every required process ends the launch when it exits (no node left running alone),
optional processes have their own argument and are skipped with one line where not installed,
`record:=` uses `ros2 bag` only where rosbag2 is installed, and the emulated bus outlives the
driver. What only a real launch shows is a manual check in README.md."""
from __future__ import annotations

import importlib.util
import sys
import types

import pytest

from humimic_bringup import graph
from humimic_bringup.graph import LAUNCH_ARGUMENTS
from humimic_core.paths import share_dir

HUMIMIC = ("servo_emulator", "dynamixel_driver", "retarget", "face_perception", "camera")


class Action:
    """Stands in for every launch action, event and handler: keeps its arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context[self.name]


@pytest.fixture
def launch_file(monkeypatch):
    def stub(name, *classes, **attributes):
        module = types.ModuleType(name)
        module.__dict__.update({c: type(c, (Action,), {}) for c in classes}, **attributes)
        monkeypatch.setitem(sys.modules, name, module)

    stub("launch", "LaunchDescription")
    stub("launch.actions", "DeclareLaunchArgument", "EmitEvent", "ExecuteProcess", "LogInfo", "OpaqueFunction",
         "RegisterEventHandler", "SetEnvironmentVariable")
    stub("launch.event_handlers", "OnProcessExit")
    stub("launch.events", "Shutdown")
    stub("launch.substitutions", LaunchConfiguration=LaunchConfiguration)
    stub("launch_ros")
    stub("launch_ros.actions", "Node")
    stub("launch_ros.parameter_descriptions", "ParameterValue")
    spec = importlib.util.spec_from_file_location("imitate_launch", share_dir() / "launch" / "imitate.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(launch_file, monkeypatch, sample_media, tmp_path, installed=(), **values):
    """The launch file's actions for these arguments, with only `installed` ROS packages and executables."""
    monkeypatch.setattr(graph, "ament_package_found", lambda name: name in installed)
    monkeypatch.setattr(graph, "executable_on_path", lambda name: name in installed)
    context = {name: default for name, (default, _) in LAUNCH_ARGUMENTS.items()}
    context.update(video=str(sample_media / "single_face.mp4"), serial_port=str(tmp_path / "bus"), **values)
    return launch_file._processes(context)


def by_kind(actions, kind):
    return [a for a in actions if type(a).__name__ == kind]


def process_name(action):
    return action.kwargs["name"]


def test_every_humimic_process_ends_the_launch_when_it_exits(launch_file, monkeypatch, sample_media, tmp_path):
    actions = run(launch_file, monkeypatch, sample_media, tmp_path)
    processes = by_kind(actions, "Node") + by_kind(actions, "ExecuteProcess")
    assert sorted(map(process_name, processes)) == sorted(HUMIMIC)
    handlers = {}
    for registered in by_kind(actions, "RegisterEventHandler"):
        handler = registered.args[0]
        assert type(handler).__name__ == "OnProcessExit"
        events = [a.kwargs["event"] for a in handler.kwargs["on_exit"] if type(a).__name__ == "EmitEvent"]
        assert [type(e).__name__ for e in events] == ["Shutdown"]
        handlers[process_name(handler.kwargs["target_action"])] = handler
    assert sorted(handlers) == sorted(HUMIMIC), "a required process without an exit handler"


def test_robot_state_publisher_not_installed_is_skipped_in_one_line(launch_file, monkeypatch, sample_media,
                                                                    tmp_path):
    actions = run(launch_file, monkeypatch, sample_media, tmp_path)
    notes = [a.kwargs["msg"] for a in by_kind(actions, "LogInfo")]
    assert [n for n in notes if "robot_state_publisher" in n] == [
        "robot_state_publisher: not installed (ROS package robot_state_publisher): skipped "
        "(robot_state_publisher:=false leaves it out)"]
    actions = run(launch_file, monkeypatch, sample_media, tmp_path, installed=("robot_state_publisher",))
    node = [a for a in by_kind(actions, "Node") if a.kwargs["package"] == "robot_state_publisher"]
    assert len(node) == 1, "installed: started"
    targets = [r.args[0].kwargs["target_action"] for r in by_kind(actions, "RegisterEventHandler")]
    assert node[0] not in targets, "optional: its exit does not end the launch"
    actions = run(launch_file, monkeypatch, sample_media, tmp_path, installed=("robot_state_publisher",),
                  robot_state_publisher="false")
    assert not [a for a in by_kind(actions, "Node") if a.kwargs["package"] == "robot_state_publisher"]
    assert not [a for a in by_kind(actions, "LogInfo") if "robot_state_publisher" in a.kwargs["msg"]]


@pytest.mark.parametrize("installed, recorder", [
    ((), "humimic-record"),
    (("ros2",), "humimic-record"),                      # ros2cli without rosbag2
    (("ros2", "ros2bag"), "humimic-record"),            # rosbag2 without its MCAP storage
    (("ros2", "ros2bag", "rosbag2_storage_mcap"), "ros2 bag"),
])
def test_record_uses_ros2_bag_only_where_it_is_installed(launch_file, monkeypatch, sample_media, tmp_path,
                                                         installed, recorder):
    actions = run(launch_file, monkeypatch, sample_media, tmp_path, installed=installed,
                  record=str(tmp_path / "rec"))
    found = [a for a in by_kind(actions, "Node") + by_kind(actions, "ExecuteProcess")
             if process_name(a) == "recorder"]
    assert len(found) == 1
    if recorder == "ros2 bag":
        cmd = found[0].kwargs["cmd"]
        assert cmd[:3] == ["ros2", "bag", "record"] and "zstd_fast" in cmd and "/robot_description" in cmd
    else:
        assert found[0].kwargs["executable"] == "humimic-record"


def test_the_emulated_bus_outlives_the_driver(launch_file, monkeypatch, sample_media, tmp_path):
    actions = run(launch_file, monkeypatch, sample_media, tmp_path)
    bus = next(a for a in by_kind(actions, "ExecuteProcess") if process_name(a) == "servo_emulator")
    cmd = bus.kwargs["cmd"]
    linger = float(cmd[cmd.index("--linger") + 1])
    assert linger > 0 and float(bus.kwargs["sigterm_timeout"]) > linger


def test_hri_bridge_is_optional(launch_file, monkeypatch, sample_media, tmp_path):
    actions = run(launch_file, monkeypatch, sample_media, tmp_path, hri="true")
    assert [a.kwargs["msg"] for a in by_kind(actions, "LogInfo") if "hri" in a.kwargs["msg"]] == [
        "hri_bridge: not installed (ROS package hri_msgs, tf2_msgs): skipped (hri:=false leaves it out)"]
    actions = run(launch_file, monkeypatch, sample_media, tmp_path, installed=("hri_msgs", "tf2_msgs"), hri="true")
    assert [a.kwargs["executable"] for a in by_kind(actions, "Node") if process_name(a) == "hri_bridge"] == \
        ["humimic-hri-bridge"]


@pytest.mark.parametrize("installed, program", [(("ros2",), "record_node"),
                                                (("ros2", "ros2bag", "rosbag2_storage_mcap"), "ros2")])
def test_runner_records_with_ros2_bag_only_where_it_is_installed(monkeypatch, tmp_path, installed, program):
    from humimic_bringup.runner import command

    monkeypatch.setattr(graph, "ament_package_found", lambda name: name in installed)
    monkeypatch.setattr(graph, "executable_on_path", lambda name: name in installed)
    monkeypatch.setattr("shutil.which", lambda name: f"/opt/ros/bin/{name}")
    recorder = next(s for s in graph.imitation_graph({"record": str(tmp_path / "rec")}, include_external=False)
                    if s.name == "recorder")
    cmd = command(recorder)
    assert (cmd[0] == "/opt/ros/bin/ros2") if program == "ros2" else ("humimic_experiments.record_node" in cmd)


def test_without_a_sourced_ros_nothing_of_another_package_is_found(monkeypatch):
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    assert not graph.ament_package_found("robot_state_publisher")
    bridge = next(s for s in graph.imitation_graph({"hri": "true"}, include_external=False) if s.name == "hri_bridge")
    assert graph.installed(bridge) is None and not bridge.required
