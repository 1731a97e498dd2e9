"""Imitation pipeline: camera -> face perception -> retarget -> Dynamixel driver (+ emulated bus,
robot_state_publisher, rviz2, ros2 bag record). Which processes run with which parameters is
described once, in humimic_bringup.graph, and shared with the launch-free runner `humimic-run`.

    ros2 launch humimic imitate.launch.py [video:=/dev/video0] [sim:=false serial_port:=/dev/ttyUSB0]
                                          [rviz:=true] [record:=~/sessions/s01]
"""
import os
import shutil
import sys

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from humimic_bringup.graph import LAUNCH_ARGUMENTS, fastdds_profile, imitation_graph, validate_inputs


def _parameters(spec):
    values = {k: ParameterValue(v, value_type=str) if isinstance(v, str) else v for k, v in spec.parameters.items()}
    return ([spec.params_file] if spec.params_file else []) + [values]


def _action(spec):
    if spec.package != "humimic" and shutil.which(spec.executable) is None and spec.fallback is not None:
        spec = spec.fallback
    if spec.ros_node:
        return Node(package=spec.package, executable=spec.executable, name=spec.name,
                    parameters=_parameters(spec), arguments=spec.arguments, remappings=spec.remappings,
                    output="screen")
    cmd = [sys.executable, "-m", spec.module] if spec.package == "humimic" else [spec.executable]
    return ExecuteProcess(cmd=cmd + spec.arguments, name=spec.name, output="screen", sigterm_timeout="10")


def _processes(context):
    """Every input checked before any process starts: a bad one ends the launch with one line
    (InputError) naming it."""
    values = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    validate_inputs(values)
    return [_action(spec) for spec in imitation_graph(values)]


def generate_launch_description():
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, (default, description) in LAUNCH_ARGUMENTS.items()]
    environment = []
    if "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ:
        environment.append(SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", str(fastdds_profile())))
    return LaunchDescription(arguments + environment + [OpaqueFunction(function=_processes)])
