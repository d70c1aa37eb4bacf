"""The run's llm/ folder: every exchange stored, resume repeats nothing, replay needs no network."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rewardsmith.designer import designer_for_run, make_designer
from rewardsmith.designer.cache import Exchange, ReplyCache, request_key
from rewardsmith.designer.endpoint import LLMOptions, choose_designer
from rewardsmith.designer.llm import LLMDesigner
from rewardsmith.errors import LLMError
from rewardsmith.loop import resume_search, run_search
from tests.llm_replies import BAD, GOOD, GOOD_PROGRAM
from tests.llm_server import Reply, ScriptedLLM, purpose_of
from tests.test_llm_designer import KEY_ENV, TASK, _closed_port, config, context, new_run, options

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def server(monkeypatch):
    with ScriptedLLM() as scripted:
        monkeypatch.setenv(KEY_ENV, scripted.api_key)
        yield scripted


def _exchange(key: str, text: str = "hi") -> Exchange:
    reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
    return Exchange(key, "propose", 0, {"iteration": 0}, {"model": "m", "messages": []}, reply, 10, 5)


def test_the_key_covers_the_request_and_its_slot():
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0.8, "max_tokens": 10}
    key = request_key(body, {"purpose": "propose", "iteration": 0})
    assert key == request_key(dict(reversed(list(body.items()))), {"iteration": 0, "purpose": "propose"})
    for changed in ({**body, "temperature": 0.7}, {**body, "model": "n"}, {**body, "max_tokens": 11},
                    {**body, "n": 2}, {**body, "messages": [{"role": "user", "content": "y"}]}):
        assert request_key(changed, {"purpose": "propose", "iteration": 0}) != key
    assert request_key(body, {"purpose": "propose", "iteration": 0, "sample": 1}) != key


def test_exchanges_are_stored_atomically_and_failures_apart(tmp_path):
    cache = ReplyCache(tmp_path / "llm")
    assert cache.get("k1") is None
    cache.put_failure("k1", "propose", 0, {}, {"model": "m"}, "HTTP 500", 3)
    assert cache.get("k1") is None and cache.failures()[0]["error"] == "HTTP 500"
    cache.put(_exchange("k1"))
    assert cache.get("k1").reply["choices"][0]["message"]["content"] == "hi"
    assert not cache.failures(), "a reply replaces the failure"
    assert [p.name for p in (tmp_path / "llm").iterdir()] == ["k1.json"], "no temporary files left behind"
    (tmp_path / "llm" / "k2.json").write_text('{"key": "k2", "reply": ')  # torn by a crash: a miss, not an error
    assert cache.get("k2") is None and len(cache.exchanges()) == 1


def test_replay_serves_another_runs_replies_and_copies_them_in(tmp_path):
    ReplyCache(tmp_path / "a" / "llm").put(_exchange("k1", "recorded"))
    cache = ReplyCache(tmp_path / "b" / "llm", replay=tmp_path / "a" / "llm")
    found = cache.get("k1")
    assert found.reply["choices"][0]["message"]["content"] == "recorded" and found.served == "replay"
    assert json.loads((tmp_path / "b" / "llm" / "k1.json").read_text())["served"] == "replay"
    assert cache.get("missing") is None


def test_a_repeated_request_is_answered_from_the_run(server, tmp_path):
    server.push(Reply(GOOD_PROGRAM))
    run = new_run(tmp_path)
    first = LLMDesigner(options(server), run).propose(context())
    again = LLMDesigner(options(server), run)
    assert again.usage.requests == 1, "a rebuilt designer counts what the run already spent"
    assert again.propose(context()) == first
    assert len(server.chats) == 1 and again.usage.cached_requests == 1


_CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from rewardsmith.designer import LLMDesigner, LLMOptions
    from rewardsmith.loop import run_search
    from rewardsmith.state import SearchConfig
    from rewardsmith.runs import RunDir
    from rewardsmith.task import TaskRef

    if __name__ == "__main__":
        run = RunDir(Path(sys.argv[1]))
        options = LLMOptions.from_dict(json.loads(sys.argv[2]))
        config = SearchConfig.from_dict(json.loads(sys.argv[3]))
        run_search(run, TaskRef("cartpole", sys.argv[4]), LLMDesigner(options, run), config)
""")


@pytest.mark.slow
def test_a_killed_run_resumes_without_repeating_a_request(server, tmp_path):
    server.push(*[Reply(GOOD[name]) for name in ("python_fence", "py_fence", "indexing", "numpy_scalars")])
    run = new_run(tmp_path)
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    search = config(iterations=2, samples=2)
    child = subprocess.Popen([sys.executable, str(script), str(run.root), json.dumps(options(server).to_dict()),
                              json.dumps(search.to_dict()), TASK.text], cwd=ROOT, start_new_session=True,
                             env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(list(run.llm_dir.glob("*.json"))) < 2:  # the second iteration's reply is stored
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the child never asked for its second iteration"
            time.sleep(0.05)
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the child and its worker processes
        child.wait(timeout=30)
    assert len(server.chats) == 2
    info = run.read_run()
    assert info["status"] == "running", "killed, not stopped"
    designer = designer_for_run(run)
    state = resume_search(run, designer)
    assert len(server.chats) == 2, "the resumed run asked nothing twice"
    assert state.status == "finished" and len(state.candidates) == 4
    assert all(c.status == "scored" for c in state.candidates.values())
    usage = json.loads(run.summary_json.read_text())["usage"]
    assert usage["requests"] == 2 and set(usage["iterations"]) == {"0", "1"}


@pytest.mark.slow
def test_replay_reruns_a_search_with_no_network(server, tmp_path):
    server.push(Reply(GOOD["python_fence"]), Reply(BAD["unknown_field"][0]), Reply(GOOD["indexing"]),
                Reply(GOOD["py_fence"]))
    server.route = lambda request: Reply(GOOD_PROGRAM) if purpose_of(request) == "repair" else None
    recorded = new_run(tmp_path / "a")
    search = config(iterations=2, samples=2, repairs=1)
    first = run_search(recorded, TASK, LLMDesigner(options(server), recorded), search)
    asked = len(server.chats)
    assert asked == 3 and len(server.chats_for("repair")) == 1
    server.stop()

    dead = f"http://127.0.0.1:{_closed_port()}/v1"
    name, replay_options = choose_designer("openai", {"replay": str(recorded.root), "base_url": dead,
                                                      "api_key_env": KEY_ENV})
    assert name == "openai" and replay_options.model == "test-model"
    replayed = new_run(tmp_path / "b")
    designer = make_designer(name, replay_options, replayed)
    second = run_search(replayed, TASK, designer, search)
    assert {c.id: c.source for c in second.candidates.values()} == {c.id: c.source for c in first.candidates.values()}
    assert designer.usage.requests == 0 and designer.usage.cached_requests == asked
    stored = [json.loads(p.read_text()) for p in replayed.llm_dir.glob("*.json")]
    assert len(stored) == asked and {s["served"] for s in stored} == {"replay"}


def test_a_replay_miss_is_a_clear_error(server, tmp_path):
    server.push(Reply(GOOD_PROGRAM))
    recorded = new_run(tmp_path / "a")
    recorded.write_json(recorded.run_json, {"designer": "openai", "designer_options": options(server).to_dict()})
    LLMDesigner(options(server), recorded).propose(context())
    other = new_run(tmp_path / "b")
    designer = LLMDesigner(options(server, replay=str(recorded.root), temperature=0.2), other)
    with pytest.raises(LLMError, match=r"--replay .* has no recorded reply for this propose request"):
        designer.propose(context())
    assert len(server.chats) == 1, "a replay never goes to the network"


def test_replay_of_a_run_without_llm_replies_is_refused(tmp_path):
    from rewardsmith.errors import UsageError

    plain = new_run(tmp_path / "a")
    plain.write_json(plain.run_json, {"designer": "builtin"})
    with pytest.raises(UsageError, match="recorded no LLM replies"):
        LLMDesigner(LLMOptions(model="m", replay=str(plain.root)), new_run(tmp_path / "b"))
    with pytest.raises(UsageError, match="used the builtin designer"):
        choose_designer("auto", {"replay": str(plain.root)})


def _numbered_replies(texts: list[str], purpose: str):
    """A route that answers the requests for ``purpose`` with ``texts`` in turn."""
    answers = iter(texts)
    return lambda request: Reply(next(answers)) if purpose_of(request) == purpose else None


def test_identical_repairs_for_two_candidates_are_two_requests_and_resume_reuses_each(server, tmp_path):
    from dataclasses import replace

    server.route = _numbered_replies([GOOD["python_fence"], GOOD["indexing"]], "repair")
    run = new_run(tmp_path)
    ctx = context()
    refused = BAD["unknown_field"][0]
    first, second = (LLMDesigner(options(server), run).repair(replace(ctx, candidate=cid), refused, "[x] bad", 1)
                     for cid in ("00-00", "00-01"))
    assert len(server.chats_for("repair")) == 2, "the second candidate's identical request got its own reply"
    assert first.source != second.source
    again = LLMDesigner(options(server), run).repair(replace(ctx, candidate="00-01"), refused, "[x] bad", 1)
    assert again.source == second.source and len(server.chats_for("repair")) == 2, "resume answers from llm/"


def test_identical_reviews_for_two_candidates_are_two_requests(server, tmp_path):
    from dataclasses import replace

    server.route = _numbered_replies(["- a\nVERDICT: PASS", "- b\nVERDICT: FAIL"], "review")
    run = new_run(tmp_path)
    designer = LLMDesigner(options(server, review=True), run)
    verdicts = [designer.review(replace(context(), candidate=cid), GOOD_PROGRAM, None).passed
                for cid in ("00-00", "00-01")]
    assert verdicts == [True, False] and len(server.chats_for("review")) == 2
    again = LLMDesigner(options(server, review=True), run).review(replace(context(), candidate="00-01"),
                                                                   GOOD_PROGRAM, None)
    assert again.passed is False and len(server.chats_for("review")) == 2
