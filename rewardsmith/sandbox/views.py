"""Read-only observation views handed to reward code: named fields and plain indexing."""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from rewardsmith.episode import FieldNames, field_index

__all__ = ["ObservationBase", "make_view_class", "readonly_array"]


class ObservationBase:
    """An observation: ``obs.pole_angle``, ``obs[2]``, ``obs[0:2]`` (an array), ``len(obs)``, ``np.asarray(obs)``."""

    __slots__ = ("_v",)
    _fields: tuple[str, ...] = ()
    _positions: dict[str, int] = {}

    def __init__(self, values: Sequence[float]) -> None:
        self._v = tuple(values)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            return readonly_array(self._v[key])
        if isinstance(key, str):
            try:
                return self._v[self._positions[key]]
            except KeyError:
                raise KeyError(f"no observation field {key!r}; valid fields: {', '.join(self._fields)}") from None
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
        inner = ", ".join(f"{name}={self._v[i]:.4g}" for name, i in self._positions.items() if i < len(self._v))
        return f"Observation({inner})"

    def keys(self) -> tuple[str, ...]:
        return self._fields


def make_view_class(fields: FieldNames) -> type[ObservationBase]:
    """A view class whose properties are the env's field names, each reading its own index."""
    positions = field_index(fields)
    namespace: dict[str, Any] = {"__slots__": (), "_fields": tuple(positions), "_positions": positions}
    for name, index in positions.items():
        namespace[name] = property(_field_getter(index), doc=f"observation[{index}]")
    return type("Observation", (ObservationBase,), namespace)


def _field_getter(index: int) -> Any:
    def get(self: ObservationBase) -> float:
        return self._v[index]

    return get


def readonly_array(values: Any, dtype: Any = None) -> np.ndarray:
    array = np.array(values, dtype=dtype or np.float64)
    array.flags.writeable = False
    return array
