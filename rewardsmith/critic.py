"""Verdicts on reward programs before any training: static checks, a dry run, sanity checks.

:func:`check` is the one public entry; the sandbox worker does the parsing and compiling
(the host never parses untrusted source), this module adds a dry run on probe transitions
from random rollouts, a per-call time bound, and warnings about rewards that cannot teach.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rewardsmith.bounds import TEXT_SHOWN, clip
from rewardsmith.rollouts import episode_transitions, random_policy, record_episodes
from rewardsmith.safetext import control_characters
from rewardsmith.sandbox import Issue, IssueList, RewardCallError, RewardSandbox, SandboxLimits, Transitions
from rewardsmith.spec import EnvSpec, TaskSpec

__all__ = ["Critic", "Verdict", "check", "control_issues", "probe_transitions"]

MAX_MEAN_CALL_MS = 2.0
"""Mean time per call above which a reward is refused as too slow to train with."""
HUGE = 1e4
MAX_CONTROL_FINDINGS = 5
"""Control characters named one by one before the rest are summed up in a count."""


@dataclass(frozen=True)
class Verdict(IssueList):
    """The critic's decision: accepted or not, every issue found, and what the dry run measured."""

    accepted: bool
    issues: tuple[Issue, ...]
    call_us: float | None = None
    """Mean wall time per reward call in the dry run, microseconds (IPC included)."""
    components: tuple[str, ...] = ()
    probes: int = 0
    printed: str = ""
    sample: dict[str, Any] = field(default_factory=dict)
    """The reward on the first probe transition: total and components."""

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "issues": [i.to_dict() for i in self.issues],
            "call_us": self.call_us,
            "components": list(self.components),
            "probes": self.probes,
            "printed": self.printed,
            "sample": self.sample,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(
            accepted=bool(data["accepted"]),
            issues=tuple(Issue.from_dict(i) for i in data.get("issues", [])),
            call_us=data.get("call_us"),
            components=tuple(data.get("components", ())),
            probes=int(data.get("probes", 0)),
            printed=str(data.get("printed", "")),
            sample=dict(data.get("sample", {})),
        )


_PROBES: dict[tuple[str, str, str, str, int, int, int], Transitions] = {}


def probe_transitions(spec: EnvSpec, task: TaskSpec, count: int = 64, seed: int = 0) -> Transitions:
    """Transitions from random rollouts, each episode's last step included (terminal or truncated)."""
    key = (spec.gym_id, json.dumps(spec.make_kwargs, sort_keys=True, default=repr), spec.source, task.name,
           id(task.wrappers), count, seed)
    if key not in _PROBES:
        _PROBES[key] = _random_probes(spec, task, count, seed)
    return _PROBES[key]


def _random_probes(spec: EnvSpec, task: TaskSpec, count: int, seed: int) -> Transitions:
    episodes, _ = record_episodes(random_policy(spec.action_space(task), seed), spec, task, episodes=3, seed=seed)
    batches = [episode_transitions(e) for e in episodes]
    rng = np.random.default_rng(seed)
    keep: list[tuple[int, int]] = []
    for e, batch in enumerate(batches):
        ends = [len(batch) - 1] if len(batch) else []
        keep.extend((e, t) for t in ends)
    others = [(e, t) for e, b in enumerate(batches) for t in range(len(b)) if (e, t) not in keep]
    take = min(max(count - len(keep), 0), len(others))
    for j in rng.choice(len(others), size=take, replace=False) if take else []:
        keep.append(others[int(j)])
    keep.sort()

    return Transitions.concatenate([batches[e].take([t]) for e, t in keep])


class Critic:
    """Checks reward programs for one env; keeps one sandbox worker across checks."""

    def __init__(self, spec: EnvSpec, task: TaskSpec, limits: SandboxLimits | None = None, probes: int = 64,
                 seed: int = 0) -> None:
        self.spec = spec
        self.task = task
        self.probe_count = probes
        self.seed = seed
        self.sandbox = RewardSandbox(spec.field_layout, limits)

    def __enter__(self) -> Critic:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sandbox.close()

    def check(self, source: str) -> Verdict:
        """The verdict on one program."""
        if not source.strip():
            return Verdict(False, (Issue("no_compute_reward", "the program is empty; define compute_reward"),))
        controls = control_issues(source)
        if controls:
            return Verdict(False, tuple(controls))
        loaded = self.sandbox.load(source)
        issues = list(loaded.issues)
        if not loaded.ok:
            return Verdict(False, tuple(issues), printed=loaded.printed)
        probes = probe_transitions(self.spec, self.task, self.probe_count, self.seed)
        try:
            started = time.perf_counter()
            result = self.sandbox.call(probes, want_print=True)
            elapsed = time.perf_counter() - started
            started = time.perf_counter()
            self.sandbox.call(probes)
            elapsed = min(elapsed, time.perf_counter() - started)
        except RewardCallError as exc:
            issue = exc.issue
            where = _probe_description(probes, exc.index)
            issue = Issue(issue.code, f"{issue.message} (on a probe transition: {where})", issue.line, issue.severity)
            return Verdict(False, tuple(issues + [issue]), probes=len(probes), printed=exc.printed)
        call_us = elapsed / len(probes) * 1e6
        issues.extend(_sanity(result.totals, result.components, result.bare, call_us))
        names = tuple(sorted({name for row in result.components for name in row}))
        sample = {"total": float(result.totals[0]), "components": result.components[0]}
        accepted = not any(i.severity == "error" for i in issues)
        return Verdict(accepted, tuple(issues), call_us, names, len(probes), clip(result.printed, TEXT_SHOWN), sample)


def check(source: str, spec: EnvSpec, task: TaskSpec | None = None, limits: SandboxLimits | None = None) -> Verdict:
    """Check one reward program against ``spec`` (``rewardsmith check``)."""
    with Critic(spec, task or spec.default_task, limits) as critic:
        return critic.check(source)


def control_issues(source: str, kind: str = "reward") -> list[Issue]:
    """A ``control_character`` issue per offending character and line (the first few), before the sandbox.

    Such a character has no use in reward or fitness code and, once the program is accepted, would act on
    the terminal of whoever prints it (``export`` to stdout, ``--interactive``): clear the screen,
    fake an "accepted" line, reorder code with a bidirectional override. ``kind`` names the code in the
    message ("reward", "fitness").
    """
    found = list(dict.fromkeys(control_characters(source)))  # each character once per line
    issues = [Issue("control_character", f"the source holds the control character {ascii(char)[1:-1]}; {kind} "
                                         "code needs none: delete it (inside a string, write it as an escape)", line)
              for line, char in found[:MAX_CONTROL_FINDINGS]]
    if len(found) > MAX_CONTROL_FINDINGS:
        issues.append(Issue("control_character", f"{len(found) - MAX_CONTROL_FINDINGS} more control characters"))
    return issues


def _probe_description(probes: Transitions, index: int) -> str:
    if not 0 <= index < len(probes):
        return "unknown"
    values = np.asarray(probes.next_obs[index]).ravel()
    obs = ", ".join(f"{v:.3g}" for v in values[:16]) + (f", ... ({len(values)} values)" if len(values) > 16 else "")
    action = np.asarray(probes.actions[index]).tolist()
    flags = []
    if probes.terminated[index]:
        flags.append("terminated=True")
    if probes.truncated[index]:
        flags.append("truncated=True")
    extra = f", {', '.join(flags)}" if flags else ""
    return f"next_obs=[{obs}], action={action}{extra}"


def _sanity(totals: np.ndarray, rows: list[dict[str, float]], bare: bool, call_us: float) -> list[Issue]:
    issues = []
    if call_us / 1000 > MAX_MEAN_CALL_MS:
        issues.append(Issue("too_slow", f"each call takes {call_us / 1000:.2f} ms on average; the limit is "
                                        f"{MAX_MEAN_CALL_MS} ms (training calls it once per step): avoid large "
                                        "arrays and loops"))
    if bare:
        issues.append(Issue("bare_total", "compute_reward returned a bare number; return (total, components) so "
                                          "each term can be analysed", severity="warning"))
    if len(totals) > 1 and float(np.ptp(totals)) < 1e-12:
        issues.append(Issue("constant_reward", f"the total is {totals[0]:g} on every probe transition, so it cannot "
                                               "tell good states from bad ones", severity="warning"))
    names = sorted({name for row in rows for name in row})
    for name in names:
        values = np.asarray([row.get(name, 0.0) for row in rows])
        if len(values) > 1 and float(np.ptp(values)) < 1e-12 and len(names) > 1:
            issues.append(Issue("constant_component", f"component {name!r} is {values[0]:g} on every probe "
                                                      "transition", severity="warning"))
    peak = float(np.max(np.abs(totals))) if len(totals) else 0.0
    if peak > HUGE:
        issues.append(Issue("huge_magnitude", f"the total reaches {peak:.3g}; PPO learns best with per-step rewards "
                                              "of order 1 to 10", severity="warning"))
    return issues
