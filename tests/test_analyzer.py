"""The analyzer: statistics, flags, failure analysis, hacking detection and the reflection.

Most tests build episodes and checkpoints by hand, so each pathology is exact and each threshold
is crossed on purpose; others run scripted controllers through the real env and score rewards crafted
with a known flaw in the real sandbox. Real PPO trainings assert only what holds wherever they land:
their floats differ between CPU families and builds.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from rewardsmith.analyzer import (
    AGAINST_CORR,
    DOMINANT_SHARE,
    analyze,
    analyze_candidate,
    analyzer_failure,
    pearson,
    render_reflection,
)
from rewardsmith.episode import Episode, NamedArrays
from rewardsmith.results import Checkpoint
from rewardsmith.task import TaskRef
from rewardsmith.training import TrainConfig, train


def _length(episode: Episode) -> float:
    return float(len(episode))


def _episode(spec, steps: int, components: dict[str, np.ndarray], *, cause: str = "timeout",
             obs: np.ndarray | None = None, seed: int = 0, env_rewards: np.ndarray | None = None) -> Episode:
    rng = np.random.default_rng(seed)
    if obs is None:
        obs = rng.normal(0.0, 0.05, size=(steps + 1, len(spec.field_names)))
    terminated = cause != "timeout"
    env_rewards = np.ones(steps) if env_rewards is None else np.asarray(env_rewards, dtype=np.float64)
    episode = Episode(NamedArrays(spec.field_names, obs), np.zeros(steps, dtype=np.int64), env_rewards,
                      terminated=terminated, truncated=not terminated, cause=cause)
    episode.components = {k: np.asarray(v, dtype=np.float64) for k, v in components.items()}
    episode.shaped = sum(episode.components.values()) if components else np.zeros(steps)
    return episode


def _checkpoints(n: int, fitness, shaped, components: dict[str, list[dict[str, float]]] | None = None,
                 length=100.0) -> list[Checkpoint]:
    fitness = list(fitness) if not np.isscalar(fitness) else [fitness] * n
    shaped = list(shaped) if not np.isscalar(shaped) else [shaped] * n
    length = list(length) if not np.isscalar(length) else [length] * n
    return [Checkpoint(step=(i + 1) * 1000, fitness=fitness[i], fitness_std=0.0, success_rate=0.0,
                       episode_length=length[i], shaped_return=shaped[i], env_return=None,
                       components={k: v[i] for k, v in (components or {}).items()})
            for i in range(n)]


def _window(mean: float, std: float, low: float | None = None, high: float | None = None) -> dict[str, float]:
    return {"mean": mean, "std": std, "min": mean - 2 * std if low is None else low,
            "max": mean + 2 * std if high is None else high}


def _varied(rng, n, mean=0.5, std=0.2):
    return np.clip(rng.normal(mean, std, n), 0.0, 1.0)


def _run(spec, episodes, checkpoints=(), solved=math.inf, fitness=_length, stochastic=()):
    analysis = analyze(spec, fitness, solved, episodes, list(stochastic), list(checkpoints))
    json.dumps(analysis, allow_nan=False)  # plain JSON, no NaN
    return analysis


def _flags(analysis):
    return {name: set(s["flags"]) for name, s in analysis["components"].items()}


# ------------------------------------------------------------------------------- statistics


def test_pearson_is_none_when_a_side_does_not_vary_or_too_few_points():
    assert pearson([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert pearson([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([1, 1, 1, 1], [1, 2, 3, 4]) is None
    assert pearson([1, 2], [1, 2]) is None
    assert pearson([1, 2, math.nan, 4], [1, 2, 3, 4]) == pytest.approx(1.0)


def test_schema_fitness_lengths_components_and_flags(cartpole):
    rng = np.random.default_rng(0)
    episodes = [_episode(cartpole, n, {"a": _varied(rng, n), "b": -_varied(rng, n)}, seed=i,
                         cause="pole_fell" if n < 500 else "timeout")
                for i, n in enumerate([500, 400, 300, 200, 500, 450])]
    checkpoints = _checkpoints(4, [100, 200, 300, 400], [50, 100, 150, 200],
                               {"a": [_window(0.5, 0.2)] * 4, "b": [_window(-0.5, 0.2)] * 4})
    a = _run(cartpole, episodes, checkpoints, solved=450.0)
    assert a["fitness"]["values"] == [500, 400, 300, 200, 500, 450]
    assert a["fitness"]["mean"] == pytest.approx(391.6666, rel=1e-4)
    assert a["fitness"]["success_rate"] == pytest.approx(0.5)
    assert a["episode_length"] == {"mean": pytest.approx(391.6666, rel=1e-4), "std": pytest.approx(109.61, rel=1e-3),
                                   "min": 200.0, "max": 500.0}
    assert set(a["components"]) == {"a", "b"}
    comp = a["components"]["a"]
    assert comp["series"] == [0.5] * 4
    assert set(comp) >= {"series", "mean", "min", "max", "share", "corr_fitness", "flags"}
    assert comp["share"] + a["components"]["b"]["share"] == pytest.approx(1.0)
    assert a["terminations"] == {"pole_fell": 4, "timeout": 2}
    assert a["training"]["fitness"] == [100, 200, 300, 400]
    assert a["flags"] == [] and a["hacking"] == []
    assert a["reflection"].startswith("Fitness 391.7 ± ")


# -------------------------------------------------------------------------------------- flags


def test_flat_component_is_flagged(cartpole):
    """exp(-|angle| / 50): stays within 1e-4 of 1 whatever happens — it teaches nothing."""
    rng = np.random.default_rng(1)
    episodes = [_episode(cartpole, n, {"upright": 1.0 - 1e-4 * rng.random(n), "near": _varied(rng, n)}, seed=n)
                for n in (100, 200, 300, 400, 500, 250)]
    checkpoints = _checkpoints(3, [100, 200, 300], [10, 20, 30],
                               {"upright": [_window(0.99995, 3e-5)] * 3, "near": [_window(0.5, 0.2)] * 3})
    flags = _flags(_run(cartpole, episodes, checkpoints))
    assert flags == {"upright": {"flat"}, "near": set()}


def test_a_term_too_small_to_move_the_reward_is_flat(cartpole):
    rng = np.random.default_rng(2)
    episodes = [_episode(cartpole, 200, {"tiny": 1e-3 * _varied(rng, 200), "main": _varied(rng, 200),
                                         "other": _varied(rng, 200)}, seed=i) for i in range(4)]
    assert _flags(_run(cartpole, episodes)) == {"tiny": {"flat"}, "main": set(), "other": set()}


def test_a_constant_bonus_is_flat_only_where_every_episode_lasts_the_same(cartpole):
    rng = np.random.default_rng(3)
    varied = [_episode(cartpole, n, {"alive": np.ones(n), "upright": _varied(rng, n)}, seed=n)
              for n in (50, 200, 500, 120)]
    fixed = [_episode(cartpole, 200, {"alive": np.ones(200), "upright": _varied(rng, 200)}, seed=i)
             for i in range(4)]
    assert "flat" not in _flags(_run(cartpole, varied))["alive"]
    same_length_training = _checkpoints(3, 0.0, 1.0, {"alive": [_window(1.0, 0.0, 1.0, 1.0)] * 3}, length=200.0)
    assert _flags(_run(cartpole, fixed, same_length_training))["alive"] == {"flat"}
    analysis = _run(cartpole, varied)
    assert analysis["components"]["alive"]["constant"] is True


def test_dominant_component_is_flagged(cartpole):
    rng = np.random.default_rng(4)
    episodes = [_episode(cartpole, 300, {"upright": 20 * _varied(rng, 300), "near_target": _varied(rng, 300)},
                         seed=i) for i in range(5)]
    a = _run(cartpole, episodes)
    assert a["components"]["upright"]["share"] >= DOMINANT_SHARE
    assert _flags(a) == {"upright": {"dominant"}, "near_target": set()}
    assert "dominant:upright" in a["flags"]
    assert "upright (dominant): it drowns the others" in a["reflection"]


def test_a_single_component_is_never_dominant(cartpole):
    rng = np.random.default_rng(5)
    episodes = [_episode(cartpole, 100, {"only": _varied(rng, 100)}, seed=i) for i in range(3)]
    assert _flags(_run(cartpole, episodes)) == {"only": set()}


def test_component_anti_correlated_with_fitness_across_episodes_is_against(cartpole):
    """Episodes that collect more ``edge`` (cart far from the centre) end sooner: r ≈ −1."""
    rng = np.random.default_rng(6)
    episodes = []
    for i, n in enumerate([500, 450, 400, 300, 200, 150, 100, 80]):
        edge = np.full(n, 1.0 - n / 500.0) + rng.normal(0, 0.01, n)
        episodes.append(_episode(cartpole, n, {"edge": edge, "upright": _varied(rng, n)}, seed=i,
                                 cause="cart_left_track" if n < 500 else "timeout"))
    a = _run(cartpole, episodes)
    assert a["components"]["edge"]["corr_fitness"] <= AGAINST_CORR
    assert "against" in _flags(a)["edge"]
    assert "against" not in _flags(a)["upright"]
    assert "episodes where it pays more score lower" in a["reflection"]


def test_against_falls_back_to_training_when_fitness_does_not_vary(cartpole):
    rng = np.random.default_rng(7)
    episodes = [_episode(cartpole, 100, {"near_left": _varied(rng, 100), "upright": _varied(rng, 100)}, seed=i)
                for i in range(6)]
    fitness = [0, 50, 100, 150, 200, 250]
    left = [_window(m, 0.1) for m in (0.9, 0.8, 0.6, 0.5, 0.3, 0.2)]
    up = [_window(m, 0.1) for m in (0.5, 0.6, 0.55, 0.7, 0.65, 0.7)]
    a = _run(cartpole, episodes, _checkpoints(6, fitness, 100.0, {"near_left": left, "upright": up}),
             fitness=lambda e: 7.0)
    assert a["components"]["near_left"]["corr_fitness"] is None
    assert a["components"]["near_left"]["corr_training"] <= -0.8
    assert _flags(a) == {"near_left": {"against"}, "upright": set()}


def test_shaped_return_rising_while_fitness_stays_flat_names_the_farmed_component(cartpole):
    """Hold-right with a reward for standing still: the return climbs, the cart never reaches x = 1."""
    rng = np.random.default_rng(8)
    still_obs = rng.normal(0, 0.05, (201, 4))  # the pole wobbles…
    still_obs[:, 0] = 0.0  # …while the cart stays at x = 0
    still_obs[:, 1] = rng.normal(0, 0.02, 201)  # with its velocity jittering around 0
    episodes = [_episode(cartpole, 200, {"still": 0.9 + 0.05 * rng.random(200),
                                         "near_target": 0.13 + 0.01 * rng.random(200)}, obs=still_obs)
                for _ in range(4)]
    windows = {"still": [_window(m, 0.2) for m in (0.3, 0.4, 0.6, 0.8, 0.9)],
               "near_target": [_window(0.13, 0.02)] * 5}
    checkpoints = _checkpoints(5, 0.0, [20, 40, 80, 120, 180], windows)
    a = _run(cartpole, episodes, checkpoints, solved=400.0, fitness=lambda e: 0.0)
    assert "hacked" in _flags(a)["still"]
    assert "hacked" not in _flags(a)["near_target"]
    [entry] = a["hacking"]
    assert entry["kind"] == "return" and entry["component"] == "still"
    assert "rose 30 → 150" in entry["evidence"] and "fitness stayed flat (0 → 0)" in entry["evidence"]
    assert "cart_position stands still" in entry["evidence"]
    assert "hacked:still" in a["flags"]


def test_return_hacking_without_a_clear_culprit_is_a_top_level_flag(cartpole):
    rng = np.random.default_rng(9)
    episodes = [_episode(cartpole, 100, {"a": _varied(rng, 100), "b": _varied(rng, 100)}, seed=i) for i in range(3)]
    windows = {"a": [_window(m, 0.2) for m in (0.3, 0.5, 0.7)], "b": [_window(m, 0.2) for m in (0.3, 0.5, 0.7)]}
    a = _run(cartpole, episodes, _checkpoints(3, [10, 12, 9], [10, 50, 90], windows), solved=400.0,
             fitness=lambda e: 10.0)
    assert [h["component"] for h in a["hacking"]] == [None]
    assert "hacking:return" in a["flags"]
    assert all("hacked" not in f for f in _flags(a).values())
    assert "the reward pays for something other than the task" in a["reflection"]


def test_a_term_that_goes_with_fitness_is_never_named_as_farmed(cartpole):
    """The return rose and fitness barely moved, but the term that rose is the one that goes with fitness."""
    rng = np.random.default_rng(15)
    episodes = []
    for i, n in enumerate([300, 280, 260, 240, 220, 200]):
        episodes.append(_episode(cartpole, n, {"near_target": _varied(rng, n, n / 400.0, 0.05),
                                               "upright": _varied(rng, n)}, seed=i))
    windows = {"near_target": [_window(m, 0.2) for m in (0.2, 0.4, 0.6)],
               "upright": [_window(0.5, 0.2)] * 3}
    a = _run(cartpole, episodes, _checkpoints(3, [5, 6, 5], [10, 50, 90], windows), solved=400.0,
             fitness=lambda e: len(e) / 50.0)
    assert a["components"]["near_target"]["corr_fitness"] >= 0.5
    assert [h["component"] for h in a["hacking"]] == [None]
    assert "hacked" not in _flags(a)["near_target"]


def test_a_component_farmed_against_the_task_is_hacked(cartpole):
    """Paying for |cart_velocity|: the policy learns to race, and episodes with more racing end sooner."""
    rng = np.random.default_rng(10)
    episodes = []
    for i, n in enumerate([400, 350, 300, 250, 200, 150, 120, 100]):
        obs = rng.normal(0, 0.05, size=(n + 1, 4))
        obs[:, 1] = (2.0 - n / 250.0) * np.sign(np.sin(np.arange(n + 1) / 3.0))  # racing back and forth
        speed = np.abs(obs[1:, 1])
        episodes.append(_episode(cartpole, n, {"speed": speed, "upright": _varied(rng, n)}, obs=obs,
                                 cause="cart_left_track"))
    windows = {"speed": [_window(m, 0.4) for m in (0.2, 0.4, 0.7, 1.0)],
               "upright": [_window(0.5, 0.2)] * 4}
    checkpoints = _checkpoints(4, [100, 250, 240, 240], [20, 60, 100, 140], windows)
    a = _run(cartpole, episodes, checkpoints, solved=475.0)
    assert _flags(a)["speed"] == {"against", "hacked"}
    [entry] = a["hacking"]
    assert entry["kind"] == "farmed" and entry["component"] == "speed"
    assert "follows |cart_velocity|" in entry["evidence"]


def test_no_hacking_when_fitness_rises_with_the_reward_or_the_task_is_solved(cartpole):
    rng = np.random.default_rng(11)
    episodes = [_episode(cartpole, 100, {"a": _varied(rng, 100)}, seed=i) for i in range(3)]
    windows = {"a": [_window(m, 0.2) for m in (0.3, 0.5, 0.7)]}
    rising = _run(cartpole, episodes, _checkpoints(3, [10, 200, 390], [10, 50, 90], windows), solved=400.0,
                  fitness=lambda e: 390.0)
    assert rising["hacking"] == []
    solved = _run(cartpole, episodes, _checkpoints(3, [400, 400, 400], [10, 50, 90], windows), solved=400.0,
                  fitness=lambda e: 400.0)
    assert solved["hacking"] == []


def test_a_clean_reward_raises_no_flag(cartpole):
    """Balanced terms that vary, each aligned with fitness, and a return that rises with it."""
    rng = np.random.default_rng(12)
    episodes = []
    for i, n in enumerate([500, 480, 450, 420, 500, 470]):
        quality = n / 500.0
        episodes.append(_episode(cartpole, n, {"alive": np.ones(n), "upright": _varied(rng, n, 0.8 * quality, 0.1),
                                               "centred": -_varied(rng, n, 0.2 / quality, 0.1)}, seed=i))
    windows = {"alive": [_window(1.0, 0.0, 1.0, 1.0)] * 4,
               "upright": [_window(m, 0.2) for m in (0.5, 0.6, 0.7, 0.8)],
               "centred": [_window(m, 0.1) for m in (-0.4, -0.3, -0.25, -0.2)]}
    checkpoints = _checkpoints(4, [50, 200, 350, 470], [80, 300, 600, 900], windows, length=[50, 200, 350, 470])
    a = _run(cartpole, episodes, checkpoints, solved=475.0)
    assert a["flags"] == [] and a["hacking"] == []
    assert all(not s["flags"] for s in a["components"].values())


# ------------------------------------------------------------------------- failures, coverage


def test_terminations_are_counted_by_cause_and_failure_states_compared_with_successes(cartpole):
    good = np.zeros((501, 4))
    good[:, 0] = np.linspace(0, 0.5, 501)
    episodes = [_episode(cartpole, 500, {}, obs=good) for _ in range(2)]
    for i in range(3):
        bad = np.zeros((51, 4))
        bad[:, 0] = np.linspace(0, 2.5, 51)  # drifts off the track
        episodes.append(_episode(cartpole, 50, {}, obs=bad, cause="cart_left_track"))
    fell = np.zeros((31, 4))
    fell[:, 2] = np.linspace(0, 0.25, 31)
    episodes.append(_episode(cartpole, 30, {}, obs=fell, cause="pole_fell"))
    a = _run(cartpole, episodes, solved=475.0)
    assert a["terminations"] == {"cart_left_track": 3, "timeout": 2, "pole_fell": 1}
    failures = a["failure_states"]
    assert failures["failures"] == 4 and failures["compared_with"] == "successful episodes"
    assert failures["fields"]["cart_position"]["outside_success"] == 3
    assert failures["fields"]["cart_position"]["success_range"] == [0.0, 0.5]
    assert failures["fields"]["pole_angle"]["outside_success"] == 1
    assert failures["summary"][0].startswith("cart_position outside the successful episodes' range [0, 0.5] in 3/4")
    assert failures["causes"] == {"cart_left_track": 3, "pole_fell": 1}
    assert "cart_left_track 3" in a["reflection"]


def test_without_successes_failures_are_checked_against_documented_ranges(cartpole):
    obs = np.zeros((21, 4))
    obs[:, 2] = np.linspace(0, 0.5, 21)  # past the documented ±0.418
    a = _run(cartpole, [_episode(cartpole, 20, {}, obs=obs, cause="pole_fell")], solved=475.0)
    failures = a["failure_states"]
    assert failures["compared_with"] == "documented ranges"
    assert failures["fields"]["pole_angle"]["outside_documented"] == 1
    assert "pole_angle beyond its documented range" in failures["summary"][0]


def test_coverage_histograms_and_movement(cartpole):
    steps = np.arange(401)
    obs = np.zeros((401, 4))
    obs[:, 0] = 0.3  # the cart parked at x = 0.3
    obs[:, 2] = 0.1 * np.sign(np.sin(steps / 2.0))  # pole swinging ±0.1 every few steps
    a = _run(cartpole, [_episode(cartpole, 400, {}, obs=obs)])
    cov = a["coverage"]
    assert set(cov) == set(cartpole.field_names)
    for entry in cov.values():
        assert sum(entry["fractions"]) == pytest.approx(1.0)
        assert len(entry["edges"]) == len(entry["fractions"]) + 1
    assert cov["cart_position"]["median"] == pytest.approx(0.3)
    assert cov["cart_position"]["still"] is True
    assert cov["pole_angle"]["oscillating"] is True
    assert "cart_position: median 0.3" in a["reflection"] and "oscillates" in a["reflection"]


# -------------------------------------------------------------------------------- reflection


def test_reflection_is_compact_numeric_and_uses_the_template(cartpole, tmp_path):
    rng = np.random.default_rng(13)
    episodes = [_episode(cartpole, 300, {"upright": 20 * _varied(rng, 300), "near": _varied(rng, 300)}, seed=i)
                for i in range(4)]
    a = _run(cartpole, episodes, _checkpoints(3, [1, 2, 3], [5, 6, 7], {"upright": [_window(10, 4)] * 3}))
    text = a["reflection"]
    assert len(text.splitlines()) < 40
    assert "upright: " in text and "[DOMINANT]" in text and "What to change:" in text
    (tmp_path / "analysis.j2").write_text("custom {{ a.fitness.mean | g }} {{ advice | length }}\n")
    assert render_reflection(a, cartpole, tmp_path) == "custom 300 1\n"


def test_an_analyzer_failure_keeps_the_keys_designers_read():
    failure = analyzer_failure(ValueError("boom"))
    assert failure["error"] == "ValueError: boom"
    assert failure["components"] == {} and failure["flags"] == [] and "boom" in failure["reflection"]


# ------------------------------------------------------------------------------ end to end

FLAT = '''
import math
def compute_reward(obs, action, next_obs, info):
    upright = math.exp(-abs(next_obs.pole_angle) / 50.0)
    near_target = math.exp(-abs(next_obs.cart_position - 1.0) / 0.5)
    return upright + near_target, {"upright": upright, "near_target": near_target}
'''

STILL = '''
import math
def compute_reward(obs, action, next_obs, info):
    still = math.exp(-abs(next_obs.cart_velocity) / 0.1)
    near_target = 0.2 * math.exp(-abs(next_obs.cart_position - 1.0) / 0.5)
    return still + near_target, {"still": still, "near_target": near_target}
'''

EDGE = '''
import math
def compute_reward(obs, action, next_obs, info):
    alive = 1.0
    upright = math.exp(-abs(next_obs.pole_angle) / 0.2)
    edge = abs(next_obs.cart_position)
    return alive + upright + edge, {"alive": alive, "upright": upright, "edge": edge}
'''

CLEAN = '''
import math
def compute_reward(obs, action, next_obs, info):
    alive = 1.0
    upright = math.exp(-abs(next_obs.pole_angle) / 0.2)
    centred = -0.3 * abs(next_obs.cart_position) / 2.4
    return alive + upright + centred, {"alive": alive, "upright": upright, "centred": centred}
'''


def _trained_analysis(task_name: str, source: str, timesteps: int) -> dict:
    task = TaskRef("cartpole", "x", task_name).resolve()
    config = TrainConfig(timesteps=timesteps, checkpoints=6, eval_episodes=3, final_episodes=5, save_policy=False)
    trained = train(task, source, config)
    try:
        assert trained.result.status == "scored", trained.result.reason
        analysis = analyze_candidate(task, trained, candidate_id="00-00")
    finally:
        trained.close()
    json.dumps(analysis, allow_nan=False)
    assert analysis["episodes"] == {"deterministic": 5, "stochastic": 10}
    return analysis


def test_trained_flat_component_is_flagged():
    """Holds for any policy PPO lands on: |pole_angle| < 0.21 keeps exp(-|angle| / 50) within 0.5 % of 1,
    while exp(-|x - 1| / 0.5) moves with the cart, which the early, near-random policy pushes around."""
    a = _trained_analysis("hold-right", FLAT, 2048)
    assert "flat" in a["components"]["upright"]["flags"]
    assert "flat" not in a["components"]["near_target"]["flags"]


_SECTIONS = {"version", "candidate", "episodes", "fitness", "episode_length", "training", "components",
             "terminations", "failure_states", "coverage", "hacking", "flags", "reflection"}
_FLAG_NAMES = {"flat", "dominant", "against", "hacked"}


@pytest.mark.slow
def test_a_real_training_yields_a_complete_analysis():
    """Where a short training lands differs between CPU families; what the analysis holds does not."""
    a = _trained_analysis("balance", CLEAN, 8192)
    assert set(a) >= _SECTIONS
    assert set(a["components"]) == {"alive", "upright", "centred"}
    assert sum(s["share"] for s in a["components"].values()) == pytest.approx(1.0)
    for name, stats in a["components"].items():
        assert set(stats["flags"]) <= _FLAG_NAMES
        assert all(math.isfinite(v) for v in stats["series"])
        assert f"- {name}: " in a["reflection"]
    assert len(a["fitness"]["values"]) == 5 and all(math.isfinite(v) for v in a["fitness"]["values"])
    assert a["training"]["steps"] and len(a["training"]["train_episode_length"]) == len(a["training"]["steps"])
    assert sum(a["terminations"].values()) == 15
    for flag in a["flags"]:
        kind, _, name = flag.partition(":")
        assert (kind in _FLAG_NAMES and name in a["components"]) or flag == "hacking:return"


# Scripted policies on the real env, their rewards scored in the real sandbox: where each episode goes
# is fixed by the controller, not by a training, so the flags below hold on any machine.


def _steer_to(target: float):
    """A bang-bang controller that balances the pole while it steers the cart toward ``target``: at
    0 it stands still at the centre; past the track's end (±2.4) it drives off it, sooner the farther."""

    def act(obs: np.ndarray) -> np.ndarray:
        x, v, angle, spin = obs[:, 0], obs[:, 1], obs[:, 2], obs[:, 3]
        return (10 * angle + 2 * spin + 0.5 * v + 0.1 * (x - target) > 0).astype(np.int64)

    return act


def _scripted_analysis(task_name: str, source: str, targets, checkpoints=()) -> dict:
    from rewardsmith.rollouts import annotate_components, record_episodes
    from rewardsmith.sandbox import RewardSandbox

    task = TaskRef("cartpole", "x", task_name).resolve()
    episodes = []
    for target in targets:
        episodes += record_episodes(_steer_to(target), task.spec, task.task_spec, 3, 100)[0]
    with RewardSandbox(task.spec.field_names) as sandbox:
        assert sandbox.load(source).ok
        annotate_components(episodes, sandbox)
    return _run(task.spec, episodes, checkpoints, solved=task.solved, fitness=task.fitness)


def test_a_policy_that_stands_still_farms_the_still_bonus():
    """Hold-right paying for a still cart: training raised the still bonus per step while fitness stayed 0,
    and the policy it ended with parks the cart at the centre."""
    windows = {"still": [_window(m, 0.2) for m in (0.3, 0.45, 0.6, 0.75, 0.85, 0.9)],
               "near_target": [_window(0.027, 0.01)] * 6}
    checkpoints = _checkpoints(6, 0.0, [(m + 0.027) * 500 for m in (0.3, 0.45, 0.6, 0.75, 0.85, 0.9)], windows,
                               length=500.0)
    a = _scripted_analysis("hold-right", STILL, [0.0], checkpoints)
    assert a["fitness"]["max"] == 0.0
    assert {"dominant", "hacked"} <= set(a["components"]["still"]["flags"])
    [entry] = a["hacking"]
    assert entry["component"] == "still" and entry["numbers"]["attribution"]["through"] == "per_step"
    assert "at a steady length of 500 steps" in entry["evidence"] and "collected more per step" in entry["evidence"]
    assert a["coverage"]["cart_position"]["still"] is True
    assert re.search(r"; cart_position(, \w+)* stands? still", entry["evidence"])


def test_a_reward_for_the_track_edge_is_against_the_task():
    """Policies that head for the edge collect more of |cart_position| per step and leave the track sooner."""
    a = _scripted_analysis("balance", EDGE, [0.0, 0.3, 0.6, 6.0, 8.0, 12.0])
    edge = a["components"]["edge"]
    assert "against" in edge["flags"] and edge["corr_fitness"] <= AGAINST_CORR
    assert "against" not in a["components"]["upright"]["flags"]
    assert "edge (against): episodes where it pays more score lower" in a["reflection"]


def test_a_clean_reward_on_a_balancing_policy_raises_no_flag():
    """Balanced terms that vary over training, a return rising with fitness, a policy that balances."""
    fitness = [50.0, 200.0, 350.0, 470.0]
    windows = {"alive": [_window(1.0, 0.0, 1.0, 1.0)] * 4,
               "upright": [_window(m, 0.2, 0.0, 1.0) for m in (0.5, 0.7, 0.85, 0.95)],
               "centred": [_window(m, 0.01, -0.1, 0.0) for m in (-0.03, -0.02, -0.01, -0.005)]}
    checkpoints = _checkpoints(4, fitness, [f * 1.8 for f in fitness], windows, length=fitness)
    a = _scripted_analysis("balance", CLEAN, [0.0, 0.3], checkpoints)
    assert a["fitness"]["min"] == 500.0
    assert a["flags"] == [] and a["hacking"] == []


def test_the_worker_job_writes_analysis_json(tmp_path):
    from rewardsmith.jobs import train_candidate_job
    from rewardsmith.runs import CandidatePaths, RunDir

    paths = CandidatePaths(tmp_path / "iter-00" / "cand-01")
    ref = TaskRef("cartpole", "x", "balance").to_dict()
    config = TrainConfig(timesteps=512, checkpoints=2, eval_episodes=2, final_episodes=2, save_policy=False)
    outcome = train_candidate_job(ref, CLEAN, config, paths, "00-01")
    written = RunDir(paths.root).read_json(paths.analysis)
    assert written == json.loads(json.dumps(outcome["analysis"]))
    assert written["candidate"] == "00-01"
    assert set(written) >= {"fitness", "episode_length", "components", "terminations", "failure_states",
                            "coverage", "hacking", "flags", "reflection"}
    assert set(written["components"]) == {"alive", "upright", "centred"}


# ------------------------------------------------------------------- the built-in designer reads it


def test_the_builtin_designer_acts_on_a_real_analysis(cartpole):
    """The analysis dict as the analyzer writes it steers the built-in designer's first proposal."""
    from rewardsmith.candidate import Candidate
    from rewardsmith.designer import BuiltinDesigner, DesignContext
    from rewardsmith.results import TrainingResult

    task = TaskRef("cartpole", "hold the cart at x=1", task="hold-right").resolve()
    designer = BuiltinDesigner()
    first = designer.propose(DesignContext(task, 0, 1, 0, [], None))[0]
    rng = np.random.default_rng(14)
    episodes = []
    for i, n in enumerate([500, 450, 400, 350, 300, 250]):
        quality = n / 500.0
        episodes.append(_episode(cartpole, n, {
            "near_target": _varied(rng, n, 0.8 * quality, 0.05),          # goes with fitness: strengthened
            "upright": 20 * _varied(rng, n),                              # dominant: halved
            "settle": 0.9 + 1e-4 * rng.random(n),                         # flat: sharpened
            "alive": np.full(n, 0.2), "fell": np.zeros(n),
        }, seed=i))
    analysis = _run(cartpole, episodes, solved=400.0)
    assert _flags(analysis)["near_target"] == set() and analysis["components"]["near_target"]["corr_fitness"] > 0.9
    parent = Candidate("00-00", 0, 0, first.source, first.origin, status="scored",
                       result=TrainingResult("scored", 100.0), analysis=analysis)
    child = designer.propose(DesignContext(task, 1, 1, 0, [parent], parent))[0]
    genome, before = child.origin["genome"], parent.origin["genome"]
    assert genome["near_target"]["weight"] == pytest.approx(before["near_target"]["weight"] * 1.5)
    assert genome["upright"]["weight"] == pytest.approx(before["upright"]["weight"] * 0.5)
    assert genome["settle"]["temp"] == pytest.approx(before["settle"]["temp"] * 0.5)
    assert "strengthened near_target (r = +" in child.origin["note"]
    # that move did not beat the parent: the next iteration sharpens the term instead of repeating it
    child_cand = Candidate("01-00", 1, 0, child.source, child.origin, status="scored",
                           result=TrainingResult("scored", 60.0), analysis=analysis)
    again = designer.propose(DesignContext(task, 2, 1, 0, [parent, child_cand], parent))[0]
    genome = again.origin["genome"]
    assert "sharpened near_target (r = +" in again.origin["note"]
    assert genome["near_target"]["weight"] == pytest.approx(before["near_target"]["weight"])
    assert genome["near_target"]["temp"] == pytest.approx(before["near_target"]["temp"] * 0.5)


def test_the_builtin_designer_strengthens_a_dense_term_rather_than_a_rare_event(cartpole):
    """A goal flag paid on 2 % of steps goes with fitness because it is the goal; the dense term gets the weight."""
    from rewardsmith.candidate import Candidate
    from rewardsmith.designer import BuiltinDesigner, DesignContext
    from rewardsmith.results import TrainingResult

    task = TaskRef("cartpole", "hold the cart at x=1", task="hold-right").resolve()
    designer = BuiltinDesigner()
    first = designer.propose(DesignContext(task, 0, 1, 0, [], None))[0]
    rng = np.random.default_rng(16)
    episodes = []
    for i, (n, near) in enumerate(zip([500, 450, 400, 350, 300, 250], [0.7, 0.5, 0.65, 0.4, 0.45, 0.3])):
        goal = np.zeros(n)
        goal[: int(0.02 * n * n / 500)] = 1.0  # rarely paid, more often in better episodes
        episodes.append(_episode(cartpole, n, {"fell": goal, "near_target": _varied(rng, n, near, 0.05),
                                               "upright": _varied(rng, n)}, seed=i))
    analysis = _run(cartpole, episodes, solved=400.0)
    comps = analysis["components"]
    assert comps["fell"]["corr_fitness"] > comps["near_target"]["corr_fitness"] >= 0.5
    assert comps["fell"]["active"] < 0.05 and not comps["fell"]["flags"]
    parent = Candidate("00-00", 0, 0, first.source, first.origin, status="scored",
                       result=TrainingResult("scored", 100.0), analysis=analysis)
    child = designer.propose(DesignContext(task, 1, 1, 0, [parent], parent))[0]
    assert "strengthened near_target" in child.origin["note"]
    assert child.origin["genome"]["fell"]["weight"] == parent.origin["genome"]["fell"]["weight"]


# ------------------------------------------------------------------- attribution of a rising return


def _hold_right_calm_checkpoints(lengths, upright, centred, calm, calm_std=0.004):
    """Checkpoints of ``upright + 0.5 * centred + calm`` (calm = -0.01 * pole_angular_velocity²) whose
    training episodes grow longer; the shaped return is each term's per-step mean × the episode length."""
    windows = {"upright": [_window(m, 0.01, m - 0.03, 1.0) for m in upright],
               "centred": [_window(m, 0.02) for m in centred],
               "calm": [_window(m, calm_std, m - 3 * calm_std, 0.0) for m in calm]}
    shaped = [(u + c + k) * n for u, c, k, n in zip(upright, centred, calm, lengths)]
    checkpoints = _checkpoints(len(lengths), 0.0, shaped, windows, length=lengths)
    for checkpoint, n in zip(checkpoints, lengths):
        checkpoint.train_episode_length = float(n)
    return checkpoints


def test_a_rise_from_longer_episodes_is_attributed_by_contribution_not_by_per_step_movement(cartpole):
    """cartpole hold-right, ``upright + 0.5 * centred + calm``: the shaped return rose 41.96 → 115 while
    fitness stayed at 0. calm went −0.0067 → −0.001 per step — a rise of more than one of its own standard
    deviations, but a few hundredths of the episode return; the rise is longer episodes paying upright."""
    rng = np.random.default_rng(20)
    episodes = [_episode(cartpole, n, {"upright": 0.99 + 0.005 * rng.random(n), "centred": 0.01 * _varied(rng, n),
                                       "calm": -0.002 * rng.random(n)}, seed=i, cause="pole_fell")
                for i, n in enumerate([90, 100, 110, 120, 105, 95])]
    lengths = [41.0, 43.0, 60.0, 85.0, 113.0, 117.0]
    checkpoints = _hold_right_calm_checkpoints(lengths, upright=[0.99, 0.99, 0.992, 0.993, 0.995, 0.995],
                                               centred=[0.015] * 6,
                                               calm=[-0.0067, -0.0067, -0.004, -0.002, -0.001, -0.001])
    a = _run(cartpole, episodes, checkpoints, solved=400.0, fitness=lambda e: 0.0)
    [entry] = a["hacking"]
    assert entry["kind"] == "return" and entry["component"] == "upright"
    attribution = entry["numbers"]["attribution"]
    assert attribution["through"] == "length"
    assert attribution["length_first"] == pytest.approx(42.0) and attribution["length_last"] == pytest.approx(115.0)
    terms = attribution["terms"]
    assert terms["upright"]["share"] > 0.95 and terms["calm"]["share"] < 0.01
    assert terms["upright"]["length_part"] > 10 * terms["upright"]["per_step_part"]
    # the change of each return splits exactly into its length part and its per-step part
    for name, t in terms.items():
        first = np.mean([c.components[name]["mean"] for c in checkpoints[:2]]) * 42.0
        last = np.mean([c.components[name]["mean"] for c in checkpoints[-2:]]) * 115.0
        assert t["change"] == pytest.approx(last - first)
        assert t["length_part"] + t["per_step_part"] == pytest.approx(t["change"])
    assert "longer episodes (42 → 115 steps)" in entry["evidence"]
    assert "most of the rise comes from upright" in entry["evidence"] and "through longer episodes" in entry["evidence"]
    assert "calm" not in entry["evidence"]
    assert _flags(a)["calm"] == set() and "hacked:calm" not in a["flags"]
    assert "hacked:upright" in a["flags"]
    assert "upright (hacked): the return rose because episodes got longer" in a["reflection"]
    assert "calm (" not in a["reflection"]


def test_a_rise_in_a_term_with_a_negligible_share_is_never_named_even_alone(cartpole):
    """With no term carrying a clear majority of the rise, the finding names none — least of all a small one."""
    rng = np.random.default_rng(21)
    episodes = [_episode(cartpole, 100, {"a": _varied(rng, 100), "b": _varied(rng, 100),
                                         "calm": -0.002 * rng.random(100)}, seed=i) for i in range(4)]
    windows = {"a": [_window(m, 0.2) for m in (0.3, 0.5, 0.7)], "b": [_window(m, 0.2) for m in (0.3, 0.5, 0.7)],
               "calm": [_window(m, 0.004) for m in (-0.0067, -0.003, -0.001)]}
    a = _run(cartpole, episodes, _checkpoints(3, 0.0, [60, 100, 140], windows), solved=400.0,
             fitness=lambda e: 0.0)
    [entry] = a["hacking"]
    assert entry["component"] is None and entry["numbers"]["attribution"]["through"] == "per_step"
    assert "calm" not in entry["evidence"] and "hacking:return" in a["flags"]


# ---------------------------------------------------------------- like with like: the env's own return


def _env_return_analysis(spec):
    """Fitness is the env's own return and the reward is that reward: longer episodes score more while
    paying slightly less per step, so the per-step mean of env_reward falls as fitness rises."""
    from rewardsmith.spec import env_reward_fitness

    rng = np.random.default_rng(22)
    episodes = []
    for i, n in enumerate([500, 450, 400, 300, 200, 150, 100, 80]):
        paid = 1.0 - 0.0004 * n + rng.normal(0.0, 0.005, n)
        episodes.append(_episode(spec, n, {"env_reward": paid}, seed=i, env_rewards=paid,
                                 cause="timeout" if n == 500 else "pole_fell"))
    return _run(spec, episodes, solved=195.0, fitness=env_reward_fitness)


def test_the_env_reward_is_not_against_a_fitness_that_is_its_own_return():
    from rewardsmith.spec import load_spec

    spec = load_spec("CartPole-v0")  # introspected: its one hint is the env's own reward
    a = _env_return_analysis(spec)
    stats = a["components"]["env_reward"]
    assert stats["corr_fitness"] <= AGAINST_CORR  # per-step mean against an episode sum: the wrong comparison
    assert stats["corr_return"] == pytest.approx(1.0)  # the episode sum *is* the fitness
    assert "against" not in stats["flags"] and a["flags"] == []
    assert "flip its sign" not in a["reflection"]


def test_the_builtin_designer_keeps_the_env_reward_when_fitness_is_its_return():
    from rewardsmith.candidate import Candidate
    from rewardsmith.designer import BuiltinDesigner, DesignContext
    from rewardsmith.results import TrainingResult

    task = TaskRef("CartPole-v0", "balance").resolve()
    designer = BuiltinDesigner()
    first = designer.propose(DesignContext(task, 0, 1, 0, [], None))[0]
    parent = Candidate("00-00", 0, 0, first.source, first.origin, status="scored",
                       result=TrainingResult("scored", 100.0), analysis=_env_return_analysis(task.spec))
    child = designer.propose(DesignContext(task, 1, 1, 0, [parent], parent))[0]
    note = child.origin["note"]
    assert note.startswith("random mutation"), note  # no guidance: nothing was found wrong with env_reward
    assert "against" not in note and "flip" not in note
    assert child.origin["genome"]["env_reward"]["on"]
