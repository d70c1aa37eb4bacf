"""The built-in designer: deterministic, always-valid programs, steered by analysis and feedback."""

from __future__ import annotations

import re

import pytest

from rewardsmith.candidate import Candidate
from rewardsmith.critic import Critic
from rewardsmith.designer import BuiltinDesigner, DesignContext
from rewardsmith.results import TrainingResult
from rewardsmith.task import TaskRef


@pytest.fixture(scope="module")
def hold_right():
    return TaskRef("cartpole", "hold the cart at x=1", task="hold-right").resolve()


def _ctx(task, iteration=0, history=(), parent=None, feedback=(), samples=4, seed=0):
    return DesignContext(task, iteration, samples, seed, list(history), parent, list(feedback))


def test_proposals_are_deterministic_for_a_seed_and_differ_across_seeds(hold_right):
    one = [p.source for p in BuiltinDesigner().propose(_ctx(hold_right))]
    again = [p.source for p in BuiltinDesigner().propose(_ctx(hold_right))]
    other = [p.source for p in BuiltinDesigner().propose(_ctx(hold_right, seed=1))]
    assert one == again
    assert one != other
    assert len(set(one)) == 4  # no duplicates within an iteration


def test_every_proposal_passes_the_critic(hold_right):
    proposals = BuiltinDesigner().propose(_ctx(hold_right, samples=6))
    with Critic(hold_right.spec, hold_right.task_spec) as critic:
        for proposal in proposals:
            verdict = critic.check(proposal.source)
            assert verdict.accepted, verdict.explain()
            assert set(verdict.components) <= {h.name for h in hold_right.task_spec.hints}


def _scored(task, proposal, cid, fitness, analysis=None):
    cand = Candidate(cid, 0, int(cid[-1]), proposal.source, proposal.origin, status="scored",
                     result=TrainingResult("scored", fitness), analysis=analysis)
    return cand


def test_children_descend_from_the_parent_and_follow_the_analysis(hold_right):
    designer = BuiltinDesigner()
    first = designer.propose(_ctx(hold_right, samples=2))
    analysis = {"components": {"upright": {"flags": ["dominant"]}, "settle": {"flags": ["against"]},
                               "near_target": {"flags": ["flat"]}}}
    parent = _scored(hold_right, first[0], "00-00", 100.0, analysis)
    other = _scored(hold_right, first[1], "00-01", 50.0)
    children = designer.propose(_ctx(hold_right, 1, [parent, other], parent))
    guided = children[0]
    assert guided.origin["parent"] == "00-00"
    genome, before = guided.origin["genome"], parent.origin["genome"]
    assert genome["upright"]["weight"] == pytest.approx(before["upright"]["weight"] * 0.5)
    assert genome["settle"]["on"] is False  # optional and against the task: dropped
    assert genome["near_target"]["temp"] == pytest.approx(before["near_target"]["temp"] * 0.5)
    assert "halved dominant upright" in guided.origin["note"]
    assert children[1].origin["note"].startswith("crossover")


def test_human_feedback_names_components_to_change(hold_right):
    designer = BuiltinDesigner()
    first = designer.propose(_ctx(hold_right, samples=1))
    parent = _scored(hold_right, first[0], "00-00", 10.0)
    feedback = ["More near target please. The alive bonus should go: remove alive.", "less upright"]
    child = designer.propose(_ctx(hold_right, 1, [parent], parent, feedback, samples=1))[0]
    genome, before = child.origin["genome"], parent.origin["genome"]
    assert genome["near_target"]["weight"] == pytest.approx(before["near_target"]["weight"] * 2)
    assert genome["alive"]["on"] is False
    assert genome["upright"]["weight"] == pytest.approx(before["upright"]["weight"] * 0.5)
    assert "feedback: doubled near_target" in child.origin["note"]


def test_the_designer_never_repairs(hold_right):
    assert BuiltinDesigner().repair(_ctx(hold_right), "x", "problem", 1) is None


def _claims_hold(note: str, child: dict, parent: dict) -> None:
    """Every "dropped X" / "restored X" in a note is true of the child; every term switched on or off is named."""
    for name in re.findall(r"dropped (\w+)", note):
        assert child[name]["on"] is False, (note, name)
    for name in re.findall(r"restored (\w+)", note):
        assert child[name]["on"] is True and parent[name]["on"] is False, (note, name)
    for name in child:
        if child[name]["on"] != parent[name]["on"]:
            assert name in note, (note, name)


@pytest.mark.parametrize("seed", range(6))
def test_notes_describe_the_actual_difference_from_the_parent(hold_right, seed):
    """A guided child that was already tried is mutated again; its note must follow the new code, not the plan."""
    designer = BuiltinDesigner()
    first = designer.propose(_ctx(hold_right, samples=2, seed=seed))
    analysis = {"components": {"settle": {"flags": ["against"]}, "upright": {"flags": ["dominant"]}}}
    parent = _scored(hold_right, first[0], "00-00", 100.0, analysis)
    other = _scored(hold_right, first[1], "00-01", 50.0)
    planned = designer.propose(_ctx(hold_right, 1, [parent, other], parent, samples=1, seed=seed))[0]
    assert "dropped settle (against)" in planned.origin["note"]
    tried = _scored(hold_right, planned, "00-02", 10.0)
    children = designer.propose(_ctx(hold_right, 1, [parent, other, tried], parent, samples=4, seed=seed))
    before = parent.origin["genome"]
    for child in children:
        genome, note = child.origin["genome"], child.origin["note"]
        assert child.source != planned.source
        _claims_hold(note, genome, before)
        for name, gene in genome.items():
            assert (f'"{name}": {name}' in child.source) is gene["on"], (name, child.source)


# ------------------------------------------------------------------- hints that do not fit an env


def test_a_hint_for_discrete_actions_is_skipped_on_the_continuous_variant():
    """LunarLander with continuous=True: the main-engine hint (``action == 2``) would fail every candidate."""
    from dataclasses import replace

    from rewardsmith.spec import load_spec, usable_hints

    discrete = TaskRef("lunarlander", "land", task="land").resolve()
    continuous_spec = replace(discrete.spec, make_kwargs={"continuous": True})
    continuous = replace(discrete, spec=continuous_spec)
    assert "main_engine" in {h.name for h in usable_hints(discrete.spec, discrete.task_spec)}
    hint = next(h for h in continuous_spec.hints if h.name == "main_engine")
    assert hint.misfit(continuous_spec) == "needs discrete actions"
    assert "main_engine" not in {h.name for h in usable_hints(continuous_spec, continuous.task_spec)}
    proposals = BuiltinDesigner().propose(_ctx(continuous, samples=4))
    with Critic(continuous_spec, continuous.task_spec) as critic:
        for proposal in proposals:
            verdict = critic.check(proposal.source)
            assert verdict.accepted, verdict.explain()
            assert "main_engine" not in verdict.components
    assert load_spec("lunarlander").make_kwargs == {}  # the bundled spec itself is untouched


def test_a_hint_reading_a_field_the_env_lacks_is_skipped(hold_right):
    from dataclasses import replace

    from rewardsmith.spec import ShapingHint, env_reward_fitness, usable_hints

    lacking = ShapingHint("fuel", "next_obs.fuel_left", "gain", optional=True)
    declared = ShapingHint("still", "abs(next_obs.cart_velocity)", "error", requires=("pole_tip_height",))
    task = replace(hold_right.task_spec, hints=hold_right.task_spec.hints + (lacking, declared))
    assert lacking.misfit(hold_right.spec) == "reads field 'fuel_left', which cartpole does not have"
    before = ShapingHint("moved", "next_obs.cart_position - obs.cart_position", "gain", progress=True)
    assert before.misfit(hold_right.spec) == "a progress term needs an expression of next_obs alone"
    assert replace(before, expr="next_obs.cart_position").misfit(hold_right.spec) is None
    assert "pole_tip_height" in declared.misfit(hold_right.spec)
    names = {h.name for h in usable_hints(hold_right.spec, task)}
    assert names == {h.name for h in hold_right.task_spec.hints}
    # scored by the env's own return (nothing to probe): with no hint that fits, the env's own reward is composed
    only_misfits = replace(hold_right, task_spec=replace(task, hints=(lacking,)), spec=replace(hold_right.spec, hints=()),
                           fitness=env_reward_fitness)
    proposals = BuiltinDesigner().propose(_ctx(only_misfits, samples=2))
    with Critic(only_misfits.spec, only_misfits.task_spec) as critic:
        for proposal in proposals:  # nothing fits: the env's own reward is composed instead
            verdict = critic.check(proposal.source)
            assert verdict.accepted, verdict.explain()
            assert set(verdict.components) == {"env_reward"}
    # scored by the task's own fitness, the designer composes what probing it found instead (tests/test_probe.py)
    probed = replace(only_misfits, fitness=hold_right.fitness)
    (proposal,) = BuiltinDesigner().propose(_ctx(probed, samples=1))
    assert "near_cart_position" in proposal.source and "env_reward" not in proposal.source


@pytest.mark.parametrize("sentence", ['hold at x=1 \x1b[2J\x07 now', 'say """ then "quote"', r"C:\Users\new \N{x} \x",
                                      "line one\rline two\u202e"])
def test_a_sentence_with_quotes_backslashes_or_control_characters_still_gives_programs_the_critic_accepts(sentence):
    task = TaskRef("cartpole", sentence, task="hold-right").resolve()
    proposals = BuiltinDesigner().propose(_ctx(task, samples=2))
    with Critic(task.spec, task.task_spec) as critic:
        for proposal in proposals:
            verdict = critic.check(proposal.source)
            assert verdict.accepted, verdict.explain()
