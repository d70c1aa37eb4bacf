"""Training: the deferred sandboxed reward, checkpoints, and failures mid-training."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from rewardsmith.results import TrainingResult
from rewardsmith.task import ResolvedTask
from rewardsmith.training import TrainConfig, train

TINY = dict(checkpoints=2, eval_episodes=2, final_episodes=2, device="cpu")

ALIVE = """
def compute_reward(obs, action, next_obs, info):
    return 1.0, {"alive": 1.0}
"""


def test_deferred_reward_reproduces_the_env_reward_exactly(cartpole):
    """CartPole pays +1 per step; a sandboxed program paying +1 must train the very same policy."""
    task = cartpole.default_task
    config = TrainConfig(timesteps=1024, seed=3, **TINY)
    own = train(ResolvedTask.of_spec(cartpole, task), None, config)
    shaped = train(ResolvedTask.of_spec(cartpole, task), ALIVE, config)
    try:
        assert own.result.status == shaped.result.status == "scored"
        assert [c.fitness for c in own.result.checkpoints] == [c.fitness for c in shaped.result.checkpoints]
        assert own.result.fitness == shaped.result.fitness
        probe = np.random.default_rng(0).uniform(-0.5, 0.5, size=(512, 4)).astype(np.float32)
        np.testing.assert_array_equal(own.policy(probe), shaped.policy(probe))
    finally:
        own.close()
        shaped.close()


def test_checkpoints_record_fitness_and_component_statistics(cartpole):
    task = cartpole.task("hold-right")
    trained = train(ResolvedTask.of_spec(cartpole, task), task.reference_reward,
                    TrainConfig(timesteps=1024, seed=0, **TINY))
    try:
        result = trained.result
        assert result.status == "scored"
        assert len(result.checkpoints) == 2
        assert result.checkpoints[-1].step == result.steps >= 1024
        last = result.checkpoints[-1].components
        assert set(last) == {"upright", "near_target", "settle"}
        for stats in last.values():
            assert stats["min"] <= stats["mean"] <= stats["max"]
        assert result.checkpoints[0].shaped_return is not None
        # …and the mean length of the training episodes that return comes from (the analyzer's attribution)
        assert all(c.train_episode_length is not None and c.train_episode_length >= 1 for c in result.checkpoints)
        # The final evaluation episodes carry the reward's per-step components for the analyzer.
        episode = trained.episodes[0]
        assert set(episode.components) == {"upright", "near_target", "settle"}
        assert episode.shaped is not None and len(episode.shaped) == len(episode)
        assert math.isfinite(result.fitness)
        round_trip = TrainingResult.from_dict(result.to_dict())
        assert round_trip.checkpoints[-1].components == last
    finally:
        trained.close()


def test_a_reward_that_raises_mid_training_fails_its_candidate_with_the_reason(cartpole):
    crashes_late = """
def compute_reward(obs, action, next_obs, info):
    if info["step"] > 40:
        return 1.0 / 0.0, {}
    return 1.0, {"alive": 1.0}
"""
    task = cartpole.default_task
    trained = train(ResolvedTask.of_spec(cartpole, task), crashes_late, TrainConfig(timesteps=2048, **TINY))
    trained.close()
    result = trained.result
    assert result.status == "failed"
    assert result.reason.code == "runtime_error"
    assert "ZeroDivisionError" in result.reason.message
    assert result.reason.line == 4
    assert result.fitness == -math.inf


def test_a_reward_that_turns_non_finite_fails_with_non_finite(cartpole):
    blows_up = """
import math
def compute_reward(obs, action, next_obs, info):
    return math.exp(1000.0 * abs(next_obs.pole_angle) + info["step"]), {}
"""
    task = cartpole.default_task
    trained = train(ResolvedTask.of_spec(cartpole, task), blows_up, TrainConfig(timesteps=2048, **TINY))
    trained.close()
    assert trained.result.status == "failed"
    assert trained.result.reason.code in ("non_finite", "runtime_error")


def test_a_program_the_sandbox_refuses_fails_before_training(cartpole):
    task = cartpole.default_task
    trained = train(ResolvedTask.of_spec(cartpole, task), "import os\n", TrainConfig(timesteps=512, **TINY))
    assert trained.result.status == "failed"
    assert trained.result.reason.code in ("forbidden_import", "no_compute_reward")
    assert trained.result.steps == 0


def test_policy_is_saved_and_loads(cartpole, tmp_path):
    from stable_baselines3 import PPO

    task = cartpole.default_task
    trained = train(ResolvedTask.of_spec(cartpole, task), ALIVE, TrainConfig(timesteps=512, **TINY),
                    policy_dir=tmp_path)
    trained.close()
    assert trained.result.policy_file == "policy.zip"
    model = PPO.load(tmp_path / "policy.zip", device="cpu")
    action, _ = model.predict(np.zeros(4, dtype=np.float32), deterministic=True)
    assert int(action) in (0, 1)


@pytest.mark.parametrize("budget,horizon,expected_end", [(25_000, 100_000, 0.75), (25_000, None, 0.0)])
def test_linear_schedules_follow_the_tuned_horizon(budget, horizon, expected_end):
    from rewardsmith.spec import PPOConfig

    kwargs = PPOConfig(learning_rate=1e-3, linear_lr=True, schedule_horizon=horizon).sb3_kwargs(budget)
    schedule = kwargs["learning_rate"]
    assert schedule(1.0) == pytest.approx(1e-3)
    assert schedule(0.0) == pytest.approx(1e-3 * expected_end)


def test_rewards_beyond_float32_fail_instead_of_poisoning_ppo(cartpole):
    huge = """
def compute_reward(obs, action, next_obs, info):
    return 1e300, {"huge": 1e300}
"""
    task = cartpole.default_task
    trained = train(ResolvedTask.of_spec(cartpole, task), huge, TrainConfig(timesteps=512, **TINY))
    trained.close()
    assert trained.result.status == "failed"
    assert trained.result.reason.code == "non_finite"
    assert "32-bit" in trained.result.reason.message


def test_deferred_reward_normalisation_matches_vecnormalize_exactly():
    """With the zoo's reward normalisation (Acrobot), a sandboxed copy of the env's reward trains the same policy."""
    from rewardsmith.spec import load_spec

    acrobot = load_spec("acrobot")
    assert acrobot.ppo.normalize_reward
    task = acrobot.default_task
    copy = "def compute_reward(obs, action, next_obs, info):\n    return info['env_reward'], {'env': info['env_reward']}\n"
    config = TrainConfig(timesteps=4096, seed=1, checkpoints=1, eval_episodes=1, final_episodes=1, device="cpu")
    own = train(ResolvedTask.of_spec(acrobot, task), None, config)
    shaped = train(ResolvedTask.of_spec(acrobot, task), copy, config)
    unscaled = replace(acrobot, ppo=replace(acrobot.ppo, normalize_reward=False))
    plain = train(ResolvedTask.of_spec(unscaled, task), copy, config)
    probe = np.random.default_rng(0).uniform(-1, 1, size=(512, 6)).astype(np.float32)
    try:
        assert own.result.status == shaped.result.status == "scored"
        # Same policy, action for action; without the scaling the policy is a different one.
        np.testing.assert_array_equal(own.policy(probe), shaped.policy(probe))
        assert (own.policy(probe) != plain.policy(probe)).any()
    finally:
        for trained in (own, shaped, plain):
            trained.close()


def test_training_leaves_no_logger_directories_behind(cartpole):
    import tempfile
    from pathlib import Path

    before = set(Path(tempfile.gettempdir()).glob("SB3-*"))
    task = cartpole.default_task
    trained = train(ResolvedTask.of_spec(cartpole, task), ALIVE, TrainConfig(timesteps=256, **TINY))
    trained.close()
    assert set(Path(tempfile.gettempdir()).glob("SB3-*")) == before
