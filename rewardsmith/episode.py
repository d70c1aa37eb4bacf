"""One recorded evaluation episode: what a fitness function reads.

A fitness function is trusted code (the user's own, or a bundled spec's) with the signature::

    def fitness(episode: Episode) -> float: ...

``episode.obs.cart_position`` (or ``episode.obs["cart_position"]``) is that field's value at
every step, the reset observation first, so it holds ``len(episode) + 1`` values;
``episode.actions`` and ``episode.env_rewards`` hold one entry per step.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Episode", "FieldNames", "NamedArrays", "NamedValues", "field_index"]

FieldNames = Sequence[str] | Mapping[str, int]
"""Field names with the observation index each reads (a spec's ``field_index``), or names bound by position."""


def field_index(fields: FieldNames) -> dict[str, int]:
    """Each field name with its observation index: a mapping as given, a sequence by position."""
    if isinstance(fields, Mapping):
        return {str(name): int(index) for name, index in fields.items()}
    return {str(name): i for i, name in enumerate(fields)}


class NamedValues(Mapping[str, float]):
    """One observation with its fields by name (``obs.pole_angle``) and by key (``obs["pole_angle"]``)."""

    __slots__ = ("_index", "_values")

    def __init__(self, names: FieldNames, values: Sequence[float]) -> None:
        self._index = field_index(names)
        self._values = [float(v) for v in values]

    def __getitem__(self, key: str | int) -> float:
        if isinstance(key, int):
            return self._values[key]
        return self._values[self._index[key]]

    def __getattr__(self, name: str) -> float:
        try:
            return self._values[self._index[name]]
        except KeyError:
            raise AttributeError(f"no observation field {name!r}; fields: {', '.join(self._index)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={self._values[i]:.4g}" for k, i in self._index.items() if i < len(self._values))
        return f"NamedValues({inner})"


class NamedArrays(Mapping[str, np.ndarray]):
    """A (steps, observation values) array whose columns are reachable by field name (each its own index)."""

    __slots__ = ("_index", "data")

    def __init__(self, names: FieldNames, data: np.ndarray) -> None:
        self._index = field_index(names)
        array = np.asarray(data, dtype=np.float64)
        self.data = array if array.ndim == 2 else array.reshape(len(array), -1 if array.size else len(self._index))

    def __getitem__(self, key: str) -> np.ndarray:
        return self.data[:, self._index[key]]

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.data[:, self._index[name]]
        except KeyError:
            raise AttributeError(f"no observation field {name!r}; fields: {', '.join(self._index)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

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
