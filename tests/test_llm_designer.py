"""The LLM designer against a real local chat-completions server.

The ``openai`` client talks HTTP to :class:`tests.llm_server.ScriptedLLM` on a loopback port;
nothing is monkeypatched (only environment variables are set, as a user would).
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rewardsmith.designer import designer_for_run
from rewardsmith.designer.base import DesignContext
from rewardsmith.designer.endpoint import LLMOptions, choose_designer, endpoint_configured
from rewardsmith.designer.llm import LLMDesigner, parse_review
from rewardsmith.errors import LLMError, UsageError
from rewardsmith.hooks import IterationDecision, LoopHooks
from rewardsmith.loop import run_search
from rewardsmith.runs import RunDir
from rewardsmith.state import SearchConfig
from rewardsmith.task import TaskRef
from tests.llm_replies import BAD, GOOD, GOOD_PROGRAM, variant
from tests.llm_server import Fault, Malformed, Outage, Reply, ScriptedLLM, Slow, last_user_text, purpose_of

KEY_ENV = "REWARDSMITH_TEST_KEY"
TASK = TaskRef("cartpole", "Keep the pole balanced upright for as long as possible.")


@pytest.fixture
def server(monkeypatch):
    with ScriptedLLM() as scripted:
        monkeypatch.setenv(KEY_ENV, scripted.api_key)
        monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
        yield scripted


def options(server: ScriptedLLM, **overrides) -> LLMOptions:
    base = dict(model="test-model", base_url=server.url, api_key_env=KEY_ENV, backoff=0.01, timeout=5.0)
    return LLMOptions(**{**base, **overrides})


def config(**overrides) -> SearchConfig:
    base = dict(iterations=1, samples=2, timesteps=512, checkpoints=2, eval_episodes=2, final_episodes=2,
                media=False, workers=2)
    return SearchConfig(**{**base, **overrides})


def new_run(tmp_path: Path) -> RunDir:
    return RunDir.create(tmp_path / "runs", "cartpole", TASK.text)


def context(samples: int = 1, iteration: int = 0) -> DesignContext:
    return DesignContext(task=TASK.resolve(), iteration=iteration, samples=samples, seed=0, history=[], parent=None)


def repairs_answer_with(reply: str):
    return lambda request: Reply(reply) if purpose_of(request) == "repair" else None


def distinct_replies(wrap=lambda reply: reply):
    """A route answering every chat request with a program of its own (``wrap`` may delay it)."""
    counter = itertools.count()
    return lambda request: wrap(Reply(variant(next(counter))))


# --------------------------------------------------------------------------------- done when (1)


@pytest.mark.slow
def test_ten_realistic_reply_styles_are_accepted_and_trained(server, tmp_path):
    server.push(*[Reply(text) for text in GOOD.values()])
    run = new_run(tmp_path)
    state = run_search(run, TASK, LLMDesigner(options(server), run), config(samples=len(GOOD)))
    by_index = sorted(state.candidates.values(), key=lambda c: c.index)
    assert [c.status for c in by_index] == ["scored"] * len(GOOD), [(c.id, c.reason) for c in by_index]
    assert all(not c.attempts for c in by_index), "no style needed a repair"
    assert len(server.chats) == 1 and server.chats[0]["body"]["n"] == len(GOOD)
    summary = json.loads(run.summary_json.read_text())
    assert summary["designer"] == "openai" and summary["usage"]["requests"] == 1


# --------------------------------------------------------------------------------- done when (2)


@pytest.mark.slow
def test_bad_replies_are_refused_precisely_and_each_repair_request_carries_the_reason(server, tmp_path):
    server.push(*[Reply(text, finish) for text, finish, _ in BAD.values()])
    distinct = distinct_replies()
    server.route = lambda request: distinct(request) if purpose_of(request) == "repair" else None
    run = new_run(tmp_path)
    state = run_search(run, TASK, LLMDesigner(options(server), run), config(samples=len(BAD), repairs=1))
    repair_texts = [last_user_text(r) for r in server.chats_for("repair")]
    assert len(repair_texts) == len(BAD)
    by_index = sorted(state.candidates.values(), key=lambda c: c.index)
    for cand, (name, (_, _, code)) in zip(by_index, BAD.items()):
        assert len(cand.attempts) == 1, name
        problem = cand.attempts[0]["problem"]
        assert problem.startswith(f"[{code}]"), (name, problem)
        assert sum(problem in text for text in repair_texts) == 1, f"{name}: no repair request carried {problem!r}"
        assert cand.status == "scored", (name, cand.reason)
        attempts = json.loads((run.candidate(cand.iteration, cand.index).attempts).read_text())
        assert attempts[0]["problem"] == problem
    rows = {row["id"]: row for row in json.loads(run.summary_json.read_text())["candidates"]}
    assert all(row["repairs"] == 1 for row in rows.values())
    repaired = [e for e in run.events() if e["kind"] == "candidate_repaired"]
    assert len(repaired) == len(BAD)


def test_a_program_that_crashes_in_training_goes_back_with_the_error(server, tmp_path):
    from rewardsmith.critic import probe_transitions

    task = TASK.resolve()
    last_probe_step = int(max(probe_transitions(task.spec, task.task_spec).step))
    crash = ("```python\ndef compute_reward(obs, action, next_obs, info):\n"
             f"    late = 1.0 / ({last_probe_step} - min(info['step'], {last_probe_step})) "
             f"if info['step'] > {last_probe_step} else 0.0\n"
             "    upright = 1.0 - abs(next_obs.pole_angle)\n"
             "    return upright + late, {'upright': upright, 'late': late}\n```")
    server.push(Reply(crash))
    server.route = repairs_answer_with(GOOD_PROGRAM)
    run = new_run(tmp_path)
    state = run_search(run, TASK, LLMDesigner(options(server), run), config(samples=1, workers=1))
    cand = state.candidates["00-00"]
    assert cand.status == "scored"
    problem = cand.attempts[0]["problem"]
    assert problem.startswith("training failed") and "ZeroDivisionError" in problem
    assert problem in last_user_text(server.chats_for("repair")[0])


# ------------------------------------------------------------------------------------ K samples


def test_k_samples_use_n_when_the_server_honours_it(server):
    server.push(*[Reply(variant(i)) for i in range(3)])
    proposals = LLMDesigner(options(server)).propose(context(samples=3))
    assert len(proposals) == 3 and all(p.origin["refused"] is None for p in proposals)
    assert [c["body"].get("n") for c in server.chats] == [3]
    assert [p.origin["choice"] for p in proposals] == [0, 1, 2]


def test_a_server_ignoring_n_gets_the_rest_concurrently_within_the_bound(server):
    server.honour_n = False
    server.route = distinct_replies(lambda reply: Slow(0.3, reply))
    designer = LLMDesigner(options(server, concurrency=2))
    proposals = designer.propose(context(samples=4))
    assert len(proposals) == 4 and all(p.source for p in proposals)
    assert [c["body"].get("n") for c in server.chats] == [4, None, None, None]
    assert server.max_in_flight == 2
    designer.propose(context(samples=2, iteration=1))
    assert [c["body"].get("n") for c in server.chats[4:]] == [None, None], "the fallback is remembered"


def test_a_server_refusing_n_gets_one_request_per_sample(server):
    distinct = distinct_replies()
    server.route = lambda request: Fault(400, "n must be 1") if request["body"].get("n", 1) > 1 else distinct(request)
    proposals = LLMDesigner(options(server)).propose(context(samples=2))
    assert len(proposals) == 2 and all(p.source for p in proposals)
    assert [c["body"].get("n") for c in server.chats] == [2, None, None]


def test_temperature_max_tokens_and_model_are_sent(server):
    server.push(Reply(GOOD_PROGRAM))
    LLMDesigner(options(server, temperature=0.3, max_tokens=777)).propose(context())
    body = server.chats[0]["body"]
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("test-model", 0.3, 777)
    assert [m["role"] for m in body["messages"]] == ["system", "user"]


def test_a_server_refusing_max_tokens_gets_max_completion_tokens(server):
    def route(request):
        if "max_tokens" in request["body"]:
            return Fault(400, "Unsupported parameter: 'max_tokens' is not supported with this model. "
                              "Use 'max_completion_tokens' instead.")
        return Reply(GOOD_PROGRAM)

    server.route = route
    designer = LLMDesigner(options(server, max_tokens=500))
    assert designer.propose(context())[0].origin["refused"] is None
    assert server.chats[-1]["body"]["max_completion_tokens"] == 500
    designer.propose(context(iteration=1))
    assert len(server.chats) == 3, "adapted once, for good"


def test_a_reply_without_content_is_refused_for_repair(server):
    server.push(Reply(None, reasoning="I thought about it at length."))
    (proposal,) = LLMDesigner(options(server)).propose(context())
    assert proposal.source == "" and proposal.origin["refused"]["code"] == "no_code"


# ---------------------------------------------------------------------------------------- faults


def test_transient_faults_are_retried_until_a_reply(server):
    server.push(Fault(429, "slow down", retry_after=0.3), Fault(500), Fault(503), Malformed(),
                Malformed(b"<html>bad gateway</html>", "text/html"), Slow(1.5, Reply("late")), Reply(GOOD_PROGRAM))
    designer = LLMDesigner(options(server, retries=6, timeout=0.5))
    started = time.monotonic()
    proposals = designer.propose(context())
    assert proposals[0].origin["refused"] is None and "compute_reward" in proposals[0].source
    assert time.monotonic() - started >= 0.3, "Retry-After is honoured"
    assert designer.usage.retries == 6 and designer.usage.requests == 1
    assert len(server.chats) == 7


def test_backoff_doubles_with_jitter(server):
    server.push(Fault(500), Fault(500), Reply(GOOD_PROGRAM))
    started = time.monotonic()
    LLMDesigner(options(server, backoff=0.2)).propose(context())
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.0, elapsed  # 0.2·[0.5, 1] + 0.4·[0.5, 1]


def test_exhausted_retries_fail_the_sample_and_the_search_goes_on(server, tmp_path):
    server.push(Fault(500, "overloaded"), Fault(502), Reply(GOOD_PROGRAM))
    run = new_run(tmp_path)
    designer = LLMDesigner(options(server, retries=1, use_n=False, concurrency=1), run)
    state = run_search(run, TASK, designer, config(samples=2))
    first, second = state.candidates["00-00"], state.candidates["00-01"]
    assert first.status == "rejected" and str(first.reason).startswith("[llm_failed]") and "502" in str(first.reason)
    assert second.status == "scored" and state.status == "finished"
    assert not server.chats_for("repair"), "a failed request is not a program to repair"
    assert list(run.llm_dir.glob("*.failed.json"))
    assert json.loads(run.summary_json.read_text())["usage"]["failed_requests"] == 1


def test_a_refused_key_stops_the_run_at_once_with_one_clear_line(server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-wrong")
    run = new_run(tmp_path)
    started = time.monotonic()
    with pytest.raises(LLMError) as caught:
        run_search(run, TASK, LLMDesigner(options(server), run), config())
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert "401" in message and f"${KEY_ENV}" in message and "--api-key-env" in message and "\n" not in message
    assert "sk-wrong" not in message
    assert run.read_run()["status"] == "failed"
    assert run.events()[-1]["kind"] == "run_failed"
    assert len(server.chats) == 1, "not retried"


def test_forbidden_names_the_model_and_the_key_option(server):
    server.route = lambda request: Fault(403, "this key may not use test-model")
    with pytest.raises(LLMError, match=r"403.*--model.*--api-key-env"):
        LLMDesigner(options(server)).propose(context())


def test_an_unknown_model_lists_what_the_endpoint_serves(server):
    with pytest.raises(LLMError) as caught:
        LLMDesigner(options(server, model="gpt-nope")).propose(context())
    assert "'gpt-nope'" in str(caught.value) and "test-model" in str(caught.value) and "--model" in str(caught.value)


def test_a_wrong_base_url_path_is_named(server):
    with pytest.raises(LLMError, match="--base-url"):
        LLMDesigner(options(server, base_url=server.url.removesuffix("/v1") + "/api")).propose(context())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_host_stops_at_once(server):
    started = time.monotonic()
    with pytest.raises(LLMError, match=r"cannot reach http://127\.0\.0\.1:\d+/v1 .*--base-url"):
        LLMDesigner(options(server, base_url=f"http://127.0.0.1:{_closed_port()}/v1")).propose(context())
    assert time.monotonic() - started < 5


def test_no_key_for_openai_itself_says_which_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    designer = LLMDesigner(LLMOptions(model="m", api_key_env="NO_SUCH_KEY_VAR"))
    with pytest.raises(LLMError, match=r"\$NO_SUCH_KEY_VAR is not set.*--api-key-env"):
        designer.propose(context())


def test_the_cli_fails_within_seconds_on_a_wrong_key(server, tmp_path):
    env = dict(os.environ, COLUMNS="80", WRONG_KEY="sk-definitely-wrong")
    env.pop("OPENAI_API_KEY", None)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "rewardsmith.cli", "run", "balance the pole", "--env", "cartpole", "--base-url",
         server.url, "--api-key-env", "WRONG_KEY", "--model", "test-model", "--out", str(tmp_path), "-n", "1",
         "-k", "1"], capture_output=True, text=True, env=env, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "sk-definitely-wrong" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "401" in lines[0] and "WRONG_KEY" in lines[0]
    assert elapsed < 30, elapsed


def test_an_unknown_model_is_refused_before_the_first_request_with_the_served_list(server):
    server.models = ("pinned-model", "other-model")
    with pytest.raises(UsageError) as caught:
        choose_designer("openai", {"base_url": server.url, "api_key_env": KEY_ENV, "model": "gpt-4o-mini"})
    message = str(caught.value)
    assert "'gpt-4o-mini'" in message and "pinned-model, other-model" in message and "--model" in message
    assert not server.chats, "refused at start-up"


def test_a_pinned_servers_400_says_its_own_words_and_counts_one_attempt(server, tmp_path):
    server.pinned = True
    run = new_run(tmp_path)
    (proposal,) = LLMDesigner(options(server, model="gpt-4o-mini"), run).propose(context())
    message = proposal.origin["refused"]["message"]
    assert "Server is pinned to 'test-model'; requested 'gpt-4o-mini'" in message, message
    (record,) = [json.loads(p.read_text()) for p in run.llm_dir.glob("*.failed.json")]
    assert record["attempts"] == 1 and len(server.chats) == 1


@pytest.mark.parametrize("body, words", [
    ({"detail": "prompt is longer than the context"}, "prompt is longer than the context"),
    ({"detail": [{"msg": "field required", "loc": ["body", "messages"]}]}, "field required"),
    ("upstream \x1b[31mexploded", "upstream \\x1b[31mexploded"),
], ids=["fastapi_detail", "fastapi_validation", "plain_text"])
def test_every_http_error_shows_the_body_the_server_sent(server, body, words):
    server.push(Fault(400, body=body))
    (proposal,) = LLMDesigner(options(server)).propose(context())
    message = proposal.origin["refused"]["message"]
    assert "HTTP 400" in message and words in message, message
    assert "\x1b" not in message, "terminal control arrives as an escape, never acting"


def test_retries_spent_record_every_attempt(server, tmp_path):
    server.push(Fault(500, "overloaded"), Fault(503, "still overloaded"), Fault(503, "gone"))
    run = new_run(tmp_path)
    LLMDesigner(options(server, retries=2), run).propose(context())
    (record,) = [json.loads(p.read_text()) for p in run.llm_dir.glob("*.failed.json")]
    assert record["attempts"] == 3 and "after 3 tries" in record["error"] and "gone" in record["error"]


# -------------------------------------------------------------------------------------- outages


def test_a_server_restart_is_waited_out(server):
    server.push(Reply(GOOD_PROGRAM))
    designer = LLMDesigner(options(server, outage=20.0, backoff=0.05))
    designer.propose(context())
    server.push(Outage(2.0, then=Reply(GOOD["indexing"])))
    started = time.monotonic()
    (proposal,) = designer.propose(context(iteration=1))
    assert proposal.origin["refused"] is None and "compute_reward" in proposal.source
    assert time.monotonic() - started >= 1.5, "it waited for the server to come back"
    assert designer.usage.failed_requests == 0


def _listening(server: ScriptedLLM, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if server._server is not None:
            return
        time.sleep(0.05)
    raise AssertionError("the scripted server did not come back")


class _Notices(LoopHooks):
    def __init__(self) -> None:
        self.notices: list[str] = []

    def on_notice(self, state, text):
        self.notices.append(text)


def test_an_endpoint_that_stays_down_stops_the_run_and_resume_goes_on(server, tmp_path):
    from rewardsmith.loop import resume_search

    server.push(Reply(GOOD_PROGRAM), Outage(2.5))
    run = new_run(tmp_path)
    state = run_search(run, TASK, LLMDesigner(options(server, outage=0.5, backoff=0.05), run),
                       config(iterations=2, samples=1, workers=1))
    assert state.status == "stopped" and "has not answered" in state.stop_reason and "resume" in state.stop_reason
    assert state.iterations_done == 1 and sorted(state.candidates) == ["00-00"], "no sample was marked failed"
    summary = json.loads(run.summary_json.read_text())
    assert summary["status"] == "stopped" and summary["stop_reason"] == state.stop_reason
    _listening(server)
    server.push(Reply(GOOD["indexing"]))
    state = resume_search(run, designer_for_run(run))
    assert state.status == "finished" and state.candidates["01-00"].status == "scored"


def test_resume_reasks_the_samples_that_got_no_reply_and_keeps_the_usage(server, tmp_path):
    from rewardsmith.loop import resume_search

    server.push(Fault(500, "overloaded"), Reply(GOOD_PROGRAM))
    run = new_run(tmp_path)
    designer = LLMDesigner(options(server, retries=0, use_n=False, concurrency=1), run)
    state = run_search(run, TASK, designer, config(samples=2))
    assert state.status == "finished" and str(state.candidates["00-00"].reason).startswith("[llm_failed]")
    assert json.loads(run.summary_json.read_text())["usage"]["failed_requests"] == 1
    server.push(Reply(GOOD["indexing"]))
    hooks = _Notices()
    state = resume_search(run, designer_for_run(run), hooks=hooks)
    assert hooks.notices and "re-asking 1 sample" in hooks.notices[0] and "00-00" in hooks.notices[0]
    assert state.candidates["00-00"].status == "scored" and state.candidates["00-01"].status == "scored"
    assert len(server.chats) == 3, "only the unanswered sample was asked again"
    usage = json.loads(run.summary_json.read_text())["usage"]
    assert usage["failed_requests"] == 1 and usage["requests"] == 2, usage


# ------------------------------------------------------------------------- sampling that doesn't


def test_identical_samples_are_noticed_and_asked_again_differently(server, tmp_path):
    from rich.console import Console

    from rewardsmith.progress import LiveProgress

    server.honour_n = False  # like a server that ignores n and decodes greedily
    server.route = lambda request: Reply(GOOD["indexing"] if "seed" in request["body"] else GOOD_PROGRAM)
    run = new_run(tmp_path)
    console = Console(record=True, width=300)
    state = run_search(run, TASK, LLMDesigner(options(server), run), config(samples=2), hooks=LiveProgress(console))
    varied = [c["body"] for c in server.chats if "seed" in c["body"]]
    assert len(varied) == 1 and "Another answer to this same request" in last_user_text({"body": varied[0]})
    first, second = state.candidates["00-00"], state.candidates["00-01"]
    assert first.source != second.source and {first.status, second.status} == {"scored"}
    assert "ignoring temperature" in second.origin["resampled"]
    (notice,) = [e for e in run.events() if e["kind"] == "notice"]
    assert notice["code"] == "identical_samples" and "may be ignoring temperature" in notice["text"]
    assert json.loads(run.summary_json.read_text())["notices"][0]["text"] == notice["text"]
    assert "may be ignoring temperature" in console.export_text()


def test_a_program_that_stays_identical_trains_once(server, tmp_path):
    server.honour_n = False
    server.default = Reply(GOOD_PROGRAM)
    run = new_run(tmp_path)
    state = run_search(run, TASK, LLMDesigner(options(server), run), config(samples=2))
    first, second = state.candidates["00-00"], state.candidates["00-01"]
    assert first.status == "scored" and second.status == "rejected" and str(second.reason).startswith("[duplicate]")
    assert "00-00" in str(second.reason)
    assert [e["id"] for e in run.events() if e["kind"] == "candidate_training"] == ["00-00"]


# ------------------------------------------------------------------------------- budgets, usage


def test_the_token_budget_stops_the_search_cleanly(server, tmp_path):
    server.default = Reply(GOOD_PROGRAM)
    run = new_run(tmp_path)
    designer = LLMDesigner(options(server, max_total_tokens=50), run)
    state = run_search(run, TASK, designer, config(iterations=3, samples=1, workers=1))
    assert state.status == "stopped" and "--max-total-tokens" in state.stop_reason
    assert state.iterations_done == 1 and len(server.chats) == 1
    summary = json.loads(run.summary_json.read_text())
    assert summary["status"] == "stopped" and summary["usage"]["total_tokens"] >= 50
    assert state.candidates["00-00"].status == "scored", "what finished stays in the run"


def test_the_cost_budget_stops_before_the_next_request(server):
    from rewardsmith.errors import BudgetExceeded

    server.default = Reply(GOOD_PROGRAM)
    designer = LLMDesigner(options(server, price_input=1.0, price_output=1.0, max_cost=0.01))
    designer.propose(context())
    with pytest.raises(BudgetExceeded, match="--max-cost is 0.01"):
        designer.propose(context(iteration=1))
    assert len(server.chats) == 1


@pytest.mark.slow
def test_tokens_are_counted_per_request_iteration_and_run_and_priced(server, tmp_path):
    server.route = distinct_replies()
    run = new_run(tmp_path)
    designer = LLMDesigner(options(server, price_input=0.5, price_output=2.0), run)
    run_search(run, TASK, designer, config(iterations=2, samples=2))
    usage = json.loads(run.summary_json.read_text())["usage"]
    records = [json.loads(p.read_text()) for p in run.llm_dir.glob("*.json")]
    assert len(records) == usage["requests"] == 2
    assert sum(r["prompt_tokens"] for r in records) == usage["prompt_tokens"] > 0
    assert sum(r["completion_tokens"] for r in records) == usage["completion_tokens"] > 0
    assert set(usage["iterations"]) == {"0", "1"}
    assert sum(row["total_tokens"] for row in usage["iterations"].values()) == usage["total_tokens"]
    assert usage["cost"] == pytest.approx(usage["prompt_tokens"] / 1000 * 0.5 + usage["completion_tokens"] / 1000 * 2)


def test_prices_from_a_table(tmp_path, server):
    table = tmp_path / "prices.json"
    table.write_text(json.dumps({"test-model": {"input": 0.1, "output": 0.4}, "other": {"input": 9, "output": 9}}))
    _, chosen = choose_designer("openai", {"base_url": server.url, "api_key_env": KEY_ENV, "max_cost": 1.0},
                                prices=table)
    assert (chosen.model, chosen.price_input, chosen.price_output, chosen.max_cost) == ("test-model", 0.1, 0.4, 1.0)
    with pytest.raises(UsageError, match="--max-cost needs prices"):
        choose_designer("openai", {"base_url": server.url, "api_key_env": KEY_ENV, "max_cost": 1.0})


# ---------------------------------------------------------------------------------------- review


def test_a_failed_review_sends_the_candidate_back_with_its_reasons(server, tmp_path):
    verdicts = iter(["VERDICT: FAIL\n- the alive bonus pays for stalling; tie it to the angle",
                     "**VERDICT: PASS**\n- fine"])

    def route(request):
        kind = purpose_of(request)
        if kind == "review":
            return Reply(next(verdicts))
        if kind == "repair":
            return Reply(GOOD_PROGRAM)
        return None

    server.route = route
    server.push(Reply(GOOD["python_fence"]))
    run = new_run(tmp_path)
    state = run_search(run, TASK, LLMDesigner(options(server, review=True), run), config(samples=1, workers=1))
    cand = state.candidates["00-00"]
    assert cand.status == "scored" and len(cand.attempts) == 1
    assert cand.attempts[0]["problem"].startswith("[review]")
    repair = last_user_text(server.chats_for("repair")[0])
    assert "the alive bonus pays for stalling" in repair
    reviews = [e for e in run.events() if e["kind"] == "candidate_reviewed"]
    assert [e["passed"] for e in reviews] == [False, True]
    assert "VERDICT" in last_user_text(server.chats_for("review")[0])


def test_only_the_verdict_line_decides_a_review():
    assert parse_review("- ok\nVERDICT: PASS") == (True, "- ok")
    assert parse_review("<think>hmm VERDICT: FAIL?</think>\n- sign is wrong\n**Verdict: fail**")[0] is False
    prose = "Failed to capture the reward when the task fails.\n- otherwise sound\nVERDICT: PASS"
    assert parse_review(prose)[0] is True, "prose that starts with 'Failed' is a reason, not a verdict"
    assert parse_review("FAIL: the penalty is positive") == (None, parse_review("FAIL: the penalty is positive")[1])
    passed, reasons = parse_review("Pass. I think it is fine.")
    assert passed is None and "no verdict" in reasons
    assert parse_review("VERDICT: FAIL\n- too big\nVERDICT: PASS")[0] is True, "the last verdict line counts"


def _review_run(server, tmp_path, review_reply: str):
    def route(request):
        if purpose_of(request) == "review":
            return Reply(review_reply)
        return Reply("```python\nthis is not python\n```") if purpose_of(request) == "repair" else None

    server.route = route
    server.push(Reply(GOOD_PROGRAM))
    run = new_run(tmp_path)
    state = run_search(run, TASK, LLMDesigner(options(server, review=True), run), config(samples=1, workers=1))
    return run, state


def test_a_review_whose_prose_says_failed_does_not_fail_the_candidate(server, tmp_path):
    _, state = _review_run(server, tmp_path, "Failed to capture the reward when the task fails.\n"
                                             "- the terms are sound otherwise\nVERDICT: PASS")
    cand = state.candidates["00-00"]
    assert cand.status == "scored" and not cand.attempts, cand.reason
    assert not server.chats_for("repair")


def test_a_review_without_a_verdict_trains_and_says_so_everywhere(server, tmp_path):
    from rich.console import Console

    from rewardsmith.progress import REVIEW_UNDECIDED, candidate_table
    from rewardsmith.report import write_report
    from rewardsmith.show import candidate_view, run_overview

    run, state = _review_run(server, tmp_path, "Fail-safe terms look fine; the [bold]scale[/bold] is plausible.")
    cand = state.candidates["00-00"]
    assert cand.status == "scored" and not cand.attempts, "neither pass nor fail: it trains, unrepaired"
    (reviewed,) = [e for e in run.events() if e["kind"] == "candidate_reviewed"]
    assert reviewed["passed"] is None
    assert [i.code for i in cand.verdict.warnings] == ["review_no_verdict"]
    console = Console(record=True, width=300)
    console.print(candidate_table(state, iteration=0))
    console.print(run_overview(state))
    console.print(candidate_view(state, cand))
    shown = console.export_text()
    assert shown.count(REVIEW_UNDECIDED) == 3, shown
    assert "[bold]scale[/bold]" in shown, "the reviewer's words are text, not markup"
    html_text = write_report(run, state=state).read_text()
    assert "the review gave no verdict, so this program trained unreviewed" in html_text


# ------------------------------------------------------------------------------------- history


class _Feedback(LoopHooks):
    def on_iteration_end(self, state, iteration):
        return IterationDecision(feedback=["Please keep the cart nearer the centre, it drifts."])


@pytest.mark.slow
def test_each_iteration_carries_the_best_its_reflection_the_others_and_feedback(server, tmp_path):
    server.push(Reply(GOOD["python_fence"]), Reply(BAD["unknown_field"][0]), Reply(GOOD["indexing"]),
                *[Reply(GOOD_PROGRAM)] * 3)
    run = new_run(tmp_path)
    state = run_search(run, TASK, LLMDesigner(options(server), run), config(iterations=2, samples=3, repairs=0),
                       hooks=_Feedback())
    first = [c for c in state.candidates.values() if c.iteration == 0]
    best = max((c for c in first if c.status == "scored"), key=lambda c: c.fitness)
    prompt = last_user_text(server.chats_for("propose")[1])
    assert best.source.strip() in prompt and f"The program to improve: {best.id}" in prompt
    # every scored candidate is analysed; the analyzer's reflection goes into the prompt verbatim
    reflection = best.analysis["reflection"]
    assert reflection.strip() and reflection.strip() in prompt
    assert "What training showed" not in prompt  # the curves-only fallback is for parents without an analysis
    for other in first:
        if other.id != best.id:
            assert f"- {other.id}" in prompt
    assert "refused: [unknown_field]" in prompt
    assert "Please keep the cart nearer the centre, it drifts." in prompt


# ------------------------------------------------------------------------ choosing, recording


def test_auto_chooses_openai_only_with_an_endpoint(monkeypatch, server):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert choose_designer("auto", {}) == ("builtin", None)
    assert not endpoint_configured(LLMOptions())
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    name, chosen = choose_designer("auto", {"api_key_env": KEY_ENV})
    assert name == "openai" and chosen.model == "test-model", "the only model served is the default"
    with pytest.raises(UsageError, match="choose auto, builtin or openai"):
        choose_designer("claude", {})


def test_choosing_fails_fast_on_a_refused_key(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-wrong")
    with pytest.raises(LLMError, match="401"):
        choose_designer("openai", {"base_url": server.url, "api_key_env": KEY_ENV, "model": "test-model"})


def test_a_model_must_be_named_when_several_are_served(server):
    server.models = ("a", "b")
    with pytest.raises(UsageError, match="pass --model: .* it serves a, b"):
        choose_designer("openai", {"base_url": server.url, "api_key_env": KEY_ENV})


def test_run_json_records_the_options_but_never_the_key(server, tmp_path):
    server.default = Reply(GOOD_PROGRAM)
    run = new_run(tmp_path)
    run_search(run, TASK, LLMDesigner(options(server), run), config(samples=1, workers=1))
    info = run.read_run()
    assert info["designer"] == "openai" and info["designer_options"]["api_key_env"] == KEY_ENV
    assert server.api_key not in run.run_json.read_text()
    assert not any(server.api_key in p.read_text() for p in run.root.rglob("*.json*"))
    rebuilt = designer_for_run(run)
    assert isinstance(rebuilt, LLMDesigner) and rebuilt.options == options(server)


@pytest.mark.slow
def test_the_cli_stops_on_its_token_budget_and_resumes_with_a_new_one(server, tmp_path):
    server.default = Reply(GOOD_PROGRAM)
    env = dict(os.environ, COLUMNS="200")
    env.pop("OPENAI_API_KEY", None)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rewardsmith.cli", *args], capture_output=True, text=True,
                              env=env, timeout=300)

    first = cli("run", "balance the pole", "--env", "cartpole", "--task", "balance",
                "--base-url", server.url, "--api-key-env", KEY_ENV,
                "--out", str(tmp_path), "-n", "2", "-k", "1", "--timesteps", "512", "--workers", "1", "--no-media",
                "--max-total-tokens", "50", "--price-per-1k-input", "1", "--price-per-1k-output", "2")
    assert first.returncode == 0, first.stderr
    assert "stopped: token budget spent" in first.stdout and "--max-total-tokens is 50" in first.stdout
    assert "LLM: 1 requests" in first.stdout and "round 1:" in first.stdout and "cost" in first.stdout
    assert "designer: test-model (http://127.0.0.1:" in first.stdout, "the only served model is the default"
    (run_dir,) = tmp_path.iterdir()
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "stopped"
    second = cli("resume", str(run_dir), "--max-total-tokens", "1000000")
    assert second.returncode == 0, second.stderr
    assert len(server.chats) == 2, "one new request: the second round's"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["iterations_done"] == 2
    assert summary["usage"]["requests"] == 2 and set(summary["usage"]["iterations"]) == {"0", "1"}


# ------------------------------------------------------------------- a user env with a Dict observation


ROVER_REPLIES = (
    """Drive home: pay for closing the distance, keep the battery.

```python
import numpy as np


def compute_reward(obs, action, next_obs, info):
    before = float(np.linalg.norm(obs.position))
    after = float(np.linalg.norm(next_obs.position))
    progress = 10.0 * (before - after)
    thrift = 0.1 * next_obs.battery
    return progress + thrift, {"progress": progress, "thrift": thrift}
```
""",
    """Axis by axis, with a brake on speed near home:

```python
import math


def compute_reward(obs, action, next_obs, info):
    x, y = next_obs.position[0], next_obs.position[1]
    near = math.exp(-(x * x + y * y))
    speed = -0.05 * float(abs(next_obs["velocity"]).sum())
    return near + speed, {"near": near, "speed": speed}
```
""",
)


@pytest.mark.slow
def test_a_search_on_a_user_dict_observation_env_reads_fields_by_name(server, tmp_path):
    from tests.helpers_docenv import ROVER

    task = TaskRef(ROVER, "Drive the rover to the origin and keep some battery.")
    server.push(*[Reply(text) for text in ROVER_REPLIES])
    run = RunDir.create(tmp_path / "runs", "rover", task.text)
    state = run_search(run, task, LLMDesigner(options(server), run), config(samples=len(ROVER_REPLIES)))
    by_index = sorted(state.candidates.values(), key=lambda c: c.index)
    assert [c.status for c in by_index] == ["scored"] * len(ROVER_REPLIES), [(c.id, c.reason) for c in by_index]
    assert all(c.fitness is not None and c.fitness > float("-inf") for c in by_index)
    prompt = last_user_text(server.chats[0])
    assert "[0:2] position (float array of shape (2,))" in prompt and "[4] battery" in prompt
    assert "next_obs.position[0]" in prompt  # the prompt shows how a vector field reads
