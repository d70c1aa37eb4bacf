"""Reward quality: built-in-designer searches evaluated against the human and sparse rewards.

For each bundled classic-control env's novel task(s) and its default task: a search with the
built-in designer, then its best reward, the human baseline (the env's own reward for a default
task, the spec's reference reward for a novel one) and the sparse reward each trained on fresh
seeds with the same budget, and scored by the task's fitness. Prints the table of mean fitness,
Eureka's human-normalised score and steps to the solved threshold.

    python benchmarks/quality.py                         # every env and task
    python benchmarks/quality.py --envs cartpole pendulum --iterations 3 --samples 4 --seeds 3
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rewardsmith.designer import BuiltinDesigner
from rewardsmith.evaluate import evaluate_rewards
from rewardsmith.executors import default_workers
from rewardsmith.loop import SearchConfig, run_search
from rewardsmith.runs import RunDir
from rewardsmith.spec import load_spec
from rewardsmith.task import TaskRef

CLASSIC = ("cartpole", "mountaincar", "mountaincar-continuous", "pendulum", "acrobot")


def _steps(solved_at: list[int | None]) -> str:
    reached = [s for s in solved_at if s is not None]
    if not reached:
        return "–"
    return f"{statistics.median(reached):.0f} ({len(reached)}/{len(solved_at)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="*", default=list(CLASSIC))
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=None, help="default: each spec's budget")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temp dir)")
    args = parser.parse_args()
    console = Console()
    out = args.out or Path(tempfile.mkdtemp(prefix="rewardsmith-quality-"))
    table = Table(title=f"built-in designer ({args.iterations}×{args.samples}) vs human and sparse rewards, "
                        f"{args.seeds} fresh seeds each")
    for column in ("env", "task", "solved at", "budget", "search best", "designed", "human", "sparse",
                   "human-normalised", "steps to solved: designed / human / sparse"):
        table.add_column(column, justify="left" if column in ("env", "task") else "right")
    for name in args.envs:
        spec = load_spec(name)
        for task in spec.tasks:
            started = time.monotonic()
            ref = TaskRef(name, task.description, task=task.name)
            config = SearchConfig(iterations=args.iterations, samples=args.samples, timesteps=args.timesteps,
                                  workers=args.workers, media=False)
            run = RunDir.create(out, name, task.name)
            state = run_search(run, ref, BuiltinDesigner(), config)
            best = state.best
            if best is None:
                table.add_row(name, task.name, f"{task.solved:g}", "", "no candidate scored", "", "", "", "", "")
                continue
            evaluation = evaluate_rewards(ref, {"designed": best.source}, args.seeds, args.timesteps,
                                          args.workers)
            arms = {a.label: a for a in evaluation.arms}
            score = evaluation.normalised("designed")

            def cell(label: str, arms: dict = arms) -> str:
                arm = arms.get(label)
                return "–" if arm is None else f"{arm.mean:.4g} ± {arm.ci95:.2g}"

            steps = " / ".join(_steps(arms[label].solved_at) if label in arms else "–"
                               for label in ("designed", "human", "sparse"))
            row = (name, task.name, f"{task.solved:g}", str(evaluation.timesteps), f"{best.fitness:.4g}",
                   cell("designed"), cell("human"), cell("sparse"),
                   "–" if score is None or not math.isfinite(score) else f"{score:.2f}", steps)
            table.add_row(*row)
            # Each row as it lands, so a long run that is cut short still reports what it finished.
            console.print(" | ".join(row), f"(done in {time.monotonic() - started:.0f}s, run: {run.root})")
    console.print(table)


if __name__ == "__main__":
    main()
