"""Every common observation space: Box of any shape, Dict (nested too), Tuple, Discrete, MultiDiscrete, MultiBinary.

Fields are named from the space's structure, in its own order; reward code reads a vector field as a
read-only array, a scalar as a float, a Discrete value as an int, a nested key as ``next_obs.robot.joint_pos``
or ``next_obs["robot.joint_pos"]``. Each space goes through ``check``, a short ``run``, ``export`` (the wrapper
on the real env) and ``show``/``report``.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import gymnasium as gym
import numpy as np
import pytest

import tests.helpers_docenv as envs
from rewardsmith.episode import Episode, NamedArrays
from rewardsmith.errors import SpecError
from rewardsmith.export import render_export
from rewardsmith.rollouts import episode_transitions, record_episodes
from rewardsmith.sandbox import RewardSandbox
from rewardsmith.sandbox.views import make_view_class
from rewardsmith.spec import load_spec
from tests.test_cli import assert_one_line_error, rewardsmith

# A reward per env that reads its fields by name; each returns fields as components so tests can compare them.
REWARDS = {
    envs.ROVER: """
import numpy as np

def compute_reward(obs, action, next_obs, info):
    distance = float(np.linalg.norm(next_obs.position))
    east = next_obs.position[0]
    charge = next_obs.battery
    speed = float(np.abs(next_obs["velocity"]).sum())
    return -distance + 0.1 * charge, {"distance": -distance, "east": east, "charge": charge, "speed": speed}
""",
    envs.GOAL: """
import numpy as np

def compute_reward(obs, action, next_obs, info):
    gap = next_obs.desired_goal - next_obs.achieved_goal
    close = -float(np.sqrt(np.sum(gap * gap)))
    return close, {"close": close, "goal_x": next_obs.desired_goal[0], "vx": next_obs.observation[2]}
""",
    envs.NESTED: """
def compute_reward(obs, action, next_obs, info):
    reach = -abs(next_obs.robot.joint_pos[0] - next_obs.target[0])
    grip = next_obs["robot.gripper"]
    return reach + grip, {"reach": reach, "grip": grip, "joint_2": next_obs["robot.joint_pos"][2]}
""",
    envs.TUPLE_OBS: """
def compute_reward(obs, action, next_obs, info):
    cell = next_obs.obs_0
    return -abs(next_obs.obs_1[1]) + 0.1 * cell, {"cell": cell, "y": next_obs.obs_1[1]}
""",
    envs.GRID: """
def compute_reward(obs, action, next_obs, info):
    cell = next_obs.observation
    return float(cell == 5), {"cell": cell, "centre": float(cell == 5)}
""",
    envs.MULTI_DISCRETE: """
def compute_reward(obs, action, next_obs, info):
    row, col = next_obs.observation
    return -abs(row - 2) - abs(col - 1), {"row": row, "col": col}
""",
    envs.MULTI_BINARY: """
def compute_reward(obs, action, next_obs, info):
    lit = next_obs.observation.sum()
    return lit, {"lit": lit, "first": next_obs.observation[0]}
""",
    envs.MATRIX: """
def compute_reward(obs, action, next_obs, info):
    corner = next_obs.observation[1, 2]
    return -abs(corner), {"corner": corner, "row_0": next_obs.observation[0].sum()}
""",
}


def expected_components(env_id: str, raw: object) -> dict[str, float]:
    """What each reward's field-reading components must be, computed from the env's own structured observation."""
    if env_id == envs.ROVER:
        return {"east": raw["position"][0], "charge": raw["battery"], "speed": np.abs(raw["velocity"]).sum()}
    if env_id == envs.GOAL:
        return {"goal_x": raw["desired_goal"][0], "vx": raw["observation"][2]}
    if env_id == envs.NESTED:
        return {"grip": raw["robot"]["gripper"], "joint_2": raw["robot"]["joint_pos"][2]}
    if env_id == envs.TUPLE_OBS:
        return {"cell": raw[0], "y": raw[1][1]}
    if env_id == envs.GRID:
        return {"cell": raw}
    if env_id == envs.MULTI_DISCRETE:
        return {"row": raw[0], "col": raw[1]}
    if env_id == envs.MULTI_BINARY:
        return {"first": raw[0]}
    return {"corner": raw[1, 2], "row_0": raw[0].sum()}


# ---------------------------------------------------------------------------------------- naming


@pytest.mark.parametrize("env_id, fields", [
    (envs.ROVER, [("position", 0, (2,), False), ("velocity", 2, (2,), False), ("battery", 4, (), False)]),
    # A plain dict space: Gymnasium sorts its keys, and the fields follow the space's own order.
    (envs.GOAL, [("achieved_goal", 0, (2,), False), ("desired_goal", 2, (2,), False), ("observation", 4, (4,), False)]),
    (envs.NESTED, [("robot.joint_pos", 0, (3,), False), ("robot.gripper", 3, (), True), ("target", 4, (3,), False)]),
    (envs.TUPLE_OBS, [("obs_0", 0, (), True), ("obs_1", 1, (2,), False)]),
    (envs.GRID, [("observation", 0, (), True)]),
    (envs.MULTI_DISCRETE, [("observation", 0, (2,), True)]),
    (envs.MULTI_BINARY, [("observation", 0, (4,), True)]),
    (envs.MATRIX, [("observation", 0, (2, 3), False)]),
])
def test_fields_are_named_from_the_space_structure_in_its_own_order(env_id, fields):
    spec = load_spec(env_id)
    assert [(f.name, f.index, f.shape, f.integer) for f in spec.fields] == fields


def test_a_discrete_fields_bounds_include_its_start():
    (cell,) = load_spec(envs.GRID).fields
    assert (cell.low, cell.high) == (1.0, 9.0)


# ------------------------------------------------------------------------------------------ views


def test_views_read_arrays_ints_floats_and_nested_keys():
    spec = load_spec(envs.NESTED)
    view = make_view_class(spec.field_layout)([0.5, -1.0, 2.0, 1.0, 0.1, 0.2, 0.3])
    joints = view.robot.joint_pos
    assert joints.tolist() == [0.5, -1.0, 2.0] and joints.shape == (3,)
    assert view["robot.joint_pos"].tolist() == [0.5, -1.0, 2.0]
    assert view.robot.gripper == 1 and type(view.robot.gripper) is int and type(view["robot.gripper"]) is int
    assert view.target[2] == pytest.approx(0.3)
    with pytest.raises(ValueError):
        joints[0] = 9.0  # read-only
    assert view[3] == 1.0 and len(view) == 7 and np.asarray(view).shape == (7,)
    with pytest.raises(AttributeError, match="valid fields: robot.joint_pos, robot.gripper, target"):
        view.robot_arm  # noqa: B018


def test_a_scalar_float_field_reads_as_a_float_and_a_discrete_one_as_an_int():
    rover = make_view_class(load_spec(envs.ROVER).field_layout)([1.0, 2.0, 0.0, 0.0, 0.75])
    assert rover.battery == 0.75 and isinstance(rover.battery, float)
    grid = make_view_class(load_spec(envs.GRID).field_layout)([4.0])
    assert grid.observation == 4 and type(grid.observation) is int


def test_recorded_episodes_read_fields_by_name_with_their_shape():
    spec = load_spec(envs.ROVER)
    episodes, _ = record_episodes(lambda batch: np.ones(len(batch), dtype=np.int64), spec, spec.default_task, 1, 0)
    episode = episodes[0]
    assert episode.obs.position.shape == (len(episode) + 1, 2)
    assert episode.obs["battery"].shape == (len(episode) + 1,)
    assert episode.final.position.shape == (2,) and isinstance(episode.final.battery, float)
    nested = NamedArrays(load_spec(envs.NESTED).field_layout, np.arange(14.0).reshape(2, 7))
    assert nested.robot.joint_pos.tolist() == [[0, 1, 2], [7, 8, 9]]
    assert nested["robot.gripper"].tolist() == [3, 10]


# ----------------------------------------------------------------------------------- the sandbox


@pytest.mark.parametrize("env_id", list(REWARDS))
def test_the_sandbox_reads_the_fields_the_env_gave(env_id):
    """Rewards computed on the flat vector read exactly the values of the env's own structured observation."""
    spec = load_spec(env_id)
    raw_env, flat_env = spec.make_structured(), spec.make()
    raw, _ = raw_env.reset(seed=3)
    flat, _ = flat_env.reset(seed=3)
    rows, raws = [np.asarray(flat)], [raw]
    for step in range(6):
        action = raw_env.action_space.sample() if step else raw_env.action_space.sample() * 0
        raw, *_ = raw_env.step(action)
        flat, *_ = flat_env.step(action)
        rows.append(np.asarray(flat))
        raws.append(raw)
    raw_env.close()
    flat_env.close()
    episode = Episode(NamedArrays(spec.field_layout, np.asarray(rows)), np.zeros(6, dtype=np.int64), np.zeros(6),
                      False, False)
    with RewardSandbox(spec.field_layout) as box:
        assert box.load(REWARDS[env_id]).ok
        result = box.call(episode_transitions(episode))
    for row, raw_obs in zip(result.components, raws[1:]):
        for name, value in expected_components(env_id, raw_obs).items():
            assert row[name] == pytest.approx(float(value), rel=1e-6, abs=1e-6), name


def test_an_image_observation_is_an_array_field_the_sandbox_can_read():
    """Wide observations cross in several exchanges (each under the frame cap) and read as arrays."""
    layout = {"observation": (0, (96, 96, 3), True)}
    n = 70  # 70 image transitions are more than one frame can carry
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n + 1, 96 * 96 * 3)).astype(np.float32)
    episode = Episode(NamedArrays(layout, images), np.zeros((n, 3)), np.zeros(n), False, False)
    source = ("def compute_reward(obs, action, next_obs, info):\n"
              "    green = next_obs.observation[10:20, 10:20, 1].mean()\n"
              "    return green, {'green': green}\n")
    with RewardSandbox(layout) as box:
        assert box.load(source).ok
        result = box.call(episode_transitions(episode))
    expected = images[1:].reshape(n, 96, 96, 3)[:, 10:20, 10:20, 1].mean(axis=(1, 2))
    assert np.allclose(result.totals, expected)


# -------------------------------------------------------------------------------- spec validation


def _spec_file(tmp_path, fields: str, gym_id: str = envs.ROVER):
    path = tmp_path / "rover_spec.py"
    path.write_text(
        "import tests.helpers_docenv\n"
        "from rewardsmith.spec import EnvSpec, Field, TaskSpec, env_reward_fitness\n"
        f"SPEC = EnvSpec(name='rover', gym_id={gym_id!r}, description='d', fields=({fields}), actions='a',\n"
        "    reward_doc='r', terminations=(), tasks=(TaskSpec('t', 'd', env_reward_fitness, 'f', 0.0, default=True),))\n"
    )
    return path


def test_a_spec_file_with_vector_fields_loads_and_binds_by_index(tmp_path):
    fields = ("Field('battery', 4, 'charge left'), Field('position', 0, 'x, y', 'm', shape=(2,)), "
              "Field('velocity', 2, shape=(2,))")
    spec = load_spec(str(_spec_file(tmp_path, fields)))
    assert spec.field_names == ("position", "velocity", "battery")
    view = make_view_class(spec.field_layout)([1.0, 2.0, 3.0, 4.0, 0.5])
    assert view.velocity.tolist() == [3.0, 4.0] and view.battery == 0.5


@pytest.mark.parametrize("fields, message", [
    ("Field('position', 0, shape=(3,)), Field('velocity', 2, shape=(2,)), Field('battery', 4)",
     "fields 'position' and 'velocity' both cover value 2"),
    ("Field('position', 0, shape=(2,)), Field('velocity', 2, shape=(2,)), Field('battery', 5)",
     "field 'battery' has index 5, but the observation has 5 values"),
    ("Field('position', 0, shape=(2,)), Field('velocity', 3, shape=(2,))",
     "the spec's fields cover 4 of the observation's 5 values; name every value (missing: 2)"),
    ("Field('position', 0, shape=(2,)), Field('velocity', 2, shape=(2,)), Field('battery', 4, shape=(0,))",
     "field 'battery' has shape (0,); a shape is a tuple of positive ints"),
    ("Field('position', 0, shape=(2,)), Field('velocity', 2, shape=(2,)), Field('robot.1x', 4)",
     "field name 'robot.1x' is not a Python identifier"),
])
def test_a_spec_whose_fields_do_not_fit_the_space_is_refused_in_one_line(tmp_path, fields, message):
    path = _spec_file(tmp_path, fields)
    with pytest.raises(SpecError) as caught:
        load_spec(str(path))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_an_observation_rewardsmith_cannot_read_is_one_line_from_every_command(tmp_path):
    reward = tmp_path / "reward.py"
    reward.write_text("def compute_reward(obs, action, next_obs, info):\n    return 0.0, {}\n")
    expected = "holds a Text space; rewardsmith reads Box, Discrete, MultiDiscrete, MultiBinary, and Dict or Tuple"
    assert_one_line_error(rewardsmith("describe", envs.TEXT_OBS), 2, expected)
    assert_one_line_error(rewardsmith("check", str(reward), "--env", envs.TEXT_OBS), 2, expected)


# ------------------------------------------------------------------------------------ check (CLI)


@pytest.mark.parametrize("env_id", list(REWARDS))
def test_check_accepts_a_reward_reading_fields_by_name(tmp_path, env_id):
    path = tmp_path / "reward.py"
    path.write_text(REWARDS[env_id])
    result = rewardsmith("check", str(path), "--env", env_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "accepted" in result.stdout


def test_check_names_a_missing_field_with_the_structured_names(tmp_path):
    path = tmp_path / "reward.py"
    path.write_text("def compute_reward(obs, action, next_obs, info):\n    return next_obs.robot.knee, {}\n")
    result = rewardsmith("check", str(path), "--env", envs.NESTED)
    assert result.returncode == 1
    assert "no field 'knee'" in result.stdout and "joint_pos" in result.stdout


# --------------------------------------------------------------------------------- the toy-text envs


TOY_TEXT = {
    "FrozenLake-v1": ("next_obs.observation", "[0] observation (int)"),
    "CliffWalking-v1": ("next_obs.observation", "[0] observation (int)"),
    "Taxi-v4": ("next_obs.observation", "[0] observation (int)"),
    "Blackjack-v1": ("next_obs.obs_0", "[0] obs_0 (int)"),
}


@pytest.mark.parametrize("env_id", list(TOY_TEXT))
def test_bundled_toy_text_envs_describe_and_check(tmp_path, env_id):
    read, listed = TOY_TEXT[env_id]
    described = rewardsmith("describe", env_id)
    assert described.returncode == 0, described.stderr
    assert listed in described.stdout
    path = tmp_path / "reward.py"
    path.write_text("def compute_reward(obs, action, next_obs, info):\n"
                    f"    cell = {read}\n"
                    "    assert isinstance(cell, int)\n"
                    "    return info['env_reward'] + 0.01 * cell, {'env': info['env_reward'], 'cell': 0.01 * cell}\n")
    checked = rewardsmith("check", str(path), "--env", env_id)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# ------------------------------------------------------------------------------- the policy's input


def test_the_policy_sees_a_discrete_value_one_hot_and_floats_as_they_are():
    from rewardsmith.training import policy_encoder

    assert policy_encoder(load_spec(envs.ROVER)) is None  # nothing to encode: the flat vector as it is
    encode = policy_encoder(load_spec(envs.TUPLE_OBS))  # Discrete(5), then a Box of 2
    encoded = encode(np.array([[3.0, 0.25, -0.5], [0.0, 1.0, 1.0]]))
    assert encoded.tolist() == [[0, 0, 0, 1, 0, 0.25, -0.5], [1, 0, 0, 0, 0, 1.0, 1.0]]
    grid = policy_encoder(load_spec(envs.GRID))  # Discrete(9, start=1)
    assert grid(np.array([[1.0], [9.0]])).argmax(axis=1).tolist() == [0, 8]


# ----------------------------------------------------------------------------------- the analyzer


def test_the_analyzer_summarises_a_vector_field_by_its_norm_and_leaves_images_out():
    from rewardsmith.analyzer import analysed_fields, coverage

    spec = load_spec(envs.ROVER)
    rows = np.array([[3.0, 4.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0, 0.9], [0.0, 0.0, 0.0, 0.0, 0.8]])
    episode = Episode(NamedArrays(spec.field_layout, rows), np.zeros(2, dtype=np.int64), np.zeros(2), False, True)
    covered = coverage(spec, [episode], ["position", "battery"])
    assert covered["position"]["p90"] == pytest.approx(np.percentile([5.0, 1.0, 0.0], 90))
    assert covered["position"]["documented"] == [None, None]  # a norm has no documented range
    assert covered["battery"]["documented"] == [0.0, 1.0]
    image = type(spec)(**{**spec.__dict__, "fields": (type(spec.fields[0])("pixels", 0, shape=(8, 8, 3)),)})
    assert analysed_fields(image) == []


# -------------------------------------------------------------------------------------- the export


def _exported(tmp_path, source: str, spec):
    path = tmp_path / "exported_reward.py"
    path.write_text(render_export(source, spec, {"task": "t", "task_name": "default", "run": "r", "candidate": "c"}))
    module_spec = importlib.util.spec_from_file_location(f"exported_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("env_id", [envs.ROVER, envs.NESTED, envs.TUPLE_OBS, envs.GRID, envs.MATRIX])
def test_the_exported_wrapper_gives_the_reward_the_same_views_on_the_real_env(tmp_path, env_id):
    spec = load_spec(env_id)
    module = _exported(tmp_path, REWARDS[env_id], spec)
    env = module.SynthesizedReward(gym.make(env_id.split(":", 1)[1]))
    env.reset(seed=1)
    env.action_space.seed(1)
    for _ in range(5):
        raw, reward, terminated, truncated, info = env.step(env.action_space.sample())
        for name, value in expected_components(env_id, raw).items():
            assert info["reward_components"][name] == pytest.approx(float(value), rel=1e-6, abs=1e-6)
        assert isinstance(reward, float)
    env.close()


# ------------------------------------------------------------------ run, export, show, report (CLI)


def _run_dir(runs):
    (found,) = list(runs.iterdir())
    return found


@pytest.mark.slow
@pytest.mark.parametrize("env_id", [envs.ROVER, envs.GOAL, envs.NESTED, envs.TUPLE_OBS, envs.GRID,
                                    envs.MULTI_DISCRETE, envs.MULTI_BINARY, envs.MATRIX])
def test_a_short_run_on_each_space_then_export_show_and_report(tmp_path, env_id):
    runs = tmp_path / "runs"
    result = rewardsmith("run", "do well", "--env", env_id, "--designer", "builtin", "--iterations", "1",
                         "--samples", "1", "--timesteps", "1000", "--no-media", "--out", str(runs), timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    run = _run_dir(runs)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert [c["status"] for c in summary["candidates"]] == ["scored"]
    analysis = json.loads(next(run.glob("iter-00/cand-*/analysis.json")).read_text())
    assert "coverage" in analysis

    exported = tmp_path / "reward_export.py"
    assert rewardsmith("export", str(run), "-o", str(exported)).returncode == 0
    sys.path.insert(0, str(tmp_path))
    try:
        module_spec = importlib.util.spec_from_file_location("reward_export_" + str(abs(hash(env_id))), exported)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(tmp_path))
    env = module.SynthesizedReward(gym.make(env_id.split(":", 1)[1]))
    env.reset(seed=0)
    _, reward, *_, info = env.step(env.action_space.sample())
    assert np.isfinite(reward) and "reward_components" in info
    env.close()

    shown = rewardsmith("show", str(run))
    assert shown.returncode == 0 and "scored" in shown.stdout
    detail = rewardsmith("show", str(run), "--candidate", summary["candidates"][0]["id"])
    assert detail.returncode == 0, detail.stderr
    assert rewardsmith("report", str(run)).returncode == 0 and (run / "report.html").is_file()


def test_spec_init_writes_vector_and_int_fields_that_load_as_written(tmp_path):
    from rewardsmith.introspect import introspect
    from rewardsmith.specfile import render_spec_file

    introspected = introspect(envs.NESTED)  # as `rewardsmith spec init` does: the id keeps its module
    path = tmp_path / "nested_spec.py"
    path.write_text(render_spec_file(introspected))
    written = load_spec(str(path))
    assert written.field_layout == introspected.field_layout
    reward = tmp_path / "reward.py"
    reward.write_text(REWARDS[envs.NESTED])
    assert rewardsmith("check", str(reward), "--env", str(path)).returncode == 0
