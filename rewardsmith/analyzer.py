"""Trajectories of a trained policy → statistics, failure causes, reward-hacking flags, reflection.

:func:`analyze_candidate` runs in the training worker, right after a training scored. It records
extra *stochastic* episodes of the policy (the final evaluation's deterministic ones are reused),
scores each step's reward components in the candidate's still-open sandbox, and hands everything
to :func:`analyze`, a pure function of episodes and checkpoints that the tests drive directly.

The result is a plain JSON-able dict (``analysis.json``)::

    fitness          mean, std, min, max, success_rate, values, solved — the deterministic episodes
                     (the candidate's score); ``stochastic`` holds the same for the sampled policy
    episode_length   mean, std, min, max over every analysed episode
    training         per checkpoint: steps, fitness, shaped_return, env_return, episode_length (evaluation),
                     train_episode_length (the training episodes the returns come from)
    components       per component: series (its per-step mean at each checkpoint); mean, std, min, max
                     per step; episode_return; share (of the summed |component| magnitudes);
                     spread_share (of the summed per-step std); corr_fitness (Pearson r, across
                     episodes, of its per-step mean with fitness); corr_return (the same of its episode
                     sum); corr_training (per-step mean across checkpoints); constant; active (fraction of steps it pays); tracks (the
                     observation field it follows); flags ⊂ {flat, dominant, against, hacked}
    terminations     {cause: episodes}, causes named by the env spec's termination rules
    failure_states   failed episodes' last states against the range seen in successful episodes
                     (else the field's documented range): per field, and one line per finding
    coverage         per key field: a histogram, quantiles, and how the field moves in an episode
    hacking          [{kind, component, evidence, numbers}] — kind ``return``: the shaped return rose
                     while fitness did not (component: the term carrying most of the rise of the episode
                     return when one clearly does, else None; numbers.attribution splits the rise by term
                     and into longer episodes vs more per step);
                     kind ``farmed``: the policy increasingly collects a component that is against the task
    flags            every finding as ``flag:component`` (``hacking:return`` for the return-level one)
    reflection       the compact numeric text of ``prompts/analysis.j2`` that designers and people read

Every threshold below is a named constant whose docstring says why it has that value.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rewardsmith.bounds import TEXT_SHOWN, clip
from rewardsmith.episode import Episode, Slot
from rewardsmith.results import Analysis
from rewardsmith.rollouts import annotate_components, record_episodes
from rewardsmith.seeds import STOCHASTIC_SEED
from rewardsmith.spec import EnvSpec

if TYPE_CHECKING:
    from rewardsmith.results import Checkpoint
    from rewardsmith.task import ResolvedTask
    from rewardsmith.training import TrainedPolicy

__all__ = ["ANALYSIS_VERSION", "analyze", "analyze_candidate", "analyzer_failure", "render_reflection"]

ANALYSIS_VERSION = 1

STOCHASTIC_EPISODES = 10
"""Sampled-policy episodes recorded on top of the final deterministic ones. A deterministic policy
often repeats itself across seeds; sampled actions show which behaviours go with higher fitness,
which is what the correlations need."""

FLAT_CV = 0.02
"""A component whose largest per-step standard deviation (over every training window and the
evaluation) is under 2 % of its magnitude is *flat*: e.g. ``exp(-|angle| / 10)`` stays in
[0.98, 1.0] whatever the pole does, so its gradient signal is lost in PPO's noise."""

FLAT_SPREAD_SHARE = 0.02
"""A component whose per-step spread is under 2 % of the summed spread of all components is also
*flat*: whatever the policy does, it moves the reward by less than the others' rounding."""

DOMINANT_SHARE = 0.8
"""A component carrying at least 80 % of the reward's total magnitude (with two or more components)
is *dominant*: the others together weigh a quarter of it or less, and PPO optimises it alone."""

AGAINST_CORR = -0.5
"""Across episodes, a component whose per-step mean correlates with fitness at r ≤ −0.5 is *against*
the task: episodes that collect more of it score clearly worse (p < 0.05 at 16 episodes) — unless its
episode sum goes with fitness (r ≥ ``ALIGNED_CORR``), as the env's own reward does with a fitness that is
the env's return: then the per-step view compares a mean with a sum and is no evidence."""

AGAINST_TRAINING_CORR = -0.8
"""Where fitness does not vary across the evaluation episodes, the checkpoint series decides: a
component that rose while fitness fell (or the reverse) over training at r ≤ −0.8 is *against*.
Stricter than the episode test because a handful of checkpoints correlate by chance more easily."""

ALIGNED_CORR = 0.5
"""A component correlating with fitness at r ≥ 0.5, the mirror of ``AGAINST_CORR``, goes with the task:
the reflection suggests more weight for it (when unflagged), and it is never named as farmed."""

MIN_CORR_EPISODES = 6
"""Fewer episodes than this give no episode correlation: r on 5 points is noise."""

MIN_CORR_CHECKPOINTS = 5
"""Fewer checkpoints than this give no training correlation."""

HACK_MIN_CHECKPOINTS = 3
"""The return-level hacking test needs a start, a middle and an end of training."""

HACK_SHAPED_RISE = 0.2
"""The shaped return must rise by at least 20 % of its magnitude over training to count as rising."""

HACK_FITNESS_GAIN = 0.1
"""…while fitness gains under 10 % of its scale (the solved threshold, else the largest |fitness|
seen): the policy learned to collect reward, not to do the task. Under a tenth of the way to solved
is within the noise of a few evaluation episodes."""

HACK_NEAR_SOLVED = 0.8
"""No return-level hacking is reported once the final fitness reaches 80 % of the solved threshold:
near solved, the shaped return keeps rising as the policy polishes a behaviour that already works."""

FARM_RISE = 0.5
"""A component *against* the task is *hacked* (farmed) when its per-step mean rose over training by
at least half its own standard deviation: the policy increasingly collects what costs it fitness.
(Measured in standard deviations, not in its range, so one extreme value does not hide the rise.)"""

FARM_MIN_SHARE = 0.1
"""…and it carries at least 10 % of the reward's magnitude, enough to steer the policy."""

FARM_RISE_SHARE = 0.6
"""When the shaped return rises without fitness, a component carrying at least 60 % of the rise of the
episode return (per-step mean × episode length, summed over the terms that rose) is its source. With no
clear majority the finding names no component: guessing would send the designer after the wrong term."""

TRACK_MIN_CORR = 0.7
"""A component *tracks* an observation field (or its magnitude) when their per-step correlation is
at least 0.7: the evidence then names the field and how it moves."""

STILL_FRACTION = 0.02
"""A field whose typical within-episode standard deviation is under 2 % of its range stands still."""

OSCILLATION_CROSSINGS = 10.0
"""A field that crosses its episode mean at least 10 times per 100 steps, with an amplitude of at
least 10 % of its range, oscillates (a bang-bang controller's small jitter does not count)."""

OSCILLATION_AMPLITUDE = 0.1

EVENT_FRACTION = 0.05
"""A component that pays on under 5 % of steps is an *event* (a termination flag, a goal bonus): its
per-step mean moves with episode length, not behaviour, so it is never named as the farmed one."""

COVERAGE_FIELDS = 6
"""Key fields in the coverage: those the components track, those out of range at failure, then the
rest in spec order. Six keeps the reflection short on envs with dozens of fields."""

COVERAGE_BINS = 10

_EPS = 1e-12


# ------------------------------------------------------------------------------------- the entry


def analyze_candidate(
    task: ResolvedTask,
    trained: TrainedPolicy,
    *,
    stochastic_episodes: int = STOCHASTIC_EPISODES,
    seed: int = STOCHASTIC_SEED,
    candidate_id: str | None = None,
    prompts_dir: Path | None = None,
    budget: int | None = None,
) -> Analysis:
    """Analyse a scored training (runs in the worker, before ``trained.close()``).

    Records ``stochastic_episodes`` sampled-policy episodes, scores their reward components in
    ``trained.sandbox`` and analyses them with the final deterministic episodes. ``budget`` is the full
    budget of a training that paused short of it (a successive-halving rung): the reflection then says
    that its numbers are an early look, not a final result.

    Returns:
        The analysis dict (see the module docstring), ready for ``analysis.json``.
    """
    from rewardsmith.sandbox import RewardCallError

    warnings: list[str] = []
    stochastic: list[Episode] = []
    if trained.stochastic_policy is not None and stochastic_episodes > 0:
        stochastic, _ = record_episodes(trained.stochastic_policy, task.spec, task.task_spec, stochastic_episodes, seed)
        if trained.sandbox is not None:
            try:
                annotate_components(stochastic, trained.sandbox)
            except RewardCallError as exc:
                warnings.append(f"the reward failed on a sampled episode ({clip(exc.issue.message, TEXT_SHOWN)}); "
                                "only the deterministic episodes are analysed")
                stochastic = []
    steps = trained.result.steps
    analysis = analyze(task.spec, task.fitness, task.solved, trained.episodes, stochastic,
                       trained.result.checkpoints, candidate_id=candidate_id, prompts_dir=prompts_dir,
                       partial=(steps, budget) if budget is not None and steps < budget else None)
    if warnings:
        analysis["warnings"] = warnings
    return analysis


def analyzer_failure(exc: BaseException) -> Analysis:
    """The analysis recorded when the analyzer itself fails: the training's score stands, the error is kept."""
    import traceback

    message = clip(f"{type(exc).__name__}: {exc}", TEXT_SHOWN)
    return {
        "version": ANALYSIS_VERSION,
        "error": message,
        "traceback": clip("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)), TEXT_SHOWN),
        "components": {}, "hacking": [], "flags": [],
        "reflection": f"The analyzer failed on this candidate ({message}); only its fitness is known.\n",
    }


def analyze(
    spec: EnvSpec,
    fitness: Callable[[Episode], float],
    solved: float,
    deterministic: Sequence[Episode],
    stochastic: Sequence[Episode],
    checkpoints: Sequence[Checkpoint],
    *,
    candidate_id: str | None = None,
    prompts_dir: Path | None = None,
    partial: tuple[int, int] | None = None,
) -> Analysis:
    """The analysis of recorded episodes (components filled) and a training's checkpoints.

    ``partial``: (steps trained, full budget) of a training paused at a successive-halving rung."""
    episodes = list(deterministic) + list(stochastic)
    values = np.asarray([_finite(fitness(e)) for e in episodes], dtype=np.float64)
    det_values = values[: len(deterministic)]
    success = _success_mask(episodes, values, solved)
    lengths = np.asarray([len(e) for e in episodes], dtype=np.float64)

    analysis: dict[str, Any] = {
        "version": ANALYSIS_VERSION,
        "candidate": candidate_id,
        "episodes": {"deterministic": len(deterministic), "stochastic": len(stochastic)},
        "fitness": {**_fitness_summary(det_values, solved),
                    "stochastic": _fitness_summary(values[len(deterministic):], solved)},
        "episode_length": _summary(lengths),
        "training": _training_series(checkpoints),
    }
    if partial is not None:
        analysis["partial"] = {"steps": partial[0], "budget": partial[1]}
    components = component_stats(episodes, values, checkpoints, spec)
    final_fitness = float(np.nanmean(det_values)) if np.isfinite(det_values).any() else None
    hacking = detect_hacking(checkpoints, components, solved, values, final_fitness)
    for entry in hacking:
        name = entry.get("component")
        if name in components and "hacked" not in components[name]["flags"]:
            components[name]["flags"].append("hacked")
    for entry in hacking:
        name = entry.get("component")
        if name in components:
            entry["evidence"] += _behaviour_evidence(components[name], episodes, spec)
    analysis["components"] = components
    analysis["terminations"] = dict(Counter(e.cause or "unknown" for e in episodes).most_common())
    analysis["failure_states"] = failure_states(spec, episodes, success, values, solved)
    analysis["coverage"] = coverage(spec, episodes, _key_fields(spec, components, analysis["failure_states"]))
    analysis["hacking"] = hacking
    flags = [f"{flag}:{name}" for name, stats in components.items() for flag in stats["flags"]]
    flags += [f"hacking:{entry['kind']}" for entry in hacking if entry.get("component") is None]
    analysis["flags"] = flags
    analysis["reflection"] = render_reflection(analysis, spec, prompts_dir)
    return _jsonable(analysis)


# ------------------------------------------------------------------------------------ fitness


def _finite(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else math.nan


def _success_mask(episodes: Sequence[Episode], values: np.ndarray, solved: float) -> np.ndarray:
    """An episode succeeds when its fitness reaches ``solved``; with no threshold, when it was not terminated."""
    if math.isfinite(solved):
        return np.asarray([v >= solved for v in values], dtype=bool)
    return np.asarray([not e.terminated for e in episodes], dtype=bool)


def _summary(values: np.ndarray) -> dict[str, float | None]:
    finite = values[np.isfinite(values)] if len(values) else values
    if len(finite) == 0:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {"mean": float(finite.mean()), "std": float(finite.std()), "min": float(finite.min()),
            "max": float(finite.max())}


def _fitness_summary(values: np.ndarray, solved: float) -> dict[str, Any]:
    summary: dict[str, Any] = _summary(values)
    summary["success_rate"] = float(np.mean(values >= solved)) if len(values) and math.isfinite(solved) else 0.0
    summary["values"] = [float(v) if math.isfinite(v) else None for v in values]
    summary["solved"] = solved if math.isfinite(solved) else None
    return summary


def _training_series(checkpoints: Sequence[Checkpoint]) -> dict[str, list[Any]]:
    return {
        "steps": [c.step for c in checkpoints],
        "fitness": [c.fitness for c in checkpoints],
        "shaped_return": [c.shaped_return for c in checkpoints],
        "env_return": [c.env_return for c in checkpoints],
        "episode_length": [c.episode_length for c in checkpoints],
        "train_episode_length": [getattr(c, "train_episode_length", None) for c in checkpoints],
    }


# --------------------------------------------------------------------------------- components


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, minimum: int = 3) -> float | None:
    """Pearson's r over the pairs where both are finite; None when either barely varies or too few remain."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < minimum:
        return None
    if a.std() <= 1e-9 * max(1.0, float(np.abs(a).max())) or b.std() <= 1e-9 * max(1.0, float(np.abs(b).max())):
        return None
    return float(np.clip(np.corrcoef(a, b)[0, 1], -1.0, 1.0))


def component_stats(episodes: Sequence[Episode], fitness_values: np.ndarray, checkpoints: Sequence[Checkpoint],
                    spec: EnvSpec) -> dict[str, dict[str, Any]]:
    """Per component: statistics over evaluation steps and training windows, correlations and flags."""
    names = sorted({n for e in episodes for n in e.components} | {n for c in checkpoints for n in c.components})
    if not names:
        return {}
    lengths = np.asarray([len(e) for e in episodes], dtype=np.float64)
    checkpoint_fitness = [c.fitness for c in checkpoints]
    stats: dict[str, dict[str, Any]] = {}
    for name in names:
        pooled = np.concatenate([e.components[name] for e in episodes if name in e.components] or [np.zeros(0)])
        per_step = [float(np.mean(e.components[name])) if name in e.components and len(e) else math.nan
                    for e in episodes]
        returns = [float(np.sum(e.components[name])) if name in e.components else math.nan for e in episodes]
        windows = [c.components[name] for c in checkpoints if name in c.components]
        series = [c.components[name]["mean"] if name in c.components else None for c in checkpoints]
        lows = [w["min"] for w in windows] + ([float(pooled.min())] if len(pooled) else [])
        highs = [w["max"] for w in windows] + ([float(pooled.max())] if len(pooled) else [])
        low, high = (min(lows), max(highs)) if lows else (0.0, 0.0)
        # the largest spread seen anywhere: a term that varied while the policy learned did teach
        spread = max([w["std"] for w in windows] + ([float(pooled.std())] if len(pooled) else [0.0]))
        stats[name] = {
            "series": series,
            "mean": float(pooled.mean()) if len(pooled) else None,
            "std": float(pooled.std()) if len(pooled) else None,
            "min": low,
            "max": high,
            "episode_return": float(np.nanmean(returns)) if np.isfinite(returns).any() else None,
            "magnitude": float(np.abs(pooled).mean()) if len(pooled) else 0.0,
            "spread": spread,
            "constant": bool(high - low <= _EPS * max(1.0, abs(high))),
            "active": float(np.mean(np.abs(pooled) > _EPS)) if len(pooled) else 0.0,
            "corr_fitness": pearson(per_step, fitness_values, MIN_CORR_EPISODES),
            "corr_return": pearson(returns, fitness_values, MIN_CORR_EPISODES),
            "corr_training": pearson([math.nan if v is None else v for v in series], checkpoint_fitness,
                                     MIN_CORR_CHECKPOINTS),
            "tracks": _tracked_field(pooled, episodes, name, spec),
            "flags": [],
        }
    total_magnitude = sum(s["magnitude"] for s in stats.values())
    total_spread = sum(s["spread"] for s in stats.values())
    lengths_fixed = _lengths_fixed(lengths, [c.episode_length for c in checkpoints])
    for s in stats.values():
        s["share"] = s["magnitude"] / total_magnitude if total_magnitude > _EPS else 0.0
        s["spread_share"] = s["spread"] / total_spread if total_spread > _EPS else 0.0
    for s in stats.values():
        s["flags"] = _flags(s, len(stats), lengths_fixed)
    return stats


def _lengths_fixed(lengths: np.ndarray, training_lengths: Sequence[float]) -> bool:
    """Every episode, in evaluation and over training, lasted (nearly) as long as the others."""
    every = np.concatenate([lengths, np.asarray(training_lengths, dtype=np.float64)])
    if len(every) == 0:
        return True
    return bool(every.std() < FLAT_CV * max(every.mean(), 1.0))


def _flags(s: dict[str, Any], count: int, lengths_fixed: bool) -> list[str]:
    flags = []
    top = max(abs(s["min"]), abs(s["max"]))
    if s["constant"]:
        # A constant pays through episode length alone: it teaches survival where episodes can end
        # early, and nothing where every episode lasts the same.
        if top <= _EPS or lengths_fixed:
            flags.append("flat")
    elif s["spread"] < FLAT_CV * top or (count > 1 and s["spread_share"] < FLAT_SPREAD_SHARE):
        flags.append("flat")
    if count > 1 and s["share"] >= DOMINANT_SHARE:
        flags.append("dominant")
    corr, corr_training = s["corr_fitness"], s["corr_training"]
    per_episode_aligned = s["corr_return"] is not None and s["corr_return"] >= ALIGNED_CORR
    if corr is not None:
        # A lower per-step mean in episodes that score higher is no verdict when the term's episode sum
        # goes with fitness: a fitness that sums over the episode (the env's own return, its length) is
        # compared like with like through the sum, and the policy is paid, and maximises, the sum.
        if corr <= AGAINST_CORR and not per_episode_aligned:
            flags.append("against")
    elif corr_training is not None and corr_training <= AGAINST_TRAINING_CORR and not s["constant"]:
        flags.append("against")
    return flags


def _tracked_field(values: np.ndarray, episodes: Sequence[Episode], name: str,
                   spec: EnvSpec) -> dict[str, Any] | None:
    """The observation field (value or magnitude) a component follows most closely, step by step."""
    if len(values) < 3 or not episodes:
        return None
    used = [e for e in episodes if name in e.components]
    if sum(len(e) for e in used) != len(values):
        return None
    best: dict[str, Any] | None = None
    layout = spec.field_layout
    for field_name in analysed_fields(spec):
        if layout[field_name].index + layout[field_name].size > used[0].obs.data.shape[1]:
            continue
        series = np.concatenate([field_series(e.obs.data, layout[field_name])[1:] for e in used])
        for magnitude in (False, True) if not layout[field_name].shape else (True,):  # a vector: its norm
            column = np.abs(series) if magnitude else series
            r = pearson(values, column)
            if r is not None and abs(r) >= TRACK_MIN_CORR and (best is None or abs(r) > abs(best["corr"])):
                best = {"field": field_name, "magnitude": magnitude, "corr": r}
    return best


# ------------------------------------------------------------------------------------ hacking


def detect_hacking(checkpoints: Sequence[Checkpoint], components: dict[str, dict[str, Any]], solved: float,
                   fitness_values: np.ndarray, final_fitness: float | None = None) -> list[dict[str, Any]]:
    """Reward hacking: the shaped return rose while fitness did not, or a component is farmed against the task.

    Args:
        final_fitness: the final evaluation's mean fitness (more episodes than a checkpoint's), which
            stands for the end of training; None takes the last checkpoints.
    """
    found: list[dict[str, Any]] = []
    scale = _fitness_scale(checkpoints, fitness_values, solved)
    shaped = [(c.shaped_return, c) for c in checkpoints if c.shaped_return is not None and math.isfinite(c.shaped_return)]
    if len(shaped) >= HACK_MIN_CHECKPOINTS:
        first, last = _ends([s for s, _ in shaped])
        fit_first, fit_last = _ends([c.fitness for _, c in shaped])
        if final_fitness is not None and math.isfinite(final_fitness):
            fit_last = final_fitness
        reference = max(abs(first), abs(last), _EPS)
        rise = (last - first) / reference
        gain = (fit_last - fit_first) / scale
        unsolved = not (math.isfinite(solved) and fit_last >= HACK_NEAR_SOLVED * solved)
        if rise >= HACK_SHAPED_RISE and gain < HACK_FITNESS_GAIN and unsolved:
            attribution = attribute_rise([c for _, c in shaped], components)
            farmed = attribution["source"]
            verb = "fell" if gain < -HACK_FITNESS_GAIN else "stayed flat"
            evidence = (f"the shaped return rose {_short_number(first)} → {_short_number(last)} ({rise:+.0%}) over training while "
                        f"fitness {verb} ({_short_number(fit_first)} → {_short_number(fit_last)})")
            evidence += _attribution_evidence(attribution)
            found.append({"kind": "return", "component": farmed, "evidence": evidence,
                          "numbers": {"shaped_first": first, "shaped_last": last, "fitness_first": fit_first,
                                      "fitness_last": fit_last, "attribution": attribution}})
    for name, s in components.items():
        if "against" not in s["flags"] or s["share"] < FARM_MIN_SHARE:
            continue
        if any(entry["component"] == name for entry in found):
            continue
        series = [v for v in s["series"] if v is not None]
        if len(series) < 2 or s["spread"] <= _EPS:
            continue
        start, end = _ends(series)
        if (end - start) / s["spread"] >= FARM_RISE:
            corr = s["corr_fitness"] if s["corr_fitness"] is not None else s["corr_training"]
            found.append({
                "kind": "farmed", "component": name,
                "evidence": (f"the policy collects more of {name} as it trains (per step {_short_number(start)} → {_short_number(end)}) "
                             f"although episodes with more of it score lower (r = {corr:+.2f}); "
                             f"it carries {s['share']:.0%} of the reward"),
                "numbers": {"start": start, "end": end, "corr": corr, "share": s["share"]},
            })
    return found


def _ends(values: Sequence[float]) -> tuple[float, float]:
    """The start and end of a series, each averaged over two points once there are four or more."""
    if len(values) >= 4:
        return float(np.mean(values[:2])), float(np.mean(values[-2:]))
    return float(values[0]), float(values[-1])


def _fitness_scale(checkpoints: Sequence[Checkpoint], values: np.ndarray, solved: float) -> float:
    if math.isfinite(solved) and abs(solved) > _EPS:
        return abs(solved)
    seen = [abs(c.fitness) for c in checkpoints if math.isfinite(c.fitness)]
    seen += [abs(v) for v in values if math.isfinite(v)]
    return max(seen + [1.0])


def _checkpoint_length(checkpoint: Checkpoint) -> float:
    """The mean length of the training episodes a checkpoint's shaped return and component windows come from
    (the evaluation's when a training did not record it)."""
    length = getattr(checkpoint, "train_episode_length", None)
    return float(length) if length is not None and math.isfinite(length) else float(checkpoint.episode_length)


def attribute_rise(checkpoints: Sequence[Checkpoint], components: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Which components the rise of the shaped return comes from, and whether through longer episodes or
    more reward per step.

    A component's share of an episode's return is its per-step mean × the episode length, so a term
    that pays ~1 on every step carries a return that grows with the episode even when its per-step
    value does not move, and a term that moves a lot in its own units may move the return by nothing.
    Between the start and the end of training (each the mean of two checkpoints once there are four)
    the change of each contribution splits exactly into a *length* part (mean per-step value × change
    of length) and a *per-step* part (mean length × change of per-step value).

    The source is the component carrying at least ``FARM_RISE_SHARE`` of the components' summed
    positive changes, and only when it does not go with fitness across episodes (r ≥ ``ALIGNED_CORR``,
    per step or per episode): collecting more of such a term is the task being learned, not a hack.

    Returns:
        ``{"source", "top", "top_aligned", "through", "length_first", "length_last", "length_part",
        "per_step_part", "terms": {name: {"change", "length_part", "per_step_part", "share", "per_step_first",
        "per_step_last"}}}``; ``top`` is the term with the largest change, named or not; ``through`` is
        ``"length"`` or ``"per_step"`` for the source (else for the whole reward), ``share`` a term's
        fraction of the summed positive changes.
    """
    lengths = [_checkpoint_length(c) for c in checkpoints]
    length_first, length_last = _ends(lengths) if lengths else (0.0, 0.0)
    terms: dict[str, dict[str, float]] = {}
    for name in components:
        pairs = [(float(c.components[name]["mean"]), length) for c, length in zip(checkpoints, lengths)
                 if name in c.components and c.components[name].get("mean") is not None]
        pairs = [(m, n) for m, n in pairs if math.isfinite(m) and math.isfinite(n)]
        if len(pairs) < 2:
            continue
        start, end = _ends([m for m, _ in pairs])
        n0, n1 = _ends([n for _, n in pairs])
        length_part = (start + end) / 2 * (n1 - n0)
        per_step_part = (n0 + n1) / 2 * (end - start)
        terms[name] = {"change": length_part + per_step_part, "length_part": length_part,
                       "per_step_part": per_step_part, "per_step_first": start, "per_step_last": end}
    positive = sum(max(t["change"], 0.0) for t in terms.values())
    for t in terms.values():
        t["share"] = max(t["change"], 0.0) / positive if positive > _EPS else 0.0
    length_part = sum(t["length_part"] for t in terms.values())
    per_step_part = sum(t["per_step_part"] for t in terms.values())
    top = max(terms, key=lambda n: terms[n]["change"]) if terms else None
    top_aligned = top is not None and _aligned(components[top])
    source = top if top is not None and terms[top]["share"] >= FARM_RISE_SHARE and not top_aligned else None
    by = terms[source] if source is not None else {"length_part": length_part, "per_step_part": per_step_part}
    return {"source": source, "top": top, "top_aligned": top_aligned,
            "through": "length" if by["length_part"] >= by["per_step_part"] else "per_step",
            "length_first": length_first, "length_last": length_last,
            "length_part": length_part, "per_step_part": per_step_part, "terms": terms}


def _aligned(stats: dict[str, Any]) -> bool:
    """The component goes with fitness across episodes, per step or per episode."""
    return any(r is not None and r >= ALIGNED_CORR for r in (stats["corr_fitness"], stats.get("corr_return")))


def _attribution_evidence(attribution: dict[str, Any]) -> str:
    """The attribution in words: longer episodes or more per step, and the term (if one) the rise comes from."""
    terms = attribution["terms"]
    if not terms:
        return ""
    l0, l1 = attribution["length_first"], attribution["length_last"]
    if abs(l1 - l0) <= 0.01 * max(l0, l1, 1.0):
        text = (f"; per episode, at a steady length of {_short_number(l1)} steps, more reward per step accounts for "
                f"{_sg(attribution['per_step_part'])}")
    else:
        longer = "longer" if l1 > l0 else "shorter"
        text = (f"; per episode, {longer} episodes ({_short_number(l0)} → {_short_number(l1)} steps) account for "
                f"{_sg(attribution['length_part'])} and more reward per step for {_sg(attribution['per_step_part'])}")
    source = attribution["source"]
    if source is not None:
        t = terms[source]
        text += f"; most of the rise comes from {source} ({_sg(t['change'])} per episode, {t['share']:.0%} of the rise"
        per_step = f"{_short_number(t['per_step_first'])} → {_short_number(t['per_step_last'])} per step"
        if attribution["through"] == "length":
            text += f") through longer episodes, not more per step ({per_step})"
        else:
            text += f") collected more per step ({per_step})"
    elif attribution["top"] is not None and terms[attribution["top"]]["share"] > 0:
        top = attribution["top"]
        t = terms[top]
        text += f"; the largest part comes from {top} ({_sg(t['change'])} per episode, {t['share']:.0%} of the rise)"
        if attribution["top_aligned"]:
            text += ", which goes with fitness across episodes"
    return text


def _behaviour_evidence(stats: dict[str, Any], episodes: Sequence[Episode], spec: EnvSpec) -> str:
    """What the policy does while it farms: the field the component follows, and fields that stand still or swing."""
    text = ""
    tracks = stats.get("tracks")
    if tracks:
        what = f"|{tracks['field']}|" if tracks["magnitude"] else tracks["field"]
        slot = spec.field_layout[tracks["field"]]
        pooled = np.concatenate([field_series(e.obs.data, slot)[1:] for e in episodes]) if episodes else np.zeros(1)
        if tracks["magnitude"]:
            pooled = np.abs(pooled)
        text += f"; it follows {what} (r = {tracks['corr']:+.2f}), which the policy keeps at median {_short_number(np.median(pooled))}"
    still, swinging = [], []
    for name in analysed_fields(spec):
        moves = _movement(episodes, spec, name)
        if moves["still"]:
            still.append(name)
        elif moves["oscillating"] and None not in _field_range(spec, name):
            swinging.append(f"{name} (±{_short_number(moves['amplitude'])}, {moves['crossings_per_100']:.0f} swings per 100 steps)")
    if still:
        text += f"; {', '.join(still)} {'stands' if len(still) == 1 else 'stand'} still"
    if swinging:
        text += f"; {', '.join(swinging)} {'oscillates' if len(swinging) == 1 else 'oscillate'}"
    return text


# ---------------------------------------------------------------------------- failures, coverage


def _field_range(spec: EnvSpec, field_name: str) -> tuple[float | None, float | None]:
    """A scalar field's documented range; none for a vector field (its norm has no documented range)."""
    for f in spec.fields:
        if f.name == field_name and not f.shape:
            return f.low, f.high
    return None, None


MAX_ANALYSED_VALUES = 16
"""A vector field of up to this many values is analysed through its norm (one number per step, like a
scalar); larger array fields (images) are left out of the per-field statistics."""


def analysed_fields(spec: EnvSpec) -> list[str]:
    """The fields the per-field statistics cover, in index order."""
    return [f.name for f in spec.fields if f.size <= MAX_ANALYSED_VALUES]


def field_series(data: np.ndarray, slot: Slot) -> np.ndarray:
    """One number per row of ``data`` for a field: a scalar's value, a vector's Euclidean norm."""
    if not slot.shape:
        return data[:, slot.index]
    return np.linalg.norm(data[:, slot.index:slot.index + slot.size], axis=1)


def failure_states(spec: EnvSpec, episodes: Sequence[Episode], success: np.ndarray, values: np.ndarray,
                   solved: float) -> dict[str, Any]:
    """The last state of each failed episode, field by field, against where successful episodes stay."""
    failed = [e for e, ok in zip(episodes, success) if not ok]
    succeeded = [e for e, ok in zip(episodes, success) if ok]
    result: dict[str, Any] = {"failures": len(failed), "episodes": len(episodes),
                              "compared_with": "successful episodes" if succeeded else "documented ranges",
                              "fields": {}, "summary": []}
    if not failed:
        return result
    finals = np.asarray([e.obs.data[-1] for e in failed])
    layout = spec.field_layout
    for name in analysed_fields(spec):
        slot = layout[name]
        if slot.index + slot.size > finals.shape[1]:
            continue
        column = field_series(finals, slot)
        doc_low, doc_high = _field_range(spec, name)
        entry: dict[str, Any] = {"mean": float(column.mean()), "min": float(column.min()), "max": float(column.max())}
        if succeeded:  # field by field: never a copy of every observation (images are large)
            seen_values = np.concatenate([field_series(e.obs.data, slot) for e in succeeded])
            low, high = float(seen_values.min()), float(seen_values.max())
            entry["success_range"] = [low, high]
            outside = int(np.sum((column < low) | (column > high)))
            entry["outside_success"] = outside
        if doc_low is not None or doc_high is not None:
            entry["documented"] = [doc_low, doc_high]
            entry["outside_documented"] = int(np.sum(((column < doc_low) if doc_low is not None else False)
                                                     | ((column > doc_high) if doc_high is not None else False)))
        result["fields"][name] = entry
    result["summary"] = _failure_lines(result["fields"], len(failed))
    if not result["summary"]:
        ends = ", ".join(f"{name} {_short_number(entry['mean'])} [{_short_number(entry['min'])}, {_short_number(entry['max'])}]"
                         for name, entry in list(result["fields"].items())[:4])
        result["summary"] = [f"no field leaves its range; failed episodes end at {ends}"]
    causes = Counter(e.cause or "unknown" for e in failed)
    result["causes"] = dict(causes.most_common())
    return result


def _failure_lines(fields: dict[str, dict[str, Any]], failures: int) -> list[str]:
    lines = []
    ranked = sorted(fields.items(), key=lambda kv: -max(kv[1].get("outside_success", 0),
                                                         kv[1].get("outside_documented", 0)))
    for name, entry in ranked:
        outside = entry.get("outside_success", 0)
        documented = entry.get("outside_documented", 0)
        if outside:
            low, high = entry["success_range"]
            lines.append(f"{name} outside the successful episodes' range [{_short_number(low)}, {_short_number(high)}] in "
                         f"{outside}/{failures} failures (at failure: mean {_short_number(entry['mean'])}, "
                         f"[{_short_number(entry['min'])}, {_short_number(entry['max'])}])")
        elif documented:
            low, high = entry["documented"]
            lines.append(f"{name} beyond its documented range [{_short_number(low)}, {_short_number(high)}] in {documented}/{failures} "
                         f"failures (at failure: mean {_short_number(entry['mean'])})")
    return lines[:4]


def _key_fields(spec: EnvSpec, components: dict[str, dict[str, Any]], failures: dict[str, Any]) -> list[str]:
    order: list[str] = []
    for s in components.values():
        if s.get("tracks") and s["tracks"]["field"] not in order:
            order.append(s["tracks"]["field"])
    for name, entry in failures.get("fields", {}).items():
        if (entry.get("outside_success") or entry.get("outside_documented")) and name not in order:
            order.append(name)
    order += [n for n in analysed_fields(spec) if n not in order]
    return order[:COVERAGE_FIELDS]


def _movement(episodes: Sequence[Episode], spec: EnvSpec, field_name: str) -> dict[str, Any]:
    """How a field moves within episodes: typical std, mean crossings per 100 steps, amplitude."""
    stds, crossings, amplitudes = [], [], []
    for e in episodes:
        x = field_series(e.obs.data, spec.field_layout[field_name])
        if len(x) < 3:
            continue
        centred = x - x.mean()
        stds.append(float(x.std()))
        signs = np.sign(centred[np.abs(centred) > 1e-9])
        crossings.append(100.0 * float(np.sum(signs[1:] != signs[:-1])) / len(x))
        amplitudes.append(float(np.percentile(x, 95) - np.percentile(x, 5)) / 2)
    if not stds:
        return {"episode_std": 0.0, "crossings_per_100": 0.0, "amplitude": 0.0, "still": False, "oscillating": False}
    low, high = _field_range(spec, field_name)
    pooled = np.concatenate([field_series(e.obs.data, spec.field_layout[field_name]) for e in episodes])
    if low is not None and high is not None:
        scale = high - low
    else:
        scale = float(np.percentile(np.abs(pooled), 99)) * 2 or 1.0
    episode_std = float(np.median(stds))
    rate = float(np.median(crossings))
    amplitude = float(np.median(amplitudes))
    return {
        "episode_std": episode_std,
        "crossings_per_100": rate,
        "amplitude": amplitude,
        "still": episode_std < STILL_FRACTION * scale,
        "oscillating": rate >= OSCILLATION_CROSSINGS and amplitude >= OSCILLATION_AMPLITUDE * scale,
    }


def coverage(spec: EnvSpec, episodes: Sequence[Episode], fields: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Where the agent spends its time: per key field, a histogram over the visited range and quantiles."""
    result: dict[str, dict[str, Any]] = {}
    if not episodes:
        return result
    for name in fields:
        pooled = np.concatenate([field_series(e.obs.data, spec.field_layout[name]) for e in episodes])
        low, high = float(pooled.min()), float(pooled.max())
        if high - low <= _EPS:
            high = low + 1.0
        counts, edges = np.histogram(pooled, bins=COVERAGE_BINS, range=(low, high))
        fractions = counts / max(len(pooled), 1)
        top = int(np.argmax(fractions))
        p10, p50, p90 = (float(v) for v in np.percentile(pooled, [10, 50, 90]))
        result[name] = {
            "edges": [float(v) for v in edges],
            "fractions": [float(v) for v in fractions],
            "p10": p10, "median": p50, "p90": p90,
            "mode": [float(edges[top]), float(edges[top + 1]), float(fractions[top])],
            "documented": list(_field_range(spec, name)),
            **_movement(episodes, spec, name),
        }
    return result


# ---------------------------------------------------------------------------------- reflection

_ADVICE = {
    "flat": "it barely varies, so it teaches nothing: sharpen its temperature or scale, or drop it",
    "dominant": "it drowns the others: lower its weight (or raise theirs) until no term carries most of the reward",
    "against": "episodes where it pays more score lower: remove it, flip its sign, or reshape it to pay for the task",
    "hacked": "the policy farms it instead of doing the task: remove it, cap it, or pay it only with progress",
}


_LASTING_ADVICE = ("the return rose because episodes got longer and it pays on their every step, not because "
                   "the policy did the task: pay it only with progress toward the task, or give the term that "
                   "measures the task more weight than it")


def _through(entry: dict[str, Any]) -> str | None:
    """How a return-level finding's rise came: ``"length"`` (longer episodes) or ``"per_step"``."""
    attribution = (entry.get("numbers") or {}).get("attribution") or {}
    return attribution.get("through")


def render_reflection(analysis: dict[str, Any], spec: EnvSpec | None = None, prompts_dir: Path | None = None) -> str:
    """The compact text of ``prompts/analysis.j2`` for an analysis dict."""
    from rewardsmith.resources import template_env

    env = template_env(prompts_dir)
    env.filters["g"] = _short_number
    env.filters["pct"] = lambda v: "–" if v is None else f"{v:.0%}"
    env.filters["signed"] = lambda v: "–" if v is None else f"{v:+.2f}"
    env.filters["path"] = _path
    advice = []
    lasting = {entry.get("component") for entry in analysis["hacking"]
               if entry.get("kind") == "return" and _through(entry) == "length"}
    for name, s in analysis["components"].items():
        for flag in s["flags"]:
            if flag == "hacked" and name in lasting:
                advice.append(f"{name} ({flag}): {_LASTING_ADVICE}")
            else:
                advice.append(f"{name} ({flag}): {_ADVICE[flag]}")
    for entry in analysis["hacking"]:
        if entry.get("component") is None:
            advice.append("the reward pays for something other than the task: tie the largest terms to the "
                          "fitness's own quantity")
    if analysis["fitness"]["success_rate"] < 1.0:
        aligned = [(s["corr_fitness"], name) for name, s in analysis["components"].items()
                   if s["corr_fitness"] is not None and s["corr_fitness"] >= ALIGNED_CORR and not s["flags"]
                   and s["active"] >= EVENT_FRACTION]  # a rare event is aligned because it is the goal
        if aligned:
            corr, name = max(aligned)
            advice.append(f"{name} goes with higher fitness (r = {corr:+.2f}): give it more weight")
        if not advice:
            advice.append(_default_advice(analysis))
    return env.get_template("analysis.j2").render(a=analysis, advice=advice, spec=spec).strip() + "\n"


def _default_advice(analysis: dict[str, Any]) -> str:
    causes = {k: v for k, v in analysis["terminations"].items() if k != "timeout"}
    if causes:
        cause = max(causes, key=causes.__getitem__)
        return f"no term is broken, but {causes[cause]} episodes ended by {cause}: penalise what leads there"
    return "no term is broken: strengthen the term that measures the task most directly"


def _path(series: Sequence[float | None], points: int = 5) -> str:
    """A series as at most ``points`` values joined by arrows (first and last always kept)."""
    values = [v for v in series if v is not None]
    if not values:
        return "–"
    if len(values) > points:
        picks = np.linspace(0, len(values) - 1, points).round().astype(int)
        values = [values[i] for i in picks]
    return " → ".join(_short_number(v) for v in values)


def _short_number(value: Any) -> str:
    """A number in 4 significant digits ("–" for missing)."""
    if value is None:
        return "–"
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _sg(value: float) -> str:
    """A change in 4 significant digits, with its sign."""
    return f"{value:+.4g}"


def _jsonable(value: Any) -> Any:
    """Plain floats, NaN → None, tuples → lists, numpy scalars unwrapped."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value
