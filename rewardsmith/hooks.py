"""What the search tells its caller, and what the caller may decide after each iteration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rewardsmith.candidate import Candidate
from rewardsmith.state import SearchState

__all__ = ["IterationDecision", "LoopHooks"]


@dataclass
class IterationDecision:
    """What a person (or hook) decided after an iteration."""

    stop: bool = False
    feedback: list[str] = field(default_factory=list)
    parent: str | None = None
    """Use this candidate as the next iteration's parent instead of the best."""
    ranking: list[str] = field(default_factory=list)
    """The iteration's scored candidates, best first (maybe only some): the first is the next parent unless
    ``parent`` names another, and the designer's next prompt shows the ranking."""


class LoopHooks:
    """Callbacks on the caller's thread; override what you need (the CLI renders with them)."""

    def on_run_start(self, state: SearchState) -> None: ...

    def on_iteration_start(self, state: SearchState, iteration: int) -> None: ...

    def on_candidate(self, state: SearchState, candidate: Candidate) -> None: ...

    def on_progress(self, state: SearchState, candidate: Candidate, checkpoint: dict[str, Any]) -> None: ...

    def on_notice(self, state: SearchState, text: str) -> None:
        """Something the person running the search should know (also an event and in ``summary.json``)."""

    def on_iteration_end(self, state: SearchState, iteration: int) -> IterationDecision | None:
        return None

    def on_run_end(self, state: SearchState) -> None: ...
