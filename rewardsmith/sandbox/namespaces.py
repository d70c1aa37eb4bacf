"""The only modules reward code can import: read-only namespaces, never the real modules.

``numpy`` is a whitelist of what reward code needs (construction with size caps, element-wise
math, reductions, ``linalg.norm``, ``clip``, ``where`` …). File I/O, ``ctypeslib``, ``f2py``,
``testing``, ``ma``, ``lib``, ``random``, ``vectorize``, ``frompyfunc``, ``apply_along_axis``,
``frombuffer``, ``ndarray`` itself (``np.ndarray`` is a stand-in that only answers ``isinstance``),
error-state and print-option setters are left out.

``typing`` and ``numpy.typing`` hold inert stand-ins (:class:`TypeHint`): annotations are
stripped before compiling, so these names only need to import and subscript. The real typing
objects forward attribute access to the classes they alias (``typing.Sequence.register`` would
reach the global ABC registry of the worker), so they are never handed out.

The element cap (:data:`MAX_ELEMENTS`) is a friendly early refusal for the construction
functions; the worker's address-space limit is what bounds every other allocation
(``a.repeat(10**9)``, ``np.multiply.outer`` …).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from functools import reduce
from typing import Any

import numpy as np

__all__ = [
    "MAX_ELEMENTS", "ModuleAttributeError", "SafeModule", "SizeCapError", "TypeCheck", "TypeHint", "safe_modules",
]

MAX_ELEMENTS = 1_000_000
"""The most elements an array built inside reward code may hold."""


class SizeCapError(MemoryError):
    """An array construction asked for more than MAX_ELEMENTS elements."""


class ModuleAttributeError(AttributeError):
    """A name the sandboxed module does not expose (``np.random``, ``np.load`` …)."""


class SafeModule:
    """A read-only namespace that stands in for a module.

    Members live in the instance ``__dict__`` so that ``np.cos`` is an ordinary, fast attribute
    lookup (this is on the hot path of every reward call); the dict itself is out of reach of
    reward code (``__dict__`` starts with an underscore, and ``vars`` is not a builtin there).
    """

    def __init__(self, name: str, members: dict[str, Any]) -> None:
        object.__setattr__(self, "_name", name)
        for key, value in members.items():
            if key.startswith("_") or key == "names":
                raise ValueError(f"{key!r} cannot be a member of a sandboxed module")
            object.__setattr__(self, key, value)

    def __getattr__(self, name: str) -> Any:  # only reached for names that are not members
        module = object.__getattribute__(self, "_name")
        raise ModuleAttributeError(f"{module}.{name} is not available in reward code")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("modules are read-only in reward code")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("modules are read-only in reward code")

    def __repr__(self) -> str:
        return f"<sandboxed module {object.__getattribute__(self, '_name')}>"

    def names(self) -> list[str]:
        return sorted(key for key in object.__getattribute__(self, "__dict__") if not key.startswith("_"))


def _cap(count: int, what: str) -> None:
    if count > MAX_ELEMENTS:
        raise SizeCapError(f"{what} would hold {count} elements; reward code may build arrays of at most "
                           f"{MAX_ELEMENTS} elements")


def _shape_size(shape: Any) -> int:
    if isinstance(shape, (int, np.integer)):
        return max(int(shape), 0)
    return reduce(operator.mul, (max(int(s), 0) for s in shape), 1)


def _capped_shape(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    def wrapper(shape: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        _cap(_shape_size(shape), f"np.{fn.__name__}")
        return fn(shape, *args, **kwargs)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _capped_result(fn: Callable[..., Any], size_of: Callable[..., int]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _cap(size_of(*args, **kwargs), f"np.{fn.__name__}")
        return fn(*args, **kwargs)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _arange_size(*args: Any, **kwargs: Any) -> int:
    start, stop, step = 0.0, None, 1.0
    values = [a for a in args if not isinstance(a, (type, np.dtype, str))]
    if len(values) == 1:
        stop = values[0]
    elif len(values) >= 2:
        start, stop = values[0], values[1]
        if len(values) >= 3:
            step = values[2]
    start = kwargs.get("start", start)
    stop = kwargs.get("stop", stop)
    step = kwargs.get("step", step)
    if stop is None or step == 0:
        return 0
    return max(int(math.ceil((float(stop) - float(start)) / float(step))), 0)


def _linspace_size(start: Any, stop: Any, num: int = 50, *args: Any, **kwargs: Any) -> int:
    return int(kwargs.get("num", num))


def _eye_size(n: int, m: int | None = None, *args: Any, **kwargs: Any) -> int:
    return int(n) * int(m if m is not None else n)


def _outer_size(a: Any, b: Any, *args: Any, **kwargs: Any) -> int:
    return int(np.size(a)) * int(np.size(b))


def _capped_after(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """Check the size of what ``fn`` built (its arguments do not say it simply)."""

    def wrapper(*args: Any, **kwargs: Any) -> np.ndarray:
        result = fn(*args, **kwargs)
        _cap(int(np.size(result)), f"np.{fn.__name__}")
        return result

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


_ELEMENTWISE = """
abs absolute sign sqrt cbrt square exp exp2 expm1 log log1p log2 log10 sin cos tan arcsin arccos arctan
arctan2 sinh cosh tanh arcsinh arccosh arctanh hypot deg2rad rad2deg degrees radians maximum minimum fmax fmin
floor ceil round around rint trunc fix mod fmod remainder power float_power reciprocal negative positive add
subtract multiply divide true_divide floor_divide isfinite isnan isinf isclose allclose nan_to_num
logical_and logical_or logical_not logical_xor greater greater_equal less less_equal equal not_equal
copysign heaviside sinc clip where select interp unwrap signbit
""".split()

_REDUCTIONS = """
sum prod mean average std var min max amin amax argmin argmax median percentile quantile ptp cumsum cumprod
nansum nanmean nanmax nanmin all any count_nonzero dot vdot inner cross matmul diff gradient trapezoid
sort argsort searchsorted nonzero flatnonzero argwhere unique
""".split()

_SHAPING = """
asarray asanyarray atleast_1d atleast_2d reshape ravel squeeze expand_dims transpose concatenate stack hstack
vstack column_stack copy shape size ndim broadcast_to flip roll
""".split()

_CAPPED_LIKE = ("zeros_like", "ones_like", "full_like")
"""Also shaping functions; exposed with a check on the size of what they built."""

_TYPES = """
float64 float32 float16 int64 int32 int16 int8 uint8 bool_ integer floating number ndarray generic
""".split()

_CONSTANTS = ("pi", "e", "inf", "nan", "newaxis", "euler_gamma")


def _numpy_namespace() -> SafeModule:
    members: dict[str, Any] = {}
    for name in _ELEMENTWISE + _REDUCTIONS + _SHAPING + list(_CONSTANTS):
        if hasattr(np, name):
            members[name] = getattr(np, name)
    for name in _TYPES:
        if hasattr(np, name) and name not in ("ndarray", "generic"):
            members[name] = getattr(np, name)
    members["ndarray"] = TypeCheck("numpy.ndarray", np.ndarray)
    members["generic"] = TypeCheck("numpy.generic", np.generic)
    for name in _CAPPED_LIKE:
        members[name] = _capped_after(getattr(np, name))
    members["array"] = _capped_after(np.array)
    for name in ("zeros", "ones"):
        members[name] = _capped_shape(getattr(np, name))
    members["full"] = _capped_shape(np.full)
    members["arange"] = _capped_result(np.arange, _arange_size)
    members["linspace"] = _capped_result(np.linspace, _linspace_size)
    members["eye"] = _capped_result(np.eye, _eye_size)
    members["identity"] = _capped_result(np.identity, _eye_size)
    members["outer"] = _capped_result(np.outer, _outer_size)
    members["linalg"] = SafeModule("numpy.linalg", {name: getattr(np.linalg, name)
                                                    for name in ("norm", "det", "inv", "solve", "pinv")})
    members["typing"] = SafeModule("numpy.typing", {name: TypeHint(f"numpy.typing.{name}")
                                                    for name in ("NDArray", "ArrayLike", "DTypeLike")})
    return SafeModule("numpy", members)


def _math_namespace() -> SafeModule:
    return SafeModule("math", {name: getattr(math, name) for name in dir(math) if not name.startswith("_")})


class TypeHint:
    """An inert stand-in for a typing name: it subscripts and unions to itself and has no attributes."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def __getitem__(self, item: Any) -> TypeHint:
        return self

    def __or__(self, other: Any) -> TypeHint:
        return self

    __ror__ = __or__

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("typing names are read-only in reward code")

    def __repr__(self) -> str:
        return object.__getattribute__(self, "_name")


class TypeCheck:
    """A stand-in for a class reward code may test against but not call: ``isinstance(x, np.ndarray)``.

    ``np.ndarray(shape, buffer=..., offset=..., strides=...)`` reads and writes any memory, so the class
    itself is never handed out.
    """

    __slots__ = ("_name", "_kind")

    def __init__(self, name: str, kind: type) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_kind", kind)

    def __instancecheck__(self, obj: Any) -> bool:
        return isinstance(obj, object.__getattribute__(self, "_kind"))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ModuleAttributeError(f"{object.__getattribute__(self, '_name')}(...) is not available in reward code; "
                                   "build arrays with np.array, np.zeros, np.ones or np.full")

    def __getitem__(self, item: Any) -> TypeCheck:
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("numpy names are read-only in reward code")

    def __repr__(self) -> str:
        return f"<sandboxed {object.__getattribute__(self, '_name')}>"


def _cast(kind: Any, value: Any) -> Any:
    return value


_TYPING_NAMES = (
    "Any", "Callable", "Dict", "Final", "FrozenSet", "Iterable", "Iterator", "List", "Literal", "Mapping",
    "Optional", "Sequence", "Set", "SupportsFloat", "SupportsInt", "Tuple", "TypeAlias", "Union",
)


def _typing_namespace() -> SafeModule:
    members: dict[str, Any] = {name: TypeHint(f"typing.{name}") for name in _TYPING_NAMES}
    members["cast"] = _cast
    members["TYPE_CHECKING"] = False
    return SafeModule("typing", members)


def safe_modules() -> dict[str, SafeModule]:
    """Fresh namespaces by import name: ``math``, ``numpy``, ``numpy.linalg``, ``numpy.typing``, ``typing``."""
    numpy_ns = _numpy_namespace()
    return {
        "math": _math_namespace(),
        "numpy": numpy_ns,
        "numpy.linalg": numpy_ns.linalg,
        "numpy.typing": numpy_ns.typing,
        "typing": _typing_namespace(),
    }
