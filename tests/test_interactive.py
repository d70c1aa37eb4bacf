"""--interactive in a pseudo-terminal: feedback typed after a round reaches the next round's designer."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path


class Terminal:
    """A child process on a pseudo-terminal, read until a pattern shows up."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env,
                                     close_fds=True)
        os.close(slave)
        self.seen = ""

    def expect(self, pattern: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        start = len(self.seen)
        while time.monotonic() < deadline:
            if re.search(pattern, _plain(self.seen[start:])):
                return self.seen[start:]
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.seen += os.read(self.master, 65536).decode("utf-8", "replace")
                except OSError:
                    break
            elif self.proc.poll() is not None and not ready:
                break
        raise AssertionError(f"never saw {pattern!r}; output:\n{_plain(self.seen)[-3000:]}")

    def send(self, line: str) -> None:
        os.write(self.master, (line + "\r").encode())

    def close(self) -> int:
        try:
            code = self.proc.wait(timeout=120)
        finally:
            os.close(self.master)
        return code


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def _env() -> dict[str, str]:
    env = dict(os.environ, COLUMNS="160", LINES="50", TERM="xterm")
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    return env


def test_feedback_typed_at_the_prompt_reaches_the_next_round(tmp_path):
    term = Terminal([sys.executable, "-m", "rewardsmith.cli", "run", "--env", "cartpole", "--task", "hold-right",
                     "--iterations", "2", "--samples", "2", "--timesteps", "512", "--workers", "2", "--no-media",
                     "--interactive", "--out", str(tmp_path)], tmp_path, _env())
    term.expect(r"use ID to pick the parent")
    shown = _plain(term.seen)
    assert "def compute_reward" in shown  # the best reward's code is shown
    term.send("use 99-99")
    term.expect(r"no scored candidate '99-99'")
    term.send("The cart wanders off: more near_target")
    term.expect(r"noted")
    term.send("")
    term.expect(r"last round")
    term.send("stop")
    assert term.close() == 0
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    feedback = [e for e in events if e["kind"] == "feedback"]
    assert feedback == [dict(feedback[0], iteration=1, text="The cart wanders off: more near_target")]
    notes = [e["origin"]["note"] for e in events if e["kind"] == "candidate_proposed" and e["iteration"] == 1]
    assert any("feedback: doubled near_target" in n for n in notes)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "stopped"
    # the report written as the run ends holds the feedback too (not only one rebuilt from the event log)
    assert "The cart wanders off: more near_target" in (run_dir / "report.html").read_text()


def test_use_id_sets_the_parent_of_the_next_round(tmp_path):
    term = Terminal([sys.executable, "-m", "rewardsmith.cli", "run", "--env", "cartpole", "--task", "balance",
                     "--iterations", "2", "--samples", "2", "--timesteps", "512", "--workers", "2", "--no-media",
                     "--interactive", "--out", str(tmp_path)], tmp_path, _env())
    term.expect(r"use ID to pick the parent")
    summary = json.loads(next(p for p in tmp_path.iterdir() if p.is_dir()).joinpath("summary.json").read_text())
    scored = sorted((c for c in summary["candidates"] if c["status"] == "scored"), key=lambda c: c["fitness"])
    worst = scored[0]["id"]
    term.send(f"use {worst}")
    term.expect(rf"next parent: {worst}")
    term.send("")
    term.expect(r"last round")
    term.send("")
    assert term.close() == 0
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    parents = {e["origin"].get("parent") for e in events if e["kind"] == "candidate_proposed" and e["iteration"] == 1}
    assert parents == {worst}


def test_rank_refuses_bad_ids_then_records_the_ranking_and_its_first_is_the_next_parent(tmp_path):
    term = Terminal([sys.executable, "-m", "rewardsmith.cli", "run", "--env", "cartpole", "--task", "balance",
                     "--iterations", "2", "--samples", "2", "--timesteps", "512", "--workers", "2",
                     "--interactive", "--out", str(tmp_path)], tmp_path, _env())
    term.expect(r"rank ID ID … best first")
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    summary = json.loads(run_dir.joinpath("summary.json").read_text())
    scored = sorted((c for c in summary["candidates"] if c["status"] == "scored"), key=lambda c: c["fitness"])
    assert len(scored) == 2
    worst, best = scored[0]["id"], scored[1]["id"]
    shown = _plain(term.seen)
    for cand in scored:  # every scored candidate's rollout is named for the person to watch
        assert f"rollout of {cand['id']} (fitness" in shown
    term.send("rank 99-99")
    term.expect(r"ranking refused: not a scored candidate of round 1: 99-99; its scored candidates")
    term.send(f"rank {worst} {worst}")
    term.expect(rf"ranking refused: {worst} named more than once")
    term.send("rank")
    term.expect(r"ranking refused: a ranking needs at least one candidate id")
    term.send(f"rank {worst} {best}")
    term.expect(rf"ranked: {worst} > {best}; next parent: {worst}")
    term.send("")
    term.expect(r"last round")
    term.send("")
    assert term.close() == 0
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [(e["iteration"], e["ids"]) for e in events if e["kind"] == "ranking"] == [(0, [worst, best])]
    parents = {e["origin"].get("parent") for e in events if e["kind"] == "candidate_proposed" and e["iteration"] == 1}
    assert parents == {worst}
