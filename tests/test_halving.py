"""Successive halving: a training paused at a rung and continued ends exactly where one straight through ends."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardsmith.task import ResolvedTask
from rewardsmith.training import RungLeg, TrainConfig, train

TINY = dict(checkpoints=4, eval_episodes=2, final_episodes=2, device="cpu", torch_threads=1)


def _params(policy_dir: Path) -> dict[str, dict]:
    from stable_baselines3.common.save_util import load_from_zip_file

    _, params, _ = load_from_zip_file(policy_dir / "policy.zip", device="cpu")
    return params


@pytest.mark.parametrize(("env", "task_name"), [
    ("cartpole", "hold-right"),  # discrete actions, deferred reward with its own return scaling
    ("mountaincar_continuous", None),  # VecNormalize observation statistics, gSDE exploration noise
])
def test_two_rungs_end_identical_to_one_training_straight_through(env, task_name, tmp_path):
    from rewardsmith.spec import load_spec

    spec = load_spec(env)
    task = spec.task(task_name) if task_name else spec.default_task
    resolved = ResolvedTask.of_spec(spec, task)
    rollout = spec.ppo.rollout(4096)
    config = TrainConfig(timesteps=4 * rollout, seed=5, **TINY)
    assert spec.ppo.round_budget(config.timesteps) == 4 * rollout

    straight = train(resolved, task.reference_reward, config, policy_dir=tmp_path / "straight")
    straight.close()

    state = tmp_path / "rung-0.pkl"
    first = train(resolved, task.reference_reward, config, policy_dir=tmp_path / "first",
                  leg=RungLeg(stop_at=2 * rollout, save_to=state))
    first.close()
    assert first.result.status == "scored" and first.result.steps == 2 * rollout
    assert state.is_file()
    # The next leg runs as another process would: the global random states are elsewhere.
    torch.manual_seed(1234)
    np.random.seed(1234)
    random.seed(1234)
    second = train(resolved, task.reference_reward, config, policy_dir=tmp_path / "second",
                   leg=RungLeg(resume_from=state))
    second.close()

    assert second.result.status == straight.result.status == "scored"
    assert second.result.steps == straight.result.steps == 4 * rollout
    assert [c.step for c in second.result.checkpoints] == [c.step for c in straight.result.checkpoints]
    assert [c.fitness for c in second.result.checkpoints] == [c.fitness for c in straight.result.checkpoints]
    assert [c.shaped_return for c in second.result.checkpoints] == \
        [c.shaped_return for c in straight.result.checkpoints]
    assert second.result.fitness == straight.result.fitness
    want, got = _params(tmp_path / "straight"), _params(tmp_path / "second")
    for name, tensor in want["policy"].items():
        assert torch.equal(tensor, got["policy"][name]), name
    # ...and the optimiser too (Adam's moments and step counts), so a third rung would also match.
    assert str(want["policy.optimizer"]["state"]) == str(got["policy.optimizer"]["state"])
