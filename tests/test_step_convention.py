"""One convention for ``info["step"]``: 1 on an episode's first transition, wherever reward code runs.

The prompt tells designers; training, the critic's probes and the exported wrapper must agree with it.
"""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest

from rewardsmith.critic import probe_transitions
from rewardsmith.designer.prompts import preview_messages
from rewardsmith.export import render_export
from rewardsmith.sandbox import RewardSandbox
from rewardsmith.task import TaskRef
from rewardsmith.training import TrainConfig, build_ppo

STEP_AS_COMPONENT = """
def compute_reward(obs, action, next_obs, info):
    return 0.0, {"step": float(info["step"])}
"""


@pytest.fixture(scope="module")
def balance():
    return TaskRef("cartpole", "keep the pole upright", task="balance").resolve()


def test_the_prompt_says_the_first_transition_has_step_1(balance):
    system = preview_messages(balance)[0]["content"]
    said = re.search(r'`info\["step"\]` \([^)]*?(\d+) on the first transition', system)
    assert said is not None, system
    assert int(said.group(1)) == 1


def test_training_gives_the_first_transition_step_1(balance):
    setup = build_ppo(balance.spec, balance.task_spec, STEP_AS_COMPONENT, TrainConfig(timesteps=64, device="cpu"))
    try:
        venv = setup.deferred
        venv.reset()
        venv.step_async(np.asarray([venv.action_space.sample() for _ in range(venv.num_envs)]))
        venv.step_wait()
        venv.flush()
        steps = venv.components.snapshot()["step"]
        assert steps["min"] == steps["max"] == 1.0
    finally:
        setup.close()


def test_the_critics_probes_give_the_first_transition_step_1(balance):
    probes = probe_transitions(balance.spec, balance.task_spec)
    assert int(probes.step.min()) == 1
    with RewardSandbox(balance.spec.field_names) as sandbox:
        assert sandbox.load(STEP_AS_COMPONENT).ok
        _, rows = sandbox.call_chunked(probes, 64)
    assert min(row["step"] for row in rows) == 1.0


def test_the_exported_wrapper_gives_the_first_transition_step_1(tmp_path, balance):
    path = tmp_path / "exported.py"
    path.write_text(render_export(STEP_AS_COMPONENT, balance.spec, {"task": "balance", "task_name": "balance"}))
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    env = namespace["SynthesizedReward"](gym.make("CartPole-v1"))
    env.reset(seed=0)
    _, _, _, _, info = env.step(0)
    assert info["reward_components"]["step"] == 1.0
    _, _, _, _, info = env.step(1)
    assert info["reward_components"]["step"] == 2.0
    env.close()
