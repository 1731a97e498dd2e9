"""Imitation pipeline: camera -> face perception -> retarget -> Dynamixel driver (+ emulated bus,
robot_state_publisher, rviz2, the ROS4HRI bridge, a recorder). Which processes run with which
parameters is described once, in humimic_bringup.graph, and shared with the launch-free runner
`humimic-run`.

Every humimic process (and the recorder) is required: when one exits, the launch ends and stops
the others, so none is left running alone. Optional processes of other packages have their own
argument (robot_state_publisher, rviz, hri) and are skipped with one line where not installed.
Ctrl-C reaches every process at once: the emulated bus keeps serving until the driver has moved
to neutral and closed the port (--linger).

    ros2 launch humimic imitate.launch.py [video:=/dev/video0] [sim:=false serial_port:=/dev/ttyUSB0]
                                          [rviz:=true] [record:=~/sessions/s01] [hri:=true]
"""
import os
import sys

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, ExecuteProcess, LogInfo, OpaqueFunction,
                            RegisterEventHandler, SetEnvironmentVariable)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from humimic_bringup.graph import (BUS_LINGER, LAUNCH_ARGUMENTS, fastdds_profile, imitation_graph, installed,
                                   not_installed, validate_inputs)


def _parameters(spec):
    values = {k: ParameterValue(v, value_type=str) if isinstance(v, str) else v for k, v in spec.parameters.items()}
    return ([spec.params_file] if spec.params_file else []) + [values]


def _action(spec):
    if spec.ros_node:
        return Node(package=spec.package, executable=spec.executable, name=spec.name,
                    namespace=spec.namespace or None,
                    parameters=_parameters(spec), arguments=spec.arguments, remappings=spec.remappings,
                    output="screen")
    cmd = [sys.executable, "-m", spec.module] if spec.package == "humimic" else [spec.executable]
    # SIGTERM only after the emulated bus has had its linger (the driver's safe shutdown)
    return ExecuteProcess(cmd=cmd + spec.arguments, name=spec.name, output="screen",
                          sigterm_timeout=str(BUS_LINGER + 5))


def _ends_launch(action, name):
    return RegisterEventHandler(OnProcessExit(target_action=action, on_exit=[
        LogInfo(msg=f"{name} exited: stopping the pipeline"), EmitEvent(event=Shutdown(reason=f"{name} exited"))]))


def _processes(context):
    """Every input checked before any process starts: a bad one ends the launch with one line
    (InputError) naming it."""
    values = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    validate_inputs(values)
    actions = []
    for spec in imitation_graph(values):
        chosen = installed(spec)
        if chosen is None:
            actions.append(LogInfo(msg=not_installed(spec)))
            continue
        action = _action(chosen)
        actions.append(action)
        if chosen.required:
            actions.append(_ends_launch(action, chosen.name))
    return actions


def generate_launch_description():
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, (default, description) in LAUNCH_ARGUMENTS.items()]
    environment = []
    if "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ:
        environment.append(SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", str(fastdds_profile())))
    return LaunchDescription(arguments + environment + [OpaqueFunction(function=_processes)])
