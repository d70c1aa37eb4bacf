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


def test_an_unbundled_gymnasium_id_is_introspected():
    spec = load_spec("CartPole-v0")
    assert spec.source == "introspected"
    assert spec.field_names == ("obs_0", "obs_1", "obs_2", "obs_3")
    assert all(f.low is not None and f.low <= f.high for f in spec.fields)
    task = spec.default_task
    assert task.solved == 195.0  # the env's registered reward_threshold
    assert "obs_0" in spec.describe()
    assert "discrete" in spec.describe()


def test_introspected_ranges_are_the_same_in_every_process():
    from rewardsmith.spec import introspect

    ranges = [[(f.low, f.high) for f in introspect.__wrapped__("CartPole-v0").fields] for _ in range(2)]
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
