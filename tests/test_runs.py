"""The run directory: names, atomic writes, and an event log that survives a torn last line."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from rewardsmith.errors import RunDirError
from rewardsmith.runs import RunDir, atomic_write_text, slugify


def test_run_names_carry_time_env_and_task_and_never_collide(tmp_path):
    when = datetime(2026, 11, 26, 10, 15, 0)
    first = RunDir.create(tmp_path, "cartpole", "Keep the pole upright!", now=when)
    second = RunDir.create(tmp_path, "cartpole", "Keep the pole upright!", now=when)
    assert first.root.name == "2026-11-26T10-15-00_cartpole_keep-the-pole-upright"
    assert second.root.name.endswith("-1")
    assert slugify("   ") == "task"
    assert first.candidate(1, 3).reward == first.root / "iter-01" / "cand-03" / "reward.py"


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    path = tmp_path / "a" / "b.json"
    atomic_write_text(path, "1")
    atomic_write_text(path, "2")
    assert path.read_text() == "2"
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]


def test_events_are_appended_and_a_torn_line_is_ignored(tmp_path):
    run = RunDir.create(tmp_path, "cartpole", "x")
    run.append_event("one", value=1)
    run.append_event("two", value=2)
    with open(run.events_file, "a") as handle:
        handle.write('{"kind": "thr')  # a process killed mid-write
    kinds = [e["kind"] for e in run.events()]
    assert kinds == ["one", "two"]
    assert "time" in run.events()[0]


def test_open_refuses_a_directory_that_is_not_a_run(tmp_path):
    with pytest.raises(RunDirError, match="not a rewardsmith run"):
        RunDir.open(tmp_path)
    run = RunDir.create(tmp_path, "cartpole", "x")
    run.run_json.write_text("{not json")
    with pytest.raises(RunDirError, match="damaged"):
        RunDir.open(run.root).read_run()
    run.write_json(run.run_json, {"status": "running"})
    run.update_run(status="finished")
    assert json.loads(run.run_json.read_text()) == {"status": "finished"}


def test_a_run_stopped_while_agreeing_on_a_fitness_says_there_is_nothing_to_resume(tmp_path):
    run = RunDir.create(tmp_path, "cartpole", "keep the cart left")
    run.append_event("fitness_offered", offer={"attempt": 1})  # what the agreement records before run.json exists
    with pytest.raises(RunDirError, match="while agreeing on a fitness.*nothing was trained.*rewardsmith run"):
        RunDir.open(run.root)
