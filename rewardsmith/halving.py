"""Successive halving: the rungs a search's candidates train in, and who goes on after each.

Each rung trains the candidates still in the race a little further (``min_fraction`` of the full budget
first, ``eta`` times more at each next rung, the full budget last); after a rung the top ``ceil(n / eta)``
by fitness go on and the rest stop, keeping the fitness and curves they reached. A candidate that goes
on continues from the state its previous rung saved (:class:`rewardsmith.training.RungLeg`), so the
survivors end exactly as if trained straight through.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["keep_top", "rung_budgets"]


def rung_budgets(full: int, rollout: int, min_fraction: float, eta: int) -> list[int]:
    """The steps reached at the end of each rung, in whole rollouts of ``rollout`` steps; the last is ``full``.

    ``full`` is already a whole number of rollouts. Rungs that would round to the same step count merge.
    """
    budgets: list[int] = []
    rung = 0
    while True:
        steps = max(int(full * min_fraction * eta**rung) // rollout, 1) * rollout
        if steps >= full:
            break
        if not budgets or steps > budgets[-1]:
            budgets.append(steps)
        rung += 1
    return [*budgets, full]


T = TypeVar("T")


def keep_top(trained: Sequence[T], eta: int, rank: Callable[[T], tuple[float, ...]]) -> tuple[list[T], list[T]]:
    """``(kept, stopped)``: the top ``ceil(n / eta)`` of ``trained`` by ``rank`` (highest first) and the rest."""
    order = sorted(trained, key=rank, reverse=True)
    keep = math.ceil(len(order) / eta)
    return order[:keep], order[keep:]
