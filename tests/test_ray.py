"""``--executor ray``: the same trainings as the process pool, files back in the run directory, progress
in the table, a lost node failing or retrying only its candidates, and resume after the CLI is killed.

Ray is an extra: without it these tests skip, unless REWARDSMITH_REQUIRE_RAY=1 (CI) makes that a failure.
Every Ray node and driver here uses a loopback address (see tests/ray_cluster.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rewardsmith.designer import BuiltinDesigner
from rewardsmith.errors import UsageError
from rewardsmith.loop import LoopHooks, SearchConfig, load_state, run_search
from rewardsmith.runs import RunDir
from rewardsmith.task import TaskRef
from tests.ray_cluster import Cluster, ray_env

ROOT = Path(__file__).resolve().parents[1]


def _require_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("REWARDSMITH_REQUIRE_RAY") == "1":
            pytest.fail("REWARDSMITH_REQUIRE_RAY=1 but Ray is not installed (pip install -e '.[ray]')")
        pytest.skip("Ray is not installed (pip install -e '.[ray]')")


@pytest.fixture
def ray_installed(monkeypatch):
    _require_ray()
    for name, value in ray_env().items():
        monkeypatch.setenv(name, value)


def test_a_local_search_never_imports_ray():
    code = ("import sys; import rewardsmith.cli, rewardsmith.loop; from rewardsmith.executors import make_executor\n"
            "with make_executor('local', 1) as pool: assert pool.submit(abs, -3).result() == 3\n"
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_executor_settings_are_checked():
    with pytest.raises(UsageError, match="--executor must be one of local, ray"):
        SearchConfig(executor="dask")
    with pytest.raises(UsageError, match="--ray-address needs --executor ray"):
        SearchConfig(ray_address="auto")
    assert SearchConfig.from_dict(SearchConfig(executor="ray", ray_address="h:1").to_dict()).ray_address == "h:1"


class _Progress(LoopHooks):
    def __init__(self) -> None:
        self.reports: list[dict] = []

    def on_progress(self, state, candidate, checkpoint) -> None:
        self.reports.append(checkpoint)


def _search(tmp_path: Path, name: str, executor: str) -> tuple[RunDir, _Progress]:
    config = SearchConfig(iterations=1, samples=1, timesteps=1024, workers=1, checkpoints=4, eval_episodes=2,
                          final_episodes=2, media=True, executor=executor)
    run = RunDir.create(tmp_path / name, "cartpole", "keep the pole upright")
    hooks = _Progress()
    state = run_search(run, TaskRef("cartpole", "keep the pole upright"), BuiltinDesigner(), config, hooks)
    assert state.status == "finished"
    return run, hooks


@pytest.mark.slow
def test_a_ray_training_matches_the_process_pool_and_its_files_come_back(tmp_path, ray_installed):
    local, _ = _search(tmp_path, "local", "local")
    on_ray, hooks = _search(tmp_path, "ray", "ray")
    pool_curves = json.loads((local.candidate(0, 0).curves).read_text())
    ray_curves = json.loads((on_ray.candidate(0, 0).curves).read_text())
    assert pool_curves["status"] == ray_curves["status"] == "scored"
    # same seed, same machine, one torch thread each: the same floats, checkpoint by checkpoint
    assert ray_curves["fitness"] == pool_curves["fitness"]
    def points(curves: dict) -> list[tuple]:
        return [(c["step"], c["fitness"], c["shaped_return"]) for c in curves["checkpoints"]]

    assert len(points(ray_curves)) == 4 and points(ray_curves) == points(pool_curves)
    cand = on_ray.candidate(0, 0)
    for path in (cand.curves, cand.analysis, cand.root / "policy.zip", cand.gif):
        assert path.is_file() and path.stat().st_size > 0, path
    media = [e for e in on_ray.events() if e["kind"] == "media_written"]
    assert media and media[0]["gif"] == str(cand.gif)  # the worker's temporary path is not what is recorded
    assert hooks.reports and [r["step"] for r in hooks.reports] == [p[0] for p in points(ray_curves)]
    assert json.loads(on_ray.run_json.read_text())["config"]["executor"] == "ray"


@pytest.mark.slow
def test_on_ray_every_scored_candidate_gets_its_gif_in_the_run(tmp_path, ray_installed):
    config = SearchConfig(iterations=1, samples=2, timesteps=512, workers=2, checkpoints=1, eval_episodes=1,
                          final_episodes=1, media=True, executor="ray")
    run = RunDir.create(tmp_path, "cartpole", "keep the pole upright")
    state = run_search(run, TaskRef("cartpole", "keep the pole upright"), BuiltinDesigner(), config)
    scored = [c for c in state.candidates.values() if c.status == "scored"]
    written = {e["id"]: e for e in run.events() if e["kind"] == "media_written"}
    assert len(scored) == 2 and set(written) == {c.id for c in scored}
    for cand in scored:
        gif = run.candidate(cand.iteration, cand.index).gif
        assert written[cand.id]["gif"] == str(gif) and gif.is_file() and gif.stat().st_size > 0


def _cli(args: list[str], log: Path) -> subprocess.Popen:
    env = {**ray_env(), "COLUMNS": "200"}
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    return subprocess.Popen([sys.executable, "-m", "rewardsmith.cli", *args], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT, start_new_session=True)


def _wait(condition, what: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        assert proc.poll() is None, f"the CLI exited ({proc.returncode}) before {what}"
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _finished_candidates(run_dir: Path) -> dict[str, dict]:
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]
    return {e["id"]: e for e in events if e["kind"] == "candidate_finished"}


@pytest.mark.slow
def test_a_cluster_search_survives_a_lost_node_and_resumes_after_the_cli_is_killed(tmp_path, ray_installed):
    cluster = Cluster(tmp_path)
    procs: list[subprocess.Popen] = []
    try:
        search = ["--env", "cartpole", "--iterations", "1", "--samples", "2", "--timesteps", "16384", "--workers",
                  "2", "--no-media", "--executor", "ray", "--ray-address", cluster.address]

        # 1. the second node dies while it trains a candidate: the run still finishes
        out = tmp_path / "runs"
        log = tmp_path / "lost-node.log"
        proc = _cli(["run", "keep the pole upright", *search, "--out", str(out)], log)
        procs.append(proc)
        _wait(lambda: cluster.second.worker_pids("rewardsmith-job"), "a job on the second node", proc)
        cluster.second.kill()
        assert proc.wait(timeout=600) == 0, log.read_text()
        run_dir = next(out.iterdir())
        assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
        finished = _finished_candidates(run_dir)
        assert len(finished) == 2
        output = log.read_text()
        # one CPU per node and one per job: one job ran on each node, and the head's is untouched by the loss
        assert any(e["status"] == "scored" for e in finished.values()), output
        for event in finished.values():
            # the killed job was either retried on the head and scored, or failed with the reason
            assert event["status"] in ("scored", "failed"), output
            if event["status"] == "failed":
                assert event["reason"]["code"] == "worker_crashed"
                assert "Ray task was lost" in event["reason"]["message"], event["reason"]

        # 2. the CLI is killed mid-run; resume re-submits the unfinished candidates on the same cluster
        out2 = tmp_path / "runs2"
        log2 = tmp_path / "killed.log"
        proc = _cli(["run", "keep the pole upright", *search, "--out", str(out2)], log2)
        procs.append(proc)
        _wait(lambda: cluster.head.worker_pids("rewardsmith-job"), "a job on the head", proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        run_dir = next(out2.iterdir())
        assert len(_finished_candidates(run_dir)) < 2
        log3 = tmp_path / "resume.log"
        proc = _cli(["resume", str(run_dir)], log3)
        procs.append(proc)
        assert proc.wait(timeout=600) == 0, log3.read_text()
        state = load_state(RunDir.open(run_dir), read_only=True)
        assert state.status == "finished" and state.config.ray_address == cluster.address
        assert {c.status for c in state.candidates.values()} <= {"scored", "failed"}
        assert len(_finished_candidates(run_dir)) == 2
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        cluster.stop()


@pytest.fixture
def cluster(tmp_path, ray_installed):
    """A head and a second node on loopback, one CPU each, torn down after the test."""
    started = Cluster(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_a_halving_search_on_the_cluster_resumes_mid_rung_from_its_saved_state(tmp_path, cluster):
    """Killed while a survivor trains its second rung: the resume trains it on from the state its first rung
    saved (shipped to whichever node runs it), never from scratch, and the run ends with every rung decided."""
    out = tmp_path / "runs"
    log = tmp_path / "halving.log"
    proc = _cli(["run", "keep the pole upright", "--env", "cartpole", "--schedule", "halving", "--eta", "3",
                 "--iterations", "1", "--samples", "3", "--timesteps", "24576", "--workers", "2", "--no-media",
                 "--executor", "ray", "--ray-address", cluster.address, "--out", str(out)], log)
    try:
        def second_rung_running() -> bool:
            logs = list(out.glob("*/events.jsonl"))
            return bool(logs) and any(e["kind"] == "candidate_training" and e.get("rung") == 1
                                      for e in _events(logs[0].parent))

        _wait(second_rung_running, "the second rung", proc, timeout=300)
        _wait(lambda: cluster.head.worker_pids("rewardsmith-job") or cluster.second.worker_pids("rewardsmith-job"),
              "the second rung's job on a node", proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    run_dir = next(out.iterdir())
    before = _events(run_dir)
    assert not any(e["kind"] == "run_finished" for e in before), "killed too late to resume mid-rung"
    first = next(e for e in before if e["kind"] == "rung_decided")
    assert first["rung"] == 0 and len(first["kept"]) == 1 and len(first["stopped"]) == 2
    survivor = first["kept"][0]
    paused = run_dir / f"iter-00/cand-{int(survivor[3:]):02d}/rung-0.state"
    assert paused.is_file(), "the survivor's first rung saved its state in the run directory"

    log2 = tmp_path / "resume.log"
    resumed = _cli(["resume", str(run_dir)], log2)
    try:
        assert resumed.wait(timeout=600) == 0, log2.read_text()
    finally:
        if resumed.poll() is None:
            os.killpg(resumed.pid, signal.SIGKILL)
            resumed.wait()
    events = _events(run_dir)
    at = next(i for i, e in enumerate(events) if e["kind"] == "run_resumed")
    again = [e for e in events[at:] if e["kind"] == "candidate_training"]
    # only the survivor trains again, and from its saved rung on, never rung 0
    assert again and {e["id"] for e in again} == {survivor} and all(e["rung"] >= 1 for e in again), again
    assert [e["rung"] for e in events if e["kind"] == "rung_decided"] == [0, 1]
    state = load_state(RunDir.open(run_dir), read_only=True)
    assert state.status == "finished" and state.config.executor == "ray"
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = {row["id"]: row for row in summary["candidates"]}
    assert {cid: row["status"] for cid, row in rows.items()} == dict.fromkeys(rows, "scored")
    for cid in first["stopped"]:
        assert rows[cid]["stopped_at_rung"] == 0 and rows[cid]["steps"] == first["steps"]
    budget = json.loads((run_dir / "run.json").read_text())["budget"]
    curves = json.loads((paused.parent / "curves.json").read_text())
    assert "stopped_at_rung" not in rows[survivor] and curves["steps"] == budget
    assert not list(run_dir.glob("iter-*/cand-*/rung-*.state")), "finished candidates keep no paused state"
