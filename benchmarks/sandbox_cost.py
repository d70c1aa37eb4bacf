"""Per-call cost of a typical CartPole reward: plain Python vs the sandbox, side by side.

Usage::

    python benchmarks/sandbox_cost.py            # a few seconds
    python benchmarks/sandbox_cost.py --ppo      # also PPO steps/s, env reward vs sandboxed reward (~1 min)

Rows:

* ``plain``: the reward compiled with ``compile``/``exec`` and called in this process, one call per
  transition, building the same inputs the worker builds (observation views, an info dict).
* ``restricted in-process``: the same, compiled under the sandbox policy and run with its guards,
  but without a worker process (what the restriction alone costs).
* ``sandbox, batch N``: :meth:`RewardSandbox.call` on N transitions at a time, everything included
  (encoding, the pipe round trip, the worker's loop, checking and decoding the results). N = 256
  is one PPO rollout of CartPole (8 envs x 32 steps), N = 8 is one vector-env step.

Each figure is the best of several repeats of microseconds per transition.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rewardsmith.sandbox import RewardSandbox, Transitions
from rewardsmith.sandbox.guards import GuardState, make_globals
from rewardsmith.sandbox.namespaces import safe_modules
from rewardsmith.sandbox.policy import compile_reward
from rewardsmith.sandbox.views import make_view_class

FIELDS = ["cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity"]

REWARD = '''\
import math
import numpy as np


def compute_reward(obs, action, next_obs, info):
    upright = float(np.cos(next_obs.pole_angle))
    centred = -abs(next_obs.cart_position)
    still = -0.1 * abs(next_obs.cart_velocity)
    fell = -1.0 if info["terminated"] else 0.0
    total = upright + 0.3 * centred + still + fell
    return total, {"upright": upright, "centred": centred, "still": still, "fell": fell}
'''


def transitions(n: int, seed: int = 0) -> Transitions:
    rng = np.random.default_rng(seed)
    obs = rng.normal(scale=0.1, size=(n, 4))
    next_obs = obs + rng.normal(scale=0.01, size=(n, 4))
    return Transitions(obs, rng.integers(0, 2, n), next_obs, np.ones(n), rng.random(n) < 0.02, np.zeros(n, bool),
                       np.arange(n))


def in_process(fn: Callable[..., Any], batch: Transitions) -> Callable[[], None]:
    """One pass over the batch the way the worker does it, without the process boundary."""
    view = make_view_class(FIELDS)
    obs, next_obs = batch.obs.tolist(), batch.next_obs.tolist()
    actions = batch.actions.tolist()
    env_reward, terminated = batch.env_reward.tolist(), batch.terminated.tolist()
    truncated, step = batch.truncated.tolist(), batch.step.tolist()

    def run() -> None:
        for i in range(len(obs)):
            info = {"env_reward": env_reward[i], "terminated": terminated[i], "truncated": truncated[i],
                    "step": step[i]}
            total, components = fn(view(obs[i]), actions[i], view(next_obs[i]), info)
            float(total)

    return run


def plain_function() -> Callable[..., Any]:
    namespace: dict[str, Any] = {}
    exec(compile(REWARD, "<plain>", "exec"), namespace)  # noqa: S102 - trusted benchmark source
    return namespace["compute_reward"]


def restricted_function() -> Callable[..., Any]:
    code, issues = compile_reward(REWARD, FIELDS)
    assert code is not None, issues
    namespace = make_globals(GuardState(), safe_modules())
    exec(code, namespace)  # noqa: S102 - the restricted code object
    return namespace["compute_reward"]


def best_us_per_transition(run: Callable[[], None], per_run: int, budget_s: float = 1.5, repeats: int = 7) -> float:
    run()  # warm up
    started = time.perf_counter()
    run()
    once = max(time.perf_counter() - started, 1e-7)
    loops = max(1, int(budget_s / repeats / once))
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(loops):
            run()
        best = min(best, (time.perf_counter() - started) / loops)
    return best / per_run * 1e6


def ppo_steps_per_second(timesteps: int) -> tuple[float, float]:
    from rewardsmith.spec import load_spec
    from rewardsmith.training import TrainConfig, train

    spec = load_spec("cartpole")
    task = spec.default_task
    config = TrainConfig(timesteps=timesteps, checkpoints=1, eval_episodes=1, final_episodes=1, device="cpu",
                         save_policy=False)
    warm_up = TrainConfig(timesteps=512, checkpoints=1, eval_episodes=1, final_episodes=1, device="cpu",
                          save_policy=False)
    train(spec, task, task.fitness, task.solved, None, warm_up).close()  # torch's first-use costs, paid once
    best = {None: 0.0, REWARD: 0.0}
    for _ in range(2):  # alternate, keep the best of each: the machine's load changes under us
        for source in (None, REWARD):
            trained = train(spec, task, task.fitness, task.solved, source, config)
            assert trained.result.status == "scored", trained.result.reason
            best[source] = max(best[source], trained.result.steps_per_second)
            trained.close()
    return best[None], best[REWARD]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ppo", action="store_true", help="also measure PPO steps/s (about a minute)")
    parser.add_argument("--timesteps", type=int, default=8192, help="PPO timesteps per run with --ppo")
    args = parser.parse_args()

    rows: list[tuple[str, float]] = []
    big = transitions(256)
    rows.append(("plain Python, in-process", best_us_per_transition(in_process(plain_function(), big), 256)))
    rows.append(("restricted, in-process", best_us_per_transition(in_process(restricted_function(), big), 256)))
    with RewardSandbox(FIELDS) as box:
        loaded = box.load(REWARD)
        assert loaded.ok, loaded.issues
        for n in (256, 8):
            batch = transitions(n)
            cost = best_us_per_transition(lambda b=batch: box.call(b), n)  # type: ignore[misc]
            rows.append((f"sandbox, batch {n}", cost))

    base = rows[0][1]
    print(f"per-transition cost of a typical CartPole reward ({platform.python_version()}, numpy {np.__version__})")
    print(f"{'':28s}{'us/transition':>14s}{'x plain':>10s}")
    for name, us in rows:
        print(f"{name:28s}{us:14.2f}{us / base:10.1f}")
    if args.ppo:
        env_rate, sandbox_rate = ppo_steps_per_second(args.timesteps)
        print(f"PPO steps/s on CartPole ({args.timesteps} steps): env reward {env_rate:.0f}, "
              f"sandboxed reward {sandbox_rate:.0f}, ratio {sandbox_rate / env_rate:.3f}")


if __name__ == "__main__":
    main()
