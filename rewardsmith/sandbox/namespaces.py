"""The only modules reward code can import: read-only namespaces, never the real modules.

``numpy`` is a whitelist of what reward code needs (construction with size caps, element-wise
math, reductions, ``linalg.norm``, ``clip``, ``where`` …). File I/O, ``ctypeslib``, ``f2py``,
``testing``, ``ma``, ``lib``, ``random``, ``vectorize``, ``frompyfunc``, ``apply_along_axis``,
``frombuffer``, error-state and print-option setters are left out.
"""

from __future__ import annotations

import math
import operator
import typing
from collections.abc import Callable
from functools import reduce
from typing import Any

import numpy as np

__all__ = ["MAX_ELEMENTS", "SafeModule", "SizeCapError", "safe_modules"]

MAX_ELEMENTS = 1_000_000
"""The most elements an array built inside reward code may hold."""


class SizeCapError(MemoryError):
    """An array construction asked for more than MAX_ELEMENTS elements."""


class SafeModule:
    """A read-only namespace that stands in for a module."""

    __slots__ = ("_name", "_members")

    def __init__(self, name: str, members: dict[str, Any]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_members", dict(members))

    def __getattr__(self, name: str) -> Any:
        members = object.__getattribute__(self, "_members")
        try:
            return members[name]
        except KeyError:
            module = object.__getattribute__(self, "_name")
            raise AttributeError(f"{module}.{name} is not available in reward code") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("modules are read-only in reward code")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("modules are read-only in reward code")

    def __repr__(self) -> str:
        return f"<sandboxed module {object.__getattribute__(self, '_name')}>"

    def names(self) -> list[str]:
        return sorted(object.__getattribute__(self, "_members"))


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


def _array(obj: Any, *args: Any, **kwargs: Any) -> np.ndarray:
    result = np.array(obj, *args, **kwargs)
    _cap(result.size, "np.array")
    return result


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
sort argsort searchsorted nonzero flatnonzero argwhere unique count_nonzero
""".split()

_SHAPING = """
asarray asanyarray atleast_1d atleast_2d reshape ravel squeeze expand_dims transpose concatenate stack hstack
vstack column_stack zeros_like ones_like full_like copy shape size ndim broadcast_to flip roll
""".split()

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
    members["array"] = _array
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
    return SafeModule("numpy", members)


def _math_namespace() -> SafeModule:
    return SafeModule("math", {name: getattr(math, name) for name in dir(math) if not name.startswith("_")})


def _typing_namespace() -> SafeModule:
    names = ("Any", "Dict", "List", "Tuple", "Optional", "Union", "Sequence", "Mapping", "Callable",
             "Iterable", "Final", "cast", "SupportsFloat")
    return SafeModule("typing", {name: getattr(typing, name) for name in names if hasattr(typing, name)})


def safe_modules() -> dict[str, SafeModule]:
    """Fresh namespaces by import name: ``math``, ``numpy``, ``numpy.linalg``, ``typing``."""
    numpy_ns = _numpy_namespace()
    return {
        "math": _math_namespace(),
        "numpy": numpy_ns,
        "numpy.linalg": numpy_ns.linalg,
        "typing": _typing_namespace(),
    }
