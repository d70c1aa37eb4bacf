"""The LLM designer's prompts: one Jinja2 template per role, overridable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rewardsmith.candidate import Candidate
from rewardsmith.critic import Verdict
from rewardsmith.designer.base import DesignContext
from rewardsmith.designer.prompts import Prompts, preview_messages
from rewardsmith.results import Checkpoint, FailureReason, TrainingResult
from rewardsmith.sandbox import Issue
from rewardsmith.task import TaskRef

TASK = TaskRef("cartpole", "Keep the pole balanced upright for as long as possible.")


@pytest.fixture(scope="module")
def task():
    return TASK.resolve()


def _scored(index: int, fitness: float, analysis=None, note: str = "") -> Candidate:
    points = [Checkpoint(256, 20.0, 1.0, 0.0, 20.0, 15.5, 20.0,
                         {"upright": {"mean": 0.5, "std": 0.1, "min": 0.1, "max": 0.9},
                          "alive": {"mean": 1.0, "std": 0.0, "min": 1.0, "max": 1.0}}),
              Checkpoint(512, fitness, 2.0, 0.0, fitness, 30.25, fitness,
                         {"upright": {"mean": 0.75, "std": 0.1, "min": 0.2, "max": 1.0},
                          "alive": {"mean": 1.0, "std": 0.0, "min": 1.0, "max": 1.0}})]
    cand = Candidate(f"00-{index:02d}", 0, index, f"def compute_reward(obs, action, next_obs, info):\n"
                     f"    return {index}.0, {{'upright': 1.0, 'alive': 1.0}}\n", {"note": note}, status="scored")
    cand.verdict = Verdict(True, (), components=("alive", "upright"))
    cand.result = TrainingResult("scored", fitness, checkpoints=points, steps=512, episode_length=fitness)
    cand.analysis = analysis
    return cand


def _rejected(index: int) -> Candidate:
    cand = Candidate(f"00-{index:02d}", 0, index, "import torch\n", {"note": "uses torch"}, status="rejected")
    cand.verdict = Verdict(False, (Issue("forbidden_import", "`import torch` is not allowed", 1),))
    return cand


def _failed(index: int) -> Candidate:
    cand = Candidate(f"00-{index:02d}", 0, index, "x", {}, status="failed")
    cand.result = TrainingResult("failed", float("-inf"), reason=FailureReason("runtime_error", "boom", line=3))
    return cand


def _context(task, history, parent, feedback=()) -> DesignContext:
    return DesignContext(task=task, iteration=1, samples=2, seed=0, history=history, parent=parent,
                         feedback=list(feedback))


def test_the_system_prompt_states_the_contract_and_the_sandbox(task):
    system = Prompts().system(task)
    for needle in ("def compute_reward(obs, action, next_obs, info):", "return total, components",
                   'info["env_reward"]', 'info["terminated"]', 'info["truncated"]', 'info["step"]',
                   "`math`, `numpy`", "`typing`", "next_obs.cart_position", "next_obs[0]", "an int"):
        assert needle in system, needle


def test_the_task_prompt_carries_the_env_representation_the_task_and_the_format(task):
    text = Prompts().task(task)
    assert task.spec.describe(task.task_spec).strip() in text
    assert task.text in text and task.fitness_doc in text and "475" in text
    assert "```python" in text and "compute_reward" in text


def test_the_first_request_has_no_history(task):
    messages = Prompts().propose_messages(_context(task, [], None))
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "What has been tried" not in messages[1]["content"]


def test_reflection_uses_the_analyzers_reflection_when_there_is_one(task):
    best = _scored(0, 120.0, analysis={"reflection": "Fitness rose then fell; alive dominates (81%).", "flags": []})
    prompt = Prompts().reflection(_context(task, [best], best))
    assert "Fitness rose then fell; alive dominates (81%)." in prompt
    assert best.source.strip() in prompt and "00-00 (fitness 120" in prompt


def test_without_a_reflection_it_is_built_from_the_checkpoints(task):
    best = _scored(0, 120.0, analysis={"flags": ["short_episodes"], "components": {"alive": {"flags": ["dominant"]}}})
    prompt = Prompts().reflection(_context(task, [best], best))
    assert "256, 512 steps" in prompt
    assert "- fitness: 20, 120" in prompt
    assert "- upright: 0.5 [0.1, 0.9]; 0.75 [0.2, 1]" in prompt
    assert "- return under this reward: 15.5, 30.25" in prompt
    assert "short_episodes" in prompt and "alive: dominant" in prompt


def test_the_other_candidates_are_summarised_with_what_they_tried_and_how_they_did(task):
    best, other = _scored(0, 120.0), _scored(1, 40.0, note="Pays for centring the cart.")
    history = [best, other, _rejected(2), _failed(3)]
    prompt = Prompts().reflection(_context(task, history, best))
    assert '- 00-01 (terms: alive, upright): "Pays for centring the cart." — fitness 40' in prompt
    assert "- 00-02" in prompt and "refused: [forbidden_import] line 1: `import torch` is not allowed" in prompt
    assert "- 00-03" in prompt and "training failed: [runtime_error] line 3: boom" in prompt
    assert "- 00-00" not in prompt, "the best is shown in full, not summarised"


def test_a_long_history_keeps_the_best_and_the_latest(task):
    history = [_scored(i, float(i)) for i in range(30)]
    prompt = Prompts(history=6).reflection(_context(task, history, history[-1]))
    assert "- 00-28" in prompt and "- 00-27" in prompt and "- 00-01 " not in prompt
    assert "(23 older programs not shown.)" in prompt


def test_human_feedback_reaches_the_prompt_verbatim(task):
    best = _scored(0, 120.0)
    feedback = ["The cart drifts right.\nKeep it near x = 0!", "Less wobble, please."]
    prompt = Prompts().reflection(_context(task, [best], best, feedback))
    assert "> The cart drifts right.\n> Keep it near x = 0!" in prompt and "> Less wobble, please." in prompt


def test_the_repair_prompt_carries_the_code_and_the_precise_error(task):
    source = "def compute_reward(state, action):\n    return 1.0, {}\n"
    problem = "[bad_signature] line 1: compute_reward must take exactly four positional parameters"
    messages = Prompts().repair_messages(_context(task, [], None), source, problem, 1, 2)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"], "roles alternate"
    assert "```python\n" + source.rstrip() in messages[2]["content"]
    repair = messages[3]["content"]
    assert problem in repair and "  1 | def compute_reward(state, action):" in repair and "Attempt 1 of 2" in repair
    empty = Prompts().repair("", "[no_code] the reply contains no Python code", 1)
    assert "could not be used as a program" in empty and "[no_code]" in empty


def test_the_review_prompt_asks_for_a_verdict(task):
    text = Prompts().review(task, "def compute_reward(obs, action, next_obs, info):\n    return 1.0, {'a': 1.0}\n",
                            {"total": 1.0, "components": {"a": 1.0}})
    assert task.text in text and "VERDICT: PASS" in text and "VERDICT: FAIL" in text and "a = 1" in text


def test_a_prompts_directory_overrides_templates_by_name(task, tmp_path):
    (tmp_path / "task.j2").write_text("TASK ONLY: {{ task_text }} / {{ fitness_doc }}\n")
    (tmp_path / "env.j2").write_text("ENV {{ spec.gym_id }}\n")
    prompts = Prompts(tmp_path)
    assert prompts.task(task) == f"TASK ONLY: {task.text} / {task.fitness_doc}\n"
    assert "compute_reward(obs, action, next_obs, info)" in prompts.system(task), "others stay bundled"
    (tmp_path / "task.j2").write_text("{{ env_description }}")
    assert Prompts(tmp_path).task(task).strip() == "ENV CartPole-v1"


def test_preview_is_the_first_requests_system_and_task(task):
    messages = preview_messages(task)
    assert messages == Prompts().propose_messages(_context(task, [], None))


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "rewardsmith.cli", "prompts", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_the_prompts_command_prints_what_would_be_sent(tmp_path):
    result = _cli("cartpole", "Hold the cart at the right end")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("──── system ────\n") and "\n──── user ────\n" in result.stdout
    assert "Hold the cart at the right end" in result.stdout and "CartPole-v1" in result.stdout
    named = _cli("cartpole", "--task", "hold-right")
    assert "holding the cart near x = +1.0" in named.stdout
    (tmp_path / "system.j2").write_text("CUSTOM SYSTEM\n")
    assert "──── system ────\nCUSTOM SYSTEM\n" in _cli("cartpole", "x", "--prompts", str(tmp_path)).stdout
    missing = _cli("cartpole", "x", "--prompts", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "not a directory" in missing.stderr
