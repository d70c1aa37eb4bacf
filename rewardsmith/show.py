"""``rewardsmith show``: a run's candidates and analyses as Rich tables.

:func:`show` returns a renderable; the CLI prints it. The run overview lists every candidate with
its status, fitness and flags; a candidate's view shows its fitness, components, terminations,
failure states, reward-hacking evidence, reflection and media.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from rewardsmith.candidate import Candidate
from rewardsmith.designer.base import review_without_verdict
from rewardsmith.errors import UsageError
from rewardsmith.progress import REVIEW_UNDECIDED, STATUS_STYLE
from rewardsmith.progress import fmt_fitness as _num
from rewardsmith.runs import RunDir
from rewardsmith.safetext import literal
from rewardsmith.state import SearchState, load_state, ranking_text
from rewardsmith.task import is_solved

__all__ = ["candidate_view", "run_overview", "show"]

_FLAG_STYLE = {"flat": "yellow", "dominant": "magenta", "against": "red", "hacked": "bold red", "hacking": "bold red"}


def show(run_path: str | Path, candidate: str | None = None) -> RenderableType:
    """The overview of the run at ``run_path``, or one candidate's analysis.

    Raises:
        RunDirError: not a run directory.
        UsageError: no candidate by that id.
    """
    state = load_state(RunDir.open(run_path), read_only=True)
    if candidate is None:
        return run_overview(state)
    cand = state.candidates.get(candidate)
    if cand is None:
        ids = ", ".join(state.candidates) or "none"
        raise UsageError(f"{run_path} has no candidate {candidate!r}; its candidates: {ids}")
    return candidate_view(state, cand)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{value:.0%}"


def _solved(cand: Candidate, state: SearchState) -> str:
    if not math.isfinite(state.task.solved):
        return "–"
    return "yes" if is_solved(cand.fitness, state.task.solved) else "no"


def _flags_text(flags: list[str]) -> Text:
    text = Text()
    for i, flag in enumerate(flags):
        kind = flag.split(":", 1)[0]
        if i:
            text.append(", ")
        text.append(literal(flag, _FLAG_STYLE.get(kind, "")))
    return text


def run_overview(state: SearchState) -> RenderableType:
    """Every candidate of a run: status, fitness, success, episode length, flags and media."""
    task = state.task
    best = state.best
    solved = f"; solved at ≥ {task.solved:g}" if math.isfinite(task.solved) else ""
    header = Text.assemble(
        literal(f"{state.run.root.name}\n", "bold"),
        literal(f"task: {task.text}\n"),
        literal(f"env: {task.spec.gym_id} · fitness: {task.fitness_doc}{solved}\n"),
        literal(f"status: {state.status} · iterations: {state.iterations_done}/{state.config.iterations} · "
                f"designer: {state.designer}"),
    )
    table = Table(title="candidates", show_lines=False)
    columns = [("id", "left"), ("status", "left"), ("fitness", "right"), ("± std", "right"), ("solved", "left"),
               ("episodes ≥ threshold", "right"), ("length", "right"), ("flags", "left"), ("media", "left")]
    if state.rankings:
        columns.append(("ranked", "right"))
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for cand in sorted(state.candidates.values(), key=lambda c: (c.iteration, c.index)):
        analysis = cand.analysis or {}
        star = " ★" if best is not None and cand.id == best.id else ""
        fitness = analysis.get("fitness", {})
        length = analysis.get("episode_length", {})
        flags = _flags_text(analysis.get("flags", [])) if analysis else literal(str(cand.reason or ""), "dim")
        if cand.status != "rejected" and review_without_verdict(cand.verdict) is not None:
            flags = Text(REVIEW_UNDECIDED, style="yellow") + (Text(", ") + flags if flags.plain else Text())
        paths = state.run.candidate(cand.iteration, cand.index)
        media = " ".join(p.suffix[1:] for p in (paths.gif, paths.mp4) if p.is_file())
        std = fitness.get("std") if fitness else (cand.result.fitness_std if cand.result else None)
        success = fitness.get("success_rate") if fitness else (cand.result.success_rate if cand.result else None)
        stopped = f" (stopped at rung {cand.stopped_at_rung})" if cand.stopped_at_rung is not None else ""
        row = [literal(cand.id), Text(cand.status + stopped + star, style=STATUS_STYLE.get(cand.status, "")),
               _num(cand.fitness), _num(std) if cand.status == "scored" else "",
               _solved(cand, state) if cand.status == "scored" else "",
               _pct(success) if cand.status == "scored" else "", _num(length.get("mean")), flags, media]
        if state.rankings:
            row.append(_place(state, cand))
        table.add_row(*row)
    rankings = [literal(f"round {iteration + 1} as a person ranked it: {ranking_text(ids)}")
                for iteration, ids in sorted(state.rankings.items())]
    footer = literal(f"details: rewardsmith show {state.run.root} --candidate ID", "dim")
    return Group(header, table, *rankings, footer)


def _place(state: SearchState, cand: Candidate) -> str:
    """``#2``: where a person ranked ``cand`` among its round's rollouts; empty when they did not rank it."""
    place = state.ranked_place(cand.iteration, cand.id)
    return f"#{place}" if place is not None else ""


def _stopped_note(cand: Candidate) -> str:
    """Successive halving: where a candidate stopped, so its fitness is read as that of a shorter training."""
    if cand.stopped_at_rung is None:
        return ""
    steps = f" after {cand.result.steps} steps" if cand.result is not None else ""
    return f" · stopped at rung {cand.stopped_at_rung}{steps}"


def candidate_view(state: SearchState, cand: Candidate) -> RenderableType:
    """One candidate: fitness, components with flags, terminations, failures, hacking, reflection, media."""
    parts: list[RenderableType] = []
    origin = cand.origin.get("note") or cand.origin.get("designer", "")
    place = _place(state, cand)
    ranked = f" · ranked {place} of round {cand.iteration + 1} by a person" if place else ""
    parts.append(Text.assemble(literal(f"candidate {cand.id}", "bold"), f" · {cand.status}",
                               f" · fitness {_num(cand.fitness)}", ranked, _stopped_note(cand),
                               literal(f" · {origin}" if origin else "", "dim")))
    unreviewed = review_without_verdict(cand.verdict)
    if unreviewed is not None and cand.status != "rejected":
        parts.append(Text.assemble((REVIEW_UNDECIDED + ": ", "yellow"), literal(unreviewed, "yellow")))
    analysis = cand.analysis
    if not analysis:
        reason = cand.reason or ("not analysed (trained before the analyzer existed, or still training)"
                                 if cand.status in ("scored", "training", "proposed") else "")
        parts.append(literal(f"no analysis: {reason}", "yellow"))
        return Group(*parts)
    if analysis.get("error"):
        parts.append(literal(f"the analyzer failed: {analysis['error']}", "red"))
        return Group(*parts)
    parts.append(_fitness_table(analysis))
    if analysis.get("components"):
        parts.append(_components_table(analysis))
    parts.append(_terminations_table(analysis))
    failures = analysis.get("failure_states", {})
    if failures.get("summary"):
        parts.append(Panel(literal("\n".join(f"• {line}" for line in failures["summary"])),
                           title=literal(f"at failure ({failures['failures']} of {failures['episodes']} episodes, "
                                         f"against {failures['compared_with']})"), title_align="left"))
    if analysis.get("hacking"):
        parts.append(Panel(literal("\n".join(f"• {h['evidence']}" for h in analysis["hacking"]), "red"),
                           title="reward hacking", title_align="left"))
    for warning in analysis.get("warnings", []):
        parts.append(literal(f"warning: {warning}", "yellow"))
    parts.append(Panel(literal(analysis.get("reflection", "").rstrip()), title="reflection (what designers read)",
                       title_align="left"))
    paths = state.run.candidate(cand.iteration, cand.index)
    media = [str(p) for p in (paths.gif, paths.mp4) if p.is_file()]
    if media:
        parts.append(literal("watch: " + "  ".join(media), "dim"))
    return Group(*parts)


def _fitness_table(analysis: dict[str, Any]) -> Table:
    table = Table(title="fitness", title_justify="left")
    for name in ("policy", "episodes", "mean", "std", "min", "max", "episodes ≥ threshold"):
        table.add_column(name, justify="left" if name == "policy" else "right")
    fitness = analysis["fitness"]
    episodes = analysis["episodes"]
    rows = [("deterministic", episodes["deterministic"], fitness)]
    if episodes.get("stochastic"):
        rows.append(("stochastic", episodes["stochastic"], fitness["stochastic"]))
    for label, count, stats in rows:
        table.add_row(label, str(count), _num(stats["mean"]), _num(stats["std"]), _num(stats["min"]),
                      _num(stats["max"]), _pct(stats["success_rate"]) if fitness.get("solved") is not None else "–")
    length = analysis["episode_length"]
    training = analysis.get("training", {})
    caption = f"episode length: mean {_num(length['mean'])}, min {_num(length['min'])}, max {_num(length['max'])}"
    if training.get("fitness"):
        caption += "\nfitness over training: " + " → ".join(_num(v) for v in training["fitness"])
    table.caption = caption
    table.caption_justify = "left"
    return table


def _components_table(analysis: dict[str, Any]) -> Table:
    table = Table(title="reward components (per step)", title_justify="left")
    for name in ("component", "mean", "min", "max", "share", "r fitness", "over training", "flags"):
        table.add_column(name, justify="left" if name in ("component", "over training", "flags") else "right",
                         overflow="fold")
    for name, c in analysis["components"].items():
        series = [v for v in c.get("series", []) if v is not None]
        trend = f"{_num(series[0])} → {_num(series[-1])}" if len(series) >= 2 else _num(series[0] if series else None)
        r = c.get("corr_fitness")
        table.add_row(literal(name), _num(c.get("mean")), _num(c.get("min")), _num(c.get("max")), _pct(c.get("share")),
                      "–" if r is None else f"{r:+.2f}", trend, _flags_text(c.get("flags", [])))
    return table


def _terminations_table(analysis: dict[str, Any]) -> Table:
    table = Table(title="how episodes ended", title_justify="left")
    table.add_column("cause")
    table.add_column("episodes", justify="right")
    total = sum(analysis.get("terminations", {}).values()) or 1
    for cause, count in analysis.get("terminations", {}).items():
        table.add_row(literal(cause), f"{count} ({count / total:.0%})")
    return table
