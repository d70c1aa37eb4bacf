"""Job functions for the process-pool tests (importable by spawned workers)."""

from __future__ import annotations

import os
import signal
import time

from rewardsmith.executors import report_progress


def square(x: int) -> int:
    return x * x


def die(code: int) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def fail() -> None:
    raise ValueError("job went wrong")


def chatty(n: int) -> int:
    for i in range(n):
        report_progress({"step": i})
        time.sleep(0.01)
    return n


def pid() -> int:
    return os.getpid()
