"""The critic: dry runs on probe transitions, per-call timing, and warnings about rewards that cannot teach."""

from __future__ import annotations

import numpy as np
import pytest

from rewardsmith.critic import Critic, Verdict, check, probe_transitions


@pytest.fixture(scope="module")
def critic(cartpole):
    with Critic(cartpole, cartpole.default_task) as c:
        yield c


def test_probes_come_from_random_rollouts_and_include_episode_ends(cartpole):
    probes = probe_transitions(cartpole, cartpole.default_task)
    assert 16 <= len(probes) <= 64 + 3
    assert probes.terminated.any()
    assert probes.obs.shape == probes.next_obs.shape == (len(probes), 4)
    assert set(np.unique(probes.actions)) <= {0, 1}


def test_a_good_reward_is_accepted_with_timing_and_components(critic):
    verdict = critic.check("import math\ndef compute_reward(obs, action, next_obs, info):\n"
                           "    u = math.cos(next_obs.pole_angle)\n    return u, {'upright': u}\n")
    assert verdict.accepted and verdict.errors == []
    assert verdict.components == ("upright",)
    assert 0 < verdict.call_us < 2000
    assert verdict.sample["components"]["upright"] == pytest.approx(verdict.sample["total"])


@pytest.mark.parametrize(
    "source,code,fragment",
    [
        ("def compute_reward(obs, action, next_obs, info):\n    return 1.0 / next_obs[1] * 0.0 + 1 / 0, {}\n",
         "runtime_error", "ZeroDivisionError"),
        ("def compute_reward(obs, action, next_obs, info):\n    return 'high', {}\n", "bad_return", "it must be a number"),
        ("def compute_reward(obs, action, next_obs, info):\n    return float('inf'), {}\n", "non_finite", "inf"),
        ("def compute_reward(obs, action, next_obs, info):\n    return 1.0, {'a': float('nan')}\n", "non_finite",
         "component 'a'"),
        ("def compute_reward(obs, action, next_obs, info):\n    return 1.0, [1.0]\n", "bad_components", "dict"),
        ("def compute_reward(obs, action):\n    return 1.0, {}\n", "bad_signature", "(obs, action, next_obs, info)"),
        ("def reward(obs, action, next_obs, info):\n    return 1.0, {}\n", "no_compute_reward", "compute_reward"),
        ("def compute_reward(obs, action, next_obs, info):\n    return next_obs.velocity, {}\n", "unknown_field",
         "valid fields: cart_position"),
        ("def compute_reward(obs, action, next_obs, info):\n    return next_obs[9], {}\n", "runtime_error",
         "IndexError"),
        ("def compute_reward(obs, action, next_obs, info):\n    return info['missing'], {}\n", "runtime_error",
         "KeyError"),
        ("def compute_reward(obs, action, next_obs, info)\n    return 1.0, {}\n", "syntax", "expected ':'"),
    ],
)
def test_broken_rewards_are_refused_with_a_precise_reason(critic, source, code, fragment):
    verdict = critic.check(source)
    assert not verdict.accepted
    assert verdict.errors[0].code == code, verdict.explain()
    assert fragment in verdict.explain()


def test_runtime_errors_name_the_line_and_the_probe(critic):
    verdict = critic.check("def compute_reward(obs, action, next_obs, info):\n    x = 1\n    return x / 0, {}\n")
    error = verdict.errors[0]
    assert error.line == 3
    assert "on a probe transition: next_obs=[" in error.message


def test_warnings_do_not_reject(critic):
    verdict = critic.check("def compute_reward(obs, action, next_obs, info):\n    return 5.0\n")
    assert verdict.accepted
    assert {w.code for w in verdict.warnings} >= {"bare_total", "constant_reward", "unused_argument"}
    huge = critic.check("def compute_reward(obs, action, next_obs, info):\n"
                        "    return 1e6 * next_obs.pole_angle, {'a': 1.0, 'b': next_obs.pole_angle}\n")
    assert huge.accepted
    assert {"huge_magnitude", "constant_component"} <= {w.code for w in huge.warnings}


def test_a_slow_reward_is_refused_as_too_slow(critic):
    slow = ("def compute_reward(obs, action, next_obs, info):\n    s = 0.0\n    for i in range(60000):\n"
            "        s += i * 1e-9\n    return s, {'s': s}\n")
    verdict = critic.check(slow)
    assert not verdict.accepted
    assert verdict.errors[0].code in ("too_slow", "timeout")


def test_an_empty_program_and_verdict_round_trip(cartpole):
    verdict = check("   ", cartpole)
    assert not verdict.accepted and verdict.errors[0].code == "no_compute_reward"
    assert Verdict.from_dict(verdict.to_dict()) == verdict


def test_the_envs_own_info_keys_reach_reward_code_in_probes_and_training():
    from rewardsmith.spec import load_spec
    from rewardsmith.task import ResolvedTask
    from rewardsmith.training import TrainConfig, train
    from tests.helpers_envs import register

    spec = load_spec(register())
    task = spec.default_task
    reads_info = ("def compute_reward(obs, action, next_obs, info):\n"
                  "    near = -info['distance'] if info['label'] == 'ok' else 0.0\n"
                  "    return near + 0.0 * next_obs[0], {'near': near}\n")
    verdict = check(reads_info, spec, task)
    assert verdict.accepted, verdict.explain()
    trained = train(ResolvedTask.of_spec(spec, task), reads_info,
                    TrainConfig(timesteps=256, checkpoints=1, eval_episodes=1, final_episodes=1, device="cpu"))
    trained.close()
    assert trained.result.status == "scored", trained.result.reason
    assert trained.episodes[0].components["near"].max() <= 0.0
