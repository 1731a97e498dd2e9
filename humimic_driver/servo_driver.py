"""What the driver node does, without ROS: goals, watchdog, state and health reads, fault recovery,
temperature policy, diagnostics and a safe shutdown.

Command times are integer nanoseconds of the node's clock (stamps, watchdog); retry schedules use
``clock`` (time.monotonic: real time, also under use_sim_time). No method raises on a bus
problem: a lost port is reopened with backoff, a servo that stops answering is marked stale and
re-pinged with backoff while the others keep being driven, a hardware error is reported and
(optionally) cleared by a reboot, after which torque and position are restored. What happened
is queued in ``events`` for the node to log.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple

from humimic_core.robot_config import MotionCaps, Servo, motion_caps
from humimic_driver.bus import (HARDWARE_ERROR, HEALTH, BusError, LinkError, ServoBus, ServoError,
                                ServoReading, arrived, decode_health, velocity_units)
from humimic_core.control_tables import HW_OVERHEATING, hardware_error_words
from humimic_driver.diagnostics import Report, bus_report, servo_report
from humimic_driver.driver_settings import DriverSettings
from humimic_driver.motion_limits import SetpointLimiter
from humimic_driver.scan import id_ranges
from humimic_driver.servo_health import ACTIVE, FAULT, REBOOTING, STALE, Backoff, ServoHealth

#: Commands whose latency (command stamp -> bus write) is kept for the percentiles.
LATENCY_WINDOW = 300
#: Latencies outside this range (s) come from absurd stamps (1970, another clock): counted, not kept.
LATENCY_RANGE_S = (0.0, 10.0)
#: A hot servo cools down (leaves the temperature policy) this many degrees below temperature_warn.
HOT_HYSTERESIS_C = 2.0
#: Wait after a reboot instruction before pinging the servo again (s).
REBOOT_WAIT_S = 0.3
#: Failed state reads in a row that, with stale_after seconds without a reply, make a servo stale.
MIN_FAILED_READS = 3
#: Seconds between start-up attempts of a servo whose replies were lost.
STARTUP_PAUSE_S = 0.1
#: Seconds between looks at the temperature of an overheated servo waiting to cool down.
COOLING_CHECK_S = 0.5


@dataclass(frozen=True)
class Written:
    """Goals that were just written to the bus (rad, clamped), by joint."""

    goals: Dict[str, float]
    unknown: List[str]  # command names that are not joints of this robot


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending sequence; NaN if empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


class ServoDriver:
    """Holds one goal per joint and a setpoint that follows it within the joint's speed caps (``caps``:
    default ``settings.max_velocity`` / ``max_acceleration`` for every joint); writes on every
    command and, while the setpoints move, on ``follow()`` (one sync write, every ``write_period_s``)
    to the servos that are active; reads states and health, and nurses faulty servos and a lost port
    back. What it writes is each setpoint's lead (``SetpointLimiter.lead``: where it will be at the
    next write, plus its braking distance), so the servo's own profile, set to the same caps, runs
    along the setpoint path instead of braking to rest at every write (docs/driver.md)."""

    def __init__(self, bus: ServoBus, settings: DriverSettings, now_ns: int,
                 clock: Callable[[], float] = time.monotonic, caps: Optional[Mapping[str, MotionCaps]] = None,
                 write_period_s: float = 0.02) -> None:
        self.bus = bus
        self.settings = settings
        self.clock = clock
        self.goals: Dict[str, float] = {s.joint: s.neutral for s in bus.servos}
        now = clock()
        caps = caps or motion_caps(bus.servos, settings.max_velocity, settings.max_acceleration)
        self.limiter = SetpointLimiter(caps, {s.joint: (s.min, s.max) for s in bus.servos}, self.goals, now)
        self.write_period_s = write_period_s
        self.health: Dict[str, ServoHealth] = {
            s.joint: ServoHealth(s, Backoff(settings.reping_backoff_min, settings.reping_backoff_max), since=now)
            for s in bus.servos}
        self.events: List[Tuple[str, str]] = []  # (severity: info | warn | error, message) for the node to log
        self.connected = False
        self.writes = self.reads = self.disconnects = 0
        self.rejected_commands = self.rejected_latencies = 0
        self.last_error = ""
        self._reopen = Backoff(settings.reopen_backoff_min, settings.reopen_backoff_max)
        self._last_command_ns = now_ns
        self._neutral_sent = False
        self._latencies: Deque[float] = deque(maxlen=LATENCY_WINDOW)
        bus.retries = settings.retries
        bus.timeout_margin_s = settings.reply_timeout_margin_ms * 1e-3

    # --- start-up ----------------------------------------------------------------------------

    def start(self) -> None:
        """Open the port and configure every servo, moving slowly to neutral.

        BusError if the port cannot be opened, a servo is of another model than configured, or
        (with require_all_servos) a servo does not answer, after parking the servos started by then
        as shutdown does; without require_all_servos missing servos start stale.
        """
        warning = self.bus.open()
        if warning:
            self._event("warn", warning)
        self.connected = True
        silence = self._nobody_answers()
        if silence:
            if self.settings.require_all_servos:
                self.bus.close()
                raise BusError(silence)
            self._event("error", silence)
        problems: List[str] = []
        started: List[Servo] = []
        for h in self.health.values():
            try:
                self._start_servo(h)
                h.last_reply = self.clock()
                started.append(h.servo)
            except LinkError:
                self.bus.close()
                raise
            except ServoError as exc:
                if exc.model_mismatch or self.settings.require_all_servos:
                    problems.append(str(exc))
                else:
                    self._mark_stale(h, str(exc))
        if problems:  # nobody will drive the servos started: park them as a shutdown would
            with contextlib.suppress(LinkError):
                problems += self._park(started, started)
            self.bus.close()
            raise BusError("servo bus start-up failed: " + "; ".join(problems))

    def _nobody_answers(self) -> str:
        """One ping to every servo: '' if any answers, else what was tried and what to do."""
        for servo in self.bus.servos:
            try:
                self.bus.ping(servo)
                return ""
            except ServoError as exc:
                if not exc.no_reply:
                    return ""  # it answered, with an error: start-up names it
        port = self.bus.port_name
        return (f"no servo answers on {port} at {self.bus.link.baud} baud (pinged IDs "
                f"{id_ranges([s.id for s in self.bus.servos])}, {1 + self.bus.retries} tries each): check the power "
                f"and the cable, and the baud rate: `humimic-scan --port {port}` pings every ID at every baud rate")

    def _start_servo(self, h: ServoHealth) -> None:
        """_configure, started over after STARTUP_PAUSE_S while the servo's replies were only missing or
        corrupt, up to startup_attempts times: start-up is not time-critical, a stall is no fault."""
        for attempt in range(1, self.settings.startup_attempts + 1):
            try:
                self._configure(h)
                return
            except ServoError as exc:
                if not exc.no_reply or attempt == self.settings.startup_attempts:
                    raise
                self._event("warn", f"start-up attempt {attempt}: {exc}; starting this servo again")
                self.bus.sleep(STARTUP_PAUSE_S)

    # --- goals -------------------------------------------------------------------------------

    def command(self, names: Sequence[str], positions: Sequence[float], stamp_ns: int,
                now_ns: int) -> Optional[Written]:
        """Merge a (partial) joint command into the goals and write the setpoints to the active servos.

        Unknown names are ignored (reported in ``Written.unknown``); a non-finite position leaves
        that joint's goal unchanged. Only a command with a finite position for a known joint counts
        (feeds the watchdog); any other is counted in ``rejected_commands`` and raises ValueError
        saying why, as do names and positions of different lengths. None when nothing could be
        written (port lost, no servo active).
        """
        if len(names) != len(positions):
            self.rejected_commands += 1
            raise ValueError(f"joint command has {len(names)} names but {len(positions)} positions")
        known = [(n, float(v)) for n, v in zip(names, positions) if n in self.goals]
        unknown = [n for n in names if n not in self.goals]
        valid = [(n, v) for n, v in known if math.isfinite(v)]
        if not valid:
            self.rejected_commands += 1
            what = "no joints" if not names else ("no joint of this robot" if not known else "no finite position")
            raise ValueError(f"joint command with {what} (names: {', '.join(names[:5]) or 'none'}): not a command")
        for name, value in valid:
            self.goals[name] = self.bus.servo(name).clamp(value)
        self._last_command_ns = now_ns
        self._neutral_sent = False
        self.limiter.slower.clear()
        written = self._write_goals()
        if written is None:
            return None
        latency = (now_ns - stamp_ns) * 1e-9
        if LATENCY_RANGE_S[0] <= latency <= LATENCY_RANGE_S[1]:
            self._latencies.append(latency)
        else:
            self.rejected_latencies += 1
        return Written(written, unknown)

    def watchdog(self, now_ns: int) -> Optional[Dict[str, float]]:
        """Once per silence of command_timeout: goals back to neutral, glided to at neutral_velocity
        (``follow()`` continues the glide); the setpoints written, else None."""
        if self._neutral_sent or now_ns - self._last_command_ns <= self.settings.command_timeout * 1e9:
            return None
        self.goals = {s.joint: s.neutral for s in self.bus.servos}
        self.limiter.slower = {j: self.settings.neutral_velocity for j in self.goals}
        written = self._write_goals()
        self._neutral_sent = written is not None
        return written

    def follow(self) -> Optional[Dict[str, float]]:
        """Setpoints that have not reached their goals yet moved on and written (the state timer calls
        this); the setpoints written, else None (all there, or nothing written)."""
        targets = {j: self.target(j) for j, h in self.health.items() if h.mode == ACTIVE}
        if self.limiter.arrived(targets):
            self.limiter.advance(targets, self.clock())  # keeps its time current: no motion banked while idle
            return None
        return self._write_goals()

    def motion(self, joint: str) -> str:
        """How the temperature policy treats a joint: full, reduced xS, or neutral."""
        if not self.health[joint].hot or self.settings.hot_action == "none":
            return "full"
        return "neutral" if self.settings.hot_action == "neutral" else f"reduced x{self.settings.hot_motion_scale:g}"

    def target(self, joint: str) -> float:
        """The goal actually written for a joint: its commanded goal, after the temperature policy."""
        servo, goal = self.health[joint].servo, self.goals[joint]
        motion = self.motion(joint)
        if motion == "neutral":
            return servo.neutral
        if motion != "full":
            return servo.neutral + self.settings.hot_motion_scale * (goal - servo.neutral)
        return goal

    def _write_goals(self) -> Optional[Dict[str, float]]:
        if not self.connected:
            return None
        targets = {j: self.target(j) for j, h in self.health.items() if h.mode == ACTIVE}
        if not targets:
            return None
        try:
            self.limiter.advance(targets, self.clock())
            written = self.bus.write_goals(self.limiter.lead(targets, self.write_period_s))
        except LinkError as exc:
            self._lost(exc)
            return None
        self.writes += 1
        return written

    # --- reads ---------------------------------------------------------------------------------

    def read_state(self, budget_s: float = math.inf) -> Optional[Dict[str, ServoReading]]:
        """Present position, velocity and effort of the servos that answered (active and faulty ones),
        within ``budget_s`` seconds for retries; None while the port is lost."""
        if self._maintain_link():
            self._recover_due()
        if not self.connected:
            return None
        readable = [h.servo for h in self.health.values() if h.mode in (ACTIVE, FAULT)]
        if not readable:
            return {}
        try:
            states, result = self.bus.read_states(readable, self.settings.read_retries, self.clock() + budget_s)
        except LinkError as exc:
            self._lost(exc)
            return None
        now = self.clock()
        for servo in readable:
            h = self.health[servo.joint]
            h.record(result.failures.get(servo.id, 0), result.crc_errors.get(servo.id, 0), servo.joint in states, now)
            if servo.joint in states:
                h.position = states[servo.joint].position
            elif h.consecutive_failures >= MIN_FAILED_READS and now - h.last_reply >= self.settings.stale_after:
                self._mark_stale(h, f"no state reply for {now - h.last_reply:.2f} s ({h.consecutive_failures} reads)")
        self.reads += 1
        self._check_alerts(now)
        return states

    def poll_health(self) -> None:
        """Read voltage, temperature and hardware error of the answering servos; apply the temperature
        policy; end slow moves; re-ping stale servos, reboot faulty ones, when due."""
        self._maintain_link()
        if not self.connected:
            return
        try:
            self._read_health()
            self._finish_homing()
        except LinkError as exc:
            self._lost(exc)
        self._recover_due()

    def _recover_due(self) -> None:
        """One recovery step for every servo that is not active and whose retry is due."""
        try:
            for h in self.health.values():
                if self.connected and h.mode != ACTIVE and h.retry.is_due(self.clock()):
                    self._recover(h)
        except LinkError as exc:
            self._lost(exc)

    def _read_health(self) -> None:
        readable = [h.servo for h in self.health.values() if h.mode in (ACTIVE, FAULT)]
        if not readable:
            return
        health = self.bus.sync_read(HEALTH, readable, retries=0)
        errors = self.bus.sync_read(HARDWARE_ERROR, readable, retries=0)
        now = self.clock()
        changed = False
        for servo in readable:
            h = self.health[servo.joint]
            h.record(health.failures.get(servo.id, 0) + errors.failures.get(servo.id, 0),
                     health.crc_errors.get(servo.id, 0) + errors.crc_errors.get(servo.id, 0),
                     servo.id in health.data or servo.id in errors.data, now)
            if servo.id in health.data:
                h.voltage, h.temperature = decode_health(servo.spec, health.data[servo.id])
                changed |= self._update_hot(h)
            if servo.id in errors.data:
                bits = HARDWARE_ERROR.value(servo.spec, errors.data[servo.id], "hardware_error_status")
                if bits and h.mode == ACTIVE:
                    self._fault(h, bits, now)
                elif h.mode == FAULT:
                    h.hardware_error = bits or h.hardware_error
        if changed:
            self._write_goals()

    def _update_hot(self, h: ServoHealth) -> bool:
        """Enter / leave the temperature policy (with hysteresis); True when that changed."""
        warn = self.settings.temperature_warn
        hot = h.temperature >= warn or (h.hot and h.temperature > warn - HOT_HYSTERESIS_C)
        if hot == h.hot:
            return False
        h.hot = hot
        joint = h.servo.joint
        driven = "motion " + self.motion(joint) if h.mode == ACTIVE else f"not driven ({h.mode})"
        if hot:
            self._event("warn", f"{joint} at {h.temperature:.0f} C (>= {warn:g}): {driven}")
        else:
            self._event("info", f"{joint} cooled to {h.temperature:.0f} C: {driven}")
        return self.settings.hot_action != "none"

    def _check_alerts(self, now: float) -> None:
        """Servos whose status packets carried the hardware-alert bit: read their error status now."""
        alerts, self.bus.alerts = self.bus.alerts, set()
        for h in self.health.values():
            if h.servo.id in alerts and h.mode == ACTIVE:
                try:
                    bits = self.bus.read(h.servo, "hardware_error_status")
                except ServoError:
                    continue  # the next health poll reads it
                except LinkError as exc:
                    self._lost(exc)
                    return
                if bits:
                    self._fault(h, bits, now)

    def _finish_homing(self) -> None:
        """Servos moving slowly that arrived where they were sent, or at their current target, or ran
        out of time: back to their configured profile velocity."""
        now = self.clock()
        for h in self.health.values():
            if h.mode != ACTIVE or h.homing_until is None:
                continue
            there = any(arrived(h.servo, h.position, goal) for goal in (h.homing_goal, self.target(h.servo.joint)))
            if there or now >= h.homing_until:
                try:
                    self.bus.write(h.servo, "profile_velocity", velocity_units(h.servo, self._profile(h.servo)[0]))
                    h.homing_until = None
                except ServoError as exc:
                    self._comm_problem(h, exc)

    # --- faults and recovery -------------------------------------------------------------------

    def _fault(self, h: ServoHealth, bits: int, now: float) -> None:
        h.hardware_error = bits
        h.enter(FAULT, now, ", ".join(hardware_error_words(bits)))
        delay = self.settings.reboot_backoff * 2 ** h.reboots
        h.retry.reset(now, delay)
        if self.settings.reboot_on_hardware_error and h.reboots < self.settings.max_reboots:
            plan = f"reboot {h.reboots + 1} of {self.settings.max_reboots} in {delay:.1f} s"
            if self.too_hot(h):
                plan = (f"torque off by the servo; reboot {h.reboots + 1} of {self.settings.max_reboots} once it has "
                        f"cooled below {self.settings.cool_down_temperature:g} C")
        else:
            plan = "not rebooting (limit reached)" if self.settings.reboot_on_hardware_error else "automatic reboot off"
        self._event("error", f"{h.servo.joint} (ID {h.servo.id}): hardware error {h.problem}; {plan}")

    def too_hot(self, h: ServoHealth) -> bool:
        """An overheating error whose servo has not cooled below cool_down_temperature yet (or whose
        temperature is unknown)."""
        return bool(h.hardware_error & HW_OVERHEATING) and not h.temperature < self.settings.cool_down_temperature

    def _mark_stale(self, h: ServoHealth, problem: str) -> None:
        now = self.clock()
        h.enter(STALE, now, problem)
        h.retry.reset(now)
        self._event("warn", f"{h.servo.joint} (ID {h.servo.id}) stale: {problem}; re-pinging with backoff")

    def _recover(self, h: ServoHealth) -> None:
        """One recovery step for a servo that is not active (its retry is due)."""
        now = self.clock()
        if h.mode == FAULT:
            if self.settings.reboot_on_hardware_error and h.reboots < self.settings.max_reboots:
                if self.too_hot(h):  # a reboot would not hold: the servo would switch itself off again
                    h.retry.reset(now, COOLING_CHECK_S)
                    return
                try:
                    self.bus.reboot(h.servo)
                except ServoError as exc:
                    h.retry.failed(now)
                    self._comm_problem(h, exc)
                    return
                h.reboots += 1
                h.enter(REBOOTING, now, h.problem)
                h.retry.reset(now, REBOOT_WAIT_S)
                self._event("warn", f"{h.servo.joint} (ID {h.servo.id}): rebooted ({h.reboots} of "
                                    f"{self.settings.max_reboots}) to clear {h.problem}")
            else:
                h.retry.reset(now, math.inf)
            return
        try:
            bits = self.bus.read(h.servo, "hardware_error_status", retries=0)  # one try: likely still silent
            if bits:
                self._fault(h, bits, now)
                return
            self.bus.check_model(h.servo)
            if h.mode == STALE and self.bus.read(h.servo, "torque_enable"):
                resumed = "answering again, torque still on: resumed"
            else:
                self._configure(h)
                resumed = "restored: configured, torque on, moving slowly to its goal"
        except ServoError as exc:
            h.retry.failed(self.clock())
            h.problem = str(exc)
            return
        was = h.mode
        h.enter(ACTIVE, self.clock())
        h.hardware_error = 0
        self._event("info", f"{h.servo.joint} (ID {h.servo.id}) {was} -> active: {resumed}")
        self._write_goals()

    def _configure(self, h: ServoHealth) -> None:
        """Start-up sequence of one servo toward its current target: at the homing velocity when it is
        not there yet (until it arrives), else at its configured profile velocity."""
        servo, goal = h.servo, self.target(h.servo.joint)
        slow = not arrived(servo, self.bus.present_position(servo), goal)
        velocity, acceleration = self._profile(servo)
        self.bus.configure(servo, goal, min(self.settings.homing_velocity, velocity) if slow else velocity,
                           acceleration)
        self.limiter.reset(servo.joint, goal)
        h.homing_until, h.homing_goal = (self.clock() + self.settings.homing_timeout, goal) if slow else (None, goal)

    def _profile(self, servo: Servo) -> Tuple[float, float]:
        """(Profile Velocity, Profile Acceleration) the servo keeps to: its configured ones (0 = none),
        at most the joint's caps, so the firmware enforces the caps too."""
        cap = self.limiter.caps[servo.joint]
        return (min(servo.profile_velocity or math.inf, cap.velocity),
                min(servo.profile_acceleration or math.inf, cap.acceleration))

    def _comm_problem(self, h: ServoHealth, exc: BusError) -> None:
        h.problem = str(exc)
        self.last_error = str(exc)

    # --- the port -------------------------------------------------------------------------------

    def _lost(self, exc: BusError) -> None:
        self.connected = False
        self.disconnects += 1
        self.last_error = str(exc)
        self.bus.close()
        self._reopen.reset(self.clock())
        self._event("error", f"servo bus port lost: {exc}; reopening with backoff")

    def _maintain_link(self) -> bool:
        """While the port is lost, try to reopen it when due; on success every servo is due for a
        re-check (it may have lost power too). True when the port was just reopened."""
        now = self.clock()
        if self.connected or not self._reopen.is_due(now):
            return False
        try:
            warning = self.bus.open()
        except LinkError as exc:
            self.last_error = str(exc)
            self._reopen.failed(now)
            return False
        self.connected = True
        self._event("info", f"servo bus port {self.bus.port_name} reopened")
        if warning:
            self._event("warn", warning)
        for h in self.health.values():
            if h.mode in (ACTIVE, FAULT):
                h.enter(STALE, now, "port was lost")
            h.retry.reset(now, 0.0)
        return True

    # --- diagnostics and shutdown ---------------------------------------------------------------

    def diagnostics(self) -> List[Report]:
        """Bus report first, then one per servo."""
        now = self.clock()
        ordered = sorted(self._latencies)
        healths = list(self.health.values())
        values = {
            "writes": str(self.writes), "reads": str(self.reads),
            "comm_errors": str(sum(h.failures for h in healths)), "disconnects": str(self.disconnects),
            "latency_p50_ms": f"{percentile(ordered, 50) * 1e3:.2f}",
            "latency_p99_ms": f"{percentile(ordered, 99) * 1e3:.2f}",
            "latency_samples": str(len(ordered)), "latency_rejected": str(self.rejected_latencies),
            "rejected_commands": str(self.rejected_commands), "last_error": self.last_error,
        }
        reports = [bus_report(self.bus.port_name, self.bus.link.baud, self.connected, self.last_error, values,
                              healths)]
        reports += [servo_report(h, self.settings.thresholds, self.bus.port_name, self.goals[j], self.motion(j), now,
                                 self.settings.max_reboots if self.settings.reboot_on_hardware_error else 0,
                                 self.settings.cool_down_temperature if self.too_hot(h) else None)
                    for j, h in self.health.items()]
        return reports

    def shutdown(self) -> List[str]:
        """Slowly to neutral (waiting for arrival), then torque off if configured, then close; problems met."""
        problems = []
        self._reopen.due = 0.0
        if self._maintain_link():
            self._recover_due()
        if not self.connected:
            self.bus.close()
            return [f"servo bus port unavailable, servos left as they are: {self.last_error}"]
        active = [h.servo for h in self.health.values() if h.mode == ACTIVE]
        try:
            problems += self._park(active, self.bus.servos)
        except LinkError as exc:
            problems.append(f"servo bus port lost during shutdown: {exc}")
        self.bus.close()
        return problems

    def _park(self, active: Sequence[Servo], release: Sequence[Servo]) -> List[str]:
        """``active`` slowly to neutral (waiting for arrival), then torque off of ``release`` if
        torque_off_on_shutdown; problems met (LinkError when the port is lost)."""
        problems: List[str] = []
        for servo in active:
            self._try(problems, servo, "profile_velocity", velocity_units(servo, self.settings.homing_velocity))
        late = self.bus.move_to_neutral(active, self.settings.shutdown_timeout)
        if late:
            problems.append(f"joints did not reach neutral within {self.settings.shutdown_timeout} s: {', '.join(late)}")
        if self.settings.torque_off_on_shutdown:
            for servo in release:
                self._try(problems, servo, "torque_enable", 0)
        return problems

    def _try(self, problems: List[str], servo: Servo, register: str, value: int) -> None:
        try:
            self.bus.write(servo, register, value)
        except ServoError as exc:
            problems.append(str(exc))

    def _event(self, severity: str, message: str) -> None:
        self.events.append((severity, message))
