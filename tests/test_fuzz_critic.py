"""Random source fed to the critic: the host never crashes and always gets a verdict.

Two kinds of input: random text, and valid reward programs cut, spliced, and salted with
fragments attackers use. Whatever comes in, ``Critic.check`` returns a :class:`Verdict` whose
issues carry known codes and printable messages, and the critic keeps working afterwards.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewardsmith.critic import Critic, Verdict
from rewardsmith.sandbox import CODES, SandboxLimits

VALID = [
    "import math\n\ndef compute_reward(obs, action, next_obs, info):\n"
    "    upright = math.cos(next_obs.pole_angle)\n    return upright, {'upright': upright}\n",
    "import numpy as np\n\nSCALE = 0.5\n\ndef helper(x):\n    return -abs(x) * SCALE\n\n"
    "def compute_reward(obs, action, next_obs, info):\n    v = np.asarray(next_obs)\n    a = np.zeros(2)\n"
    "    a[0] = helper(v[0])\n    a[1] = float(np.tanh(v[2]))\n    total = float(a.sum())\n"
    "    return total, {'centre': float(a[0]), 'angle': float(a[1])}\n",
    "from typing import Dict, Tuple\n\ndef compute_reward(obs, action, next_obs, info) -> Tuple[float, Dict]:\n"
    "    alive = 0.0 if info['terminated'] else 1.0\n    parts = {k: abs(next_obs[k]) for k in next_obs.keys()}\n"
    "    for name in parts:\n        alive -= 0.01 * parts[name]\n    return alive, {'alive': alive}\n",
]
SALT = [
    "__class__", ".__subclasses__()", "import os\n", "while True:\n    pass\n", "'{0.__class__}'.format(obs)",
    "getattr(obs, '_v')", "np.ones(3).resize(9, refcheck=False)", "(", ")", ":", "\n    ", "\x00", "\x1b[2J",
    "lambda: ", "yield 1", "return float('nan'), {}", "1/0", "[0] * 10**10", "np.load", "except BaseException:",
    "global x\n", "del obs\n", "raise SystemExit\n", "**", "not ", "\ud800", "print('x' * 10000)\n",
]
STATEMENTS = [
    "x = ().__class__", "import os", "while True:\n        pass", "v = getattr(obs, '_v')",
    "np.ones(3).resize(9, refcheck=False)", "return float('nan'), {}", "x = 1 / 0", "x = [0] * 10**10",
    "x = np.load('f')", "try:\n        sum(range(10**11))\n    except BaseException:\n        pass",
    "s = '{0.__class__}'.format(obs)", "return 'x', {}", "return 1.0, {'\\x1b': 1.0}", "raise BaseException('x')",
    "print(next_obs, info)", "next_obs[0] = 1.0", "g = (i for i in [1])\n    g.gi_frame", "np.seterr(all='raise')",
    "x = np.zeros((10**5, 10**5))", "return 10**400, {}", "import numpy.random", "x = info['nope']",
]
LIMITS = SandboxLimits(call_timeout=0.3, timeout_per_transition=0.0, kill_grace=0.3, load_timeout=0.5)


@pytest.fixture(scope="module")
def critic(cartpole):
    with Critic(cartpole, cartpole.default_task, LIMITS, probes=16) as c:
        yield c


@st.composite
def mutated_programs(draw: st.DrawFn) -> str:
    source = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(source)))
        action = draw(st.sampled_from(["cut", "splice", "salt", "duplicate", "statement", "statement"]))
        if action == "cut":
            source = source[:at] + source[at + draw(st.integers(1, 40)):]
        elif action == "splice":
            other = draw(st.sampled_from(VALID))
            start = draw(st.integers(0, len(other)))
            source = source[:at] + other[start:start + draw(st.integers(1, 200))]
        elif action == "salt":
            source = source[:at] + draw(st.sampled_from(SALT)) + source[at:]
        elif action == "duplicate":
            source = source[:at] + source[at:at + draw(st.integers(1, 60))] * 2 + source[at:]
        else:  # a whole statement inside compute_reward: still parses, so it reaches the guards and the worker
            lines = source.split("\n")
            body = [i for i, line in enumerate(lines) if line.startswith("    ")] or [len(lines) - 1]
            where = draw(st.sampled_from(body))
            lines.insert(where, "    " + draw(st.sampled_from(STATEMENTS)))
            source = "\n".join(lines)
    return source


sources = st.one_of(st.text(max_size=300), mutated_programs())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(source=sources)
def test_the_critic_always_returns_a_verdict(critic, source):
    verdict = critic.check(source)
    assert isinstance(verdict, Verdict)
    assert verdict.accepted == (not verdict.errors)
    for issue in verdict.issues:
        assert issue.code in CODES, issue
        assert "\x1b" not in issue.message and "\x00" not in issue.message
        issue.message.encode("utf-8")  # printable on any terminal: no lone surrogates
    if not verdict.accepted:
        assert verdict.errors and verdict.explain().strip()


def test_the_critic_still_works_after_the_fuzzing(critic):
    verdict = critic.check(VALID[1])
    assert verdict.accepted, verdict.explain()
    assert set(verdict.components) == {"centre", "angle"}
