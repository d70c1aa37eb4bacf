"""Loading env specs: bundled names, spec files, introspected Gymnasium ids, tasks and fitness files."""

from __future__ import annotations

import math

import pytest

from rewardsmith.errors import UnknownEnvError, UnknownTaskError, UsageError
from rewardsmith.spec import PPOConfig, load_spec
from rewardsmith.task import TaskRef, load_fitness


def test_a_bundled_spec_loads_by_name_and_by_gym_id(cartpole):
    assert load_spec("CartPole-v1") is cartpole
    assert cartpole.field_names == ("cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity")
    assert cartpole.default_task.name == "balance"
    assert cartpole.facts()["max_episode_steps"] == 500


def test_unknown_envs_and_tasks_name_what_exists(cartpole):
    with pytest.raises(UnknownEnvError, match="bundled envs are .*cartpole"):
        load_spec("Nope-v0")
    with pytest.raises(UnknownEnvError, match="required"):
        load_spec("  ")
    with pytest.raises(UnknownTaskError, match="its tasks: balance, hold-right"):
        cartpole.task("fly")


def test_an_unbundled_gymnasium_id_is_introspected_from_its_own_documentation():
    spec = load_spec("CartPole-v0")
    assert spec.source == "introspected"
    # Gymnasium's docstring table names the fields; the space declares the bounds (none for velocities).
    assert spec.field_names == ("cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity")
    assert spec.fields[0].meaning == "Cart Position"
    assert (spec.fields[0].low, spec.fields[0].high) == (-4.8, 4.8)
    assert spec.fields[1].low is None and spec.fields[1].high is None
    task = spec.default_task
    assert task.solved == 195.0  # the env's registered reward_threshold
    described = spec.describe()
    assert "discrete" in described
    assert "Pole Angle is greater than ±12°" in described  # the docstring's Episode End section
    assert "a reward of `+1` is given for every step" in described  # its Rewards section
    assert "no documentation available" not in described


def test_introspected_ranges_are_the_same_in_every_process():
    from rewardsmith.introspect import PROBE_STEPS, _introspect

    ranges = [_introspect.__wrapped__("CartPole-v0", PROBE_STEPS, 0, "{}").introspection.observed for _ in range(2)]
    assert ranges[0] == ranges[1]  # critic, trainer and analyzer processes see the same field ranges


def test_a_user_spec_file_loads(tmp_path):
    path = tmp_path / "my_spec.py"
    path.write_text(
        "from rewardsmith.spec import EnvSpec, Field, TaskSpec, env_reward_fitness\n"
        "SPEC = EnvSpec(name='mine', gym_id='CartPole-v1', description='d', actions='a', reward_doc='r',\n"
        "    fields=tuple(Field(n, i) for i, n in enumerate(['x', 'v', 'a', 'w'])), terminations=(),\n"
        "    tasks=(TaskSpec('t', 'do it', env_reward_fitness, 'return', 10.0, default=True),))\n"
    )
    spec = load_spec(str(path))
    assert spec.name == "mine" and spec.source == str(path)
    assert spec.task(None).name == "t"


def test_a_broken_spec_file_is_a_usage_error(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("SPEC = 1/0\n")
    with pytest.raises(UsageError, match="ZeroDivisionError"):
        load_spec(str(path))
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(UsageError, match="defines no SPEC"):
        load_spec(str(empty))


def test_fitness_files_carry_their_threshold_and_doc(tmp_path):
    path = tmp_path / "fit.py"
    path.write_text("SOLVED = 42.0\n\ndef right(episode):\n    \"\"\"Steps right of zero.\"\"\"\n"
                    "    return float((episode.obs.cart_position[1:] > 0).sum())\n\ndef two(a, b):\n    return 0\n")
    fn, solved, doc = load_fitness(f"{path}:right")
    assert solved == 42.0 and doc == "Steps right of zero."
    with pytest.raises(UsageError, match="must take one argument"):
        load_fitness(f"{path}:two")
    with pytest.raises(UsageError, match="defines no function 'nope'"):
        load_fitness(f"{path}:nope")
    resolved = TaskRef("cartpole", "go right", fitness=f"{path}:right").resolve()
    assert resolved.solved == 42.0 and not resolved.scored_on_default


def test_task_text_other_than_the_default_is_flagged_as_scored_on_default():
    assert TaskRef("cartpole", "do a backflip").resolve().scored_on_default
    assert not TaskRef("cartpole", "do a backflip", task="hold-right").resolve().scored_on_default
    default = load_spec("cartpole").default_task
    assert not TaskRef("cartpole", default.description).resolve().scored_on_default


def test_ppo_config_maps_to_sb3_and_clips_the_batch():
    kwargs = PPOConfig(n_envs=1, n_steps=8, batch_size=256).sb3_kwargs(1000)
    assert kwargs["batch_size"] == 8
    assert math.isclose(kwargs["learning_rate"], 3e-4)


# ------------------------------------------------------------------- fields bind by their index

SHUFFLED_SPEC = (
    "from rewardsmith.spec import EnvSpec, Field, TaskSpec, env_reward_fitness\n"
    "SPEC = EnvSpec(name='shuffled', gym_id='CartPole-v1', description='d', actions='a', reward_doc='r',\n"
    "    fields=(Field('pole_angular_velocity', 3), Field('cart_position', 0), Field('pole_angle', 2),\n"
    "            Field('cart_velocity', 1)),\n"
    "    terminations=(), tasks=(TaskSpec('t', 'do it', env_reward_fitness, 'return', 10.0, default=True),))\n"
)
READS_VELOCITY = (
    "def compute_reward(obs, action, next_obs, info):\n"
    "    return 0.0, {'by_name': next_obs.cart_velocity, 'by_index': next_obs[1],\n"
    "                 'by_key': next_obs['pole_angular_velocity']}\n"
)


def test_fields_listed_out_of_order_bind_by_their_index(tmp_path):
    """A spec that lists its fields out of index order: every named view reads each field's own column."""
    import gymnasium as gym
    import numpy as np

    from rewardsmith.analyzer import failure_states
    from rewardsmith.critic import Critic
    from rewardsmith.export import render_export
    from rewardsmith.rollouts import annotate_components, record_episodes

    path = tmp_path / "shuffled.py"
    path.write_text(SHUFFLED_SPEC)
    spec = load_spec(str(path))
    task = spec.default_task
    # The fitness's Episode.obs.<field>: the recorded column at the field's index.
    (episode,), _ = record_episodes(lambda obs: np.zeros(len(obs), dtype=np.int64), spec, task, 1, seed=0)
    velocity = episode.obs.data[:, 1]
    assert np.ptp(velocity) > 0  # a column that moves, so a wrong binding shows
    assert np.array_equal(episode.obs.cart_velocity, velocity)
    assert np.array_equal(episode.obs["pole_angular_velocity"], episode.obs.data[:, 3])
    assert episode.final.cart_velocity == velocity[-1]

    # The analyzer's state at failure, field by field.
    failures = failure_states(spec, [episode], np.array([False]), np.array([0.0]), 10.0)
    assert failures["fields"]["cart_velocity"]["mean"] == velocity[-1]

    # The reward's next_obs.<field>, in the critic's sandbox worker.
    with Critic(spec, task) as critic:
        assert critic.check(READS_VELOCITY).accepted
        annotate_components([episode], critic.sandbox)
    assert np.array_equal(episode.components["by_name"], velocity[1:])
    assert np.array_equal(episode.components["by_index"], velocity[1:])
    assert np.array_equal(episode.components["by_key"], episode.obs.data[1:, 3])

    # The exported standalone module.
    namespace: dict = {}
    exec(compile(render_export(READS_VELOCITY, spec, {"task": "t", "task_name": "t"}), "export", "exec"), namespace)
    env = namespace["SynthesizedReward"](gym.make("CartPole-v1"))
    env.reset(seed=0)
    obs, _, _, _, info = env.step(0)
    assert info["reward_components"]["by_name"] == info["reward_components"]["by_index"] == float(obs[1])
    assert info["reward_components"]["by_key"] == float(obs[3])
    env.close()

    # describe (and everything that walks the fields) sees them in index order.
    assert spec.field_names == ("cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity")
    described = spec.describe()
    assert described.index("[0] cart_position") < described.index("[1] cart_velocity") < described.index("[3] pole")


# ------------------------------------------------------------- a spec is checked against its env

def _spec_file(tmp_path, fields: str, gym_id: str = "CartPole-v1"):
    path = tmp_path / "my_spec.py"
    path.write_text(
        "from rewardsmith.spec import EnvSpec, Field, TaskSpec, env_reward_fitness\n"
        f"SPEC = EnvSpec(name='mine', gym_id={gym_id!r}, description='d', actions='a', reward_doc='r',\n"
        f"    fields=({fields}), terminations=(),\n"
        "    tasks=(TaskSpec('t', 'do it', env_reward_fitness, 'return', 10.0, default=True),))\n"
    )
    return path


@pytest.mark.parametrize(("fields", "message"), [
    ("Field('x', 0), Field('v', 1), Field('a', 2), Field('w', 2)", "fields 'a' and 'w' both have index 2"),
    ("Field('x', 0), Field('v', 1), Field('a', 2), Field('w', 7)",
     "field 'w' has index 7, but the observation has 4 values (indices 0..3)"),
    ("Field('x', 0), Field('v', 1), Field('a', 2), Field('w', -1)", "field 'w' has index -1"),
    ("Field('x', 0), Field('x', 1), Field('a', 2), Field('w', 3)", "field name 'x' is used twice"),
    ("Field('x', 0), Field('v', 1), Field('pole angle', 2), Field('w', 3)",
     "field name 'pole angle' is not a Python identifier"),
    ("Field('x', 0), Field('v', 1), Field('lambda', 2), Field('w', 3)", "field name 'lambda' is a Python keyword"),
    ("Field('x', 0), Field('v', 1), Field('keys', 2), Field('w', 3)",
     "field name 'keys' is already a method of the observation views"),
    ("Field('x', 0), Field('v', 1), Field('a', '2'), Field('w', 3)", "field 'a' has index '2'; an index is an int"),
    ("Field('x', 0), Field('v', 1), Field('a', 2),",
     "the spec names 3 fields but the observation has 4 values; name every index (missing: 3)"),
])
def test_a_spec_that_does_not_fit_its_observation_is_refused_on_load(tmp_path, fields, message):
    from rewardsmith.errors import SpecError

    path = _spec_file(tmp_path, fields)
    with pytest.raises(SpecError) as caught:
        load_spec(str(path))
    assert message in str(caught.value)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_spec_whose_env_yields_an_unreadable_observation_is_refused(tmp_path):
    from rewardsmith.errors import SpecError
    from tests.helpers_docenv import DICT_OBS, TEXT_OBS

    path = _spec_file(tmp_path, "Field('text', 0),", TEXT_OBS)
    with pytest.raises(SpecError, match="has observation space Text.*: it holds a Text space; rewardsmith reads Box"):
        load_spec(str(path))
    with pytest.raises(SpecError, match="it holds a Text space"):
        load_spec(TEXT_OBS)  # introspection refuses it the same way
    # A Dict observation is read: its fields are its keys, in the space's (sorted) order.
    (tmp_path / "dict").mkdir()
    path = _spec_file(tmp_path / "dict", "Field('fuel', 0, shape=(1,)), Field('position', 1, shape=(1,))", DICT_OBS)
    assert load_spec(str(path)).field_names == ("fuel", "position")


def test_describe_check_and_run_refuse_a_mismatched_spec_in_one_line(tmp_path):
    from tests.test_cli import assert_one_line_error, rewardsmith

    path = _spec_file(tmp_path, "Field('x', 0), Field('v', 1), Field('fuel', 7), Field('w', 3)")
    reward = tmp_path / "reward.py"
    reward.write_text("def compute_reward(obs, action, next_obs, info):\n    return next_obs.fuel, {}\n")
    runs = tmp_path / "runs"
    expected = "field 'fuel' has index 7, but the observation has 4 values"
    assert_one_line_error(rewardsmith("describe", str(path)), 2, expected)
    assert_one_line_error(rewardsmith("check", str(reward), "--env", str(path)), 2, expected)
    assert_one_line_error(rewardsmith("run", "go", "--env", str(path), "--designer", "builtin", "--out", str(runs)),
                          2, expected)
    assert not runs.exists() or not any(runs.iterdir())  # no run left behind as "running"
