"""Stopping a child process as Ctrl-C would (used by the runner and by the emulated bus), and
real-time scheduling of a process (the driver)."""
from __future__ import annotations

import os
import signal
import subprocess
from typing import Optional

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


def realtime_priority(priority: int) -> Optional[str]:
    """Put every thread of this process (the executor's and the DDS threads) under SCHED_FIFO at
    ``priority`` (1-99), so a busy core does not make them wait behind other processes; None when
    done, else why not (no permission: CAP_SYS_NICE or an RLIMIT_RTPRIO; not Linux)."""
    if not 1 <= priority <= 99:
        raise ValueError(f"real-time priority must be 1-99, got {priority}")
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
        for tid in threads:
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
    except (AttributeError, OSError) as exc:  # no sched_setscheduler, no /proc, EPERM
        return f"{type(exc).__name__}: {exc}"
    return None
