"""The driver side of an offline re-run: the live driver's code (``ServoDriver``: setpoint limiter,
motion caps, profile registers) over the in-process emulator link on simulated time, fed each
command at its stamp, as the dynamixel_driver node runs it: a state timer at ``state_rate`` (the
watchdog, ``follow()``, a sync read -> /joint_states, put off to right after a command as
``reads_between_commands`` says), a health timer at ``health_rate``, and the goals of each command
-> /driver/written_goals. The emulator moves the servos along the firmware's trapezoid profile, so
/joint_states are the positions the servos reach, not the ones commanded.

Deterministic: no wall clock; the simulated clock is the stream's time (``SimClock`` seconds since
``origin_ns``), moved on by the timers, the commands' stamps and the bus transactions themselves.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from humimic_core.parameters import node_parameters
from humimic_core.robot_config import RobotConfig
from humimic_core.topics import JOINT_STATES, WRITTEN_GOALS, absolute
from humimic_driver.bus import ServoBus
from humimic_driver.driver_settings import DriverNodeSettings, DriverSettings
from humimic_driver.read_phase import ReadPhase
from humimic_driver.servo_driver import ServoDriver
from humimic_driver.sim.emulator_link import EmulatorLink, SimClock
from humimic_driver.sim.servo_emulator import ServoEmulator, servos_from_config

#: Seconds the driver runs before the first command: start-up, servos resting at neutral.
LEAD_IN_S = 0.5
#: Seconds from a frame's camera stamp to its command's bus write on a live robot: the p50 of
#: tools/bench_latency.py --fps 30 on a quiet 2-core VM with the shipped defaults, 10.2 ms
#: (docs/latency.md, "On a quiet machine at 30 fps, after both rounds"; 13.3 ms before issue 15's
#: second round). A command fed at its stamp would be a robot with no latency at all.
LOOP_LATENCY_S = 0.0102


@dataclass(frozen=True)
class Sample:
    """One message of the driver: its topic (/joint_states or /driver/written_goals), log time and
    header stamp (ns), joints and their positions (rad), velocities and efforts (states only)."""

    topic: str
    log_ns: int
    stamp_ns: int
    names: List[str]
    position: List[float]
    velocity: Tuple[float, ...] = ()
    effort: Tuple[float, ...] = ()


class DrivenRobot:
    """The driver and emulated servos of ``config`` with the dynamixel_driver settings of a params file,
    started ``LEAD_IN_S`` before ``first_ns``; ``command`` feeds a command ``latency_s`` after its stamp,
    ``run_until`` lets time pass."""

    def __init__(self, config: RobotConfig, params_file: str | Path, first_ns: int,
                 latency_s: float = LOOP_LATENCY_S) -> None:
        values = node_parameters(params_file, "dynamixel_driver")
        node = DriverNodeSettings.from_parameters(values)
        settings = DriverSettings.from_parameters(values)
        self.origin_ns = first_ns - int(LEAD_IN_S * 1e9)
        self.latency_ns = int(round(latency_s * 1e9))
        self.clock = clock = SimClock(0.0)
        baud = node.baud_rate or config.bus.baud_rate
        emulator = ServoEmulator(servos_from_config(config.servos, baud), baud, seed=0)
        bus = ServoBus(config.servos, config.bus, link=EmulatorLink(emulator, clock, baud), clock=clock,
                       sleep=clock.sleep)
        self.driver = ServoDriver(bus, settings, self.origin_ns, clock=clock,
                                  caps=config.motion_caps(settings.max_velocity, settings.max_acceleration),
                                  write_period_s=1.0 / node.state_rate)
        self.driver.start()
        self._joints = [s.joint for s in config.servos]
        self._state_period, self._health_period = 1.0 / node.state_rate, 1.0 / node.health_rate
        self._read_budget = node.read_budget_s
        self._phase = ReadPhase() if node.reads_between_commands else None
        self._next_state = self._next_health = clock()
        self.samples: List[Sample] = []
        self.events = self.driver.events  # (severity, message) the node would log

    def _ns(self) -> int:
        return self.origin_ns + int(round(self.clock() * 1e9))

    def _at(self, ns: int) -> None:
        self.clock.now = max(self.clock.now, (ns - self.origin_ns) * 1e-9)

    def run_until(self, ns: int) -> None:
        """The timers that fire before ``ns``, in order (a timer late behind the bus fires at once, as
        a busy executor runs it)."""
        end = (ns - self.origin_ns) * 1e-9
        while min(self._next_state, self._next_health) < end:
            if self._next_health <= self._next_state:
                self.clock.now = max(self.clock.now, self._next_health)
                self._next_health += self._health_period
                self.driver.poll_health()
                continue
            self.clock.now = max(self.clock.now, self._next_state)
            self._next_state += self._state_period
            neutral = self.driver.watchdog(self._ns())
            if neutral is not None:
                self._goals(neutral, self._ns())
            else:
                self.driver.follow()
            if self._phase is None or self._phase.timer_may_read(self.clock()):
                self._read()
        self._at(ns)

    def command(self, stamp_ns: int, command: Mapping[str, float]) -> None:
        """The timers up to the command's arrival, ``latency_s`` after ``stamp_ns``, then the command
        written (at once, or once the bus is free)."""
        self.run_until(stamp_ns + self.latency_ns)
        if self._phase is not None:
            self._phase.command(self.clock())
        try:
            written = self.driver.command(list(command), [float(v) for v in command.values()], stamp_ns, self._ns())
        except ValueError as exc:  # the node warns and ignores it
            self.driver.events.append(("warn", f"ignoring /joint_commands: {exc}"))
            written = None
        if written is not None:
            self._goals(written.goals, stamp_ns)
        if self._phase is not None and self._phase.read_after_command():
            self._read()

    def _goals(self, goals: Mapping[str, float], stamp_ns: int) -> None:
        names = [j for j in self._joints if j in goals]
        self.samples.append(Sample(absolute(WRITTEN_GOALS), self._ns(), stamp_ns, names, [goals[j] for j in names]))

    def _read(self) -> None:
        start = self.clock()
        states = self.driver.read_state(self._read_budget)
        if self._phase is not None:
            self._phase.read(self.clock() - start)
        if states:
            names = [j for j in self._joints if j in states]
            now = self._ns()
            self.samples.append(Sample(absolute(JOINT_STATES), now, now, names, [states[j].position for j in names],
                                       tuple(states[j].velocity for j in names), tuple(states[j].effort for j in names)))

    def take(self) -> List[Sample]:
        """The messages since the last call."""
        out, self.samples = self.samples, []
        return out


def positions_on(stamps: np.ndarray, samples: Sequence[Tuple[int, Mapping[str, float]]]) -> Dict[str, np.ndarray]:
    """Each joint's position on ``stamps`` (ns), linearly interpolated between (stamp, positions)
    samples in time order; NaN outside the joint's samples."""
    t = np.array([s for s, _ in samples], dtype=np.int64)
    out = {}
    for joint in dict.fromkeys(j for _, values in samples for j in values):
        ok = np.array([joint in v for _, v in samples])
        values = np.array([v.get(joint, np.nan) for _, v in samples], float)
        inside = (stamps >= t[ok][0]) & (stamps <= t[ok][-1])
        out[joint] = np.where(inside, np.interp(stamps, t[ok], values[ok]), np.nan)
    return out


def achieved(config: RobotConfig, params_file: str | Path, stamps: np.ndarray,
             commands: Mapping[str, np.ndarray], after_s: float = 0.1,
             latency_s: float = LOOP_LATENCY_S) -> Dict[str, np.ndarray]:
    """Each joint's achieved position (/joint_states) on ``stamps`` when the per-frame ``commands``
    (joint -> value per stamp) are driven ``latency_s`` after their stamps; the driver runs ``after_s``
    past the last."""
    robot = DrivenRobot(config, params_file, int(stamps[0]), latency_s)
    for i, stamp in enumerate(stamps.tolist()):
        robot.command(stamp, {j: float(v[i]) for j, v in commands.items()})
    robot.run_until(int(stamps[-1]) + int(after_s * 1e9))
    states = [(s.stamp_ns, dict(zip(s.names, s.position))) for s in robot.take() if s.topic == absolute(JOINT_STATES)]
    return positions_on(stamps, states)
