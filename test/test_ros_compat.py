"""Humble compatibility: no rclpy API newer than Humble (rclpy 3.3) in the project's code.

The wheels used here are Kilted's rclpy (9.x), so an API added after Humble works in every test
and fails only on a Humble install (issue 12 item 5: `add_post_set_parameters_callback`). This
check reads the sources, so it runs without any ROS install.
"""
from __future__ import annotations

import ast
from pathlib import Path
from xml.etree import ElementTree
from typing import Iterator, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("humimic_core", "humimic_perception", "humimic_retarget", "humimic_driver", "humimic_experiments",
           "humimic_bringup", "launch", "tools", "test")

#: attribute or function names that Humble's rclpy lacks -> the distribution that added them and what to use
NEWER_ATTRIBUTES = {
    "add_post_set_parameters_callback": "Iron; apply the change in the add_on_set_parameters_callback callback",
    "add_pre_set_parameters_callback": "Iron; use add_on_set_parameters_callback",
    "remove_post_set_parameters_callback": "Iron",
    "remove_pre_set_parameters_callback": "Iron",
    "wait_for_node": "Iron; poll get_node_names()",
    "configure_introspection": "Iron (service introspection)",
}
#: modules that Humble's rclpy lacks
NEWER_MODULES = {
    "rclpy.event_handler": "Iron; Humble has rclpy.qos_event",
    "rclpy.clock_type": "Iron; import ClockType from rclpy.clock",
    "rclpy.type_support": "Iron",
    "rclpy.service_introspection": "Iron",
    "rclpy.type_description_service": "Iron",
}
#: keyword arguments that Humble's rclpy lacks
NEWER_KEYWORDS = {("create_timer", "autostart"): "Jazzy"}


def python_files() -> Iterator[Path]:
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            yield from sorted(path.rglob("*.py"))


def newer_only(tree: ast.AST) -> List[Tuple[int, str]]:
    """(line, problem) for every use of an rclpy API newer than Humble."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in NEWER_ATTRIBUTES:
            found.append((node.lineno, f"{node.attr}: {NEWER_ATTRIBUTES[node.attr]}"))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.module == "rclpy":
                modules += [f"rclpy.{a.name}" for a in node.names]
            found += [(node.lineno, f"{m}: {NEWER_MODULES[m]}") for m in modules if m in NEWER_MODULES]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            found += [(node.lineno, f"{node.func.attr}({k.arg}=): {NEWER_KEYWORDS[(node.func.attr, k.arg)]}")
                      for k in node.keywords if (node.func.attr, k.arg) in NEWER_KEYWORDS]
    return found


def test_the_check_finds_what_humble_lacks():
    code = ("from rclpy.event_handler import SubscriptionEventCallbacks\nfrom rclpy import clock_type\n"
            "node.add_post_set_parameters_callback(f)\nnode.create_timer(1.0, f, autostart=False)\n")
    assert sorted(line for line, _ in newer_only(ast.parse(code))) == [1, 2, 3, 4]
    assert newer_only(ast.parse("node.add_on_set_parameters_callback(f)\nfrom rclpy.qos_event import X\n")) == []


def test_no_rclpy_api_newer_than_humble():
    problems = [f"{path.relative_to(ROOT)}:{line}: {what}"
                for path in python_files() if path.name != Path(__file__).name
                for line, what in newer_only(ast.parse(path.read_text(), str(path)))]
    assert not problems, "rclpy APIs Humble lacks:\n" + "\n".join(problems)


def imported_ros_interfaces() -> set:
    """The ROS interface packages (`*_msgs`, `*_srvs`, `*_interfaces`) the installed code imports."""
    found = set()
    for path in python_files():
        if path.parts[len(ROOT.parts)] == "test":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            found.update(n.split(".")[0] for n in names if n.split(".")[0].endswith(("_msgs", "_srvs", "_interfaces")))
    return found


def test_package_xml_declares_the_interfaces_the_code_imports():
    root = ElementTree.parse(ROOT / "package.xml").getroot()
    declared = {e.text for e in root.iter("exec_depend") if e.text.endswith(("_msgs", "_srvs", "_interfaces"))}
    imported = imported_ros_interfaces()
    assert not imported - declared, f"imported but not in package.xml: {sorted(imported - declared)}"
    assert not declared - imported, f"in package.xml but never imported: {sorted(declared - imported)}"
    tests = {e.text for e in root.iter("test_depend")}
    assert {"python3-pytest", "python3-pytest-timeout"} <= tests  # pytest.ini sets timeout
