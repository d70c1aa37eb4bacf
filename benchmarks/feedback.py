"""Does the analyzer's feedback help the search? The built-in designer over 3 iterations on novel tasks.

For each task (a non-default task of a bundled env, with a per-candidate budget short enough that
the first iteration does not solve it) and each seed, the same search runs twice:

* **guided** — the built-in designer reads each parent's analysis (flags, correlations) and steers
  the next iteration's first candidate by it (see ``rewardsmith/designer/builtin.py``);
* **blind** — the same designer, same seed, with every analysis hidden: its first candidate of each
  later iteration is a random mutation of the parent instead.

Iteration 0 is the same for both (same seed, nothing analysed yet). Printed side by side: the best
fitness of iteration 0, the best after 3 iterations, and each later iteration's best, for guided
and blind; then the mean over seeds. Run directories are kept under ``--out`` (``rewardsmith show``
reads them).

    python benchmarks/feedback.py                                  # every env's novel task, seeds 0 1 2
    python benchmarks/feedback.py --tasks cartpole:hold-right --seeds 0 --samples 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from rewardsmith.designer import BuiltinDesigner
from rewardsmith.designer.base import DesignContext, Proposal
from rewardsmith.loop import SearchConfig, SearchState, run_search
from rewardsmith.runs import RunDir
from rewardsmith.spec import bundled_names
from rewardsmith.task import TaskRef

BUDGETS = {
    # env:task → PPO steps per candidate, checked to leave iteration 0 well short of solved
    "cartpole:hold-right": 15_000,        # spec budget 50 000; iteration 0 reaches ~90 of 400
    "mountaincar:left-hill": 20_000,      # spec budget 150 000; iteration 0 reaches ~17 of 40
}
BUDGET_FRACTION = 0.5
"""Other envs' novel tasks train for half their spec's budget (check iteration 0 falls short)."""


def novel_tasks() -> list[str]:
    """``env:task`` for the first non-default task of every bundled env that has one."""
    from rewardsmith.spec import load_spec

    found = []
    for env in bundled_names():
        spec = load_spec(env)
        novel = [t for t in spec.tasks if not t.default]
        if novel:
            found.append(f"{env}:{novel[0].name}")
    return found


def budget(name: str) -> int:
    from rewardsmith.spec import load_spec

    if name in BUDGETS:
        return BUDGETS[name]
    return int(load_spec(name.split(":")[0]).ppo.timesteps * BUDGET_FRACTION)


class BlindDesigner(BuiltinDesigner):
    """The built-in designer with every analysis hidden from it: the no-feedback baseline."""

    name = "builtin-blind"

    def propose(self, ctx: DesignContext) -> list[Proposal]:
        history = [replace(c, analysis=None) for c in ctx.history]
        parent = replace(ctx.parent, analysis=None) if ctx.parent is not None else None
        return super().propose(replace(ctx, history=history, parent=parent))


@dataclass
class Outcome:
    task: str
    seed: int
    arm: str
    per_iteration: list[float]
    """Best fitness among each iteration's own candidates."""
    best: float
    solved: float
    seconds: float
    run: Path
    notes: list[str]
    """The guided (first) proposal's note in iterations 1 and 2."""


def _search(name: str, seed: int, arm: str, args: argparse.Namespace, out: Path) -> Outcome:
    env, task_name = name.split(":")
    resolved = TaskRef(env, "", task_name).resolve()
    ref = TaskRef(env, resolved.task_spec.description, task_name)
    config = SearchConfig(iterations=3, samples=args.samples, timesteps=budget(name), seed=seed,
                          workers=args.workers, media=False, device="cpu")
    run = RunDir.create(out, f"{env}-{arm}-s{seed}", task_name)
    designer = BuiltinDesigner() if arm == "guided" else BlindDesigner()
    started = time.monotonic()
    state = run_search(run, ref, designer, config)
    per_iteration = [_iteration_best(state, i) for i in range(3)]
    notes = [c.origin.get("note", "") for c in state.candidates.values() if c.iteration > 0 and c.index == 0]
    best = state.best.fitness if state.best is not None else float("-inf")
    return Outcome(name, seed, arm, per_iteration, best, resolved.solved, time.monotonic() - started, run.root,
                   notes)


def _iteration_best(state: SearchState, iteration: int) -> float:
    scores = [c.fitness for c in state.of_iteration(iteration) if c.fitness is not None]
    return max(scores) if scores else float("-inf")


def _fmt(value: float) -> str:
    return f"{value:8.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=None,
                        help="env:task pairs (default: the first novel task of every bundled env)")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--samples", type=int, default=4, help="candidates per iteration")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-blind", action="store_true", help="skip the blind baseline")
    parser.add_argument("--out", type=Path, default=None, help="keep run directories here")
    args = parser.parse_args(argv)

    tasks = args.tasks or novel_tasks()
    out = args.out or Path(tempfile.mkdtemp(prefix="rewardsmith-feedback-"))
    arms = ["guided"] if args.no_blind else ["guided", "blind"]
    print(f"built-in designer, 3 iterations × {args.samples} candidates, seeds {args.seeds}; runs in {out}")
    print("budgets: " + ", ".join(f"{name} {budget(name)} steps" for name in tasks))
    outcomes: list[Outcome] = []
    for name in tasks:
        for seed in args.seeds:
            for arm in arms:
                outcome = _search(name, seed, arm, args, out)
                outcomes.append(outcome)
                print(f"  {name:34s} seed {seed} {arm:6s}: iteration bests "
                      f"{' '.join(_fmt(v) for v in outcome.per_iteration)}  best {_fmt(outcome.best)}  "
                      f"({outcome.seconds:.0f}s)", flush=True)
                for note in outcome.notes:
                    print(f"      first proposal: {note}")

    print("\nbest fitness: iteration 0 vs after 3 iterations (iteration 0 is shared by both arms)")
    header = f"{'task':34s} {'seed':>4s} {'solved':>8s} {'iter 0':>8s} {'guided':>8s}"
    header += f" {'blind':>8s}" if "blind" in arms else ""
    print(header)
    for name in tasks:
        rows = []
        for seed in args.seeds:
            guided = next(o for o in outcomes if o.task == name and o.seed == seed and o.arm == "guided")
            blind = next((o for o in outcomes if o.task == name and o.seed == seed and o.arm == "blind"), None)
            rows.append((guided.per_iteration[0], guided.best, blind.best if blind else None))
            line = f"{name:34s} {seed:4d} {_fmt(guided.solved)} {_fmt(guided.per_iteration[0])} {_fmt(guided.best)}"
            line += f" {_fmt(blind.best)}" if blind else ""
            print(line)
        for label, average in (("mean", statistics.mean), ("median", statistics.median)):
            line = f"{name:34s} {label:>6s} {'':6s} {_fmt(average(r[0] for r in rows))} {_fmt(average(r[1] for r in rows))}"
            if "blind" in arms:
                line += f" {_fmt(average(r[2] for r in rows))}"
            print(line)
        improved = sum(r[1] > r[0] for r in rows)
        beats = sum(r[1] > r[2] for r in rows) if "blind" in arms else None
        ties = sum(r[1] == r[2] for r in rows) if "blind" in arms else None
        summary = f"  guided beats its iteration 0 in {improved}/{len(rows)} seeds"
        if beats is not None:
            summary += f"; beats blind in {beats}/{len(rows)} (ties {ties})"
        print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
