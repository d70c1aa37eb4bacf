"""Successive halving against full-budget training: env steps, wall time and the best reward's quality.

For each task and search seed, the same search (built-in designer, ``--iterations`` × ``--samples``)
runs twice in this process, one after the other: ``--schedule full`` and ``--schedule halving``. With
one iteration both schedules score the very same proposals (the built-in designer is deterministic in
the seed), so the comparison is of the schedule alone; with more, halving's choices steer later rounds.

Per search it records the PPO training steps of all candidates (evaluation episodes are not counted:
halving runs a final evaluation at every rung, so its saving in wall time is smaller than in steps), the
search's wall time, and its best candidate. Each best candidate is then trained again on
``--eval-seeds`` fresh training seeds (:func:`rewardsmith.evaluate.evaluate_rewards`, the seeds of
``--final-eval``, never the search's), and its fitness is the mean over those seeds and the search seeds.

Noise: halving's best is *within the noise* of full's when its mean re-trained fitness is at least full's
minus the 95 % confidence half-width of the difference of the two means (Student t half-widths of each,
combined as sqrt(a² + b²)): a difference smaller than that is not told apart from seed luck.

    python benchmarks/halving.py                                  # 4 tasks × 3 seeds at the specs' budgets
    python benchmarks/halving.py --budget-scale 0.25 --samples 6  # a quarter of each budget (said so)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rewardsmith.designer import BuiltinDesigner
from rewardsmith.evaluate import evaluate_rewards, mean_ci95
from rewardsmith.loop import SearchConfig, run_search
from rewardsmith.runs import RunDir
from rewardsmith.task import TaskRef

TASKS = ["mountaincar_continuous/race-to-flag", "cartpole/hold-right", "pendulum/hold-tilted", "acrobot/keep-above"]
SCHEDULES = ("full", "halving")


@dataclass
class Outcome:
    """One schedule on one task, over the search seeds."""

    steps: int = 0
    seconds: float = 0.0
    best: list[str] = field(default_factory=list)
    """Each search's best candidate (``seed:id``)."""
    search_fitness: list[float] = field(default_factory=list)
    retrained: list[float] = field(default_factory=list)
    """The best candidates' fitness re-trained on fresh seeds, every (search seed, fresh seed)."""


def search(root: Path, ref: TaskRef, schedule: str, seed: int, budget: int, args: argparse.Namespace):
    config = SearchConfig(iterations=args.iterations, samples=args.samples, timesteps=budget, seed=seed,
                          workers=args.workers, media=False, schedule=schedule, eta=args.eta,
                          min_fraction=args.min_fraction, checkpoints=args.checkpoints,
                          eval_episodes=args.eval_episodes)
    run = RunDir.create(root / f"{ref.env}-{ref.task}-{schedule}-{seed}", ref.env, ref.text)
    started = time.perf_counter()
    state = run_search(run, ref, BuiltinDesigner(), config)
    seconds = time.perf_counter() - started
    if state.status != "finished":
        raise SystemExit(f"{ref.env}/{ref.task} {schedule} seed {seed}: the search ended {state.status}: "
                         f"{state.stop_reason}")
    steps = sum(c.result.steps for c in state.candidates.values() if c.result is not None)
    return state, steps, seconds


def within_noise(full: list[float], halving: list[float]) -> tuple[bool, float, float]:
    """(within, difference of means halving − full, 95 % half-width of that difference)."""
    full_mean, full_ci = mean_ci95(full)
    halving_mean, halving_ci = mean_ci95(halving)
    margin = math.hypot(full_ci, halving_ci)
    return halving_mean >= full_mean - margin, halving_mean - full_mean, margin


def run_task(root: Path, name: str, args: argparse.Namespace) -> dict[str, Outcome]:
    env, task = name.split("/")
    resolved = TaskRef(env, "", task=task).resolve()
    ref = TaskRef(env, resolved.task_spec.description, task=task)
    spec_budget = resolved.budget(None)
    budget = max(int(spec_budget * args.budget_scale), 64)
    outcomes = {schedule: Outcome() for schedule in SCHEDULES}
    for seed in range(args.seeds):
        bests = {}
        for schedule in SCHEDULES:
            state, steps, seconds = search(root, ref, schedule, seed, budget, args)
            best = state.best
            if best is None:
                raise SystemExit(f"{name} {schedule} seed {seed}: no candidate was scored")
            out = outcomes[schedule]
            out.steps += steps
            out.seconds += seconds
            out.best.append(f"{seed}:{best.id}")
            out.search_fitness.append(float(best.fitness))
            bests[schedule] = (best.source, state.budget)
            print(f"  {name} seed {seed} {schedule:7}: {steps:>9,} steps  {seconds:7.1f} s  best {best.id} "
                  f"(search fitness {best.fitness:.2f})", flush=True)
        # the same program is trained once: it would give the same floats twice
        programs = {source: budget_ for source, budget_ in bests.values()}
        labels = {source: f"p{i}" for i, source in enumerate(programs)}
        evaluation = evaluate_rewards(ref, {labels[s]: s for s in programs}, args.eval_seeds, workers=args.workers,
                                      with_baselines=False, budget=next(iter(programs.values())))
        for schedule, (source, _) in bests.items():
            arm = evaluation.arm(labels[source])
            outcomes[schedule].retrained += arm.fitness if arm is not None else []
        same = "the same program" if len(programs) == 1 else "different programs"
        print(f"  {name} seed {seed}: re-trained on {args.eval_seeds} fresh seeds ({same}): "
              + "  ".join(f"{s} {mean_ci95(outcomes[s].retrained[-args.eval_seeds:])[0]:.2f}" for s in SCHEDULES),
              flush=True)
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=TASKS, help="ENV/TASK names (default: four novel tasks)")
    parser.add_argument("--seeds", type=int, default=3, help="search seeds per task")
    parser.add_argument("--iterations", type=int, default=1)
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("--eta", type=int, default=3)
    parser.add_argument("--min-fraction", type=float, default=1 / 9)
    parser.add_argument("--budget-scale", type=float, default=1.0,
                        help="share of each task's spec budget every training gets (below 1: said in the output)")
    parser.add_argument("--eval-seeds", type=int, default=3, help="fresh training seeds for each best candidate")
    parser.add_argument("--checkpoints", type=int, default=10, help="learning-curve evaluations per training")
    parser.add_argument("--eval-episodes", type=int, default=5, help="episodes per checkpoint evaluation")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    print(f"{len(args.tasks)} task(s) × {args.seeds} seed(s); each search {args.iterations} iteration(s) × "
          f"{args.samples} samples, built-in designer; halving eta {args.eta}, min fraction {args.min_fraction:.3g}; "
          f"{args.workers} worker(s); checkpoints {args.checkpoints} × {args.eval_episodes} episodes")
    if args.budget_scale != 1.0:
        print(f"NOTE: budgets lowered to {args.budget_scale:g} × each task's spec budget (not the specs' own)")
    results: dict[str, dict[str, Outcome]] = {}
    with tempfile.TemporaryDirectory(prefix="rewardsmith-halving-") as tmp:
        for name in args.tasks:
            results[name] = run_task(Path(tmp), name, args)
    print()
    header = (f"{'task':38} {'full steps':>11} {'halv steps':>11} {'ratio':>6} {'full s':>7} {'halv s':>7} "
              f"{'full best (re-trained)':>24} {'halving best':>18}  within noise")
    print(header)
    total = {s: Outcome() for s in SCHEDULES}
    for name, outcomes in results.items():
        full, halving = outcomes["full"], outcomes["halving"]
        within, diff, margin = within_noise(full.retrained, halving.retrained)
        f_mean, f_ci = mean_ci95(full.retrained)
        h_mean, h_ci = mean_ci95(halving.retrained)
        print(f"{name:38} {full.steps:>11,} {halving.steps:>11,} {full.steps / halving.steps:>5.2f}× "
              f"{full.seconds:>7.0f} {halving.seconds:>7.0f} {f_mean:>14.2f} ± {f_ci:<7.2f} {h_mean:>9.2f} ± {h_ci:<6.2f}"
              f"  {'yes' if within else 'NO'} (Δ {diff:+.2f}, noise ±{margin:.2f})")
        for schedule in SCHEDULES:
            total[schedule].steps += outcomes[schedule].steps
            total[schedule].seconds += outcomes[schedule].seconds
    full, halving = total["full"], total["halving"]
    print(f"{'total':38} {full.steps:>11,} {halving.steps:>11,} {full.steps / halving.steps:>5.2f}× "
          f"{full.seconds:>7.0f} {halving.seconds:>7.0f}")
    print(f"steps ratio full / halving: {full.steps / halving.steps:.2f}× (target ≥ 2×); "
          f"wall time ratio: {full.seconds / halving.seconds:.2f}× (search only, re-training not counted)")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "results": {n: {s: asdict(o) for s, o in r.items()}
                                                     for n, r in results.items()}}, indent=1))


if __name__ == "__main__":
    main()
