"""Final evaluation: statistics, the three-way comparison, and --final-eval choosing what to export."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from rewardsmith.evaluate import Evaluation, human_normalised, mean_ci95

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
    assert "CartPole-v1 · balance" in table.stdout


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
