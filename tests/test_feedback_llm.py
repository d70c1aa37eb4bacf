"""Human feedback reaching an LLM designer's next prompt, verbatim: typed at the --interactive
prompt in a pseudo-terminal, or recorded with `rewardsmith feedback` and picked up by `resume`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.llm_replies import GOOD_PROGRAM
from tests.llm_server import Reply, ScriptedLLM, last_user_text, purpose_of
from tests.test_interactive import Terminal

KEY_ENV = "REWARDSMITH_TEST_KEY"
FEEDBACK = "The cart keeps drifting to the left edge; penalise |x| more & keep the pole up."


@pytest.fixture
def server():
    with ScriptedLLM() as scripted:
        scripted.default = Reply(GOOD_PROGRAM)
        yield scripted


def _env(server: ScriptedLLM) -> dict[str, str]:
    env = dict(os.environ, COLUMNS="160", LINES="50", TERM="xterm")
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    env[KEY_ENV] = server.api_key
    return env


def _llm_args(server: ScriptedLLM, out) -> list[str]:
    return ["--env", "cartpole", "--base-url", server.url, "--api-key-env", KEY_ENV, "--model", "test-model",
            "--samples", "1", "--timesteps", "512", "--workers", "1", "--no-media", "--out", str(out)]


def _proposals(server: ScriptedLLM) -> list[str]:
    return [last_user_text(r) for r in server.chats if purpose_of(r) == "propose"]


def test_interactive_feedback_arrives_in_the_next_prompt(server, tmp_path):
    term = Terminal([sys.executable, "-m", "rewardsmith.cli", "run", "keep the pole up", "--task", "balance",
                     "--iterations", "2",
                     "--interactive", *_llm_args(server, tmp_path)], tmp_path, _env(server))
    term.expect(r"use ID to pick the parent")
    assert len(_proposals(server)) == 1
    assert FEEDBACK not in _proposals(server)[0]
    term.send(FEEDBACK)
    term.expect(r"noted")
    term.send("")
    term.expect(r"last round")
    term.send("")
    assert term.close() == 0
    prompts = _proposals(server)
    assert len(prompts) == 2
    assert FEEDBACK in prompts[1]
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["text"] for e in events if e["kind"] == "feedback"] == [FEEDBACK]


def test_feedback_then_resume_arrives_in_the_next_prompt(server, tmp_path):
    env = _env(server)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rewardsmith.cli", *args], capture_output=True, text=True,
                              env=env, timeout=300)

    first = cli("run", "keep the pole up", "--task", "balance", "--iterations", "1", *_llm_args(server, tmp_path))
    assert first.returncode == 0, first.stderr
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    recorded = cli("feedback", str(run_dir), FEEDBACK)
    assert recorded.returncode == 0, recorded.stderr
    assert "round 2 will receive it" in recorded.stdout
    resumed = cli("resume", str(run_dir), "--iterations", "1")
    assert resumed.returncode == 0, resumed.stderr
    prompts = _proposals(server)
    assert len(prompts) == 2, "the resumed run asks only for the new round"
    assert FEEDBACK not in prompts[0] and FEEDBACK in prompts[1]
