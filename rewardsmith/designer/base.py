"""What every designer implements, and what it is given."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from rewardsmith.candidate import Candidate
from rewardsmith.task import ResolvedTask

__all__ = ["REVIEW_NO_VERDICT", "DesignContext", "Designer", "Proposal", "Review", "Usage", "review_without_verdict"]

REVIEW_NO_VERDICT = "review_no_verdict"
"""The code of the warning a candidate's verdict carries when its review gave no readable verdict."""


@dataclass(frozen=True)
class Proposal:
    """A reward program a designer offers, with where it came from."""

    source: str
    origin: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Review:
    """A designer's judgement of a program the critic accepted (``--review``)."""

    passed: bool | None
    """True or False as the reviewer's machine-readable verdict said; None when it gave none (or no reply):
    neither a pass nor a fail, so the program trains, and the run says so."""
    reasons: str
    """Why, in the reviewer's words; sent back with the program when it failed."""
    origin: dict[str, Any] = field(default_factory=dict)
    """Where the review came from (request key, model)."""

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, "origin": dict(self.origin)}


def review_without_verdict(verdict: Any) -> str | None:
    """Why a candidate's review decided nothing (its warning's message), or None if it did or there was none."""
    for issue in getattr(verdict, "issues", ()) or ():
        if issue.code == REVIEW_NO_VERDICT:
            return str(issue.message)
    return None


@dataclass
class Usage:
    """Tokens and requests spent by a designer (zero for the built-in one)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_requests: int = 0
    cost: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cached_requests": self.cached_requests,
            "cost": self.cost,
        }


@dataclass
class DesignContext:
    """Everything a designer may use to propose the next iteration's candidates."""

    task: ResolvedTask
    iteration: int
    samples: int
    seed: int
    history: list[Candidate]
    """Every earlier candidate, in order, with verdicts, results and analyses."""
    parent: Candidate | None
    """The candidate to improve on: the best so far, or the one a person chose."""
    feedback: list[str] = field(default_factory=list)
    """Human feedback given since the last iteration, verbatim."""
    ranking: list[Candidate] = field(default_factory=list)
    """The last iteration's candidates as a person ranked them after watching their rollouts, best first (maybe
    only some); empty when nobody ranked them."""
    slots: tuple[int, ...] | None = None
    """Which of the iteration's samples to propose (None: all ``samples``); a resume re-asks only the
    samples whose request failed. A designer returns one proposal per slot, in order."""
    candidate: str | None = None
    """The candidate a repair or review serves (None for proposals)."""
    attempt: int = 0
    """Repairs that candidate has had so far: which version of it a review reads."""
    repairs: int | None = None
    """The search's ``--repairs``: how many repairs a candidate may have (a repair prompt says so)."""
    budget: int | None = None
    """PPO steps of a full training (a candidate stopped early by successive halving got fewer)."""

    @property
    def scored(self) -> list[Candidate]:
        return [c for c in self.history if c.status == "scored"]


class Designer(Protocol):
    """Produces candidate reward programs.

    ``propose`` returns up to ``ctx.samples`` proposals; ``repair`` gets one refused or crashed
    candidate back with the reason and returns a corrected proposal, or None if it cannot.

    A proposal whose ``origin["refused"]`` holds an issue (code, message) is one the designer could
    not turn into a program (a reply without code, one cut off); the loop refuses it with that issue
    and asks for a repair like any other refusal. A designer may also offer
    ``review(ctx, source, verdict) -> Review | None``, called on every program the critic accepts.
    """

    name: str
    usage: Usage

    def propose(self, ctx: DesignContext) -> list[Proposal]: ...

    def repair(self, ctx: DesignContext, source: str, problem: str, attempt: int) -> Proposal | None: ...
