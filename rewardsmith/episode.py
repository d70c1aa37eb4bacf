"""One recorded evaluation episode: what a fitness function reads.

A fitness function is trusted code (the user's own, or a bundled spec's) with the signature::

    def fitness(episode: Episode) -> float: ...

``episode.obs.cart_position`` (or ``episode.obs["cart_position"]``) is that field's value at
every step, the reset observation first, so it holds ``len(episode) + 1`` values (an array field
``(len(episode) + 1, *shape)``; a nested one reads as ``episode.obs.robot.joint_pos``);
``episode.actions`` and ``episode.env_rewards`` hold one entry per step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Episode", "FieldNames", "NamedArrays", "NamedValues", "Slot", "field_layout", "group_layout",
           "plain_layout"]


class Slot(NamedTuple):
    """Where one field sits in the flat observation vector and how it reads."""

    index: int
    shape: tuple[int, ...] = ()
    """() for a scalar; a vector or array field covers ``prod(shape)`` values from ``index``."""
    integer: bool = False
    """Reads as int (a Discrete, MultiDiscrete or MultiBinary observation)."""

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def scalar_float(self) -> bool:
        return not self.shape and not self.integer


FieldNames = Sequence[str] | Mapping[str, Any]
"""A field layout: names with their slot (a spec's ``field_layout``: an index for a scalar float field,
``(index, shape, integer)`` otherwise, lists where it crossed as JSON), or names bound by position."""


def field_layout(fields: FieldNames) -> dict[str, Slot]:
    """Each field name with its slot: a mapping as given, a sequence of names by position."""
    if not isinstance(fields, Mapping):
        return {str(name): Slot(i) for i, name in enumerate(fields)}
    layout = {}
    for name, where in fields.items():
        if isinstance(where, (list, tuple)):
            index, shape, integer = where
            layout[str(name)] = Slot(int(index), tuple(int(n) for n in shape), bool(integer))
        else:
            layout[str(name)] = Slot(int(where))
    return layout


def plain_layout(layout: Mapping[str, Slot]) -> dict[str, Any]:
    """A layout as JSON: an index for a scalar float field, ``[index, shape, integer]`` otherwise."""
    return {name: s.index if s.scalar_float else [s.index, list(s.shape), s.integer] for name, s in layout.items()}


def group_layout(layout: Mapping[str, Slot]) -> tuple[dict[str, Slot], dict[str, tuple[int, int, dict[str, Slot]]]]:
    """Split a layout at its dotted names: the top-level fields, and each group (``robot`` of
    ``robot.joint_pos``) with the span of values it covers and its members' layout relative to that span."""
    top: dict[str, Slot] = {}
    members: dict[str, dict[str, Slot]] = {}
    for name, slot in layout.items():
        head, dot, rest = name.partition(".")
        if dot:
            members.setdefault(head, {})[rest] = slot
        else:
            top[name] = slot
    groups = {}
    for head, inner in members.items():
        start = min(s.index for s in inner.values())
        end = max(s.index + s.size for s in inner.values())
        groups[head] = (start, end, {n: s._replace(index=s.index - start) for n, s in inner.items()})
    return top, groups


def _read(values: np.ndarray, slot: Slot) -> Any:
    """One field of one observation: a float, an int, or a read-only array of its shape."""
    if not slot.shape:
        return int(values[slot.index]) if slot.integer else float(values[slot.index])
    array = np.array(values[slot.index:slot.index + slot.size], dtype=np.int64 if slot.integer else np.float64)
    array = array.reshape(slot.shape)
    array.flags.writeable = False
    return array


def _column(data: np.ndarray, slot: Slot) -> np.ndarray:
    """One field at every step: (steps,) for a scalar, (steps, *shape) for an array field."""
    if not slot.shape:
        column = data[:, slot.index]
    else:
        column = data[:, slot.index:slot.index + slot.size].reshape(len(data), *slot.shape)
    return column.astype(np.int64) if slot.integer else column


class NamedValues(Mapping[str, Any]):
    """One observation with its fields by name (``obs.pole_angle``, ``obs.robot.joint_pos``) and by key
    (``obs["pole_angle"]``, ``obs["robot.joint_pos"]``); scalars read as floats (ints for integer fields),
    array fields as read-only arrays."""

    __slots__ = ("_index", "_values")

    def __init__(self, names: FieldNames, values: Sequence[float]) -> None:
        self._index = field_layout(names)
        self._values = np.asarray(values, dtype=np.float64).ravel()

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, (int, np.integer)):
            return float(self._values[key])
        return _read(self._values, self._index[key])

    def __getattr__(self, name: str) -> Any:
        try:
            return _read(self._values, self._index[name])
        except KeyError:
            top, groups = group_layout(self._index)
            if name in groups:
                start, end, inner = groups[name]
                return NamedValues(inner, self._values[start:end])
            raise AttributeError(f"no observation field {name!r}; fields: {', '.join(self._index)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={_short(_read(self._values, s))}" for k, s in self._index.items()
                          if s.index + s.size <= len(self._values))
        return f"NamedValues({inner})"


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return np.array2string(value, precision=4, threshold=8)
    return f"{value:.4g}"


WIDE_ROWS = 1024
"""Recorded observations wider than this (images) keep float32 values, which hold them exactly, at half the memory."""


class NamedArrays(Mapping[str, np.ndarray]):
    """A (steps, observation values) array whose fields are reachable by name: a scalar field is a
    (steps,) column, an array field a (steps, *shape) block."""

    __slots__ = ("_index", "data")

    def __init__(self, names: FieldNames, data: np.ndarray) -> None:
        self._index = field_layout(names)
        array = np.asarray(data)
        if not (array.dtype == np.float32 and array.ndim == 2 and array.shape[1] > WIDE_ROWS):
            array = np.asarray(array, dtype=np.float64)
        width = sum(s.size for s in self._index.values())
        self.data = array if array.ndim == 2 else array.reshape(len(array), -1 if array.size else width)

    def __getitem__(self, key: str) -> np.ndarray:
        return _column(self.data, self._index[key])

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return _column(self.data, self._index[name])
        except KeyError:
            top, groups = group_layout(self._index)
            if name in groups:
                start, end, inner = groups[name]
                return NamedArrays(inner, self.data[:, start:end])  # type: ignore[return-value]
            raise AttributeError(f"no observation field {name!r}; fields: {', '.join(self._index)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def layout(self) -> dict[str, Slot]:
        return dict(self._index)

    def row(self, step: int) -> NamedValues:
        """The observation at ``step`` (0 is the reset observation, -1 the last)."""
        return NamedValues(self._index, self.data[step])


@dataclass
class Episode:
    """A recorded episode.

    Attributes:
        obs: every observation by field name, the reset observation first (``len + 1`` rows).
        actions: the action taken at each step.
        env_rewards: the environment's own reward at each step.
        terminated: the episode ended in a terminal state (fell, crashed, reached the goal).
        truncated: the episode was cut by the time limit.
        final_info: the ``info`` dict of the last step.
        components: per-step values of each component of the reward being trained, when recorded.
        shaped: per-step total of the reward being trained, when recorded.
        infos: the env's own plain info values at each step (None when the env reports none).
        cause: the termination cause named by the env spec, filled in by the recorder.
    """

    obs: NamedArrays
    actions: np.ndarray
    env_rewards: np.ndarray
    terminated: bool
    truncated: bool
    final_info: dict[str, Any] = field(default_factory=dict)
    components: dict[str, np.ndarray] = field(default_factory=dict)
    shaped: np.ndarray | None = None
    infos: list[dict[str, Any]] | None = None
    cause: str | None = None

    def __len__(self) -> int:
        return len(self.env_rewards)

    @property
    def env_return(self) -> float:
        """The sum of the environment's own rewards."""
        return float(np.sum(self.env_rewards))

    @property
    def final(self) -> NamedValues:
        """The last observation, by field name."""
        return self.obs.row(-1)
