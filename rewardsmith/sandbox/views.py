"""Read-only observation views handed to reward code: named fields and plain indexing.

A scalar field reads as a float (an int for a Discrete value), a vector or array field as a
read-only array of its shape, and a nested field either way: ``obs.robot.joint_pos`` (the group
``robot`` is itself a view) or ``obs["robot.joint_pos"]``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from rewardsmith.episode import FieldNames, Slot, field_layout, group_layout

__all__ = ["ObservationBase", "make_view_class", "readonly_array"]


class ObservationBase:
    """An observation: ``obs.pole_angle``, ``obs[2]``, ``obs[0:2]`` (an array), ``len(obs)``, ``np.asarray(obs)``."""

    __slots__ = ("_v",)
    _fields: tuple[str, ...] = ()
    _getters: dict[str, Callable[[Any], Any]] = {}

    def __init__(self, values: Sequence[float]) -> None:
        self._v = values if type(values) is np.ndarray else tuple(values)  # a wide row stays a read-only array

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            return readonly_array(self._v[key])
        if isinstance(key, str):
            try:
                getter = self._getters[key]
            except KeyError:
                raise KeyError(f"no observation field {key!r}; valid fields: {', '.join(self._fields)}") from None
            return getter(self)
        return self._v[operator.index(key)]

    def __getattr__(self, name: str) -> Any:
        # Reached only when no field property matched.
        raise AttributeError(f"the observation has no field {name!r}; valid fields: {', '.join(self._fields)}")

    def __len__(self) -> int:
        return len(self._v)

    def __iter__(self) -> Iterator[float]:
        return iter(self._v)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return readonly_array(self._v, dtype)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={_short(get(self))}" for name, get in self._getters.items())
        return f"Observation({inner})"

    def keys(self) -> tuple[str, ...]:
        return self._fields


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return np.array2string(value, precision=4, threshold=8)
    return f"{value:.4g}"


def make_view_class(fields: FieldNames) -> type[ObservationBase]:
    """A view class whose properties are the env's field names, each reading its own slot."""
    layout = field_layout(fields)
    return _view_class(layout, "Observation")


def _view_class(layout: Mapping[str, Slot], class_name: str) -> type[ObservationBase]:
    top, groups = group_layout(layout)
    getters: dict[str, Callable[[Any], Any]] = {}
    namespace: dict[str, Any] = {"__slots__": (), "_fields": tuple(layout), "_getters": getters}
    for name, slot in top.items():
        getter = _field_getter(slot)
        getters[name] = getter
        namespace[name] = property(getter, doc=f"observation[{slot.index}]")
    for head, (start, end, inner) in groups.items():
        group = _view_class(inner, f"{class_name}.{head}")
        namespace[head] = property(_group_getter(group, start, end), doc=f"observation[{start}:{end}]")
        for name in inner:
            getters[f"{head}.{name}"] = _nested_getter(group._getters[name], group, start, end)
    return type(class_name, (ObservationBase,), namespace)


def _field_getter(slot: Slot) -> Callable[[ObservationBase], Any]:
    index = slot.index
    if slot.scalar_float:  # the hot path: one tuple lookup
        def get(self: ObservationBase) -> Any:
            return self._v[index]
    elif not slot.shape:
        def get(self: ObservationBase) -> Any:
            return int(self._v[index])
    else:
        end, shape, dtype = index + slot.size, slot.shape, np.int64 if slot.integer else np.float64

        def get(self: ObservationBase) -> Any:
            return readonly_array(self._v[index:end], dtype).reshape(shape)
    return get


def _group_getter(group: type[ObservationBase], start: int, end: int) -> Callable[[ObservationBase], Any]:
    def get(self: ObservationBase) -> ObservationBase:
        return group(self._v[start:end])

    return get


def _nested_getter(inner: Callable[[Any], Any], group: type[ObservationBase], start: int,
                   end: int) -> Callable[[ObservationBase], Any]:
    def get(self: ObservationBase) -> Any:
        return inner(group(self._v[start:end]))

    return get


def readonly_array(values: Any, dtype: Any = None) -> np.ndarray:
    array = np.array(values, dtype=dtype or np.float64)
    array.flags.writeable = False
    return array
