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
        self._obs: list[np.ndarray] = []
        self._actions: list[np.ndarray] = []
        self._rewards: list[float] = []
        self._infos: list[dict[str, Any]] = []
        self.last_value = math.nan
        """The fitness of the episode so far at the last step."""

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._obs, self._actions, self._rewards, self._infos = [np.asarray(obs, dtype=np.float64).ravel()], [], [], []
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._obs.append(np.asarray(obs, dtype=np.float64).ravel())
        self._actions.append(np.asarray(action))
        self._rewards.append(float(reward))
        self._infos.append(plain_info(info, step=True) if info else {})
        self.last_value = float(self.fitness(self.running_episode(terminated, truncated, info)))
        return obs, 1.0 if self.last_value >= self.solved else 0.0, terminated, truncated, info

    def running_episode(self, terminated: bool, truncated: bool, info: dict[str, Any]) -> Episode:
        """The episode so far, as a fitness reads a recorded one."""
        return build_episode(self.env_spec, self.task_spec, self._obs, self._actions, self._rewards,
                             list(self._infos), terminated, truncated, info)


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
