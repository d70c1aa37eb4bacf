"""What one hostile candidate can add to a run is bounded: component names, and the text shown again.

The name rule and the life-time cap come from ``rewardsmith.sandbox.protocol``; the display caps from
``rewardsmith.bounds``. The full run drives the CLI against the scripted chat-completions server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rewardsmith.critic import check, probe_transitions
from rewardsmith.sandbox import RewardCallError, RewardSandbox
from rewardsmith.sandbox.protocol import COMPONENT_NAME_RULE, MAX_COMPONENT_NAME, MAX_COMPONENTS
from rewardsmith.spec import load_spec
from rewardsmith.task import ResolvedTask
from rewardsmith.training import TrainConfig, train
from tests.llm_server import Reply, ScriptedLLM, purpose_of

SPEC = load_spec("cartpole")

NAME_FARMER = '''
def compute_reward(obs, action, next_obs, info):
    upright = 1.0 - abs(next_obs.pole_angle)
    return upright, {f"c{info['step']}_{i}": 0.0 for i in range(32)}
'''

SHIFTING_NAMES = '''
calls = [0]


def compute_reward(obs, action, next_obs, info):
    calls[0] += 1
    phase = calls[0] // 50
    upright = 1.0 - abs(next_obs.pole_angle)
    return upright, {f"upright{phase}": upright, f"alive{phase}": 1.0}
'''
"""Two names per call, new ones every 50 calls: the critic's 128 probe calls see 6, training sees dozens."""

LOUD = '''
calls = [0]


def compute_reward(obs, action, next_obs, info):
    calls[0] += 1
    print("y" * 5000)
    if calls[0] > 300:
        raise ValueError("z" * 100000)
    upright = 1.0 - abs(next_obs.pole_angle)
    return upright, {"alive": 1.0, "upright": upright}
'''
"""Prints 5 000 characters a call and dies in training with a 100 000-character message."""

CHATTY = "".join(f"# {'v' * 90}\n" for _ in range(600)) + '''
def compute_reward(obs, action, next_obs, info):
    print("w" * 5000)
    upright = 1.0 - abs(next_obs.pole_angle)
    return upright, {"alive": 1.0, "upright": upright}
'''
"""A legal 56 kB program that prints 5 000 characters a call and trains: the next round's parent."""


def program_returning(name: str) -> str:
    return ("def compute_reward(obs, action, next_obs, info):\n"
            "    upright = 1.0 - abs(next_obs.pole_angle)\n"
            f"    return upright, {{{name!r}: upright, 'alive': 1.0}}\n")


# ------------------------------------------------------------------------------------ the names


def test_the_critic_refuses_a_program_that_farms_new_names():
    verdict = check(NAME_FARMER, SPEC)
    assert not verdict.accepted
    issue = next(i for i in verdict.errors if i.code == "bad_components")
    assert "distinct component names over its life" in issue.message
    assert f"at most {MAX_COMPONENTS} are allowed" in issue.message and COMPONENT_NAME_RULE in issue.message


def test_names_count_over_the_whole_life_of_a_program_not_per_call():
    probes = probe_transitions(SPEC, SPEC.default_task)
    with RewardSandbox(SPEC.field_names) as box:
        assert box.load(SHIFTING_NAMES).ok
        for _ in range(7):  # 64 calls a batch, two new names every 50 calls: 18 names so far
            box.call(probes)
        with pytest.raises(RewardCallError) as caught:
            for _ in range(20):
                box.call(probes)
        assert caught.value.issue.code == "bad_components"
        assert f"{MAX_COMPONENTS + 2} distinct component names over its life" in caught.value.issue.message
        assert box.load(SHIFTING_NAMES).ok  # a fresh load starts a fresh count
        box.call(probes)


def test_a_program_that_changes_its_names_passes_the_critic_and_fails_training_with_the_reason():
    assert check(SHIFTING_NAMES, SPEC).accepted
    config = TrainConfig(timesteps=2000, checkpoints=2, eval_episodes=2, final_episodes=2, save_policy=False)
    trained = train(ResolvedTask.of_spec(SPEC, SPEC.default_task, lambda e: float(len(e)), 475.0), SHIFTING_NAMES, config)
    trained.close()
    assert trained.result.status == "failed"
    assert trained.result.reason.code == "bad_components"
    message = trained.result.reason.message
    assert "distinct component names over its life" in message and COMPONENT_NAME_RULE in message


@pytest.mark.parametrize("name", [
    "x" * (MAX_COMPONENT_NAME + 1), "two words", "hit[0]", "\x1b[2Jclear", "line\nbreak", "\u0430live",  # Cyrillic а
    "caf\u00e9", "", "tab\there", "<b>bold</b>",
], ids=["too_long", "space", "bracket", "escape", "newline", "cyrillic_lookalike", "accent", "empty", "tab", "markup"])
def test_an_odd_component_name_is_refused_with_the_rule(name):
    verdict = check(program_returning(name), SPEC)
    assert not verdict.accepted
    issue = next(i for i in verdict.errors if i.code == "bad_components")
    assert COMPONENT_NAME_RULE in issue.message
    assert "\x1b" not in issue.message and "\n" not in issue.message


@pytest.mark.parametrize("name", ["x" * MAX_COMPONENT_NAME, "pole.angle", "near-target", "Term_2"])
def test_plain_names_up_to_the_length_cap_are_accepted(name):
    verdict = check(program_returning(name), SPEC)
    assert verdict.accepted, verdict.explain()
    assert name in verdict.components


# ------------------------------------------------------------------------------- a hostile run


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@pytest.mark.slow
def test_a_run_fed_hostile_programs_stays_small(tmp_path):
    farmer = f"Many terms.\n\n```python\n{NAME_FARMER}\n```"
    loud = f"A loud one.\n\n```python\n{LOUD}\n```"
    chatty = f"{'A long story. ' * 3000}\n\n```python\n{CHATTY}\n```"
    shifting = f"Shifting terms.\n\n```python\n{SHIFTING_NAMES}\n```"
    with ScriptedLLM() as server:
        server.push(Reply(farmer), Reply(chatty), Reply(shifting), Reply(loud))
        server.route = lambda request: Reply(loud) if purpose_of(request) == "repair" else None
        env = dict(os.environ, SIZES_KEY=server.api_key, COLUMNS="100")
        env.pop("OPENAI_BASE_URL", None)
        result = subprocess.run(
            [sys.executable, "-m", "rewardsmith.cli", "run", "balance the pole", "--env", "cartpole", "--task", "balance",
             "--base-url", server.url, "--api-key-env", "SIZES_KEY", "--model", "test-model", "--out", str(tmp_path),
             "-n", "2", "-k", "2", "--timesteps", "2000", "--no-media", "--workers", "2", "--repairs", "1"],
            capture_output=True, text=True, env=env, timeout=600)
        prompts = [sum(len(m.get("content") or "") for m in chat["body"]["messages"]) for chat in server.chats]
        chats = list(server.chats)
    assert result.returncode == 0, result.stderr[-2000:]
    run = next(tmp_path.iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and len(summary["candidates"]) == 4
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    problems = [e["problem"] for e in events if e["kind"] == "candidate_repaired"]
    caught = [p for p in problems if "distinct component names over its life" in p]
    assert len(caught) == 2 and any(p.startswith("training failed") for p in caught), problems  # farmer, shifter
    assert _size(run) < 5 * 2**20, sorted((p.stat().st_size, str(p)) for p in run.rglob("*") if p.is_file())[-5:]
    assert (run / "report.html").stat().st_size < 1 * 2**20
    assert all(p.stat().st_size < 256 * 2**10 for p in run.glob("iter-*/cand-*/analysis.json"))
    assert all(p.stat().st_size < 256 * 2**10 for p in run.glob("iter-*/cand-*/curves.json"))
    assert all(p.stat().st_size < 64 * 2**10 for p in run.glob("iter-*/cand-*/critic.json"))
    reflection = [p for chat, p in zip(chats, prompts) if purpose_of(chat) == "propose"][-1]
    assert reflection < 40_000, prompts  # the 56 kB parent is shown clipped
    assert "z" * 5000 not in (run / "report.html").read_text()
