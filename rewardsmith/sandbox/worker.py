"""The sandbox worker process: compiles and runs one untrusted reward program at a time.

Started by :class:`rewardsmith.sandbox.client.RewardSandbox` with a scrubbed environment and
an empty working directory. Before it reads any untrusted source it warms numpy up (lazy
imports inside numpy would otherwise look for ``__import__`` in the restricted builtins) and
sets its resource limits. It talks to the host over its original stdin/stdout with
length-prefixed JSON frames; stdout and stdin are then pointed at /dev/null.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import traceback
import warnings
from types import FrameType
from typing import Any

import numpy as np

from rewardsmith.sandbox.guards import GuardState, SandboxViolation, make_globals
from rewardsmith.sandbox.issues import Issue
from rewardsmith.sandbox.namespaces import SizeCapError, safe_modules
from rewardsmith.sandbox.policy import FILENAME, CompileLimits, compile_reward
from rewardsmith.sandbox.protocol import FrameError, read_frame, write_frame
from rewardsmith.sandbox.views import ObservationBase, make_view_class, readonly_array

MAX_COMPONENTS = 32
MAX_COMPONENT_NAME = 64


class _Deadline(BaseException):
    """The in-process timer fired (a fast path: the host kills the worker if this is swallowed)."""


class _BadReturn(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def main() -> None:
    limits = json.loads(sys.argv[1])
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    warnings.simplefilter("ignore")
    _warm_up_numpy()
    _set_limits(limits)
    signal.signal(signal.SIGALRM, _on_alarm)
    worker = _Worker(limits)
    while True:
        try:
            request, blob = read_frame(proto_in)
        except FrameError:
            return
        if request.get("op") == "exit":
            return
        reply, reply_blob = worker.handle(request, blob)
        write_frame(proto_out, reply, reply_blob)


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise _Deadline()


def _warm_up_numpy() -> None:
    """Trigger numpy's lazy imports while the real ``__import__`` is still reachable."""
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    for method in ("sum", "mean", "max", "min", "std", "var", "prod", "argmax", "argmin", "any", "all",
                   "cumsum", "ptp", "round", "clip", "tolist", "item", "copy", "ravel", "flatten", "astype"):
        try:
            fn = getattr(a, method)
            if method == "clip":
                fn(0, 1)
            elif method == "astype":
                fn(np.float32)
            elif method == "item":
                a[0, 0].item()
            else:
                fn()
        except AttributeError:
            pass
    for fn in (np.median, np.percentile, np.linalg.norm, np.linalg.det, np.linalg.inv, np.sort, np.unique,
               np.isclose, np.allclose, np.interp, np.where, np.nan_to_num, np.gradient, np.diff):
        try:
            if fn is np.percentile:
                fn(a, 50)
            elif fn in (np.isclose, np.allclose):
                fn(a, a)
            elif fn is np.interp:
                fn(0.5, [0.0, 1.0], [0.0, 1.0])
            elif fn is np.where:
                fn(a > 1, a, 0)
            elif fn in (np.linalg.det, np.linalg.inv):
                fn(np.eye(2))
            else:
                fn(a)
        except Exception:
            pass
    str(a), repr(a), str(np.float64(1.5)), repr(np.float32(1.5)), f"{np.float64(1.5):.3f}"
    float(np.float64(1.0)), bool(np.bool_(True)), int(np.int64(3))
    try:
        np.float64(1.0) / np.float64(0.0)
    except Exception:
        pass


def _set_limits(limits: dict[str, Any]) -> None:
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails instead of killing us
    memory = int(limits["memory_mb"]) * 1024 * 1024
    cpu = int(limits["cpu_seconds"])
    highest_fd = max(int(name) for name in os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 16
    settings = [
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_NOFILE, highest_fd + 1),
        (resource.RLIMIT_NPROC, 0),
    ]
    for which, value in settings:
        soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        new_hard = value + 5 if which == resource.RLIMIT_CPU else value
        if hard != resource.RLIM_INFINITY:
            new_hard = min(new_hard, hard)
        resource.setrlimit(which, (value, new_hard))


class _Worker:
    def __init__(self, limits: dict[str, Any]) -> None:
        self.limits = limits
        self.compile_limits = CompileLimits(**limits.get("compile", {}))
        self.function: Any = None
        self.state = GuardState(int(limits.get("print_cap", 4096)))
        self.view: type[ObservationBase] | None = None
        self.numpy_err = np.geterr()
        self.numpy_print = np.get_printoptions()

    def handle(self, request: dict[str, Any], blob: bytes) -> tuple[dict[str, Any], bytes]:
        op = request.get("op")
        if op == "load":
            return self.load(str(request["source"]), list(request["fields"]), float(request.get("timeout", 5.0))), b""
        if op == "call":
            return self.call(request, blob)
        return {"ok": False, "issue": Issue("worker_crashed", f"unknown request {op!r}").to_dict()}, b""

    def load(self, source: str, fields: list[str], timeout: float) -> dict[str, Any]:
        self.function = None
        self.state = GuardState(int(self.limits.get("print_cap", 4096)))
        self.view = make_view_class(fields)
        code, issues = compile_reward(source, fields, self.compile_limits)
        if code is None:
            return {"ok": False, "issues": [i.to_dict() for i in issues]}
        namespace = make_globals(self.state, safe_modules())
        error = self._run_guarded(lambda: exec(code, namespace), timeout, "module_error",
                                  "running the module's top level")
        if error is not None:
            return {"ok": False, "issues": [i.to_dict() for i in issues] + [error.to_dict()]}
        function = namespace.get("compute_reward")
        if not callable(function):
            issue = Issue("no_compute_reward", "compute_reward is not a function after the module ran")
            return {"ok": False, "issues": [i.to_dict() for i in issues] + [issue.to_dict()]}
        self.function = function
        return {"ok": True, "issues": [i.to_dict() for i in issues], "printed": self.state.take_printed()}

    def call(self, request: dict[str, Any], blob: bytes) -> tuple[dict[str, Any], bytes]:
        if self.function is None or self.view is None:
            return self._failed(0, Issue("no_compute_reward", "no program is loaded")), b""
        view, function = self.view, self.function
        n, d, width = int(request["n"]), int(request["d"]), int(request["a"])
        obs, next_obs, actions, info = _decode_batch(blob, n, d, width, bool(request["ai"]))
        extra = request.get("x")
        timeout = float(request.get("timeout", 1.0))
        totals: list[float] = []
        rows: list[dict[str, float]] = []
        bare = False
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            for i in range(n):
                step_info = {"env_reward": info[0][i], "terminated": info[1][i] > 0.5,
                             "truncated": info[2][i] > 0.5, "step": int(info[3][i])}
                if extra:
                    step_info.update(extra[i])
                try:
                    total, components, was_bare = _coerce(function(view(obs[i]), actions[i], view(next_obs[i]),
                                                                   step_info))
                except _Deadline:
                    issue = Issue("timeout", f"compute_reward did not return within {timeout:g} s "
                                             "(an endless loop, or far too much work per step)")
                    return self._failed(i, issue), b""
                except BaseException as exc:  # noqa: BLE001 - untrusted code may raise anything
                    return self._failed(i, self._describe_error(exc)), b""
                if self.state.violations:
                    return self._failed(i, self.state.take_violation()), b""  # type: ignore[arg-type]
                bare = bare or was_bare
                totals.append(total)
                rows.append(components)
        except _Deadline:  # fired between calls
            return self._failed(len(totals), Issue("timeout", "compute_reward ran past its deadline")), b""
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self._restore_numpy()
        keys = list(rows[0]) if rows else []
        reply: dict[str, Any] = {"ok": True, "k": keys, "bare": bare}
        values = np.asarray(totals, dtype=np.float64).tobytes()
        if all(len(row) == len(keys) and list(row) == keys for row in rows):
            values += np.asarray([list(row.values()) for row in rows], dtype=np.float64).tobytes()
        else:
            reply["cd"] = rows
        printed = self.state.take_printed()
        if request.get("want_print"):
            reply["printed"] = printed
        return reply, values

    def _failed(self, index: int, issue: Issue) -> dict[str, Any]:
        self.state.take_violation()
        return {"ok": False, "index": index, "issue": issue.to_dict(), "printed": self.state.take_printed()}

    def _run_guarded(self, fn: Any, timeout: float, code: str, what: str) -> Issue | None:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            fn()
        except _Deadline:
            return Issue("timeout", f"{what} did not finish within {timeout} s")
        except BaseException as exc:  # noqa: BLE001
            issue = self._describe_error(exc, code)
            return issue
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self._restore_numpy()
        return self.state.take_violation()

    def _describe_error(self, exc: BaseException, code: str = "runtime_error") -> Issue:
        violation = self.state.take_violation()
        if violation is not None:
            return violation
        if isinstance(exc, _BadReturn):
            return Issue(exc.code, str(exc))
        line = _reward_line(exc.__traceback__)
        if isinstance(exc, (MemoryError, SizeCapError)):
            return Issue("memory", f"{type(exc).__name__}: {_short(exc)}", line)
        if isinstance(exc, RecursionError):
            return Issue(code, "RecursionError: the program recursed too deeply; use a loop", line)
        if isinstance(exc, SandboxViolation):
            return Issue("forbidden_attribute", _short(exc), line)
        if isinstance(exc, NameError):
            return Issue("forbidden_name", f"{type(exc).__name__}: {_short(exc)} (only math, numpy, typing and "
                                           "common builtins are available; import what you use)", line)
        if isinstance(exc, (SystemExit, KeyboardInterrupt, GeneratorExit)):
            return Issue(code, f"{type(exc).__name__} raised by reward code (not allowed)", line)
        return Issue(code, f"{type(exc).__name__}: {_short(exc)}", line)

    def _restore_numpy(self) -> None:
        if np.geterr() != self.numpy_err:
            np.seterr(**self.numpy_err)
        if np.get_printoptions() != self.numpy_print:
            np.set_printoptions(**self.numpy_print)


def _short(exc: BaseException, limit: int = 400) -> str:
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001
        text = "<unprintable>"
    return text if len(text) <= limit else text[:limit] + "…"


def _reward_line(tb: Any) -> int | None:
    line = None
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename == FILENAME:
            line = lineno
    return line


def _decode_batch(blob: bytes, n: int, d: int, width: int, integer_actions: bool) -> tuple[Any, Any, Any, Any]:
    floats = n * d * 8
    obs = np.frombuffer(blob, np.float64, n * d, 0).reshape(n, d).tolist()
    next_obs = np.frombuffer(blob, np.float64, n * d, floats).reshape(n, d).tolist()
    if integer_actions:
        raw = np.frombuffer(blob, np.int64, n * width, 2 * floats).reshape(n, width)
        actions = raw[:, 0].tolist() if width == 1 else [readonly_array(row, np.int64) for row in raw]
    else:
        raw = np.frombuffer(blob, np.float64, n * width, 2 * floats).reshape(n, width)
        actions = [readonly_array(row) for row in raw]
    info = np.frombuffer(blob, np.float64, 4 * n, 2 * floats + n * width * 8).reshape(4, n).tolist()
    return obs, next_obs, actions, info


def _to_float(value: Any, what: str) -> float:
    kind = type(value)
    if kind is float or kind is int:
        number = float(value)
        if number - number == 0.0:
            return number
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise _BadReturn("bad_return", f"{what} is an array of shape {value.shape}; it must be one number "
                                           "(sum it, or take one element)")
        value = value.reshape(-1)[0]
    if not isinstance(value, (int, float, np.integer, np.floating, np.bool_)):
        raise _BadReturn("bad_return", f"{what} is a {type(value).__name__}; it must be a number")
    try:
        number = float(value)
    except OverflowError:
        raise _BadReturn("non_finite", f"{what} is an integer too large for a float") from None
    if not math.isfinite(number):
        raise _BadReturn("non_finite", f"{what} is {number}; guard divisions and logs so every value stays finite")
    return number


def _coerce(out: Any) -> tuple[float, dict[str, float], bool]:
    if type(out) is tuple and len(out) == 2 and type(out[1]) is dict and len(out[1]) <= MAX_COMPONENTS:
        clean = {}
        for key, value in out[1].items():  # the common case, checked with the least work
            if type(key) is not str or not 0 < len(key) <= MAX_COMPONENT_NAME:
                break
            clean[key] = _to_float(value, f"component {key!r}")
        else:
            return _to_float(out[0], "the total"), clean, False
    if isinstance(out, (tuple, list)):
        if len(out) != 2:
            raise _BadReturn("bad_return", f"compute_reward returned a sequence of {len(out)} items; "
                                           "return (total, components)")
        total = _to_float(out[0], "the total")
        components = out[1]
        if not isinstance(components, dict):
            raise _BadReturn("bad_components", f"components is a {type(components).__name__}; it must be a dict "
                                               "of name -> float")
        if len(components) > MAX_COMPONENTS:
            raise _BadReturn("bad_components", f"{len(components)} components; at most {MAX_COMPONENTS}")
        clean: dict[str, float] = {}
        for key, value in components.items():
            if not isinstance(key, str) or not key or len(key) > MAX_COMPONENT_NAME:
                raise _BadReturn("bad_components", f"component name {str(key)[:80]!r} must be a non-empty string "
                                                   f"of at most {MAX_COMPONENT_NAME} characters")
            clean[key] = _to_float(value, f"component {key!r}")
        return total, clean, False
    if not isinstance(out, (int, float, np.integer, np.floating, np.bool_, np.ndarray)):
        raise _BadReturn("bad_return", f"compute_reward returned {type(out).__name__}; return (total, components): "
                                       "a float and a dict of named floats")
    return _to_float(out, "the return value"), {}, True


if __name__ == "__main__":
    main()
