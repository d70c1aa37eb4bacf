"""Code extraction from LLM replies: every shape a real reply takes."""

from __future__ import annotations

import ast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardsmith.designer.extract import extract_program, strip_reasoning
from tests.llm_replies import BAD, GOOD


def _defines(source: str) -> set[str]:
    tree = ast.parse(source)
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name) for a in node.names}
    return names


@pytest.mark.parametrize("style", sorted(GOOD))
def test_every_realistic_style_yields_a_parsable_program(style):
    extraction = extract_program(GOOD[style])
    assert extraction.ok, extraction.refusal
    assert "compute_reward" in _defines(extraction.source)
    assert "```" not in extraction.source and "~~~" not in extraction.source


def test_python_py_and_bare_fences():
    for info in ("python", "py", "", "Python", "python3"):
        reply = (f"Here it is.\n\n```{info}\ndef compute_reward(obs, action, next_obs, info):\n"
                 "    return 1.0, {}\n```\n")
        assert extract_program(reply).source.startswith("def compute_reward"), info


def test_several_blocks_take_the_reward_with_the_helpers_and_constants_it_uses():
    source = extract_program(GOOD["split_blocks"]).source
    assert {"math", "ANGLE_LIMIT", "TRACK_LIMIT", "bonus", "compute_reward"} <= _defines(source)
    assert "print(" not in source, "the usage example is not part of the program"
    assert source.index("ANGLE_LIMIT =") < source.index("def bonus") < source.index("def compute_reward")


def test_a_reply_that_revises_itself_gives_its_last_version():
    reply = ("First try:\n```python\ndef compute_reward(obs, action, next_obs, info):\n    return 0.0, {}\n```\n"
             "Better:\n```python\ndef compute_reward(obs, action, next_obs, info):\n"
             "    v = 1.0\n    return v, {'v': v}\n```\n")
    assert "v = 1.0" in extract_program(reply).source


def test_helpers_after_the_reward_block_and_only_those_used_are_borrowed():
    reply = ("```python\ndef compute_reward(obs, action, next_obs, info):\n    u = shaped(next_obs.pole_angle)\n"
             "    return u, {'u': u}\n```\n\nwith\n\n```python\nimport math\n\nUNUSED = 3\n\n"
             "def shaped(a):\n    return math.exp(-abs(a) / SCALE)\n\nSCALE = 0.1\n```\n")
    source = extract_program(reply).source
    assert {"shaped", "SCALE", "math"} <= _defines(source)
    assert "UNUSED" not in source


def test_helpers_defined_before_compute_reward_are_kept():
    source = extract_program(GOOD["helpers_typing"]).source
    assert {"smooth_bonus", "ANGLE_SCALE", "WEIGHTS", "Dict", "Tuple"} <= _defines(source)
    assert source.lstrip().startswith('"""Reward for balancing')


def test_unfenced_code_between_prose():
    extraction = extract_program(GOOD["unfenced"])
    assert extraction.ok
    assert extraction.source.startswith("import math")
    assert "This pays most" not in extraction.source


def test_reasoning_drafts_are_ignored():
    extraction = extract_program(GOOD["think_section"])
    assert "-next_obs.pole_angle ** 2" not in extraction.source
    assert "math.cos(next_obs.pole_angle)" in extraction.source
    assert extraction.note.startswith("I combine")


def test_a_closing_think_tag_alone_marks_the_reasoning():
    reply = ("draft:\n```python\ndef compute_reward(obs, action, next_obs, info):\n    return 0, {}\n```\n</think>\n"
             "```python\ndef compute_reward(obs, action, next_obs, info):\n    return 2.0, {'k': 2.0}\n```")
    assert "2.0" in extract_program(reply).source


def test_code_only_inside_the_reasoning_is_refused_with_the_reason():
    reply = ("<think>\n```python\ndef compute_reward(obs, action, next_obs, info):\n    return 1.0, {}\n```\n"
             "</think>\nDone.")
    extraction = extract_program(reply)
    assert extraction.refusal is not None and extraction.refusal.code == "no_code"
    assert "reasoning" in extraction.refusal.message


def test_reasoning_cut_off_by_the_token_limit_is_truncated():
    extraction = extract_program("<think>\nLet me think about the pole for a long", finish_reason="length")
    assert extraction.refusal.code == "truncated"
    assert "token limit" in extraction.refusal.message


@pytest.mark.parametrize("finish", ["length", None])
def test_an_unterminated_fence_is_refused_as_truncated(finish):
    reply, _, _ = BAD["truncated"]
    extraction = extract_program(reply, finish_reason=finish)
    assert extraction.refusal is not None and extraction.refusal.code == "truncated"
    assert "def compute_reward" in extraction.source, "the partial code is kept for the repair prompt"


def test_a_missing_closing_fence_on_a_finished_reply_is_accepted():
    reply = "```python\ndef compute_reward(obs, action, next_obs, info):\n    return 1.0, {'a': 1.0}\n"
    assert extract_program(reply, finish_reason="stop").ok


def test_a_complete_block_before_the_cut_is_kept():
    reply = ("```python\ndef compute_reward(obs, action, next_obs, info):\n    return 1.0, {'a': 1.0}\n```\n"
             "This reward works because the pole")
    assert extract_program(reply, finish_reason="length").ok


def test_unfenced_code_cut_off_is_truncated():
    reply = "import math\n\ndef compute_reward(obs, action, next_obs, info):\n    upright = math.cos(next_obs.pole_"
    assert extract_program(reply, finish_reason="length").refusal.code == "truncated"


def test_prose_without_code_is_refused_clearly():
    reply, _, _ = BAD["prose_only"]
    extraction = extract_program(reply)
    assert extraction.refusal.code == "no_code"
    assert "```python" in extraction.refusal.message and "compute_reward" in extraction.refusal.message
    assert extract_program(None).refusal.code == "no_code"
    assert extract_program("").refusal.code == "no_code"


def test_code_without_compute_reward_names_what_it_defines():
    reply = "```python\ndef reward_fn(obs, action):\n    return 1.0\n```"
    extraction = extract_program(reply)
    assert extraction.refusal.code == "no_compute_reward"
    assert "reward_fn" in extraction.refusal.message


def test_examples_and_main_guards_are_dropped():
    source = extract_program(GOOD["tilde_main_guard"]).source
    assert "__main__" not in source and "print" not in source and "class Obs" not in source
    assert "def upright_bonus" in source


def test_missing_numpy_and_math_imports_are_added():
    reply = ("```python\ndef compute_reward(obs, action, next_obs, info):\n"
             "    a = float(np.cos(next_obs.pole_angle)) + math.pi * 0\n    return a, {'a': a}\n```")
    source = extract_program(reply).source
    assert "import numpy as np" in source and "import math" in source
    ast.parse(source)


def test_indented_fences_in_a_list():
    reply = ("1. The reward:\n\n    ```python\n    def compute_reward(obs, action, next_obs, info):\n"
             "        return 1.0, {'a': 1.0}\n    ```\n")
    assert extract_program(reply).source.startswith("def compute_reward")


def test_note_is_the_first_sentence_of_the_explanation():
    assert extract_program(GOOD["python_fence"]).note == ("I reward the pole for staying upright and the cart for "
                                                          "staying near the centre, with a small bonus for every "
                                                          "step survived.")


def test_strip_reasoning():
    assert strip_reasoning("<think>a</think>b<thinking>c</thinking>d").split() == ["b", "d"]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("`~ \n\tdefcompute_rward():<>/think.pyimport=,'\"#")), max_size=300),
       st.sampled_from(["stop", "length", None]))
def test_extraction_never_raises(text, finish):
    extraction = extract_program(text, finish)
    assert extraction.ok or extraction.refusal.message
