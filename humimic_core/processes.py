"""Stopping a child process as Ctrl-C would: used by the runner and by the emulated bus."""
from __future__ import annotations

import signal
import subprocess

#: Seconds a process gets to exit after SIGINT before SIGTERM, then SIGKILL.
STOP_GRACE = 8.0


def interrupt(proc: subprocess.Popen, grace: float = STOP_GRACE) -> int:
    """Stop a process as Ctrl-C would (SIGINT: nodes leave hardware safe), then SIGTERM and SIGKILL
    if it has not exited after ``grace`` and 2 more seconds; its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.terminate()
        try:
            return proc.wait(2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()
