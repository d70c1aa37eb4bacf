"""MuJoCo novel tasks: the hand-written reference reward vs the env's own reward vs the sparse signal.

For each bundled MuJoCo spec's novel task (Hopper hop-in-place, HalfCheetah run-backward, Walker2d
walk-slow, Ant turn-in-place), the three rewards train on the same seeds with the same budget and
PPO settings (the spec's, from rl-baselines3-zoo) and are scored by the task's fitness. The env's own
reward is the control: it rewards the default goal (forward motion), so a task whose fitness it
matches was not really novel. Prints one table per task and the seconds it took.

    python benchmarks/mujoco_tasks.py                               # 4 tasks × 3 rewards × 2 seeds, 204,800 steps
    python benchmarks/mujoco_tasks.py --task hopper:hop-in-place --timesteps 2048 --seeds 2   # a smoke run

Needs the mujoco extra (pip install -e ".[mujoco]"). At the default budget each training takes a few
minutes on a CPU core (the zoo trains these robots 1M steps, five times longer).
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console

from rewardsmith.evaluate import evaluate_rewards
from rewardsmith.executors import default_workers
from rewardsmith.spec import load_spec
from rewardsmith.task import TaskRef

NOVEL_TASKS = ("hopper:hop-in-place", "halfcheetah:run-backward", "walker2d:walk-slow", "ant:turn-in-place")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", action="append", metavar="ENV:TASK",
                        help=f"a task to run (repeatable; default: {', '.join(NOVEL_TASKS)})")
    parser.add_argument("--timesteps", type=int, default=None, help="PPO steps per training (default: the task's)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    console = Console()
    for pair in args.task or NOVEL_TASKS:
        env, _, task_name = pair.partition(":")
        task = load_spec(env).task(task_name)
        ref = TaskRef(env, task.description, task_name)
        started = time.monotonic()
        # the env's own reward as an arm beside the task's baselines (reference = "human", and "sparse")
        evaluation = evaluate_rewards(ref, {"env reward": None}, args.seeds, args.timesteps, args.workers,
                                      args.device)
        console.print(evaluation)
        console.print(f"{pair}: {evaluation.seeds} seeds × {evaluation.timesteps:,} steps per training, "
                      f"{time.monotonic() - started:.0f} s", style="dim")


if __name__ == "__main__":
    main()
