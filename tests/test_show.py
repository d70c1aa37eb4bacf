"""``rewardsmith show``: a run's candidates and one candidate's analysis as tables."""

from __future__ import annotations

import pytest
from rich.console import Console
from typer.testing import CliRunner

from rewardsmith.cli import app
from rewardsmith.errors import UsageError
from rewardsmith.show import show


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from rewardsmith.designer import BuiltinDesigner
    from rewardsmith.loop import run_search
    from rewardsmith.runs import RunDir
    from rewardsmith.state import SearchConfig
    from rewardsmith.task import TaskRef

    ref = TaskRef("cartpole", "Keep the pole balanced while holding the cart near x = +1.0, right of the centre.",
                  "hold-right")
    run = RunDir.create(tmp_path_factory.mktemp("runs"), "cartpole", ref.text)
    config = SearchConfig(iterations=1, samples=2, timesteps=512, workers=2, checkpoints=2, eval_episodes=2,
                          final_episodes=2, media=False)
    run_search(run, ref, BuiltinDesigner(), config)
    return run.root


def _text(renderable) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_overview_lists_every_candidate_with_status_fitness_and_flags(run_dir):
    from rewardsmith.runs import RunDir
    from rewardsmith.state import load_state

    state = load_state(RunDir.open(run_dir))
    text = _text(show(run_dir))
    assert "hold-right" in text or "holding the cart" in text
    for cand in state.candidates.values():
        assert cand.id in text
        assert cand.analysis is not None
        for flag in cand.analysis["flags"]:
            assert flag in text
    assert "scored" in text and "★" in text


def test_candidate_view_shows_components_terminations_and_reflection(run_dir):
    from rewardsmith.runs import RunDir
    from rewardsmith.state import load_state

    cand = next(iter(load_state(RunDir.open(run_dir)).candidates.values()))
    text = _text(show(run_dir, cand.id))
    assert f"candidate {cand.id}" in text
    for name in cand.analysis["components"]:
        assert name in text
    for cause in cand.analysis["terminations"]:
        assert cause in text
    assert "reflection (what designers read)" in text
    assert cand.analysis["reflection"].splitlines()[0][:40] in text


def test_unknown_candidate_is_a_usage_error(run_dir):
    with pytest.raises(UsageError, match="no candidate '9-9'"):
        show(run_dir, "9-9")


def test_the_cli_command(run_dir):
    runner = CliRunner()
    result = runner.invoke(app, ["show", str(run_dir)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "00-00" in result.output and "00-01" in result.output
    result = runner.invoke(app, ["show", str(run_dir), "--candidate", "00-01"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "reward components" in result.output


def test_reading_a_run_imports_neither_the_search_nor_the_trainer_nor_torch():
    """show, report and export read a run through rewardsmith.state; the designers get results from
    rewardsmith.results. None of them may pull in the search loop, the pool, the trainer or torch."""
    import subprocess
    import sys

    script = ("import sys\n"
              "import rewardsmith.show, rewardsmith.report, rewardsmith.export, rewardsmith.state, rewardsmith.designer\n"
              "banned = ('rewardsmith.loop', 'rewardsmith.executors', 'rewardsmith.training', 'rewardsmith.jobs',"
              " 'torch', 'stable_baselines3')\n"
              "print(','.join(m for m in banned if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == ""


def test_show_gives_a_persons_ranking(run_dir, tmp_path):
    import shutil

    from rewardsmith.runs import RunDir
    from rewardsmith.state import load_state, record_ranking

    shutil.copytree(run_dir, tmp_path / "run")
    run = RunDir(tmp_path / "run")
    assert "as a person ranked it" not in _text(show(run.root))
    ids = sorted((c.id for c in load_state(run).candidates.values() if c.status == "scored"), reverse=True)
    record_ranking(run, ids)
    text = _text(show(run.root))
    assert f"round 1 as a person ranked it: {' > '.join(ids)}" in text
    assert f"candidate {ids[0]} · scored · fitness" in _text(show(run.root, ids[0]))
    assert "ranked #1 of round 1 by a person" in _text(show(run.root, ids[0]))
    assert "ranked #2 of round 1 by a person" in _text(show(run.root, ids[1]))
