"""Topic names: relative, defined once (humimic_core.topics), remappable per node and by namespace."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from humimic_core import topics

ROOT = Path(__file__).resolve().parent.parent


def _topic_names(node) -> set:
    return {p.topic_name for p in node.publishers} | {s.topic_name for s in node.subscriptions}


@pytest.mark.parametrize("ros_args, expected", [
    ([], {"/joint_commands", "/face/action_units", "/face/head_pose", "/face/gaze", "/face/forecast", "/diagnostics",
          "/trace"}),
    (["-r", "__ns:=/robot2"], {"/robot2/joint_commands", "/robot2/face/action_units", "/robot2/face/head_pose",
                               "/robot2/face/gaze", "/robot2/face/forecast", "/diagnostics", "/robot2/trace"}),
    (["-r", "joint_commands:=/robot2/goals"], {"/robot2/goals", "/face/action_units", "/face/head_pose",
                                               "/face/gaze", "/face/forecast", "/diagnostics", "/trace"}),
])
def test_a_node_resolves_and_remaps_the_relative_names(ros_args, expected):
    """The documented defaults in the root namespace; a namespace or a remap moves them (absolute names
    would ignore both)."""
    import rclpy

    from humimic_retarget.retarget_node import RetargetNode

    rclpy.init(args=["--ros-args", *ros_args] if ros_args else None)
    try:
        node = RetargetNode()
        try:
            assert _topic_names(node) - {"/parameter_events", "/rosout"} == expected
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown()


def test_topic_names_are_written_in_one_module():
    """No module but humimic_core/topics.py spells a pipeline topic as a string (the absolute name, or
    a relative one with a slash: a bare "joint_states" is also a field name of the dataset)."""
    names = {topics.absolute(v) for k, v in vars(topics).items() if k.isupper() and isinstance(v, str)
             and k not in ("SENSOR", "RELIABLE", "LATCHED")}
    names |= {n.lstrip("/") for n in names if "/" in n.lstrip("/")}
    found = []
    for path in ROOT.glob("humimic_*/**/*.py"):
        if path.name == "topics.py" and path.parent.name == "humimic_core":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value}")
    assert found == []


@pytest.mark.parametrize("rules", [
    [],
    [("__ns", "/robot2")],
    [("joint_commands", "/robot2/joint_commands")],
    [("__ns", "/robot2"), ("joint_commands", "goals"), ("/face/gaze", "/elsewhere")],
    [("face/gaze", "g"), ("face/gaze", "h"), ("/camera/image_raw", "camera/raw")],
    [("retarget:joint_commands", "mine"), ("other:face/action_units", "theirs"), ("retarget:__ns", "/r")],
    [("__ns", "/a"), ("__ns", "/b"), ("diagnostics", "/d"), ("/tf", "tf_r")],
])
def test_resolve_names_as_rcl_does(rules):
    """topics.resolve (what `ros2 bag record` is given and the runner waits on) gives the name rcl
    gives a node's subscription, for every recorded topic and these remapping rules."""
    import rclpy
    from rclpy.context import Context
    from std_msgs.msg import String

    context = Context()
    rclpy.init(context=context)
    try:
        args = [a for source, target in rules for a in ("-r", f"{source}:={target}")]
        node = rclpy.create_node("retarget", context=context, cli_args=["--ros-args", *args] if args else None)
        try:
            for default, name in topics.NAMES.items():
                rcl = node.create_subscription(String, name, lambda _: None, 1).topic_name
                assert topics.resolve(name, rules, "retarget") == rcl, (default, rules)
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
