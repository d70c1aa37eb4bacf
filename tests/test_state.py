"""A run's state replayed from its event log: typed failure reasons, the recorded budget, the history."""

from __future__ import annotations

import math

from rewardsmith.results import FailureReason, TrainingResult
from rewardsmith.runs import RunDir
from rewardsmith.state import SearchConfig, load_state
from rewardsmith.task import TaskRef
from rewardsmith.training import TrainConfig


def _run(tmp_path, budget: int = 4096) -> RunDir:
    ref = TaskRef("cartpole", "keep the pole upright")
    task = ref.resolve()
    run = RunDir.create(tmp_path, "cartpole", ref.text)
    run.write_json(run.run_json, {"task": ref.to_dict(), "config": SearchConfig(workers=1).to_dict(),
                                  "designer": "builtin", "status": "finished", "budget": budget,
                                  "env": task.record()})
    return run


def test_a_failed_training_keeps_its_reason_typed_from_curves_to_the_replayed_history(tmp_path):
    run = _run(tmp_path)
    reason = FailureReason("runtime_error", "ZeroDivisionError: division by zero", line=4)
    result = TrainingResult("failed", -math.inf, reason=reason)
    paths = run.candidate(0, 0)
    paths.root.mkdir(parents=True)
    run.write_json(paths.curves, result.to_dict())
    assert run.read_json(paths.curves)["reason"] == {"code": "runtime_error", "message": reason.message,
                                                     "line": 4, "severity": "error"}
    source = "def compute_reward(obs, action, next_obs, info):\n    return 1 / 0, {}\n"
    run.append_event("candidate_proposed", id="00-00", iteration=0, index=0, source=source, origin={})
    run.append_event("candidate_finished", id="00-00", status="failed", fitness=None, reason=str(reason),
                     issue=reason.to_dict())
    state = load_state(run, read_only=True)
    cand = state.candidates["00-00"]
    assert cand.result is not None and cand.result.reason == reason and cand.reason == reason
    assert str(cand.reason) == "[runtime_error] line 4: ZeroDivisionError: division by zero"
    assert cand.summary()["reason"] == str(reason)
    [rejection] = state.rejections
    assert (rejection.id, rejection.stage, rejection.issue, rejection.attempt) == ("00-00", "training", reason, 0)


def test_the_budget_is_the_one_run_json_recorded(tmp_path):
    state = load_state(_run(tmp_path, budget=2048), read_only=True)
    assert state.budget == 2048
    assert TrainConfig.for_search(state.config, state.budget).timesteps == 2048


def test_evaluation_trains_with_twice_the_final_episodes_and_keeps_no_policy():
    config = TrainConfig.for_evaluation(2048, "cpu", seed=1003)
    assert (config.checkpoints, config.eval_episodes, config.final_episodes) == (10, 5, 20)
    assert (config.seed, config.save_policy, config.timesteps) == (1003, False, 2048)
