"""The host side of the sandbox: start a worker, load a program, call it in batches, enforce deadlines.

The host never runs untrusted code and never unpickles what the worker sends. A batch that
outlives its deadline (the worker's own timer is only a fast path that code can swallow) gets
the worker killed; the next request starts a fresh one and reloads the program.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardsmith.sandbox.issues import Issue
from rewardsmith.sandbox.policy import CompileLimits
from rewardsmith.sandbox.protocol import FrameError, read_frame, write_frame

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
    """Resource limits of a sandbox worker.

    The address-space cap bounds memory bombs; the CPU cap is a backstop for the whole
    worker's life (the wall-clock deadline is what stops a single runaway call).
    """

    memory_mb: int = 1024
    """RLIMIT_AS of the worker: enough for numpy and a reward's arrays, small enough to refuse bombs."""
    cpu_seconds: int = 3600
    """RLIMIT_CPU of the worker over its whole life."""
    call_timeout: float = 1.0
    """Seconds one batch of calls may take before the worker's timer fires."""
    kill_grace: float = 1.0
    """Extra seconds after ``call_timeout`` before the host kills the worker."""
    load_timeout: float = 5.0
    """Seconds compiling and running the module's top level may take."""
    print_cap: int = 4096
    """Characters of ``print`` output kept per call."""
    compile: CompileLimits = field(default_factory=CompileLimits)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass
class Transitions:
    """A batch of transitions in arrays, as the training wrapper and the critic produce them.

    Reward code sees, for each row, ``info = {"env_reward", "terminated", "truncated", "step"}``
    plus the env's own plain info keys (``extra``).
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

    def __init__(self, fields: Sequence[str], limits: SandboxLimits | None = None) -> None:
        self.fields = list(fields)
        self.limits = limits or SandboxLimits()
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: str | None = None
        self._source: str | None = None
        self.restarts = 0

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> RewardSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        self._workdir = tempfile.mkdtemp(prefix="rewardsmith-sandbox-")
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
        os.set_blocking(proc.stderr.fileno(), False)  # type: ignore[union-attr]
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
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self.restarts += 1
        return tail

    # -- requests ------------------------------------------------------------------------------

    def load(self, source: str) -> LoadResult:
        """Compile and run a program's top level in the worker; refusals come back as issues."""
        self._source = source
        try:
            reply, _ = self._request({"op": "load", "source": source, "fields": self.fields,
                                   "timeout": self.limits.load_timeout},
                                  self.limits.load_timeout)
        except RewardCallError as exc:
            return LoadResult(False, [exc.issue])
        issues = [Issue.from_dict(i) for i in reply.get("issues", []) if isinstance(i, dict)]
        return LoadResult(bool(reply.get("ok")), issues, str(reply.get("printed", ""))[: self.limits.print_cap])

    def call(self, batch: Transitions, want_print: bool = False) -> BatchResult:
        """Run compute_reward on a batch of transitions.

        Raises:
            RewardCallError: a call raised, returned something invalid, or ran past its deadline.
        """
        if self._source is None:
            raise RewardCallError(Issue("no_compute_reward", "no program loaded"))
        if self._proc is None:  # a previous call killed the worker: start again with the same program
            loaded = self.load(self._source)
            if not loaded.ok:
                raise RewardCallError(loaded.issues[-1])
        header, blob = batch.encode()
        header.update(op="call", timeout=self.limits.call_timeout, want_print=want_print)
        reply, reply_blob = self._request(header, self.limits.call_timeout, blob)
        printed = str(reply.get("printed", ""))
        if not reply.get("ok"):
            raise RewardCallError(Issue.from_dict(reply.get("issue") or {}), int(reply.get("index", 0)), printed)
        return _parse_batch(reply, reply_blob, len(batch), printed)

    def _request(self, message: dict[str, Any], timeout: float, blob: bytes = b"") -> tuple[dict[str, Any], bytes]:
        proc = self._proc or self._spawn()
        deadline = timeout + self.limits.kill_grace
        try:
            write_frame(proc.stdin.fileno(), message, blob)  # type: ignore[union-attr]
            out_fd = proc.stdout.fileno()  # type: ignore[union-attr]
            ready, _, _ = select.select([out_fd], [], [], deadline)
            if not ready:
                self._kill()
                raise RewardCallError(Issue("timeout", f"compute_reward did not return within {timeout:g} s; "
                                                       "the worker was killed (an endless loop, or a long C call)"))
            return read_frame(out_fd)
        except (FrameError, OSError, ValueError) as exc:
            returncode = proc.poll()
            if returncode is None:
                try:
                    returncode = proc.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    returncode = None
            tail = self._kill()
            raise RewardCallError(Issue("worker_crashed", _crash_reason(returncode, tail, exc))) from None


def _parse_batch(reply: dict[str, Any], blob: bytes, expected: int, printed: str) -> BatchResult:
    try:
        keys = [str(k) for k in reply["k"]]
        values = np.frombuffer(blob, dtype=np.float64)
        totals = values[:expected].copy()
        if "cd" in reply:
            components = [{str(k): float(v) for k, v in row.items()} for row in reply["cd"]]
        else:
            matrix = values[expected:].reshape(expected, len(keys)).tolist()
            components = [dict(zip(keys, row)) for row in matrix]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise RewardCallError(Issue("worker_crashed", "the worker sent a malformed reply")) from None
    if totals.shape != (expected,) or len(components) != expected or not np.all(np.isfinite(totals)):
        raise RewardCallError(Issue("worker_crashed", "the worker sent a reply of the wrong shape"))
    return BatchResult(totals, components, bool(reply.get("bare")), printed)


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


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass


def plain_info(info: Mapping[str, Any], limit: int = 64) -> dict[str, Any]:
    """The JSON-safe part of an env's info dict: numbers, bools, short strings and small arrays."""
    plain: dict[str, Any] = {}
    for key, value in info.items():
        if not isinstance(key, str) or key.startswith("_") or key == "terminal_observation":
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
