"""The process pool: parallel jobs, progress reports, and a dying worker failing only its own job."""

from __future__ import annotations

import time

import pytest

from rewardsmith.executors import JobFailed, ProcessPool, WorkerDied
from tests import helpers_jobs as jobs


def test_jobs_run_in_parallel_processes_and_return_results():
    with ProcessPool(2) as pool:
        futures = [pool.submit(jobs.square, i) for i in range(6)]
        assert [f.result(timeout=60) for f in futures] == [0, 1, 4, 9, 16, 25]
        pids = {pool.submit(jobs.pid).result(timeout=60) for _ in range(4)}
        assert 1 <= len(pids) <= 2


def test_a_killed_worker_fails_only_its_job_and_is_replaced():
    with ProcessPool(2) as pool:
        doomed = pool.submit(jobs.die, 9)
        others = [pool.submit(jobs.square, i) for i in range(4)]
        with pytest.raises(WorkerDied, match="SIGKILL"):
            doomed.result(timeout=60)
        assert [f.result(timeout=60) for f in others] == [0, 1, 4, 9]
        assert pool.submit(jobs.square, 7).result(timeout=60) == 49


def test_a_raising_job_reports_the_remote_traceback():
    with ProcessPool(1) as pool:
        future = pool.submit(jobs.fail)
        with pytest.raises(JobFailed, match="ValueError: job went wrong") as info:
            future.result(timeout=60)
        assert "helpers_jobs.py" in info.value.remote_traceback


def test_progress_reports_arrive_on_the_callers_thread():
    with ProcessPool(1) as pool:
        future = pool.submit(jobs.chatty, 5)
        assert future.result(timeout=60) == 5
        time.sleep(0.2)
        reports = [data for fut, data in pool.drain_progress() if fut is future]
        assert [r["step"] for r in reports] == [0, 1, 2, 3, 4]


def test_shutdown_without_waiting_kills_running_jobs():
    pool = ProcessPool(1)
    slow = pool.submit(jobs.chatty, 10_000)  # about 100 s
    time.sleep(3)  # let the worker start the job
    started = time.monotonic()
    pool.shutdown(wait=False)
    assert time.monotonic() - started < 10
    with pytest.raises(WorkerDied):
        slow.result(timeout=10)
