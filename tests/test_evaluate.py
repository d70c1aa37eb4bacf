"""Final evaluation: statistics, the baselines that exist for a fitness, the sparse reward a fitness's SOLVED
defines, and --final-eval choosing what to export."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from rewardsmith.evaluate import ENV_REWARD, Arm, Evaluation, baselines, human_normalised, mean_ci95

REWARD = """
import math
def compute_reward(obs, action, next_obs, info):
    near = math.exp(-abs(next_obs.cart_position - 1.0) / 0.5)
    up = math.exp(-abs(next_obs.pole_angle) / 0.2)
    return near + 0.5 * up, {"near": near, "up": up}
"""


def test_mean_and_95_percent_interval_use_student_t():
    mean, half = mean_ci95([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    assert mean_ci95([5.0]) == (5.0, 0.0)
    assert mean_ci95([]) == (-math.inf, 0.0)


def test_human_normalised_score_is_eurekas():
    assert human_normalised(150.0, 100.0, 0.0) == 1.5
    assert human_normalised(-150.0, -100.0, -200.0) == 0.5
    assert human_normalised(1.0, 3.0, 3.0) is None


def _cli(*args, timeout=600):
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "rewardsmith.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_evaluate_compares_the_reward_with_human_and_sparse_baselines(tmp_path):
    path = tmp_path / "reward.py"
    path.write_text(REWARD)
    result = _cli("evaluate", str(path), "--env", "cartpole", "--task", "hold-right", "--seeds", "2",
                  "--timesteps", "512", "--workers", "2", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data["arms"]) == {"reward.py", "human", "sparse"}
    for arm in data["arms"].values():
        assert len(arm["fitness"]) == 2 and arm["failures"] == []
        # the summary is the statistics of the per-seed fitness it lists, wherever the trainings landed
        assert [arm["mean"], arm["ci95"]] == pytest.approx(list(mean_ci95(arm["fitness"])))
        assert arm["solved_rate"] == pytest.approx(sum(f >= 400.0 for f in arm["fitness"]) / 2)
    assert data["seeds"] == 2 and data["timesteps"] == 512 and data["solved"] == 400.0
    table = _cli("evaluate", str(path), "--env", "cartpole", "--seeds", "1", "--timesteps", "256", "--workers", "2")
    assert table.returncode == 0, table.stderr
    assert "mean ± 95% CI" in table.stdout and "human-normalised" in table.stdout
    assert "CartPole-v1 · cartpole:balance" in table.stdout


def test_evaluate_refuses_a_rejected_reward(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("import os\n")
    result = _cli("evaluate", str(path), "--env", "cartpole")
    assert result.returncode == 1
    assert "forbidden_import" in result.stderr


def test_run_with_final_eval_exports_the_best_mean(tmp_path):
    result = _cli("run", "--env", "cartpole", "--task", "hold-right", "--iterations", "1", "--samples", "2",
                  "--timesteps", "512", "--workers", "2", "--no-media", "--final-eval", "2", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    final = json.loads((run_dir / "final_eval.json").read_text())
    candidates = [label for label in final["arms"] if label not in ("human", "sparse")]
    assert sorted(candidates) == ["00-00", "00-01"]
    best_mean = max(candidates, key=lambda c: final["arms"][c]["mean"])
    assert final["chosen"] == best_mean
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final_eval"]["chosen"] == final["chosen"]
    assert summary["best"]["id"] == final["chosen"]
    manifest = json.loads((run_dir / "best" / "manifest.json").read_text())
    assert manifest["candidate"] == final["chosen"]
    assert Evaluation.from_dict(final).arm("human") is not None


# ------------------------------------------------------------------------ the baselines of any fitness

LEFT_FITNESS = """
{solved}

def left_steps(episode):
    \"\"\"Steps with the cart left of where it started.\"\"\"
    return float((episode.obs.cart_position[1:] < episode.obs.cart_position[0]).sum())
"""

LEFT_REWARD = """
def compute_reward(obs, action, next_obs, info):
    left = 1.0 if next_obs.cart_position < 0.0 else 0.0
    return left, {"left": left}
"""


def _fitness_file(tmp_path, solved: str = "SOLVED = 3.0", body: str | None = None) -> str:
    path = tmp_path / "left_fitness.py"
    path.write_text(body if body is not None else LEFT_FITNESS.format(solved=solved))
    return f"{path}:left_steps"


def _resolved(reference: str, task: str | None = None):
    from rewardsmith.task import TaskRef

    return TaskRef("cartpole", "keep the cart left", task, reference).resolve()


def _push_left(env, steps: int) -> tuple[list[float], list[float]]:
    """Push the cart left every step: the rewards paid and the cart positions (reset first)."""
    obs, _ = env.reset(seed=7)
    positions, rewards = [float(obs[0])], []
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(0)
        positions.append(float(obs[0]))
        rewards.append(reward)
        if terminated or truncated:
            break
    return rewards, positions


def test_sparse_reward_pays_one_on_the_steps_where_the_episode_so_far_meets_solved(tmp_path):
    from rewardsmith.sparse import SparseFromFitness

    task = _resolved(_fitness_file(tmp_path))
    env = SparseFromFitness(task.spec.make(task.task_spec), task.spec, task.task_spec, task.fitness, task.solved)
    rewards, x = _push_left(env, 500)
    env.close()
    # the running fitness at step t counts the steps 1..t with the cart left of x[0]
    expected = [1.0 if sum(p < x[0] for p in x[1:t + 1]) >= 3.0 else 0.0 for t in range(1, len(rewards) + 1)]
    assert rewards == expected
    assert rewards[:2] == [0.0, 0.0] and rewards[-1] == 1.0  # not yet three steps, then solved for good


def test_the_sparse_reward_trains_ppo_while_the_evaluation_records_the_envs_own(tmp_path):
    """A SOLVED no episode can reach: the training envs pay 0 on every step, the recorded episodes CartPole's +1."""
    from rewardsmith.sparse import SparseFromFitness
    from rewardsmith.training import TrainConfig, train

    task = _resolved(_fitness_file(tmp_path, "SOLVED = 1e9"))
    trained = train(task, None, TrainConfig(timesteps=512, checkpoints=1, eval_episodes=2, final_episodes=2,
                                            device="cpu"),
                    reward_wrapper=lambda env: SparseFromFitness(env, task.spec, task.task_spec, task.fitness,
                                                                 task.solved))
    trained.close()
    assert trained.result.status == "scored"
    assert trained.result.checkpoints[-1].env_return == 0.0  # what the training envs paid per episode
    assert all(e.env_rewards.tolist() == [1.0] * len(e) for e in trained.episodes)


@pytest.mark.parametrize("body,reason", [
    (LEFT_FITNESS.format(solved=""), "has no SOLVED threshold"),
    ("SOLVED = 5.0\ndef left_steps(episode):\n    return float(episode.obs.cart_position[30])\n",
     "cannot score an episode so far (it raised IndexError"),
    ("SOLVED = 5.0\ndef left_steps(episode):\n    return float('nan')\n", "not a finite number"),
])
def test_no_sparse_row_where_the_running_fitness_is_not_well_defined(tmp_path, body, reason):
    arms, notes = baselines(_resolved(_fitness_file(tmp_path, body=body)))
    assert [a.label for a in arms] == [ENV_REWARD]
    assert len(notes) == 1 and notes[0].startswith("no sparse row:") and reason in notes[0]


def test_a_users_fitness_gets_only_the_baselines_that_exist_for_it(tmp_path):
    reference = _fitness_file(tmp_path)
    arms, notes = baselines(_resolved(reference), human=LEFT_REWARD)
    assert [(a.label, a.source, a.sparse_from_fitness) for a in arms] == [
        (ENV_REWARD, None, False), ("human", LEFT_REWARD, False), ("sparse", None, True)]
    assert notes == [f"sparse: 1 on each step where the episode so far scores ≥ 3 (SOLVED) under {reference}, "
                     "else 0"]
    # on a novel task too: its reference and sparse rewards measure the task's own goal, not this fitness
    arms, _ = baselines(_resolved(reference, task="hold-right"))
    assert [a.label for a in arms] == [ENV_REWARD, "sparse"] and arms[1].source is None
    # a fitness put in place some other way than --fitness (an accepted proposal) is just as much not the task's
    from rewardsmith.task import ResolvedTask

    held = _resolved(reference)
    in_memory = ResolvedTask.of_spec(held.spec, fitness=held.fitness, solved=held.solved)
    assert [a.label for a in baselines(in_memory)[0]] == [ENV_REWARD, "sparse"]
    # without --fitness, the task's own baselines as before; --baseline replaces the human row
    spec_arms, spec_notes = baselines(_resolved(None, task="hold-right"), human=LEFT_REWARD)
    assert [(a.label, a.source) for a in spec_arms][0] == ("human", LEFT_REWARD)
    assert spec_arms[1].label == "sparse" and "inside" in spec_arms[1].source and spec_notes == []


def _evaluation(**means: list[float]) -> Evaluation:
    arms = [Arm(label, None, fitness, [None] * len(fitness)) for label, fitness in means.items()]
    return Evaluation("t", "CartPole-v1", "balance", 400.0, 3, 512, arms, "f.py:fit")


def test_the_human_normalised_score_needs_a_human_row_clearly_above_the_sparse_row():
    clear = _evaluation(mine=[150.0, 150.0, 150.0], human=[100.0, 101.0, 99.0], sparse=[0.0, 1.0, -1.0])
    assert clear.normalised("human") == 1.0
    assert clear.normalised("mine") == pytest.approx(1.5)
    assert clear.normalising_problem() is None
    # the reported -1.00: a human row below the sparse row scores itself (h - s) / |h - s| = -1
    backwards = _evaluation(mine=[5.0] * 3, human=[10.0, 10.0, 10.0], sparse=[20.0, 20.0, 20.0])
    assert human_normalised(10.0, 10.0, 20.0) == -1.0
    assert backwards.normalised("human") is None and backwards.normalised("mine") is None
    assert "is not clearly above the sparse row" in backwards.normalising_problem()
    # the reported 24.9: a gap within the noise makes any reward look 25 times better than the human one
    noisy = _evaluation(mine=[10.0] * 3, human=[0.0, 0.8, 0.4], sparse=[0.0, 0.0, 0.0])
    assert human_normalised(10.0, 0.4, 0.0) == pytest.approx(25.0)
    assert noisy.normalised("mine") is None
    missing = _evaluation(mine=[1.0], **{ENV_REWARD: [2.0]}, sparse=[0.0])
    assert missing.normalised("mine") is None and "(no human row)" in missing.normalising_problem()
    data = missing.to_dict()
    assert data["fitness"] == "f.py:fit" and data["human_normalised_missing"] == missing.normalising_problem()
    assert Evaluation.from_dict(data).fitness == "f.py:fit"


def test_evaluate_with_a_fitness_prints_only_its_baselines_under_its_name(tmp_path):
    reward = tmp_path / "reward.py"
    reward.write_text(LEFT_REWARD)
    human = tmp_path / "human.py"
    human.write_text(REWARD)
    reference = _fitness_file(tmp_path)
    result = _cli("evaluate", str(reward), "--env", "cartpole", "--fitness", reference, "--baseline", str(human),
                  "--seeds", "1", "--timesteps", "256", "--workers", "2", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert list(data["arms"]) == ["reward.py", ENV_REWARD, "human", "sparse"]
    assert all(arm["failures"] == [] for arm in data["arms"].values())
    assert data["fitness"] == reference and data["solved"] == 3.0
    assert data["notes"][0].startswith("sparse: 1 on each step where the episode so far scores ≥ 3")
    assert data["arms"]["human"]["human_normalised"] in (1.0, None)  # never the human row's own -1
    # no SOLVED, no --baseline: the env's own reward is the only baseline, and the table says why
    bare = _fitness_file(tmp_path, solved="")
    table = _cli("evaluate", str(reward), "--env", "cartpole", "--fitness", bare, "--seeds", "1",
                 "--timesteps", "256", "--workers", "2")
    assert table.returncode == 0, table.stderr
    assert f"CartPole-v1 · {bare}: 1 seeds × 256 steps (no solved threshold)" in table.stdout
    rows = [line.split("│")[1].strip() for line in table.stdout.splitlines() if line.startswith("│")]
    assert rows == ["reward.py", ENV_REWARD]
    assert "balance" not in table.stdout
    assert "has no SOLVED threshold" in table.stdout and "no human-normalised score" in table.stdout


def test_evaluate_refuses_a_rejected_baseline(tmp_path):
    reward = tmp_path / "reward.py"
    reward.write_text(LEFT_REWARD)
    human = tmp_path / "human.py"
    human.write_text("import os\n")
    result = _cli("evaluate", str(reward), "--env", "cartpole", "--baseline", str(human))
    assert result.returncode == 1
    assert "baseline:" in result.stderr and "forbidden_import" in result.stderr
