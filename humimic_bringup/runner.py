"""Start the imitation pipeline without ROS launch: the processes of humimic_bringup.graph, each a
separate OS process with the same parameter files `imitate.launch.py` uses.

Processes of other ROS packages (robot_state_publisher, rviz2) are started when installed (a
sourced ROS install) and skipped with a note otherwise. Shutdown goes
downstream-last: camera and perception stop first, the driver moves to neutral and disables
torque while the emulated bus still answers, the bus stops last.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from humimic_bringup.graph import (
    LAUNCH_ARGUMENTS,
    InputError,
    ProcessSpec,
    imitation_graph,
    installed,
    not_installed,
    process_environment,
    validate_inputs,
)
from humimic_core.processes import STOP_GRACE, interrupt
from humimic_core.topics import (ACTION_UNITS, CAMERA_IMAGE, JOINT_COMMANDS, JOINT_STATES, TOPICS, WRITTEN_GOALS,
                                 absolute, resolve)

#: Seconds the driver waits for the emulator's port to appear.
PORT_WAIT = 10.0
#: Seconds the camera waits for the other nodes' topics to be discovered, then for matching.
GRAPH_WAIT, GRAPH_SETTLE = 30.0, 1.0
#: Exit code of a run stopped by Ctrl-C (128 + SIGINT, as the shell reports an interrupted program).
INTERRUPTED = 128 + signal.SIGINT
#: Exit code of a run refused before start (bad argument, file, config, source or port).
BAD_INPUT = 2
#: node -> topics it publishes that the camera's first frame must reach
PUBLISHES = {"face_perception": (ACTION_UNITS,), "retarget": (JOINT_COMMANDS,),
             "dynamixel_driver": (JOINT_STATES, WRITTEN_GOALS)}


def ros_parameter_value(value) -> str:
    """A value as `-p name:=value` expects it (YAML); strings are quoted so "0" stays a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def command(spec: ProcessSpec) -> Optional[List[str]]:
    """The command line of a process spec (or of its fallback), or None when neither is installed here."""
    spec = installed(spec)
    if spec is None:
        return None
    if spec.package == "humimic":
        cmd = [sys.executable, "-u", "-m", spec.module, *spec.arguments]
    elif spec.ros_node:
        from ament_index_python.packages import get_package_prefix

        cmd = [str(Path(get_package_prefix(spec.package)) / "lib" / spec.package / spec.executable), *spec.arguments]
    else:
        cmd = [str(shutil.which(spec.executable)), *spec.arguments]
    if spec.ros_node:
        cmd += ["--ros-args", "-r", f"__node:={spec.name}"]
        if spec.namespace:
            cmd += ["-r", f"__ns:=/{spec.namespace}"]
        for source, target in spec.remappings:
            cmd += ["-r", f"{source}:={target}"]
        if spec.params_file:
            cmd += ["--params-file", spec.params_file]
        for name, value in spec.parameters.items():
            cmd += ["-p", f"{name}:={ros_parameter_value(value)}"]
    return cmd


class Pipeline:
    """The running processes of a graph; a context manager that always stops them."""

    def __init__(self, specs: Sequence[ProcessSpec], log_dir: Optional[Path] = None,
                 env: Optional[Mapping[str, str]] = None) -> None:
        self.specs = list(specs)
        self.log_dir = log_dir
        self.env = process_environment(os.environ if env is None else env)
        self.processes: Dict[str, subprocess.Popen] = {}
        self.skipped: List[str] = []

    def start(self, skip: Sequence[str] = ()) -> "Pipeline":
        """Start every process not yet started, except those named in `skip`; the camera last,
        once the other nodes' topics are discovered, so its first frame reaches every stage."""
        pending = [s for s in self.specs if s.name not in skip and s.name not in self.processes
                   and s.name not in self.skipped]
        for spec in pending:
            if spec.name != "camera":
                self._start(spec)
        camera = next((s for s in pending if s.name == "camera"), None)
        if camera is not None:
            self._wait_for_graph()
            self.wait_for_recorder()
            self._start(camera)
        return self

    def wait_for_recorder(self, timeout: float = GRAPH_WAIT) -> bool:
        """Whether humimic's recorder, where it is the one running, has seen a publisher of each topic it
        records that the running nodes publish (PUBLISHES) under the name it subscribes to, within
        ``timeout`` s: it logs '<topic>: publisher seen', and what a node publishes before that is not
        recorded (a busy machine took 1.3 s longer for the retarget node's). True at once for another
        recorder (ros2 bag record logs no such line)."""
        spec = next((s for s in self.specs if s.name == "recorder"), None)
        running = installed(spec) if spec is not None and "recorder" in self.processes else None
        if running is None or running.package != "humimic" or self.log_dir is None:
            return True
        from humimic_experiments.record_node import PUBLISHER_SEEN  # rclpy: only when a recorder runs

        topics = running.parameters.get("topics") or list(TOPICS)
        rules = {s.name: s.remappings for s in self.specs}
        awaited = [f"{absolute(t)}: {PUBLISHER_SEEN}" for name in self.processes for t in PUBLISHES.get(name, ())
                   if absolute(t) in topics  # and on the name the recorder subscribes to
                   and resolve(t, rules[name], name) == resolve(t, rules["recorder"], "recorder")]
        return self.wait_for_lines("recorder", awaited, timeout)

    def wait_for_lines(self, name: str, lines: Sequence[str], timeout: float) -> bool:
        """Whether every one of ``lines`` appears in process ``name``'s log within ``timeout`` s (False at
        once when a process fails)."""
        log = (self.log_dir or Path()) / f"{name}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.failed():
            text = log.read_text(errors="replace") if log.is_file() else ""
            if all(line in text for line in lines):
                return True
            time.sleep(0.1)
        return False

    def _wait_for_graph(self) -> None:
        """Wait until the running nodes' publishers and subscribers are discovered."""
        names = set(self.processes)
        rules = {s.name: s.remappings for s in self.specs}
        publishers = [resolve(t, rules[n], n) for n in names for t in PUBLISHES.get(n, ())]
        image = resolve(CAMERA_IMAGE, rules.get("camera", []), "camera")
        subscribers = {image: ("face_perception" in names) + ("recorder" in names)}
        if "recorder" in names:
            subscribers.update({t: 1 for t in publishers})
        if not publishers and not any(subscribers.values()):
            return
        import rclpy
        from rclpy.context import Context

        context = Context()
        rclpy.init(context=context)
        node = rclpy.create_node("humimic_runner_probe", context=context)
        try:
            deadline = time.monotonic() + GRAPH_WAIT
            while not (all(node.count_publishers(t) for t in publishers) and
                       all(node.count_subscribers(t) >= n for t, n in subscribers.items())):
                if self.failed() or time.monotonic() > deadline:
                    return
                time.sleep(0.1)
            time.sleep(GRAPH_SETTLE)
        finally:
            node.destroy_node()
            rclpy.shutdown(context=context)

    def _start(self, spec: ProcessSpec) -> None:
        cmd = command(spec)
        if cmd is None:
            self.skipped.append(spec.name)
            print(f"humimic-run: {not_installed(spec, launch=False)}", file=sys.stderr)
            return
        if spec.name == "dynamixel_driver":
            self._wait_for_emulator()
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{spec.name}.log", "wb")
        self.processes[spec.name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if out else None,
                                                     env=self.env, start_new_session=True)

    def _wait_for_emulator(self) -> None:
        emulator = next((s for s in self.specs if s.name == "servo_emulator"), None)
        if emulator is None or "servo_emulator" not in self.processes:
            return
        port = Path(emulator.arguments[emulator.arguments.index("--link") + 1])
        deadline = time.monotonic() + PORT_WAIT
        while not port.exists():
            if self.processes["servo_emulator"].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the emulated servo bus did not come up at {port} (see its log)")
            time.sleep(0.05)

    def __enter__(self) -> "Pipeline":
        try:
            return self.start()
        except BaseException:  # Ctrl-C or a failure half-way: stop what did start
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def failed(self) -> Dict[str, int]:
        """Processes that exited with a non-zero code, by name."""
        return {n: p.returncode for n, p in self.processes.items() if p.poll() not in (None, 0)}

    def wait(self, name: str, timeout: Optional[float] = None) -> Optional[int]:
        """Wait for one process to exit; its exit code, or None on timeout."""
        try:
            return self.processes[name].wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> Dict[str, int]:
        """Stop every process, most downstream-safe order; returns the exit codes. A further
        Ctrl-C meanwhile is ignored, so no process is left running."""
        order = [s.name for s in reversed(self.specs) if s.name in self.processes]
        # the recorder keeps recording the shutdown; the emulated bus goes last, after the driver
        # has made the servos safe
        order.sort(key=lambda n: {"recorder": 1, "servo_emulator": 2}.get(n, 0))
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            for name in order:
                interrupt(self.processes[name], STOP_GRACE)
        finally:
            if main:
                signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
        return {n: p.returncode for n, p in self.processes.items()}


def argument_parser(description: str) -> argparse.ArgumentParser:
    """An argparse parser with one option per launch argument (--video, --serial-port, ...)."""
    parser = argparse.ArgumentParser(description=description)
    for name, (default, help_text) in LAUNCH_ARGUMENTS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=default, help=help_text)
    return parser


def launch_values(namespace: argparse.Namespace) -> Dict[str, str]:
    return {name: getattr(namespace, name) for name in LAUNCH_ARGUMENTS}


def preflight(values: Mapping[str, str], prog: str) -> int:
    """0 when every input is usable (graph.validate_inputs), else BAD_INPUT after one line saying why."""
    try:
        validate_inputs(values)
    except InputError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return BAD_INPUT
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argument_parser("Run the humimic imitation pipeline as separate processes (no ROS launch needed).")
    parser.add_argument("--log-dir", default=None, help="write each process's output to DIR/<name>.log")
    args = parser.parse_args(argv)
    values = launch_values(args)
    error = preflight(values, "humimic-run")
    if error:
        return error
    specs = imitation_graph(values)
    pipeline = Pipeline(specs, Path(args.log_dir) if args.log_dir else None)
    interrupted = False
    try:
        with pipeline:
            print(f"humimic-run: started {', '.join(pipeline.processes)}; Ctrl-C stops", flush=True)
            camera = pipeline.processes.get("camera")
            while not pipeline.failed() and (camera is None or camera.poll() is None):
                time.sleep(0.2)
    except KeyboardInterrupt:
        interrupted = True
    failed = pipeline.failed()
    for name, code in failed.items():
        print(f"humimic-run: {name} exited with code {code}", file=sys.stderr)
    if interrupted:
        print(f"humimic-run: interrupted; stopped {', '.join(pipeline.processes) or 'nothing'}", file=sys.stderr)
        return INTERRUPTED
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
