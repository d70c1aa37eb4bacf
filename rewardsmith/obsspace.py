"""Any common observation space as one flat vector of values plus a field layout.

Reward code, fitness functions, the analyzer and the sandbox all read one flat float vector per
observation; fields name slices of it. This module turns a Gymnasium observation space (Box of any
shape, Discrete, MultiDiscrete, MultiBinary, and Dict and Tuple of them, nested) into that vector:

- values, not encodings: a Discrete observation is its int (``start`` included), not a one-hot row;
  a Box is its elements in C order; MultiDiscrete and MultiBinary their ints;
- in the space's own order: a ``Dict`` space's key order (Gymnasium sorts the keys of a plain dict
  it is given, and keeps an ``OrderedDict``'s order), a ``Tuple``'s positions;
- one field per leaf, named from the structure: a Dict key (``position``), nested keys joined with
  dots (``robot.joint_pos``), a Tuple position (``obs_0`` at the top, ``item_0`` below a key), and
  ``observation`` for a lone space that is not a flat Box. A flat ``Box`` is the exception that keeps
  every bundled spec as it was: one scalar field per element.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

__all__ = [
    "FlatObservation",
    "Leaf",
    "bounds",
    "flat_size",
    "flatten",
    "is_flat_box",
    "leaves",
    "space_problem",
]

_FLOAT64 = np.dtype(np.float64)

SUPPORTED = "Box, Discrete, MultiDiscrete, MultiBinary, and Dict or Tuple of them"
UNBOUNDED = 1e30
"""A declared bound at or beyond this magnitude means "no bound" (float32 max stands in for infinity)."""


@dataclass(frozen=True)
class Leaf:
    """One leaf of an observation space: where its values sit in the flat vector and what they are."""

    name: str
    """Dotted path from the structure (``position``, ``robot.joint_pos``, ``obs_0``)."""
    index: int
    shape: tuple[int, ...]
    integer: bool
    low: float | None
    """The smallest declared bound of its values (None where unbounded)."""
    high: float | None

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def is_flat_box(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 1


def space_problem(space: gym.Space) -> str | None:
    """Why rewardsmith cannot read ``space`` (the first unsupported part), or None when it can."""
    if isinstance(space, gym.spaces.Dict):
        return next((p for p in map(space_problem, space.spaces.values()) if p), None)
    if isinstance(space, gym.spaces.Tuple):
        return next((p for p in map(space_problem, space.spaces) if p), None)
    if isinstance(space, (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
        return None
    return f"it holds a {type(space).__name__} space; rewardsmith reads {SUPPORTED}"


def leaves(space: gym.Space) -> tuple[Leaf, ...]:
    """The fields a space's structure gives, in its own order (a flat Box: one scalar per element)."""
    if is_flat_box(space):
        return tuple(Leaf(f"obs_{i}", i, (), False, *_bounds(space.low[i:i + 1], space.high[i:i + 1]))
                     for i in range(int(space.shape[0])))
    if isinstance(space, gym.spaces.Tuple):
        found = list(_walk(space, "", 0, top=True))
    elif isinstance(space, gym.spaces.Dict):
        found = list(_walk(space, "", 0))
    else:
        found = list(_walk(space, "observation", 0))
    return tuple(found)


def _walk(space: gym.Space, path: str, index: int, top: bool = False) -> Iterator[Leaf]:
    if isinstance(space, gym.spaces.Dict):
        for key, sub in space.spaces.items():
            segment = _segment(str(key))
            yield from _walk(sub, f"{path}.{segment}" if path else segment, index)
            index += flat_size(sub)
        return
    if isinstance(space, gym.spaces.Tuple):
        for i, sub in enumerate(space.spaces):
            segment = f"obs_{i}" if top else f"item_{i}"
            yield from _walk(sub, f"{path}.{segment}" if path else segment, index)
            index += flat_size(sub)
        return
    if isinstance(space, gym.spaces.Box):
        yield Leaf(path, index, tuple(int(n) for n in space.shape), np.issubdtype(space.dtype, np.integer),
                   *_bounds(space.low, space.high))
    elif isinstance(space, gym.spaces.Discrete):
        yield Leaf(path, index, (), True, float(space.start), float(space.start + space.n - 1))
    elif isinstance(space, gym.spaces.MultiDiscrete):
        yield Leaf(path, index, tuple(int(n) for n in space.shape), True,
                   float(np.min(space.start)), float(np.max(space.start + space.nvec - 1)))
    elif isinstance(space, gym.spaces.MultiBinary):
        yield Leaf(path, index, tuple(int(n) for n in np.atleast_1d(space.n)), True, 0.0, 1.0)


_NOT_WORD = re.compile(r"[^0-9A-Za-z_]+")


def _segment(key: str) -> str:
    """A Dict key as one segment of a field name: an identifier (``joint-pos`` gives ``joint_pos``)."""
    segment = _NOT_WORD.sub("_", key).strip("_").lower() if not key.isidentifier() else key
    if not segment or segment[0].isdigit():
        segment = f"key_{segment}"
    return segment


def _bounds(low: np.ndarray, high: np.ndarray) -> tuple[float | None, float | None]:
    lo, hi = float(np.min(low)), float(np.max(high))
    lo_ok = math.isfinite(lo) and abs(lo) < UNBOUNDED
    hi_ok = math.isfinite(hi) and abs(hi) < UNBOUNDED
    return (float(str(np.min(low))) if lo_ok else None, float(str(np.max(high))) if hi_ok else None)


def flat_size(space: gym.Space) -> int:
    """How many values one observation of ``space`` flattens to."""
    if isinstance(space, gym.spaces.Dict):
        return sum(flat_size(s) for s in space.spaces.values())
    if isinstance(space, gym.spaces.Tuple):
        return sum(flat_size(s) for s in space.spaces)
    if isinstance(space, gym.spaces.Discrete):
        return 1
    if isinstance(space, gym.spaces.MultiBinary):
        return int(np.prod(space.n))
    return int(np.prod(space.shape))


def flatten(space: gym.Space, obs: object, dtype: np.dtype = _FLOAT64) -> np.ndarray:
    """One observation as its flat vector of values, in the space's own order."""
    parts: list[np.ndarray] = []
    _collect(space, obs, parts)
    return np.concatenate(parts).astype(dtype, copy=False) if len(parts) != 1 else \
        np.asarray(parts[0], dtype=dtype).ravel()


def _collect(space: gym.Space, obs: object, parts: list[np.ndarray]) -> None:
    if isinstance(space, gym.spaces.Dict):
        for key, sub in space.spaces.items():
            _collect(sub, obs[key], parts)  # type: ignore[index]
    elif isinstance(space, gym.spaces.Tuple):
        for sub, value in zip(space.spaces, obs):  # type: ignore[call-overload]
            _collect(sub, value, parts)
    else:
        parts.append(np.asarray(obs).ravel())


def _exact_in_float32(space: gym.Space) -> bool:
    """Every value of ``space`` is a float32 without rounding (so a narrower vector loses nothing)."""
    if isinstance(space, gym.spaces.Dict):
        return all(map(_exact_in_float32, space.spaces.values()))
    if isinstance(space, gym.spaces.Tuple):
        return all(map(_exact_in_float32, space.spaces))
    if isinstance(space, gym.spaces.Box):
        return space.dtype.itemsize <= 2 or space.dtype == np.float32
    if isinstance(space, gym.spaces.Discrete):
        return abs(int(space.start)) + int(space.n) < 2 ** 24
    if isinstance(space, gym.spaces.MultiDiscrete):
        return bool(np.all(np.abs(space.start) + space.nvec < 2 ** 24))
    return True


class FlatObservation(gym.ObservationWrapper):
    """An env whose observation is the flat vector of values of its own (any supported) observation.

    Unlike ``gymnasium.wrappers.FlattenObservation`` it keeps a Discrete value as one number (its int),
    so the vector reward code reads is the one the env means; the trainer one-hot encodes integer
    fields for the policy itself. The vector is float32 where that loses nothing (images stay small),
    float64 otherwise.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.structured = env.observation_space
        self.dtype = np.dtype(np.float32 if _exact_in_float32(self.structured) else np.float64)
        low, high = bounds(self.structured)
        self.observation_space = gym.spaces.Box(low.astype(self.dtype), high.astype(self.dtype), low.shape, self.dtype)

    def observation(self, observation: object) -> np.ndarray:
        return flatten(self.structured, observation, self.dtype)


def bounds(space: gym.Space) -> tuple[np.ndarray, np.ndarray]:
    """The element-wise bounds of the flat vector (-inf/inf where unbounded)."""
    if isinstance(space, gym.spaces.Dict):
        parts = [bounds(sub) for sub in space.spaces.values()]
    elif isinstance(space, gym.spaces.Tuple):
        parts = [bounds(sub) for sub in space.spaces]
    elif isinstance(space, gym.spaces.Box):
        return space.low.ravel().astype(np.float64), space.high.ravel().astype(np.float64)
    elif isinstance(space, gym.spaces.Discrete):
        return np.array([float(space.start)]), np.array([float(space.start + space.n - 1)])
    elif isinstance(space, gym.spaces.MultiDiscrete):
        return space.start.ravel().astype(np.float64), (space.start + space.nvec - 1).ravel().astype(np.float64)
    else:
        size = flat_size(space)
        return np.zeros(size), np.ones(size)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
