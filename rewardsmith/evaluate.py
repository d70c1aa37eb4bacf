"""Honest final evaluation: a reward against the human baseline and the sparse reward, on several seeds.

Every arm trains with the same budget, hyperparameters and seeds, and is scored by the same
fitness over the same evaluation episodes. The human-normalised score is Eureka's:
``(R - sparse) / |human - sparse|`` on mean fitness (1.0 matches the human reward, above 1 beats it).
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
from rewardsmith.task import ResolvedTask, TaskRef
from rewardsmith.training import TrainConfig

if TYPE_CHECKING:
    from rewardsmith.state import SearchState

__all__ = ["Arm", "Evaluation", "evaluate_rewards", "evaluate_top_candidates", "human_normalised", "mean_ci95"]

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

    def arm(self, label: str) -> Arm | None:
        return next((a for a in self.arms if a.label == label), None)

    def normalised(self, label: str) -> float | None:
        arm, human, sparse = self.arm(label), self.arm("human"), self.arm("sparse")
        if arm is None or human is None or sparse is None:
            return None
        return human_normalised(arm.mean, human.mean, sparse.mean)

    def __rich__(self) -> Any:
        from rich.table import Table

        from rewardsmith.safetext import literal

        solved = f"solved at ≥ {self.solved:g}" if math.isfinite(self.solved) else "no solved threshold"
        table = Table(title=literal(f"{self.env} · {self.task_name}: {self.seeds} seeds × {self.timesteps} steps "
                                    f"({solved})"))
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
        return table

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        arms = [Arm(label, None, list(arm["fitness"]), list(arm["solved_at"]), list(arm.get("failures", [])))
                for label, arm in data["arms"].items()]
        solved = data["solved"] if data.get("solved") is not None else math.inf
        return cls(data["task"], data["env"], data["task_name"], solved, data["seeds"], data["timesteps"], arms)

    def to_dict(self) -> dict[str, Any]:
        threshold = self.solved
        return {
            "task": self.task, "env": self.env, "task_name": self.task_name,
            "solved": threshold if math.isfinite(threshold) else None,
            "seeds": self.seeds, "timesteps": self.timesteps,
            "arms": {a.label: {**a.to_dict(threshold), "human_normalised": self.normalised(a.label)}
                     for a in self.arms},
        }


def baselines(task: ResolvedTask) -> list[Arm]:
    """The human baseline (the env's own reward for its default task, else the spec's reference reward)
    and the sparse reward (the task's success signal alone), where the spec has them."""
    arms = []
    if task.task_spec.default and not task.ref.fitness:
        arms.append(Arm("human", None))
    elif task.task_spec.reference_reward is not None:
        arms.append(Arm("human", task.task_spec.reference_reward))
    elif task.task_spec.default:
        arms.append(Arm("human", None))
    if task.task_spec.sparse_reward is not None:
        arms.append(Arm("sparse", task.task_spec.sparse_reward))
    return arms


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
) -> Evaluation:
    """Train each reward (label → program; None is the env's own) on ``seeds`` seeds, side by side.

    ``budget`` (a run's recorded steps per training) wins over ``timesteps`` (rounded to whole rollouts)."""
    task = task_ref.resolve()
    budget = budget if budget is not None else task.budget(timesteps)
    arms = [Arm(label, source) for label, source in rewards.items()]
    if with_baselines:
        arms += [a for a in baselines(task) if a.label not in rewards]
    jobs: dict[Future, tuple[Arm, int]] = {}
    with ProcessPool(workers) as pool:
        for seed in range(seeds):
            for arm in arms:
                seeded = TrainConfig.for_evaluation(budget, device, EVALUATION_TRAINING_SEED + seed)
                jobs[pool.submit(evaluation_job, task_ref.to_dict(), arm.source, seeded)] = (arm, seed)
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
    return Evaluation(task.text, task.spec.gym_id, task.task_spec.name, task.solved, seeds, budget, arms)


def evaluate_top_candidates(state: SearchState, seeds: int, top: int = 3,
                            on_result: Callable[[str, int, dict[str, Any]], None] | None = None) -> tuple[Evaluation, str]:
    """Re-train the search's ``top`` candidates and the baselines on ``seeds`` fresh seeds.

    One training seed decides a candidate's search fitness, so the search's best is partly luck
    (the winner's curse); the candidate with the best mean here is the one worth exporting.

    Returns:
        The evaluation and the id of the candidate with the best mean fitness.
    """
    scored = sorted((c for c in state.candidates.values() if c.status == "scored"),
                    key=lambda c: c.fitness, reverse=True)[:top]
    if not scored:
        raise ValueError("no scored candidate to evaluate")
    config = state.config
    evaluation = evaluate_rewards(state.task.ref, {c.id: c.source for c in scored}, seeds,
                                  config.timesteps, config.workers, config.device, on_result=on_result,
                                  budget=state.budget)
    chosen = max(scored, key=lambda c: (evaluation.arm(c.id).mean, c.fitness))
    return evaluation, chosen.id
