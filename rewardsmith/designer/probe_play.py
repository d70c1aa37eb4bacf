"""What the probe's recorded random play says beyond the sweeps.

* **Agreement with the env's own reward.** Each recorded episode is cut into prefixes; the fitness of
  consecutive prefixes gives its gain over each stretch, and the env's own reward over the same stretch is
  set against it (Pearson r across stretches, both per step). Where the two go together, the env's reward is
  worth composing; where they do not, it is not; where either never moved in random play, nobody knows.
  One disagreement shows without the fitness moving: where the env's reward over random play is a charge
  on the (continuous) action (r <= -``DRIVES`` with its squared size) and the probe measured that
  full-scale actions cost the fitness nothing, the env's reward charges for what the fitness does not.
* **Momentum toward a target random play never reached.** Where every recorded episode ran its full length
  (nothing ended it early) and still never came near a probed target, force alone does not get there in the
  time given: the task needs momentum (an under-actuated system). The field that drives the target's field is
  the one whose next value goes with the target field's next-step change (|r| ≥ ``DRIVES``); a gain on its
  magnitude is the textbook energy shaping, found here from data rather than from the task's name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rewardsmith.episode import Episode, NamedArrays
from rewardsmith.spec import EnvSpec

if TYPE_CHECKING:
    from rewardsmith.designer.probe import Monotone, Target

__all__ = ["AGREES", "DISAGREES", "DRIVES", "Agreement", "Momentum", "action_charge", "measure_agreement",
           "momentum_findings"]

AGREES = 0.7
"""r at or above which the env's own reward is composed as a term from the start."""
DISAGREES = 0.3
"""r below which it is left out; between the two (or unmeasured) it is on in some candidates only."""
DRIVES = 0.9
"""|r| between a field's next value and a target field's next-step change at which the first drives the second."""
CUTS = 8
"""Prefixes a recorded episode is cut into at most, for the agreement."""


@dataclass(frozen=True)
class Agreement:
    """How the fitness's gain over stretches of random play goes with the env's own reward over them."""

    r: float | None
    """Pearson r across stretches; None where the fitness or the env's reward never moved (unmeasured)."""
    stretches: int
    episodes: int
    scale: float = 1.0
    """The env's reward per step in random play, in magnitude (its mean absolute value; 1 where it was 0)."""
    action_charge: float | None = None
    """Set where the env's reward is a charge on the action that the fitness does not make (see the module
    docstring): r between the env's reward and the squared action over random play."""

    @property
    def verdict(self) -> str:
        """``agrees``, ``disagrees`` or ``unsure`` (moderate, or unmeasured)."""
        if self.action_charge is not None:
            return "disagrees"
        if self.r is None:
            return "unsure"
        return "agrees" if self.r >= AGREES else "disagrees" if self.r < DISAGREES else "unsure"

    def describe(self) -> str:
        where = f"{self.stretches} stretches of {self.episodes} random-play episodes"
        if self.action_charge is not None:
            return (f"the env's reward charges for the action over {where} (r = {self.action_charge:+.2f} with "
                    f"its squared size), while full-scale actions cost the fitness nothing")
        if self.r is None:
            return f"agreement with the fitness unmeasured: one of the two never moved over {where}"
        return f"r = {self.r:+.2f} between the env's reward and the fitness's gain over {where}"


@dataclass(frozen=True)
class Momentum:
    """A target random play never reached, and the field whose magnitude carries the system toward it."""

    label: str
    """The target's field (or angle)."""
    gap: float
    """How near random play came: its closest distance to the target (or to the halfway point of a monotone field)."""
    driver: str
    """The field that drives it."""
    r: float
    """Correlation of the driver's next value with the target field's next-step change."""
    bound: float
    """The driver's magnitude scale: its documented bound, or twice what random play reached."""
    episodes: int

    def describe(self) -> str:
        return (f"random play never came within {self.gap:.3g} of the best {self.label} in {self.episodes} episodes "
                f"run to their end, and {self.driver} drives {self.label} (r = {self.r:+.2f} with its next-step "
                f"change): a gain on |{self.driver}| builds the momentum to get there")


def measure_agreement(call: Callable[[Episode], float | None], recorded: list[Episode],
                      cuts: int = CUTS) -> Agreement:
    """Fitness of at most ``cuts`` prefixes of each recorded episode (``call`` answers None for a failed call)."""
    gains: list[float] = []
    rewards: list[float] = []
    for episode in recorded:
        ends = sorted({int(c) for c in np.linspace(0, len(episode), cuts + 1)[1:] if c >= 1})
        values = [(end, call(_prefix(episode, end))) for end in ends]
        for (a, fa), (b, fb) in zip(values, values[1:]):
            if fa is not None and fb is not None:
                gains.append((fb - fa) / (b - a))
                rewards.append(float(np.mean(episode.env_rewards[a:b])))
    typical = float(np.mean(np.abs(np.concatenate([e.env_rewards for e in recorded])))) if recorded else 0.0
    return Agreement(_pearson(np.asarray(rewards), np.asarray(gains)), len(gains), len(recorded),
                     typical if typical > 1e-9 else 1.0)


def action_charge(recorded: list[Episode]) -> float | None:
    """r between the env's reward and the squared size of a continuous action over random play, where it is at
    most -``DRIVES`` (the reward is mostly a charge on the action); None otherwise."""
    actions = [np.asarray(e.actions, dtype=np.float64).reshape(len(e), -1) for e in recorded if len(e)]
    if not actions:
        return None
    size = np.concatenate([np.sum(np.square(a), axis=1) for a in actions])
    r = _pearson(size, np.concatenate([e.env_rewards for e in recorded if len(e)]))
    return r if r is not None and r <= -DRIVES else None


def _prefix(episode: Episode, end: int) -> Episode:
    """The first ``end`` steps, cut by the time limit unless it is the whole episode."""
    if end >= len(episode):
        return episode
    return Episode(NamedArrays(episode.obs.layout, episode.obs.data[:end + 1]), episode.actions[:end],
                   episode.env_rewards[:end], False, True)


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 4 or float(np.std(x)) <= 1e-12 or float(np.std(y)) <= 1e-12:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def momentum_findings(findings: list[Target | Monotone], recorded: list[Episode], spec: EnvSpec) -> list[Momentum]:
    """For each probed target or monotone field random play never reached (in episodes nothing ended early),
    the field that drives it; none where random play was cut short (then it proves nothing about reach)."""
    if not recorded or any(e.terminated for e in recorded):
        return []
    data = [e.obs.data for e in recorded]
    rows = np.concatenate(data)
    scalars = [f for f in spec.fields if not f.shape and not f.integer]
    out: list[Momentum] = []
    for finding in findings:
        gap = _gap(finding, rows)
        if gap <= 0:
            continue
        change = np.concatenate([_change(finding, d) for d in data])
        best: tuple[float, str, int] | None = None
        for f in scalars:
            if f.index in finding.columns:
                continue
            r = _pearson(np.concatenate([d[1:, f.index] for d in data]), change)
            if r is not None and abs(r) >= DRIVES and (best is None or abs(r) > abs(best[0])):
                best = (r, f.name, f.index)
        if best is None:
            continue
        r, name, index = best
        field = next(f for f in scalars if f.name == name)
        bound = max(abs(field.low or 0.0), abs(field.high or 0.0))
        if not (math.isfinite(bound) and bound > 0):
            bound = 2 * float(np.max(np.abs(rows[:, index])))
        if bound > 0:
            out.append(Momentum(finding.label, gap, name, r, bound, len(recorded)))
    return out


def _values(finding: Target | Monotone, data: np.ndarray) -> np.ndarray:
    if len(finding.columns) == 2:
        return np.arctan2(data[:, finding.columns[1]], data[:, finding.columns[0]])
    return data[:, finding.columns[0]]


def _change(finding: Target | Monotone, data: np.ndarray) -> np.ndarray:
    step = np.diff(_values(finding, data))
    return np.remainder(step + math.pi, 2 * math.pi) - math.pi if len(finding.columns) == 2 else step


def _gap(finding: Target | Monotone, rows: np.ndarray) -> float:
    """How near random play came to where the fitness is high; 0 where it got there (for a target: within its
    scale)."""
    from rewardsmith.designer.probe import Target  # probe imports this module

    values = _values(finding, rows)
    if isinstance(finding, Target):
        error = np.abs(values - finding.value)
        if finding.angle:
            error = np.abs(np.remainder(values - finding.value + math.pi, 2 * math.pi) - math.pi)
        closest = float(np.min(error))
        return closest if closest > finding.scale else 0.0
    past = values - finding.threshold if finding.direction > 0 else finding.threshold - values
    return max(-float(np.max(past)), 0.0)
