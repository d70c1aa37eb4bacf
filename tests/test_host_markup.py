"""Untrusted text on the host's terminal: never Rich markup, never terminal control.

Hostile reward programs (component names, exception messages and prints that look like Rich markup
or carry escape sequences; source holding ESC and BEL) go through ``rewardsmith check`` and
``rewardsmith run`` (the LLM designer against the scripted server) as real subprocesses with
colour forced on, then through ``show`` and ``export``. Every command must exit as it should, print
no traceback, show the hostile text literally, and emit no escape sequence the program chose (an
OSC-8 link, blink, reverse video, BEL, clear screen). The trainings are tiny; no assertion depends
on where they land.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rewardsmith.critic import check
from rewardsmith.hooks import LoopHooks
from rewardsmith.loop import run_search
from rewardsmith.runs import RunDir
from rewardsmith.safetext import control_characters, literal
from rewardsmith.spec import load_spec
from rewardsmith.state import SearchConfig, SearchState
from rewardsmith.task import TaskRef
from tests.llm_server import Fault, Reply, ScriptedLLM

KEY_ENV = "REWARDSMITH_TEST_KEY"

LINK = "[link=https://example.com]upright[/link]"
BLINK = "[blink][reverse]REJECTED"
CLOSE = "[/oops]"

NAMES_PROGRAM = f'''\
import math


def compute_reward(obs, action, next_obs, info):
    upright = math.cos(next_obs.pole_angle * 7.5)
    centred = -0.1 * abs(next_obs.cart_position)
    return upright + centred, {{"{CLOSE}": upright, "{LINK}": centred, "{BLINK}": 0.5 * upright}}
'''
"""Refused (component names are plain identifiers), and the refusal quotes the markup name literally."""

PRINT_PROGRAM = '''\
import math


def compute_reward(obs, action, next_obs, info):
    # [blink][reverse]REJECTED[/reverse][/blink] [/x]
    upright = math.cos(next_obs.pole_angle * 7.5)
    centred = -0.1 * abs(next_obs.cart_position)
    print("[bold red]printed[/] [/x] [link=https://example.com]click[/link]")
    return upright + centred, {"upright": upright, "centred": centred}
'''
"""Accepted and trained: it prints markup and a comment is markup."""
PRINTED = "[bold red]printed[/] [/x]"

RAISING_PROGRAM = r'''
def compute_reward(obs, action, next_obs, info):
    raise ValueError("[/x] \x1b[5mblink\x1b[0m \x1b]8;;https://example.com\x07link\x1b]8;;\x07 [/x]")
'''
"""Refused: its exception message is a closing tag, blink, and an OSC-8 link (the escapes run, not the source)."""

ESC_PROGRAM = '''\
def compute_reward(obs, action, next_obs, info):
    upright = 1.0 - abs(next_obs.pole_angle)  # \x1b[2J\x1b[H\x1b[32maccepted\x1b[0m\x07
    return upright, {"upright": upright}
'''
"""Refused: its source holds ESC and BEL that would clear the screen and fake an 'accepted' line."""

FORBIDDEN = {
    "OSC-8 link": "\x1b]8;",
    "blink": "\x1b[5m",
    "reverse video": "\x1b[7m",
    "BEL": "\x07",
    "clear screen": "\x1b[2J",
    "cursor home": "\x1b[H",
}
"""Sequences a hostile program would like the terminal to see; rewardsmith itself never emits them."""


def visible(text: str) -> str:
    """``text`` as a person reads it: colour codes (SGR) removed, any other escape sequence kept."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def assert_safe(result: subprocess.CompletedProcess) -> str:
    """No traceback and no hostile escape sequence on stdout or stderr; returns both, as a person reads them."""
    both = result.stdout + result.stderr
    assert "Traceback" not in both, both[-3000:]
    for what, sequence in FORBIDDEN.items():
        assert sequence not in both, f"{what} reached the terminal:\n{both[-3000:]!r}"
    return visible(both)


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, FORCE_COLOR="1", COLUMNS="240", LINES="60", TERM="xterm-256color", **extra)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "NO_COLOR"):
        env.pop(name, None)
    return env


def rewardsmith(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rewardsmith.cli", *args], capture_output=True, text=True,
                          env=env or cli_env(), cwd=cwd, stdin=subprocess.DEVNULL, timeout=600)


# ------------------------------------------------------------------------------- the critic's finding


def test_control_characters_are_found_with_their_line():
    assert control_characters("a = 1\tb\r\nc = '\\x1b'\n") == [], "tab, CRLF and an escape written out are fine"
    assert control_characters("a = 1\n# \x1b[2J\x07\nb = 2\rc = 3\n\u202e") == [
        (2, "\x1b"), (2, "\x07"), (3, "\r"), (4, "\u202e")]


def test_the_critic_refuses_control_characters_with_a_code_of_its_own():
    verdict = check(ESC_PROGRAM, load_spec("cartpole"))
    assert not verdict.accepted
    assert [(i.code, i.line) for i in verdict.issues] == [("control_character", 2), ("control_character", 2)]
    messages = " ".join(i.message for i in verdict.issues)
    assert "\\x1b" in messages and "\\x07" in messages, "the character is named as an escape"
    assert "\x1b" not in messages and "\x07" not in messages


def test_the_critic_refuses_a_bidi_override_and_counts_the_rest():
    source = "# \u202e\n" + "".join(f"x{i} = 1  # \x08\x08\n" for i in range(6)) + NAMES_PROGRAM
    verdict = check(source, load_spec("cartpole"))
    assert not verdict.accepted
    assert all(i.code == "control_character" for i in verdict.issues)
    assert verdict.issues[0].line == 1 and "\\u202e" in verdict.issues[0].message
    assert [i.line for i in verdict.issues[1:5]] == [2, 3, 4, 5], "one finding per character and line"
    assert verdict.issues[-1].message == "2 more control characters"


def test_literal_text_is_neither_markup_nor_control():
    text = literal(f"{CLOSE} {LINK} \x1b[5mx\x1b]8;;u\x07")
    assert text.plain == f"{CLOSE} {LINK} \\x1b[5mx\\x1b]8;;u\\x07"
    assert not text.spans


# ------------------------------------------------------------------------------------------- check


@pytest.mark.parametrize("program, code", [(NAMES_PROGRAM, 1), (PRINT_PROGRAM, 0), (RAISING_PROGRAM, 1),
                                           (ESC_PROGRAM, 1)],
                         ids=["markup-names", "markup-print", "markup-exception", "escape-in-source"])
def test_check_shows_hostile_text_literally(tmp_path, program, code):
    path = tmp_path / "reward.py"
    path.write_text(program, encoding="utf-8")
    result = rewardsmith("check", str(path), "--env", "cartpole")
    assert result.returncode == code, result.stdout + result.stderr
    assert "\x1b[" in result.stdout, "colour is on, so markup would have been rendered"
    shown = assert_safe(result)
    if program is NAMES_PROGRAM:
        assert "[bad_components]" in shown and f"component name '{CLOSE}' is not allowed" in shown
        assert "rejected" in shown
    elif program is PRINT_PROGRAM:
        assert "accepted" in shown
    elif program is RAISING_PROGRAM:
        assert "[runtime_error]" in shown and "ValueError: [/x] \\x1b[5mblink" in shown
    else:
        assert "[control_character] line 2" in shown and "\\x1b" in shown and "\\x07" in shown
        assert "rejected" in shown


# ------------------------------------------------------------------------------- run, show, export


def _reply(program: str, prose: str) -> Reply:
    return Reply(f"{prose}\n\n```python\n{program}```\n")


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """One interactive LLM run (stdin closed: Enter) whose three proposals are the hostile programs."""
    out = tmp_path_factory.mktemp("runs")
    with ScriptedLLM(models=("[link=https://example.com]gpt[/link]",)) as server:
        server.push(_reply(NAMES_PROGRAM, f"{LINK} {CLOSE} \x1b[5mI reward the pole for staying upright."),
                    _reply(PRINT_PROGRAM, f"{BLINK} I print markup."),
                    _reply(RAISING_PROGRAM, "[/x] This one raises on purpose, for the test."),
                    _reply(ESC_PROGRAM, "\x1b]8;;https://example.com\x07Clear the screen.\x1b]8;;\x07"))
        result = rewardsmith("run", "keep the pole up", "--env", "cartpole", "--task", "balance",
                             "--base-url", server.url,
                             "--api-key-env", KEY_ENV, "--iterations", "1", "--samples", "4", "--repairs", "0",
                             "--timesteps", "512", "--workers", "1", "--no-media", "--interactive", "--out", str(out),
                             env=cli_env(**{KEY_ENV: server.api_key}))
    run_dir = next(p for p in out.iterdir() if p.is_dir())
    return result, run_dir


def _by_program(run_dir: Path) -> dict[str, str]:
    from rewardsmith.state import load_state

    state = load_state(RunDir.open(run_dir))
    kinds = {}
    for cand in state.candidates.values():
        if CLOSE in cand.source:
            kinds["names"] = cand.id
        elif "printed" in cand.source:
            kinds["printing"] = cand.id
        elif "ValueError" in cand.source:
            kinds["raising"] = cand.id
        elif "\x1b" in cand.source:
            kinds["escape"] = cand.id
    assert set(kinds) == {"names", "printing", "raising", "escape"}, kinds
    return kinds


def test_run_shows_hostile_text_literally_and_finishes(hostile_run):
    result, run_dir = hostile_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shown = assert_safe(result)
    assert "designer: [link=https://example.com]gpt[/link]" in shown, "the endpoint's model name, literally"
    assert "[/x]" in shown and "\\x1b[5m" in shown, "the live table shows the refusal reasons literally"
    assert "[control_character] line 2" in shown
    assert "use ID to pick the parent" in shown, "--interactive asked"
    assert f"component name '{CLOSE}' is not allowed" in shown, "the refusal quotes the name literally"
    assert PRINTED in shown, "the interactive view prints the best code"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished"
    ids = _by_program(run_dir)
    statuses = {c["id"]: c["status"] for c in summary["candidates"]}
    assert statuses[ids["raising"]] == statuses[ids["escape"]] == statuses[ids["names"]] == "rejected"
    assert statuses[ids["printing"]] in ("scored", "failed")
    if summary["best"] is not None:
        assert Path(summary["best"]["export_path"]).is_file()


def test_show_prints_hostile_names_and_reasons_literally(hostile_run):
    _, run_dir = hostile_run
    ids = _by_program(run_dir)
    overview = rewardsmith("show", str(run_dir))
    assert overview.returncode == 0
    shown = assert_safe(overview)
    assert "[/x]" in shown and "[control_character]" in shown
    rejected = rewardsmith("show", str(run_dir), "--candidate", ids["raising"])
    assert rejected.returncode == 0
    assert "no analysis: [runtime_error]" in assert_safe(rejected)
    assert f"component name '{CLOSE}' is not allowed" in shown
    named = rewardsmith("show", str(run_dir), "--candidate", ids["names"])
    assert named.returncode == 0
    assert f"component name '{CLOSE}' is not allowed" in assert_safe(named)
    trained = rewardsmith("show", str(run_dir), "--candidate", ids["printing"])
    assert trained.returncode == 0
    assert_safe(trained)


def test_export_prints_the_hostile_program_as_text_and_refuses_control_characters(hostile_run):
    _, run_dir = hostile_run
    ids = _by_program(run_dir)
    exported = rewardsmith("export", str(run_dir), "--candidate", ids["names"])
    assert exported.returncode == 0, exported.stderr
    assert_safe(exported)
    assert "\x1b" not in exported.stdout
    for name in (CLOSE, LINK, BLINK):
        assert f'"{name}"' in exported.stdout
    printing = rewardsmith("export", str(run_dir), "--candidate", ids["printing"])
    assert printing.returncode == 0, printing.stderr
    assert_safe(printing)
    assert PRINTED in printing.stdout
    refused = rewardsmith("export", str(run_dir), "--candidate", ids["escape"])
    assert refused.returncode == 1
    assert refused.stdout == ""
    shown = assert_safe(refused)
    assert f"candidate {ids['escape']} is not exported" in shown and "\\x1b" in shown


def test_an_endpoint_error_is_one_literal_line_and_the_run_is_failed(tmp_path):
    with ScriptedLLM() as server:
        server.default = Fault(401, f"{CLOSE} bad key \x1b]8;;https://example.com\x07here\x1b]8;;\x07 \x1b[5m!")
        result = rewardsmith("run", "keep the pole up", "--env", "cartpole", "--task", "balance",
                             "--base-url", server.url, "--api-key-env", KEY_ENV, "--model", "test-model",
                             "--iterations", "1", "--samples", "1", "--no-media", "--out", str(tmp_path),
                             env=cli_env(**{KEY_ENV: server.api_key}))
    assert result.returncode == 1
    shown = assert_safe(result)
    assert "error:" in shown and f"{CLOSE} bad key" in shown
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


# ------------------------------------------------------------------------- a renderer that breaks


class BrokenRenderer(LoopHooks):
    """A progress display with a bug: it raises as the first round starts."""

    def on_iteration_start(self, state: SearchState, iteration: int) -> None:
        raise RuntimeError(f"closing tag '{CLOSE}' doesn't match any open tag")


def test_a_renderer_that_raises_leaves_the_run_failed_with_its_reason(tmp_path):
    from rewardsmith.designer import BuiltinDesigner

    ref = TaskRef("cartpole", "keep the pole up")
    run = RunDir.create(tmp_path, "cartpole", ref.text)
    config = SearchConfig(iterations=1, samples=1, timesteps=512, workers=1, media=False)
    with pytest.raises(RuntimeError, match="doesn't match"):
        run_search(run, ref, BuiltinDesigner(), config, BrokenRenderer())
    assert run.read_run()["status"] == "failed"
    summary = json.loads(run.summary_json.read_text())
    assert summary["status"] == "failed"
    assert summary["stop_reason"] == f"internal error: RuntimeError: closing tag '{CLOSE}' doesn't match any open tag"
