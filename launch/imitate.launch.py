"""Imitation pipeline: camera -> face perception -> retarget -> Dynamixel driver (+ emulated bus,
robot_state_publisher, rviz2). Which processes run with which parameters is described once, in
humimic_core.graph, and shared with the launch-free runner `humimic-run`.

    ros2 launch humimic imitate.launch.py [video:=/dev/video0] [sim:=false serial_port:=/dev/ttyUSB0]
"""
import sys

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from humimic_core.graph import LAUNCH_ARGUMENTS, imitation_graph


def _parameters(spec):
    values = {k: ParameterValue(v, value_type=str) if isinstance(v, str) else v for k, v in spec.parameters.items()}
    return ([spec.params_file] if spec.params_file else []) + [values]


def _processes(context):
    values = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    actions = []
    for spec in imitation_graph(values):
        if spec.ros_node:
            actions.append(Node(package=spec.package, executable=spec.executable, name=spec.name,
                                parameters=_parameters(spec), arguments=spec.arguments, output="screen"))
        else:
            actions.append(ExecuteProcess(cmd=[sys.executable, "-m", spec.module, *spec.arguments],
                                          name=spec.name, output="screen", sigterm_timeout="10"))
    return actions


def generate_launch_description():
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, (default, description) in LAUNCH_ARGUMENTS.items()]
    return LaunchDescription(arguments + [OpaqueFunction(function=_processes)])
