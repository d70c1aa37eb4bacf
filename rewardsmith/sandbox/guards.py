"""The run-time half of the restricting policy: guarded builtins and the hooks RestrictedPython calls.

RestrictedPython rewrites ``a.b`` to ``_getattr_(a, "b")``, ``a[i] = v`` to ``_write_(a)[i] = v``,
``print`` to a collector, and so on; this module supplies those hooks. Refusals raise
:class:`SandboxViolation`, a ``BaseException`` (``except Exception`` in reward code does not
swallow it), and are also recorded so that a program that swallows one anyway is still refused.

The attribute policy (:func:`_attribute_allowed`) is at least as strict as RestrictedPython's
``safer_getattr``: no name starting with ``_``, none of its ``INSPECT_ATTRIBUTES``, no ``format`` or
``format_map`` on anything (their field syntax walks attributes: ``"{0.__class__}"``), plus
:data:`DENIED_ATTRIBUTES` on every object. numpy objects, exceptions and functions get allow-lists
or nothing: whatever is reachable from an exposed object is exposed, and numpy objects reach raw
memory (``resize``, ``view``, ``ctypes``, ``data``), files (``tofile``) and pickles (``dumps``).
"""

from __future__ import annotations

import builtins
import operator
import types
from collections.abc import Callable
from typing import Any

import numpy as np
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from rewardsmith.sandbox.issues import Issue
from rewardsmith.sandbox.namespaces import SafeModule, TypeCheck, TypeHint

__all__ = ["GuardState", "SandboxViolation", "make_globals"]

DENIED_ATTRIBUTES = frozenset(INSPECT_ATTRIBUTES) | {
    # str.format / format_map walk attributes of their arguments ("{0.__class__}")
    "format", "format_map", "get_field", "get_value", "vformat",
    # class hierarchy and frame walks
    "mro", "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame", "ag_code",
    "f_back", "f_builtins", "f_globals", "f_locals", "f_code", "tb_frame", "tb_next", "func_globals",
    # numpy routes to raw memory, files and pickles
    "ctypes", "tofile", "dump", "dumps", "data", "base", "view", "setflags", "flags", "getfield", "setfield",
    "newbyteorder", "tostring", "fromfile", "load", "save", "savetxt", "loadtxt", "memmap", "lib",
    "resize", "__array_interface__", "__array_struct__",
}
"""Refused on every object, whatever its type."""

_NUMPY_VALUE_ATTRIBUTES = frozenset("""
T mT all any argmax argmin argpartition argsort astype choose clip compress conj conjugate copy cumprod cumsum
diagonal dot dtype fill flatten imag item itemsize max mean min nbytes ndim nonzero partition prod ptp put ravel
real repeat reshape round searchsorted shape size sort squeeze std strides sum swapaxes take tobytes tolist trace
transpose var as_integer_ratio is_integer hex
""".split())
"""Allowed on arrays and numpy scalars: math, shape and conversion to plain values. Not on the list
(refused): ``resize`` (frees memory other views still point to), ``view``, ``base``, ``data``, ``ctypes``,
``flags``/``setflags``, ``getfield``/``setfield``, ``tofile``/``dump``/``dumps``, ``flat``, ``device``, and
whatever a future numpy adds."""

_NUMPY_TYPE_ATTRIBUTES = frozenset({"fromhex"})
"""Allowed on numpy scalar types themselves (``np.float64.fromhex``)."""

_DTYPE_ATTRIBUTES = frozenset({"char", "itemsize", "kind", "name", "ndim", "shape", "str", "type"})
_UFUNC_ATTRIBUTES = frozenset({"accumulate", "at", "identity", "nargs", "nin", "nout", "ntypes", "outer",
                               "reduce", "reduceat", "signature", "types"})
_EXCEPTION_ATTRIBUTES = frozenset({"args"})
"""Exceptions expose their arguments only: ``obj``, ``name``, ``__traceback__``, ``with_traceback`` … are refused."""

_REFUSAL_HINTS = {
    "format": "str.format walks attributes of its arguments; use f-strings",
    "format_map": "str.format_map walks attributes of its arguments; use f-strings",
    "resize": "in-place resizing frees memory that other views may still point to; build a new array "
              "(np.zeros, np.concatenate)",
    "view": "views reinterpret raw memory; use .astype() or .reshape()",
    "flat": "use .ravel() or .flatten()",
}

_DENIED_TYPES = (
    types.FrameType, types.TracebackType, types.CodeType, types.GeneratorType, types.CoroutineType,
    types.AsyncGeneratorType, types.ModuleType, types.FunctionType, types.MethodType, types.CellType,
    TypeHint, TypeCheck, types.GenericAlias,  # list[int].copy would reach list.copy, np.float64[int] its methods
    type(np.sum),  # numpy's _ArrayFunctionDispatcher: np.sum, np.linalg.norm …
)
"""Every attribute of these is refused."""


class SandboxViolation(BaseException):
    """Reward code reached for something the sandbox does not expose."""


class GuardState:
    """Per-program state of the guards: recorded violations and captured print output."""

    def __init__(self, print_cap: int = 4096) -> None:
        self.violations: list[Issue] = []
        self.printed: list[str] = []
        self.printed_size = 0
        self.print_cap = print_cap

    def refuse(self, code: str, message: str) -> SandboxViolation:
        if len(self.violations) < 16:
            self.violations.append(Issue(code, message))
        return SandboxViolation(message)

    def take_violation(self) -> Issue | None:
        """The first violation since the last call (and forget the rest)."""
        if not self.violations:
            return None
        first = self.violations[0]
        self.violations.clear()
        return first

    def write(self, text: str) -> None:
        room = self.print_cap - self.printed_size
        if room > 0:
            piece = str(text)[:room]
            self.printed.append(piece)
            self.printed_size += len(piece)

    def take_printed(self) -> str:
        """The output printed since the last take; the next request gets its own ``print_cap`` characters."""
        text = "".join(self.printed)
        self.printed.clear()
        self.printed_size = 0
        return text


class _PrintCollector:
    """What ``print`` writes to inside reward code: a capped buffer, never stdout.

    RestrictedPython turns ``print(x)`` into ``_print._call_print(x)`` and the name ``printed`` into
    ``_print()``, the text printed so far; ``_print`` itself is out of reach (its name starts with ``_``).
    """

    __slots__ = ("_state",)

    def __init__(self, state: GuardState) -> None:
        self._state = state

    def __call__(self) -> str:
        return "".join(self._state.printed)

    def _call_print(self, *objects: Any, **kwargs: Any) -> None:
        sep = kwargs.get("sep", " ")
        end = kwargs.get("end", "\n")
        self._state.write(str(sep).join(str(o)[:1024] for o in objects) + str(end))


class _ArrayWriter:
    """``_write_`` for ndarrays: item writes go through, attribute writes are refused."""

    __slots__ = ("_array", "_state")

    def __init__(self, array: np.ndarray, state: GuardState) -> None:
        object.__setattr__(self, "_array", array)
        object.__setattr__(self, "_state", state)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._array[key] = value

    def __delitem__(self, key: Any) -> None:
        raise TypeError("array items cannot be deleted")

    def __setattr__(self, name: str, value: Any) -> None:
        raise self._state.refuse("forbidden_attribute", f"writing the attribute {name!r} of an array is not "
                                                        "allowed; assign to items (a[i] = v) instead")

    __delattr__ = __setattr__  # type: ignore[assignment]


class _ReadOnly:
    """``_write_`` for everything else: every write is refused with what it tried."""

    __slots__ = ("_what", "_state")

    def __init__(self, target: Any, state: GuardState) -> None:
        object.__setattr__(self, "_what", _describe(target))
        object.__setattr__(self, "_state", state)

    def _refuse(self, action: str) -> SandboxViolation:
        return self._state.refuse("forbidden_attribute",
                                  f"{action} on {self._what} is not allowed in reward code; only dicts, lists "
                                  "and numpy arrays can be modified (observations are read-only)")

    def __setitem__(self, key: Any, value: Any) -> None:
        raise self._refuse("item assignment")

    def __delitem__(self, key: Any) -> None:
        raise self._refuse("item deletion")

    def __setattr__(self, name: str, value: Any) -> None:
        raise self._refuse(f"setting .{name}")

    def __delattr__(self, name: str) -> None:
        raise self._refuse(f"deleting .{name}")


def _describe(obj: Any) -> str:
    if isinstance(obj, SafeModule):
        return repr(obj)
    if isinstance(obj, type):
        return f"the type {obj.__name__}"
    return f"a {type(obj).__name__}"


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "<<=": operator.ilshift,
    ">>=": operator.irshift, "&=": operator.iand, "^=": operator.ixor, "|=": operator.ior,
    "@=": operator.imatmul,
}

_SAFE_BUILTIN_NAMES = (
    "abs all any bool callable chr complex dict divmod enumerate filter float frozenset int isinstance "
    "issubclass iter len list map max min next pow range repr reversed round set slice sorted str sum tuple "
    "zip hash ord hex oct bin True False None Ellipsis NotImplemented"
).split()

_EXCEPTIONS = (
    "ArithmeticError AssertionError AttributeError BaseException Exception FloatingPointError IndexError "
    "KeyError LookupError NameError NotImplementedError OverflowError RecursionError RuntimeError StopIteration "
    "TypeError ValueError ZeroDivisionError"
).split()


def make_globals(state: GuardState, modules: dict[str, SafeModule]) -> dict[str, Any]:
    """Fresh globals for one reward program: guarded builtins and the RestrictedPython hooks."""
    allowed_cache: dict[tuple[type, str], bool] = {}

    def guarded_getattr(obj: Any, name: str, *default: Any) -> Any:
        kind = type(obj)
        key = (obj if kind is type else kind, name)  # classes are keyed by themselves: np.float64 is not dict
        verdict = allowed_cache.get(key)
        if verdict is None:
            verdict = _attribute_allowed(obj, name)
            if len(allowed_cache) < 4096:
                allowed_cache[key] = verdict
        if not verdict:
            if type(name) is not str:
                raise TypeError("attribute name must be a string")
            if name.startswith("_"):
                why = "names that start with an underscore are not available in reward code"
            else:
                why = _REFUSAL_HINTS.get(name, "it is not exposed to reward code")
            if isinstance(obj, SafeModule):
                module = object.__getattribute__(obj, "_name")
                detail = "" if name not in _REFUSAL_HINTS and not name.startswith("_") else f": {why}"
                raise state.refuse("forbidden_attribute", f"{module}.{name} is not available in reward code{detail}")
            raise state.refuse("forbidden_attribute", f"the attribute {name!r} of {_describe(obj)} is refused: {why}")
        return getattr(obj, name, *default)

    def guarded_hasattr(obj: Any, name: str) -> bool:
        try:
            guarded_getattr(obj, name)
        except AttributeError:
            return False
        return True

    def guarded_import(name: str, globals_: Any = None, locals_: Any = None, fromlist: Any = (),
                       level: int = 0) -> SafeModule:
        if level != 0:
            raise state.refuse("forbidden_import", "relative imports are not allowed")
        if type(name) is not str:
            raise state.refuse("forbidden_import", "import needs a module name")
        if name not in modules:
            raise state.refuse("forbidden_import", f"`import {name}` is not allowed: reward code may import only "
                                                   f"{', '.join(sorted(modules))}")
        return modules[name] if fromlist else modules[name.split(".")[0]]

    def guarded_write(obj: Any) -> Any:
        kind = type(obj)
        if kind is dict or kind is list:
            return obj
        if isinstance(obj, np.ndarray):
            return _ArrayWriter(obj, state)
        return _ReadOnly(obj, state)

    def inplacevar(op: str, x: Any, y: Any) -> Any:
        fn = _INPLACE.get(op)
        if fn is None:
            raise state.refuse("restricted", f"the operator {op} is not supported")
        return fn(x, y)

    def apply(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    collector = _PrintCollector(state)
    safe = {name: getattr(builtins, name) for name in _SAFE_BUILTIN_NAMES}
    safe.update({name: getattr(builtins, name) for name in _EXCEPTIONS})
    safe["getattr"] = guarded_getattr
    safe["hasattr"] = guarded_hasattr
    safe["__import__"] = guarded_import
    return {
        "__builtins__": safe,
        "__name__": "reward",
        "_getattr_": guarded_getattr,
        "_getitem_": operator.getitem,
        "_getiter_": iter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": guarded_write,
        "_inplacevar_": inplacevar,
        "_apply_": apply,
        "_print_": lambda _getattr_=None: collector,
    }


def _attribute_allowed(obj: Any, name: Any) -> bool:
    """The attribute policy. It depends only on ``name`` and ``type(obj)``, or on ``obj`` itself when it is a
    class, which is what the guard caches on."""
    if type(name) is not str or not name or name.startswith("_") or name in DENIED_ATTRIBUTES:
        return False
    if isinstance(obj, _DENIED_TYPES):
        return False
    if isinstance(obj, (np.ndarray, np.generic)):
        return name in _NUMPY_VALUE_ATTRIBUTES
    if isinstance(obj, type) and issubclass(obj, (np.ndarray, np.generic)):
        return name in _NUMPY_TYPE_ATTRIBUTES
    if isinstance(obj, np.dtype):
        return name in _DTYPE_ATTRIBUTES
    if isinstance(obj, np.ufunc):
        return name in _UFUNC_ATTRIBUTES
    if isinstance(obj, BaseException):
        return name in _EXCEPTION_ATTRIBUTES
    return True
