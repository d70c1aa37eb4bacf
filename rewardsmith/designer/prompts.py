"""The LLM designer's messages, rendered from the Jinja2 templates in ``prompts/``.

One template per role: ``system.j2`` (the role, the reward contract, the sandbox's rules),
``task.j2`` (the env's compact representation from ``env.j2``, the task, how candidates are
judged, the answer format), ``reflection.j2`` (the program to improve with what its training
showed, the other programs in a line each, a person's ranking of the last round's rollouts, human feedback), ``repair.j2`` (a program and the
precise reason it was refused), ``review.j2`` (a program put to the LLM as a reviewer) and
``distinct.j2`` (asking again, when a round's samples came back identical, for another program).
A directory given as ``--prompts DIR`` overrides any of them by file name.

The data each template receives is prepared here, so an override can reword freely.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jinja2

from rewardsmith.bounds import REFLECTION_SHOWN, SOURCE_SHOWN, TERMS_SHOWN, clip
from rewardsmith.candidate import Candidate
from rewardsmith.designer.base import DesignContext
from rewardsmith.resources import template_env
from rewardsmith.safetext import one_line
from rewardsmith.task import ResolvedTask

__all__ = ["Prompts", "fmt_num", "preview_messages"]

Message = dict[str, str]


def fmt_num(value: Any) -> str:
    """A number as the prompts show it: 4 significant digits, ``–`` for none or NaN."""
    if value is None:
        return "–"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "–" if math.isnan(number) else ("inf" if number > 0 else "-inf")
    return f"{number:.4g}"


def _pct(value: Any) -> str:
    try:
        return f"{float(value):.0%}"
    except (TypeError, ValueError):
        return "–"


class Prompts:
    """Renders every message the LLM designer sends.

    Args:
        override: a directory whose ``*.j2`` files replace the bundled ones of the same name.
        history: how many other candidates the reflection summarises (the rest are counted).
    """

    def __init__(self, override: Path | None = None, history: int = 16) -> None:
        self.override = Path(override) if override else None
        self.history = history
        self.env: jinja2.Environment = template_env(self.override)
        self.env.filters["num"] = fmt_num
        self.env.filters["pct"] = _pct

    def _render(self, name: str, **data: Any) -> str:
        return self.env.get_template(name).render(**data).strip() + "\n"

    # -- the messages --------------------------------------------------------------------------

    def system(self, task: ResolvedTask) -> str:
        spec = task.spec
        first = spec.fields[0] if spec.fields else None
        discrete = bool(spec.facts().get("discrete"))
        return self._render(
            "system.j2", spec=spec, task=task,
            example_field=first.name if first else "obs_0", example_index=first.index if first else 0,
            action_kind="an int" if discrete else "a numpy array of floats",
        )

    def task(self, task: ResolvedTask) -> str:
        return self._render(
            "task.j2", spec=task.spec, task=task, task_text=task.text,
            env_description=task.spec.describe(task.task_spec, self.override), fitness_doc=task.fitness_doc,
            solved=task.solved_or_none, scored_on_default=task.scored_on_default, task_name=task.task_spec.name,
        )

    def reflection(self, ctx: DesignContext) -> str | None:
        """What has been tried so far; None before the first candidate."""
        if not ctx.history and not ctx.feedback:
            return None
        parent = ctx.parent
        others = [c for c in ctx.history if parent is None or c.id != parent.id]
        shown, omitted = _select(others, self.history)
        return self._render(
            "reflection.j2", iteration=ctx.iteration, tried=len(ctx.history),
            parent=_parent_view(parent, ctx.budget) if parent is not None else None,
            others=[_summary(c) for c in shown], omitted=omitted, feedback=list(ctx.feedback),
            ranking=[_ranked(c) for c in ctx.ranking], ranked_round=ctx.iteration, unranked=_unranked(ctx),
            solved=ctx.task.solved_or_none,
            stopped=[_stopped_view(c, ctx.budget) for c in [*([parent] if parent else []), *shown]
                     if c.stopped_at_rung is not None and c.status == "scored"],
        )

    def repair(self, source: str, problem: str, attempt: int, max_attempts: int | None = None) -> str:
        numbered = "\n".join(f"{i:>3} | {line}" for i, line in enumerate(source.rstrip("\n").split("\n"), 1)) \
            if source.strip() else ""
        return self._render("repair.j2", source=source, numbered=numbered, problem=problem, attempt=attempt,
                            max_attempts=max_attempts, heading=_repair_heading(source, problem))

    def review(self, task: ResolvedTask, source: str, sample: dict[str, Any] | None = None) -> str:
        return self._render(
            "review.j2", task=task, task_text=task.text, fitness_doc=task.fitness_doc,
            solved=task.solved_or_none, source=source,
            sample=sample if sample and isinstance(sample.get("components"), dict) else None,
        )

    def distinct(self, source: str) -> str:
        """The hint added when samples came back identical: write a program other than ``source``."""
        return self._render("distinct.j2", source=source)

    def fitness_messages(self, task: ResolvedTask) -> list[Message]:
        """The first request for ``task``'s fitness (``fitness_system.j2``, ``fitness.j2``)."""
        default = task.spec.default_task
        return [
            {"role": "system", "content": self._render("fitness_system.j2")},
            {"role": "user", "content": self._render(
                "fitness.j2", env_description=task.spec.describe(task.task_spec, self.override), task_text=task.text,
                default_task=default, default_solved=default.solved if default.solved != float("inf") else None)},
        ]

    def fitness_retry(self, reason: str, person: bool, attempt: int, attempts: int) -> str:
        """Why the last fitness offer was not taken (``fitness_retry.j2``): the critic's or the person's ``reason``."""
        return self._render("fitness_retry.j2", reason=reason, person=person, attempt=attempt, attempts=attempts)

    # -- conversations -------------------------------------------------------------------------

    def propose_messages(self, ctx: DesignContext) -> list[Message]:
        """System + task (+ what has been tried, after the first round)."""
        user = self.task(ctx.task)
        reflection = self.reflection(ctx)
        if reflection:
            user = user.rstrip("\n") + "\n\n" + reflection
        return [{"role": "system", "content": self.system(ctx.task)}, {"role": "user", "content": user}]

    def repair_messages(self, ctx: DesignContext, source: str, problem: str, attempt: int,
                        max_attempts: int | None = None) -> list[Message]:
        """System, task, the program as the assistant's earlier answer, then what was wrong with it.

        Roles alternate strictly (some servers' chat templates refuse two user messages in a row).
        """
        earlier = f"```python\n{source.rstrip()}\n```" if source.strip() else "(no program)"
        return [
            {"role": "system", "content": self.system(ctx.task)},
            {"role": "user", "content": self.task(ctx.task)},
            {"role": "assistant", "content": earlier},
            {"role": "user", "content": self.repair(source, problem, attempt, max_attempts)},
        ]

    def review_messages(self, task: ResolvedTask, source: str, sample: dict[str, Any] | None = None
                        ) -> list[Message]:
        return [{"role": "system", "content": self.system(task)},
                {"role": "user", "content": self.review(task, source, sample)}]


def preview_messages(task: ResolvedTask, override: Path | None = None) -> list[Message]:
    """The system and task messages of a search's first request (``rewardsmith prompts``)."""
    prompts = Prompts(override)
    return [{"role": "system", "content": prompts.system(task)}, {"role": "user", "content": prompts.task(task)}]


# ---------------------------------------------------------------------------------- the views


def _repair_heading(source: str, problem: str) -> str:
    if problem.startswith("training failed"):
        return "The program passed the checks but failed once training started."
    if "[review]" in problem:
        return "A reviewer read the program against the task and did not accept it."
    if not source.strip():
        return "Your reply could not be used as a program."
    return "The program was refused before training."


def _stopped_view(cand: Candidate, budget: int | None) -> dict[str, Any]:
    """A candidate successive halving stopped early: its rung, fitness there and the steps it got."""
    steps = cand.result.steps if cand.result is not None else None
    return {"id": cand.id, "rung": cand.stopped_at_rung, "fitness": cand.fitness,
            "steps": f"{steps:,}" if steps is not None else "–", "budget": f"{budget:,}" if budget else None}


def _parent_view(cand: Candidate, budget: int | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {"id": cand.id, "source": clip(cand.source, SOURCE_SHOWN), "fitness": cand.fitness,
                            "stopped": _stopped_view(cand, budget) if cand.stopped_at_rung is not None else None,
                            "reflection": None,
                            "steps": [], "fitness_curve": [], "success_curve": [], "length_curve": [],
                            "shaped_curve": [], "env_curve": [], "components": {}, "flags": []}
    analysis = cand.analysis or {}
    reflection = analysis.get("reflection")
    if isinstance(reflection, str) and reflection.strip():
        view["reflection"] = clip(reflection, REFLECTION_SHOWN)
        return view
    result = cand.result
    if result is not None:
        points = result.checkpoints
        view["steps"] = [p.step for p in points]
        view["fitness_curve"] = [p.fitness for p in points]
        if any(p.success_rate for p in points):
            view["success_curve"] = [p.success_rate for p in points]
        view["length_curve"] = [p.episode_length for p in points]
        if any(p.shaped_return is not None for p in points):
            view["shaped_curve"] = [p.shaped_return for p in points]
        if any(p.env_return is not None for p in points):
            view["env_curve"] = [p.env_return for p in points]
        names = sorted({name for p in points for name in p.components})
        view["components"] = {name: [p.components.get(name, {"mean": None, "min": None, "max": None})
                                     for p in points] for name in names}
        if not points:
            view["steps"] = [result.steps]
            view["fitness_curve"] = [result.fitness]
            view["length_curve"] = [result.episode_length]
    flags = [str(f) for f in analysis.get("flags", [])]
    for name, stats in (analysis.get("components") or {}).items():
        for flag in (stats or {}).get("flags", []):
            flags.append(f"{name}: {flag}")
    view["flags"] = flags
    return view


def _outcome(cand: Candidate) -> str:
    if cand.status == "scored":
        text = f"fitness {fmt_num(cand.fitness)}"
        if cand.result is not None and cand.result.success_rate:
            text += f", success {_pct(cand.result.success_rate)}"
        if cand.stopped_at_rung is not None:
            text += f" at rung {cand.stopped_at_rung}, stopped early"
    elif cand.status == "rejected":
        text = f"refused: {one_line(cand.reason or 'refused', 220)}"
    elif cand.status == "failed":
        text = f"training failed: {one_line(cand.reason or 'failed', 220)}"
    else:
        text = cand.status
    if cand.attempts:
        text += f" (after {len(cand.attempts)} repair{'s' if len(cand.attempts) != 1 else ''})"
    return text


def _ranked(cand: Candidate) -> dict[str, Any]:
    """A candidate a person ranked: its id and its fitness, to read the person's judgement against."""
    return {"id": cand.id, "fitness": cand.fitness}


def _unranked(ctx: DesignContext) -> list[str]:
    """The scored candidates of a ranked round that the person left out of a partial ranking."""
    if not ctx.ranking:
        return []
    ranked = {c.id for c in ctx.ranking}
    return [c.id for c in ctx.scored if c.iteration == ctx.iteration - 1 and c.id not in ranked]


def _summary(cand: Candidate) -> dict[str, Any]:
    components = list(cand.verdict.components) if cand.verdict is not None else []
    if len(components) > TERMS_SHOWN:
        components = components[:TERMS_SHOWN] + [f"{len(components) - TERMS_SHOWN} more"]
    return {"id": cand.id, "status": cand.status, "fitness": cand.fitness, "components": components,
            "note": one_line(cand.origin.get("note") or "", 160), "outcome": _outcome(cand),
            "parent": cand.parent}


def _select(cands: list[Candidate], limit: int) -> tuple[list[Candidate], int]:
    """At most ``limit`` candidates: the best scored ones and the most recent others, in run order."""
    if len(cands) <= limit:
        return cands, 0
    scored = sorted((c for c in cands if c.status == "scored"), key=lambda c: c.merit, reverse=True)
    keep = {c.id for c in scored[: limit // 2]}
    for cand in reversed(cands):
        if len(keep) >= limit:
            break
        keep.add(cand.id)
    return [c for c in cands if c.id in keep], len(cands) - len(keep)
