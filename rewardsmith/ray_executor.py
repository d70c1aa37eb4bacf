"""Where trainings run with ``--executor ray``: Ray tasks on a cluster, or on a local Ray instance.

Same interface as :class:`rewardsmith.executors.ProcessPool`: ``submit(fn, *args) -> Future``,
``drain_progress()``, a context manager; a job that raises fails as :class:`JobFailed`, a job whose
worker or node is lost as :class:`WorkerDied`.

Files: a job is given :class:`~rewardsmith.runs.CandidatePaths` on the machine running the CLI,
which a worker elsewhere cannot reach. Each such argument is redirected to a worker-local temporary
folder that starts with a copy of the candidate's files (the media job reads ``policy.zip``); the
files the job writes or changes there travel back with its result, and the driver writes them into
the run directory. Paths in the result that point into the temporary folder are rewritten to the
run directory's.

Progress: jobs push reports into an actor pinned to the driver's node (the node the CLI's Ray client
is attached to, which the run cannot outlive anyway), so losing any other node never loses it. Progress
is advisory: a report that cannot be delivered is dropped and never fails the job.

Warm-up: Ray starts a worker process when a task first needs one, and that worker then imports the
training stack; for two first trainings that took 8-12 s on a loaded 2-core machine. The process pool
starts its workers when it is made, so they are ready by the time the designer and critic are done. The
executor does the same: one warm-up task per worker as soon as Ray is up (start the worker, import what a
training imports), never waited for; a later job reuses the warm worker.

Retries: a task whose worker or node is lost is run once more (``max_retries=1``). A training is
deterministic in its seed and writes only into its own temporary folder, so a second run is
idempotent and gives the result the first would have; one retry absorbs a lost node (a preempted
spot instance) without looping on a job that kills its own worker (out of memory). An exception
raised by the job is never retried: it would fail the same way again.

``ray`` is imported only here, and this module only when ``--executor ray`` is chosen.
"""

from __future__ import annotations

import os
import queue
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import ray
import ray.exceptions
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from rewardsmith import executors
from rewardsmith.errors import UsageError
from rewardsmith.executors import JobFailed, WorkerDied, drain
from rewardsmith.runs import CandidatePaths, atomic_write_bytes

__all__ = ["GPU_FRACTION", "RayExecutor"]

GPU_FRACTION = 0.25
"""Share of one GPU each job asks for with ``--device cuda``: four small-policy trainings per GPU.
Ray places a job only where that share is free, and hides the GPUs from jobs that asked for none."""

LOCAL_IP = "127.0.0.2" if sys.platform.startswith("linux") else "127.0.0.1"
"""The address of the local Ray instance: loopback only. Ray rewrites 127.0.0.1 to the machine's outward
address on Linux (``resolve_ip_for_localhost``) but keeps 127.0.0.2, which Linux routes on loopback like
all of 127.0.0.0/8; elsewhere Ray keeps 127.0.0.1."""

MAX_RETRIES = 1
"""Runs of a job after its worker or node was lost (see the module docstring)."""

PROGRESS_FLUSH_S = 30.0
"""How long a finished job waits for its last progress report to land before dropping it."""

_Files = dict[str, bytes]


class _ProgressBox:
    """A Ray actor that jobs push progress reports into and the driver empties."""

    def __init__(self) -> None:
        self.items: list[tuple[int, Any]] = []

    def push(self, job: int, data: Any) -> None:
        self.items.append((job, data))

    def take(self) -> list[tuple[int, Any]]:
        items, self.items = self.items, []
        return items


def _read_files(root: Path) -> _Files:
    """Every file under ``root`` by POSIX relative path (no half-written ``.tmp`` files)."""
    if not root.is_dir():
        return {}
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file() and not path.name.endswith(".tmp")}


def _write_files(root: Path, files: _Files) -> None:
    for relative, data in files.items():
        parts = PurePosixPath(relative).parts
        if not parts or PurePosixPath(relative).is_absolute() or ".." in parts:
            raise ValueError(f"a job sent back a file outside its folder: {relative!r}")
        atomic_write_bytes(root.joinpath(*parts), data)


def _rewrite_paths(value: Any, local: str, remote: str) -> Any:
    """``value`` with strings under ``local`` (the worker's folder) moved under ``remote`` (the run's)."""
    if isinstance(value, str) and (value == local or value.startswith(local + os.sep)):
        return remote + value[len(local):]
    if isinstance(value, dict):
        return {k: _rewrite_paths(v, local, remote) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite_paths(v, local, remote) for v in value]
    return value


def _run_job(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], inputs: dict[str, _Files],
             threads: int, box: Any, job: int) -> tuple[Any, dict[str, _Files]]:
    """Runs as a Ray task: ``fn`` with its candidate folders redirected to a local temporary folder.

    ``inputs`` maps each candidate folder (as a string) to its files. Returns the job's result and, per
    candidate folder, the files the job wrote or changed.
    """
    executors.limit_threads(threads)  # the same torch threads as a pool worker: the same floats
    last_push: list[Any] = []

    def push(data: Any) -> None:
        try:
            last_push[:] = [box.push.remote(job, data)]
        except Exception:  # noqa: BLE001 - progress is advisory: a lost report never fails the job
            last_push.clear()

    executors.set_progress_sink(push)
    with tempfile.TemporaryDirectory(prefix="rewardsmith-") as tmp:
        local: dict[str, Path] = {}

        def redirect(value: Any) -> Any:
            if not isinstance(value, CandidatePaths):
                return value
            key = str(value.root)
            if key not in local:
                local[key] = Path(tmp) / str(len(local))
                _write_files(local[key], inputs.get(key, {}))
                local[key].mkdir(parents=True, exist_ok=True)
            return CandidatePaths(local[key])

        try:
            result = fn(*[redirect(a) for a in args], **{k: redirect(v) for k, v in kwargs.items()})
            _flush(last_push)
        finally:
            executors.set_progress_sink(None)
        outputs = {}
        for remote, folder in local.items():
            before = inputs.get(remote, {})
            outputs[remote] = {name: data for name, data in _read_files(folder).items() if before.get(name) != data}
            result = _rewrite_paths(result, str(folder), remote)
    return result, outputs


def _warm_up(threads: int) -> None:
    """Runs as a Ray task when the executor starts: a worker started and the training stack imported before the
    first job needs them."""
    executors.limit_threads(threads)
    import rewardsmith.analyzer  # noqa: F401
    import rewardsmith.training  # noqa: F401


def _flush(pushes: list[Any]) -> None:
    """Wait for the last progress report to land (before the result, as on the process pool's pipe);
    if the progress actor is unreachable the report is dropped: progress never fails a job."""
    try:
        ray.get(pushes, timeout=PROGRESS_FLUSH_S)
    except (ray.exceptions.RayError, TimeoutError):
        pass


@dataclass
class _Job:
    id: int
    future: Future


class RayExecutor:
    """Jobs as Ray tasks, one CPU each (and :data:`GPU_FRACTION` of a GPU with ``--device cuda``).

    Args:
        address: a cluster (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``); None starts a local Ray
            instance with ``workers`` CPUs on a loopback address (:data:`LOCAL_IP`), for this run only.
    """

    def __init__(self, workers: int, address: str | None = None, device: str = "auto", threads: int = 1) -> None:
        if workers < 1:
            raise ValueError("an executor needs at least one worker")
        self.size = workers
        self.threads = threads
        self._gpus = GPU_FRACTION if device.startswith("cuda") else 0
        if ray.is_initialized():
            raise RuntimeError("Ray is already initialised in this process; one executor at a time")
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING",
                                   "configure_logging": False}
        try:
            if address is None:
                ray.init(address="local", _node_ip_address=LOCAL_IP, num_cpus=workers, **options)
            else:
                ray.init(address=address, **options)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise UsageError(f"--ray-address {address}: cannot connect to a Ray cluster: {exc}") from None
        if self._gpus and ray.cluster_resources().get("GPU", 0) < self._gpus:
            ray.shutdown()
            raise UsageError(f"--device {device}: the Ray cluster has no GPU; use --device cpu or auto")
        self._remote = ray.remote(_run_job).options(
            num_cpus=1, num_gpus=self._gpus, max_retries=MAX_RETRIES, retry_exceptions=False, name="rewardsmith-job")
        warm = ray.remote(_warm_up).options(num_cpus=1, num_gpus=self._gpus, max_retries=0, name="rewardsmith-warm-up")
        self._warming = [warm.remote(threads) for _ in range(workers)]  # kept so Ray runs them; never waited for
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
        self._box = ray.remote(_ProgressBox).options(num_cpus=0, scheduling_strategy=here).remote()
        self._lock = threading.Lock()
        self._pull_lock = threading.Lock()
        self._progress: queue.Queue[tuple[Future, Any]] = queue.Queue()
        self._running: dict[Any, tuple[_Job, dict[str, CandidatePaths]]] = {}
        self._jobs: dict[int, _Job] = {}
        self._next_id = 0
        self._closed = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._collect, name="rewardsmith-ray", daemon=True)
        self._thread.start()

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self.shutdown(wait=kind is None)

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        folders = {str(v.root): v for v in [*args, *kwargs.values()] if isinstance(v, CandidatePaths)}
        inputs = {key: _read_files(paths.root) for key, paths in folders.items()}
        with self._lock:
            if self._closed:
                raise RuntimeError("the executor is shut down")
            job = _Job(self._next_id, Future())
            self._next_id += 1
            job.future.set_running_or_notify_cancel()
            ref = self._remote.remote(fn, args, kwargs, inputs, self.threads, self._box, job.id)
            self._running[ref] = (job, folders)
            self._jobs[job.id] = job
        self._wake.set()
        return job.future

    def drain_progress(self) -> list[tuple[Future, Any]]:
        """Progress reports received so far, as (future of the job, data)."""
        self._pull_progress()
        return drain(self._progress)

    def _pull_progress(self) -> None:
        """Move the reports in the progress actor to the local queue (before a job's result is set)."""
        with self._pull_lock:
            try:
                items = ray.get(self._box.take.remote(), timeout=30)
            except ray.exceptions.RayError:
                return
            with self._lock:
                for job, data in items:
                    if job in self._jobs:
                        self._progress.put((self._jobs[job].future, data))

    def shutdown(self, wait: bool = True) -> None:
        """Stop; with ``wait=False`` running jobs are cancelled at once (Ctrl-C, errors)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if not wait:
                for ref, (job, _) in self._running.items():
                    ray.cancel(ref, force=True)
                    job.future.set_exception(WorkerDied("cancelled: the search stopped"))
                self._running.clear()
        self._wake.set()
        self._thread.join()
        ray.shutdown()

    # -- the collector thread ------------------------------------------------------------------

    def _collect(self) -> None:
        while True:
            with self._lock:
                refs = list(self._running)
                if self._closed and not refs:
                    return
            if not refs:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            ready, _ = ray.wait(refs, num_returns=1, timeout=0.5)
            for ref in ready:
                with self._lock:
                    entry = self._running.pop(ref, None)
                if entry is not None:
                    self._settle(ref, *entry)

    def _settle(self, ref: Any, job: _Job, folders: dict[str, CandidatePaths]) -> None:
        self._pull_progress()
        try:
            result, outputs = ray.get(ref)
            for key, files in outputs.items():
                _write_files(folders[key].root, files)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else None
            message = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc).splitlines()[0]
            job.future.set_exception(JobFailed(message, str(exc)))
        except ray.exceptions.RayError as exc:  # worker crashed, node died, task cancelled, object lost
            job.future.set_exception(WorkerDied(_lost(exc)))
        except Exception as exc:  # noqa: BLE001 - writing the files back failed: that job fails alone
            job.future.set_exception(JobFailed(f"{type(exc).__name__}: {exc}", ""))
        else:
            job.future.set_result(result)
        finally:
            with self._lock:
                self._jobs.pop(job.id, None)


def _lost(exc: BaseException) -> str:
    """One line on why Ray lost a job, after the retry."""
    first = " ".join(str(exc).split())[:400]
    retried = f" (after {MAX_RETRIES} retry)" if MAX_RETRIES else ""
    return f"the Ray task was lost{retried}: {type(exc).__name__}: {first}"
