"""What recorded random play says beyond the probe's sweeps: the env reward's agreement with a fitness, and the
field that drives a target random play never reached; and how the built-in designer composes both."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from rewardsmith.critic import Critic
from rewardsmith.designer import BuiltinDesigner, DesignContext
from rewardsmith.designer.probe import Monotone, probe_fitness
from rewardsmith.designer.probe_play import Agreement, measure_agreement, momentum_findings
from rewardsmith.designer.probe_terms import compose_terms
from rewardsmith.episode import Episode, NamedArrays
from rewardsmith.spec import load_spec
from rewardsmith.task import TaskRef


def _task(env: str, task: str | None = None):
    spec = load_spec(env)
    return spec, spec.task(task)


def _hidden(env: str, task: str, fitness=None):
    """A bundled task with its own hints and description hidden, as a user with only a fitness would pose it."""
    resolved = TaskRef(env, "a neutral sentence", task=task).resolve()
    resolved = replace(resolved, task_spec=replace(resolved.task_spec, hints=(), description="a neutral sentence"))
    return replace(resolved, fitness=fitness) if fitness is not None else resolved


def _env_return(episode) -> float:
    return float(np.sum(episode.env_rewards))


def _minus_env_return(episode) -> float:
    return -float(np.sum(episode.env_rewards))


# ------------------------------------------------------------------------------ agreement


def test_a_fitness_that_is_the_env_return_agrees_and_its_negation_disagrees():
    spec, task = _task("pendulum")
    agrees = probe_fitness(_env_return, spec, task, seed=0).agreement
    disagrees = probe_fitness(_minus_env_return, spec, task, seed=0).agreement
    assert agrees.r > 0.99 and agrees.verdict == "agrees" and agrees.stretches >= 20
    assert disagrees.r < -0.99 and disagrees.verdict == "disagrees"
    assert agrees.scale > 1.0  # pendulum's reward is several units per step in random play


def test_agreement_is_unmeasured_where_random_play_never_moves_the_fitness():
    spec, task = _task("cartpole", "hold-right")  # random play never holds the cart at x = 1: fitness 0 throughout
    agreement = probe_fitness(task.fitness, spec, task, seed=0).agreement
    assert agreement.r is None and agreement.verdict == "unsure"
    assert "unmeasured" in agreement.describe()



def _race_with_fuel(episode) -> float:
    """race-to-flag's fitness, less the fuel the env's own reward charges: actions now cost it too."""
    race = -float(len(episode)) if episode.terminated else -999.0
    return race - 0.1 * float(np.sum(np.square(episode.actions)))


def test_an_env_reward_that_charges_for_actions_the_fitness_does_not_charge_for_disagrees():
    spec, task = _task("mountaincar-continuous", "race-to-flag")
    agreement = probe_fitness(task.fitness, spec, task, seed=0).agreement
    assert agreement.r is None  # random play never reached the flag: the fitness never moved ...
    assert agreement.action_charge < -0.9 and agreement.verdict == "disagrees"  # ... but the fuel charge shows
    assert "full-scale actions cost the fitness nothing" in agreement.describe()
    terms, _ = compose_terms(probe_fitness(task.fitness, spec, task, seed=0), (), spec, task)
    assert "env_reward" not in {t.name for t in terms}
    charged = probe_fitness(_race_with_fuel, spec, task, seed=0)
    assert charged.action_cost is not None and charged.agreement.action_charge is None  # the fitness charges too
    spec, task = _task("pendulum", "hold-tilted")  # its reward is mostly the angle, not the torque
    assert probe_fitness(task.fitness, spec, task, seed=0).agreement.action_charge is None

def test_agreement_stretches_are_cut_from_prefixes_ended_by_the_time_limit():
    spec, task = _task("pendulum")
    seen: list[tuple[int, bool, bool]] = []

    def recording(episode) -> float:
        seen.append((len(episode), episode.terminated, episode.truncated))
        return _env_return(episode)

    rows = np.zeros((41, len(spec.field_layout)))
    episode = Episode(NamedArrays(spec.field_layout, rows), np.zeros((40, 1)), np.arange(40, dtype=float), False, True)
    agreement = measure_agreement(recording, [episode], cuts=5)
    assert [s[0] for s in seen] == [8, 16, 24, 32, 40]
    assert all(s[1:] == (False, True) for s in seen)
    assert agreement.stretches == 4 and agreement.r > 0.99  # the gain per step is the mean reward itself


def test_the_env_reward_term_follows_the_agreement():
    spec, task = _task("pendulum")
    for fitness, expected in ((_env_return, False), (_minus_env_return, None)):
        probe = probe_fitness(fitness, spec, task, seed=0)
        terms, notes = compose_terms(probe, (), spec, task)
        env_terms = [t for t in terms if t.expr == 'info["env_reward"]']
        if expected is None:
            assert not env_terms  # it disagrees: left out
        else:
            (term,) = env_terms
            assert term.optional is expected and "r = +1.00" in notes[term.name]


def test_an_unsure_env_reward_starts_off_and_the_second_candidate_turns_it_on():
    resolved = _hidden("cartpole", "hold-right")
    first, second = BuiltinDesigner().propose(DesignContext(resolved, 0, 2, 0, [], None))
    assert "env_reward =" not in first.source
    assert 'info["env_reward"]' in second.source
    assert "# probe: agreement with the fitness unmeasured" in second.source
    assert "env_reward on" in second.origin["note"]
    with Critic(resolved.spec, resolved.task_spec) as critic:
        verdict = critic.check(second.source)
        assert verdict.accepted, verdict.explain()
        assert "env_reward" in verdict.components


def test_the_env_reward_is_not_added_where_the_specs_hints_agree_with_the_probe():
    resolved = TaskRef("cartpole", "hold the cart at x=1", task="hold-right").resolve()  # its own hints visible
    hints, _, probe = BuiltinDesigner().terms(DesignContext(resolved, 0, 2, 0, [], None))
    assert probe is not None and probe.agreement.verdict == "unsure"
    assert "env_reward" not in {h.name for h in hints}


def test_agreement_stays_within_the_call_budget():
    calls = []

    def counting(episode) -> float:
        calls.append(1)
        return _env_return(episode)

    spec, task = _task("pendulum")
    probe = probe_fitness(counting, spec, task, seed=0, max_calls=70)
    assert len(calls) == probe.calls <= 70


# ------------------------------------------------------------------------------ momentum


def _rocking(spec, velocities: np.ndarray, start: float = -0.5) -> Episode:
    """A mountain-car episode whose position integrates its velocity (x' = x + v'), run to the time limit."""
    positions = start + np.concatenate([[0.0], np.cumsum(velocities[1:])])
    rows = np.stack([positions, velocities], axis=1)
    n = len(rows) - 1
    return Episode(NamedArrays(spec.field_layout, rows), np.zeros(n, dtype=int), -np.ones(n), False, True)


def _left(spec) -> Monotone:
    index = spec.field_layout["position"].index
    return Monotone("position", "next_obs.position", -1, -1.2, 0.6, 100.0, -0.9, (index,))


def test_the_field_that_drives_an_unreached_target_is_found_from_transitions():
    spec, _ = _task("mountaincar")
    rng = np.random.default_rng(0)
    episodes = [_rocking(spec, 0.01 * np.sin(np.arange(201) / 8 + k) + 0.001 * rng.normal(size=201)) for k in range(3)]
    (found,) = momentum_findings([_left(spec)], episodes, spec)
    assert found.driver == "velocity" and found.r > 0.99
    assert found.bound == 0.07  # the field's documented bound
    assert 0.2 < found.gap < 0.4  # the closest random play came to -0.9, from about -0.5 ± 0.1


def test_no_momentum_where_nothing_drives_the_target_or_random_play_reached_it_or_was_cut_short():
    spec, _ = _task("mountaincar")
    rng = np.random.default_rng(0)
    episodes = [_rocking(spec, 0.01 * np.sin(np.arange(201) / 8 + k)) for k in range(3)]
    shuffled = [Episode(NamedArrays(spec.field_layout, np.stack([e.obs.position, rng.permutation(e.obs.velocity)], 1)),
                        e.actions, e.env_rewards, False, True) for e in episodes]
    assert momentum_findings([_left(spec)], shuffled, spec) == []  # velocity no longer goes with the change
    reached = [_rocking(spec, 0.01 * np.sin(np.arange(201) / 8 + k), start=-0.95) for k in range(3)]
    assert momentum_findings([_left(spec)], reached, spec) == []
    cut_short = [replace(e, terminated=True, truncated=False) for e in episodes]
    assert momentum_findings([_left(spec)], cut_short, spec) == []


def test_left_hill_and_keep_above_get_a_momentum_term_and_cartpole_does_not():
    for env, task, driver in (("mountaincar", "left-hill", "velocity"), ("acrobot", "keep-above", "theta1_dot")):
        resolved = _hidden(env, task)
        (proposal,) = BuiltinDesigner().propose(DesignContext(resolved, 0, 1, 0, [], None))
        assert f"momentum_{driver} = W_MOMENTUM_{driver.upper()} * (abs(next_obs.{driver}))" in proposal.source
        assert "# probe: random play never came within" in proposal.source
        assert f"{driver} drives" in proposal.source
    # hold-right's random episodes end with the pole down long before the cart could get anywhere: no evidence
    spec, task = _task("cartpole", "hold-right")
    assert probe_fitness(task.fitness, spec, task, seed=0).momentum == []


def test_a_spec_hint_that_covers_the_target_leaves_out_the_momentum_term():
    resolved = TaskRef("mountaincar", "left hill", task="left-hill").resolve()  # its swing hint is visible
    hints, _, probe = BuiltinDesigner().terms(DesignContext(resolved, 0, 1, 0, [], None))
    assert probe.momentum  # the probe finds it
    assert not any(h.name.startswith("momentum_") for h in hints) and "swing" in {h.name for h in hints}


def test_agreement_describes_its_figures():
    assert "r = +0.83" in Agreement(0.83, 28, 4).describe() and Agreement(0.83, 28, 4).verdict == "agrees"
    assert Agreement(0.5, 28, 4).verdict == "unsure" and Agreement(0.1, 28, 4).verdict == "disagrees"
