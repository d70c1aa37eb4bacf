"""The HTML report of a run: one self-contained ``report.html`` that opens without a network.

:func:`write_report` reads a run directory (the event log, every candidate's files, ``summary.json``
and ``final_eval.json``), and renders ``rewardsmith/templates/report.html.j2`` into the path
:class:`~rewardsmith.runs.RunDir` names. Charts are inline SVG (:mod:`rewardsmith.charts`), rollout GIFs are embedded
as ``data:`` URIs, and the page's only script and stylesheet are inline and pinned by hash in a
Content-Security-Policy that refuses every network request.

Everything that comes from the run is untrusted (reward code, LLM text, feedback, component names):
the template autoescapes, and the SVG charts escape every text and attribute they write.

Sections, in order (each an element with a stable id, see :data:`SECTIONS`): overview, fitness per
iteration, learning curves, component statistics and flags, reward code with diffs and repairs,
critic rejections, rollout GIFs (each iteration's side by side, with a person's ranking), human feedback, token
usage, and the final evaluation when it ran.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from rewardsmith.bounds import DIFF_ROWS, REFLECTION_SHOWN, SOURCE_SHOWN, TEXT_SHOWN, clip
from rewardsmith.charts import Plot, empty_chart, nice_range, sparkline, swatch
from rewardsmith.charts import finite as _finite
from rewardsmith.charts import fmt_number as _fmt
from rewardsmith.designer.base import REVIEW_NO_VERDICT, review_without_verdict
from rewardsmith.errors import RunDirError
from rewardsmith.runs import RunDir, atomic_write_text
from rewardsmith.sandbox.protocol import MAX_COMPONENTS
from rewardsmith.task import is_solved

if TYPE_CHECKING:
    from rewardsmith.candidate import Candidate
    from rewardsmith.state import SearchState

__all__ = ["SECTIONS", "render_report", "write_report"]

SECTIONS: tuple[tuple[str, str], ...] = (
    ("overview", "Overview"),
    ("fitness", "Fitness per iteration"),
    ("curves", "Learning curves"),
    ("components", "Reward components"),
    ("code", "Reward code"),
    ("rejections", "Rejections"),
    ("rollouts", "Rollouts"),
    ("feedback", "Feedback"),
    ("usage", "Token usage"),
    ("final-eval", "Final evaluation"),
)
"""Every section's element id and title; ``final-eval`` only appears when the run has a final evaluation."""

MAX_GIF_BYTES = 8 * 2**20
"""A rollout GIF larger than this is linked by path instead of embedded, so one long episode cannot
make the report too heavy to open."""

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")
"""One colour per candidate, reused after ten (Tableau 10: distinct, and readable on white)."""

_TEMPLATES = "templates"
_FLAG_KINDS = {"flat": "flat", "dominant": "dominant", "against": "against", "hacked": "hacked",
               "hacking": "hacked"}


# ------------------------------------------------------------------------------------------ entry


def write_report(run: RunDir, output: Path | None = None, state: SearchState | None = None) -> Path:
    """Render the run's report and write it (atomically).

    Args:
        run: the run directory.
        output: where to write; default ``run.report_html``.
        state: the search state if the caller has it; default rebuilt from the event log.

    Returns:
        The path written.
    """
    path = Path(output) if output is not None else run.report_html
    atomic_write_text(path, render_report(run, state))
    return path


def render_report(run: RunDir, state: SearchState | None = None) -> str:
    """The report of ``run`` as one HTML document (no external resources)."""
    from rewardsmith.state import load_state

    if state is None:
        state = load_state(run, read_only=True)
    css, js = _asset("report.css"), _asset("report.js")
    context = _context(run, state)
    context.update(
        css=Markup(css),
        js=Markup(js),
        csp=f"default-src 'none'; img-src data:; style-src '{_sha256(css)}'; script-src '{_sha256(js)}'; "
            "base-uri 'none'; form-action 'none'",
    )
    return _environment().from_string(_asset("report.html.j2")).render(**context)


# ------------------------------------------------------------------------------------- templating


def _asset(name: str) -> str:
    return (resources.files("rewardsmith") / _TEMPLATES / name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _environment() -> Environment:
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _fmt
    env.filters["pct"] = _pct
    return env


def _pct(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "–"
    return f"{value:.0%}"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# --------------------------------------------------------------------------------------- context


def _context(run: RunDir, state: SearchState) -> dict[str, Any]:
    summary = _read_optional(run, run.summary_json)
    summary = summary if isinstance(summary, dict) else {}
    final_eval = _read_optional(run, run.final_eval_json) if state.final_choice is not None else None
    final_eval = final_eval if isinstance(final_eval, dict) else None
    colours = {cid: PALETTE[n % len(PALETTE)] for n, cid in enumerate(sorted(state.candidates))}
    candidates = [_candidate_view(state, c, colours[c.id]) for c in _ordered(state.candidates.values())]
    usage = summary.get("usage") if isinstance(summary.get("usage"), dict) else {}
    sections = [s for s in SECTIONS if s[0] != "final-eval" or final_eval is not None]
    return {
        "title": f"rewardsmith · {state.task.spec.name} · {state.task.text}",
        "sections": sections,
        "overview": _overview(run, state, usage),
        "candidates": candidates,
        "fitness_chart": _fitness_chart(state, colours),
        "curves_chart": _curves_chart(state, colours),
        "legend": [{"id": c["id"], "swatch": swatch(c["colour"])} for c in candidates if c["checkpoints"]],
        "rejections": _rejections(state),
        "rollout_rounds": _rollout_rounds(state, candidates),
        "feedback": _feedback(state),
        "usage": _usage(usage),
        "final_eval": _final_eval(final_eval, state) if final_eval is not None else None,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _read_optional(run: RunDir, path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return run.read_json(path)
    except RunDirError:
        return None


def _ordered(cands: Iterable[Candidate]) -> list[Candidate]:
    return sorted(cands, key=lambda c: (c.iteration, c.index))


def _overview(run: RunDir, state: SearchState, usage: dict[str, Any]) -> dict[str, Any]:
    info = _read_optional(run, run.run_json) or {}
    options = info.get("designer_options") if isinstance(info.get("designer_options"), dict) else {}
    task, best, exported = state.task, state.best, state.exported
    solved = task.solved_or_none
    counts = Counter(c.status for c in state.candidates.values())
    return {
        "task": task.text,
        "env": task.spec.gym_id,
        "spec": task.spec.name,
        "task_name": task.task_spec.name,
        "scored_on_default": task.scored_on_default,
        "fitness": task.fitness_label,
        "fitness_doc": task.fitness_doc,
        "solved": solved,
        "status": state.status,
        "stop_reason": state.stop_reason,
        "designer": state.designer,
        "model": options.get("model"),
        "iterations_done": state.iterations_done,
        "iterations_planned": state.config.iterations,
        "samples": state.config.samples,
        "timesteps": state.budget,
        "seed": state.config.seed,
        "counts": sorted(counts.items()),
        "total": len(state.candidates),
        "best": _brief(best, solved),
        "exported": _brief(exported, solved),
        "exported_by_final_eval": exported is not None and best is not None and exported.id != best.id,
        "best_source": _code_lines(exported.source) if exported is not None else [],
        "tokens": usage.get("total_tokens", (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)),
        "requests": usage.get("requests", 0),
        "cost": usage.get("cost"),
        "run": str(run.root),
        "version": info.get("rewardsmith"),
        "started": state.started,
    }


def _brief(cand: Candidate | None, solved: float | None) -> dict[str, Any] | None:
    if cand is None:
        return None
    return {"id": cand.id, "fitness": cand.fitness,
            "solved": is_solved(cand.fitness, solved)}


# ------------------------------------------------------------------------------------- candidates


def _candidate_view(state: SearchState, cand: Candidate, colour: str) -> dict[str, Any]:
    result, analysis = cand.result, cand.analysis if isinstance(cand.analysis, dict) else {}
    checkpoints = list(result.checkpoints) if result is not None else []
    best, exported = state.best, state.exported
    parent = state.candidates.get(cand.parent) if cand.parent else None
    flagged = {i.line for i in cand.verdict.issues if i.line} if cand.verdict is not None else set()
    origin_extra = {k: v for k, v in cand.origin.items() if k not in ("designer", "parent", "note")}
    paths = state.run.candidate(cand.iteration, cand.index)
    return {
        "id": cand.id,
        "anchor": f"cand-{cand.id}",
        "iteration": cand.iteration,
        "status": cand.status,
        "stopped_at_rung": cand.stopped_at_rung,
        "fitness": cand.fitness,
        "solved": is_solved(cand.fitness, state.task.solved) if cand.status == "scored" else None,
        "success_rate": result.success_rate if result is not None and cand.status == "scored" else None,
        "solved_at": result.solved_at if result is not None else None,
        "steps": result.steps if result is not None else None,
        "seconds": result.seconds if result is not None else None,
        "reason": clip(str(cand.reason), TEXT_SHOWN) if cand.reason else None,
        "is_best": best is not None and best.id == cand.id,
        "is_exported": exported is not None and exported.id == cand.id,
        "colour": colour,
        "swatch": swatch(colour),
        "designer": cand.origin.get("designer"),
        "note": clip(str(cand.origin["note"]), TEXT_SHOWN) if cand.origin.get("note") else None,
        "parent": cand.parent,
        "parent_known": parent is not None,
        "origin_json": clip(json.dumps(origin_extra, indent=2, default=str, ensure_ascii=False), TEXT_SHOWN)
        if origin_extra else "",
        "lines": _code_lines(cand.source, flagged if cand.status == "rejected" else set()),
        "diff": _diff(parent.source, cand.source, parent.id, cand.id) if parent is not None else None,
        "repairs": _repairs(cand),
        "warnings": [str(i) for i in cand.verdict.warnings if i.code != REVIEW_NO_VERDICT]
        if cand.verdict is not None else [],
        "unreviewed": review_without_verdict(cand.verdict) if cand.status != "rejected" else None,
        "checkpoints": len(checkpoints),
        "curve_chart": _curve_chart(cand, colour) if checkpoints else None,
        "components": _component_rows(checkpoints, analysis),
        "flags": [_flag(f) for f in _list(analysis.get("flags")) if isinstance(f, str)],
        "hacking": [{"kind": str(h.get("kind", "")), "component": str(h.get("component") or ""),
                     "evidence": str(h.get("evidence", ""))}
                    for h in _list(analysis.get("hacking")) if isinstance(h, dict)],
        "terminations": _terminations(analysis),
        "reflection": clip(analysis["reflection"], REFLECTION_SHOWN)
        if isinstance(analysis.get("reflection"), str) else "",
        "analysis_error": clip(analysis["error"], TEXT_SHOWN) if isinstance(analysis.get("error"), str) else "",
        "gif": _gif(paths.gif),
        "mp4": str(paths.mp4) if paths.mp4.is_file() else None,
    }


def _code_lines(source: str, flagged: set[int] | frozenset[int] = frozenset()) -> list[dict[str, Any]]:
    """The numbered lines of (the first ``SOURCE_SHOWN`` characters of) a program."""
    shown = clip(source, SOURCE_SHOWN)
    return [{"n": n, "text": text, "bad": n in flagged} for n, text in enumerate(shown.splitlines(), 1)]


def _diff(old: str, new: str, old_name: str, new_name: str) -> list[dict[str, str]]:
    """A unified diff as (kind, text) rows, at most ``DIFF_ROWS`` of them; empty when the programs are the same."""
    rows: list[dict[str, str]] = []
    shown = 0
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), f"{old_name}/reward.py",
                                     f"{new_name}/reward.py", lineterm="", n=3):
        if line.startswith(("+++", "---")):
            kind = "meta"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        if len(rows) == DIFF_ROWS or shown > SOURCE_SHOWN:
            rows.append({"kind": "meta", "text": "… (the rest of the diff is not shown)"})
            break
        line = clip(line, TEXT_SHOWN)
        shown += len(line)
        rows.append({"kind": kind, "text": line})
    return rows


def _repairs(cand: Candidate) -> list[dict[str, Any]]:
    """Each version the critic (or training) sent back, why, and what the repair changed."""
    versions = [a.get("source", "") for a in cand.attempts] + [cand.source]
    repairs = []
    for n, attempt in enumerate(cand.attempts):
        repairs.append({
            "attempt": n + 1,
            "problem": clip(str(attempt.get("problem", "")), TEXT_SHOWN),
            "diff": _diff(versions[n], versions[n + 1], f"{cand.id} v{n}", f"{cand.id} v{n + 1}"),
        })
    return repairs


def _flag(flag: str) -> dict[str, str]:
    return {"text": flag, "kind": _FLAG_KINDS.get(flag.split(":", 1)[0], "other")}


def _terminations(analysis: dict[str, Any]) -> list[tuple[str, Any]]:
    terms = analysis.get("terminations")
    return sorted(terms.items(), key=lambda kv: str(kv[0])) if isinstance(terms, dict) else []


def _component_rows(checkpoints: Sequence[Any], analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per reward component: the last training window's statistics and the analysis' findings."""
    last = checkpoints[-1].components if checkpoints else {}
    found = analysis.get("components") if isinstance(analysis.get("components"), dict) else {}
    rows = []
    for name in sorted(set(last) | set(found), key=str)[:MAX_COMPONENTS]:  # a hand-edited run may hold more
        window = last.get(name) if isinstance(last.get(name), dict) else {}
        stats = found.get(name) if isinstance(found.get(name), dict) else {}
        tracks = stats.get("tracks")
        series = _list(stats.get("series"))
        rows.append({
            "name": str(name),
            "mean": window.get("mean"), "std": window.get("std"), "min": window.get("min"), "max": window.get("max"),
            "share": stats.get("share"),
            "corr_fitness": stats.get("corr_fitness"),
            "tracks": tracks.get("field") if isinstance(tracks, dict) else None,
            "flags": [_flag(f) for f in _list(stats.get("flags")) if isinstance(f, str)],
            "spark": sparkline(series, str(name)),
        })
    return rows


def _gif(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    size = path.stat().st_size
    if size > MAX_GIF_BYTES:
        return {"uri": None, "kb": size // 1024, "path": str(path)}
    data = path.read_bytes()
    if not data.startswith((b"GIF87a", b"GIF89a")):
        return None
    return {"uri": "data:image/gif;base64," + base64.b64encode(data).decode("ascii"), "kb": size // 1024,
            "path": str(path)}


def _rollout_rounds(state: SearchState, candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each iteration with rollouts: its candidates' views side by side (those a person ranked first, in their
    order, each with its place), and the ranking."""
    rounds = []
    for iteration in sorted({c["iteration"] for c in candidates if c["gif"]}):
        ranking = state.rankings.get(iteration, [])
        shown = [dict(c, rank=state.ranked_place(iteration, c["id"]))
                 for c in candidates if c["iteration"] == iteration and c["gif"]]
        shown.sort(key=lambda c: c["rank"] or len(ranking) + 1)  # stable: the unranked keep their order
        rounds.append({"iteration": iteration, "ranking": list(ranking), "candidates": shown})
    return rounds


# ----------------------------------------------------------------------------- events: history


def _rejections(state: SearchState) -> list[dict[str, Any]]:
    """Every refused check and failed training, in order, with the attempt it hit and what followed."""
    rows: list[dict[str, Any]] = []
    for rejection in state.rejections:
        issue, lines = rejection.issue, rejection.source.splitlines()
        line = issue.line
        cand = state.candidates.get(rejection.id)
        outcome = rejection.outcome or (f"final: {cand.status}" if cand is not None else "")
        rows.append({"id": rejection.id, "anchor": f"cand-{rejection.id}", "attempt": rejection.attempt,
                     "stage": rejection.stage, "code": issue.code, "line": line,
                     "source_line": clip(lines[line - 1], TEXT_SHOWN) if line is not None and 0 < line <= len(lines)
                     else None,
                     "message": clip(issue.message, TEXT_SHOWN), "outcome": outcome})
    return rows


def _feedback(state: SearchState) -> list[dict[str, Any]]:
    return [{
        "kind": entry.kind,
        "time": entry.time[:19].replace("T", " "),
        "iteration": entry.iteration,
        "applied": entry.iteration < state.iterations_done or bool(state.of_iteration(entry.iteration)),
        "text": entry.text,
    } for entry in state.guidance]


def _usage(usage: dict[str, Any]) -> dict[str, Any]:
    per_iteration = usage.get("iterations") if isinstance(usage.get("iterations"), dict) else {}
    columns = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost")
    rows = [{"iteration": str(k), **{c: v.get(c) for c in columns}}
            for k, v in sorted(per_iteration.items(), key=lambda kv: str(kv[0]).zfill(6)) if isinstance(v, dict)]
    keys = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "cached_requests", "retries",
            "failed_requests", "cost")
    return {"totals": [(k.replace("_", " "), usage[k]) for k in keys if k in usage], "iterations": rows}


def _final_eval(data: dict[str, Any], state: SearchState) -> dict[str, Any]:
    arms = data.get("arms") if isinstance(data.get("arms"), dict) else {}
    rows = []
    for label, arm in arms.items():
        if not isinstance(arm, dict):
            continue
        reached = [s for s in _list(arm.get("solved_at")) if isinstance(s, int)]
        rows.append({
            "label": str(label),
            "anchor": f"cand-{label}" if label in state.candidates else None,
            "chosen": label == data.get("chosen"),
            "mean": arm.get("mean"), "ci95": arm.get("ci95"),
            "fitness": [f for f in _list(arm.get("fitness")) if isinstance(f, (int, float))],
            "solved_rate": arm.get("solved_rate"),
            "solved_at": sorted(reached),
            "human_normalised": arm.get("human_normalised"),
            "failures": [str(f) for f in _list(arm.get("failures"))],
        })
    return {"seeds": data.get("seeds"), "timesteps": data.get("timesteps"), "chosen": data.get("chosen"),
            "solved": data.get("solved"), "arms": rows, "chart": _final_eval_chart(rows, data.get("solved"))}


# ------------------------------------------------------------------------------------------- SVG


def _fitness_chart(state: SearchState, colours: dict[str, str]) -> Markup:
    """Every candidate's fitness as a dot at its iteration, the best so far as a step line."""
    cands = _ordered(state.candidates.values())
    if not cands:
        return empty_chart("no candidates yet")
    iterations = max(state.iterations_done, max(c.iteration for c in cands) + 1)
    solved = state.task.solved_or_none
    scored = [c for c in cands if c.fitness is not None and math.isfinite(c.fitness)]
    lo, hi = nice_range([c.fitness for c in scored] + [solved])
    plot = Plot(960, 320, (-0.5, iterations - 0.5), (lo, hi))
    plot.frame("iteration", "fitness", x_ticks=[(i, f"{i:02d}") for i in range(iterations)])
    if solved is not None:
        plot.hline(solved, "#2e7d32", f"solved ≥ {_fmt(solved)}")
    best_so_far: list[tuple[float, float]] = []
    running: float | None = None
    for i in range(iterations):
        values = [c.fitness for c in scored if c.iteration == i]
        if values:
            running = max(values) if running is None else max(running, max(values))
        if running is not None:
            best_so_far.append((i - 0.5 if not best_so_far else i, running))
    if best_so_far:
        best_so_far.append((iterations - 0.5, best_so_far[-1][1]))
        plot.polyline(best_so_far, "#222", width=2, step=True, title="best so far")
    best = state.best
    per_iteration = Counter(c.iteration for c in cands)
    for c in cands:
        count = per_iteration[c.iteration]
        x = c.iteration + (0 if count == 1 else (c.index / (count - 1) - 0.5) * 0.5)
        if c.fitness is not None and math.isfinite(c.fitness):
            ring = "#222" if best is not None and best.id == c.id else None
            plot.circle(x, c.fitness, 6 if ring else 4.5, colours[c.id], stroke=ring,
                        title=f"{c.id}: fitness {_fmt(c.fitness)}" + (" (best)" if ring else ""))
        else:
            why = f" — {c.reason}" if c.reason else ""
            plot.cross(x, lo + (hi - lo) * 0.03, "#c62828", f"{c.id}: {c.status}{why}")
    return plot.svg("fitness of every candidate per iteration, and the best so far")


def _curves_chart(state: SearchState, colours: dict[str, str]) -> Markup:
    """Every candidate's fitness over training steps, one colour each."""
    series = {c.id: [(cp.step, cp.fitness) for cp in c.result.checkpoints if _finite(cp.fitness) is not None]
              for c in _ordered(state.candidates.values()) if c.result is not None and c.result.checkpoints}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return empty_chart("no training checkpoints yet")
    steps = [s for points in series.values() for s, _ in points]
    values = [f for points in series.values() for _, f in points]
    solved = state.task.solved_or_none
    plot = Plot(960, 320, (0, max(steps) or 1), nice_range(values + [solved]))
    plot.frame("training steps", "fitness")
    if solved is not None:
        plot.hline(solved, "#2e7d32", f"solved ≥ {_fmt(solved)}")
    for cid, points in series.items():
        plot.polyline(points, colours[cid], width=1.8, title=cid)
    return plot.svg("fitness over training steps of every candidate")


def _curve_chart(cand: Candidate, colour: str) -> Markup:
    """One candidate: fitness (left axis) and the shaped return under its own reward (right axis)."""
    checkpoints = cand.result.checkpoints if cand.result is not None else []
    fitness = [(cp.step, cp.fitness) for cp in checkpoints if _finite(cp.fitness) is not None]
    shaped = [(cp.step, cp.shaped_return) for cp in checkpoints if _finite(cp.shaped_return) is not None]
    steps = [s for s, _ in fitness + shaped]
    if not steps:
        return empty_chart("no finite checkpoint values")
    plot = Plot(520, 220, (0, max(steps) or 1), nice_range([f for _, f in fitness]),
                 nice_range([r for _, r in shaped]) if shaped else None)
    plot.frame("steps", "fitness", "shaped return" if shaped else None)
    plot.polyline(shaped, "#888", width=1.5, dash="5 3", secondary=True, title="shaped return")
    plot.polyline(fitness, colour, width=2.2, title="fitness")
    for step, value in fitness:
        plot.circle(step, value, 2.5, colour, title=f"step {step}: fitness {_fmt(value)}")
    return plot.svg(f"learning curve of {cand.id}", cls="chart small")


def _final_eval_chart(rows: list[dict[str, Any]], solved: Any) -> Markup:
    """Each arm's mean fitness with its 95% interval, and every seed's fitness."""
    shown = [r for r in rows if _finite(r["mean"]) is not None]
    if not shown:
        return empty_chart("no arm trained successfully")
    values = [v for r in shown for v in r["fitness"] if _finite(v) is not None]
    for row in shown:
        half = _finite(row["ci95"]) or 0.0
        values += [row["mean"] - half, row["mean"] + half]
    plot = Plot(960, 60 + 34 * len(shown), nice_range(values + [_finite(solved)]), (len(shown) - 0.5, -0.5))
    plot.left = 110
    plot.frame("fitness", "", y_ticks=[(n, row["label"]) for n, row in enumerate(shown)])
    if _finite(solved) is not None:
        x = plot.px(solved)
        plot.parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{plot.top}" y2="{plot.height - plot.bottom}" '
                          f'stroke="#2e7d32" stroke-width="1.5" stroke-dasharray="6 4"><title>solved</title></line>')
    for n, row in enumerate(shown):
        colour = "#e15759" if row["chosen"] else "#4e79a7"
        ci = _finite(row["ci95"]) or 0.0
        plot.segment(row["mean"] - ci, n, row["mean"] + ci, n, colour)
        for value in row["fitness"]:
            if _finite(value) is not None:
                plot.circle(value, n, 2.5, "#bbb", title=f"{row['label']}: {_fmt(value)}", cls="seed")
        plot.circle(row["mean"], n, 5, colour, title=f"{row['label']}: {_fmt(row['mean'])} ± {_fmt(ci)}")
    return plot.svg("final evaluation: mean fitness and 95% interval per reward")
