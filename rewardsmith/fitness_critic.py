"""Verdicts on fitness programs an LLM proposed (or a person edited), before any search relies on one.

A fitness decides which reward wins, so a broken one wastes the whole search quietly. The program runs in
the sandbox (:mod:`rewardsmith.sandbox.fitness`) on episodes of behaviours that differ:

* recorded: random actions on a few seeds, and each constant action (each discrete action; the lowest,
  middle and highest of a continuous action space);
* constructed: a recorded episode with one observation field held near the low or the high end of its
  range (its documented bounds, else what the recordings reached), so a fitness about a state no crude
  behaviour reaches (the cart far left) can still show that it reads that state.

It is refused when it does not load, raises or returns anything but a finite number on any of them,
takes longer than :data:`MAX_MEAN_CALL_MS` per episode on average, or gives every one of them the same
value (it cannot tell a good policy from a bad one). Each refusal is worded so the LLM can fix it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from gymnasium import spaces

from rewardsmith.critic import control_issues
from rewardsmith.episode import Episode, NamedArrays
from rewardsmith.rollouts import random_policy, record_episodes
from rewardsmith.sandbox import Issue, IssueList, RewardCallError, SandboxLimits
from rewardsmith.sandbox.fitness import FitnessSandbox
from rewardsmith.spec import EnvSpec, TaskSpec

__all__ = ["MAX_MEAN_CALL_MS", "FitnessVerdict", "behaviour_episodes", "check_fitness"]

MAX_MEAN_CALL_MS = 50.0
"""Mean time per episode above which a fitness is refused: a search scores some hundred episodes per candidate."""
RANDOM_SEEDS = 3
CONSTANT_ACTIONS = 6
"""Discrete spaces with more actions than this try only the first ones as constant actions."""
HELD_FIELDS = 32
"""Fields held high or low in constructed episodes, at most (the first ones)."""
HELD_AT = (0.2, 0.8)
"""Where in a field's range a constructed episode holds it."""
CONSTRUCTED = " (constructed)"


@dataclass(frozen=True)
class FitnessVerdict(IssueList):
    """The critic's decision on a fitness program, with what it measured."""

    accepted: bool
    issues: tuple[Issue, ...]
    solved: float | None = None
    """The program's ``SOLVED`` (None where it sets none)."""
    values: tuple[tuple[str, float], ...] = ()
    """Each recorded behaviour it was tried on, with its fitness (the mean over the random seeds)."""
    held: tuple[float, float] | None = None
    """The lowest and highest fitness of the constructed episodes (a field held low or high)."""
    call_ms: float | None = None
    """Mean wall time per episode, IPC included."""

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "issues": [i.to_dict() for i in self.issues], "solved": self.solved,
                "values": [list(v) for v in self.values], "held": list(self.held) if self.held else None,
                "call_ms": self.call_ms}


def _action_behaviours(space: spaces.Space) -> list[tuple[str, Any]]:
    """Constant actions worth trying: each discrete action, or a box's low, middle and high."""
    if isinstance(space, spaces.Discrete):
        return [(f"always action {space.start + a}", int(space.start + a))
                for a in range(min(int(space.n), CONSTANT_ACTIONS))]
    if isinstance(space, spaces.Box) and np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)):
        low, high = space.low.astype(np.float64), space.high.astype(np.float64)
        return [("always the lowest action", low), ("always the middle action", (low + high) / 2),
                ("always the highest action", high)]
    return []


_RECORDED: dict[tuple[Any, ...], list[tuple[str, Episode]]] = {}


def behaviour_episodes(spec: EnvSpec, task: TaskSpec, seed: int = 0) -> list[tuple[str, Episode]]:
    """Recorded episodes of behaviours that differ: random actions on a few seeds, then each constant action
    (recorded once per env, task and seed in a process: a proposal's retries and edits reuse them)."""
    key = (spec.gym_id, json.dumps(spec.make_kwargs, sort_keys=True, default=repr), spec.source, task.name,
           id(task.wrappers), seed)
    if key not in _RECORDED:
        _RECORDED[key] = _record_behaviours(spec, task, seed)
    return _RECORDED[key]


def _record_behaviours(spec: EnvSpec, task: TaskSpec, seed: int) -> list[tuple[str, Episode]]:
    space = spec.action_space(task)
    found, _ = record_episodes(random_policy(space, seed), spec, task, episodes=RANDOM_SEEDS, seed=seed)
    out = [(f"random actions (seed {seed + i})", e) for i, e in enumerate(found)]
    for label, action in _action_behaviours(space):
        def constant(batch: np.ndarray, action: Any = action) -> np.ndarray:
            return np.asarray([action] * len(batch))

        recorded, _ = record_episodes(constant, spec, task, episodes=1, seed=seed)
        out.extend((label, e) for e in recorded)
    return out


def constructed_episodes(spec: EnvSpec, recorded: list[tuple[str, Episode]]) -> list[tuple[str, Episode]]:
    """The first recorded episode with one scalar field at a time held near the low or the high end of its range."""
    if not recorded:
        return []
    base = recorded[0][1]
    data = np.asarray(base.obs.data, dtype=np.float64)
    seen = np.concatenate([np.asarray(e.obs.data, dtype=np.float64).reshape(len(e.obs.data), -1)
                           for _, e in recorded])
    out = []
    fields = [f for f in spec.fields if not f.shape and not f.integer][:HELD_FIELDS]
    for field in fields:
        low = field.low if field.low is not None and math.isfinite(field.low) else float(seen[:, field.index].min())
        high = field.high if field.high is not None and math.isfinite(field.high) else float(seen[:, field.index].max())
        if not high > low:
            low, high = low - 1.0, high + 1.0
        for where in HELD_AT:
            value = low + where * (high - low)
            held = data.copy()
            held[:, field.index] = value
            episode = replace(base, obs=NamedArrays(base.obs.layout, held))
            out.append((f"{field.name} held at {value:.3g}{CONSTRUCTED}", episode))
    return out


def check_fitness(source: str, spec: EnvSpec, task: TaskSpec, seed: int = 0,
                  limits: SandboxLimits | None = None) -> FitnessVerdict:
    """The verdict on one fitness program for ``spec`` (its episodes come from ``task``'s env)."""
    if not source.strip():
        return FitnessVerdict(False, (Issue("no_fitness", "the program is empty; define fitness(episode)"),))
    controls = control_issues(source, "fitness")
    if controls:
        return FitnessVerdict(False, tuple(controls))
    with FitnessSandbox(spec.field_layout, limits) as box:
        loaded = box.load(source)
        if not loaded.ok:
            return FitnessVerdict(False, tuple(loaded.issues))
        recorded = behaviour_episodes(spec, task, seed)
        episodes = recorded + constructed_episodes(spec, recorded)
        values: list[tuple[str, float]] = []
        started = time.perf_counter()
        for label, episode in episodes:
            try:
                values.append((label, box.score(episode)))
            except RewardCallError as exc:
                ending = "terminated" if episode.terminated else "truncated" if episode.truncated else "unfinished"
                issue = Issue(exc.issue.code, f"{exc.issue.message} (on an episode of {label}: {len(episode)} steps, "
                                              f"{ending})", exc.issue.line)
                return FitnessVerdict(False, tuple(loaded.issues) + (issue,), loaded.solved)
        call_ms = (time.perf_counter() - started) / len(episodes) * 1000 if episodes else None
    issues = list(loaded.issues)
    if call_ms is not None and call_ms > MAX_MEAN_CALL_MS:
        issues.append(Issue("too_slow", f"each call takes {call_ms:.1f} ms on average; the limit is "
                                        f"{MAX_MEAN_CALL_MS:g} ms per episode (a search scores hundreds): use numpy "
                                        "on whole columns instead of Python loops over steps"))
    numbers = np.asarray([v for _, v in values])
    if len(numbers) > 1 and float(np.ptp(numbers)) <= 1e-9 * max(1.0, float(np.max(np.abs(numbers)))):
        tried = ", ".join(label for label, _ in _by_behaviour(values)[0])
        issues.append(Issue("constant_fitness", f"fitness is {numbers[0]:g} on every one of the {len(numbers)} "
                                                f"episodes it was tried on ({tried}, and recorded states with one "
                                                "field at a time held low or high), so it cannot tell a good policy "
                                                "from a bad one; make it grow with how well an episode does what "
                                                "the task asks"))
    accepted = not any(i.severity == "error" for i in issues)
    rows, held = _by_behaviour(values)
    return FitnessVerdict(accepted, tuple(issues), loaded.solved, rows, held, call_ms)


def _by_behaviour(values: list[tuple[str, float]]) -> tuple[tuple[tuple[str, float], ...], tuple[float, float] | None]:
    """The recorded behaviours' values (the random seeds averaged into one row), and the range of the constructed
    episodes' values (None when there were none)."""
    rows: dict[str, list[float]] = {}
    held = [value for label, value in values if label.endswith(CONSTRUCTED)]
    for label, value in values:
        if not label.endswith(CONSTRUCTED):
            rows.setdefault("random actions" if label.startswith("random actions") else label, []).append(value)
    return tuple((label, float(np.mean(v))) for label, v in rows.items()), (min(held), max(held)) if held else None
