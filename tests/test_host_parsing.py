"""Parsing untrusted reply text on the host can neither crash nor hang it (issue "Harden the host", point 3),
and extraction takes the complete program when a reply also holds a cut-off copy ("LLM path", point 2)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from rewardsmith import export, report, runs
from rewardsmith.designer import builtin, extract
from rewardsmith.designer.extract import MAX_REPLY_CHARS, extract_program
from rewardsmith.sandbox import issues, policy
from tests.llm_server import Reply, ScriptedLLM

REWARD = "def compute_reward(obs, action, next_obs, info):\n    return X, {'x': X}\n"
COMPLETE = ("import math\n\n\ndef compute_reward(obs, action, next_obs, info):\n"
            "    upright = math.cos(next_obs.pole_angle)\n    return upright, {'upright': upright}\n")
FRAGMENT = ("import math\n\n\ndef compute_reward(obs, action, next_obs, info):\n"
            "    # the same, with a centring term\n    upright = math.cos(next_obs.pole_")


HANG = 2.0
"""Seconds one parse may take. Generous against a loaded CI machine (the linear code takes milliseconds); the
backtracking it replaced took 30 s and more on these shapes, so the bound still tells them apart."""


@contextmanager
def _within(seconds: float, what: str) -> Iterator[None]:
    """Fail (rather than hang) when the body runs longer than ``seconds``: the regex engine checks signals."""
    def expired(signum, frame):
        raise AssertionError(f"{what} took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _deep(n: int) -> str:
    return "X = " + "-" * n + "1\n"


HOSTILE = {
    "deep_3000_in_the_reward_block": f"```python\n{_deep(3000)}{REWARD}```",
    "deep_100000_in_the_reward_block": f"```python\n{_deep(100_000)}{REWARD}```",
    "deep_3000_unfenced": _deep(3000) + REWARD,
    "deep_100000_unfenced": _deep(100_000) + REWARD,
    "deep_3000_in_a_helper_block": f"```python\n{REWARD}```\n\n```python\n{_deep(3000)}```",
    "deep_brackets": f"```python\nX = {'(' * 3000}1{')' * 3000}\n{REWARD}```",
    "plan_5000_spaces": "Plan:" + " " * 5000,
    "plan_5000_spaces_then_text": "Plan:" + " " * 5000 + "x\n" + f"```python\n{REWARD}```",
    "plan_50000_spaces_then_text": "Plan:" + " " * 50_000 + "x",
    "plan_50000_tabs_then_text": "Plan:" + "\t" * 50_000 + "x",
    "names_and_commas": "a" + ", a" * 20_000 + " :" + " " * 20_000 + "x",
    "null_byte_in_code": f"```python\n{REWARD}\x00\n```",
    "null_bytes_in_prose": "Plan:\x00" * 10_000,
    "many_fences": f"```python\n{REWARD}```\n" + "```python\nY = 1\n```\n" * 5000,
    "many_empty_fences": "```\n" * 50_000,
    "unterminated_fences": "".join(f"{'`' * (3 + i % 5)}python\n{REWARD}" for i in range(2000)),
    "fence_with_spaces_then_backtick": "```" + " " * 50_000 + "`",
    "unclosed_think": "<think>" * 20_000,
    "unfenced_code_that_never_parses": "x = (\n" * 2000 + REWARD + "y = )\n" * 2000,
    "just_under_the_cap": ("Plan: " + " " * 120) * (MAX_REPLY_CHARS // 130),
}


@pytest.mark.parametrize("finish", ["stop", "length", None])
def test_hostile_replies_are_answered_quickly_and_never_raise(finish):
    started = time.perf_counter()
    slowest = (0.0, "")
    for name, reply in HOSTILE.items():
        t = time.perf_counter()
        with _within(5.0, name):
            extraction = extract_program(reply, finish)
        slowest = max(slowest, (time.perf_counter() - t, name))
        assert extraction.ok or extraction.refusal.message, name
    assert slowest[0] < HANG, f"{slowest[1]} took {slowest[0]:.2f} s"
    assert time.perf_counter() - started < 15 * HANG


@pytest.mark.parametrize("name", [n for n in HOSTILE if n.startswith("deep_") and "helper" not in n
                                  and "brackets" not in n])
def test_code_the_parser_gives_up_on_is_refused_as_unparsable(name):
    extraction = extract_program(HOSTILE[name])
    assert extraction.refusal is not None and extraction.refusal.code == "unparsable", extraction.refusal
    assert "nests" in extraction.refusal.message
    assert len(extraction.source) <= 64_000, "a huge fragment is not carried into the repair prompt"


def test_a_helper_block_the_parser_gives_up_on_is_refused_too():
    assert extract_program(HOSTILE["deep_3000_in_a_helper_block"]).refusal.code == "unparsable"


def test_a_null_byte_in_the_code_is_refused_as_unparsable():
    extraction = extract_program(HOSTILE["null_byte_in_code"])
    assert extraction.refusal.code == "unparsable" and "null byte" in extraction.refusal.message


def test_a_reply_over_the_cap_is_refused_unread():
    reply = f"```python\n{COMPLETE}```\n" + "#" * MAX_REPLY_CHARS
    started = time.perf_counter()
    extraction = extract_program(reply)
    assert time.perf_counter() - started < HANG
    assert extraction.refusal.code == "too_large"
    assert str(MAX_REPLY_CHARS) in extraction.refusal.message and extraction.source == ""
    assert extract_program(f"```python\n{COMPLETE}```\n").ok, "the same program in a normal reply is taken"


def test_plan_with_spaces_still_yields_its_program():
    extraction = extract_program(HOSTILE["plan_5000_spaces_then_text"])
    assert extraction.ok and "def compute_reward" in extraction.source


_MODULES = (extract, policy, issues, report, export, runs, builtin)
_PATTERNS = [(m.__name__, name, value) for m in _MODULES for name, value in vars(m).items()
             if isinstance(value, re.Pattern)]
_PIECES = [" ", "\t", "a", "a ", ", a", ": ", ":", "-", "# -", "=", "`", "~", "\n", "\n ", "def ", "[", "Line 1",
           ". ", "<think", "py", "1"]


@pytest.mark.parametrize("module,name,pattern", _PATTERNS, ids=[f"{m}.{n}" for m, n, _ in _PATTERNS])
def test_every_host_regular_expression_is_linear(module, name, pattern):
    """Runs of every piece that could make a backtracking engine blow up, after a prefix that starts a match."""
    n = 40_000  # the old fence pattern took 1.8 s at 10,000 and grows faster than linearly
    slowest = (0.0, "")
    for prefix in ("", "Plan", "Plan:", "x: int", "a, b", "```", "def compute_reward", "[a] ", "# ", "from a"):
        for piece, end in ((piece, end) for piece in _PIECES for end in "!`"):
            text = prefix + piece * n + end
            t = time.perf_counter()
            with _within(HANG, f"{module}.{name} on {prefix!r} + {piece!r} * {n}"):
                pattern.match(text)
                pattern.search(text)
            slowest = max(slowest, (time.perf_counter() - t, f"{prefix!r} + {piece!r} * {n}"))
    assert slowest[0] < HANG, f"{module}.{name} took {slowest[0]:.2f} s on {slowest[1]}"


# ----------------------------------------------------------------------- the complete program wins


@pytest.mark.parametrize("finish", ["length", "stop", None])
def test_a_complete_block_followed_by_a_cut_off_copy_gives_the_complete_one(finish):
    reply = (f"Here is the reward.\n\n```python\n{COMPLETE}```\n\nAnd the same with a centring term:\n\n"
             f"```python\n{FRAGMENT}")
    extraction = extract_program(reply, finish)
    assert extraction.ok, extraction.refusal
    assert extraction.source == COMPLETE
    assert "pole_\n" not in extraction.source and "centring" not in extraction.source


def test_a_cut_off_copy_is_not_borrowed_from():
    fragment = "import math\n\nSCALE = 0.5\n\ndef compute_reward(obs, action, next_obs, info):\n    u = math.cos(next_"
    reply = (f"```python\ndef compute_reward(obs, action, next_obs, info):\n    u = SCALE\n    return u, {{'u': u}}\n```\n"
             f"```python\n{fragment}")
    extraction = extract_program(reply, "length")
    assert extraction.ok and "SCALE = 0.5" not in extraction.source


def test_truncation_is_reported_only_without_a_complete_program():
    extraction = extract_program(f"Here it is.\n```python\n{FRAGMENT}", "length")
    assert extraction.refusal.code == "truncated" and "pole_" in extraction.source


# ------------------------------------------------------------------------------ end to end, CLI


KEY_ENV = "REWARDSMITH_TEST_KEY"


def test_the_cli_refuses_hostile_replies_finishes_and_resumes_from_the_cache(tmp_path):
    """``rewardsmith run`` against a server sending parser bombs, then ``resume`` after a crash mid-round
    (simulated by cutting the event log after the round started): the cached replies are parsed again."""
    deep = f"```python\n{_deep(3000)}{REWARD}```"
    hostile = [Reply(deep), Reply(HOSTILE["plan_5000_spaces_then_text"].replace(REWARD, _deep(100_000) + REWARD))]
    env = dict(os.environ, COLUMNS="200", **{KEY_ENV: "sk-test-key"})
    env.pop("OPENAI_API_KEY", None)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rewardsmith.cli", *args], capture_output=True, text=True,
                              env=env, timeout=120)

    with ScriptedLLM(api_key="sk-test-key") as server:
        server.default = Reply(deep)
        server.push(*hostile)
        with _within(100.0, "rewardsmith run"):
            first = cli("run", "balance the pole", "--env", "cartpole", "--task", "balance",
                        "--base-url", server.url, "--api-key-env",
                        KEY_ENV, "--out", str(tmp_path), "-n", "1", "-k", "2", "--repairs", "1", "--workers", "1",
                        "--no-media")
        assert first.returncode == 1 and "no candidate trained successfully" in first.stdout, first.stderr
        assert "Traceback" not in first.stderr and "could not be parsed" in first.stdout
        (run_dir,) = tmp_path.iterdir()
        events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
        checked = [e for e in events if e["kind"] == "candidate_checked"]
        codes = {i["code"] for e in checked for i in e["verdict"]["issues"]}
        assert codes == {"unparsable"}, codes
        assert len(checked) == 4, "two candidates, each refused and repaired once, refused again"
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
        asked = len(server.chats)

        cut = next(i for i, e in enumerate(events) if e["kind"] == "candidate_proposed")
        (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events[:cut]))
        (run_dir / "summary.json").unlink()
        with _within(100.0, "rewardsmith resume"):
            second = cli("resume", str(run_dir))
        assert second.returncode == 1 and "no candidate trained successfully" in second.stdout, second.stderr
        assert "Traceback" not in second.stderr
        assert len(server.chats) == asked, "every reply came from the run's cache"
        events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
        codes = {i["code"] for e in events if e["kind"] == "candidate_checked" for i in e["verdict"]["issues"]}
        assert codes == {"unparsable"}


def test_the_llm_designer_takes_the_complete_program_and_its_repair_never_shows_the_fragment(monkeypatch):
    from rewardsmith.designer import LLMDesigner, LLMOptions
    from rewardsmith.designer.base import DesignContext
    from rewardsmith.task import TaskRef

    reply = f"```python\n{COMPLETE}```\n\nThe same, with a centring term:\n\n```python\n{FRAGMENT}"
    ctx = DesignContext(task=TaskRef("cartpole", "Keep the pole upright.").resolve(), iteration=0, samples=1,
                        seed=0, history=[], parent=None)
    with ScriptedLLM() as server:
        monkeypatch.setenv(KEY_ENV, server.api_key)
        monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
        server.push(Reply(reply, "length"), Reply(f"```python\n{COMPLETE}```"))
        designer = LLMDesigner(LLMOptions(model="test-model", base_url=server.url, api_key_env=KEY_ENV,
                                          backoff=0.01, timeout=5.0))
        (proposal,) = designer.propose(ctx)
        assert proposal.origin["finish_reason"] == "length" and proposal.origin["refused"] is None
        assert proposal.source == COMPLETE
        designer.repair(ctx, proposal.source, "[constant_component] component 'upright' is 1 everywhere", 1)
        (repair,) = server.chats_for("repair")
        sent = json.dumps(repair["body"]["messages"])
        assert "math.cos(next_obs.pole_angle)" in sent and "centring" not in sent
