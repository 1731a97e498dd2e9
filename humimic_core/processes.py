"""Stopping a child process as Ctrl-C would (used by the runner and by the emulated bus), and
real-time scheduling of a process (the driver, the retarget node) and its parameter."""
from __future__ import annotations

import os
import signal
import subprocess
from typing import Optional

from humimic_core.settings import setting

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


def realtime_priority_setting(default: int, threads: str) -> int:
    """A node's ``realtime_priority`` parameter (0-99, read at start): the SCHED_FIFO priority of
    ``threads`` (in words: whose, and why), applied by ros_util.use_realtime_priority."""
    return setting(default, f"SCHED_FIFO priority (1-99) of {threads}; 0 = normal scheduling. Without the "
                            "permission (CAP_SYS_NICE, RLIMIT_RTPRIO) it runs normally", (0, 99))


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
