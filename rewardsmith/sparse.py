"""A sparse reward derived from a fitness's own success test, for ``evaluate --fitness``.

A fitness with ``SOLVED`` says what success is, but only of a whole episode. The sparse reward asks the same
question of the episode *so far*: on each step it pays 1 when the fitness of the running episode (the reset
observation and every step up to and including this one, as an :class:`~rewardsmith.episode.Episode` that is
neither terminated nor truncated until its last step) reaches ``SOLVED``, and 0 otherwise.

That is well defined only when the fitness can score any prefix of an episode: :func:`sparse_problem` calls it
on every prefix of a few random-policy episodes and says why not when it raises, returns something that is not
a finite number, or is too slow to call on every training step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from rewardsmith.episode import Episode
from rewardsmith.rollouts import build_episode
from rewardsmith.sandbox import plain_info
from rewardsmith.spec import EnvSpec, TaskSpec

__all__ = ["CALL_LIMIT_S", "SparseFromFitness", "sparse_definition", "sparse_problem"]

CALL_LIMIT_S = 0.005
"""The most a fitness may take on one prefix: the sparse reward calls it on every training step."""
PROBE_EPISODES = 3
PROBE_SEED = 4242


def sparse_definition(label: str, solved: float) -> str:
    """The sparse row's meaning in one line, for the evaluation's notes."""
    return (f"sparse: 1 on each step where the episode so far scores ≥ {solved:g} (SOLVED) under {label}, "
            "else 0")


class SparseFromFitness(gym.Wrapper):
    """Replaces the env's reward with 1 on the steps where the running episode's fitness reaches ``solved``."""

    def __init__(self, env: gym.Env, spec: EnvSpec, task: TaskSpec, fitness: Callable[[Episode], float],
                 solved: float) -> None:
        super().__init__(env)
        self.env_spec, self.task_spec, self.fitness, self.solved = spec, task, fitness, solved
        self._obs, self._actions, self._rewards = _Rows(), _Rows(), _Rows()
        self._infos: list[dict[str, Any]] = []
        self.last_value = math.nan
        """The fitness of the episode so far at the last step."""

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._obs, self._actions, self._rewards, self._infos = _Rows(), _Rows(), _Rows(), []
        self._obs.append(np.asarray(obs, dtype=np.float64).ravel())
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._obs.append(np.asarray(obs, dtype=np.float64).ravel())
        self._actions.append(np.asarray(action))
        self._rewards.append(np.float64(reward))
        self._infos.append(plain_info(info, step=True) if info else {})
        self.last_value = float(self.fitness(self.running_episode(terminated, truncated, info)))
        return obs, 1.0 if self.last_value >= self.solved else 0.0, terminated, truncated, info

    def running_episode(self, terminated: bool, truncated: bool, info: dict[str, Any]) -> Episode:
        """The episode so far, as a fitness reads a recorded one (its arrays are views of this episode's rows)."""
        return build_episode(self.env_spec, self.task_spec, self._obs.view(), self._actions.view(),
                             self._rewards.view(), list(self._infos), terminated, truncated, info)


class _Rows:
    """Rows of one shape and type appended one at a time into a buffer that doubles as it fills, so that the
    running episode reads the rows so far as a view instead of rebuilding an array of every row on every step.
    A view's rows never change afterwards: later rows go past its end, and a grown buffer is a new array."""

    def __init__(self) -> None:
        self._buffer: np.ndarray | None = None
        self._count = 0

    def append(self, row: np.ndarray) -> None:
        row = np.asarray(row)
        if self._buffer is None:
            self._buffer = np.empty((64, *row.shape), dtype=row.dtype)
        elif self._count == len(self._buffer):
            self._buffer = np.concatenate([self._buffer, np.empty_like(self._buffer)])
        self._buffer[self._count] = row
        self._count += 1

    def view(self) -> np.ndarray:
        return self._buffer[:self._count] if self._buffer is not None else np.empty(0)


def sparse_problem(spec: EnvSpec, task: TaskSpec, fitness: Callable[[Episode], float], solved: float,
                   label: str) -> str | None:
    """Why the sparse reward is not well defined for this fitness, or None when it is.

    The fitness is called on every prefix of :data:`PROBE_EPISODES` random-policy episodes, exactly as training
    would call it."""
    if not math.isfinite(solved):
        return f"no sparse row: {label} has no SOLVED threshold, so it defines no success to pay for"
    env = SparseFromFitness(spec.make(task), spec, task, fitness, solved)
    env.action_space.seed(PROBE_SEED)
    calls, spent = 0, 0.0
    try:
        for episode in range(PROBE_EPISODES):
            env.reset(seed=PROBE_SEED + episode)
            done, step = False, 0
            while not done:
                step += 1
                started = time.perf_counter()
                try:
                    _, _, terminated, truncated, _ = env.step(env.action_space.sample())
                except Exception as exc:  # the user's trusted fitness, called on what it was not written for
                    reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
                    return (f"no sparse row: {label} cannot score an episode so far (it raised {reason} on the "
                            f"first {step} step(s) of a random-policy episode)")
                spent += time.perf_counter() - started
                calls += 1
                if not math.isfinite(env.last_value):
                    return (f"no sparse row: {label} gave {env.last_value} on the first {step} step(s) of a "
                            "random-policy episode, not a finite number")
                done = terminated or truncated
    finally:
        env.close()
    if calls and spent / calls > CALL_LIMIT_S:
        return (f"no sparse row: {label} takes {1000 * spent / calls:.1f} ms on an episode so far; the sparse "
                f"reward would call it on every training step (limit {1000 * CALL_LIMIT_S:g} ms)")
    return None
