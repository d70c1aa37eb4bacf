"""Successive halving: a training paused at a rung and continued ends exactly where one straight through ends."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
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


# ------------------------------------------------------------------------------------ the rung plan


def test_rung_budgets_are_whole_rollouts_growing_by_eta_up_to_the_full_budget():
    from rewardsmith.halving import rung_budgets

    assert rung_budgets(9 * 1024, 256, 1 / 9, 3) == [1024, 3072, 9216]
    assert rung_budgets(1536, 256, 1 / 9, 3) == [256, 512, 1536]  # 170 rounds up to one rollout
    assert rung_budgets(1024, 1024, 1 / 9, 3) == [1024]  # one rollout: nothing to halve
    assert rung_budgets(2048, 256, 1 / 2, 2) == [1024, 2048]


def test_keep_top_keeps_the_best_ceil_n_over_eta():
    from rewardsmith.halving import keep_top

    kept, stopped = keep_top([(1, 5.0), (2, 9.0), (3, 1.0), (4, 7.0)], 3, lambda c: (c[1], -c[0]))
    assert kept == [(2, 9.0), (4, 7.0)] and stopped == [(1, 5.0), (3, 1.0)]
    kept, stopped = keep_top([(1, 5.0), (2, 5.0)], 2, lambda c: (c[1], -c[0]))
    assert kept == [(1, 5.0)] and stopped == [(2, 5.0)]  # a tie goes to the earlier candidate


# ------------------------------------------------------------------------------------ end to end


def _cli_env() -> dict[str, str]:
    env = dict(os.environ, COLUMNS="200")
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    return env


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]


def _check_rungs(run_dir: Path, eta: int) -> None:
    """Every rung decision kept ceil(n / eta) and none it stopped was fitter than one it kept; the summary marks
    the stopped with their rung and their rung's steps; the survivors reached the full budget."""
    events = _events(run_dir)
    budget = json.loads((run_dir / "run.json").read_text())["budget"]
    decisions = [e for e in events if e["kind"] == "rung_decided"]
    assert decisions and decisions[0]["rung"] == 0
    stopped_at: dict[str, tuple[int, int]] = {}
    for d in decisions:
        trained = d["kept"] + d["stopped"]
        assert len(d["kept"]) == math.ceil(len(trained) / eta)
        assert set(d["fitness"]) == set(trained)
        if d["stopped"]:
            assert min(d["fitness"][c] for c in d["kept"]) >= max(d["fitness"][c] for c in d["stopped"])
        stopped_at.update({c: (d["rung"], d["steps"]) for c in d["stopped"]})
    assert stopped_at, "three candidates at eta 3: two stop at the first rung"
    summary = json.loads((run_dir / "summary.json").read_text())
    for row in summary["candidates"]:
        assert row["status"] == "scored"
        curves = json.loads((run_dir / f"iter-00/cand-{int(row['id'][3:]):02d}/curves.json").read_text())
        if row["id"] in stopped_at:
            rung, steps = stopped_at[row["id"]]
            assert row["stopped_at_rung"] == rung and row["steps"] == steps == curves["steps"]
        else:
            assert "stopped_at_rung" not in row
            assert curves["steps"] == budget


def test_halving_search_end_to_end_marks_stopped_candidates(tmp_path):
    result = subprocess.run([sys.executable, "-m", "rewardsmith.cli", "run", "keep the pole upright", "--env",
                             "cartpole", "--schedule", "halving", "--iterations", "1", "--samples", "3",
                             "--timesteps", "1536", "--eta", "3", "--no-media", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=300, env=_cli_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "successive halving: rungs end at 256, 512, 1,536 steps" in result.stdout
    run_dir = next(tmp_path.glob("*/events.jsonl")).parent
    assert json.loads((run_dir / "run.json").read_text())["config"]["schedule"] == "halving"
    _check_rungs(run_dir, eta=3)
    show = subprocess.run([sys.executable, "-m", "rewardsmith.cli", "show", str(run_dir)], capture_output=True,
                          text=True, timeout=120, env=_cli_env())
    assert "stopped at rung 0" in show.stdout
    assert "stopped at rung 0" in (run_dir / "report.html").read_text()


def test_halving_resumes_mid_search_from_the_saved_rung(tmp_path):
    """Killed after the first rung's decision: the resume trains the survivors on from their saved state."""
    proc = subprocess.Popen([sys.executable, "-m", "rewardsmith.cli", "run", "keep the pole upright", "--env",
                             "cartpole", "--schedule", "halving", "--iterations", "1", "--samples", "3",
                             "--timesteps", "24576", "--eta", "3", "--no-media", "--workers", "1",
                             "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_cli_env(),
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            logs = list(tmp_path.glob("*/events.jsonl"))
            if logs and '"rung_decided"' in logs[0].read_text():
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        else:
            pytest.fail("no rung was decided within 240 s")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    run_dir = logs[0].parent
    assert '"run_finished"' not in logs[0].read_text(), "killed too late to test a resume mid-search"
    resumed = subprocess.run([sys.executable, "-m", "rewardsmith.cli", "resume", str(run_dir)],
                             capture_output=True, text=True, timeout=300, env=_cli_env())
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    events = _events(run_dir)
    at = next(i for i, e in enumerate(events) if e["kind"] == "run_resumed")
    assert [e["rung"] for e in events if e["kind"] == "rung_decided"].count(0) == 1, "rung 0 was not trained again"
    after = [e for e in events[at:] if e["kind"] == "candidate_training"]
    assert after and all(e["rung"] >= 1 for e in after)
    _check_rungs(run_dir, eta=3)
    assert not list(run_dir.glob("iter-*/cand-*/rung-*.state")), "finished candidates keep no paused state"


@pytest.mark.parametrize(("args", "message"), [
    (["--schedule", "asha"], "--schedule must be full or halving, got 'asha'"),
    (["--schedule", "halving", "--eta", "1"], "--eta must be at least 2"),
    (["--schedule", "halving", "--min-fraction", "1.5"], "--min-fraction must be between 0 and 1"),
])
def test_bad_halving_options_are_usage_errors(args, message, tmp_path):
    result = subprocess.run([sys.executable, "-m", "rewardsmith.cli", "run", "balance", "--env", "cartpole", *args,
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=120, env=_cli_env())
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------ what the designer is told


def _scored(cid: str, iteration: int, fitness: float, steps: int, stopped_at_rung: int | None = None):
    from rewardsmith.candidate import Candidate
    from rewardsmith.results import TrainingResult

    return Candidate(cid, iteration, int(cid[3:]), "def compute_reward(obs, action, next_obs, info):\n    return 0.0\n",
                     status="scored", result=TrainingResult("scored", fitness, steps=steps),
                     stopped_at_rung=stopped_at_rung)


def test_a_candidate_stopped_at_a_rung_never_outranks_one_trained_to_the_full_budget():
    """Its rung fitness was measured after a fraction of the budget: not a parent over a full training, not the
    best, whatever the number (the built-in designer takes ``parent_for`` as its parent)."""
    from rewardsmith.state import SearchConfig, SearchState

    state = SearchState(run=None, task=None, config=SearchConfig(schedule="halving"), designer="builtin",  # type: ignore[arg-type]
                        budget=9216)
    early = _scored("00-00", 0, 480.0, 1024, stopped_at_rung=0)
    full = _scored("00-01", 0, 120.0, 9216)
    state.candidates = {c.id: c for c in (early, full)}
    assert state.parent_for(1) is full and state.best is full
    full.status, full.result = "failed", None
    assert state.parent_for(1) is early and state.best is early  # nothing trained to the end: the rung is all there is


def test_the_final_evaluation_retrains_full_trainings_before_one_stopped_at_a_rung():
    """``--final-eval``'s top is ranked as the best is: a rung's higher fitness does not push out a full training."""
    from rewardsmith.evaluate import top_candidates
    from rewardsmith.state import SearchConfig, SearchState

    state = SearchState(run=None, task=None, config=SearchConfig(schedule="halving"), designer="builtin",  # type: ignore[arg-type]
                        budget=9216)
    early = _scored("00-00", 0, 480.0, 1024, stopped_at_rung=0)
    full = _scored("00-01", 0, 120.0, 9216)
    tied = _scored("00-02", 0, 120.0, 9216)
    state.candidates = {c.id: c for c in (early, tied, full)}  # not in the search's order: ties go to the earlier
    assert top_candidates(state, 1) == [full]
    assert top_candidates(state, 3) == [full, tied, early]


@pytest.mark.slow
def test_the_next_prompt_names_candidates_stopped_early_with_their_rung_fitness_and_steps(tmp_path, monkeypatch):
    """A halving search with the LLM designer on the scripted server: the second round's request lists the
    candidates stopped at rung 0 with their rung fitness and the steps they got out of the full budget, and the
    analyzer's reflection of a stopped candidate says its numbers are an early look."""
    import itertools

    from rewardsmith.designer.endpoint import LLMOptions
    from rewardsmith.designer.llm import LLMDesigner
    from rewardsmith.loop import SearchConfig, run_search
    from rewardsmith.runs import RunDir
    from rewardsmith.task import TaskRef
    from tests.llm_replies import variant
    from tests.llm_server import Reply, ScriptedLLM, last_user_text, purpose_of

    task = TaskRef("cartpole", "Keep the pole balanced upright for as long as possible.")
    config = SearchConfig(iterations=2, samples=3, timesteps=1536, checkpoints=2, eval_episodes=2, final_episodes=2,
                          media=False, workers=2, schedule="halving", eta=3)
    with ScriptedLLM() as server:
        monkeypatch.setenv("REWARDSMITH_TEST_KEY", server.api_key)
        monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
        counter = itertools.count()
        server.route = lambda request: Reply(variant(next(counter)))
        run = RunDir.create(tmp_path / "runs", "cartpole", task.text)
        options = LLMOptions(model="test-model", base_url=server.url, api_key_env="REWARDSMITH_TEST_KEY",
                             backoff=0.01, timeout=5.0)
        state = run_search(run, task, LLMDesigner(options, run), config)
        proposals = [r for r in server.chats if purpose_of(r) == "propose"]
    assert state.status == "finished"
    decision = next(e for e in _events(run.root) if e["kind"] == "rung_decided" and e["iteration"] == 0)
    assert decision["rung"] == 0 and len(decision["stopped"]) == 2, decision
    assert len(proposals) == 2
    first, second = last_user_text(proposals[0]), last_user_text(proposals[1])
    assert "Stopped early" not in first
    section = second.split("## Stopped early (successive halving)", 1)[1]
    assert "not a final result" in section and "full 1,536 steps" in section
    for cid in decision["stopped"]:
        line = (f"- {cid}: stopped at rung 0 with fitness {decision['fitness'][cid]:.4g} after "
                f"{decision['steps']:,} of 1,536 steps")
        assert line in section, section
        assert f"{cid} " in second.split("## The other programs", 1)[1] and "at rung 0, stopped early" in second
    survivor = decision["kept"][0]
    assert f"## The program to improve: {survivor} (fitness" in second  # the one trained to the full budget
    assert f"{survivor}: stopped" not in section
    stopped = state.candidates[decision["stopped"][0]]
    assert f"Trained {decision['steps']:,} of the full 1,536 steps" in stopped.analysis["reflection"]
    assert "of the full" not in state.candidates[survivor].analysis["reflection"]


def test_a_rung_continues_in_another_process_on_an_env_whose_spec_defines_a_wrapper(tmp_path):
    """acrobot/keep-above wraps its env in a class of the spec file (``IgnoreTermination``), which the paused
    state pickles by reference to the spec's module. Each rung runs in a fresh worker process (its own string
    hash seed), which must import the spec under the same module name, or the state cannot be loaded."""
    from rewardsmith.executors import ProcessPool
    from rewardsmith.jobs import train_candidate_job
    from rewardsmith.runs import CandidatePaths
    from rewardsmith.spec import load_spec
    from rewardsmith.task import TaskRef

    spec = load_spec("acrobot")
    rollout = spec.ppo.rollout(8192)
    ref = TaskRef("acrobot", "keep the tip above the bar", task="keep-above").to_dict()
    config = TrainConfig(timesteps=2 * rollout, seed=0, **TINY)
    paths = CandidatePaths(tmp_path / "cand")
    paths.root.mkdir()
    legs = [RungLeg(stop_at=rollout, save_to=Path("rung-0.state")), RungLeg(resume_from=Path("rung-0.state"))]
    results = []
    for leg in legs:
        with ProcessPool(1) as pool:  # a new process for each rung, as on resume or another Ray worker
            results.append(pool.submit(train_candidate_job, ref, spec.task("keep-above").reference_reward, config,
                                       paths, "00-00", leg).result())
    assert [r["result"]["status"] for r in results] == ["scored", "scored"], results[1]["result"].get("reason")
    assert [r["result"]["steps"] for r in results] == [rollout, 2 * rollout]
