"""Envs without a rewardsmith spec, registered on import so that any process can make them.

``gym.make("tests.helpers_docenv:RewardsmithSled-v0")`` imports this module first, so the CLI run
as a subprocess, and its worker processes, reach the same envs.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

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
    """An env whose observation is a Dict of two one-element Boxes (sorted keys: fuel, position)."""

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


class RoverEnv(gym.Env):
    """
    ## Description

    A rover drives on a plain towards the origin. Driving drains its battery.

    ## Observation Space

    A Dict: `position` (x, y in m), `velocity` (m/s), `battery` (charge left, 0 to 1).
    """

    observation_space = gym.spaces.Dict(OrderedDict(  # an OrderedDict keeps this order; a dict would be sorted
        position=gym.spaces.Box(-5.0, 5.0, (2,)),
        velocity=gym.spaces.Box(-1.0, 1.0, (2,)),
        battery=gym.spaces.Box(0.0, 1.0, ()),
    ))
    action_space = gym.spaces.Discrete(5)
    """0: brake, 1..4: push +x, -x, +y, -y."""

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode

    def _get_obs(self) -> dict:
        return {"position": self.position.astype(np.float32), "velocity": self.velocity.astype(np.float32),
                "battery": np.float32(self.battery)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = self.np_random.uniform(-3.0, 3.0, 2)
        self.velocity = np.zeros(2)
        self.battery = 1.0
        return self._get_obs(), {}

    def step(self, action):
        push = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]][int(action)], dtype=np.float64)
        self.velocity = np.clip(0.8 * self.velocity + 0.2 * push, -1.0, 1.0) if int(action) else 0.5 * self.velocity
        self.position = np.clip(self.position + 0.1 * self.velocity, -5.0, 5.0)
        self.battery = max(self.battery - (0.005 if int(action) else 0.001), 0.0)
        distance = float(np.linalg.norm(self.position))
        return self._get_obs(), -distance, self.battery <= 0.0, False, {"distance": distance}


class GoalEnv(gym.Env):
    """A point reaching for a goal: Gymnasium-Robotics' goal-conditioned layout (a plain dict space, so its keys
    are sorted: achieved_goal, desired_goal, observation)."""

    observation_space = gym.spaces.Dict({
        "observation": gym.spaces.Box(-np.inf, np.inf, (4,), np.float64),
        "achieved_goal": gym.spaces.Box(-2.0, 2.0, (2,), np.float64),
        "desired_goal": gym.spaces.Box(-2.0, 2.0, (2,), np.float64),
    })
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode

    def _get_obs(self) -> dict:
        return {"observation": np.concatenate([self.point, self.speed]), "achieved_goal": self.point.copy(),
                "desired_goal": self.goal.copy()}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.point, self.speed = np.zeros(2), np.zeros(2)
        self.goal = self.np_random.uniform(-1.5, 1.5, 2)
        return self._get_obs(), {}

    def step(self, action):
        self.speed = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0) * 0.1
        self.point = np.clip(self.point + self.speed, -2.0, 2.0)
        distance = float(np.linalg.norm(self.point - self.goal))
        success = distance < 0.1
        return self._get_obs(), -float(not success), success, False, {"is_success": success}


class _SampledEnv(gym.Env):
    """An env whose observations are samples of its space (seeded): enough to carry each kind of space."""

    action_space = gym.spaces.Discrete(2)

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode
        self.observation_space = copy.deepcopy(type(self).observation_space)  # each env samples its own

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(2 ** 31)))
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), float(action), False, False, {}


class NestedEnv(_SampledEnv):
    observation_space = gym.spaces.Dict(OrderedDict(
        robot=gym.spaces.Dict(OrderedDict(joint_pos=gym.spaces.Box(-3.0, 3.0, (3,)), gripper=gym.spaces.Discrete(2))),
        target=gym.spaces.Box(-1.0, 1.0, (3,)),
    ))


class TupleObsEnv(_SampledEnv):
    observation_space = gym.spaces.Tuple((gym.spaces.Discrete(5), gym.spaces.Box(-1.0, 1.0, (2,))))


class GridEnv(_SampledEnv):
    observation_space = gym.spaces.Discrete(9, start=1)


class MultiDiscreteEnv(_SampledEnv):
    observation_space = gym.spaces.MultiDiscrete([4, 3])


class MultiBinaryEnv(_SampledEnv):
    observation_space = gym.spaces.MultiBinary(4)


class MatrixEnv(_SampledEnv):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2, 3))


class TextObsEnv(_SampledEnv):
    """An observation rewardsmith cannot read: text."""

    observation_space = gym.spaces.Text(8)


ENVS = {
    SLED_ID: "SledEnv", DICT_ID: "DictObsEnv", "RewardsmithRover-v0": "RoverEnv", "RewardsmithGoal-v0": "GoalEnv",
    "RewardsmithNested-v0": "NestedEnv", "RewardsmithTuple-v0": "TupleObsEnv", "RewardsmithGrid-v0": "GridEnv",
    "RewardsmithMultiDiscrete-v0": "MultiDiscreteEnv", "RewardsmithMultiBinary-v0": "MultiBinaryEnv",
    "RewardsmithMatrix-v0": "MatrixEnv", "RewardsmithText-v0": "TextObsEnv",
}
for _id, _class in ENVS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=f"tests.helpers_docenv:{_class}", max_episode_steps=100)

SLED = f"tests.helpers_docenv:{SLED_ID}"
"""The id the CLI takes: the module to import, then the registered name."""
DICT_OBS = f"tests.helpers_docenv:{DICT_ID}"
ROVER = "tests.helpers_docenv:RewardsmithRover-v0"
GOAL = "tests.helpers_docenv:RewardsmithGoal-v0"
NESTED = "tests.helpers_docenv:RewardsmithNested-v0"
TUPLE_OBS = "tests.helpers_docenv:RewardsmithTuple-v0"
GRID = "tests.helpers_docenv:RewardsmithGrid-v0"
MULTI_DISCRETE = "tests.helpers_docenv:RewardsmithMultiDiscrete-v0"
MULTI_BINARY = "tests.helpers_docenv:RewardsmithMultiBinary-v0"
MATRIX = "tests.helpers_docenv:RewardsmithMatrix-v0"
TEXT_OBS = "tests.helpers_docenv:RewardsmithText-v0"
