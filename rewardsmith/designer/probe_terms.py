"""Shaping terms composed from what probing a fitness found, and the spec's hints judged against it.

Each probe finding becomes one or two :class:`~rewardsmith.spec.ShapingHint` terms, with a note that names
the finding (the program carries it as a comment):

* a target (a field or angle where fitness peaks): ``near_X``, a sharp bonus at the probed scale, and
  ``toward_X``, a broad pull from anywhere in the field's range (a quarter of it as scale). A target that shows
  only once other targets are met (a second link in line, once the first points up) gets the sharp bonus alone,
  and only near those targets (its error adds theirs, scaled; where the first round found only monotone fields,
  it is composed like any target): paid everywhere, it would reward a state the fitness
  does not care about (the links in line while hanging), and a policy can farm that instead of the task;
* a monotone field: ``more_X`` or ``less_X``, a gain across the range, and ``past_X``, a flag beyond the
  point where fitness crosses halfway (a conditional one: the flag alone, and only near the other targets);
* an end region (ending pays, and a termination cause fires past a value of a field): ``reach_X``, a gain
  toward that end of the range (the ending itself is paid by ``ended``);
* a target random play never reached, in episodes that ran their full length, with a field that drives it:
  ``momentum_V``, a gain on that field's magnitude (energy shaping, see :mod:`rewardsmith.designer.probe_play`);
* the env's own reward, by its agreement with the fitness over random play: ``env_reward`` from the start
  where they agree, optional where it is unsure or unmeasured (the designer starts it off and turns it on
  in some candidates), left out where they disagree, and left out where a spec hint agrees with the probe;
* an action cost: ``effort``, the squared action;
* endings, where the task's episodes can end early: ``alive`` (surviving pays), ``clock`` (a per-step cost:
  ending sooner pays; the terms above are then paid as progress, their change over each step, so that
  lingering never earns more than finishing) and ``ended``, a flag on termination worth what the probe measured
  in steps (capped at ``MAX_END_STEPS``).

A term's weight is scaled by the share of the largest finding's fitness range it stands for.

A spec hint that reads a field the probe found a target for is kept where its own optimum sits on that
target (within twice the probed scale) and dropped where it does not; a constant or a termination flag is
kept where its sign agrees with the probed endings. A kept hint that agrees covers the finding: the probe's
own terms for it (its momentum term too) are left out and the hint carries the note instead. Hints the probe says nothing about stay.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from rewardsmith.designer.probe import FitnessProbe, Monotone, Target, with_value
from rewardsmith.episode import NamedValues
from rewardsmith.spec import EnvSpec, ShapingHint, TaskSpec, _fields_read

__all__ = ["compose_terms"]

_GATED = ", and only near the other targets"
ENV_REWARD = "env_reward"
"""The finding key of the env's own reward: composed only where no spec hint agrees with the probe (where one
does, the spec's hints are the shaping written for this fitness, and the search varies those)."""
CLOCK = 0.5
"""The per-step cost of a task where ending sooner pays (the reference races use it too)."""
PROGRESS = 10.0
"""Weight of a state term paid as progress, as a multiple of its weight as a bonus, since one step's change is a
small part of the term's scale. At 10× the race's pull pays 0.39 a step at top speed toward the flag (0.07 a step
over a scale of 0.9, weight 5), against a clock of 0.5."""
MAX_END_STEPS = 200
"""A termination flag is worth at most this many steps of the per-step rate."""
GRID = 81
"""Points at which a spec hint is evaluated across a found target's range to find its own optimum."""
_BUILTINS = {f.__name__: f for f in (abs, bool, float, int, len, max, min, pow, round, sum)}
"""What a hint expression may call besides ``math`` and ``np``, when it is evaluated here."""


def compose_terms(probe: FitnessProbe, hints: tuple[ShapingHint, ...], spec: EnvSpec,
                  task: TaskSpec) -> tuple[tuple[ShapingHint, ...], dict[str, str]]:
    """The spec's hints that do not contradict the probe, then the probe's own terms for what no kept hint
    covers; with a note (the probe result it came from) for every term the probe speaks for."""
    can_end = bool(spec.terminations or spec.termination_doc) and task.terminations != ()
    kept: list[ShapingHint] = []
    notes: dict[str, str] = {}
    covered: set[str] = set()
    for hint in hints:
        agrees, note, covers = _judge(hint, probe, spec, can_end)
        if agrees is False:
            continue
        kept.append(hint)
        notes[hint.name] = f"probe agrees: {note}" if note else "spec hint: the probe found nothing for or against it"
        covered |= covers
    names = {h.name for h in kept}
    for term, note, finding in _probe_terms(probe, can_end):
        if finding in covered or (finding == ENV_REWARD and covered):
            continue
        if term.name in names:  # a spec hint of that name that says something else
            term = replace(term, name=f"{term.name}_probe")
        kept.append(term)
        names.add(term.name)
        notes[term.name] = f"probe: {note}"
    return tuple(kept), notes


def _strength(probe: FitnessProbe) -> dict[str, float]:
    """Each field finding's fitness range as a share of the largest."""
    ranges = {t.label: t.peak - t.floor for t in probe.targets} | {m.label: m.rise for m in probe.monotone}
    top = max(ranges.values(), default=1.0) or 1.0
    return {label: max(value / top, 0.1) for label, value in ranges.items()}


def _probe_terms(probe: FitnessProbe, can_end: bool) -> list[tuple[ShapingHint, str, str]]:
    """(term, note, the finding it stands for)."""
    share = _strength(probe)
    anchors = [t for t in probe.targets if not t.conditional]
    terms: list[tuple[ShapingHint, str, str]] = []
    for t in probe.targets:
        error, key, weight = t.error_expr(), f"target:{t.label}", share[t.label]
        gated = t.conditional and bool(anchors)
        if gated:  # exp(-(e + k * e_anchor) / scale): the bonus times the anchors' own
            error = " + ".join([error, *(f"{_nice(t.scale / a.scale)} * {a.error_expr()}" for a in anchors)])
        terms.append((ShapingHint(f"near_{t.label}", error, "error", scale=_nice(t.scale), weight=_nice(weight)),
                      f"{t.describe()}; a sharp bonus within that scale{_GATED if gated else ''}", key))
        if not gated:
            terms.append((ShapingHint(f"toward_{t.label}", error, "error", scale=_nice(t.span / 4),
                                      weight=_nice(0.5 * weight)),
                          f"{t.describe()}; a broad pull from anywhere in its range", key))
    for m in probe.monotone:
        key, way = f"monotone:{m.label}", ("more" if m.direction > 0 else "less")
        expr = m.expr if m.direction > 0 else f"-{m.expr}"
        if m.ending:
            terms.append((ShapingHint(f"reach_{m.label}", expr, "gain", scale=_nice((m.high - m.low) / 2),
                                      weight=_nice(0.5 * share[m.label])),
                          f"{m.describe()}; a gain toward it", key))
            continue
        past = f"{m.expr} >= {m.threshold:.4g}" if m.direction > 0 else f"{m.expr} <= {m.threshold:.4g}"
        gated = m.conditional and bool(anchors)
        if gated:
            past = " and ".join([past, *(f"{a.error_expr()} < {_nice(a.scale)}" for a in anchors)])
        else:
            terms.append((ShapingHint(f"{way}_{m.label}", expr, "gain", scale=_nice((m.high - m.low) / 2),
                                      weight=_nice(0.5 * share[m.label])), m.describe(), key))
        terms.append((ShapingHint(f"past_{m.label}", past, "flag", weight=_nice(share[m.label])),
                      f"{m.describe()}; paid past the halfway point{_GATED if gated else ''}", key))
    keys = {t.label: f"target:{t.label}" for t in probe.targets} | {m.label: f"monotone:{m.label}" for m in probe.monotone}
    for p in probe.momentum:  # a spec hint that covers the target was written knowing how to get there
        terms.append((ShapingHint(f"momentum_{p.driver}", f"abs(next_obs.{p.driver})", "gain", scale=_nice(p.bound),
                                  weight=_nice(0.5 * share.get(p.label, 1.0))), p.describe(), keys.get(p.label, "")))
    e = probe.endings
    if e is not None and can_end and e.hurry > 0:
        terms = _as_progress(terms)
    agreement = probe.agreement
    if agreement is not None and agreement.verdict != "disagrees":
        unsure = agreement.verdict == "unsure"
        how = "; on in some candidates only: the search decides" if unsure else "; they agree"
        terms.append((ShapingHint("env_reward", 'info["env_reward"]', "gain", scale=_nice(agreement.scale), weight=0.5,
                                  optional=unsure),
                      f"{agreement.describe()}{how} (scaled by random play's {_nice(agreement.scale):g} per step)",
                      ENV_REWARD))
    if probe.action_cost is not None:
        a = probe.action_cost
        terms.append((ShapingHint("effort", a.expr, "error", scale=_nice(a.scale), weight=0.1, optional=True),
                      a.describe(), "action"))
    if e is not None and can_end:
        if e.survival > 0:
            terms.append((ShapingHint("alive", "1.0", "constant", weight=0.2, optional=True),
                          e.describe_survival(), "survival"))
        if e.hurry > 0:
            terms.append((ShapingHint("clock", "1.0", "constant", weight=-CLOCK), e.describe_hurry(), "hurry"))
        if e.end_gain:
            rate = max(e.hurry, e.survival, 0.0)
            steps = min(abs(e.end_gain) / rate, MAX_END_STEPS) if rate > 0 else MAX_END_STEPS / 10
            weight = math.copysign(_nice(CLOCK * steps), e.end_gain)
            terms.append((ShapingHint("ended", 'info["terminated"]', "flag", weight=weight,
                                      optional=weight < 0), e.describe_end(), "end"))
    return terms


def _as_progress(terms: list[tuple[ShapingHint, str, str]]) -> list[tuple[ShapingHint, str, str]]:
    """The state terms paid as progress (:attr:`ShapingHint.progress`), at ``PROGRESS`` times their weight:
    where ending sooner pays, a bonus for being somewhere makes lingering there earn more than finishing, while
    a change over each step adds up to the episode's net progress, so it pays for getting there and not for
    staying."""
    return [(replace(term, progress=True, weight=_nice(term.weight * PROGRESS)),
             f"{note}; paid as progress (its change over a step), so that lingering earns nothing", key)
            for term, note, key in terms]


def _nice(x: float) -> float:
    return float(f"{x:.2g}")


def _judge(hint: ShapingHint, probe: FitnessProbe, spec: EnvSpec,
           can_end: bool) -> tuple[bool | None, str, set[str]]:
    """Whether ``hint`` agrees with the probe (True), contradicts it (False) or is not spoken for (None), why,
    and which findings it covers."""
    e = probe.endings if can_end else None
    if hint.kind == "constant" and e is not None:
        if hint.weight > 0 and e.survival > 0:
            return True, e.describe_survival(), {"survival"}
        if hint.weight < 0 and e.hurry > 0:
            return True, e.describe_hurry(), {"hurry"}
        if (hint.weight > 0 and e.hurry > 0) or (hint.weight < 0 and e.survival > 0):
            return False, "", set()
        return None, "", set()
    if hint.kind == "flag" and 'info["terminated"]' in hint.expr.replace("'", '"') and e is not None and e.end_gain:
        agrees = (hint.weight > 0) == (e.end_gain > 0)
        return agrees, e.describe_end() if agrees else "", {"end"} if agrees else set()
    read = _fields_read(hint.expr)
    if not read and "action" in hint.expr and hint.kind == "error" and probe.action_cost is not None:
        return True, probe.action_cost.describe(), {"action"}
    layout = spec.field_layout
    findings = [f for f in (*probe.targets, *probe.monotone)
                if read & {name for name, slot in layout.items() if slot.index in f.columns}]
    if not findings or not probe.state:
        return None, "", set()
    verdicts = [_hint_optimum_agrees(hint, finding, probe.state, spec) for finding in findings]
    if False in verdicts:
        return False, "", set()
    if None in verdicts:
        return None, "", set()
    key = {f"target:{f.label}" if isinstance(f, Target) else f"monotone:{f.label}" for f in findings}
    return True, "; ".join(f.describe() for f in findings), key


def _hint_optimum_agrees(hint: ShapingHint, finding: Target | Monotone, state: tuple[float, ...],
                         spec: EnvSpec) -> bool | None:
    """Whether ``hint``'s own best values of the finding's field lie where the probe says fitness is best; None
    where the hint cannot be evaluated on an observation alone."""
    if isinstance(finding, Target):
        xs = finding.value + np.linspace(-finding.span / 2, finding.span / 2, GRID)
    else:
        xs = np.linspace(finding.low, finding.high, GRID)
    values = []
    for x in xs:
        value = _evaluate(hint.expr, with_value(np.asarray(state), finding.columns, float(x)), spec)
        if value is None:
            return None
        values.append(value)
    ys = np.asarray(values)
    better = -ys if hint.kind == "error" or (hint.kind == "flag" and hint.weight < 0) else ys
    best = xs[better >= better.max() - 1e-9 * max(1.0, float(np.abs(better).max()))]
    if isinstance(finding, Target):
        gaps = np.abs(best - finding.value)
        if finding.angle:
            gaps = np.abs(np.remainder(best - finding.value + math.pi, 2 * math.pi) - math.pi)
        return bool(gaps.min() <= max(2 * finding.scale, finding.span / 40))
    inside = best >= finding.threshold if finding.direction > 0 else best <= finding.threshold
    return bool(inside.any())


def _evaluate(expr: str, state: np.ndarray, spec: EnvSpec) -> float | None:
    """A spec hint's expression (trusted spec code) at one observation, with no action and no ending."""
    obs = NamedValues(spec.field_layout, state)
    scope: dict[str, Any] = {"obs": obs, "next_obs": obs, "action": np.zeros(1), "math": math, "np": np,
                             "info": {"terminated": False, "truncated": False, "env_reward": 0.0}}
    try:
        return float(eval(expr, {"__builtins__": _BUILTINS}, scope))
    except Exception:  # a hint that needs more than an observation to evaluate
        return None
