"""The command line: exit codes, one-line errors, and the commands' output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GOOD = """
import math
import numpy as np
from typing import Dict, Tuple

UPRIGHT_SCALE: float = 0.2


def upright_bonus(angle: float) -> float:
    \"\"\"1 when upright, falling off with the angle.\"\"\"
    return math.exp(-abs(angle) / UPRIGHT_SCALE)


def compute_reward(obs, action, next_obs, info) -> Tuple[float, Dict[str, float]]:
    upright = upright_bonus(next_obs.pole_angle)
    centred = -np.float64(abs(next_obs[0])) * 0.1
    return upright + centred, {"upright": upright, "centred": centred}
"""


def rewardsmith(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    return subprocess.run([sys.executable, "-m", "rewardsmith.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, fragment: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0], lines[0]


def test_check_accepts_a_good_reward(tmp_path):
    path = tmp_path / "reward.py"
    path.write_text(GOOD)
    result = rewardsmith("check", str(path), "--env", "cartpole")
    assert result.returncode == 0, result.stderr
    assert "accepted" in result.stdout
    assert "centred, upright" in result.stdout


def test_check_takes_an_exported_module_as_its_reward_program(tmp_path):
    from rewardsmith.export import render_export
    from rewardsmith.spec import load_spec

    path = tmp_path / "exported.py"
    path.write_text(render_export(GOOD, load_spec("cartpole"), {"task": "balance", "task_name": "balance"}))
    result = rewardsmith("check", str(path), "--env", "cartpole")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "centred, upright" in result.stdout


def test_check_rejects_with_reasons_and_exit_1(tmp_path):
    path = tmp_path / "reward.py"
    path.write_text("import torch\ndef compute_reward(obs, action, next_obs, info):\n    return 0.0, {}\n")
    result = rewardsmith("check", str(path), "--env", "cartpole")
    assert result.returncode == 1
    assert "forbidden_import" in result.stdout and "torch is not available" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["check", "MISSING.py", "--env", "cartpole"], "does not exist"),
        (["check", "EMPTY.py", "--env", "cartpole"], "is empty"),
        (["check", "GOOD.py", "--env", "no-such-env"], "unknown env 'no-such-env'"),
        (["check", "GOOD.py", "--env", "cartpole", "--task", "fly"], "has no task 'fly'"),
        (["run", "--env", "cartpole"], "give a task text, or --task NAME"),
        (["run", "   ", "--env", "cartpole"], "give a task text, or --task NAME"),
        (["run", "balance", "--env", "nope"], "unknown env 'nope'"),
        (["run", "balance", "--env", "cartpole", "--iterations", "0"], "--iterations must be at least 1"),
        (["run", "balance", "--env", "cartpole", "--samples", "0"], "--samples must be at least 1"),
        (["run", "balance", "--env", "cartpole", "--timesteps", "3"], "--timesteps must be at least 64"),
        (["run", "balance", "--env", "cartpole", "--device", "tpu"], "--device must be auto, cpu or cuda"),
        (["run", "balance", "--env", "cartpole", "--fitness", "nofile.py:f"], "does not exist"),
        (["run", "balance", "--env", "cartpole", "--fitness", "justtext"], "FILE.py:FUNCTION"),
        (["export", "NOT_A_RUN"], "is not a rewardsmith run"),
        (["resume", "NOT_A_RUN"], "is not a rewardsmith run"),
        (["describe", "no-such-env"], "unknown env"),
        (["run", "balance", "--env", "cartpole", "--workers", "0"], "--workers must be at least 1, got 0"),
        (["evaluate", "GOOD.py", "--env", "cartpole", "--workers", "0"], "--workers must be at least 1, got 0"),
        (["resume", "NOT_A_RUN", "--workers", "0"], "--workers must be at least 1, got 0"),
        (["describe", "Taxi-v3"], "is an outdated version: Environment version v3 for `Taxi` is deprecated. "
                                  "Please use `Taxi-v4` instead."),
        (["describe", "CartPole-v9"], "has no such version"),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(tmp_path, args, fragment):
    (tmp_path / "EMPTY.py").write_text("  \n")
    (tmp_path / "GOOD.py").write_text(GOOD)
    (tmp_path / "NOT_A_RUN").mkdir()
    result = rewardsmith(*args, cwd=tmp_path)
    assert_one_line_error(result, 2, fragment)


def test_an_unknown_option_is_a_usage_error_without_traceback():
    result = rewardsmith("run", "x", "--env", "cartpole", "--bogus")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--bogus" in result.stderr


def test_envs_lists_every_bundled_env_and_its_tasks():
    result = rewardsmith("envs")
    assert result.returncode == 0
    assert "cartpole" in result.stdout and "CartPole-v1" in result.stdout
    assert "hold-right" in result.stdout and "balance" in result.stdout


def test_describe_prints_what_the_designer_is_told(cartpole):
    result = rewardsmith("describe", "cartpole")
    assert result.returncode == 0
    assert result.stdout.strip() == cartpole.describe().strip()
    assert "[2] pole_angle" in result.stdout


def test_run_and_export_end_to_end(tmp_path):
    result = rewardsmith("run", "keep the pole upright", "--env", "cartpole", "--iterations", "1", "--samples", "2",
                         "--timesteps", "512", "--no-media", "--out", str(tmp_path), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "using the built-in designer" in result.stdout
    assert "scored on cartpole/balance, the closest bundled task; pass --task to choose" in result.stdout
    assert "best:" in result.stdout
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    out = tmp_path / "exported.py"
    exported = rewardsmith("export", str(run_dir), "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert "class SynthesizedReward" in out.read_text()
    to_stdout = rewardsmith("export", str(run_dir), "--candidate", "00-01")
    assert "compute_reward" in to_stdout.stdout
    missing = rewardsmith("export", str(run_dir), "--candidate", "99-99")
    assert_one_line_error(missing, 2, "no candidate '99-99'")


# ------------------------------------------------------------------------- what a new user tripped over


def test_ctrl_c_says_how_to_resume_and_the_run_records_it(tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it, while candidates train."""
    import json
    import signal
    import time

    env = dict(os.environ, COLUMNS="200")
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "rewardsmith.cli", "run", "keep the pole upright", "--env",
                             "cartpole", "--iterations", "2", "--samples", "2", "--timesteps", "200000",
                             "--no-media", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            events = list(tmp_path.glob("*/events.jsonl"))
            if events and '"candidate_training"' in events[0].read_text():
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        else:
            pytest.fail("no candidate started training within 120 s")
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    run_dir = events[0].parent
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stdout + stderr, stderr
    assert "interrupted" in stderr
    assert f"rewardsmith resume {run_dir}" in stderr
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "interrupted"
    assert f"rewardsmith resume {run_dir}" in info["stop_reason"]
    assert '"run_interrupted"' in (run_dir / "events.jsonl").read_text()
    from rewardsmith.runs import RunDir
    from rewardsmith.state import load_state

    state = load_state(RunDir.open(run_dir))
    assert state.status == "interrupted"
    assert state.iterations_done < state.config.iterations  # `resume` has a plan left to finish
    assert not any(c.status == "scored" for c in state.candidates.values())  # the interrupted ones train again


def test_device_cuda_without_a_cuda_device_is_a_usage_error_naming_the_torch_build(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    (tmp_path / "GOOD.py").write_text(GOOD)
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    for args in (["run", "balance", "--env", "cartpole", "--device", "cuda"],
                 ["evaluate", "GOOD.py", "--env", "cartpole", "--device", "cuda:0"]):
        result = rewardsmith(*args, cwd=tmp_path)
        assert_one_line_error(result, 2, f"torch sees no CUDA device (torch {torch.__version__}, {build})")
    assert not any(tmp_path.glob("runs/*")), "no run directory is made for a refused run"


NEEDS_EXTRA = """
import gymnasium as gym


def make_rover(**kwargs):
    raise gym.error.DependencyNotInstalled('roverlib is not installed, run `pip install "rover[sim]"`')


gym.register("NeedsExtra-v0", entry_point=make_rover)
"""


def test_an_env_that_needs_a_missing_extra_names_the_extra(tmp_path):
    """Gymnasium's DependencyNotInstalled (as MuJoCo envs raise without the extra) says what to install."""
    (tmp_path / "needs_extra.py").write_text(NEEDS_EXTRA)
    result = rewardsmith("describe", "needs_extra:NeedsExtra-v0", cwd=tmp_path)
    assert_one_line_error(result, 2, "env 'NeedsExtra-v0' is registered but a dependency is missing")
    assert 'pip install "rover[sim]"' in result.stderr
    assert "unknown env" not in result.stderr


def test_a_deprecated_env_prints_no_raw_ansi_warning():
    result = rewardsmith("describe", "Taxi-v3")
    assert result.returncode == 2
    assert "\x1b" not in result.stderr + result.stdout
    assert "unknown env" not in result.stderr


WARNS_ON_MAKE = """
import sys

import gymnasium as gym
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.logger import warn


class WarnsOnMake(CartPoleEnv):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        warn("this env warns when it is made")


gym.register("WarnsOnMake-v0", entry_point=WarnsOnMake, max_episode_steps=50)
from rewardsmith.cli import main

sys.argv = ["rewardsmith", "describe", "WarnsOnMake-v0"]
main()
"""


def test_a_library_warning_prints_as_one_plain_line():
    """gymnasium colours its warnings with ANSI codes; the CLI prints them as plain text."""
    env = dict(os.environ, COLUMNS="200")
    result = subprocess.run([sys.executable, "-c", WARNS_ON_MAKE], capture_output=True, text=True, timeout=120,
                            env=env)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stderr
    assert "warning: WARN: this env warns when it is made" in result.stderr.splitlines()


def test_version_prints_the_package_version():
    from rewardsmith import __version__

    result = rewardsmith("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"rewardsmith {__version__}"


@pytest.mark.parametrize("command,usage", [("resume", "resume [OPTIONS] RUN"), ("export", "export [OPTIONS] RUN"),
                                           ("check", "check [OPTIONS] REWARD_FILE"),
                                           ("run", "run [OPTIONS] [TEXT]"),
                                           ("prompts", "prompts [OPTIONS] ENV [TEXT]")])
def test_usage_lines_name_arguments_plainly(command, usage):
    result = rewardsmith(command, "--help")
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.endswith(usage), first
    assert "{" not in first


CONSTANT_FITNESS = '''
SOLVED = 1.0


def flat(episode):
    """Scores every episode 0, whatever the policy does."""
    return 0.0
'''


@pytest.fixture(scope="module")
def flat_run(tmp_path_factory):
    """A real built-in search whose fitness returns a constant: every candidate ties."""
    root = tmp_path_factory.mktemp("flat")
    (root / "const.py").write_text(CONSTANT_FITNESS)
    result = rewardsmith("run", "keep the pole upright", "--env", "cartpole", "--fitness", "const.py:flat",
                         "--iterations", "1", "--samples", "2", "--timesteps", "512", "--no-media", "--out",
                         str(root / "runs"), cwd=root, timeout=300)
    assert result.returncode == 0, result.stderr
    return result, next((root / "runs").iterdir())


def test_a_search_whose_candidates_all_tie_says_no_progress(flat_run):
    import json

    result, run_dir = flat_run
    assert "no progress: all 2 scored candidates have the same fitness (0)" in " ".join(result.stdout.split())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["no_progress"] is True
    header = (run_dir / "best" / "reward.py").read_text().split("def compute_reward")[0]
    assert "# NO PROGRESS: every candidate of the search scored this same fitness" in header
    assert "no better than a random choice" in header


def test_solved_means_the_final_fitness_reaches_the_threshold_in_every_place(flat_run):
    """A checkpoint that touched the threshold is not "solved": CLI, show, report, summary and export agree."""
    import json
    import re

    from rewardsmith.runs import RunDir
    from rewardsmith.state import load_state, summary_of

    result, run_dir = flat_run
    assert "(not solved: solved at fitness ≥ 1)" in result.stdout
    assert "(solved)" not in result.stdout
    curves = RunDir.open(run_dir).candidate(0, 0).curves
    data = json.loads(curves.read_text())
    data["solved_at"] = 256  # a checkpoint reached the threshold; the final policy (fitness 0) did not hold it
    curves.write_text(json.dumps(data))

    def everywhere() -> set[str]:
        state = load_state(RunDir.open(run_dir))
        says = {"summary": "yes" if summary_of(state)["best"]["solved"] else "no"}
        shown = rewardsmith("show", str(run_dir))
        row = next(line for line in shown.stdout.splitlines() if "00-00" in line)
        says["show"] = "yes" if re.search(r"\byes\b", row) else "no"
        assert "episodes ≥ threshold" in shown.stdout
        assert rewardsmith("report", str(run_dir)).returncode == 0
        page = (run_dir / "report.html").read_text()
        cells = next(row for row in page.split("<tr>") if 'href="#cand-00-00">00-00</a></td>' in row)
        says["report"] = "yes" if "<td>yes</td>" in cells else "no"
        assert "checkpoint ≥ threshold at step" in page and "<td class=\"num\">256</td>" in cells
        exported = rewardsmith("export", str(run_dir), "--candidate", "00-00").stdout
        says["export"] = "no" if "(not solved:" in exported else "yes"
        return set(says.values())

    assert everywhere() == {"no"}
    data["fitness"] = 1.5
    curves.write_text(json.dumps(data))
    assert everywhere() == {"yes"}


def test_a_resume_budget_that_cannot_work_is_refused_before_run_json_keeps_it(tmp_path):
    """``--max-cost`` without prices is a usage error; run.json must stay as it was, or no resume could work again."""
    import json

    from rewardsmith.runs import RunDir

    run = RunDir.create(tmp_path, "cartpole", "balance")
    options = {"model": "m", "base_url": "http://127.0.0.1:9/v1"}
    run.write_json(run.run_json, {"task": {"env": "cartpole", "text": "balance"}, "config": {}, "designer": "openai",
                                  "designer_options": options, "status": "stopped"})
    result = rewardsmith("resume", str(run.root), "--max-cost", "1")
    assert_one_line_error(result, 2, "--max-cost")
    assert json.loads(run.run_json.read_text())["designer_options"] == options
