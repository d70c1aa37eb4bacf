"""The sandbox worker process: compiles and runs one untrusted reward program at a time.

Started by :class:`rewardsmith.sandbox.client.RewardSandbox` with a scrubbed environment and
an empty working directory. Before it reads any untrusted source it, in this order:

1. keeps its protocol pipes on two private descriptors and points stdin/stdout at /dev/null;
2. warms numpy up (lazy imports inside numpy would otherwise look for ``__import__`` in the
   restricted builtins, and no file can be opened later);
3. isolates itself where the OS lets it (``SandboxLimits.os_isolation``): a private network
   namespace with no interfaces, ``no_new_privs``, uid/gid 65534 when started as root, and a
   Landlock ruleset that grants no file access, no TCP and no signals outside itself;
4. sets its resource limits: no core dumps, no file writes, no new descriptors, no new
   processes, an address-space cap, and a CPU-time cap that it re-arms for every request.

It talks to the host over length-prefixed JSON frames. The in-process timer (SIGALRM) is only
a fast path: reward code can swallow its exception, so a request during which it fired is
refused even if the code returned, and the host kills a worker that does not answer in time.

Nothing of one program runs during another's request. Reward code can leave code behind that
runs later: a suspended generator whose ``finally`` block runs when the garbage collector frees
it. So every request ends with a collection under that request's own timer (what a call left
behind dies during that call), the host asks for a ``reset`` before loading the next program (the
old program's globals die then, under a timer of their own, and a worker whose reset fails is
replaced), and exceptions raised by finalizers are dropped instead of being written to stderr,
whose tail the host reports when a worker crashes.
"""

from __future__ import annotations

import ctypes
import gc
import json
import math
import os
import resource
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sized
from types import FrameType
from typing import Any

import numpy as np

from rewardsmith.episode import Episode, NamedArrays, Slot, field_layout
from rewardsmith.sandbox.guards import GuardState, SandboxViolation, make_globals
from rewardsmith.sandbox.issues import Issue
from rewardsmith.sandbox.namespaces import ModuleAttributeError, SizeCapError, safe_modules
from rewardsmith.sandbox.policy import FILENAME, CompileLimits, compile_reward
from rewardsmith.sandbox.protocol import (
    COMPONENT_NAME_RULE,
    MAX_COMPONENT_NAME,
    MAX_COMPONENTS,
    FrameError,
    is_component_name,
    read_frame,
    write_frame,
)
from rewardsmith.sandbox.views import ObservationBase, make_view_class

NOBODY = 65534
"""The uid and gid a worker started as root switches to."""
MIN_HEADROOM_MB = 128
"""Address space always left above the worker's own baseline, whatever ``memory_mb`` says."""

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38
_SYS_LANDLOCK_CREATE_RULESET = 444  # the same number on every Linux architecture
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LIMIT_NAMES = ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_CORE")


class _Deadline(BaseException):
    """The in-process timer fired (a fast path: the host kills the worker if this is swallowed)."""


class _Alarm:
    """The in-process timer's state: ``fired`` stays set even when reward code swallows the exception."""

    armed = False
    fired = False


class _BadReturn(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def main() -> None:
    limits = json.loads(sys.argv[1])
    proto_in, proto_out = _take_protocol_fds()
    warnings.simplefilter("ignore")
    _warm_up_numpy()
    baseline_kb = _vm_size_kb()
    isolation = _isolate() if limits.get("os_isolation", True) else {"os_isolation": "off"}
    applied = _set_limits(limits, baseline_kb)
    signal.signal(signal.SIGALRM, _on_alarm)
    sys.unraisablehook = _drop_unraisable
    gc.collect()
    gc.freeze()  # the worker's own objects: later collections walk only what programs create
    gc.disable()  # the collector runs only at the end of a request, for that request's program
    worker = _Worker(limits, {"baseline_vm_kb": baseline_kb, "isolation": isolation, "applied": applied})
    while True:
        try:
            request, blob = read_frame(proto_in)
        except FrameError:
            return
        if request.get("op") == "exit":
            return
        try:
            reply, reply_blob = worker.handle(request, blob)
        except _Deadline:  # the timer fired in the worker's own bookkeeping, after the reward code
            reply, reply_blob = worker.timed_out("the request ran past its deadline"), b""
        write_frame(proto_out, reply, reply_blob)


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    _Alarm.fired = True
    if _Alarm.armed:
        raise _Deadline()


def _arm(seconds: float) -> None:
    _Alarm.fired = False
    _Alarm.armed = True
    # Repeats: code that swallows the first one is interrupted again (the host still has the last word).
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3), 0.05)


def _disarm() -> None:
    _Alarm.armed = False
    signal.setitimer(signal.ITIMER_REAL, 0)


def _drop_unraisable(unraisable: Any) -> None:
    """Exceptions nobody can catch (raised in a finalizer during garbage collection) are dropped, not
    written to stderr: there they would become the "last words" the host reports for a later crash."""


def _collect_leftovers(generation: int | None = None) -> bool:
    """Free the garbage reward code left, running any finalizers (generators' ``finally`` blocks) now.

    Called at the end of each request, under its timer (automatic collection is off in the worker, so
    this is the only time a finalizer can run). ``generation`` None collects the generations the
    collector's own thresholds say are due, which is cheap: garbage that was promoted to an older
    generation waits for a later request of the same program, or for its reset (all generations).
    A finalizer can make new garbage, so this repeats until a collection finds nothing or the timer
    has fired (a finalizer that swallows the timer's exception and loops keeps the worker busy until
    the host kills it, during the same request).

    Returns:
        Whether the last collection found nothing (False when the timer stopped the collecting).
    """
    while gc.collect(_due_generation() if generation is None else generation):
        if _Alarm.fired:
            return False
    return True


def _due_generation() -> int:
    """The oldest generation whose count has passed its threshold, as automatic collection would pick."""
    counts, thresholds = gc.get_count(), gc.get_threshold()
    due = [g for g in (1, 2) if thresholds[g] and counts[g] >= thresholds[g]]
    return due[-1] if due else 0


def _take_protocol_fds() -> tuple[int, int]:
    """Move the pipes to the host off stdin/stdout, which become /dev/null."""
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    return proto_in, proto_out


def _warm_up_numpy() -> None:
    """Trigger numpy's lazy imports while the real ``__import__`` is still reachable."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        _exercise_numpy()


def _exercise_numpy() -> None:
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
    numpy_ns = safe_modules()["numpy"]
    for name in numpy_ns.names():  # every function reward code can reach, with a few argument shapes
        fn = getattr(numpy_ns, name)
        if not callable(fn) or isinstance(fn, type):
            continue
        for args in ((a,), (a, a), (a, 1), (0.5, [0.0, 1.0], [0.0, 1.0])):
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - only the imports matter
                pass
    for fn in (np.linalg.norm, np.linalg.det, np.linalg.inv, np.linalg.solve, np.linalg.pinv):
        try:
            fn(np.eye(2)) if fn is not np.linalg.solve else fn(np.eye(2), np.ones(2))
        except Exception:  # noqa: BLE001
            pass
    str(a), repr(a), str(np.float64(1.5)), repr(np.float32(1.5)), f"{np.float64(1.5):.3f}"
    float(np.float64(1.0)), bool(np.bool_(True)), int(np.int64(3))
    try:
        np.float64(1.0) / np.float64(0.0)
    except Exception:  # noqa: BLE001
        pass
    np.ones(2).astype("O").tolist()


def _vm_size_kb() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _isolate() -> dict[str, str]:
    """Best-effort OS isolation; each step says whether it took effect."""
    if not sys.platform.startswith("linux"):  # the calls below are Linux system calls
        return {"os_isolation": f"unavailable on {sys.platform}"}
    done: dict[str, str] = {}
    root = os.geteuid() == 0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError as exc:
        return {"libc": f"unavailable: {exc}"}

    def call(name: str, *args: int) -> str:
        try:
            result = getattr(libc, name)(*args)
        except AttributeError:
            return "unavailable"
        return "ok" if result == 0 else f"refused: {os.strerror(ctypes.get_errno())}"

    # A network namespace of our own has only a loopback device, and it is down.
    flags = _CLONE_NEWNET if root else _CLONE_NEWUSER | _CLONE_NEWNET
    done["network_namespace"] = call("unshare", flags)
    done["no_new_privs"] = call("prctl", _PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if root:
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            done["drop_root"] = f"ok: uid {os.getuid()}, gid {os.getgid()}"
        except OSError as exc:
            done["drop_root"] = f"refused: {exc.strerror}"
        # Not ptrace-able or /proc-readable by other processes of uid 65534 (other users' workers).
        done["not_dumpable"] = call("prctl", _PR_SET_DUMPABLE, 0, 0, 0, 0)
    done["landlock"] = _landlock(libc)
    return done


class _LandlockRulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


def _landlock(libc: Any) -> str:
    """Deny every filesystem access (open, exec, create, remove …), TCP bind/connect, and signals to
    processes outside the worker, with a Landlock ruleset that grants nothing (Linux 5.13+).

    Descriptors already open keep working; the worker needs no file after its warm-up (and
    ``RLIMIT_NOFILE`` leaves it no free descriptor anyway). Needs ``no_new_privs``, set just before.
    """
    abi = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION)
    if abi < 1:
        return f"unavailable: {os.strerror(ctypes.get_errno())}"
    fs_bits = {1: 13, 2: 14, 3: 15, 4: 15}.get(abi, 16)  # REFER from ABI 2, TRUNCATE 3, IOCTL_DEV 5
    attr = _LandlockRulesetAttr((1 << fs_bits) - 1, 0b11 if abi >= 4 else 0, 0b11 if abi >= 6 else 0)
    size = 8 * (1 + (abi >= 4) + (abi >= 6))
    fd = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0)
    if fd < 0:
        return f"refused: {os.strerror(ctypes.get_errno())}"
    try:
        if libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, fd, 0) != 0:
            return f"refused: {os.strerror(ctypes.get_errno())}"
    finally:
        os.close(fd)
    scope = "files" + (", tcp" if abi >= 4 else "") + (", signals" if abi >= 6 else "")
    return f"ok: abi {abi}, denies {scope}"


def _open_fds(upto: int = 1024) -> list[int]:
    fds = []
    for fd in range(upto):
        try:
            os.fstat(fd)
        except OSError:
            continue
        fds.append(fd)
    return fds


def _set_limits(limits: dict[str, Any], baseline_kb: int = 0) -> dict[str, Any]:
    """Apply the resource limits; returns what was applied.

    ``RLIMIT_NOFILE`` is set to exactly the descriptors already open, after plugging every
    unused number below the highest one with /dev/null, so no file, socket or pipe can be opened.
    """
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails instead of killing us
    memory = int(limits["memory_mb"]) * 1024 * 1024
    floor = baseline_kb * 1024 + MIN_HEADROOM_MB * 1024 * 1024
    memory = max(memory, floor)
    fds = _open_fds()
    highest = max(fds) if fds else 2
    for fd in sorted(set(range(highest)) - set(fds)):
        os.dup2(0, fd)
    settings = [
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_NOFILE, highest + 1),
        (resource.RLIMIT_NPROC, 0),
    ]
    applied: dict[str, Any] = {}
    for which, value in settings:
        soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))
    _set_cpu_limit(_cpu_soft_limit(int(limits.get("cpu_seconds", 30))))
    for name in _LIMIT_NAMES:
        applied[name] = list(resource.getrlimit(getattr(resource, name)))
    return applied


def _cpu_soft_limit(seconds: int) -> int:
    """The soft RLIMIT_CPU that allows ``seconds`` more CPU seconds from now."""
    return int(time.process_time()) + seconds + 1


def _set_cpu_limit(soft: int) -> int:
    """Set the soft CPU-time limit (SIGXCPU kills the worker) to ``soft``, or the hard limit if lower; returns it.

    The hard limit is left where it was so the worker can move the soft limit on at the next
    request; a worker left spinning by a host that died is still stopped within its allowance.
    """
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    return soft


class _Worker:
    def __init__(self, limits: dict[str, Any], report: dict[str, Any] | None = None) -> None:
        self.limits = limits
        self.report = report or {}
        self.compile_limits = CompileLimits(**limits.get("compile", {}))
        self.function: Any = None
        self.kind = "reward"
        """What the loaded program is: "reward" (``compute_reward``) or "fitness" (``fitness(episode)``)."""
        self.layout: dict[str, Slot] = {}
        self.state = GuardState(int(limits.get("print_cap", 4096)))
        self.view: type[ObservationBase] | None = None
        self.numpy_err = np.geterr()
        self.numpy_print = np.get_printoptions()
        self.cpu_seconds = int(limits.get("cpu_seconds", 30))
        self.kill_grace = float(limits.get("kill_grace", 1.0))
        self.cpu_soft = -1

    def handle(self, request: dict[str, Any], blob: bytes) -> tuple[dict[str, Any], bytes]:
        op = request.get("op")
        timeout = float(request.get("timeout", 1.0))
        self._rearm_cpu(timeout)
        if op == "call":
            return self.call(request, blob, timeout)
        if op == "load":
            return self.load(str(request["source"]), field_layout(request["fields"]), timeout,
                             str(request.get("kind", "reward"))), b""
        if op == "score":
            return self.score(request, blob, timeout), b""
        if op == "reset":
            return self.reset(timeout), b""
        if op == "diagnose":
            return self.diagnose(), b""
        return {"ok": False, "issue": Issue("worker_crashed", f"unknown request {op!r}").to_dict()}, b""

    def _rearm_cpu(self, timeout: float) -> None:
        """Give this request its CPU allowance: ``cpu_seconds``, never less than its wall-clock deadline."""
        budget = max(self.cpu_seconds, int(math.ceil(timeout + self.kill_grace)) + 1)
        soft = _cpu_soft_limit(budget)
        if soft != self.cpu_soft:  # changes about once per CPU second: one cheap syscall per request otherwise
            self.cpu_soft = _set_cpu_limit(soft)

    def timed_out(self, message: str, index: int = 0) -> dict[str, Any]:
        return self._failed(index, Issue("timeout", message))

    def reset(self, timeout: float) -> dict[str, Any]:
        """Drop the loaded program and collect what it leaves, under a timer of its own.

        ``ok`` is false when the leftovers ran past the timer: the host then replaces the worker
        rather than load the next program beside them.
        """
        self.function = None
        self.view = None
        self.state = GuardState(int(self.limits.get("print_cap", 4096)))
        _arm(timeout)
        clean = self._end_request(generation=2)
        return {"ok": clean and not _Alarm.fired}

    def load(self, source: str, fields: dict[str, Slot], timeout: float, kind: str = "reward") -> dict[str, Any]:
        """Compile and run a program's top level: a reward program, or with ``kind`` "fitness" a fitness program
        (``fitness(episode)`` and an optional ``SOLVED``, which the reply carries)."""
        self.function = None
        self.kind = kind
        self.state = GuardState(int(self.limits.get("print_cap", 4096)))
        self.view = make_view_class(fields)
        self.layout = fields
        compiled: list[Any] = []
        names = list(fields)
        error = self._run_guarded(lambda: compiled.append(compile_reward(source, names, self.compile_limits, kind)),
                                  timeout, "module_error", "compiling the program")
        if error is not None:
            return {"ok": False, "issues": [error.to_dict()]}
        code, issues = compiled[0]
        if code is None:
            return {"ok": False, "issues": [i.to_dict() for i in issues]}
        namespace = make_globals(self.state, safe_modules())
        error = self._run_guarded(lambda: exec(code, namespace), timeout, "module_error",
                                  "running the module's top level")
        if error is not None:
            return {"ok": False, "issues": [i.to_dict() for i in issues] + [error.to_dict()],
                    "printed": self.state.take_printed()}
        if kind == "fitness":
            return self._loaded_fitness(namespace, issues)
        function = namespace.get("compute_reward")
        if not callable(function):
            issue = Issue("no_compute_reward", "compute_reward is not a function after the module ran")
            return {"ok": False, "issues": [i.to_dict() for i in issues] + [issue.to_dict()]}
        self.function = function
        return {"ok": True, "issues": [i.to_dict() for i in issues], "printed": self.state.take_printed()}

    def _loaded_fitness(self, namespace: dict[str, Any], issues: list[Issue]) -> dict[str, Any]:
        """The fitness function and ``SOLVED`` of a fitness program whose top level ran."""
        found = [i.to_dict() for i in issues]
        function = namespace.get("fitness")
        if not callable(function):
            issue = Issue("no_fitness", "fitness is not a function after the module ran")
            return {"ok": False, "issues": found + [issue.to_dict()]}
        solved = namespace.get("SOLVED")
        if solved is not None:
            number = None
            if isinstance(solved, (int, float, np.integer, np.floating)) and not isinstance(solved, (bool, np.bool_)):
                try:
                    number = float(solved)
                except OverflowError:
                    number = None
            if number is None or not math.isfinite(number):
                shown = _short(solved, 60) if isinstance(solved, (int, float, str)) else type(solved).__name__
                issue = Issue("bad_solved", f"SOLVED must be a finite number (the mean fitness that counts as "
                                            f"solved), or left out; it is {shown}")
                return {"ok": False, "issues": found + [issue.to_dict()]}
            solved = number
        self.function = function
        return {"ok": True, "issues": found, "solved": solved, "printed": self.state.take_printed()}

    def score(self, request: dict[str, Any], blob: bytes, timeout: float) -> dict[str, Any]:
        """The loaded fitness program's value of one episode (``rewardsmith.sandbox.fitness`` encodes it)."""
        if self.function is None or self.kind != "fitness":
            return self._failed(0, Issue("no_fitness", "no fitness program is loaded"))
        try:
            episode = _decode_episode(self.layout, request, blob)
        except (KeyError, TypeError, ValueError) as exc:
            return self._failed(0, Issue("worker_crashed", f"a malformed episode: {_short(exc, 200)}"))
        function = self.function
        value = 0.0

        def run() -> dict[str, Any] | None:
            nonlocal value
            try:
                value = _to_float(function(episode), "the fitness")
            except _Deadline:
                return self.timed_out(f"fitness did not return within {timeout:g} s for an episode of "
                                      f"{len(episode)} steps (an endless loop, or far too much work)")
            except BaseException as exc:  # noqa: BLE001 - untrusted code may raise anything
                return self._failed(0, self._describe_error(exc))
            if self.state.violations:
                return self._failed(0, self.state.take_violation())  # type: ignore[arg-type]
            return None

        failure = self._under_deadline("fitness", timeout, run, ())  # one call: every failure is at index 0
        if failure is not None:
            return failure
        return {"ok": True, "value": value, "printed": self.state.take_printed()}

    def call(self, request: dict[str, Any], blob: bytes, timeout: float) -> tuple[dict[str, Any], bytes]:
        if self.function is None or self.view is None or self.kind != "reward":
            return self._failed(0, Issue("no_compute_reward", "no program is loaded")), b""
        view, function, violations = self.view, self.function, self.state.violations
        n, d, width = int(request["n"]), int(request["d"]), int(request["a"])
        obs, next_obs, actions, (rewards, terminated, truncated, steps) = _decode_batch(blob, n, d, width,
                                                                                        bool(request["ai"]))
        extra = request.get("x")
        totals: list[float] = []
        rows: list[dict[str, float]] = []
        bare = False

        def run() -> dict[str, Any] | None:
            nonlocal bare
            for i in range(n):
                step_info = {"env_reward": rewards[i], "terminated": terminated[i], "truncated": truncated[i],
                             "step": steps[i]}
                if extra:
                    step_info.update(extra[i])
                try:
                    total, components, was_bare = _coerce(function(view(obs[i]), actions[i], view(next_obs[i]),
                                                                   step_info))
                except _Deadline:
                    return self.timed_out(f"compute_reward did not return within {timeout:g} s for this batch "
                                          "(an endless loop, or far too much work per step)", i)
                except BaseException as exc:  # noqa: BLE001 - untrusted code may raise anything
                    return self._failed(i, self._describe_error(exc))
                if violations:
                    return self._failed(i, self.state.take_violation())  # type: ignore[arg-type]
                bare = bare or was_bare
                totals.append(total)
                rows.append(components)
            return None

        failure = self._under_deadline("compute_reward", timeout, run, totals)
        if failure is not None:
            return failure, b""
        keys = list(rows[0]) if rows else []
        reply: dict[str, Any] = {"ok": True, "k": keys, "bare": bare}
        values = np.asarray(totals, dtype=np.float64).tobytes()
        if all(len(row) == len(keys) and list(row) == keys for row in rows):
            names = keys
            values += np.asarray([list(row.values()) for row in rows], dtype=np.float64).tobytes()
        else:
            names = list({name: None for row in rows for name in row})
            reply["cd"] = rows
        for name in names:  # once per batch, not per call
            if not is_component_name(name):
                first = next(i for i, row in enumerate(rows) if name in row)
                return self._failed(first, _bad_name(name)), b""
        printed = self.state.take_printed()
        if request.get("want_print"):
            reply["printed"] = printed
        return reply, values

    def diagnose(self) -> dict[str, Any]:
        """What isolation is in effect, as seen from inside (trusted code, asked for by the host only)."""
        probes: dict[str, str] = {}
        try:
            fd = os.open(os.devnull, os.O_RDONLY)
            os.close(fd)
            probes["open_file"] = "allowed"
        except OSError as exc:
            probes["open_file"] = f"refused: {exc.strerror}"
        try:
            pid = os.fork()
        except OSError as exc:
            probes["fork"] = f"refused: {exc.strerror}"
        else:
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            probes["fork"] = "allowed"
        # Needs no descriptor, so it shows the filesystem rules rather than RLIMIT_NOFILE. /tmp lets
        # anyone create entries: only Landlock refuses this (and if it is off, the entry is removed at once).
        probe_dir = f"/tmp/.rewardsmith-probe-{os.getpid()}"
        try:
            os.mkdir(probe_dir)
        except OSError as exc:
            probes["create_directory"] = f"refused: {exc.strerror}"
        else:
            os.rmdir(probe_dir)
            probes["create_directory"] = "allowed"
        address_space = resource.getrlimit(resource.RLIMIT_AS)[0]
        if address_space == resource.RLIM_INFINITY:
            probes["allocate_address_space_limit"] = "no limit set"
        else:
            try:
                block = bytearray(address_space)  # more than is left under the limit, by construction
                del block
                probes["allocate_address_space_limit"] = "allowed"
            except MemoryError:
                probes["allocate_address_space_limit"] = "refused: MemoryError"
        try:
            cwd = os.getcwd()
        except OSError as exc:
            cwd = f"unknown: {exc.strerror}"
        return {
            "ok": True,
            "pid": os.getpid(),
            "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups(),
            "cwd": cwd,
            "environ": sorted(os.environ),
            "rlimits": {name: list(resource.getrlimit(getattr(resource, name))) for name in _LIMIT_NAMES},
            "probes": probes,
            **self.report,
        }

    def _under_deadline(self, what: str, timeout: float, run: Callable[[], dict[str, Any] | None],
                        done: Sized) -> dict[str, Any] | None:
        """Run ``run`` (the calls of one request; it returns its failure reply, or None) under the request's
        timer, then free what it left; None when it finished in time, else the failure reply.

        ``done`` holds the results of the calls that returned so far: a deadline that fires between calls
        is reported at the next one, a swallowed one at the last.
        """
        _arm(timeout)
        try:
            failure = run()
        except _Deadline:  # fired between calls
            return self.timed_out(f"{what} ran past its deadline", len(done))
        finally:
            self._end_request()  # also after a failure: nothing of this request outlives it
        # the code, or a generator it left unfinished, swallowed the timer's exception
        if failure is None and _Alarm.fired:
            return self.timed_out(f"{what} ran past its {timeout:g} s deadline (it caught the timer's exception; "
                                  "do not catch BaseException)", max(len(done) - 1, 0))
        return failure

    def _failed(self, index: int, issue: Issue) -> dict[str, Any]:
        self.state.take_violation()
        return {"ok": False, "index": index, "issue": issue.to_dict(), "printed": self.state.take_printed()}

    def _run_guarded(self, fn: Any, timeout: float, code: str, what: str) -> Issue | None:
        _arm(timeout)
        try:
            fn()
        except _Deadline:
            return Issue("timeout", f"{what} did not finish within {timeout:g} s")
        except BaseException as exc:  # noqa: BLE001
            return self._describe_error(exc, code)
        finally:
            self._end_request()
        if _Alarm.fired:
            return Issue("timeout", f"{what} did not finish within {timeout:g} s (it caught the timer's "
                                    "exception; do not catch BaseException)")
        return self.state.take_violation()

    def _describe_error(self, exc: BaseException, code: str = "runtime_error") -> Issue:
        violation = self.state.take_violation()
        if violation is not None:
            return violation
        if isinstance(exc, _BadReturn):
            return Issue(exc.code, str(exc))
        line = _reward_line(exc.__traceback__)
        if isinstance(exc, SizeCapError):
            return Issue("memory", f"{type(exc).__name__}: {_short(exc)}", line)
        if isinstance(exc, MemoryError):
            detail = _short(exc) or "out of memory"
            return Issue("memory", f"MemoryError: {detail} (the sandbox allows {self.limits.get('memory_mb')} MB of "
                                   "address space; reward code needs small arrays only)", line)
        if isinstance(exc, RecursionError):
            return Issue(code, "RecursionError: the program recursed too deeply; use a loop", line)
        if isinstance(exc, (SandboxViolation, ModuleAttributeError)):
            return Issue("forbidden_attribute", _short(exc), line)
        if isinstance(exc, NameError):
            return Issue("forbidden_name", f"{type(exc).__name__}: {_short(exc)} (only math, numpy, typing and "
                                           "common builtins are available; import what you use)", line)
        if isinstance(exc, (SystemExit, KeyboardInterrupt, GeneratorExit)):
            return Issue(code, f"{type(exc).__name__} raised by reward code (not allowed)", line)
        if not isinstance(exc, Exception):
            return Issue(code, f"{type(exc).__name__} raised by reward code (raise an Exception subclass, or better, "
                               f"return a value): {_short(exc)}", line)
        return Issue(code, f"{type(exc).__name__}: {_short(exc)}", line)

    def _end_request(self, generation: int | None = None) -> bool:
        """Free what the request left (under its still-armed timer), then stop the timer, restore numpy.

        Returns:
            Whether the collecting finished; if not, ``_Alarm.fired`` is set and the request is refused.
        """
        clean = False
        try:
            clean = _collect_leftovers(generation)
        except _Deadline:  # fired in between two collections: the flag is set
            pass
        finally:
            _disarm()
            self._restore_numpy()
        return clean

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


WIDE_OBSERVATION = 64
"""Observations of more values than this reach the views as read-only numpy rows instead of tuples of floats."""


def _decode_batch(blob: bytes, n: int, d: int, width: int,
                  integer_actions: bool) -> tuple[list[Any], list[Any], list[Any], tuple[list[Any], ...]]:
    """Observations and actions per transition, and the info columns (env_reward, terminated, truncated, step)."""
    floats = n * d * 8
    if d <= WIDE_OBSERVATION:
        obs = np.frombuffer(blob, np.float64, n * d, 0).reshape(n, d).tolist()
        next_obs = np.frombuffer(blob, np.float64, n * d, floats).reshape(n, d).tolist()
    else:  # an image: each row a read-only view of one copy, not thousands of Python floats
        rows = np.frombuffer(blob, np.float64, 2 * n * d, 0).reshape(2 * n, d).copy()
        rows.flags.writeable = False
        obs, next_obs = list(rows[:n]), list(rows[n:])
    raw = np.frombuffer(blob, np.int64 if integer_actions else np.float64, n * width, 2 * floats).reshape(n, width)
    if integer_actions and width == 1:
        actions = raw[:, 0].tolist()
    else:  # one read-only copy of the block; each action is a read-only view of its row
        block = raw.copy()
        block.flags.writeable = False
        actions = list(block)
    info = np.frombuffer(blob, np.float64, 4 * n, 2 * floats + n * width * 8).reshape(4, n)
    columns = (info[0].tolist(), (info[1] > 0.5).tolist(), (info[2] > 0.5).tolist(), list(map(int, info[3].tolist())))
    return obs, next_obs, actions, columns


def _decode_episode(layout: dict[str, Slot], header: dict[str, Any], blob: bytes) -> Episode:
    """An episode from its frame: ``t`` steps, ``d`` values per observation, actions of shape ``as`` (int64 when
    ``ai``), the flags ``term`` and ``trunc``; the blob holds the observations, the actions, then the rewards."""
    steps, width = int(header["t"]), int(header["d"])
    shape = tuple(int(n) for n in header["as"])
    if steps < 0 or width < 0 or not shape or shape[0] != steps:
        raise ValueError("the sizes do not agree")
    n_obs, n_actions = (steps + 1) * width, math.prod(shape)
    if len(blob) != 8 * (n_obs + n_actions + steps):
        raise ValueError(f"{len(blob)} bytes do not hold the episode the header describes")
    obs = np.frombuffer(blob, np.float64, n_obs, 0).reshape(steps + 1, width).copy()
    actions = np.frombuffer(blob, np.int64 if header.get("ai") else np.float64, n_actions, 8 * n_obs)
    actions = actions.reshape(shape).copy()
    rewards = np.frombuffer(blob, np.float64, steps, 8 * (n_obs + n_actions)).copy()
    for array in (obs, actions, rewards):
        array.flags.writeable = False
    return Episode(obs=NamedArrays(layout, obs), actions=actions, env_rewards=rewards,
                   terminated=bool(header.get("term")), truncated=bool(header.get("trunc")))


def _to_float(value: Any, what: str) -> float:
    kind = type(value)
    if kind is not float and kind is not int:
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
    if number - number != 0.0:
        raise _BadReturn("non_finite", f"{what} is {number}; guard divisions and logs so every value stays finite")
    return number


def _bad_name(name: Any) -> Issue:
    """The refusal of a component name that breaks the rule, quoting (the start of) the name."""
    if isinstance(name, str):
        shown = repr(name if len(name) <= MAX_COMPONENT_NAME + 8 else name[:MAX_COMPONENT_NAME + 8] + "…")
    else:
        shown = f"of type {type(name).__name__}"
    return Issue("bad_components", f"component name {shown} is not allowed: {COMPONENT_NAME_RULE}")


def _coerce(out: Any) -> tuple[float, dict[str, float], bool]:
    if type(out) is tuple and len(out) == 2 and type(out[1]) is dict and len(out[1]) <= MAX_COMPONENTS:
        clean = {}
        for key, value in out[1].items():  # the common case, checked with the least work
            if type(key) is not str or not 0 < len(key) <= MAX_COMPONENT_NAME:
                break
            kind = type(value)
            if kind is float or kind is np.float64:  # finite floats need no conversion check (nor message)
                number = float(value)
                if number - number == 0.0:
                    clean[key] = number
                    continue
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
            raise _BadReturn("bad_components", f"{len(components)} components in one call; "
                                               f"{COMPONENT_NAME_RULE}")
        clean: dict[str, float] = {}
        for key, value in components.items():
            if not isinstance(key, str) or not key or len(key) > MAX_COMPONENT_NAME:
                raise _BadReturn("bad_components", _bad_name(key).message)
            clean[key] = _to_float(value, f"component {key!r}")
        return total, clean, False
    if not isinstance(out, (int, float, np.integer, np.floating, np.bool_, np.ndarray)):
        raise _BadReturn("bad_return", f"compute_reward returned {type(out).__name__}; return (total, components): "
                                       "a float and a dict of named floats")
    return _to_float(out, "the return value"), {}, True


if __name__ == "__main__":
    main()
