"""A tiny env whose info carries its own keys (importable by spawned workers)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class InfoEnv(gym.Env):
    """A point on a line; info reports its distance to the target at x = 1."""

    observation_space = gym.spaces.Box(-5.0, 5.0, shape=(2,), dtype=np.float32)
    action_space = gym.spaces.Discrete(3)

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = float(self.np_random.uniform(-1, 1)), 0
        return np.array([self.x, 0.0], dtype=np.float32), {"distance": abs(self.x - 1.0)}

    def step(self, action):
        self.x = float(np.clip(self.x + 0.1 * (int(action) - 1), -5, 5))
        self.t += 1
        obs = np.array([self.x, self.t / 50], dtype=np.float32)
        return obs, -abs(self.x - 1.0), False, self.t >= 50, {"distance": abs(self.x - 1.0), "label": "ok"}


def register() -> str:
    env_id = "RewardsmithInfoEnv-v0"
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point="tests.helpers_envs:InfoEnv")
    return env_id
