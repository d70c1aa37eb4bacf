"""A fitness proposed from the words: asked of the LLM, checked in the sandbox, shown, agreed on, saved, used.

The LLM is :class:`tests.llm_server.ScriptedLLM` on a loopback port, reached by the real ``openai`` client
through ``rewardsmith run``; nothing is monkeypatched. The proposed fitness adds 1000 to what it measures,
so a fitness above 1000 proves that it, and not the env's default goal (at most 500), scored an episode.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from rewardsmith.errors import UsageError
from rewardsmith.fitness_critic import check_fitness
from rewardsmith.fitness_proposal import fitness_file_text, read_reply, run_fitness
from rewardsmith.rollouts import record_episodes
from rewardsmith.sandbox.fitness import FitnessProgramError, SandboxedFitness
from rewardsmith.spec import load_spec
from rewardsmith.task import ProposedFitness, TaskRef
from tests.llm_replies import GOOD_PROGRAM
from tests.llm_server import Reply, ScriptedLLM, last_user_text, purpose_of
from tests.test_interactive import Terminal

KEY_ENV = "REWARDSMITH_TEST_KEY"
WORDS = "keep the cart on the left of the track"

LEFT_PROGRAM = """\
import numpy as np

SOLVED = 1200.0


def fitness(episode):
    left = episode.obs.cart_position[1:] < -0.5
    return 1000.0 + float(np.sum(left)) + 0.001 * len(episode)
"""
LEFT = f"""\
DEFINITION: A successful episode keeps the cart left of x = -0.5 m for as many steps as possible; each such \
step adds one, and a longer episode adds a little.

```python
{LEFT_PROGRAM}```
"""
CONSTANT = """\
DEFINITION: Success is being on the left.

```python
def fitness(episode):
    return 1.0
```
"""
CRASHING = """\
DEFINITION: The cart is left of the centre at the end of a full-length episode.

```python
def fitness(episode):
    return 1000.0 + float(episode.obs.cart_position[499] < 0.0)
```
"""
DEFAULT = """\
DEFAULT GOAL
The words ask the pole to stay upright as long as possible, which is CartPole's own goal.
"""


@pytest.fixture
def server():
    with ScriptedLLM() as scripted:
        scripted.default = Reply(GOOD_PROGRAM)
        yield scripted


def answer_fitness_with(server: ScriptedLLM, *replies: str) -> None:
    """Fitness requests get ``replies`` in order; reward proposals get the default program."""
    queue = deque(replies)
    server.route = lambda request: Reply(queue.popleft()) if purpose_of(request) == "fitness" and queue else None


def _env(server: ScriptedLLM) -> dict[str, str]:
    env = dict(os.environ, COLUMNS="200", LINES="50", TERM="xterm", **{KEY_ENV: server.api_key})
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    return env


def _llm_args(server: ScriptedLLM, out: Path) -> list[str]:
    return ["--env", "cartpole", "--base-url", server.url, "--api-key-env", KEY_ENV, "-n", "1", "-k", "1",
            "--timesteps", "512", "--workers", "1", "--no-media", "--out", str(out)]


def _cli(server: ScriptedLLM, *args: str, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rewardsmith.cli", *args], capture_output=True, text=True,
                          env=_env(server), stdin=stdin, timeout=300)


def _scores(run_dir: Path) -> list[float]:
    summary = json.loads((run_dir / "summary.json").read_text())
    return [c["fitness"] for c in summary["candidates"] if c["status"] == "scored"]


# ------------------------------------------------------------------------------- through the CLI


@pytest.mark.slow
def test_refused_proposals_go_back_with_the_reason_and_the_accepted_one_scores_run_resume_evaluate_report(
        server, tmp_path):
    answer_fitness_with(server, CONSTANT, CRASHING, LEFT)
    first = _cli(server, "run", WORDS, "--yes", *_llm_args(server, tmp_path))
    assert first.returncode == 0, first.stderr[-3000:]
    asked = server.chats_for("fitness")
    assert len(asked) == 3, "a constant and a crashing proposal were refused, and asked again"
    assert WORDS in last_user_text(asked[0]) and "DEFAULT GOAL" in last_user_text(asked[0])
    assert "[constant_fitness]" in last_user_text(asked[1]) and "cannot tell a good policy" in last_user_text(asked[1])
    assert "IndexError" in last_user_text(asked[2]) and "random actions" in last_user_text(asked[2])
    shown = first.stdout
    assert "proposal 1 refused: [constant_fitness]" in shown and "proposal 2 refused: [runtime_error]" in shown
    assert "A successful episode keeps the cart left of x = -0.5 m" in shown and "def fitness(episode):" in shown
    assert "accepted (--yes)" in shown and "note: candidates are scored on" not in shown

    (run_dir,) = tmp_path.iterdir()
    saved = (run_dir / "fitness.py").read_text()
    assert saved.startswith("# rewardsmith: the fitness") and "# origin:  proposed by test-model" in saved
    assert saved.endswith(LEFT_PROGRAM)
    proposed = json.loads((run_dir / "run.json").read_text())["task"]["proposed"]
    assert proposed["origin"] == "proposed by test-model" and proposed["source"] == LEFT_PROGRAM
    assert proposed["solved"] == 1200.0 and proposed["definition"].startswith("A successful episode")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["fitness"] == "proposed fitness (fitness.py)" and summary["scored_on_default"] is False
    assert summary["solved_threshold"] == 1200.0
    assert all(value >= 1000.0 for value in _scores(run_dir)), "the proposed fitness scored the candidates"
    offered = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    offered = [e for e in offered if e["kind"] == "fitness_offered"]
    assert [bool(e["offer"]["refusal"]) for e in offered] == [True, True, False]
    assert offered[-1]["decision"]["action"] == "accept"

    resumed = _cli(server, "resume", str(run_dir), "--iterations", "1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len(server.chats_for("fitness")) == 3, "a resume asks for no new fitness"
    assert len(_scores(run_dir)) == 2 and all(value >= 1000.0 for value in _scores(run_dir))

    evaluated = _cli(server, "evaluate", str(run_dir / "best" / "reward.py"), "--env", "cartpole", "--fitness",
                     str(run_dir), "--seeds", "1", "--timesteps", "512", "--workers", "1", "--json")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    arms = json.loads(evaluated.stdout)["arms"]
    assert arms and all(value >= 1000.0 for arm in arms.values() for value in arm["fitness"])

    reported = _cli(server, "report", str(run_dir))
    assert reported.returncode == 0, reported.stderr
    page = (run_dir / "report.html").read_text()
    assert "proposed fitness (fitness.py)" in page and "keeps the cart left of x = -0.5 m" in page
    exported = _cli(server, "export", str(run_dir))
    assert "scored on task: proposed fitness (fitness.py)" in exported.stdout
    assert "# scored by: the fitness agreed on from the task's words (proposed by test-model)" in exported.stdout
    assert "(proposed by test-model); its program is fitness.py in the run" in exported.stdout


def test_the_default_goal_answer_scores_by_the_spec_fitness_and_the_run_records_it(server, tmp_path):
    answer_fitness_with(server, DEFAULT)
    result = _cli(server, "run", "balance the pole for as long as you can", "--yes", *_llm_args(server, tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(server.chats_for("fitness")) == 1
    assert "reads the words as cartpole's default goal" in result.stdout
    (run_dir,) = tmp_path.iterdir()
    assert not (run_dir / "fitness.py").exists()
    proposed = json.loads((run_dir / "run.json").read_text())["task"]["proposed"]
    assert proposed["origin"] == "default goal" and proposed["source"] is None
    assert "CartPole's own goal" in proposed["definition"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["fitness"] == "cartpole:balance"
    assert all(0.0 < value <= 500.0 for value in _scores(run_dir)), "the env's own return scored the candidates"


def test_without_a_terminal_and_without_yes_the_run_stops_before_asking_anything(server, tmp_path):
    result = _cli(server, "run", WORDS, *_llm_args(server, tmp_path))
    assert result.returncode == 2
    assert "--yes" in result.stderr and "--fitness" in result.stderr and "Traceback" not in result.stderr
    assert server.chats == [], "nothing was spent"
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_three_refusals_end_with_what_to_pass_instead(server, tmp_path):
    answer_fitness_with(server, CONSTANT, CONSTANT, "I would measure how far left the cart is.")
    result = _cli(server, "run", WORDS, "--yes", *_llm_args(server, tmp_path))
    assert result.returncode == 2, result.stdout[-2000:]
    assert "no fitness was agreed on after 3 proposals" in result.stderr
    assert "--fitness FILE.py:FUNCTION" in result.stderr and "--task NAME" in result.stderr
    assert "[no_code]" in result.stderr, "the last reason is named"
    assert len(server.chats_for("fitness")) == 3 and not server.chats_for("propose")


@pytest.mark.slow
def test_a_rejection_reason_reaches_the_llm_and_edits_from_a_file_or_the_editor_are_checked_then_saved(server, tmp_path):
    answer_fitness_with(server, LEFT, LEFT.replace("-0.5", "-1.0"))
    constant_edit = tmp_path / "constant.py"
    constant_edit.write_text("def fitness(episode):\n    return 2.0\n")
    good_edit = tmp_path / "mine.py"
    mine = LEFT_PROGRAM.replace("-0.5", "-0.8").replace("SOLVED = 1200.0", "SOLVED = 1100.0")
    good_edit.write_text(mine)
    out = tmp_path / "runs"
    editor = dict(_env(server), EDITOR=f"cp {good_edit}")  # "saves" the person's program over the temporary copy
    term = Terminal([sys.executable, "-m", "rewardsmith.cli", "run", WORDS, *_llm_args(server, out)], tmp_path,
                    editor)
    term.expect(r"r REASON")
    reason = "the cart must stay left of -1 m, not -0.5 m"
    term.send(f"r {reason}")
    term.expect(r"proposed fitness \(attempt 2\)[\s\S]*r REASON")
    assert reason in last_user_text(server.chats_for("fitness")[1])
    term.send(f"e {constant_edit}")
    term.expect(r"your edit was refused: \[constant_fitness\][\s\S]*r REASON")
    term.send("e")
    term.expect(r"fitness: edited by the person")
    term.expect(r"exported: ")  # reading the output to the end lets the run finish
    assert term.close() == 0
    assert len(server.chats_for("fitness")) == 2, "edits are checked here, not sent to the LLM"
    (run_dir,) = out.iterdir()
    assert (run_dir / "fitness.py").read_text().endswith(mine)
    proposed = json.loads((run_dir / "run.json").read_text())["task"]["proposed"]
    assert proposed["origin"] == "edited by the person (from test-model's proposal)" and proposed["solved"] == 1100.0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["fitness"] == "edited fitness (fitness.py)"
    assert all(value >= 1000.0 for value in _scores(run_dir))


# ------------------------------------------------------------------------------------ the parts


def test_a_reply_is_read_as_a_program_with_its_definition_the_default_goal_or_a_refusal():
    offer = read_reply(f"<think>maybe DEFAULT GOAL?</think>\n{LEFT}", "stop")
    assert offer.refusal is None and not offer.default_goal and offer.source == LEFT_PROGRAM
    assert offer.definition.startswith("A successful episode") and offer.definition.endswith("adds a little.")
    default = read_reply(DEFAULT, "stop")
    assert default.default_goal and default.definition.startswith("The words ask the pole")
    undefined = read_reply(f"```python\n{LEFT_PROGRAM}```\n", "stop")
    assert undefined.refusal is not None and "[no_definition]" in undefined.refusal
    reward = read_reply(f"DEFINITION: upright.\n\n```python\n{GOOD_PROGRAM}\n```", "stop")
    assert reward.refusal is not None and "[no_fitness]" in reward.refusal and "fitness(episode)" in reward.refusal
    cut = read_reply(LEFT[: LEFT.index("return")], "length")
    assert cut.refusal is not None and "[truncated]" in cut.refusal


@pytest.fixture(scope="module")
def cartpole_spec():
    return load_spec("cartpole")


def test_the_critic_refuses_what_cannot_score_and_accepts_what_reads_the_state(cartpole_spec):
    task = cartpole_spec.default_task
    accepted = check_fitness(LEFT_PROGRAM, cartpole_spec, task)
    assert accepted.accepted and accepted.solved == 1200.0
    assert accepted.held is not None and accepted.held[1] > accepted.held[0], "a cart held far left scores higher"
    labels = [label for label, _ in accepted.values]
    assert labels == ["random actions", "always action 0", "always action 1"]
    cases = {
        "def fitness(episode):\n    return 1.0\n": "constant_fitness",
        "def fitness(episode):\n    return float(episode.obs.cart_position[499])\n": "runtime_error",
        "def fitness(episode):\n    return episode.obs.cart_position\n": "bad_return",
        "def fitness(episode):\n    return episode.obs.cart_pos.sum()\n": "unknown_field",
        "def fitness(episode):\n    return episode.reward_total\n": "unknown_field",
        "SOLVED = 'high'\ndef fitness(episode):\n    return len(episode)\n": "bad_solved",
        "import os\ndef fitness(episode):\n    return len(os.listdir('.'))\n": "forbidden_import",
        "def fitness(episode):\n    while True:\n        pass\n": "timeout",
        "def score(episode):\n    return len(episode)\n": "no_fitness",
        "def fitness(episode):\n    return float('nan')\n": "non_finite",
    }
    for source, code in cases.items():
        verdict = check_fitness(source, cartpole_spec, task)
        assert not verdict.accepted and code in {i.code for i in verdict.errors}, (source, verdict.explain())


def test_a_proposed_fitness_resolves_to_a_sandboxed_callable_that_pickles(cartpole_spec, tmp_path):
    marker = tmp_path / "imported"
    source = f"def fitness(episode):\n    return open({str(marker)!r}, 'w') and 1.0\n"
    ref = TaskRef("cartpole", WORDS, proposed=ProposedFitness("proposed by m", "left", source))
    resolved = TaskRef.from_dict(json.loads(json.dumps(ref.to_dict()))).resolve()
    assert resolved.fitness_label == "proposed fitness (fitness.py)" and not resolved.scored_on_default
    assert resolved.solved == float("inf") and resolved.fitness_doc == "left"
    episodes, _ = record_episodes(lambda batch: np.zeros(len(batch), dtype=np.int64), cartpole_spec,
                                  cartpole_spec.default_task, 1, 0)
    fitness = pickle.loads(pickle.dumps(resolved.fitness))
    assert isinstance(fitness, SandboxedFitness)
    with pytest.raises(FitnessProgramError, match="open"):
        fitness(episodes[0])
    assert not marker.exists(), "the program ran in the sandbox, not on the host"
    good = SandboxedFitness(LEFT_PROGRAM, cartpole_spec.field_layout)
    assert good(episodes[0]) == pytest.approx(1000.0 + 0.001 * len(episodes[0]))
    good.close()


def test_an_edited_fitness_is_recorded_as_such_and_older_run_json_still_says_so():
    edited = ProposedFitness("edited by the person (from m's proposal)", "left", LEFT_PROGRAM, 1200.0, edited=True)
    saved = TaskRef("cartpole", WORDS, proposed=edited).to_dict()
    assert saved["proposed"]["edited"] is True
    assert TaskRef.from_dict(json.loads(json.dumps(saved))).proposed == edited
    older = {key: value for key, value in saved["proposed"].items() if key != "edited"}  # before `edited` was kept
    assert ProposedFitness.from_dict(older).edited
    assert not ProposedFitness.from_dict({**older, "origin": "proposed by m"}).edited
    label = TaskRef.from_dict({**saved, "proposed": older}).resolve().fitness_label
    assert label == "edited fitness (fitness.py)"


def test_fitness_py_keeps_untrusted_words_inside_its_comments():
    words = "left\n\nimport os  # \x1b[2J and more\rcut"
    text = fitness_file_text(ProposedFitness("proposed by m\nx = 1", words, LEFT_PROGRAM, 1200.0), "go\nleft")
    header = text[: text.index(LEFT_PROGRAM)]
    assert all(line.startswith("#") for line in header.splitlines()) and "\x1b" not in header and "\r" not in header
    assert text.endswith(LEFT_PROGRAM) and "solved at a mean fitness of 1200" in header


def test_evaluate_refuses_a_run_that_agreed_on_no_fitness_program(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ref = TaskRef("cartpole", "balance", proposed=ProposedFitness("default goal", "the pole stays up"))
    (run_dir / "run.json").write_text(json.dumps({"task": ref.to_dict()}))
    with pytest.raises(UsageError, match="not by a fitness agreed on"):
        run_fitness(run_dir)
    assert run_fitness(tmp_path / "my_fitness.py") is None


REWARD_PROGRAM = """\
def compute_reward(obs, action, next_obs, info):
    upright = 1.0 - abs(next_obs.pole_angle)
    return upright, {"upright": upright}
"""


def test_a_fitness_worker_scores_only_fitness_programs_and_a_reward_worker_only_rewards(cartpole_spec):
    from rewardsmith.critic import probe_transitions
    from rewardsmith.sandbox import RewardCallError, RewardSandbox
    from rewardsmith.sandbox.fitness import FitnessSandbox

    episodes, _ = record_episodes(lambda batch: np.ones(len(batch), dtype=np.int64), cartpole_spec,
                                  cartpole_spec.default_task, 1, 0)
    with FitnessSandbox(cartpole_spec.field_layout) as box:
        refused = box.load(REWARD_PROGRAM)
        assert not refused.ok and [i.code for i in refused.issues] == ["no_fitness"]
        assert box.load(LEFT_PROGRAM).ok
        assert box.score(episodes[0]) == pytest.approx(1000.0 + 0.001 * len(episodes[0]))
        with pytest.raises(RewardCallError, match="no program is loaded"):
            box.call(probe_transitions(cartpole_spec, cartpole_spec.default_task, 4))
    with RewardSandbox(cartpole_spec.field_layout) as box:
        refused = box.load(LEFT_PROGRAM)
        assert not refused.ok and "no_compute_reward" in [i.code for i in refused.issues]
        assert box.load(REWARD_PROGRAM).ok


def test_a_fitness_of_continuous_actions_sees_each_constant_action_apart():
    spec = load_spec("pendulum")
    effort = "import numpy as np\n\ndef fitness(episode):\n    return -float(np.sum(episode.actions ** 2))\n"
    verdict = check_fitness(effort, spec, spec.default_task)
    assert verdict.accepted, verdict.explain()
    values = dict(verdict.values)
    assert values["always the middle action"] == 0.0 > values["always the lowest action"]
    assert values["always the lowest action"] == pytest.approx(values["always the highest action"])
