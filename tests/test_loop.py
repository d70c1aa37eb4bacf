"""The search loop end to end: files, events, summary, repairs, interruption and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rewardsmith.designer import BuiltinDesigner
from rewardsmith.designer.base import DesignContext, Proposal, Usage
from rewardsmith.hooks import IterationDecision, LoopHooks
from rewardsmith.loop import resume_search, run_search
from rewardsmith.runs import RunDir
from rewardsmith.state import load_state, record_feedback
from rewardsmith.task import TaskRef
from tests.programs import MISSPELT, UPRIGHT


class ScriptedDesigner:
    """A designer that proposes fixed programs and repairs by swapping in UPRIGHT (the loop's view of an LLM)."""

    name = "scripted"

    def __init__(self, programs: list[str]) -> None:
        self.programs = programs
        self.usage = Usage()
        self.repairs: list[str] = []

    def propose(self, ctx: DesignContext) -> list[Proposal]:
        return [Proposal(p, {"designer": self.name, "note": f"script {i}"}) for i, p in enumerate(self.programs)]

    def repair(self, ctx: DesignContext, source: str, problem: str, attempt: int) -> Proposal | None:
        self.repairs.append(problem)
        return Proposal(UPRIGHT, {"designer": self.name, "note": "repaired"})


def _events(run: RunDir, kind: str) -> list[dict]:
    return [e for e in run.events() if e["kind"] == kind]


def test_a_tiny_search_writes_the_whole_run_directory(tmp_path, tiny_search):
    run = RunDir.create(tmp_path, "cartpole", "keep the pole upright")
    state = run_search(run, TaskRef("cartpole", "keep the pole upright"), BuiltinDesigner(), tiny_search)
    assert state.status == "finished"
    assert len(state.candidates) == 4
    summary = json.loads(run.summary_json.read_text())
    assert summary["status"] == "finished"
    assert summary["env"] == "CartPole-v1"
    assert summary["scored_on_default"] is True
    assert {c["status"] for c in summary["candidates"]} <= {"scored", "rejected", "failed"}
    assert set(summary["candidates"][0]) >= {"id", "iteration", "status", "reason", "fitness"}
    assert summary["best"]["id"] == state.best.id
    assert summary["best"]["fitness"] == max(c["fitness"] for c in summary["candidates"] if c["fitness"] is not None)
    assert Path(summary["best"]["reward_path"]).is_file()
    assert set(summary["usage"]) >= {"requests", "prompt_tokens", "completion_tokens"}
    for cand in state.candidates.values():
        paths = run.candidate(cand.iteration, cand.index)
        for path in (paths.reward, paths.critic, paths.curves, paths.origin, paths.root / "policy.zip"):
            assert path.is_file(), path
    exported = (run.best_dir / "reward.py").read_text()
    assert "class SynthesizedReward" in exported and "import rewardsmith" not in exported
    assert json.loads((run.best_dir / "manifest.json").read_text())["candidate"] == state.best.id
    kinds = [e["kind"] for e in run.events()]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.count("iteration_finished") == 2
    assert json.loads(run.run_json.read_text())["status"] == "finished"
    # The second iteration's candidates descend from the first iteration's best.
    assert {c.parent for c in state.of_iteration(1)} == {state.of_iteration(0)[0].id
                                                         if state.of_iteration(0)[0].fitness
                                                         >= state.of_iteration(0)[1].fitness
                                                         else state.of_iteration(0)[1].id}


def test_refused_candidates_are_repaired_and_every_attempt_recorded(tmp_path, tiny_search):
    run = RunDir.create(tmp_path, "cartpole", "scripted")
    designer = ScriptedDesigner([MISSPELT, UPRIGHT])
    config = tiny_search.__class__.from_dict({**tiny_search.to_dict(), "iterations": 1})
    state = run_search(run, TaskRef("cartpole", "keep the pole upright"), designer, config)
    repaired = state.candidates["00-00"]
    assert repaired.status == "scored"
    assert repaired.attempts[0]["source"] == MISSPELT
    assert "pole_angel is not an observation field" in repaired.attempts[0]["problem"]
    assert "valid fields: cart_position, cart_velocity, pole_angle, pole_angular_velocity" in designer.repairs[0]
    assert json.loads(run.candidate(0, 0).attempts.read_text())[0]["source"] == MISSPELT
    summary = json.loads(run.summary_json.read_text())
    assert summary["candidates"][0]["repairs"] == 1
    assert len(_events(run, "candidate_repaired")) == 1


def test_without_repairs_a_refused_candidate_is_rejected_with_its_reason(tmp_path, tiny_search):
    run = RunDir.create(tmp_path, "cartpole", "scripted")
    config = tiny_search.__class__.from_dict({**tiny_search.to_dict(), "iterations": 1, "repairs": 0})
    state = run_search(run, TaskRef("cartpole", "x"), ScriptedDesigner([MISSPELT, UPRIGHT]), config)
    rejected = state.candidates["00-00"]
    assert rejected.status == "rejected"
    assert "unknown_field" in str(rejected.reason)
    assert state.best.id == "00-01"
    row = json.loads(run.summary_json.read_text())["candidates"][0]
    assert row["status"] == "rejected" and "pole_angel" in row["reason"] and row["fitness"] is None


class StopAfterFirst(LoopHooks):
    def on_iteration_end(self, state, iteration):
        raise KeyboardInterrupt


def test_an_interrupted_search_resumes_without_redoing_finished_candidates(tmp_path, tiny_search):
    run = RunDir.create(tmp_path, "cartpole", "resume me")
    ref = TaskRef("cartpole", "balance", task="balance")
    with pytest.raises(KeyboardInterrupt):
        run_search(run, ref, BuiltinDesigner(), tiny_search, StopAfterFirst())
    assert json.loads(run.run_json.read_text())["status"] == "interrupted"
    first = {c.id: c.fitness for c in load_state(run).candidates.values()}
    assert len(first) == 2
    state = resume_search(run, BuiltinDesigner())
    assert state.status == "finished" and state.iterations_done == 2
    trained = [e["id"] for e in _events(run, "candidate_training")]
    assert sorted(trained) == ["00-00", "00-01", "01-00", "01-01"]  # none trained twice
    assert {cid: state.candidates[cid].fitness for cid in first} == first


def test_resume_of_a_finished_run_needs_more_iterations(tmp_path, tiny_search):
    from rewardsmith.errors import UsageError

    run = RunDir.create(tmp_path, "cartpole", "done")
    config = tiny_search.__class__.from_dict({**tiny_search.to_dict(), "iterations": 1})
    run_search(run, TaskRef("cartpole", "balance", task="balance"), BuiltinDesigner(), config)
    with pytest.raises(UsageError, match="--iterations"):
        resume_search(run, BuiltinDesigner())
    state = resume_search(run, BuiltinDesigner(), iterations=1)
    assert state.iterations_done == 2 and len(state.candidates) == 4


def test_feedback_reaches_the_designer_of_the_next_iteration(tmp_path, tiny_search):
    run = RunDir.create(tmp_path, "cartpole", "hold right")
    config = tiny_search.__class__.from_dict({**tiny_search.to_dict(), "iterations": 1})
    ref = TaskRef("cartpole", "hold the cart at x=1", task="hold-right")
    run_search(run, ref, BuiltinDesigner(), config)
    assert record_feedback(run, "The cart drifts: more near_target please.") == 1
    state = resume_search(run, BuiltinDesigner(), iterations=1)
    notes = [c.origin["note"] for c in state.of_iteration(1)]
    assert any("feedback: doubled near_target" in note for note in notes)
    assert _events(run, "feedback")[0]["text"] == "The cart drifts: more near_target please."


class ChooseParent(LoopHooks):
    def on_iteration_end(self, state, iteration):
        if iteration > 0:
            return None
        worst = min((c for c in state.candidates.values() if c.fitness is not None), key=lambda c: c.fitness)
        self.chosen = worst.id
        return IterationDecision(parent=worst.id, feedback=["less upright"])


def test_a_person_can_choose_the_parent_of_the_next_iteration(tmp_path, tiny_search):
    run = RunDir.create(tmp_path, "cartpole", "choose")
    hooks = ChooseParent()
    state = run_search(run, TaskRef("cartpole", "balance", task="balance"), BuiltinDesigner(), tiny_search, hooks)
    assert {c.parent for c in state.of_iteration(1)} == {hooks.chosen}
    assert _events(run, "parent_chosen")[0]["id"] == hooks.chosen


@pytest.mark.slow
def test_a_killed_run_resumes_from_the_command_line(tmp_path):
    """SIGKILL the CLI after its first iteration; `rewardsmith resume` finishes without retraining."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "rewardsmith.cli", "run", "--env", "cartpole", "--task", "balance",
           "--iterations", "3", "--samples", "2", "--timesteps", "512", "--workers", "2", "--no-media",
           "--out", str(tmp_path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    run_root = None
    while time.monotonic() < deadline:
        dirs = [p for p in tmp_path.iterdir() if p.is_dir()]
        if dirs and (dirs[0] / "events.jsonl").exists():
            run_root = dirs[0]
            if '"iteration_finished"' in (run_root / "events.jsonl").read_text():
                break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert run_root is not None
    run = RunDir.open(run_root)
    done = {e["id"] for e in _events(run, "candidate_finished")}
    assert {"00-00", "00-01"} <= done
    result = subprocess.run([sys.executable, "-m", "rewardsmith.cli", "resume", str(run_root)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "best:" in result.stdout
    trained = [e["id"] for e in _events(run, "candidate_training")]
    assert trained.count("00-00") == 1 and trained.count("00-01") == 1
    assert json.loads(run.summary_json.read_text())["iterations_done"] == 3
