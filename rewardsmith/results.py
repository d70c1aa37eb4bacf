"""What a training and its analysis produce: the types the trainer writes and the designers, the loop,
the report and ``show`` read (so none of them needs the trainer to know their shape).

A failure's reason is one type end to end: :class:`rewardsmith.sandbox.Issue` (code, message, line,
severity), from the sandbox that raised it through :class:`TrainingResult` and
:attr:`rewardsmith.candidate.Candidate.reason` to the event log; ``str(reason)`` is its one-line form.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypedDict

from rewardsmith.sandbox.issues import Issue

__all__ = ["Analysis", "Checkpoint", "FailureReason", "TrainingResult"]

FailureReason = Issue
"""Why a candidate was refused or its training failed: one finding of the critic, the sandbox or the loop."""


@dataclass
class Checkpoint:
    """The state of training at one evaluation."""

    step: int
    fitness: float
    fitness_std: float
    success_rate: float
    episode_length: float
    shaped_return: float | None
    """Mean return under the candidate reward of training episodes finished since the last checkpoint."""
    env_return: float | None
    """Mean return under the env's own reward of the same episodes."""
    components: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per component: mean, std, min, max of its per-step values since the last checkpoint."""
    train_episode_length: float | None = None
    """Mean length of the same episodes (the analyzer turns per-step components into episode returns with it)."""


@dataclass
class TrainingResult:
    """What a training produced; written to ``curves.json``."""

    status: Literal["scored", "failed"]
    fitness: float
    fitness_std: float = 0.0
    success_rate: float = 0.0
    episode_length: float = 0.0
    checkpoints: list[Checkpoint] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    reason: FailureReason | None = None
    """The issue that failed the training (code, message, line); a dict of its fields in ``curves.json``."""
    solved_at: int | None = None
    """The first checkpoint step whose mean fitness reached the solved threshold; the final policy may not hold
    it (solved means the final fitness reaches the threshold: :func:`rewardsmith.task.is_solved`)."""
    policy_file: str | None = None

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps_per_second"] = self.steps_per_second
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingResult:
        data = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        data["checkpoints"] = [Checkpoint(**c) for c in data.get("checkpoints", [])]
        reason = data.get("reason")
        data["reason"] = Issue.from_dict(reason) if isinstance(reason, dict) else None
        return cls(**data)


class Analysis(TypedDict, total=False):
    """What the analyzer writes to ``analysis.json`` (:func:`rewardsmith.analyzer.analyze`) and designers,
    ``show`` and the report read. Every key may be missing in a run written by an older version, or when the
    analyzer failed (then ``error`` and ``traceback`` say why, and only ``reflection`` is filled)."""

    version: int
    candidate: str | None
    episodes: dict[str, int]
    """How many episodes were analysed: ``deterministic`` (the final evaluation) and ``stochastic``."""
    fitness: dict[str, Any]
    """Mean, spread and success rate of the deterministic episodes' fitness; ``stochastic``: the same of the rest."""
    episode_length: dict[str, Any]
    training: dict[str, list[Any]]
    """The checkpoints' series: steps, fitness, shaped and env returns, episode lengths."""
    components: dict[str, dict[str, Any]]
    """Per reward component: share, correlation with fitness, the field it tracks, flags, series."""
    terminations: dict[str, int]
    failure_states: dict[str, Any]
    coverage: dict[str, Any]
    hacking: list[dict[str, Any]]
    """Signs of reward hacking: kind, component (or None), evidence."""
    flags: list[str]
    """``flag:component`` findings (``flat:upright``, ``hacking:...``)."""
    reflection: str
    """The text the next iteration's designer reads."""
    warnings: list[str]
    error: str
    traceback: str
