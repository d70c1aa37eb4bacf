"""A person ranks a round's rollouts: every scored candidate gets a GIF, a ranking is an event that picks the next
parent and reaches the designer's next prompt (`rewardsmith rank` then `resume`, with the scripted LLM server)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from rewardsmith.designer import BuiltinDesigner
from rewardsmith.designer.prompts import Prompts
from rewardsmith.errors import UsageError
from rewardsmith.loop import _context, run_search
from rewardsmith.runs import RunDir
from rewardsmith.state import SearchConfig, load_state, record_ranking
from rewardsmith.task import TaskRef
from tests.llm_replies import GOOD_PROGRAM, variant
from tests.llm_server import Reply, ScriptedLLM, last_user_text, purpose_of

KEY_ENV = "REWARDSMITH_TEST_KEY"


@pytest.fixture(scope="module")
def ranked_run(tmp_path_factory) -> RunDir:
    """One finished round of three candidates (built-in designer), with media on."""
    run = RunDir.create(tmp_path_factory.mktemp("rank"), "cartpole", "hold the cart right")
    config = SearchConfig(iterations=1, samples=3, timesteps=512, workers=2, checkpoints=2, eval_episodes=2,
                          final_episodes=2, media=True)
    run_search(run, TaskRef("cartpole", "hold the cart right", "hold-right"), BuiltinDesigner(), config)
    return run


def _copy(run: RunDir, tmp_path: Path) -> RunDir:
    shutil.copytree(run.root, tmp_path / "run")
    return RunDir(tmp_path / "run")


def _scored(run: RunDir) -> list[str]:
    return sorted(c.id for c in load_state(run, read_only=True).candidates.values() if c.status == "scored")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rewardsmith.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_every_scored_candidate_of_a_round_has_a_gif(ranked_run):
    state = load_state(ranked_run, read_only=True)
    scored = [c for c in state.candidates.values() if c.status == "scored"]
    assert len(scored) >= 2
    written = {e["id"]: e for e in ranked_run.events() if e["kind"] == "media_written"}
    assert set(written) == {c.id for c in scored}
    for cand in scored:
        gif = ranked_run.candidate(cand.iteration, cand.index).gif
        assert written[cand.id]["gif"] == str(gif)
        with Image.open(gif) as image:
            assert image.n_frames > 1
    # the MP4 (twice a GIF's cost) only for the round's best, where ffmpeg exists
    assert [cid for cid, e in written.items() if e["mp4"]] == ([state.best.id] if shutil.which("ffmpeg") else [])


def test_no_media_makes_no_gif(tmp_path):
    run = RunDir.create(tmp_path, "cartpole", "keep the pole up")
    config = SearchConfig(iterations=1, samples=2, timesteps=512, workers=2, checkpoints=1, eval_episodes=1,
                          final_episodes=1, media=False)
    run_search(run, TaskRef("cartpole", "keep the pole up"), BuiltinDesigner(), config)
    assert not list(run.root.glob("iter-*/cand-*/rollout.*"))
    assert not [e for e in run.events() if e["kind"] == "media_written"]


def test_a_ranking_is_an_event_replayed_as_the_next_parent_and_the_designers_context(ranked_run, tmp_path):
    run = _copy(ranked_run, tmp_path)
    state = load_state(run, read_only=True)
    worst, *rest = sorted(_scored(run), key=lambda cid: state.candidates[cid].fitness)
    ranking = [worst, rest[-1]]  # partial, and against the fitness
    assert record_ranking(run, ranking) == 0
    assert [e for e in run.events() if e["kind"] == "ranking"][-1]["ids"] == ranking
    state = load_state(run, read_only=True)
    assert state.rankings == {0: ranking}
    assert state.parent_for(1).id == worst
    assert [c.id for c in state.ranking_for(1)] == ranking
    assert state.guidance[-1].kind == "ranking" and state.guidance[-1].iteration == 1
    assert state.guidance[-1].text == f"ranked iteration 0's rollouts: {worst} > {rest[-1]}"
    ctx = _context(state, 1)
    assert ctx.parent.id == worst and [c.id for c in ctx.ranking] == ranking
    text = Prompts().reflection(ctx)
    assert f"ranked them, best first: {worst} > {rest[-1]}." in text
    assert f"1. {worst} (fitness {state.candidates[worst].fitness:.4g})" in text
    assert f"## The program to improve: {worst}" in text
    left_out = rest[:-1]  # three scored, two ranked: the ranking is partial
    assert (f"Not ranked: {', '.join(left_out)}." in text) if left_out else ("Not ranked" not in text)
    proposals = BuiltinDesigner().propose(ctx)  # the built-in designer builds on the top-ranked
    assert {p.origin["parent"] for p in proposals} == {worst}


def test_the_rank_command_refuses_bad_ids_and_records_nothing(ranked_run, tmp_path):
    run = _copy(ranked_run, tmp_path)
    scored = _scored(run)
    before = run.events_file.read_text()
    listed = f"its scored candidates: {', '.join(scored)}"
    for ids, expected in (([scored[0], "00-99"], ["not a scored candidate of round 1: 00-99", listed]),
                          ([scored[0], scored[0]], [f"{scored[0]} named more than once"]),
                          (["01-00"], ["not a scored candidate of round 1: 01-00", listed])):
        result = _cli("rank", str(run.root), *ids)
        assert result.returncode == 2, result.stderr
        error = " ".join(result.stderr.split())
        assert all(text in error for text in expected), error
    assert run.events_file.read_text() == before
    good = _cli("rank", str(run.root), scored[-1])
    assert good.returncode == 0, good.stderr
    assert f"round 1 ranked {scored[-1]}" in " ".join(good.stdout.split())


def test_a_ranking_needs_a_finished_round_that_no_designer_has_used_yet(ranked_run, tmp_path):
    run = RunDir.create(tmp_path / "empty", "cartpole", "x")
    config = SearchConfig(iterations=1, samples=1, timesteps=512, workers=1)
    run.write_json(run.run_json, {"task": TaskRef("cartpole", "x").to_dict(), "config": config.to_dict()})
    with pytest.raises(UsageError, match="no finished round"):
        record_ranking(run, ["00-00"])
    started = _copy(ranked_run, tmp_path)
    started.append_event("candidate_proposed", id="01-00", iteration=1, index=0, source=GOOD_PROGRAM, origin={})
    with pytest.raises(UsageError, match="round 2 .* has already started"):
        record_ranking(started, _scored(started)[:1])


# ------------------------------------------------------------------------- with the LLM designer


@pytest.fixture
def server():
    with ScriptedLLM() as scripted:
        scripted.default = Reply(GOOD_PROGRAM)
        yield scripted


def test_rank_then_resume_puts_the_ranking_in_the_next_prompt_and_builds_on_the_top_ranked(server, tmp_path):
    env = dict(os.environ, COLUMNS="160")
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    env[KEY_ENV] = server.api_key
    server.push(Reply(variant(1)), Reply(variant(2)))
    first = _cli("run", "keep the pole up", "--env", "cartpole", "--task", "balance", "--base-url", server.url, "--api-key-env", KEY_ENV,
                 "--model", "test-model", "--iterations", "1", "--samples", "2", "--timesteps", "512",
                 "--workers", "2", "--no-media", "--out", str(tmp_path), env=env)
    assert first.returncode == 0, first.stderr
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    summary = json.loads((run_dir / "summary.json").read_text())
    scored = {c["id"]: c["fitness"] for c in summary["candidates"] if c["status"] == "scored"}
    assert len(scored) == 2
    top = next(cid for cid in scored if cid != summary["best"]["id"])  # the person disagrees with the fitness
    other = summary["best"]["id"]
    ranked = _cli("rank", str(run_dir), top, other, env=env)
    assert ranked.returncode == 0, ranked.stderr
    asked = len(server.chats)
    server.push(Reply(variant(3)), Reply(variant(4)))
    resumed = _cli("resume", str(run_dir), "--iterations", "1", env=env)
    assert resumed.returncode == 0, resumed.stderr
    prompts = [last_user_text(r) for r in server.chats[asked:] if purpose_of(r) == "propose"]
    assert prompts
    for prompt in prompts:
        assert f"ranked them, best first: {top} > {other}." in prompt
        assert f"1. {top} (fitness {scored[top]:.4g})" in prompt and f"2. {other} (fitness {scored[other]:.4g})" in prompt
        assert f"## The program to improve: {top}" in prompt
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    parents = {e["origin"].get("parent") for e in events if e["kind"] == "candidate_proposed" and e["iteration"] == 1}
    assert parents == {top}
    assert json.loads((run_dir / "summary.json").read_text())["rankings"] == {"0": [top, other]}


def test_the_rank_command_names_its_arguments_plainly():
    result = _cli("rank", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].endswith("rank [OPTIONS] RUN ID...")
