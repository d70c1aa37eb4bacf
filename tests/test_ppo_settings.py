"""PPO settings: budgets in whole rollouts, rollouts fitted to the budget, --ppo and --hyperparams."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from rewardsmith.errors import UsageError
from rewardsmith.hyperparams import apply_overrides, parse_ppo_options, read_zoo_file
from rewardsmith.spec import MIN_UPDATES, PPOConfig
from rewardsmith.task import ResolvedTask, TaskRef
from tests.test_cli import assert_one_line_error, rewardsmith


@pytest.mark.parametrize("budget", [64, 1000, 1280, 2000, 20_000, 50_000, 123_457, 1_000_000])
@pytest.mark.parametrize("n_envs", [1, 4, 8])
def test_an_untuned_budget_is_whole_rollouts_with_enough_updates(budget, n_envs):
    ppo = PPOConfig(n_envs=n_envs)
    rounded = ppo.round_budget(budget)
    rollout = ppo.rollout(budget)
    assert rounded % rollout == 0 and rounded <= max(budget, rollout)
    assert ppo.round_budget(rounded) == rounded  # shown, recorded and trained agree
    assert ppo.fitted(rounded).n_steps == ppo.fitted(budget).n_steps
    if budget >= n_envs * 16 * MIN_UPDATES:
        assert rounded // rollout >= MIN_UPDATES


def test_sb3s_default_rollout_no_longer_overshoots_a_small_budget():
    # SB3's default (8 × 2048) trained 32,768 steps for --timesteps 20000
    ppo = PPOConfig()
    assert ppo.rollout(20_000) * MIN_UPDATES <= 20_000
    assert ppo.sb3_kwargs(20_000)["n_steps"] == ppo.fitted(20_000).n_steps


def test_a_tuned_rollout_is_kept_and_the_budget_rounds_to_it():
    ppo = PPOConfig(n_envs=8, n_steps=32)
    assert ppo.fitted(20_000) is ppo
    assert ppo.round_budget(20_000) == 19_968
    assert TaskRef("cartpole", "x").resolve().budget(20_000) == 19_968


def test_the_steps_trained_are_the_budget_shown(cartpole):
    """An introspected-style spec (no tuned rollout) trains exactly its rounded budget, with ~10 checkpoints."""
    from rewardsmith.training import TrainConfig, train

    spec = replace(cartpole, ppo=PPOConfig(n_envs=2))
    task = spec.default_task
    budget = task.budget(replace(spec.ppo, timesteps=1500))
    assert budget == 1408  # 11 updates of 2 envs × 64 steps
    trained = train(ResolvedTask.of_spec(spec, task), None,
                    TrainConfig(timesteps=1500, checkpoints=10, eval_episodes=1, final_episodes=1,
                                save_policy=False))
    trained.close()
    assert trained.result.status == "scored"
    assert trained.result.steps == budget
    assert len(trained.result.checkpoints) >= MIN_UPDATES


def test_ppo_options_read_literals_and_the_zoos_spellings():
    settings = parse_ppo_options([
        "n_steps=512", "gamma=0.98", "learning_rate=lin_3e-4", "normalize=true", "n_timesteps=1e6",
        "policy_kwargs=dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU, "
        "net_arch=dict(pi=[256, 256], vf=[256, 256]))",
    ])
    assert settings == {
        "n_steps": 512, "gamma": 0.98, "learning_rate": 3e-4, "linear_lr": True, "normalize_obs": True,
        "normalize_reward": True, "schedule_horizon": 1_000_000, "log_std_init": -2.0, "ortho_init": False,
        "activation_fn": "relu", "net_arch": {"pi": [256, 256], "vf": [256, 256]},
    }
    ppo = apply_overrides(PPOConfig(), settings)
    kwargs = ppo.sb3_kwargs(100_000)
    import torch.nn as nn

    assert kwargs["n_steps"] == 512 and kwargs["gamma"] == 0.98
    assert kwargs["policy_kwargs"] == {"log_std_init": -2.0, "ortho_init": False, "activation_fn": nn.ReLU,
                                       "net_arch": {"pi": [256, 256], "vf": [256, 256]}}
    assert json.loads(json.dumps(settings)) == settings  # recorded in run.json as is


@pytest.mark.parametrize("pairs,fragment", [
    (["n_steps"], "takes key=value"),
    (["warp_speed=9"], "unknown PPO setting 'warp_speed'"),
    (["n_steps=lots"], "n_steps must be a number"),
    (["n_steps=12.5"], "whole number"),
    (["gamma=1.5"], "gamma must be in (0, 1]"),
    (["normalize_obs=1"], "true or false"),
    (["policy_kwargs=dict(activation_fn=nn.Sigmoid)"], "activation_fn 'nn.Sigmoid'"),
    (["policy_kwargs=dict(net_arch=__import__('os').system('x'))"], "cannot read policy_kwargs"),
    (["policy=CnnPolicy"], "not supported"),
])
def test_bad_ppo_options_are_refused_with_a_reason(pairs, fragment):
    with pytest.raises(UsageError) as caught:
        parse_ppo_options(pairs)
    assert fragment in str(caught.value)


ZOO_YAML = """\
Hopper-v3:
  normalize: true
  n_envs: 1
  policy: 'MlpPolicy'
  n_timesteps: !!float 1e6
  batch_size: 32
  n_steps: 512
  gamma: 0.999
  learning_rate: 9.80828e-05
  ent_coef: 0.00229519
  clip_range: 0.2
  n_epochs: 5
  gae_lambda: 0.99
  max_grad_norm: 0.7
  vf_coef: 0.835671
  policy_kwargs: "dict(
                    log_std_init=-2,
                    ortho_init=False,
                    activation_fn=nn.ReLU,
                    net_arch=dict(pi=[256, 256], vf=[256, 256])
                  )"
CartPole-v1:
  n_envs: 8
  n_timesteps: !!float 1e5
  n_steps: 32
  learning_rate: lin_0.001
  clip_range: lin_0.2
"""


def test_a_zoo_file_gives_the_envs_entry_matching_another_version(tmp_path):
    path = tmp_path / "ppo.yml"
    path.write_text(ZOO_YAML)
    hopper = read_zoo_file(path, "Hopper-v5")
    assert hopper["n_envs"] == 1 and hopper["n_steps"] == 512 and hopper["batch_size"] == 32
    assert hopper["schedule_horizon"] == 1_000_000 and hopper["normalize_reward"] is True
    assert hopper["activation_fn"] == "relu" and hopper["net_arch"] == {"pi": [256, 256], "vf": [256, 256]}
    cartpole = read_zoo_file(path, "CartPole-v1")
    assert cartpole["linear_lr"] and cartpole["linear_clip"] and cartpole["learning_rate"] == 0.001
    with pytest.raises(UsageError, match="no entry for Pendulum-v1"):
        read_zoo_file(path, "Pendulum-v1")
    with pytest.raises(UsageError, match="does not exist"):
        read_zoo_file(tmp_path / "missing.yml", "Hopper-v5")
    (tmp_path / "bad.yml").write_text("Hopper-v5: [unclosed\n")
    with pytest.raises(UsageError, match="not readable YAML"):
        read_zoo_file(tmp_path / "bad.yml", "Hopper-v5")


def test_the_cli_records_the_settings_used_and_resume_trains_with_them(tmp_path):
    zoo = tmp_path / "ppo.yml"
    zoo.write_text("CartPole-v1:\n  n_envs: 2\n  n_steps: 64\n  gamma: 0.95\n")
    result = rewardsmith("run", "--env", "cartpole", "--task", "balance", "-n", "1", "-k", "1", "--workers", "1",
                         "--timesteps", "700", "--hyperparams", str(zoo), "--ppo", "n_steps=32",
                         "--no-media", "--designer", "builtin", "--out", str(tmp_path), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "training: 640 steps each (10 PPO updates of 2 envs × 32 steps)" in result.stdout
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    info = json.loads((run_dir / "run.json").read_text())
    assert info["task"]["ppo"] == {"n_envs": 2, "n_steps": 32, "gamma": 0.95}
    assert info["budget"] == 640 and info["ppo"]["n_steps"] == 32 and info["ppo"]["gamma"] == 0.95
    curves = json.loads(next(run_dir.rglob("curves.json")).read_text())
    assert curves["steps"] == 640
    resolved = TaskRef.from_dict(info["task"]).resolve()  # what resume and evaluate resolve
    assert resolved.spec.ppo.n_envs == 2 and resolved.spec.ppo.gamma == 0.95


def test_a_bad_ppo_option_on_the_cli_is_one_line(tmp_path):
    result = rewardsmith("run", "--env", "cartpole", "--task", "balance", "--ppo", "gamma=2", "--out", str(tmp_path))
    assert_one_line_error(result, 2, "gamma must be in (0, 1]")
