"""Reward quality: built-in-designer searches evaluated against the human and sparse rewards.

For each bundled classic-control env's novel task(s) and its default task: a search with the
built-in designer, then its best reward, the human baseline (the env's own reward for a default
task, the spec's reference reward for a novel one) and the sparse reward each trained on fresh
seeds with the same budget, and scored by the task's fitness. Prints the table of mean fitness,
Eureka's human-normalised score and steps to the solved threshold.

    python benchmarks/quality.py                         # every env and task
    python benchmarks/quality.py --envs cartpole pendulum --iterations 3 --samples 4 --seeds 3

``--hidden-hints``: for each bundled novel task, the built-in designer gets only the task's fitness (as a
user with their own fitness file would): the task's own shaping hints and description are hidden (the
spec's generic, env-level hints stay; the task text is a neutral sentence), so whatever it writes comes
from probing the fitness. Its export, the env's own reward, the sparse signal and the reference reward then
train on fresh seeds with the task's budget; the table gives each seed's fitness and a verdict.

    python benchmarks/quality.py --hidden-hints --seeds 2 --tasks cartpole/hold-right pendulum/hold-tilted

``--choose-seeds N`` exports what ``--final-eval`` would: the search's top ``--top`` candidates re-trained on N
seeds of their own (never the table's), the best mean; without it, the search's best (one training seed each).
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rewardsmith.candidate import Candidate
from rewardsmith.designer import BuiltinDesigner, DesignContext, Proposal
from rewardsmith.evaluate import Arm, evaluate_rewards, evaluate_top_candidates
from rewardsmith.executors import default_workers
from rewardsmith.loop import SearchConfig, run_search
from rewardsmith.runs import RunDir
from rewardsmith.seeds import EVALUATION_TRAINING_SEED
from rewardsmith.spec import load_spec
from rewardsmith.state import SearchState
from rewardsmith.task import ResolvedTask, TaskRef

CLASSIC = ("cartpole", "mountaincar", "mountaincar-continuous", "pendulum", "acrobot")
NOVEL = ("mountaincar-continuous/race-to-flag", "cartpole/hold-right", "pendulum/hold-tilted", "acrobot/keep-above",
         "mountaincar/left-hill", "lunarlander/hover")
"""The bundled novel tasks, cheapest first."""
NEUTRAL = "Do well on the task's fitness."
"""The task text the designer gets in the hidden-hints mode: nothing about the goal."""
CHOOSE_SEED = EVALUATION_TRAINING_SEED + 100
"""First training seed of ``--choose-seeds``: apart from the table's (``EVALUATION_TRAINING_SEED, …``)."""
MATCH = 0.05
"""The export *matches* the reference when its mean fitness is within 5 % of the reference-to-sparse gap below it."""


def hidden(task: ResolvedTask) -> ResolvedTask:
    """``task`` as a user with only its fitness would pose it: no task hints, a neutral description and text."""
    return replace(task, ref=replace(task.ref, text=NEUTRAL),
                   task_spec=replace(task.task_spec, hints=(), description=NEUTRAL))


class HiddenHints:
    """The built-in designer, shown each task with its own hints and description hidden (:func:`hidden`)."""

    name = "builtin"

    def __init__(self) -> None:
        self.inner = BuiltinDesigner()
        self.usage = self.inner.usage

    def propose(self, ctx: DesignContext) -> list[Proposal]:
        return self.inner.propose(replace(ctx, task=hidden(ctx.task)))

    def repair(self, ctx: DesignContext, source: str, problem: str, attempt: int) -> Proposal | None:
        return self.inner.repair(replace(ctx, task=hidden(ctx.task)), source, problem, attempt)


def hidden_hints(args: argparse.Namespace, console: Console, out: Path) -> None:
    """The ``--hidden-hints`` benchmark: see the module docstring."""
    table = Table(title=f"built-in designer on the fitness alone ({args.iterations}×{args.samples}, hints and "
                        f"description hidden) vs the env's own, sparse and reference rewards; fitness per fresh "
                        f"seed")
    for column in ("task", "budget", "export", "env's own", "sparse", "reference", "beats env & sparse on every seed",
                   "≥ reference (mean)"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for label in args.tasks:
        env, _, task_name = label.partition("/")
        started = time.monotonic()
        ref = TaskRef(env, NEUTRAL, task=task_name)
        config = SearchConfig(iterations=args.iterations, samples=args.samples, timesteps=args.timesteps,
                              workers=args.workers, media=False)
        run = RunDir.create(out, env, f"{task_name}-hidden")
        state = run_search(run, ref, HiddenHints(), config)
        best = state.best
        if best is None:
            table.add_row(label, "", "no candidate scored", "", "", "", "no", "no")
            continue
        if args.choose_seeds:
            best = _choose(state, args)
            console.print(f"{label}: exported {best.id}, the best mean of the top {args.top} re-trained on "
                          f"{args.choose_seeds} seeds from {CHOOSE_SEED}")
        evaluation = evaluate_rewards(ref, {"export": best.source, "env": None}, args.seeds, args.timesteps,
                                      args.workers)
        arms = {a.label: a for a in evaluation.arms}
        export, own, sparse, human = (arms.get(name) for name in ("export", "env", "sparse", "human"))
        beats = export is not None and own is not None and sparse is not None and all(
            e > max(o, s) for e, o, s in zip(export.fitness, own.fitness, sparse.fitness, strict=True))
        gap = abs(human.mean - sparse.mean) if human and sparse else 0.0
        matches = export is not None and human is not None and export.mean >= human.mean - MATCH * gap
        row = (label, str(evaluation.timesteps), *(_per_seed(arm) for arm in (export, own, sparse, human)),
               "yes" if beats else "no", "yes" if matches else "no")
        table.add_row(*row)
        console.print(" | ".join(row), f"(done in {time.monotonic() - started:.0f}s, run: {run.root})")
    console.print(table)


def _choose(state: SearchState, args: argparse.Namespace) -> Candidate:
    """What ``--final-eval`` does (the search's top candidates re-trained, the best mean exported), on training
    seeds of its own (``CHOOSE_SEED, …``), so the table's seeds stay fresh for the choice."""
    _, chosen = evaluate_top_candidates(state, args.choose_seeds, args.top, with_baselines=False,
                                        first_seed=CHOOSE_SEED)
    return state.candidates[chosen]


def _per_seed(arm: Arm | None) -> str:
    if arm is None:
        return "–"
    return " / ".join(f"{v:.4g}" for v in arm.fitness) + f" (mean {arm.mean:.4g})"


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
    parser.add_argument("--hidden-hints", action="store_true",
                        help="the built-in designer gets each novel task's fitness alone (see above)")
    parser.add_argument("--tasks", nargs="*", default=list(NOVEL), help="ENV/TASK, for --hidden-hints")
    parser.add_argument("--choose-seeds", type=int, default=0,
                        help="--hidden-hints: export the best mean of the top candidates re-trained on this many "
                             "seeds of their own, as --final-eval does (0: the search's best)")
    parser.add_argument("--top", type=int, default=3, help="candidates --choose-seeds re-trains")
    args = parser.parse_args()
    console = Console()
    out = args.out or Path(tempfile.mkdtemp(prefix="rewardsmith-quality-"))
    if args.hidden_hints:
        hidden_hints(args, console, out)
        return
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
