"""A bus of three Dynamixel models with different control tables (X series, MX-28 in Protocol 2.0 with
a load instead of a current, PH42 with the P-series layout and units), driven end to end: the robot
config names the models, the driver addresses each through its model's table, and the emulator
answers from the same data (dynamixel-sdk's own packets, on simulated time)."""
from __future__ import annotations

import dataclasses
import math

import pytest
import yaml

from humimic_core.robot_config import parse_robot_config
from humimic_driver.bus import ServoBus, velocity_units
from humimic_driver.sim.emulated_bus import emulator_process
from humimic_driver.driver_settings import DriverSettings
from humimic_driver.servo_driver import ServoDriver
from humimic_driver.sim.emulator_link import EmulatorLink, SimClock
from humimic_driver.sim.servo_emulator import EmulatedServo, ServoEmulator, servos_from_config

RAW = {
    "bus": {"baud_rate": 1000000},
    "servos": [
        {"joint": "jaw", "id": 1, "model": "XL330-M288", "min": -0.3, "max": 0.3, "neutral": 0.0},
        {"joint": "neck_yaw", "id": 2, "model": "MX-28", "min": -1.0, "max": 1.0, "neutral": 0.0},
        {"joint": "neck_pitch", "id": 3, "model": "PH42-020-S300-R", "min": -0.5, "max": 0.5, "neutral": 0.1,
         "direction": -1, "profile_velocity": 2.0},
    ],
    "mapping": {"jaw": {"weights": {"AU26": 0.1}}},
}
CONFIG = parse_robot_config(RAW)
POSE = {"jaw": 0.2, "neck_yaw": -0.6, "neck_pitch": 0.3}


def test_a_bus_of_mixed_models_is_driven_through_each_models_control_table():
    clock = SimClock(10.0)
    emulator = ServoEmulator(servos_from_config(CONFIG.servos, 1000000), 1000000, seed=1)
    bus = ServoBus(CONFIG.servos, CONFIG.bus, link=EmulatorLink(emulator, clock, 1000000), clock=clock,
                   sleep=clock.sleep)
    driver = ServoDriver(bus, DriverSettings(), now_ns=0, clock=clock)
    driver.start()
    assert all(h.mode == "active" for h in driver.health.values())
    for _ in range(300):  # 3 s of the node's loop: command and state read every 10 ms
        driver.command(list(POSE), list(POSE.values()), 0, 0)
        states = driver.read_state(budget_s=0.005)
        clock.sleep(0.01)
    for servo in CONFIG.servos:
        assert abs(states[servo.joint].position - POSE[servo.joint]) <= 2 * servo.spec.rad_per_tick, servo.joint
        assert math.isfinite(states[servo.joint].effort)
    pitch, yaw = emulator.servos[3], emulator.servos[2]
    assert pitch.table[564:568] == pitch.get("goal_position").to_bytes(4, "little", signed=True)  # P-series address
    assert pitch.get("goal_position") == round(-0.3 / (2 * math.pi / 607500))  # 607,500 pulse/rev, direction -1
    assert (pitch.get("min_position_limit"), pitch.get("max_position_limit")) == CONFIG.servo("neck_pitch").tick_limits()
    assert pitch.get("profile_velocity") == velocity_units(CONFIG.servo("neck_pitch"), 2.0) == 1909  # 0.01 rev/min
    assert yaw.get("goal_position") == 2048 + round(-0.6 / (2 * math.pi / 4096))
    driver.shutdown()
    assert [emulator.servos[i].get("torque_enable") for i in (1, 2, 3)] == [0, 0, 0]


def test_effort_comes_from_each_models_own_register_and_unit():
    """The MX-28 reports a load (0.1 % of its stall torque) where the others report a current."""
    clock = SimClock(0.0)
    emulator = ServoEmulator(servos_from_config(CONFIG.servos, 1000000), 1000000)
    bus = ServoBus(CONFIG.servos, CONFIG.bus, link=EmulatorLink(emulator, clock, 1000000), clock=clock,
                   sleep=clock.sleep)
    bus.open()
    yaw = CONFIG.servo("neck_yaw")
    bus.configure(yaw, -0.6, 0.5)
    clock.sleep(0.05)
    states, _ = bus.read_states([yaw])
    load = emulator.servos[2].get("present_load")  # as of that read
    assert load < 0  # pushing toward a goal below
    assert states["neck_yaw"].effort == pytest.approx(load * 0.001 * 2.5)


def test_a_fine_counter_arrives_within_the_same_angle_as_a_coarse_one():
    """A PH42 resting 0.01 deg off neutral (17 of its 607,500 pulses per revolution) is there: it starts
    at its own profile velocity, not a 5 s slow homing (before: 2 ticks of any model, 0.001 deg here)."""
    clock = SimClock(0.0)
    pitch = CONFIG.servo("neck_pitch")
    emulator = ServoEmulator([EmulatedServo(3, pitch.model, pitch.to_tick(pitch.neutral) + 17)], 1000000)
    config = dataclasses.replace(CONFIG, servos=(pitch,))
    bus = ServoBus(config.servos, config.bus, link=EmulatorLink(emulator, clock, 1000000), clock=clock,
                   sleep=clock.sleep)
    driver = ServoDriver(bus, DriverSettings(), now_ns=0, clock=clock)
    driver.start()
    assert driver.health["neck_pitch"].homing_until is None
    assert emulator.servos[3].get("profile_velocity") == velocity_units(pitch, 2.0)
    driver.shutdown()


def test_the_emulator_process_serves_the_new_models_on_a_serial_port(tmp_path):
    """The real byte path: the emulator process built from the robot config, a pty, dynamixel-sdk."""
    robot = tmp_path / "robot.yaml"
    robot.write_text(yaml.safe_dump(RAW))
    link = tmp_path / "servo_bus"
    with emulator_process(link, robot):
        with ServoBus(CONFIG.servos, dataclasses.replace(CONFIG.bus, port=str(link)), timeout_margin_s=0.03) as bus:
            bus.open()
            assert [bus.ping(s) for s in CONFIG.servos] == [1200, 30, 2000]
            for servo in CONFIG.servos:
                bus.configure(servo, POSE[servo.joint], 0.0)
            pitch = CONFIG.servo("neck_pitch")
            assert bus.read(pitch, "goal_position") == pitch.to_tick(0.3) == -29006
            assert bus.read(pitch, "max_position_limit") == pitch.tick_limits()[1] == 48343  # 0.5 rad
