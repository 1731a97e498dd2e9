"""humimic-calibrate: jog one servo at a time on the bus, record min / neutral / max, save to the YAML.

    humimic-calibrate [--robot-config FILE] [--port /dev/ttyUSB0] [--baud 1000000]

Talks to the servos directly (humimic_driver.bus): stop the driver node first. Commands are read
line by line from the terminal (or a script on stdin); ``help`` lists them. Selecting a joint
torques its servo on where it stands, with the jog range (up to ``--reach`` rad beyond the
configured limits) in the servo's own limit registers and ``--speed`` as its profile velocity;
the driver writes the configured limits back at its next start-up. ``save`` writes the recorded
values into the robot config, changing nothing else in the file. On exit the joints that were
moved go back to their (new) neutral.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set, TextIO

from humimic_core.paths import config_file
from humimic_core.robot_config import ConfigError, load_robot_config
from humimic_driver.bus import BusError, ServoBus, arrived
from humimic_retarget.offline.calibration import FIELDS, Calibration
from humimic_retarget.offline.calibration_yaml import write_servo_fields

HELP = """commands:
  list                   joints with ID, configured and recorded values
  select JOINT|ID        jog this joint's servo from now on
  + [N] / - [N]          jog by N steps (default 1); ++ / -- jog 10 steps
  step RAD               the jog step (rad)
  goto RAD               move the joint to an angle
  where                  the joint's present angle
  min | neutral | max    record the present angle as the joint's min / neutral / max
  save                   write the recorded values into the robot config
  quit                   leave (quit! leaves with unsaved values)"""
#: Poll period (s) while waiting for a move, and the time allowed beyond distance / speed.
POLL_PERIOD = 0.02
#: s added to every reply deadline: a person jogs, nothing here is timed, so a busy computer (or a
#: slow USB adapter) must not turn a late reply into "no answer" (the driver's margin is 10 ms)
REPLY_MARGIN_S = 0.1
ARRIVE_MARGIN = 2.0


class CalibrationTool:
    def __init__(self, calibration: Calibration, bus: ServoBus, path: Path, out: TextIO,
                 speed: float, step: float) -> None:
        self.calibration, self.bus, self.path, self.out = calibration, bus, path, out
        self.speed, self.step = speed, step
        self.joint: Optional[str] = None
        self.servos = {s.joint: s for s in bus.servos}
        self.configured: Set[str] = set()
        self.moved: Set[str] = set()
        self.unsaved: Set[str] = set()
        self.commands: Dict[str, Callable[[List[str]], Optional[bool]]] = {
            "help": lambda a: self.say(HELP), "list": self.list, "select": self.select, "step": self.set_step,
            "+": lambda a: self.jog(1, a), "-": lambda a: self.jog(-1, a),
            "++": lambda a: self.jog(10, a), "--": lambda a: self.jog(-10, a),
            "goto": self.goto, "where": lambda a: self.where(), "save": lambda a: self.save(),
            "quit": lambda a: self.quit(False), "quit!": lambda a: self.quit(True),
            **{f: (lambda a, f=f: self.record(f)) for f in FIELDS},
        }

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def execute(self, line: str) -> bool:
        """Run one command line; False once the tool should stop."""
        words = line.split()
        if not words:
            return True
        command = self.commands.get(words[0])
        if command is None:
            self.say(f"? unknown command {words[0]!r} (help lists them)")
            return True
        try:
            return command(words[1:]) is not False
        except ValueError as exc:
            self.say(f"? {exc}")
        except BusError as exc:
            self.say(f"! bus error: {exc}")
        return True

    def present(self) -> float:
        return self.bus.present_position(self.servos[self.need_joint()])

    def need_joint(self) -> str:
        if self.joint is None:
            raise ValueError("select a joint first")
        return self.joint

    def list(self, args: List[str]) -> None:
        for s in self.calibration.config.servos:
            v = self.calibration.values(s.joint)
            mark = "*" if s.joint in self.calibration.recorded else " "
            self.say(f"{mark} {s.joint:<20} ID {s.id:>3}  min {v['min']:8.4f}  neutral {v['neutral']:8.4f}  "
                     f"max {v['max']:8.4f}")

    def select(self, args: List[str]) -> None:
        if len(args) != 1:
            raise ValueError("select JOINT or ID")
        by_id = {str(s.id): s.joint for s in self.calibration.config.servos}
        joint = by_id.get(args[0], args[0])
        if joint not in self.servos:
            raise ValueError(f"no joint or servo ID {args[0]!r} (list shows them)")
        jog = self.calibration.jog_servo(joint)
        if joint not in self.configured:
            self.bus.configure(jog, self.bus.present_position(jog), self.speed)
            self.configured.add(joint)
        self.joint = joint
        self.say(f"{joint} (ID {jog.id}): jog range [{jog.min:.4f}, {jog.max:.4f}] rad")
        self.where()

    def set_step(self, args: List[str]) -> None:
        step = float(args[0]) if len(args) == 1 else math.nan
        if not (math.isfinite(step) and 0 < step <= 0.5):
            raise ValueError("step RAD with 0 < RAD <= 0.5")
        self.step = step
        self.say(f"step {step:.4f} rad")

    def jog(self, steps: int, args: List[str]) -> None:
        count = int(args[0]) if args else 1
        self.move(self.present() + steps * count * self.step)

    def goto(self, args: List[str]) -> None:
        if len(args) != 1:
            raise ValueError("goto RAD")
        self.move(float(args[0]))

    def move(self, target: float) -> None:
        """Move the joint to ``target`` (at the jog speed, within its jog range) and wait for it."""
        joint = self.need_joint()
        jog = self.calibration.jog_servo(joint)
        if not math.isfinite(target):
            raise ValueError(f"not an angle: {target}")
        if not jog.min <= target <= jog.max:
            self.say(f"{target:.4f} is outside the jog range [{jog.min:.4f}, {jog.max:.4f}]: stopping at the end")
            target = jog.clamp(target)
        deadline = time.monotonic() + abs(target - self.present()) / self.speed + ARRIVE_MARGIN
        goal = self.bus.write_goals({joint: target})[joint]
        self.moved.add(joint)
        before = math.nan
        while True:  # until it stands still near the goal
            time.sleep(POLL_PERIOD)
            now = self.present()
            if now == before and arrived(self.bus.servo(joint), now, goal):
                break
            if time.monotonic() > deadline:
                self.say(f"{joint} did not settle at {goal:.4f} rad (blocked?)")
                break
            before = now
        self.where()

    def where(self) -> None:
        joint = self.need_joint()
        angle = self.present()
        servo = self.calibration.config.servo(joint)
        note = "" if servo.min <= angle <= servo.max else f"  (outside the configured [{servo.min}, {servo.max}])"
        self.say(f"{joint} at {angle:.4f} rad{note}")

    def record(self, field: str) -> None:
        joint = self.need_joint()
        self.calibration.record(joint, field, self.present())
        self.unsaved.add(joint)
        self.say(f"{joint} {field} = {self.calibration.recorded[joint][field]:.4f} rad (recorded)")

    def save(self) -> None:
        problems = [p for p in map(self.calibration.problem, sorted(self.unsaved)) if p]
        if problems:
            raise ValueError("not saved: " + "; ".join(problems))
        if not self.unsaved:
            self.say("nothing recorded to save")
            return
        try:
            write_servo_fields(self.path, {j: self.calibration.recorded[j] for j in sorted(self.unsaved)})
        except ConfigError as exc:
            raise ValueError(f"not saved: {exc}") from None
        self.say(f"saved {', '.join(sorted(self.unsaved))} into {self.path} (regenerate the URDF: humimic-urdf)")
        self.unsaved.clear()

    def quit(self, discard: bool) -> bool:
        if self.unsaved and not discard:
            self.say(f"unsaved values for {', '.join(sorted(self.unsaved))}: save, or quit! to discard them")
            return True
        return False

    def park(self) -> None:
        """Moved joints back to their (recorded or configured) neutral."""
        goals = {j: self.calibration.values(j)["neutral"] for j in sorted(self.moved)}
        if goals:
            self.bus.write_goals(goals)
            self.say(f"parked {', '.join(goals)} at neutral")


def read_line() -> Optional[str]:
    """The next command line (a prompt with line editing on a terminal), None at end of input."""
    if not sys.stdin.isatty():
        return sys.stdin.readline() or None
    import readline  # noqa: F401  (imported for its effect: line editing and history in input())
    try:
        return input("calibrate> ")
    except EOFError:
        return None


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="humimic-calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("--robot-config", default=None, help="robot config YAML to calibrate (default: the package's)")
    parser.add_argument("--port", default=None, help="serial port (default: bus.port of the robot config)")
    parser.add_argument("--baud", type=int, default=None, help="baud rate (default: bus.baud_rate of the robot config)")
    parser.add_argument("--reach", type=float, default=0.5, help="rad a joint may go beyond its configured limits")
    parser.add_argument("--speed", type=float, default=0.5, help="rad/s of jog moves")
    parser.add_argument("--step", type=float, default=0.02, help="initial jog step (rad)")
    args = parser.parse_args(argv)
    path = Path(args.robot_config or config_file("robot_face.yaml"))
    try:
        config = load_robot_config(path)
        calibration = Calibration(config, args.reach)
        if not (math.isfinite(args.speed) and args.speed > 0):
            raise ValueError(f"--speed must be > 0 rad/s, got {args.speed}")
        bus = ServoBus(calibration.jog_servos(), dataclasses.replace(
            config.bus, port=args.port or config.bus.port, baud_rate=args.baud or config.bus.baud_rate),
            timeout_margin_s=REPLY_MARGIN_S)
        warning = bus.open()
    except (ConfigError, ValueError, BusError) as exc:
        print(f"humimic-calibrate: {exc}", file=sys.stderr)
        return 2
    with bus:
        tool = CalibrationTool(calibration, bus, path, sys.stdout, args.speed, args.step)
        if warning:
            tool.say(f"warning: {warning}")
        tool.say(f"calibrating {config.name} ({len(config.servos)} servos on {bus.port_name}); help lists the commands")
        while True:
            line = read_line()
            if line is None:
                if tool.unsaved:
                    tool.say(f"end of input: unsaved values for {', '.join(sorted(tool.unsaved))} discarded")
                break
            if not tool.execute(line):
                break
        try:
            tool.park()
        except BusError as exc:
            tool.say(f"! bus error while parking: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
