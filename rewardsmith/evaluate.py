"""Honest final evaluation: a reward against the baselines that exist for its fitness, on several seeds.

Every arm trains with the same budget, hyperparameters and seeds, and is scored by the same
fitness over the same evaluation episodes. The baselines:

- scored by a spec's task (no ``--fitness``): the human baseline (the env's own reward for the default task,
  else the task's reference reward, or ``--baseline FILE``) and the task's sparse reward;
- scored by the user's own fitness: the env's own reward, the human reference only when one is given
  (``--baseline FILE``), and the sparse reward the fitness's ``SOLVED`` defines (:mod:`rewardsmith.sparse`)
  when that is well defined. Nothing made for another goal is shown beside it.

The human-normalised score is Eureka's: ``(R - sparse) / |human - sparse|`` on mean fitness (1.0 matches the
human reward, above 1 beats it). It is shown only when both rows exist and the human row is clearly above
the sparse one (by more than either's 95% CI half-width); otherwise the scale measures noise (a score of 24.9
from a gap of almost nothing) or runs backwards (the human row's own score would be -1), and a note says why.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from rewardsmith.executors import JobFailed, ProcessPool, WorkerDied
from rewardsmith.jobs import evaluation_job
from rewardsmith.seeds import EVALUATION_TRAINING_SEED
from rewardsmith.sparse import sparse_definition, sparse_problem
from rewardsmith.task import ResolvedTask, TaskRef
from rewardsmith.training import TrainConfig

if TYPE_CHECKING:
    from rewardsmith.candidate import Candidate
    from rewardsmith.state import SearchState

__all__ = ["ENV_REWARD", "Arm", "Evaluation", "baselines", "evaluate_rewards", "evaluate_top_candidates",
           "human_normalised", "mean_ci95", "top_candidates"]

ENV_REWARD = "env reward"
"""The env's own reward's row where it is not the human baseline (a fitness of the user's own)."""

# Two-sided 95% Student t quantiles by degrees of freedom (1..30); beyond, the normal 1.96.
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042]


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student t; 0 for one value)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return -math.inf, 0.0
    mean = statistics.fmean(finite)
    if len(finite) < 2:
        return mean, 0.0
    t = _T95[len(finite) - 2] if len(finite) - 1 <= len(_T95) else 1.96
    return mean, t * statistics.stdev(finite) / math.sqrt(len(finite))


def human_normalised(reward: float, human: float, sparse: float) -> float | None:
    """Eureka's human-normalised score; None when human and sparse do equally well."""
    gap = abs(human - sparse)
    if not all(math.isfinite(v) for v in (reward, human, sparse)) or gap < 1e-12:
        return None
    return (reward - sparse) / gap


@dataclass
class Arm:
    """One reward trained on every seed."""

    label: str
    source: str | None
    """The reward program; None is the env's own reward."""
    fitness: list[float] = field(default_factory=list)
    solved_at: list[int | None] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def sparse_from_fitness(self) -> bool:
        """Trains on the sparse reward the fitness's SOLVED defines: :func:`baselines` makes its sparse row so, with
        no program (a spec task's sparse row has its own program)."""
        return self.label == "sparse" and self.source is None

    @property
    def mean(self) -> float:
        return mean_ci95(self.fitness)[0]

    @property
    def ci95(self) -> float:
        return mean_ci95(self.fitness)[1]

    def solved_rate(self, threshold: float) -> float:
        return sum(f >= threshold for f in self.fitness) / len(self.fitness) if self.fitness else 0.0

    def to_dict(self, threshold: float) -> dict[str, Any]:
        data = asdict(self)
        data.pop("source")
        data.update(mean=self.mean, ci95=self.ci95, solved_rate=self.solved_rate(threshold))
        return data


@dataclass
class Evaluation:
    task: str
    env: str
    task_name: str
    solved: float
    seeds: int
    timesteps: int
    arms: list[Arm]
    fitness: str = ""
    """What scores every arm (:attr:`ResolvedTask.fitness_label`): ``FILE.py:FUNCTION`` or ``env:task``."""
    notes: list[str] = field(default_factory=list)
    """Why a baseline is missing, and what a derived one means."""

    def arm(self, label: str) -> Arm | None:
        return next((a for a in self.arms if a.label == label), None)

    def normalising_problem(self) -> str | None:
        """Why no human-normalised score is shown, or None when it is."""
        human, sparse = self.arm("human"), self.arm("sparse")
        if human is None or sparse is None:
            missing = ", ".join(f"no {n} row" for n, a in (("human", human), ("sparse", sparse)) if a is None)
            return f"no human-normalised score: it needs a human row and a sparse row ({missing})"
        if not (math.isfinite(human.mean) and math.isfinite(sparse.mean)):
            return "no human-normalised score: a baseline failed on every seed"
        gap = human.mean - sparse.mean
        if gap <= max(human.ci95, sparse.ci95, 1e-12):
            return (f"no human-normalised score: the human row ({human.mean:.4g} ± {human.ci95:.3g}) is not clearly "
                    f"above the sparse row ({sparse.mean:.4g} ± {sparse.ci95:.3g}), so (R − sparse) / |human − "
                    "sparse| would not measure progress from sparse to human")
        return None

    def normalised(self, label: str) -> float | None:
        """Eureka's human-normalised score of the row ``label`` (the human row's is 1 by definition); None where
        :meth:`normalising_problem` says why not."""
        arm, human, sparse = self.arm(label), self.arm("human"), self.arm("sparse")
        if arm is None or human is None or sparse is None or self.normalising_problem() is not None:
            return None
        if arm is human:
            return 1.0
        return human_normalised(arm.mean, human.mean, sparse.mean)

    @property
    def explanations(self) -> list[str]:
        """The notes, then why no human-normalised score is shown (where it is not)."""
        problem = self.normalising_problem()
        return [*self.notes, *([problem] if problem else [])]

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        from rewardsmith.safetext import literal

        solved = f"solved at ≥ {self.solved:g}" if math.isfinite(self.solved) else "no solved threshold"
        # the title above the table, not in it: a long fitness path would wrap to the table's width
        title = literal(f"{self.env} · {self.fitness or self.task_name}: {self.seeds} seeds × {self.timesteps} steps "
                        f"({solved})", "bold")
        table = Table()
        for column in ("reward", "fitness (mean ± 95% CI)", "per seed", "solved", "steps to solved",
                       "human-normalised"):
            table.add_column(column, justify="left" if column in ("reward", "per seed") else "right")
        for arm in self.arms:
            reached = [s for s in arm.solved_at if s is not None]
            steps = f"{statistics.median(reached):.0f} ({len(reached)}/{len(arm.solved_at)})" if reached else "–"
            score = self.normalised(arm.label)
            table.add_row(literal(arm.label), f"{arm.mean:.4g} ± {arm.ci95:.3g}",
                          " ".join(f"{f:.4g}" for f in arm.fitness),
                          f"{arm.solved_rate(self.solved):.0%}" if math.isfinite(self.solved) else "–", steps,
                          "–" if score is None else f"{score:.2f}")
        return Group(title, table, *(literal(note, "dim") for note in self.explanations))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        arms = [Arm(label, None, list(arm["fitness"]), list(arm["solved_at"]), list(arm.get("failures", [])))
                for label, arm in data["arms"].items()]
        solved = data["solved"] if data.get("solved") is not None else math.inf
        return cls(data["task"], data["env"], data["task_name"], solved, data["seeds"], data["timesteps"], arms,
                   str(data.get("fitness") or ""), [str(n) for n in data.get("notes") or []])

    def to_dict(self) -> dict[str, Any]:
        threshold = self.solved
        return {
            "task": self.task, "env": self.env, "task_name": self.task_name, "fitness": self.fitness,
            "notes": self.notes, "human_normalised_missing": self.normalising_problem(),
            "solved": threshold if math.isfinite(threshold) else None,
            "seeds": self.seeds, "timesteps": self.timesteps,
            "arms": {a.label: {**a.to_dict(threshold), "human_normalised": self.normalised(a.label)}
                     for a in self.arms},
        }


def baselines(task: ResolvedTask, human: str | None = None) -> tuple[list[Arm], list[str]]:
    """The baselines that exist for the task's fitness (see the module doc), and notes on what they mean or why
    one is missing.

    Args:
        human: a human reference reward program (``--baseline FILE``), already accepted by the critic.
    """
    spec_task = task.task_spec
    own_fitness = bool(task.ref.fitness) or task.fitness is not spec_task.fitness
    if not own_fitness:  # scored by the spec's own task: its own baselines
        arms = []
        if human is not None:
            arms.append(Arm("human", human))
        elif spec_task.default:
            arms.append(Arm("human", None))
        elif spec_task.reference_reward is not None:
            arms.append(Arm("human", spec_task.reference_reward))
        if spec_task.sparse_reward is not None:
            arms.append(Arm("sparse", spec_task.sparse_reward))
        return arms, []
    arms = [Arm(ENV_REWARD, None)]
    if human is not None:
        arms.append(Arm("human", human))
    problem = sparse_problem(task.spec, spec_task, task.fitness, task.solved, task.fitness_label)
    if problem is not None:
        return arms, [problem]
    arms.append(Arm("sparse", None))
    return arms, [sparse_definition(task.fitness_label, task.solved)]


def evaluate_rewards(
    task_ref: TaskRef,
    rewards: dict[str, str | None],
    seeds: int,
    timesteps: int | None = None,
    workers: int = 1,
    device: str = "auto",
    with_baselines: bool = True,
    on_result: Callable[[str, int, dict[str, Any]], None] | None = None,
    budget: int | None = None,
    human: str | None = None,
    first_seed: int = EVALUATION_TRAINING_SEED,
) -> Evaluation:
    """Train each reward (label → program; None is the env's own) on ``seeds`` seeds, beside the baselines that
    exist for the task's fitness (:func:`baselines`; ``human`` is a human reference program).

    ``budget`` (a run's recorded steps per training) wins over ``timesteps`` (rounded to whole rollouts).
    ``first_seed``: the training seeds are ``first_seed, first_seed + 1, …`` (a benchmark that chooses among
    rewards on some seeds and measures the choice on others passes seeds of its own)."""
    task = task_ref.resolve()
    budget = budget if budget is not None else task.budget(timesteps)
    arms = [Arm(label, source) for label, source in rewards.items()]
    notes: list[str] = []
    if with_baselines:
        extra, notes = baselines(task, human)
        arms += [a for a in extra if a.label not in rewards]
    jobs: dict[Future, tuple[Arm, int]] = {}
    with ProcessPool(workers) as pool:
        for seed in range(seeds):
            for arm in arms:
                seeded = TrainConfig.for_evaluation(budget, device, first_seed + seed)
                jobs[pool.submit(evaluation_job, task_ref.to_dict(), arm.source, seeded,
                                 arm.sparse_from_fitness)] = (arm, seed)
        for future, (arm, seed) in jobs.items():
            try:
                result = future.result()
            except (WorkerDied, JobFailed) as exc:
                result = {"status": "failed", "fitness": -math.inf, "solved_at": None, "reason": {"message": str(exc)}}
            arm.fitness.append(result["fitness"])
            arm.solved_at.append(result.get("solved_at"))
            if result["status"] != "scored":
                arm.failures.append(str((result.get("reason") or {}).get("message", "failed")))
            if on_result is not None:
                on_result(arm.label, seed, result)
    return Evaluation(task.text, task.spec.gym_id, task.task_spec.name, task.solved, seeds, budget, arms,
                      task.fitness_label, notes)


def top_candidates(state: SearchState, top: int) -> list[Candidate]:
    """The search's ``top`` scored candidates, best first by :attr:`Candidate.merit` (one stopped at a
    successive-halving rung after every one trained to the full budget), ties to the earlier, as
    :attr:`SearchState.best` ranks them."""
    scored = [c for c in state.candidates.values() if c.status == "scored"]
    return sorted(scored, key=lambda c: c.merit, reverse=True)[:top]


def evaluate_top_candidates(state: SearchState, seeds: int, top: int = 3,
                            on_result: Callable[[str, int, dict[str, Any]], None] | None = None,
                            with_baselines: bool = True,
                            first_seed: int = EVALUATION_TRAINING_SEED) -> tuple[Evaluation, str]:
    """Re-train the search's ``top`` candidates (:func:`top_candidates`) and the baselines on ``seeds`` fresh seeds,
    each with the run's budget, workers and device.

    One training seed decides a candidate's search fitness, so the search's best is partly luck
    (the winner's curse); the candidate with the best mean here is the one worth exporting.
    ``with_baselines`` and ``first_seed`` as in :func:`evaluate_rewards` (a benchmark makes this choice without
    the baselines, on seeds apart from those it measures the choice on).

    Returns:
        The evaluation and the id of the candidate with the best mean fitness (ties: the better ranked).
    """
    scored = top_candidates(state, top)
    if not scored:
        raise ValueError("no scored candidate to evaluate")
    config = state.config
    evaluation = evaluate_rewards(state.task.ref, {c.id: c.source for c in scored}, seeds,
                                  config.timesteps, config.workers, config.device, on_result=on_result,
                                  budget=state.budget, with_baselines=with_baselines, first_seed=first_seed)
    chosen = max(scored, key=lambda c: evaluation.arm(c.id).mean)  # max keeps the first of equal means
    return evaluation, chosen.id
