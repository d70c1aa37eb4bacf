"""The exported module: standalone, same numbers as the sandbox, a working Gymnasium wrapper."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from rewardsmith.export import render_export, reward_program
from rewardsmith.rollouts import episode_transitions, record_episodes
from rewardsmith.sandbox import RewardSandbox

REWARD = """
import math
import numpy as np

TARGET = 1.0


def compute_reward(obs, action, next_obs, info):
    near = math.exp(-abs(next_obs.cart_position - TARGET) / 0.5)
    upright = float(np.cos(next_obs[2]))
    push = 0.01 * action
    fell = -1.0 if info["terminated"] else 0.0
    return near + upright + push + fell, {"near": near, "upright": upright, "push": push, "fell": fell}
"""


def _load(tmp_path, cartpole, source=REWARD):
    path = tmp_path / "exported_reward.py"
    path.write_text(render_export(source, cartpole, {"task": "hold right", "task_name": "hold-right",
                                                     "fitness": 123.0, "solved": 400.0, "run": "runs/x",
                                                     "candidate": "00-01", "fitness_doc": "steps near x=1"}))
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return path, namespace


def test_the_module_imports_without_rewardsmith(tmp_path, cartpole):
    path, _ = _load(tmp_path, cartpole)
    script = (
        "import sys; sys.modules['rewardsmith'] = None\n"
        f"import runpy; ns = runpy.run_path({str(path)!r})\n"
        "import gymnasium as gym\n"
        "env = ns['SynthesizedReward'](gym.make('CartPole-v1'))\n"
        "env.reset(seed=0)\n"
        "obs, reward, term, trunc, info = env.step(1)\n"
        "assert type(reward) is float, type(reward)\n"
        "print(sorted(info['reward_components']))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['fell', 'near', 'push', 'upright']"


def test_the_header_records_task_env_fitness_and_run(tmp_path, cartpole):
    path, _ = _load(tmp_path, cartpole)
    header = path.read_text().split("\n\n")[0]
    assert "task:      hold right" in header
    assert "CartPole-v1" in header and "hold-right" in header
    assert "fitness:   123 (not solved: solved at fitness ≥ 400" in header
    assert "runs/x" in header and "00-01" in header


def test_wrapper_rewards_match_the_sandbox_on_the_same_transitions(tmp_path, cartpole):
    _, namespace = _load(tmp_path, cartpole)
    env = namespace["SynthesizedReward"](gym.make("CartPole-v1"))
    obs, _ = env.reset(seed=4)
    observations, actions, rewards, components = [obs], [], [], []
    rng = np.random.default_rng(0)
    for _ in range(200):
        action = int(rng.integers(2))
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        components.append(info["reward_components"])
        if terminated or truncated:
            break
    task = cartpole.default_task
    policy_actions = iter(actions)
    episodes, _ = record_episodes(lambda batch: np.array([next(policy_actions)]), cartpole, task, 1, seed=4)
    batch = episode_transitions(episodes[0])
    with RewardSandbox(cartpole.field_names) as box:
        assert box.load(REWARD).ok
        result = box.call(batch)
    np.testing.assert_allclose(rewards, result.totals, rtol=1e-6)
    assert components == result.components


def test_views_are_read_only_and_indexable(tmp_path, cartpole):
    _, namespace = _load(tmp_path, cartpole)
    view = namespace["RewardsmithObservation"](np.array([0.5, 1.0, 0.1, -0.2], dtype=np.float32))
    assert view.cart_velocity == 1.0 and view[3] == np.float32(-0.2).item()
    assert list(view[0:2]) == [0.5, 1.0]
    assert np.asarray(view).shape == (4,)
    with pytest.raises(AttributeError, match="fields: cart_position"):
        _ = view.pole_angel


def test_header_text_with_newlines_stays_in_comments(tmp_path, cartpole):
    """A task text or fitness docstring with a newline must not end the comment and become code."""
    hostile = "hold right\nimport pwned_os\npwned_os.system('echo pwned')\r\x1b[2J"
    text = render_export(REWARD, cartpole, {"task": hostile, "task_name": "x\nraise PwnedExit",
                                            "fitness": 1.0, "solved": 2.0, "run": "r\nprint('pwned')",
                                            "candidate": "00-00", "fitness_doc": "doc\nimport pwned_sys"})
    header = text.split("\n\n")[0]
    assert all(line.startswith("#") for line in header.splitlines()), header
    assert "\x1b" not in text and "\\x1b[2J" in header
    for line in text.splitlines():
        if "pwned" in line.lower():
            assert line.startswith("#"), f"header text became code: {line!r}"


def test_header_names_fitness_py_only_for_an_agreed_fitness_program(cartpole):
    program = render_export(REWARD, cartpole, {"task": "left", "task_name": "proposed fitness (fitness.py)",
                                               "fitness_origin": "proposed by m", "proposed_program": True})
    assert ("# scored by: the fitness agreed on from the task's words (proposed by m); its program is fitness.py "
            "in the run\n") in program
    default = render_export(REWARD, cartpole, {"task": "balance", "task_name": "fitness.py",
                                               "fitness_origin": "default goal", "proposed_program": False})
    assert "# scored by: the fitness agreed on from the task's words (default goal)\n" in default


def test_reward_program_drops_the_generated_wrapper_and_keeps_bare_programs(tmp_path, cartpole):
    path, _ = _load(tmp_path, cartpole)
    program = reward_program(path.read_text())
    assert "def compute_reward" in program and "TARGET = 1.0" in program
    assert "class SynthesizedReward" not in program and "import gymnasium as _rs_gym" not in program
    assert reward_program(REWARD) == REWARD
