"""Where trainings run: a pool of spawned worker processes, one job each at a time.

A worker that dies (a segfault, the OOM killer, ``kill -9``) fails only the job it was running,
with the reason; the pool starts a replacement and goes on. Jobs may report progress while they
run; those reports arrive on the caller's thread through :meth:`ProcessPool.drain_progress`.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

from rewardsmith.errors import UsageError

__all__ = ["EXECUTORS", "Executor", "JobFailed", "ProcessPool", "WorkerDied", "default_workers", "drain",
           "make_executor"]

EXECUTORS = ("local", "ray")


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class WorkerDied(Exception):
    """The process running a job died before it answered."""


class JobFailed(Exception):
    """A job raised; ``remote_traceback`` holds the worker's traceback."""

    def __init__(self, message: str, remote_traceback: str) -> None:
        super().__init__(message)
        self.remote_traceback = remote_traceback


class Executor(Protocol):
    """What the search needs of an executor (:class:`ProcessPool`, ``RayExecutor``)."""

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future: ...

    def drain_progress(self) -> list[tuple[Future, Any]]: ...

    def shutdown(self, wait: bool = True) -> None: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None: ...


def make_executor(kind: str, workers: int, address: str | None = None, device: str = "auto") -> Executor:
    """The executor a search runs its jobs on: ``local`` (a :class:`ProcessPool`) or ``ray``.

    ``address`` names a Ray cluster (``auto``, ``HOST:PORT``, ``ray://…``); None with ``ray`` starts a
    local Ray instance for the run. Ray is imported only here, only for ``ray``.
    """
    if kind == "local":
        return ProcessPool(workers)
    if kind == "ray":
        try:
            from rewardsmith.ray_executor import RayExecutor
        except ImportError as exc:
            raise UsageError(f"--executor ray needs Ray: pip install 'rewardsmith[ray]' ({exc})") from None
        return RayExecutor(workers, address, device)
    raise UsageError(f"--executor must be one of {', '.join(EXECUTORS)}, got {kind!r}")


def drain(reports: queue.Queue) -> list[Any]:
    """Everything ``reports`` holds now, without waiting (an executor's progress reports)."""
    items = []
    while True:
        try:
            items.append(reports.get_nowait())
        except queue.Empty:
            return items


def limit_threads(threads: int) -> None:
    """Give this worker process ``threads`` torch/OpenMP threads (every executor's workers alike)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass


_progress_conn: Connection | None = None
_progress_job: int | None = None
_progress_sink: Callable[[Any], None] | None = None


def set_progress_sink(sink: Callable[[Any], None] | None) -> None:
    """Route this process's :func:`report_progress` calls to ``sink`` (another executor's queue)."""
    global _progress_sink
    _progress_sink = sink


def report_progress(data: Any) -> None:
    """Called inside a job: send ``data`` to the parent's progress queue (no-op outside a pool)."""
    if _progress_sink is not None:
        _progress_sink(data)
        return
    if _progress_conn is not None and _progress_job is not None:
        try:
            _progress_conn.send(("progress", _progress_job, data))
        except (OSError, ValueError):
            pass


def _serve(conn: Connection, threads: int) -> None:
    global _progress_conn, _progress_job
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    limit_threads(threads)
    _progress_conn = conn
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        job_id, fn, args, kwargs = message
        _progress_job = job_id
        try:
            result = fn(*args, **kwargs)
            conn.send(("done", job_id, result))
        except BaseException as exc:  # noqa: BLE001 - report everything, keep serving
            conn.send(("error", job_id, (f"{type(exc).__name__}: {exc}", traceback.format_exc())))
        finally:
            _progress_job = None


@dataclass
class _Worker:
    process: Any
    conn: Connection
    job: int | None = None


@dataclass
class _Job:
    id: int
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: Future = field(default_factory=Future)


class ProcessPool:
    """``workers`` spawned processes with ``threads`` torch threads each."""

    def __init__(self, workers: int, threads: int = 1) -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self.size = workers
        self.threads = threads
        self._ctx = mp.get_context("spawn")
        self._workers: list[_Worker] = []
        self._queue: list[_Job] = []
        self._jobs: dict[int, _Job] = {}
        self._next_id = 0
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = self._ctx.Pipe(duplex=False)
        self._progress: queue.Queue[tuple[Future, Any]] = queue.Queue()
        self._closed = False
        self._start_workers_ignoring_ctrl_c()
        self._thread = threading.Thread(target=self._dispatch, name="rewardsmith-pool", daemon=True)
        self._thread.start()

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self.shutdown(wait=kind is None)

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool is shut down")
            job = _Job(self._next_id, fn, args, kwargs)
            self._next_id += 1
            self._queue.append(job)
            self._jobs[job.id] = job
        self._wake_w.send(None)
        return job.future

    def drain_progress(self) -> list[tuple[Future, Any]]:
        """Progress reports received so far, as (future of the job, data)."""
        return drain(self._progress)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the pool; with ``wait=False`` running jobs are killed at once (Ctrl-C, errors)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for job in self._queue:
                job.future.cancel()
            self._queue.clear()
            if not wait:
                for worker in self._workers:
                    if worker.job is not None:
                        worker.process.kill()
        self._wake_w.send(None)
        self._thread.join(timeout=None if wait else 10)
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except (OSError, ValueError):
                pass
        for worker in self._workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        self._workers.clear()

    # -- the dispatcher thread -----------------------------------------------------------------

    def _start_workers_ignoring_ctrl_c(self) -> None:
        """Start every worker now, each inheriting an ignored SIGINT.

        A terminal's Ctrl-C goes to the whole process group; a worker that is still importing (before
        :func:`_serve` ignores SIGINT) would die of it with a traceback. Only the main thread may change
        signal handlers, so a pool made elsewhere starts its workers as jobs arrive, as replacements do.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for _ in range(self.size):
                self._start_worker()
        finally:
            signal.signal(signal.SIGINT, previous)

    def _start_worker(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(target=_serve, args=(child, self.threads), daemon=True)
        process.start()
        child.close()
        worker = _Worker(process, parent)
        self._workers.append(worker)
        return worker

    def _assign(self) -> None:
        with self._lock:
            while self._queue:
                idle = next((w for w in self._workers if w.job is None), None)
                if idle is None and len(self._workers) < self.size:
                    idle = self._start_worker()
                if idle is None:
                    return
                job = self._queue.pop(0)
                if not job.future.set_running_or_notify_cancel():
                    continue
                idle.job = job.id
                try:
                    idle.conn.send((job.id, job.fn, job.args, job.kwargs))
                except Exception as exc:  # noqa: BLE001 - an unpicklable job fails alone
                    idle.job = None
                    job.future.set_exception(exc)

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                if self._closed and all(w.job is None for w in self._workers):
                    return
            self._assign()
            waitables: list[Any] = [self._wake_r]
            for worker in self._workers:
                waitables.extend([worker.conn, worker.process.sentinel])
            for ready in wait(waitables, timeout=1.0):
                if ready is self._wake_r:
                    while self._wake_r.poll():
                        self._wake_r.recv()
                    continue
                worker = next((w for w in self._workers if ready in (w.conn, w.process.sentinel)), None)
                if worker is not None:
                    self._handle(worker, ready)

    def _handle(self, worker: _Worker, ready: Any) -> None:
        if ready is worker.conn:
            try:
                kind, job_id, payload = worker.conn.recv()
            except (EOFError, OSError):
                ready = worker.process.sentinel
            else:
                if kind == "progress":
                    job = self._jobs.get(job_id)
                    if job is not None:
                        self._progress.put((job.future, payload))
                    return
                job = self._jobs.pop(job_id, None)
                worker.job = None
                if job is not None:
                    if kind == "done":
                        job.future.set_result(payload)
                    else:
                        job.future.set_exception(JobFailed(*payload))
                return
        if ready is worker.process.sentinel:
            worker.process.join(timeout=1)
            code = worker.process.exitcode
            self._workers.remove(worker)
            if worker.job is not None:
                job = self._jobs.pop(worker.job, None)
                if job is not None:
                    job.future.set_exception(WorkerDied(_death(code)))


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"the training process was killed by {name}{hint}"
    return f"the training process exited with status {code}"
