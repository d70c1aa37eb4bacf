"""Probing a fitness: what raises it, found by calling it on recorded and constructed episodes.

A fitness is code, so the built-in designer can study it without reading it. It records a few
random-policy episodes of the env (and scores them: what random play gets), picks a typical recorded
state, and builds episodes that hold one state for a while with one field (or one angle, for a
``cos_X``/``sin_X`` pair) swept across its range; the fitness of each says where that field should be. A second round sweeps again from the
best state the first found, so a field that matters only once another is right (the second link of a
chain, once the first points up) shows too. Then, at the best state: constant actions of growing
magnitude (an action cost), and episodes of two lengths ended by termination or by the time limit (a
preference for surviving, or for ending soon). Where ending pays, the env's documented termination causes are
tested across each field (no fitness calls: they are the spec's own predicates) to find where an episode ends,
and the fitness, given episodes ending in each such region, says which end it wants. Last, what the recorded
random play says beyond the sweeps
(:mod:`rewardsmith.designer.probe_play`): how the env's own reward goes with the fitness, and which targets
random play never reached and what field drives them. The fitness is a black box called at most
``max_calls`` times; a call that raises or returns a non-number counts as no answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import gymnasium as gym
import numpy as np

from rewardsmith.designer.probe_play import (
    CUTS,
    Agreement,
    Momentum,
    action_charge,
    measure_agreement,
    momentum_findings,
)
from rewardsmith.episode import Episode, NamedArrays, NamedValues
from rewardsmith.spec import EnvSpec, TaskSpec, TerminationCause

__all__ = ["ActionCost", "Endings", "FitnessProbe", "Monotone", "Target", "probe_fitness", "with_value"]

MAX_STEPS = 1000
"""Steps a recorded random-policy episode runs at most (an env with no time limit would run forever)."""
HOLD = 100
"""Steps a constructed episode holds its state (fewer where the env's time limit is shorter)."""
COARSE = 33
"""Points of a first sweep across a field's range (48 for an angle: a 0.2 rad band cannot fall between two)."""
ANGLE_POINTS = 48
FINE = 10
"""Points of the second, finer sweep across the edges of what the first found."""
HALF = 0.5
"""A target's scale is the half-width of the region where fitness stays above halfway from floor to peak."""
TOP = 0.05
"""The target itself is the middle of the plateau within 5 % (of peak minus floor) of the peak."""
_ONCE = ", once the other targets are met"
RESERVED = 9
"""Calls kept from the sweeps for the action probe (5) and the ending probe (4); the agreement's prefixes
keep up to ``CUTS`` per recorded episode more (a tenth of the budget at most)."""


@dataclass(frozen=True)
class Target:
    """A value of one field (or angle) at which fitness peaks, away from the ends of its range."""

    label: str
    """The field's name, or ``X`` for the angle of a ``cos_X``/``sin_X`` pair."""
    expr: str
    """The value in the reward contract's vocabulary (``next_obs.cart_position``, ``math.atan2(...)``)."""
    value: float
    scale: float
    """Half-width of the region where fitness stays above halfway from its floor to its peak."""
    span: float
    """Width of the range swept."""
    angle: bool
    peak: float
    floor: float
    columns: tuple[int, ...] = ()
    """Where the field sits in the observation (cos, sin for an angle)."""
    conditional: bool = False
    """Found only in the second round: the field matters once the first round's targets are met."""

    def error_expr(self) -> str:
        """The distance from the target, wrapped for an angle."""
        offset = "" if not self.value else f" - {self.value:.4g}" if self.value > 0 else f" + {-self.value:.4g}"
        if self.angle:
            return f"abs(math.remainder({self.expr}{offset}, 2.0 * math.pi))"
        return f"abs({self.expr}{offset})"

    def describe(self) -> str:
        return (f"fitness peaks at {self.label} ≈ {self.value:.3g} (±{self.scale:.2g}): "
                f"{self.peak:.4g} there, {self.floor:.4g} at its floor{_ONCE if self.conditional else ''}")


@dataclass(frozen=True)
class Monotone:
    """A field whose higher (``direction`` +1) or lower (-1) values raise fitness all the way across its range."""

    label: str
    expr: str
    direction: int
    low: float
    high: float
    rise: float
    """Fitness at the better end minus fitness at the worse end."""
    threshold: float
    """Where fitness crosses halfway from the worse end to the better."""
    columns: tuple[int, ...] = ()
    conditional: bool = False
    """Found only in the second round (see :attr:`Target.conditional`)."""
    ending: str = ""
    """Set for an end region (:func:`_end_regions`): the termination cause that fires past ``threshold``. The
    fitness does not read the field: ending there is what raises it, by ``rise``."""

    def describe(self) -> str:
        way = "higher" if self.direction > 0 else "lower"
        side = "above" if self.direction > 0 else "below"
        if self.ending:
            sign = ">=" if self.direction > 0 else "<="
            return (f"ending by termination raises fitness by {self.rise:.4g}, and the env ends an episode "
                    f"({self.ending}) once {self.label} {sign} {self.threshold:.3g}")
        return (f"fitness rises with {way} {self.label} across [{self.low:.3g}, {self.high:.3g}] "
                f"(+{self.rise:.4g}, most of it {side} {self.threshold:.3g}){_ONCE if self.conditional else ''}")


@dataclass(frozen=True)
class ActionCost:
    """Fitness falls as the (continuous) action grows: held at the best state, full-scale actions lose ``drop``."""

    expr: str
    scale: float
    """The squared action magnitude at full scale."""
    drop: float

    def describe(self) -> str:
        return f"full-scale actions cost {self.drop:.4g} fitness against none"


@dataclass(frozen=True)
class Endings:
    """How the length and the end of an episode move fitness, at the best state."""

    survival: float
    """Fitness gained per extra step of an episode cut by the time limit (> 0: surviving pays)."""
    hurry: float
    """Fitness gained per step an ended (terminated) episode is shorter (> 0: ending sooner pays)."""
    end_gain: float
    """Fitness of a terminated episode minus a truncated one of the same length."""
    length: int
    """The longer of the two lengths compared."""

    def describe_survival(self) -> str:
        return f"each extra step survived adds {self.survival:.3g} fitness"

    def describe_hurry(self) -> str:
        return f"each step sooner that an episode ends adds {self.hurry:.3g} fitness"

    def describe_end(self) -> str:
        way = "raises" if self.end_gain > 0 else "lowers"
        return f"ending by termination rather than the time limit {way} fitness by {abs(self.end_gain):.4g}"


@dataclass(frozen=True)
class FitnessProbe:
    """What probing found; empty lists where the fitness did not move."""

    targets: list[Target] = field(default_factory=list)
    monotone: list[Monotone] = field(default_factory=list)
    action_cost: ActionCost | None = None
    endings: Endings | None = None
    calls: int = 0
    failed_calls: int = 0
    state: tuple[float, ...] = ()
    """The best observation found: the typical recorded one with every target applied."""
    random_fitness: float | None = None
    """The mean fitness of the recorded random-policy episodes."""
    agreement: Agreement | None = None
    """How the env's own reward goes with the fitness over random play (None: no calls were left for it)."""
    momentum: list[Momentum] = field(default_factory=list)
    """Targets random play never reached, each with the field that drives it."""

    @property
    def found(self) -> bool:
        return bool(self.targets or self.monotone or self.action_cost or self.endings)


@dataclass(frozen=True)
class _Axis:
    """Something to sweep: one scalar field, or the angle of a cos/sin pair."""

    label: str
    expr: str
    columns: tuple[int, ...]
    low: float
    high: float
    angle: bool

    def points(self, count: int) -> np.ndarray:
        if self.angle:
            return np.linspace(-math.pi, math.pi, count, endpoint=False)
        return np.linspace(self.low, self.high, count)

    def set(self, state: np.ndarray, value: float) -> np.ndarray:
        return with_value(state, self.columns, value)


def with_value(state: np.ndarray, columns: tuple[int, ...], value: float) -> np.ndarray:
    """``state`` with one field set to ``value``, or, given two columns (cos, sin), with that angle."""
    out = np.array(state, dtype=np.float64)
    if len(columns) == 2:
        out[columns[0]], out[columns[1]] = math.cos(value), math.sin(value)
    else:
        out[columns[0]] = value
    return out


class _Budget(Exception):
    """The call budget is spent."""


class _Caller:
    """Calls the fitness, counting and capping calls; None for a call that failed or gave no number."""

    def __init__(self, fitness: Callable[[Episode], float], max_calls: int) -> None:
        self.fitness, self.max_calls, self.calls, self.failed = fitness, max_calls, 0, 0

    def __call__(self, episode: Episode) -> float | None:
        if self.calls >= self.max_calls:
            raise _Budget
        self.calls += 1
        try:
            value = float(self.fitness(episode))
        except Exception:  # a black box: any failure is "no answer" for this episode
            self.failed += 1
            return None
        if not math.isfinite(value):
            self.failed += 1
            return None
        return value


def probe_fitness(fitness: Callable[[Episode], float], spec: EnvSpec, task: TaskSpec, seed: int = 0,
                  max_calls: int = 400, episodes: int = 4) -> FitnessProbe:
    """Probe ``fitness`` on ``spec``'s env (with ``task``'s wrappers); deterministic for a seed."""
    space = spec.action_space(task)
    recorded = [e for e in _random_episodes(spec, task, space, episodes, seed) if len(e)]
    if not recorded:
        return FitnessProbe()
    call = _Caller(fitness, max_calls)
    scores = [v for v in (call(e) for e in recorded) if v is not None]
    rows = np.concatenate([e.obs.data for e in recorded])
    axes = _axes(spec, rows)
    layout = spec.field_layout
    hold = max(2, min(HOLD, int(spec.facts().get("max_episode_steps") or HOLD)))
    neutral = _neutral_action(space, recorded)
    reward = float(np.median(np.concatenate([e.env_rewards for e in recorded])))

    def held(state: np.ndarray, length: int = hold, action: np.ndarray = neutral, terminated: bool = False) -> Episode:
        data = np.repeat(state[None, :], length + 1, axis=0)
        return Episode(NamedArrays(layout, data), np.repeat(action[None, ...], length, axis=0),
                       np.full(length, reward), terminated, not terminated)

    sweeps: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    first_round: set[str] = set()
    best_state = _typical_state(rows)
    kept = RESERVED + min(CUTS * len(recorded), max_calls // 10)  # for the action, ending and agreement probes
    call.max_calls = max(call.calls, max_calls - kept)
    try:
        for round_number in range(2):
            found = []
            for axis in axes:
                xs, ys = _sweep(axis, best_state, held, call)
                if _moves(ys):
                    sweeps[axis.label] = (xs, ys)
                    found.append(axis)
                    if round_number == 0:
                        first_round.add(axis.label)
            if not found:
                break
            for axis in found:  # the next round sweeps from the best state this one found
                best_state = axis.set(best_state, _plateau_middle(*sweeps[axis.label]))
    except _Budget:
        pass
    findings = [replace(_finding(axis, *sweeps[axis.label]), conditional=axis.label not in first_round)
                for axis in axes if axis.label in sweeps]
    action_cost = endings = None
    actions_free = False
    call.max_calls = max_calls
    regions: list[Monotone] = []
    try:
        action_cost, actions_free = _action_cost(space, best_state, held, call)
        endings = _endings(best_state, hold, held, call)
        regions = _end_regions(spec, task, axes, best_state, endings, held, call)
    except _Budget:
        pass
    findings += regions
    cuts = min(CUTS, (max_calls - call.calls) // len(recorded))
    agreement = measure_agreement(call, recorded, cuts) if cuts >= 2 else None
    charge = action_charge(recorded) if actions_free else None
    if agreement is not None and charge is not None:
        agreement = replace(agreement, action_charge=charge)
    return FitnessProbe([f for f in findings if isinstance(f, Target)], [f for f in findings if isinstance(f, Monotone)],
                        action_cost, endings, call.calls, call.failed, tuple(float(v) for v in best_state),
                        float(np.mean(scores)) if scores else None, agreement,
                        momentum_findings(findings, recorded, spec))


def _random_episodes(spec: EnvSpec, task: TaskSpec, space: gym.Space, count: int, seed: int) -> list[Episode]:
    """Random-policy episodes, each cut at ``MAX_STEPS`` where the env itself never ends it."""
    space.seed(seed)
    env = spec.make(task)
    episodes = []
    try:
        for i in range(count):
            obs, _ = env.reset(seed=seed + i)
            rows, actions, rewards = [np.asarray(obs, dtype=np.float64).ravel()], [], []
            terminated = truncated = False
            while not (terminated or truncated) and len(actions) < MAX_STEPS:
                action = space.sample()
                obs, reward, terminated, truncated, _ = env.step(action)
                rows.append(np.asarray(obs, dtype=np.float64).ravel())
                actions.append(np.asarray(action))
                rewards.append(float(reward))
            episodes.append(Episode(NamedArrays(spec.field_layout, np.asarray(rows)), np.asarray(actions),
                                    np.asarray(rewards), bool(terminated), not terminated))
    finally:
        env.close()
    return episodes


def _axes(spec: EnvSpec, rows: np.ndarray) -> list[_Axis]:
    """What to sweep: every scalar float field, a ``cos_X``/``sin_X`` pair as one angle ``X``."""
    scalars = {f.name: f for f in spec.fields if not f.shape and not f.integer}
    axes: list[_Axis] = []
    paired: set[str] = set()
    for name, f in scalars.items():
        if name.startswith("cos_") and f"sin_{name[4:]}" in scalars:
            sin = scalars[f"sin_{name[4:]}"]
            paired |= {name, sin.name}
            axes.append(_Axis(name[4:], f"math.atan2(next_obs.{sin.name}, next_obs.{name})",
                              (f.index, sin.index), -math.pi, math.pi, True))
    for name, f in scalars.items():
        if name in paired:
            continue
        column = rows[:, f.index]
        low, high = _range(f.low, f.high, column)
        if high > low:
            axes.append(_Axis(name, f"next_obs.{name}", (f.index,), low, high, False))
    return axes


def _range(low: float | None, high: float | None, column: np.ndarray) -> tuple[float, float]:
    """The documented range where both ends are finite; else what random play reached, widened by half each side."""
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
        return float(low), float(high)
    seen_low, seen_high = float(np.min(column)), float(np.max(column))
    pad = 0.5 * max(seen_high - seen_low, 1e-3)
    return (float(low) if low is not None and math.isfinite(low) else seen_low - pad,
            float(high) if high is not None and math.isfinite(high) else seen_high + pad)


def _typical_state(rows: np.ndarray) -> np.ndarray:
    """The recorded observation nearest the per-field median (in units of each field's spread)."""
    median = np.median(rows, axis=0)
    spread = np.std(rows, axis=0) + 1e-9
    return rows[int(np.argmin(np.sum(((rows - median) / spread) ** 2, axis=1)))].astype(np.float64)


def _neutral_action(space: gym.Space, recorded: list[Episode]) -> np.ndarray:
    """No force for a continuous action (zero, clipped into the bounds); the first recorded action otherwise."""
    if isinstance(space, gym.spaces.Box):
        return np.clip(np.zeros(space.shape), space.low, space.high).astype(np.float64)
    return np.asarray(recorded[0].actions[0])


def _sweep(axis: _Axis, state: np.ndarray, held: Callable[..., Episode],
           call: _Caller) -> tuple[np.ndarray, np.ndarray]:
    """Fitness with ``axis`` set to each of a coarse grid of values, then a finer grid across the edges of the
    region above halfway (where the first grid found any)."""
    xs, ys = _values(axis, axis.points(ANGLE_POINTS if axis.angle else COARSE), state, held, call)
    if len(xs) < 3 or not _moves(ys):
        return xs, ys
    if axis.angle:
        xs, ys = _centred(xs, ys)
    step = (axis.high - axis.low) / (ANGLE_POINTS if axis.angle else COARSE - 1)
    lo, hi = _half_region(ys)
    edges = [xs[lo] - step, xs[lo], xs[hi], xs[hi] + step]
    fine = np.concatenate([np.linspace(edges[0], edges[1], FINE // 2 + 1)[1:-1],
                           np.linspace(edges[2], edges[3], FINE // 2 + 1)[1:-1]])
    if not axis.angle:
        fine = fine[(fine >= axis.low) & (fine <= axis.high)]
    fx, fy = _values(axis, fine, state, held, call)
    order = np.argsort(np.concatenate([xs, fx]), kind="stable")
    return np.concatenate([xs, fx])[order], np.concatenate([ys, fy])[order]


def _centred(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An angle sweep turned to run from half a turn before its peak to half a turn after, so that the region
    around the peak is one contiguous run (angles past the seam read 2 pi higher)."""
    floor, peak = float(np.min(ys)), float(np.max(ys))
    top = np.flatnonzero(ys >= peak - TOP * (peak - floor))
    centre = float(xs[int(top[len(top) // 2])])
    unwrapped = np.where(xs < centre - math.pi, xs + 2 * math.pi, np.where(xs >= centre + math.pi, xs - 2 * math.pi, xs))
    order = np.argsort(unwrapped, kind="stable")
    return unwrapped[order], ys[order]


def _values(axis: _Axis, points: np.ndarray, state: np.ndarray, held: Callable[..., Episode],
            call: _Caller) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for x in points:
        y = call(held(axis.set(state, float(x))))
        if y is not None:
            xs.append(float(x))
            ys.append(y)
    return np.asarray(xs), np.asarray(ys)


def _moves(ys: np.ndarray) -> bool:
    return len(ys) > 1 and float(np.max(ys) - np.min(ys)) > 1e-9 * max(1.0, float(np.max(np.abs(ys))))


def _half_region(ys: np.ndarray) -> tuple[int, int]:
    """The contiguous run of indices around the peak's plateau where fitness stays above halfway."""
    floor, peak = float(np.min(ys)), float(np.max(ys))
    top = np.flatnonzero(ys >= peak - TOP * (peak - floor))
    centre = int(top[len(top) // 2])
    half = floor + HALF * (peak - floor)
    lo = hi = centre
    while lo > 0 and ys[lo - 1] >= half:
        lo -= 1
    while hi < len(ys) - 1 and ys[hi + 1] >= half:
        hi += 1
    return lo, hi


def _plateau_middle(xs: np.ndarray, ys: np.ndarray) -> float:
    """The middle of the peak's plateau (within ``TOP`` of the peak), contiguous around its centre point."""
    floor, peak = float(np.min(ys)), float(np.max(ys))
    near = ys >= peak - TOP * (peak - floor)
    top = np.flatnonzero(near)
    centre = int(top[len(top) // 2])
    lo = hi = centre
    while lo > 0 and near[lo - 1]:
        lo -= 1
    while hi < len(ys) - 1 and near[hi + 1]:
        hi += 1
    return float((xs[lo] + xs[hi]) / 2)


def _finding(axis: _Axis, xs: np.ndarray, ys: np.ndarray) -> Target | Monotone:
    floor, peak = float(np.min(ys)), float(np.max(ys))
    lo, hi = _half_region(ys)
    if not axis.angle and (lo == 0 or hi == len(ys) - 1) and _monotone(ys):
        direction = 1 if ys[-1] > ys[0] else -1
        threshold = float(xs[lo] if direction > 0 else xs[hi])
        return Monotone(axis.label, axis.expr, direction, axis.low, axis.high, abs(float(ys[-1] - ys[0])), threshold,
                        axis.columns)
    value = _plateau_middle(xs, ys)
    if axis.angle:
        value = math.remainder(value, 2 * math.pi)
    gaps = np.diff(xs) if len(xs) > 1 else np.asarray([axis.high - axis.low])
    scale = max((xs[hi] - xs[lo]) / 2, float(np.median(gaps)) / 2)
    return Target(axis.label, axis.expr, value, float(scale), axis.high - axis.low, axis.angle, peak, floor,
                  axis.columns)


def _monotone(ys: np.ndarray) -> bool:
    steps = np.diff(ys)
    tolerance = 1e-9 * max(1.0, float(np.max(np.abs(ys))))
    return bool(np.all(steps >= -tolerance) or np.all(steps <= tolerance))


def _action_cost(space: gym.Space, state: np.ndarray, held: Callable[..., Episode],
                 call: _Caller) -> tuple[ActionCost | None, bool]:
    """At the best state: fitness with no action against half and full-scale actions, both signs; and whether
    that showed full-scale actions cost nothing (every comparison made, none lost fitness)."""
    if not isinstance(space, gym.spaces.Box) or not np.all(np.isfinite(space.high)):
        return None, False
    high = np.asarray(space.high, dtype=np.float64)
    none = call(held(state, action=np.clip(np.zeros_like(high), space.low, space.high)))
    if none is None:
        return None, False
    losses = []
    for fraction in (0.5, 1.0):
        for sign in (1.0, -1.0):
            value = call(held(state, action=np.clip(sign * fraction * high, space.low, space.high)))
            if value is not None:
                losses.append((fraction, none - value))
    full = [loss for fraction, loss in losses if fraction == 1.0]
    half = [loss for fraction, loss in losses if fraction == 0.5]
    tolerance = 1e-9 * max(1.0, abs(none))
    if not full or min(full) <= tolerance or (half and min(half) > min(full)):
        return None, len(losses) == 4 and all(abs(loss) <= tolerance for _, loss in losses)
    expr = "float(action[0]) ** 2" if high.size == 1 else "float(np.sum(np.square(action)))"
    return ActionCost(expr, float(np.sum(high ** 2)), float(min(full))), False


def _endings(state: np.ndarray, hold: int, held: Callable[..., Episode], call: _Caller) -> Endings | None:
    """At the best state: a short and a long episode, each cut by the time limit and ended by termination."""
    short = max(1, hold // 2)
    values = {(length, ended): call(held(state, length=length, terminated=ended))
              for length in (short, hold) for ended in (False, True)}
    if any(v is None for v in values.values()):
        return None
    steps = hold - short
    survival = (values[(hold, False)] - values[(short, False)]) / steps
    hurry = (values[(short, True)] - values[(hold, True)]) / steps
    end_gain = values[(hold, True)] - values[(hold, False)]
    if max(abs(survival), abs(hurry), abs(end_gain)) <= 1e-12:
        return None
    return Endings(float(survival), float(hurry), float(end_gain), hold)


def _end_regions(spec: EnvSpec, task: TaskSpec, axes: list[_Axis], state: np.ndarray, endings: Endings | None,
                 held: Callable[..., Episode], call: _Caller) -> list[Monotone]:
    """Where ending pays: for each of the task's termination causes that does not fire at the best state, the
    field past which it fires (one end of the field's range, every other field as at the best state). Where
    several causes have a region, the fitness of an episode that ends in each says which it wants: only a
    region with the highest value, and alone at it, is kept (the fitness cannot tell the rest apart)."""
    if endings is None or endings.end_gain <= 0:
        return []
    layout = spec.field_layout
    found: list[tuple[Monotone, np.ndarray]] = []
    for cause in (c for c in spec.terminations if task.applies(c)):
        if _fires(cause, state, layout):
            continue
        for axis in (a for a in axes if not a.angle):
            edge = _edge(cause, axis, state, layout)
            if edge is not None:
                direction, threshold = edge
                found.append((Monotone(axis.label, axis.expr, direction, axis.low, axis.high, endings.end_gain,
                                       threshold, axis.columns, ending=cause.name), axis.set(state, threshold)))
    if len(found) <= 1:
        return [region for region, _ in found]
    values = [call(_ending_in(held(state, terminated=True), end_state)) for _, end_state in found]
    known = [v for v in values if v is not None]
    if not known:
        return []
    top = max(known)
    best = [region for (region, _), v in zip(found, values) if v is not None and v >= top - 1e-9 * max(1.0, abs(top))]
    return best if len(best) == 1 else []


def _fires(cause: TerminationCause, state: np.ndarray, layout: dict) -> bool:
    try:
        return bool(cause.test(NamedValues(layout, state), {}))
    except Exception:  # a predicate that needs more than an observation says nothing here
        return False


def _edge(cause: TerminationCause, axis: _Axis, state: np.ndarray,
          layout: dict) -> tuple[int, float] | None:
    """(direction, threshold: the first value where it fires) where ``cause`` fires on one end of ``axis``'s
    range and not the other, in one run; None otherwise. The threshold is narrowed by bisection to a
    thousandth of the range."""
    xs = axis.points(COARSE)
    fires = np.array([_fires(cause, axis.set(state, float(x)), layout) for x in xs])
    if fires[0] == fires[-1]:  # neither end, or both
        return None
    direction = 1 if fires[-1] else -1
    run = fires if direction > 0 else fires[::-1]
    first = int(np.argmax(run))
    if not run[first:].all():
        return None
    ordered = xs if direction > 0 else xs[::-1]
    outside, inside = float(ordered[first - 1]), float(ordered[first])
    while abs(inside - outside) > 1e-3 * (axis.high - axis.low):
        middle = (inside + outside) / 2
        if _fires(cause, axis.set(state, middle), layout):
            inside = middle
        else:
            outside = middle
    return direction, inside


def _ending_in(episode: Episode, end_state: np.ndarray) -> Episode:
    """``episode`` with its last observation replaced by ``end_state``."""
    data = np.array(episode.obs.data)
    data[-1] = end_state
    return replace(episode, obs=NamedArrays(episode.obs.layout, data))
