"""Recording evaluation episodes of a policy, many envs stepped side by side.

The fitness that scores candidates is computed from these recordings, never from the reward
being trained: a policy is judged by what it does, not by what it was paid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from rewardsmith.episode import WIDE_ROWS, Episode, NamedArrays
from rewardsmith.sandbox import RewardSandbox, Transitions, plain_info
from rewardsmith.spec import EnvSpec, TaskSpec

__all__ = [
    "FitnessSummary",
    "Policy",
    "annotate_components",
    "build_episode",
    "episode_transitions",
    "random_policy",
    "record_episodes",
    "score_episodes",
]

Policy = Callable[[np.ndarray], np.ndarray]
"""Maps a batch of raw observations to a batch of actions."""


@dataclass(frozen=True)
class FitnessSummary:
    mean: float
    std: float
    success_rate: float
    values: tuple[float, ...]
    episode_length: float


def random_policy(space: gym.Space, seed: int) -> Policy:
    """Uniformly random actions from ``space`` (seeded here): the critics' dry-run behaviour."""
    space.seed(seed)

    def policy(batch: np.ndarray) -> np.ndarray:
        return np.asarray([space.sample() for _ in range(len(batch))])

    return policy


def record_episodes(
    policy: Policy,
    spec: EnvSpec,
    task: TaskSpec,
    episodes: int,
    seed: int,
    render_first: bool = False,
) -> tuple[list[Episode], list[np.ndarray]]:
    """Run ``episodes`` episodes side by side until each ends.

    Returns:
        The recorded episodes (in seed order) and, with ``render_first``, the RGB frames of the
        first one.
    """
    envs = [spec.make(task, render_mode="rgb_array" if (render_first and i == 0) else None)
            for i in range(episodes)]
    frames: list[np.ndarray] = []
    try:
        obs_rows: list[list[np.ndarray]] = []
        actions: list[list[np.ndarray]] = [[] for _ in envs]
        rewards: list[list[float]] = [[] for _ in envs]
        infos: list[list[dict]] = [[] for _ in envs]
        finished: list[Episode | None] = [None] * len(envs)
        current = []
        for i, env in enumerate(envs):
            obs, _ = env.reset(seed=seed + i)
            obs_rows.append([_row(obs)])
            current.append(obs)
        if render_first:
            frames.append(envs[0].render())
        active = list(range(len(envs)))
        while active:
            batch = np.asarray([current[i] for i in active])
            chosen = policy(batch)
            still = []
            for row, i in enumerate(active):
                action = chosen[row]
                obs, reward, terminated, truncated, info = envs[i].step(action)
                actions[i].append(np.asarray(action))
                rewards[i].append(float(reward))
                infos[i].append(_step_info(info))
                obs_rows[i].append(_row(obs))
                current[i] = obs
                if render_first and i == 0:
                    frames.append(envs[0].render())
                if terminated or truncated:
                    finished[i] = build_episode(spec, task, obs_rows[i], actions[i], rewards[i], infos[i], terminated,
                                           truncated, info)
                else:
                    still.append(i)
            active = still
    finally:
        for env in envs:
            env.close()
    return [e for e in finished if e is not None], frames


_EMPTY: dict = {}


def _row(obs: np.ndarray) -> np.ndarray:
    """One observation as recorded: float64, except a wide float32 one (an image), which float32 holds exactly."""
    row = np.asarray(obs)
    return row.copy() if row.dtype == np.float32 and row.size > WIDE_ROWS else np.asarray(row, dtype=np.float64)


def _step_info(info: dict) -> dict:
    """The env's own plain info values of one step (what reward code sees besides our four keys)."""
    return plain_info(info, step=True) if info else _EMPTY


def build_episode(spec: EnvSpec, task: TaskSpec, obs: Sequence[np.ndarray], actions: Sequence[np.ndarray],
                  rewards: Sequence[float], infos: list[dict], terminated: bool, truncated: bool,
                  info: dict) -> Episode:
    """An episode as a fitness reads it, from its rows (the reset observation first), with its termination cause
    if it has ended (``info``: the last step's); one still running (a prefix) has none."""
    episode = Episode(
        obs=NamedArrays(spec.field_layout, np.asarray(obs).reshape(len(obs), -1)),
        actions=np.asarray(actions),
        env_rewards=np.asarray(rewards, dtype=np.float64),
        terminated=bool(terminated),
        truncated=bool(truncated and not terminated),
        final_info=plain_info(info),
        infos=infos if any(infos) else None,
    )
    if terminated or truncated:
        episode.cause = spec.termination_cause(episode.final, episode.final_info, episode.truncated, task)
    return episode


def score_episodes(episodes: Sequence[Episode], fitness: Callable[[Episode], float], solved: float) -> FitnessSummary:
    """Mean and spread of fitness over episodes; an episode succeeds when its fitness reaches ``solved``."""
    values = [float(fitness(e)) for e in episodes]
    values = [v if np.isfinite(v) else float("-inf") for v in values]
    finite = [v for v in values if np.isfinite(v)]
    mean = float(np.mean(finite)) if len(finite) == len(values) and values else float("-inf")
    return FitnessSummary(
        mean=mean,
        std=float(np.std(finite)) if finite else 0.0,
        success_rate=float(np.mean([v >= solved for v in values])) if values else 0.0,
        values=tuple(values),
        episode_length=float(np.mean([len(e) for e in episodes])) if episodes else 0.0,
    )


def episode_transitions(episode: Episode) -> Transitions:
    """An episode's steps as a batch the sandbox can score."""
    data = episode.obs.data
    steps = len(episode)
    terminated = np.zeros(steps, dtype=bool)
    truncated = np.zeros(steps, dtype=bool)
    if steps:
        terminated[-1] = episode.terminated
        truncated[-1] = episode.truncated
    actions = episode.actions
    if actions.dtype.kind not in "iu":
        actions = actions.astype(np.float64)
    return Transitions(
        obs=data[:-1], actions=actions, next_obs=data[1:], env_reward=episode.env_rewards,
        terminated=terminated, truncated=truncated, step=np.arange(1, steps + 1), extra=episode.infos,
    )


def annotate_components(episodes: Sequence[Episode], sandbox: RewardSandbox, chunk: int = 1024) -> None:
    """Fill each episode's ``components`` and ``shaped`` with the reward's per-step values."""
    for episode in episodes:
        totals, rows = sandbox.call_chunked(episode_transitions(episode), chunk)
        names = sorted({name for row in rows for name in row})
        episode.components = {name: np.asarray([row.get(name, 0.0) for row in rows]) for name in names}
        episode.shaped = totals
