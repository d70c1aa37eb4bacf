"""Matching a free-text sentence to an env's tasks, and what `run` with the built-in designer says about it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rewardsmith.spec import list_specs
from rewardsmith.taskmatch import match_task, words

SPECS = {spec.name: spec for spec in list_specs()}  # as written: the MuJoCo specs need no MuJoCo here


@pytest.mark.parametrize("env,sentence,expected", [
    # the novel tasks: a task that says the same, or none when the closest one measures something else
    ("mountaincar", "drive to the left hilltop", "left-hill"),
    ("mountaincar", "park the car on the left hill", "left-hill"),
    ("pendulum", "hold the pendulum tilted", "hold-tilted"),
    ("pendulum", "hold it still, tilted 15 degrees counter-clockwise", "hold-tilted"),
    ("pendulum", "hold the pendulum at a 20° tilt", None),  # hold-tilted measures 15 degrees
    ("cartpole", "keep the cart on the left", None),  # hold-right measures the opposite side
    ("acrobot", "swing the acrobot up with as little torque as possible", None),  # swing-up ignores torque
    # each bundled env's tasks, asked for in other words
    ("cartpole", "keep the pole upright", "balance"),
    ("cartpole", "hold the cart right of the center", "hold-right"),
    ("cartpole", "hold the cart at x = 1", "hold-right"),
    ("cartpole", "hold the cart at x = -1", None),
    ("acrobot", "keep the tip above the bar", "keep-above"),
    ("acrobot", "swung up", "swing-up"),
    ("lunarlander", "hover above the pad", "hover"),
    ("lunarlander", "land gently", "land"),
    ("mountaincar-continuous", "reach the flag quickly", "race-to-flag"),
    ("mountaincar-continuous", "reach the flag with little fuel", "reach-flag"),
    ("halfcheetah", "run backwards", "run-backward"),
    ("halfcheetah", "run towards negative x", "run-backward"),
    ("hopper", "hop in place", "hop-in-place"),
    ("walker2d", "walk slowly", "walk-slow"),
    ("ant", "turn around in place", "turn-in-place"),
    # ambiguous: what it asks is what every task of the env shares
    ("mountaincar", "drive the car up the hill", None),
    ("cartpole", "keep the pole balanced", None),
    ("pendulum", "swing the pendulum up", None),
    # contradicts every task
    ("pendulum", "keep the pendulum hanging down", None),
])
def test_sentences_match_a_task_only_when_the_match_is_clear(env, sentence, expected):
    assert match_task(sentence, SPECS[env]).chosen == expected


@pytest.mark.parametrize("sentence", ["make a sandwich", "", "the", "fly to the moon and back"])
def test_unrelated_text_matches_no_task_of_any_env(sentence):
    for spec in SPECS.values():
        assert match_task(sentence, spec).chosen is None, spec.name


def test_the_score_says_what_was_shared_and_what_contradicts():
    match = match_task("drive to the left hilltop", SPECS["mountaincar"])
    best, other = match.scores
    assert (best.task, best.shared, best.coverage, best.conflicts) == ("left-hill", ("left",), 1.0, ())
    assert other.task == "reach-flag" and other.conflicts == ("left≠right",)


def test_words_are_normalised_the_same_on_both_sides():
    assert words("Holding the cart at x = +1.0") == words("hold cart at x = 1") == ["hold", "cart", "#1"]
    assert words("counter-clockwise") == words("anticlockwise")
    assert words("towards -x") == words("to the left") == ["left"]
    assert words("swung, held, hopped, running") == words("swing hold hop run")
    assert words("20°") == words("20 deg") == ["#20", "degre"]


def test_untrusted_text_is_only_matched_never_evaluated():
    hostile = "[bold red]left[/] \x1b[2J hill " + "(a+)+" * 2000 + "x" * 50_000
    match = match_task(hostile, SPECS["mountaincar"])
    assert match.chosen is None  # coverage: the sentence asks for far more than any task says


# ------------------------------------------------------------------------------------- the CLI lines


def _run(*args: str, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    return subprocess.run([sys.executable, "-m", "rewardsmith.cli", "run", *args, "--iterations", "1", "--samples",
                           "1", "--timesteps", "256", "--workers", "1", "--no-media", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env=env)


def _recorded_task(tmp_path) -> dict:
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    return json.loads((run_dir / "run.json").read_text())["task"]


def test_run_scores_the_clearly_matching_task_and_says_so_in_one_line(tmp_path):
    result = _run("drive to the left hilltop", "--env", "mountaincar", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ("scored on mountaincar/left-hill, the closest bundled task; pass --task to choose"
            in result.stdout.splitlines())
    assert "default task" not in result.stdout and "composes the env spec" not in result.stdout
    recorded = _recorded_task(tmp_path)
    assert recorded["task"] == "left-hill" and recorded["text"] == "drive to the left hilltop"


def test_run_says_the_sentence_is_unused_and_lists_the_tasks_when_none_matches(tmp_path):
    sentence = "keep the cart on the [bold]left[/bold]"
    result = _run(sentence, "--env", "cartpole", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "the built-in designer does not read the sentence" in out
    assert "candidates are scored on the default task 'balance' (steps survived" in out
    assert "  --task balance: Keep the pole balanced upright for as long as possible." in out
    assert "  --task hold-right: Keep the pole balanced while holding the cart near x = +1.0" in out
    assert "scored on cartpole's default task" not in out  # the LLM designer's note is not repeated
    recorded = _recorded_task(tmp_path)
    assert recorded["task"] is None and recorded["text"] == sentence  # recorded as written, markup and all
