"""Envs without a rewardsmith spec, registered on import so that any process can make them.

``gym.make("tests.helpers_docenv:RewardsmithSled-v0")`` imports this module first, so the CLI run
as a subprocess, and its worker processes, reach the same envs.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

SLED_ID = "RewardsmithSled-v0"
DICT_ID = "RewardsmithDictObs-v0"
LAKE_EDGE = 3.0


class SledEnv(gym.Env):
    """
    ## Description

    A rocket sled slides on a frozen lake. Its rocket pushes it left or right while fuel lasts.

    ## Action Space

    The action is an int in `{0, 1, 2}`:

    - 0: fire the rocket to the left
    - 1: coast
    - 2: fire the rocket to the right

    ## Observation Space

    The observation is a `ndarray` with shape `(3,)`:

    | Num | Observation    | Min  | Max | Unit               |
    |-----|----------------|------|-----|--------------------|
    | 0   | Sled Position  | -10  | 10  | position (m)       |
    | 1   | Sled Velocity  | -Inf | Inf | velocity (m/s)     |
    | 2   | Fuel left      | 0    | 1   | unitless           |

    ## Rewards

    A reward of `-0.1` for every step with the rocket firing, `+1` for every step spent within 0.5 m of the centre.

    ## Episode End

    1. Termination: the sled slides off the lake (|Sled Position| > 3).
    2. Truncation: after 100 steps.
    """

    observation_space = gym.spaces.Box(np.array([-10.0, -np.inf, 0.0], dtype=np.float32),
                                       np.array([10.0, np.inf, 1.0], dtype=np.float32))
    action_space = gym.spaces.Discrete(3)

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode

    def _get_obs(self) -> np.ndarray:
        return np.array([self.x, self.v, self.fuel], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.v, self.fuel = float(self.np_random.uniform(-0.5, 0.5)), 0.0, 1.0
        return self._get_obs(), {}

    def step(self, action):
        firing = int(action) != 1 and self.fuel > 0
        if firing:
            self.v += 0.3 * (int(action) - 1)
            self.fuel = max(self.fuel - 0.01, 0.0)
        self.x += 0.1 * self.v
        reward = (1.0 if abs(self.x) < 0.5 else 0.0) - (0.1 if firing else 0.0)
        terminated = abs(self.x) > LAKE_EDGE
        info = {"distance_to_shore": LAKE_EDGE - abs(self.x), "thrusting": firing}
        return self._get_obs(), reward, terminated, False, info


class DictObsEnv(gym.Env):
    """An env whose observation is a Dict: rewardsmith needs a flat Box."""

    observation_space = gym.spaces.Dict({"position": gym.spaces.Box(-1, 1, (1,)),
                                         "fuel": gym.spaces.Box(0, 1, (1,))})
    action_space = gym.spaces.Discrete(2)

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


for _id, _entry in ((SLED_ID, "tests.helpers_docenv:SledEnv"), (DICT_ID, "tests.helpers_docenv:DictObsEnv")):
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_entry, max_episode_steps=100)

SLED = f"tests.helpers_docenv:{SLED_ID}"
"""The id the CLI takes: the module to import, then the registered name."""
DICT_OBS = f"tests.helpers_docenv:{DICT_ID}"
