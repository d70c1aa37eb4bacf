"""Probing a fitness: the prober finds what raises known fitness functions, and the built-in designer writes
shaping terms from it (with comments naming the probe result) when a task's own hints are hidden."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

from rewardsmith.critic import Critic
from rewardsmith.designer import BuiltinDesigner, DesignContext
from rewardsmith.designer.probe import probe_fitness
from rewardsmith.designer.probe_terms import compose_terms
from rewardsmith.spec import ShapingHint, TerminationCause, load_spec
from rewardsmith.task import ResolvedTask, TaskRef


def _task(env: str, task: str | None = None):
    spec = load_spec(env)
    return spec, spec.task(task)


def _hidden(env: str, task: str, fitness=None) -> ResolvedTask:
    """A bundled task with its own hints and description hidden, as a user with only a fitness would pose it."""
    resolved = TaskRef(env, "a neutral sentence", task=task).resolve()
    resolved = replace(resolved, task_spec=replace(resolved.task_spec, hints=(), description="a neutral sentence"))
    return replace(resolved, fitness=fitness) if fitness is not None else resolved


def _wrapped(a: float, b: float) -> float:
    return abs(math.remainder(a - b, 2 * math.pi))


# ------------------------------------------------------------------------------ the bundled tasks' fitnesses


def test_finds_the_cart_target_of_hold_right():
    spec, task = _task("cartpole", "hold-right")
    probe = probe_fitness(task.fitness, spec, task, seed=0)
    (target,) = probe.targets
    assert target.label == "cart_position" and not target.angle
    assert abs(target.value - 1.0) < 0.1  # the band is 1.0 ± 0.25
    assert 0.1 < target.scale < 0.4
    assert target.peak > target.floor
    assert probe.endings is not None and probe.endings.survival > 0  # every step in the band counts
    assert probe.action_cost is None  # discrete actions: no magnitude to cost
    assert probe.calls <= 400


def test_finds_the_tilted_angle_of_hold_tilted_as_one_angle_of_the_cos_sin_pair():
    spec, task = _task("pendulum", "hold-tilted")
    probe = probe_fitness(task.fitness, spec, task, seed=0)
    (target,) = probe.targets
    assert target.label == "theta" and target.angle
    assert _wrapped(target.value, math.pi / 12) < 0.05
    assert target.scale < 0.15  # the band is ± 0.1 rad
    assert "math.atan2(next_obs.sin_theta, next_obs.cos_theta)" in target.expr


def _bonus(hint: ShapingHint, spec, theta1: float, theta2: float) -> float:
    """An error term's exp bonus at the acrobot state with these link angles, at rest."""
    from rewardsmith.episode import NamedValues

    obs = NamedValues(spec.field_layout, [math.cos(theta1), math.sin(theta1), math.cos(theta2), math.sin(theta2), 0, 0])
    return math.exp(-eval(hint.expr, {"math": math}, {"next_obs": obs}) / hint.scale)


def test_finds_the_coupled_links_of_keep_above():
    """The tip's height needs both links: the first pointing up, then (swept from there) the second in line."""
    spec, task = _task("acrobot", "keep-above")
    probe = probe_fitness(task.fitness, spec, task, seed=0)
    by_label = {t.label: t for t in probe.targets}
    assert set(by_label) == {"theta1", "theta2"}
    assert _wrapped(by_label["theta1"].value, math.pi) < 0.2
    assert _wrapped(by_label["theta2"].value, 0.0) < 0.3
    assert not by_label["theta1"].conditional and by_label["theta2"].conditional
    terms, notes = compose_terms(probe, (), spec, task)
    names = {t.name for t in terms}
    # in line while hanging is not what the fitness wants: the second link's bonus pays only near the first's target
    assert {"near_theta1", "toward_theta1", "near_theta2"} <= names and "toward_theta2" not in names
    second = next(t for t in terms if t.name == "near_theta2")
    assert "next_obs.sin_theta1" in second.expr
    assert "once the other targets are met" in notes["near_theta2"] and "only near the other targets" in notes["near_theta2"]
    hanging, up = _bonus(second, spec, 0.0, 0.0), _bonus(second, spec, math.pi, 0.0)
    assert hanging < 0.1 * up  # links in line: next to nothing while hanging, the full bonus pointing up
    assert all("- -" not in t.expr for t in terms)  # a negative target reads "+ 3.13", not "- -3.13"


def test_finds_that_race_to_flag_wants_an_early_end():
    spec, task = _task("mountaincar-continuous", "race-to-flag")
    probe = probe_fitness(task.fitness, spec, task, seed=0)
    assert not probe.targets  # the fitness reads no observation ...
    assert all(m.ending for m in probe.monotone)  # ... only where the episode ends (the next test)
    assert probe.endings.hurry > 0  # a shorter ended episode scores higher
    assert probe.endings.end_gain > 0  # ending beats running into the time limit
    assert probe.endings.survival == 0



def test_race_to_flag_finds_where_the_env_ends_an_episode_and_pulls_there_without_paying_to_linger():
    spec, task = _task("mountaincar-continuous", "race-to-flag")
    probe = probe_fitness(task.fitness, spec, task, seed=0)
    (region,) = probe.monotone  # not a field the fitness reads: where the episode it wants to end, ends
    assert region.ending == "reached_goal" and region.label == "position" and region.direction == 1
    assert 0.45 <= region.threshold < 0.452  # the flag, narrowed past the coarse sweep's grid
    assert region.rise == probe.endings.end_gain
    (momentum,) = probe.momentum  # random play never got near the flag; velocity drives position
    assert momentum.label == "position" and momentum.driver == "velocity"
    terms, notes = compose_terms(probe, (), spec, task)
    by_name = {t.name: t for t in terms}
    assert "more_position" not in by_name and "past_position" not in by_name
    assert "(reached_goal) once position >= 0.45" in notes["reach_position"]
    assert by_name["reach_position"].progress and by_name["momentum_velocity"].progress  # paid for getting there
    assert not by_name["clock"].progress and not by_name["ended"].progress
    assert "paid as progress" in notes["momentum_velocity"]


def test_where_ending_sooner_pays_the_composed_state_terms_pay_for_progress_and_never_for_lingering():
    resolved = _hidden("mountaincar-continuous", "race-to-flag")
    first = BuiltinDesigner().propose(DesignContext(resolved, 0, 1, 0, [], None))[0].source
    namespace: dict = {}
    exec(compile(first, "<composed>", "exec"), namespace)  # noqa: S102 - the designer's own program
    reward = namespace["compute_reward"]
    info = {"terminated": False, "truncated": False, "env_reward": 0.0}

    def state(position: float, velocity: float) -> SimpleNamespace:
        return SimpleNamespace(position=position, velocity=velocity)

    state_terms = ("reach_position", "momentum_velocity")
    total, still = reward(state(0.4, 0.05), [1.0], state(0.4, 0.05), info)  # just short of the flag, at speed
    assert all(still[name] == 0.0 for name in state_terms)
    assert total < 0  # lingering costs the clock and earns nothing back
    _, onward = reward(state(0.3, 0.04), [1.0], state(0.34, 0.05), info)  # nearer the flag and faster
    assert all(onward[name] > 0 for name in state_terms)
    # along any path the state terms add up to the change from its first state to its last: a loop earns nothing
    rng = np.random.default_rng(0)
    path = [state(float(p), float(v)) for p, v in zip(rng.uniform(-1.2, 0.5, 50), rng.uniform(-0.07, 0.07, 50))]
    path.append(path[0])
    paid = sum(reward(a, [0.0], b, info)[1][name] for a, b in zip(path, path[1:]) for name in state_terms)
    assert abs(paid) < 1e-9

def test_finds_that_left_hill_wants_the_car_low_on_the_track():
    spec, task = _task("mountaincar", "left-hill")
    probe = probe_fitness(task.fitness, spec, task, seed=0)
    (finding,) = probe.monotone
    assert finding.label == "position" and finding.direction == -1
    assert abs(finding.threshold - (-0.9)) < 0.1


# ------------------------------------------------------------------------------ hand-made fitnesses


def _pole_at(episode) -> float:
    """Minus the mean distance of the pole from 0.1 rad."""
    return -float(np.mean(np.abs(episode.obs.pole_angle[1:] - 0.1)))


def _quiet(episode) -> float:
    """Steps survived, minus the torque spent."""
    return float(len(episode)) - float(np.sum(np.square(episode.actions)))


def _quick(episode) -> float:
    """The sooner an episode ends the better; running into the time limit is worst."""
    return -float(len(episode)) if episode.terminated else -1000.0


def _crashes(episode) -> float:
    raise RuntimeError("broken fitness")


def test_a_target_on_one_field():
    spec, task = _task("cartpole")
    probe = probe_fitness(_pole_at, spec, task, seed=0)
    (target,) = probe.targets
    assert target.label == "pole_angle"
    assert abs(target.value - 0.1) < 0.05


def test_an_action_cost_on_a_continuous_action():
    spec, task = _task("pendulum")
    probe = probe_fitness(_quiet, spec, task, seed=0)
    assert probe.action_cost is not None
    assert probe.action_cost.drop == pytest.approx(4.0 * probe.endings.length)  # torque 2 squared, every step
    assert probe.action_cost.expr == "float(action[0]) ** 2"
    assert probe_fitness(task.fitness, spec, _task("pendulum", "hold-tilted")[1], seed=0).action_cost is None


def test_a_preference_for_ending_early_becomes_a_clock_and_an_end_bonus():
    spec, task = _task("cartpole")
    probe = probe_fitness(_quick, spec, task, seed=0)
    assert probe.endings.hurry > 0 and probe.endings.end_gain > 0
    terms, notes = compose_terms(probe, (), spec, task)
    by_name = {t.name: t for t in terms}
    assert by_name["clock"].weight < 0 and by_name["ended"].weight > 0
    assert "alive" not in by_name
    assert notes["clock"].startswith("probe: each step sooner")


def _two_sided_track(spec):
    """CartPole whose only causes of termination are running off either end of the track (one cause each)."""
    return replace(spec, terminations=(
        TerminationCause("off_left", "the cart ran off the left end", lambda o, info: o.cart_position < -2.4),
        TerminationCause("off_right", "the cart ran off the right end", lambda o, info: o.cart_position > 2.4)))


def _quick_right(episode) -> float:
    """Ending sooner pays, but only off the right end of the track."""
    ended_right = episode.terminated and episode.obs.cart_position[-1] > 0
    return -float(len(episode)) if ended_right else -1000.0


def test_of_two_places_an_episode_ends_the_fitness_picks_the_one_it_pays_for():
    spec, task = _task("cartpole")
    spec = _two_sided_track(spec)
    (region,) = probe_fitness(_quick_right, spec, task, seed=0).monotone
    assert region.ending == "off_right" and region.direction == 1 and abs(region.threshold - 2.4) < 0.01
    assert not probe_fitness(_quick, spec, task, seed=0).monotone  # pays both ends alike: it cannot say which
    assert not probe_fitness(_quick_right, _task("cartpole")[0], task, seed=0).monotone  # the spec's own
    # causes fire at both ends of a field (|cart_position|, |pole_angle|): no one side to pull toward


def test_a_crashing_fitness_finds_nothing_and_the_designer_keeps_the_spec_hints():
    spec, task = _task("cartpole", "hold-right")
    probe = probe_fitness(_crashes, spec, task, seed=0, max_calls=50)
    assert not probe.found and probe.calls <= 50 and probe.failed_calls == probe.calls
    resolved = replace(TaskRef("cartpole", "x", task="hold-right").resolve(), fitness=_crashes)
    (proposal,) = BuiltinDesigner(probe_calls=50).propose(DesignContext(resolved, 0, 1, 0, [], None))
    assert "# probe" not in proposal.source and "near_target" in proposal.source


def test_the_call_budget_holds():
    calls = []

    def counting(episode) -> float:
        calls.append(1)
        return float(np.sum(episode.obs.cart_position[1:] > 0.5))

    spec, task = _task("cartpole")
    probe = probe_fitness(counting, spec, task, seed=0, max_calls=60)
    assert len(calls) == probe.calls <= 60
    findings = [*probe.targets, *probe.monotone]
    assert findings  # even a small budget finds the one field that matters
    assert not any(f.conditional for f in findings)  # found in the first round, however early the budget ended


def test_probing_is_deterministic_for_a_seed():
    spec, task = _task("acrobot", "keep-above")
    assert probe_fitness(task.fitness, spec, task, seed=3) == probe_fitness(task.fitness, spec, task, seed=3)


# ------------------------------------------------------------------------------ the designer on hidden hints


@pytest.mark.parametrize(("env", "task", "terms", "comment"), [
    ("cartpole", "hold-right", {"near_cart_position", "toward_cart_position", "alive"},
     r"# probe: fitness peaks at cart_position ≈ (0\.9\d|1\.0)"),
    ("pendulum", "hold-tilted", {"near_theta", "toward_theta"}, r"# probe: fitness peaks at theta ≈ 0\.26"),
    ("mountaincar-continuous", "race-to-flag", {"clock", "ended", "reach_position", "momentum_velocity"},
     r"# probe: each step sooner that an episode ends"),
])
def test_hidden_hints_programs_carry_the_probed_terms_with_comments_and_pass_the_critic(env, task, terms, comment):
    resolved = _hidden(env, task)
    proposals = BuiltinDesigner().propose(DesignContext(resolved, 0, 3, 0, [], None))
    first = proposals[0].source  # the guided composition: every probed term, as composed
    assert re.search(comment, first)
    for name in terms:
        assert f"W_{name.upper()} =" in first
        assert re.search(rf"# probe: .*\n(W_{name.upper()} =)", first), name  # the comment sits on its term
    with Critic(resolved.spec, resolved.task_spec) as critic:
        for proposal in proposals:
            verdict = critic.check(proposal.source)
            assert verdict.accepted, verdict.explain()
    with Critic(resolved.spec, resolved.task_spec) as critic:
        assert terms <= set(critic.check(first).components)


def test_the_designer_is_deterministic_for_a_seed_on_hidden_hints():
    resolved = _hidden("pendulum", "hold-tilted")
    one = [p.source for p in BuiltinDesigner().propose(DesignContext(resolved, 0, 3, 0, [], None))]
    again = [p.source for p in BuiltinDesigner().propose(DesignContext(resolved, 0, 3, 0, [], None))]
    other = [p.source for p in BuiltinDesigner().propose(DesignContext(resolved, 0, 3, 1, [], None))]
    assert one == again and one != other


def test_spec_hints_are_kept_where_they_agree_and_dropped_where_they_contradict():
    spec, task = _task("pendulum", "hold-tilted")
    upright = ShapingHint("upright", "abs(math.atan2(next_obs.sin_theta, next_obs.cos_theta))", "error", scale=1.0)
    probe = probe_fitness(task.fitness, spec, task, seed=0)
    terms, notes = compose_terms(probe, (*task.hints, upright), spec, task)
    names = {t.name for t in terms}
    assert "upright" not in names  # its best angle, 0, is not where the fitness peaks
    assert {"tilt", "on_target"} <= names  # their best angle is the probed one
    assert notes["tilt"].startswith("probe agrees: fitness peaks at theta")
    assert "near_theta" not in names  # covered by the agreeing hints
    assert "spin" in names  # the probe says nothing about it: kept, and its comment claims nothing
    assert notes["spin"] == "spec hint: the probe found nothing for or against it"


def test_the_default_task_scored_by_the_env_return_is_not_probed():
    resolved = TaskRef("cartpole", "keep the pole upright").resolve()
    (proposal,) = BuiltinDesigner().propose(DesignContext(resolved, 0, 1, 0, [], None))
    assert "# probe" not in proposal.source
    assert "from the cartpole spec's shaping hints" in proposal.source


def test_a_users_fitness_file_is_probed(tmp_path):
    """``--fitness FILE.py:FUNCTION`` on the default task: the designer composes what the user's fitness asks."""
    path = tmp_path / "parked.py"
    path.write_text("import numpy as np\n\n\ndef parked(episode):\n"
                    "    return float(np.sum(np.abs(episode.obs.cart_position[1:] + 1.5) < 0.2))\n")
    resolved = TaskRef("cartpole", "park the cart at x = -1.5", fitness=f"{path}:parked").resolve()
    (proposal,) = BuiltinDesigner().propose(DesignContext(resolved, 0, 1, 0, [], None))
    assert re.search(r"# probe: fitness peaks at cart_position ≈ -1\.[45]", proposal.source)
    assert "W_NEAR_CART_POSITION" in proposal.source
    assert "W_CENTRED" not in proposal.source  # the default task's pull to the centre contradicts it: dropped


def test_a_hint_that_cannot_be_evaluated_on_an_observation_is_kept_without_a_claim():
    spec, task = _task("cartpole", "hold-right")
    odd = ShapingHint("odd", "abs(next_obs.cart_position - info['goal'])", "error")  # reads an info key we lack
    probe = probe_fitness(task.fitness, spec, task, seed=0)
    terms, notes = compose_terms(probe, (odd,), spec, task)
    assert "odd" in {t.name for t in terms} and notes["odd"].startswith("spec hint: the probe found nothing")
    assert "near_cart_position" in notes  # the probe's own term for the target it found is still composed


class _Endless(gym.Env):
    """A point on a line that no time limit ever stops."""

    observation_space = gym.spaces.Box(-5.0, 5.0, shape=(1,), dtype=np.float32)
    action_space = gym.spaces.Discrete(3)

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = 0.0
        return np.array([self.x], dtype=np.float32), {}

    def step(self, action):
        self.x = float(np.clip(self.x + 0.1 * (int(action) - 1), -5, 5))
        return np.array([self.x], dtype=np.float32), 0.0, False, False, {}


def test_an_env_that_never_ends_is_still_probed():
    env_id = "RewardsmithEndlessProbe-v0"
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=_Endless)
    spec = load_spec(env_id)
    field = spec.fields[0].name

    def right(episode) -> float:
        return float(np.sum(getattr(episode.obs, field)[1:] > 2.0))

    probe = probe_fitness(right, spec, spec.default_task, seed=0)
    (finding,) = probe.monotone
    assert finding.direction == 1 and abs(finding.threshold - 2.0) < 0.5
