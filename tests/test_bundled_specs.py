"""The bundled env specs: fields, terminations, fitness functions, and every reward program they carry.

Fast: no PPO training. Each reward program (reference, sparse, and the built-in designer's default
composition) goes through the real critic, sandbox worker included.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from typer.testing import CliRunner

from rewardsmith.critic import Critic
from rewardsmith.designer.base import DesignContext
from rewardsmith.designer.builtin import BuiltinDesigner
from rewardsmith.episode import Episode, NamedArrays, NamedValues
from rewardsmith.rollouts import record_episodes
from rewardsmith.spec import bundled_names, list_specs, load_spec
from rewardsmith.task import TaskRef

FIELDS = {
    "cartpole": ("cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity"),
    "mountaincar": ("position", "velocity"),
    "mountaincar-continuous": ("position", "velocity"),
    "pendulum": ("cos_theta", "sin_theta", "angular_velocity"),
    "acrobot": ("cos_theta1", "sin_theta1", "cos_theta2", "sin_theta2", "theta1_dot", "theta2_dot"),
    "lunarlander": ("x", "y", "vx", "vy", "angle", "angular_velocity", "left_leg_contact", "right_leg_contact"),
}
GYM_IDS = {
    "cartpole": "CartPole-v1",
    "mountaincar": "MountainCar-v0",
    "mountaincar-continuous": "MountainCarContinuous-v0",
    "pendulum": "Pendulum-v1",
    "acrobot": "Acrobot-v1",
    "lunarlander": "LunarLander-v3",
}
try:
    import mujoco  # noqa: F401  (the mujoco extra)

    HAS_MUJOCO = True
except ImportError:
    HAS_MUJOCO = False

_ANT_LEGS = ("front_left", "front_right", "back_left", "back_right")
_ANT_JOINTS = tuple(f"{leg}_{part}" for leg in _ANT_LEGS for part in ("hip", "ankle"))
_ANT_BODIES = ("torso", *(f"{leg}_{part}" for leg in _ANT_LEGS for part in ("leg", "thigh", "shin")))
_ANT_WRENCH = ("torque_x", "torque_y", "torque_z", "force_x", "force_y", "force_z")
_PLANAR = ("torso_x_velocity", "torso_z_velocity", "torso_angular_velocity")
_WALKER_JOINTS = ("thigh", "leg", "foot", "left_thigh", "left_leg", "left_foot")
_CHEETAH_JOINTS = ("back_thigh", "back_shin", "back_foot", "front_thigh", "front_shin", "front_foot")
MUJOCO_FIELDS = {
    "hopper": ("torso_height", "torso_angle", "thigh_angle", "leg_angle", "foot_angle", *_PLANAR,
               "thigh_angular_velocity", "leg_angular_velocity", "foot_angular_velocity"),
    "walker2d": ("torso_height", "torso_angle", *(f"{j}_angle" for j in _WALKER_JOINTS), *_PLANAR,
                 *(f"{j}_angular_velocity" for j in _WALKER_JOINTS)),
    "halfcheetah": ("torso_z", "torso_angle", *(f"{j}_angle" for j in _CHEETAH_JOINTS), *_PLANAR,
                    *(f"{j}_angular_velocity" for j in _CHEETAH_JOINTS)),
    "ant": ("torso_height", *(f"torso_orientation_{c}" for c in "wxyz"), *(f"{j}_angle" for j in _ANT_JOINTS),
            *(f"torso_{c}_velocity" for c in "xyz"), *(f"torso_{c}_angular_velocity" for c in "xyz"),
            *(f"{j}_angular_velocity" for j in _ANT_JOINTS),
            *(f"contact_{body}_{part}" for body in _ANT_BODIES for part in _ANT_WRENCH)),
}
MUJOCO_IDS = {"hopper": "Hopper-v5", "walker2d": "Walker2d-v5", "halfcheetah": "HalfCheetah-v5", "ant": "Ant-v5"}
if HAS_MUJOCO:  # the same spec tests cover the MuJoCo specs where the extra is installed (CI installs it)
    FIELDS.update(MUJOCO_FIELDS)
    GYM_IDS.update(MUJOCO_IDS)
NAMES = sorted(FIELDS)
TASKS = [(name, task.name) for name in NAMES for task in load_spec(name).tasks]


def _task_id(pair: tuple[str, str]) -> str:
    return f"{pair[0]}:{pair[1]}"


# ------------------------------------------------------------------------------ loading and fields


def test_every_bundled_spec_is_covered_and_loads():
    assert set(bundled_names()) >= set(NAMES)
    assert {spec.name for spec in list_specs()} >= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_spec_loads_by_name_and_gym_id(name):
    spec = load_spec(name)
    assert spec.name == name
    assert spec.gym_id == GYM_IDS[name]
    assert load_spec(spec.gym_id) is spec
    assert spec.source == "bundled"


@pytest.mark.parametrize("name", NAMES)
def test_fields_match_the_observation_space(name):
    spec = load_spec(name)
    env = gym.make(spec.gym_id)
    try:
        (size,) = env.observation_space.shape
        low, high = env.observation_space.low, env.observation_space.high
    finally:
        env.close()
    assert spec.field_names == FIELDS[name]
    assert len(spec.fields) == size
    assert [f.index for f in spec.fields] == list(range(size))
    for f in spec.fields:
        assert f.meaning, f"{name}.{f.name} has no meaning"
        if f.low is not None and f.high is not None:
            assert f.low < f.high
            # documented ranges sit inside the space's own bounds (where it has finite ones)
            if np.isfinite(low[f.index]):
                assert f.low >= low[f.index] - 1e-3, f"{name}.{f.name}"
            if np.isfinite(high[f.index]):
                assert f.high <= high[f.index] + 1e-3, f"{name}.{f.name}"


@pytest.mark.parametrize("name", NAMES)
def test_spec_has_one_default_task_and_at_least_one_novel_one(name):
    spec = load_spec(name)
    defaults = [t for t in spec.tasks if t.default]
    assert len(defaults) == 1
    assert len(spec.tasks) >= 2
    assert len({t.name for t in spec.tasks}) == len(spec.tasks)
    assert spec.ppo.timesteps > 0
    for task in spec.tasks:
        assert task.description and task.fitness_doc
        assert math.isfinite(task.solved)
        assert task.sparse_reward, f"{name}:{task.name} has no sparse reward"
        if not task.default:
            assert task.reference_reward, f"{name}:{task.name} has no reference reward"
        if task.wrappers:
            assert task.env_changes, f"{name}:{task.name} changes the env without saying how"


@pytest.mark.parametrize("pair", TASKS, ids=_task_id)
def test_describe_renders_every_task(pair):
    name, task_name = pair
    spec = load_spec(name)
    task = spec.task(task_name)
    text = spec.describe(task)
    assert spec.gym_id in text
    for field_name in spec.field_names:
        assert field_name in text
    for cause in spec.terminations:
        assert (f"- {cause.name}:" in text) == task.applies(cause), cause.name
    if task.env_changes:
        assert task.env_changes in text


def test_the_envs_command_lists_every_bundled_spec():
    from rewardsmith.cli import app

    result = CliRunner().invoke(app, ["envs"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for name in NAMES:
        spec = load_spec(name)
        assert name in result.output
        assert spec.gym_id in result.output
        for task in spec.tasks:
            assert task.name in result.output
    assert "box2d" in result.output


def test_lunarlander_needs_box2d():
    assert load_spec("lunarlander").extra == "box2d"
    assert all(load_spec(name).extra is None for name in NAMES if name != "lunarlander" and name not in MUJOCO_IDS)


def test_every_bundled_spec_is_tested_or_needs_a_missing_extra():
    assert set(bundled_names()) == set(FIELDS) | (set() if HAS_MUJOCO else set(MUJOCO_IDS))


# ------------------------------------------------------------------------------ terminations


def _cause(name: str, values: list[float], truncated: bool = False) -> str:
    spec = load_spec(name)
    return spec.termination_cause(NamedValues(spec.field_names, values), {}, truncated)


def test_mountaincar_terminations():
    assert _cause("mountaincar", [0.52, 0.01]) == "reached_goal"
    assert _cause("mountaincar", [-0.5, 0.0]) == "terminated"
    assert _cause("mountaincar", [-0.5, 0.0], truncated=True) == "timeout"
    assert _cause("mountaincar-continuous", [0.46, 0.02]) == "reached_goal"
    assert _cause("mountaincar-continuous", [0.2, 0.02]) == "terminated"
    assert _cause("mountaincar-continuous", [0.46, 0.02], truncated=True) == "timeout"


def test_pendulum_only_times_out():
    assert load_spec("pendulum").terminations == ()
    assert _cause("pendulum", [1.0, 0.0, 0.0], truncated=True) == "timeout"


def test_acrobot_terminates_at_the_bar():
    up = [math.cos(math.pi), math.sin(math.pi), 1.0, 0.0, 0.0, 0.0]  # both links straight up: tip height 2
    assert _cause("acrobot", up) == "reached_bar"
    hanging = [1.0, 0.0, 1.0, 0.0, 0.0, 0.0]  # tip height -2
    assert _cause("acrobot", hanging) == "terminated"
    level = [0.0, 1.0, 1.0, 0.0, 0.0, 0.0]  # first link horizontal, second in line: tip height 0
    assert _cause("acrobot", level) == "terminated"


def test_lunarlander_terminations():
    assert _cause("lunarlander", [1.02, 0.5, 0.3, -0.1, 0.1, 0.0, 0.0, 0.0]) == "flew_off"
    assert _cause("lunarlander", [-1.01, 0.5, -0.3, -0.1, 0.1, 0.0, 0.0, 0.0]) == "flew_off"
    assert _cause("lunarlander", [0.05, 0.0, 0.0, 0.0, 0.01, 0.0, 1.0, 1.0]) == "landed"
    assert _cause("lunarlander", [0.05, 1.9, 0.0, 0.3, 0.01, 0.0, 0.0, 0.0]) == "flew_up"
    assert _cause("lunarlander", [0.3, 0.05, -0.4, -0.9, 0.8, 0.4, 0.0, 1.0]) == "crashed"
    assert _cause("lunarlander", [0.3, 0.05, -0.4, -0.9, 0.8, 0.4, 0.0, 1.0], truncated=True) == "timeout"


def test_acrobot_keep_above_ignores_the_bar():
    spec = load_spec("acrobot")
    for task, ends in ((spec.task("swing-up"), True), (spec.task("keep-above"), False)):
        env = spec.make(task)
        try:
            env.reset(seed=0)
            env.unwrapped.state = np.array([math.pi, 0.0, 0.0, 0.0])  # straight up, above the bar
            _, reward, terminated, truncated, _ = env.step(1)
            assert terminated is ends
            assert reward == 0.0 and not truncated
        finally:
            env.close()


def test_acrobot_keep_above_episodes_run_to_the_time_limit():
    spec = load_spec("acrobot")
    task = spec.task("keep-above")
    space = spec.make(task).action_space
    space.seed(0)
    episodes, _ = record_episodes(lambda b: np.asarray([space.sample() for _ in b]), spec, task, 2, seed=0)
    assert [len(e) for e in episodes] == [500, 500]
    assert all(e.truncated and e.cause == "timeout" for e in episodes)


class _FixedObs(gym.Env):
    """An env whose every observation is the one it was given."""

    def __init__(self, obs: list[float]) -> None:
        self.obs = np.asarray(obs, dtype=np.float32)
        self.observation_space = gym.spaces.Box(-10.0, 10.0, (len(obs),), np.float32)
        self.action_space = gym.spaces.Discrete(4)

    def reset(self, *, seed=None, options=None):
        return self.obs, {}

    def step(self, action):
        return self.obs, 0.0, False, False, {}


def test_lunarlander_hover_ends_above_the_ceiling():
    spec = load_spec("lunarlander")
    (wrapper,) = spec.task("hover").wrappers
    high = wrapper(_FixedObs([0.0, 1.9, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0]))
    high.reset()
    assert high.step(0)[2] is True
    low = wrapper(_FixedObs([0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]))
    low.reset()
    assert low.step(0)[2] is False
    assert spec.task("land").wrappers == ()


# ------------------------------------------------------------------------------ fitness functions


def _random_episodes(name: str, task_name: str, episodes: int = 2):
    spec = load_spec(name)
    task = spec.task(task_name)
    env = spec.make(task)
    space = env.action_space
    env.close()
    space.seed(0)

    def policy(batch: np.ndarray) -> np.ndarray:
        return np.asarray([space.sample() for _ in range(len(batch))])

    return task, record_episodes(policy, spec, task, episodes, seed=0)[0]


@pytest.mark.parametrize("pair", TASKS, ids=_task_id)
def test_fitness_is_finite_on_random_episodes(pair):
    task, episodes = _random_episodes(*pair)
    assert len(episodes) == 2
    for episode in episodes:
        value = task.fitness(episode)
        assert isinstance(value, float)
        assert math.isfinite(value)


def _episode(name: str, rows: list[list[float]], terminated: bool = False) -> Episode:
    spec = load_spec(name)
    steps = len(rows) - 1
    return Episode(obs=NamedArrays(spec.field_names, np.asarray(rows, dtype=np.float64)),
                   actions=np.zeros(steps), env_rewards=np.zeros(steps), terminated=terminated,
                   truncated=not terminated)


def test_mountaincar_left_hill_counts_steps_high_on_the_left():
    fitness = load_spec("mountaincar").task("left-hill").fitness
    # the reset observation does not count, only the steps after it
    rows = [[-0.95, 0.0], [-0.5, 0.0], [-0.9, -0.01], [-1.2, 0.0], [-0.89, 0.01], [0.3, 0.02]]
    assert fitness(_episode("mountaincar", rows)) == 2.0


def test_mountaincar_continuous_race_is_minus_the_steps_to_the_flag():
    fitness = load_spec("mountaincar-continuous").task("race-to-flag").fitness
    rows = [[-0.5, 0.0]] * 100 + [[0.46, 0.01]]
    assert fitness(_episode("mountaincar-continuous", rows, terminated=True)) == -100.0
    assert fitness(_episode("mountaincar-continuous", [[-0.5, 0.0]] * 1000)) == -999.0


def test_pendulum_hold_tilted_counts_steps_near_fifteen_degrees():
    fitness = load_spec("pendulum").task("hold-tilted").fitness

    def row(theta: float) -> list[float]:
        return [math.cos(theta), math.sin(theta), 0.0]

    target = math.pi / 12
    rows = [row(target), row(target), row(target + 0.09), row(target - 0.09), row(0.0), row(-target),
            row(target + 2 * math.pi), row(math.pi)]
    assert fitness(_episode("pendulum", rows)) == 4.0


def test_acrobot_keep_above_counts_steps_with_the_tip_above_the_bar():
    fitness = load_spec("acrobot").task("keep-above").fitness

    def row(theta1: float, theta2: float) -> list[float]:
        return [math.cos(theta1), math.sin(theta1), math.cos(theta2), math.sin(theta2), 0.0, 0.0]

    # reset (not counted), then tip heights -2, 2, 1 + cos(0.5), 0 and 1 - sin(0.05): two above the bar
    rows = [row(math.pi, 0.0), row(0.0, 0.0), row(math.pi, 0.0), row(math.pi, 0.5), row(math.pi / 2, 0.0),
            row(math.pi, math.pi / 2 + 0.05)]
    assert fitness(_episode("acrobot", rows)) == 2.0


def test_lunarlander_hover_counts_airborne_steps_in_the_box():
    fitness = load_spec("lunarlander").task("hover").fitness
    rows = [
        [0.0, 1.0, 0, 0, 0, 0, 0, 0],  # reset: not counted
        [0.1, 1.1, 0, 0, 0, 0, 0, 0],  # in
        [-0.2, 0.8, 0, 0, 0, 0, 0, 0],  # on the box's corner: in
        [0.25, 1.0, 0, 0, 0, 0, 0, 0],  # too far right
        [0.0, 1.3, 0, 0, 0, 0, 0, 0],  # too high
        [0.0, 1.0, 0, 0, 0, 0, 1, 0],  # a leg touches
    ]
    assert fitness(_episode("lunarlander", rows)) == 2.0


# ------------------------------------------------------------------------------ reward programs


def _builtin_default_program(name: str, task_name: str) -> str:
    task = load_spec(name).task(task_name)
    resolved = TaskRef(name, task.description, task_name).resolve()
    ctx = DesignContext(task=resolved, iteration=0, samples=1, seed=0, history=[], parent=None)
    (proposal,) = BuiltinDesigner().propose(ctx)
    assert proposal.origin["note"] == "the spec's default composition"
    return proposal.source


@pytest.mark.parametrize("pair", TASKS, ids=_task_id)
def test_every_reward_program_of_a_task_is_accepted_by_the_critic(pair):
    name, task_name = pair
    spec = load_spec(name)
    task = spec.task(task_name)
    hints = spec.hints + task.hints
    assert hints, f"{name}:{task_name} gives the built-in designer nothing to compose"
    assert len({h.name for h in hints}) == len(hints)
    programs = {"sparse": task.sparse_reward, "builtin default": _builtin_default_program(name, task_name)}
    if task.reference_reward:
        programs["reference"] = task.reference_reward
    with Critic(spec, task) as critic:
        for label, source in programs.items():
            verdict = critic.check(source)
            assert verdict.accepted, f"{name}:{task_name} {label} refused:\n{verdict.explain()}\n{source}"
            assert not [i for i in verdict.warnings if i.code in ("bare_total", "huge_magnitude")], verdict.explain()
    builtin = programs["builtin default"]
    for hint in hints:
        assert f'"{hint.name}": {hint.name}' in builtin  # every hint is on in the default composition
