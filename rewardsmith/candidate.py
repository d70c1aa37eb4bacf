"""A candidate reward program and everything learned about it."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from rewardsmith.critic import Verdict
from rewardsmith.results import Analysis, FailureReason, TrainingResult

__all__ = ["Candidate", "Status", "candidate_id", "source_hash"]

Status = Literal["proposed", "rejected", "training", "scored", "failed"]


def candidate_id(iteration: int, index: int) -> str:
    """``"01-03"``: the fourth candidate of the second iteration."""
    return f"{iteration:02d}-{index:02d}"


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


@dataclass
class Candidate:
    """One reward program: its source and origin, the critic's verdict, training and analysis."""

    id: str
    iteration: int
    index: int
    source: str
    origin: dict[str, Any] = field(default_factory=dict)
    """Who wrote it: designer name, parent id, and designer-specific data (genome, request hash)."""
    status: Status = "proposed"
    verdict: Verdict | None = None
    result: TrainingResult | None = None
    analysis: Analysis | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    """Earlier versions refused by the critic and sent back for repair: source and issues."""
    rung: int = 0
    """Successive halving: the rung it trains in next (its state saved by the rung before)."""
    stopped_at_rung: int | None = None
    """Successive halving: the rung after which it stopped, its fitness and curves those of that rung."""

    @property
    def fitness(self) -> float | None:
        if self.status == "scored" and self.result is not None:
            return self.result.fitness
        return None

    @property
    def merit(self) -> tuple[bool, float, int, int]:
        """How candidates rank (higher is better) for best, parent and top: one trained to the full budget before
        one stopped at a rung (successive halving), then by fitness, then the earlier. A rung's fitness is
        measured after a fraction of the budget, so it says where the candidate was, not where it would have
        ended."""
        fitness = self.fitness
        return (self.stopped_at_rung is None, fitness if fitness is not None else -math.inf, -self.iteration,
                -self.index)

    @property
    def parent(self) -> str | None:
        return self.origin.get("parent")

    @property
    def reason(self) -> FailureReason | None:
        """Why it was rejected or failed (``str()`` of it: one line, ``[code] line N: message``)."""
        if self.status == "rejected" and self.verdict is not None:
            errors = self.verdict.errors
            if errors:
                return errors[0]
            return FailureReason("rejected", self.verdict.explain())
        if self.status == "failed" and self.result is not None and self.result.reason:
            return self.result.reason
        return None

    def summary(self) -> dict[str, Any]:
        """The row of ``summary.json``'s ``candidates``."""
        row: dict[str, Any] = {
            "id": self.id,
            "iteration": self.iteration,
            "status": self.status,
            "reason": str(self.reason) if self.reason else None,
            "fitness": self.fitness,
            "parent": self.parent,
            "designer": self.origin.get("designer"),
            "repairs": len(self.attempts),
        }
        if self.result is not None and self.status == "scored":
            row["success_rate"] = self.result.success_rate
            row["solved_at"] = self.result.solved_at
        if self.stopped_at_rung is not None:
            row["stopped_at_rung"] = self.stopped_at_rung
            row["steps"] = self.result.steps if self.result is not None else None
        if self.analysis:
            row["flags"] = self.analysis.get("flags", [])
        return row
