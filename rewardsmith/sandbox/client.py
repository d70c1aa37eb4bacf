"""The host side of the sandbox: start a worker, load a program, call it in batches, enforce deadlines.

The host never runs untrusted code and never unpickles what the worker sends. A batch that
outlives its deadline (the worker's own timer is only a fast path that code can swallow) gets
the worker killed; the next request starts a fresh one and reloads the program.
"""

from __future__ import annotations

import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardsmith.episode import field_layout, plain_layout
from rewardsmith.sandbox.issues import CODES, Issue, sanitize
from rewardsmith.sandbox.policy import CompileLimits
from rewardsmith.sandbox.protocol import (
    COMPONENT_NAME_RULE,
    MAX_COMPONENTS,
    MAX_FRAME,
    FrameError,
    FrameTimeout,
    is_component_name,
    read_frame,
    wait_readable,
    write_frame,
)

__all__ = [
    "BatchResult",
    "LoadResult",
    "RewardCallError",
    "RewardSandbox",
    "SandboxLimits",
    "Transitions",
    "plain_info",
]

_BOOT = "import sys; sys.path.insert(0, sys.argv[2]); from rewardsmith.sandbox.worker import main; main()"
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of a sandbox worker, and why each default is what it is.

    Measured on Linux x86-64 (Python 3.11, numpy 2.4, OpenBLAS pinned to one thread): a worker with
    numpy loaded and warmed up maps about 133 MiB of address space (VmSize) and holds about 32 MiB
    resident; a typical CartPole reward costs about 4 µs per transition inside the worker. The
    defaults leave generous room above that and refuse what no reward function needs.
    ``RewardSandbox.diagnose()`` reports what was applied on the machine at hand; docs/sandbox.md
    has the whole picture.

    Limits that are not fields: ``RLIMIT_FSIZE`` 0 (no file can be written), ``RLIMIT_CORE`` 0 (no
    core dumps), ``RLIMIT_NPROC`` 0 (no fork or thread; the kernel does not enforce it for root,
    which is one reason a worker started as root switches to uid 65534), and ``RLIMIT_NOFILE``
    exactly the descriptors the worker already holds (the protocol pipes, stderr, /dev/null): not
    one file, socket or pipe can be opened.
    """

    memory_mb: int = 512
    """RLIMIT_AS of the worker, in MiB (virtual address space, not resident memory). 512 is the ~133 MiB
    baseline plus ~375 MiB for the reward's own data: some forty arrays at the 1M-element cap of the
    numpy namespace. A memory bomb fails at once with MemoryError (reported as ``memory``) instead of
    pushing the user's machine into swap. Where the baseline is larger (another BLAS), the cap is raised
    to baseline + 128 MiB so the worker can still start."""
    cpu_seconds: int = 30
    """RLIMIT_CPU per request: the worker re-arms it before every load or batch, never below that
    request's wall-clock deadline plus a second. The wall-clock deadline is what normally stops a call;
    this backstop stops a worker spinning in a long C call even when its host has died (the kernel
    sends SIGXCPU). (It used to cap the worker's whole life, which a long training can
    legitimately exceed.)"""
    call_timeout: float = 1.0
    """Seconds of wall-clock time one batch may take, plus ``timeout_per_transition`` per transition;
    then the worker's timer fires."""
    kill_grace: float = 1.0
    """Extra seconds after the batch deadline before the host kills the worker: code that swallows the
    timer's exception in a loop, or a C call that never checks for signals (``sum(range(10**11))``, one
    huge BLAS call). The next request starts a fresh worker."""
    load_timeout: float = 5.0
    """Seconds compiling and running the module's top level may take."""
    print_cap: int = 4096
    """Characters of ``print`` output kept per call."""
    compile: CompileLimits = field(default_factory=CompileLimits)
    """Caps on the source, applied before it is parsed."""
    timeout_per_transition: float = 0.005
    """Extra seconds a batch may take per transition. The critic refuses rewards slower than 2 ms per call
    on average; 5 ms leaves room for a slower machine, so a PPO rollout of 2048 transitions may take
    11 s and a vector-env step of 8 transitions 1.04 s."""
    os_isolation: bool = True
    """Best-effort OS isolation besides the limits: a network namespace of its own (no network), the
    ``no_new_privs`` flag, when started as root uid/gid 65534 and no dumpable state, and a Landlock
    ruleset that grants no file access, no TCP and no signals outside the worker. Each step is skipped
    where the OS refuses it; ``RewardSandbox.diagnose()`` says which took effect."""

    def batch_timeout(self, transitions: int) -> float:
        """The worker's deadline for one batch of ``transitions``."""
        return self.call_timeout + self.timeout_per_transition * transitions

    def to_json(self) -> str:
        return json.dumps(asdict(self))


MAX_EXCHANGE_BYTES = MAX_FRAME // 2
"""The most bytes of transitions one exchange carries (half a frame; the rest is room for the header and its
info values): 1024 CartPole transitions take 96 KiB, but one 96x96x3 image transition takes 432 KiB, so a
batch of wide observations crosses in several exchanges."""

_ARRAY_FIELDS = ("obs", "actions", "next_obs", "env_reward", "terminated", "truncated", "step")


@dataclass
class Transitions:
    """A batch of transitions in arrays, as the training wrapper and the critic produce them.

    Reward code sees, for each row, ``info = {"env_reward", "terminated", "truncated", "step"}``
    plus the env's own plain info keys (``extra``); ``step`` is 1 on an episode's first transition.
    """

    obs: np.ndarray
    actions: np.ndarray
    next_obs: np.ndarray
    env_reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    step: np.ndarray
    extra: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self.obs)

    def take(self, rows: slice | Sequence[int]) -> Transitions:
        """The transitions at ``rows`` (a slice or a list of indices)."""
        index = rows if isinstance(rows, slice) else np.asarray(rows, dtype=np.int64)
        extra = None
        if self.extra:
            extra = self.extra[rows] if isinstance(rows, slice) else [self.extra[int(i)] for i in index]
        return Transitions(*(np.asarray(getattr(self, name))[index] for name in _ARRAY_FIELDS), extra=extra)

    def chunks(self, size: int) -> Iterator[Transitions]:
        """Consecutive parts of at most ``size`` transitions: the batch itself when it fits, none when empty."""
        n = len(self)
        if n <= size:
            if n:
                yield self
            return
        for start in range(0, n, size):
            yield self.take(slice(start, start + size))

    @classmethod
    def concatenate(cls, parts: Sequence[Transitions]) -> Transitions:
        arrays = [np.concatenate([np.asarray(getattr(p, name)) for p in parts]) for name in _ARRAY_FIELDS]
        extra = None
        if any(p.extra for p in parts):
            extra = [row for p in parts for row in (p.extra or [{}] * len(p))]
        return cls(*arrays, extra=extra)

    def encode(self) -> tuple[dict[str, Any], bytes]:
        n = len(self.obs)
        obs = np.ascontiguousarray(self.obs, dtype=np.float64).reshape(n, -1)
        next_obs = np.ascontiguousarray(self.next_obs, dtype=np.float64).reshape(n, -1)
        discrete = np.issubdtype(np.asarray(self.actions).dtype, np.integer)
        actions = np.ascontiguousarray(self.actions, dtype=np.int64 if discrete else np.float64).reshape(n, -1)
        info = np.stack([np.asarray(self.env_reward, dtype=np.float64), np.asarray(self.terminated, dtype=np.float64),
                         np.asarray(self.truncated, dtype=np.float64), np.asarray(self.step, dtype=np.float64)])
        header: dict[str, Any] = {"n": n, "d": obs.shape[1], "a": actions.shape[1], "ai": bool(discrete)}
        if self.extra and any(self.extra):
            header["x"] = self.extra
        blob = obs.tobytes() + next_obs.tobytes() + actions.tobytes() + info.tobytes()
        return header, blob


@dataclass(frozen=True)
class LoadResult:
    ok: bool
    issues: list[Issue]
    printed: str = ""
    solved: float | None = None
    """A fitness program's ``SOLVED`` (None where it sets none, and for reward programs)."""


@dataclass(frozen=True)
class BatchResult:
    totals: np.ndarray
    components: list[dict[str, float]]
    bare: bool = False
    """The program returned a bare number instead of (total, components)."""
    printed: str = ""


class RewardCallError(Exception):
    """A call of the reward program failed; ``issue`` says why, ``index`` which transition of the batch."""

    def __init__(self, issue: Issue, index: int = 0, printed: str = "") -> None:
        super().__init__(str(issue))
        self.issue = issue
        self.index = index
        self.printed = printed


class RewardSandbox:
    """One worker process running one reward program.

    Example:
        >>> with RewardSandbox(["x", "v"]) as box:
        ...     box.load(source)
        ...     result = box.call(transitions)
    """

    def __init__(self, fields: Sequence[str] | Mapping[str, Any], limits: SandboxLimits | None = None) -> None:
        self.fields = plain_layout(field_layout(fields))
        """Each field name with the slot it reads (a spec's ``field_layout``), as it crosses to the worker."""
        self.limits = limits or SandboxLimits()
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: str | None = None
        self._source: str | None = None
        self._poller: Any = None
        self._finalizer: weakref.finalize | None = None
        self._names: set[str] = set()
        """Every component name the loaded program returned since it was loaded (at most ``MAX_COMPONENTS``)."""
        self.restarts = 0

    program_kind = "reward"
    """What :meth:`load` compiles: a reward program (``compute_reward``); a subclass loads fitness programs."""

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> RewardSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The worker's process id, or None while no worker runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def workdir(self) -> str | None:
        """The worker's working directory (an empty temporary directory), or None while no worker runs."""
        return self._workdir

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                write_frame(proc.stdin.fileno(), {"op": "exit"})  # type: ignore[union-attr]
            except (OSError, ValueError):
                pass
            try:
                proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            _close_pipes(proc)
        self._forget_worker()

    def _forget_worker(self) -> None:
        """Remove the dead worker's directory and its finalizer."""
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        _sweep_orphans()
        self._workdir = tempfile.mkdtemp(prefix=f"{_WORKDIR_PREFIX}{os.getpid()}-")
        env = {
            "PATH": os.defpath,
            "LANG": "C.UTF-8",
            "HOME": self._workdir,
            "TMPDIR": self._workdir,
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-c", _BOOT, self.limits.to_json(), _PACKAGE_PARENT],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self._workdir,
                env=env,
                close_fds=True,
                start_new_session=True,
            )
        except OSError:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
            raise
        os.set_blocking(proc.stderr.fileno(), False)  # type: ignore[union-attr]
        os.set_blocking(proc.stdout.fileno(), False)  # type: ignore[union-attr]  # reads honour the deadline
        # A sandbox dropped without close() (or alive at interpreter exit) still kills its worker and
        # removes its directory.
        self._finalizer = weakref.finalize(self, _reap, proc, self._workdir)
        self._poller = select.poll()
        self._poller.register(proc.stdout.fileno(),  # type: ignore[union-attr]
                              select.POLLIN | select.POLLHUP | select.POLLERR)
        self._proc = proc
        return proc

    def _kill(self) -> str:
        proc, self._proc = self._proc, None
        if proc is None:
            return ""
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        tail = _stderr_tail(proc)
        _close_pipes(proc)
        self._forget_worker()
        self.restarts += 1
        return tail

    # -- requests ------------------------------------------------------------------------------

    def load(self, source: str) -> LoadResult:
        """Compile and run a program's top level in the worker; refusals come back as issues."""
        self._names = set()
        if self._proc is not None and self._source is not None:
            self._reset()
        return self._load(source)

    def _load(self, source: str) -> LoadResult:
        self._source = source
        try:
            reply, _ = self._request({"op": "load", "source": source, "fields": self.fields, "kind": self.program_kind,
                                      "timeout": self.limits.load_timeout}, self.limits.load_timeout)
        except RewardCallError as exc:
            return LoadResult(False, [exc.issue])
        issues = [_issue(i) for i in _as_list(reply.get("issues"))[:64] if isinstance(i, dict)]
        ok = reply.get("ok") is True
        if not ok and not any(i.severity == "error" for i in issues):
            issues.append(Issue("worker_crashed", "the worker refused the program without saying why"))
        solved = reply.get("solved")
        solved = float(solved) if type(solved) in (int, float) and math.isfinite(solved) else None
        return LoadResult(ok, issues, self._printed(reply), solved)

    def _reset(self) -> None:
        """Have the worker drop the previous program and free what it left, or replace the worker.

        The previous program's leftovers (a generator's ``finally`` block run by the garbage collector)
        run now, under a deadline of their own; if they overrun it or crash the worker, the next program
        gets a fresh worker instead of a share of the blame.
        """
        try:
            reply, _ = self._request({"op": "reset", "timeout": self.limits.call_timeout}, self.limits.call_timeout)
        except RewardCallError:
            return  # the worker was killed already; the load starts a fresh one
        if reply.get("ok") is not True:
            self._kill()

    def call(self, batch: Transitions, want_print: bool = False) -> BatchResult:
        """Run compute_reward on a batch of transitions (in several exchanges where they are too wide for one).

        Raises:
            RewardCallError: a call raised, returned something invalid, or ran past its deadline.
        """
        per_transition = 16 * int(np.prod(np.shape(batch.obs)[1:])) + 8 * int(np.prod(np.shape(batch.actions)[1:])) + 40
        fits = max(1, MAX_EXCHANGE_BYTES // per_transition)
        if len(batch) <= fits:
            return self._call(batch, want_print)
        results: list[BatchResult] = []
        for start in range(0, len(batch), fits):
            try:
                results.append(self._call(batch.take(slice(start, start + fits)), want_print))
            except RewardCallError as exc:
                exc.index += start
                raise
        printed = "".join(r.printed for r in results)[: self.limits.print_cap]
        return BatchResult(np.concatenate([r.totals for r in results]), [row for r in results for row in r.components],
                           any(r.bare for r in results), printed)

    def _call(self, batch: Transitions, want_print: bool) -> BatchResult:
        if self._source is None:
            raise RewardCallError(Issue("no_compute_reward", "no program loaded"))
        self._restart_if_killed(self._source)
        header, blob = batch.encode()
        timeout = self.limits.batch_timeout(len(batch))
        header.update(op="call", timeout=timeout, want_print=want_print)
        reply, reply_blob = self._request(header, timeout, blob)
        printed = self._printed(reply)
        if reply.get("ok") is not True:
            index = reply.get("index", 0)
            index = index if type(index) is int and 0 <= index < len(batch) else 0
            issue = reply.get("issue")
            raise RewardCallError(_issue(issue) if isinstance(issue, dict) else
                                  Issue("worker_crashed", "the worker refused the batch without saying why"),
                                  index, printed)
        result = _parse_batch(reply, reply_blob, len(batch), printed)
        self._count_names(result.components)
        return result

    def _restart_if_killed(self, source: str) -> None:
        """Start a fresh worker with ``source`` (the loaded program) when a previous call killed the last one.

        Raises:
            RewardCallError: the program did not load again (its last issue).
        """
        if self._proc is None:
            loaded = self._load(source)  # the same program: the names it returned still count
            if not loaded.ok:
                raise RewardCallError(loaded.issues[-1])

    def _count_names(self, rows: list[dict[str, float]]) -> None:
        """Refuse a program once it has returned more than ``MAX_COMPONENTS`` distinct names since it was loaded.

        The worker sees one batch; only the host sees a program's whole life (across batches and respawns).
        """
        seen = self._names
        for index, row in enumerate(rows):
            if row.keys() <= seen:
                continue
            seen.update(row)
            if len(seen) > MAX_COMPONENTS:  # at most two calls' worth: the program is refused from here on
                raise RewardCallError(Issue(
                    "bad_components", f"compute_reward returned {len(seen)} distinct component names over its life; "
                                      f"at most {MAX_COMPONENTS} are allowed: {COMPONENT_NAME_RULE}"), index)

    def call_chunked(self, batch: Transitions, chunk: int) -> tuple[np.ndarray, list[dict[str, float]]]:
        """:meth:`call` on consecutive parts of at most ``chunk`` transitions: the totals and components of all.

        Raises:
            RewardCallError: as :meth:`call`; its ``index`` counts from the start of the failing part.
        """
        totals: list[np.ndarray] = []
        rows: list[dict[str, float]] = []
        for part in batch.chunks(chunk):
            result = self.call(part)
            totals.append(result.totals)
            rows.extend(result.components)
        return (np.concatenate(totals) if totals else np.zeros(0)), rows

    def diagnose(self) -> dict[str, Any]:
        """The isolation in effect in the worker, as the worker sees it, plus what the host sees.

        Starts a worker if none runs. Keys: ``pid``, ``uid``/``euid``/``gid``/``groups``, ``cwd`` and
        ``cwd_entries`` (its working directory and how many entries it holds), ``environ`` (variable
        names only), ``rlimits`` (soft, hard), ``baseline_vm_kb`` (address space before any reward ran),
        ``isolation`` (which OS isolation steps took effect) and ``probes`` (what happened when the
        worker tried to open a file, create a directory in /tmp, fork, and allocate its whole
        address-space limit).
        """
        reply, _ = self._request({"op": "diagnose", "timeout": self.limits.load_timeout}, self.limits.load_timeout)
        if self._workdir is not None:
            reply["cwd_entries"] = len(os.listdir(self._workdir))
        return reply

    def _printed(self, reply: dict[str, Any]) -> str:
        text = reply.get("printed", "")
        return sanitize(text[: self.limits.print_cap]) if isinstance(text, str) else ""

    def _request(self, message: dict[str, Any], timeout: float, blob: bytes = b"") -> tuple[dict[str, Any], bytes]:
        try:
            proc = self._proc or self._spawn()
        except OSError as exc:
            raise RewardCallError(Issue("worker_crashed", f"the sandbox worker could not start: {exc}")) from None
        deadline = time.monotonic() + timeout + self.limits.kill_grace
        try:
            write_frame(proc.stdin.fileno(), message, blob)  # type: ignore[union-attr]
            out_fd = proc.stdout.fileno()  # type: ignore[union-attr]
            if not wait_readable(out_fd, deadline, self._poller):
                raise FrameTimeout("no reply")
            return read_frame(out_fd, deadline)
        except FrameTimeout:
            self._kill()
            what = "compute_reward" if message.get("op") == "call" else "the program"
            raise RewardCallError(Issue("timeout", f"{what} did not return within {timeout:g} s; the worker was "
                                                   "killed (an endless loop, or a long C call)")) from None
        except (FrameError, OSError, ValueError) as exc:
            returncode = proc.poll()
            if returncode is None:
                try:
                    returncode = proc.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    returncode = None
            tail = self._kill()
            raise RewardCallError(Issue("worker_crashed", sanitize(_crash_reason(returncode, tail, exc)))) from None
        except BaseException:  # KeyboardInterrupt mid-exchange: the worker may be mid-request, out of step
            self._kill()
            raise


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _issue(data: dict[str, Any]) -> Issue:
    """An issue from the worker, which is not trusted: known codes only, bounded, printable text."""
    issue = Issue.from_dict(data)
    if issue.code not in CODES:
        issue = Issue("worker_crashed", f"the worker sent an unknown issue code: {issue.message}", issue.line)
    return issue


_WORKDIR_PREFIX = "rewardsmith-sandbox-"
_swept = False


def _sweep_orphans() -> None:
    """Remove the (empty) working directories of sandboxes whose host was killed before it could."""
    global _swept
    if _swept:
        return
    _swept = True
    for path in Path(tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}*-*"):
        pid = path.name[len(_WORKDIR_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass  # alive, someone else's


def _parse_batch(reply: dict[str, Any], blob: bytes, expected: int, printed: str) -> BatchResult:
    """Check everything the worker sent: shapes, finiteness, component names and counts."""
    keys = reply.get("k")
    if not isinstance(keys, list) or len(keys) > MAX_COMPONENTS or not all(map(is_component_name, keys)):
        raise _malformed()
    if len(blob) % 8:
        raise _malformed()
    values = np.frombuffer(blob, dtype=np.float64)
    if not np.isfinite(values).all():
        raise _malformed()
    totals = values[:expected].copy()
    if "cd" in reply:
        rows = reply["cd"]
        if not isinstance(rows, list) or len(blob) != 8 * expected:
            raise _malformed()
        components = []
        for row in rows:
            if (not isinstance(row, dict) or len(row) > MAX_COMPONENTS
                    or not all(is_component_name(k) and type(v) in (int, float) and math.isfinite(v)
                               for k, v in row.items())):
                raise _malformed()
            components.append({k: float(v) for k, v in row.items()})
    else:
        if len(blob) != 8 * expected * (1 + len(keys)):
            raise _malformed()
        matrix = values[expected:].reshape(expected, len(keys)).tolist()
        components = [dict(zip(keys, row)) for row in matrix]
    if totals.shape != (expected,) or len(components) != expected:
        raise RewardCallError(Issue("worker_crashed", "the worker sent a reply of the wrong shape"))
    return BatchResult(totals, components, reply.get("bare") is True, printed)


def _malformed() -> RewardCallError:
    return RewardCallError(Issue("worker_crashed", "the worker sent a malformed reply"))




def _crash_reason(returncode: int | None, stderr_tail: str, exc: BaseException) -> str:
    if returncode is not None and returncode < 0:
        sig = -returncode
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        causes = {
            "SIGXCPU": "it used up its CPU-time limit",
            "SIGKILL": "it was killed (out of memory, or by the host)",
            "SIGSEGV": "it crashed (segmentation fault)",
            "SIGABRT": "it aborted",
        }
        reason = f"the sandbox worker died from {name}: {causes.get(name, 'a fatal signal')}"
    elif returncode is not None:
        reason = f"the sandbox worker exited with status {returncode}"
    else:
        reason = f"the sandbox worker stopped answering ({exc})"
    if stderr_tail:
        reason += f"; its last words: {stderr_tail}"
    return reason


def _stderr_tail(proc: subprocess.Popen[bytes], limit: int = 600) -> str:
    if proc.stderr is None:
        return ""
    try:
        data = proc.stderr.read() or b""
    except (OSError, ValueError):
        data = b""
    text = data[-limit:].decode("utf-8", "replace").strip()
    return " ".join(text.split())


def _reap(proc: subprocess.Popen[bytes], workdir: str | None) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    _close_pipes(proc)
    if workdir:
        shutil.rmtree(workdir, ignore_errors=True)


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass


_NOT_INFO = frozenset({"terminal_observation"})
_NOT_STEP_INFO = _NOT_INFO | {"episode", "TimeLimit.truncated"}


def plain_info(info: Mapping[str, Any], limit: int = 64, *, step: bool = False) -> dict[str, Any]:
    """The JSON-safe part of an env's info dict: numbers, bools, short strings and small arrays.

    ``step``: the info of one step as reward code sees it, without the wrappers' bookkeeping
    (``episode`` statistics, ``TimeLimit.truncated``) besides ``terminal_observation``.
    """
    skip = _NOT_STEP_INFO if step else _NOT_INFO
    plain: dict[str, Any] = {}
    for key, value in info.items():
        if not isinstance(key, str) or key.startswith("_") or key in skip:
            continue
        if isinstance(value, (bool, np.bool_)):
            plain[key] = bool(value)
        elif isinstance(value, (int, np.integer)):
            plain[key] = int(value)
        elif isinstance(value, (float, np.floating)):
            plain[key] = float(value)
        elif isinstance(value, str) and len(value) <= 200:
            plain[key] = value
        elif isinstance(value, np.ndarray) and value.size <= limit and value.dtype.kind in "biuf":
            plain[key] = value.tolist()
        if len(plain) >= limit:
            break
    return plain
