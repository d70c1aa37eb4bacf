"""Cost of the sparse reward that ``evaluate --fitness`` derives from a fitness's ``SOLVED``.

The sparse wrapper scores the episode so far on every env step, so its cost grows with the episode's length.
For tasks with long episodes, random actions are stepped through the plain env and through the wrapper,
interleaved round by round (this machine is noisy), and the medians' ratio is printed.

    python benchmarks/sparse_cost.py
    python benchmarks/sparse_cost.py --steps 20000 --rounds 5 --tasks acrobot/keep-above
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym

from rewardsmith.sparse import SparseFromFitness
from rewardsmith.task import TaskRef

TASKS = ("acrobot/keep-above", "mountaincar-continuous/race-to-flag")
"""Bundled tasks whose episodes run 500 and 999 steps under random actions."""


def _per_step(env: gym.Env, steps: int, seed: int) -> float:
    """Microseconds per step of random actions, resetting when an episode ends."""
    env.action_space.seed(seed)
    env.reset(seed=seed)
    started = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return (time.perf_counter() - started) / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), help="ENV/TASK")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for label in args.tasks:
        env_name, _, task_name = label.partition("/")
        task = TaskRef(env_name, "sparse cost", task=task_name).resolve()
        plain = task.spec.make(task.task_spec)
        sparse = SparseFromFitness(task.spec.make(task.task_spec), task.spec, task.task_spec, task.fitness,
                                   task.solved)
        times: dict[str, list[float]] = {"plain": [], "sparse": []}
        for round_number in range(args.rounds):
            times["plain"].append(_per_step(plain, args.steps, round_number))
            times["sparse"].append(_per_step(sparse, args.steps, round_number))
        plain_us, sparse_us = statistics.median(times["plain"]), statistics.median(times["sparse"])
        print(f"{label}: plain env {plain_us:.1f} µs/step, with the sparse reward {sparse_us:.1f} µs/step "
              f"({sparse_us / plain_us:.2f}×)")
        plain.close()
        sparse.close()


if __name__ == "__main__":
    main()
