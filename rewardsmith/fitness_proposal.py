"""Agreeing on a fitness from the task's words, before a search starts (``run`` with an LLM, no --task/--fitness).

Without a fitness of its own, a search would score candidates on the env's default goal whatever the
words ask. So the LLM is asked first for the task's fitness: a program defining ``fitness(episode)``
with an optional ``SOLVED`` and a paragraph defining success in words, or the answer that the words
ask for the env's default goal. A program is untrusted: it is checked in the sandbox
(:func:`~rewardsmith.fitness_critic.check_fitness`); a refusal goes back to the LLM with its reason. A
usable offer goes to the person (``decide``: the CLI shows it and asks, or ``--yes`` accepts): accept,
edit (the edited code is checked by the same critic) or reject with a reason, which the LLM gets for its
next try. After :data:`ATTEMPTS` replies without agreement, :class:`FitnessProposalError` says what to
pass instead.

Every request goes through the LLM designer's endpoint (retries, the run's ``llm/`` cache, usage and
budgets); every offer and decision is recorded as a ``fitness_offered`` event.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from rewardsmith.designer.extract import MAX_REPLY_CHARS, extract_program, strip_reasoning
from rewardsmith.designer.prompts import Prompts, fmt_num
from rewardsmith.errors import RunDirError, UsageError
from rewardsmith.fitness_critic import FitnessVerdict, check_fitness
from rewardsmith.safetext import one_line, safe_line
from rewardsmith.task import FITNESS_FILE, ProposedFitness, ResolvedTask

__all__ = ["ATTEMPTS", "DEFAULT_GOAL", "Decision", "FitnessOffer", "FitnessProposalError", "agree_fitness",
           "fitness_file_text", "read_reply", "run_fitness"]

ATTEMPTS = 3
"""LLM replies a run may take to agree on a fitness (refusals and the person's rejections included)."""
MAX_EDITS = 10
"""Edits of one offer the critic may refuse before the agreement gives up."""
DEFAULT_GOAL = "default goal"
"""The origin of an agreement that the words ask for the env's default goal."""
DEFINITION_SHOWN = 1500
"""The longest definition kept, in characters."""
REPLY_SHOWN = 8000
"""The longest earlier reply carried into a retry's conversation."""
FITNESS_HEADER = "# rewardsmith: the fitness this run's candidates are scored by"

_DEFINITION = re.compile(r"^[*_#> \t]*DEFINITION[*_ \t]*:(.*)$", re.IGNORECASE | re.MULTILINE)
_DEFAULT = re.compile(r"^[*_#> \t`]*DEFAULT[ _]GOAL\b(.*)$", re.IGNORECASE | re.MULTILINE)


class FitnessProposalError(UsageError):
    """No fitness was agreed on; the message says what to pass instead."""


@dataclass(frozen=True)
class FitnessOffer:
    """One answer of the LLM (or one edit of it by the person), read and checked."""

    attempt: int
    """Which reply of the LLM, from 1."""
    definition: str
    """Success in words (for the default goal: the LLM's reason)."""
    source: str = ""
    default_goal: bool = False
    verdict: FitnessVerdict | None = None
    refusal: str | None = None
    """Why it cannot be used (the reply's form, or the critic's verdict); None for an offer the person decides on."""
    edited: bool = False
    """The person's edit of an offer (shown when the critic refused it)."""
    request: str = ""
    """The request key (its files in the run's ``llm/``)."""

    def to_dict(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "definition": self.definition, "source": self.source,
                "default_goal": self.default_goal, "verdict": self.verdict.to_dict() if self.verdict else None,
                "refusal": self.refusal, "edited": self.edited, "request": self.request}


@dataclass(frozen=True)
class Decision:
    """The person's answer to an offer."""

    action: Literal["accept", "edit", "reject"]
    reason: str = ""
    """Why it was rejected (sent to the LLM word for word)."""
    source: str | None = None
    """The edited program (``edit``)."""


Decide = Callable[[FitnessOffer], "Decision | None"]
"""Shown every offer; answers the usable ones (for a refused one its answer is ignored)."""


def read_reply(text: str | None, finish_reason: str | None, attempt: int = 1, request: str = "") -> FitnessOffer:
    """An LLM reply as an offer: a fitness program with its definition, the default-goal answer, or a refusal
    saying what was wrong with the reply's form (no program, cut off, no definition)."""
    extraction = extract_program(text, finish_reason, function="fitness")
    answer = strip_reasoning(text or "") if len(text or "") <= MAX_REPLY_CHARS else ""
    if extraction.refusal is not None:
        default = _DEFAULT.search(answer)
        if default is not None and extraction.refusal.code in ("no_code", "no_fitness"):
            reason = _paragraph(answer, default.start(1)) or "the words ask for the environment's default goal"
            return FitnessOffer(attempt, reason, default_goal=True, request=request)
        return FitnessOffer(attempt, "", extraction.source, refusal=str(extraction.refusal), request=request)
    found = _DEFINITION.search(answer)
    definition = _paragraph(answer, found.start(1)) if found else ""
    if not definition:
        return FitnessOffer(attempt, "", extraction.source, request=request,
                            refusal="[no_definition] the reply has no `DEFINITION:` paragraph; before the program, "
                                    "define success in words on a line starting with DEFINITION:")
    return FitnessOffer(attempt, definition, extraction.source, request=request)


def _paragraph(text: str, start: int) -> str:
    """The paragraph from ``start``: up to a blank line or a code fence, on one line, clipped."""
    lines = []
    for number, line in enumerate(text[start:].split("\n")):
        if number and (not line.strip() or line.lstrip().startswith(("```", "~~~"))):
            break
        lines.append(line)
    words = " ".join(" ".join(lines).split()).strip(" *_:")
    return words if len(words) <= DEFINITION_SHOWN else words[:DEFINITION_SHOWN - 1] + "…"


class _Conversation:
    """The messages of the fitness requests: the first ask, then each earlier answer with why it was not taken."""

    def __init__(self, task: ResolvedTask, prompts: Path | None, attempts: int) -> None:
        self.prompts = Prompts(prompts)
        self.attempts = attempts
        self.messages = self.prompts.fitness_messages(task)

    def answered(self, reply: str, reason: str, person: bool, attempt: int) -> None:
        """Carry ``reply`` and why it was not taken into the next request."""
        shown = reply if len(reply) <= REPLY_SHOWN else reply[:REPLY_SHOWN] + "\n…"
        self.messages += [{"role": "assistant", "content": shown or "(no reply)"},
                          {"role": "user", "content": self.prompts.fitness_retry(reason, person, attempt, self.attempts)}]


def agree_fitness(task: ResolvedTask, designer: Any, decide: Decide, attempts: int = ATTEMPTS, seed: int = 0,
                  record: Callable[..., Any] | None = None) -> ProposedFitness:
    """Ask ``designer`` (an :class:`~rewardsmith.designer.llm.LLMDesigner`) for ``task``'s fitness until the
    person (``decide``) accepts an offer the critic accepted, or ``attempts`` replies have been spent.

    Args:
        record: ``run.append_event``, to record each offer and decision (``fitness_offered`` events).

    Raises:
        FitnessProposalError: no agreement; the message names ``--fitness`` and ``--task``.
    """
    conversation = _Conversation(task, Path(designer.options.prompts) if designer.options.prompts else None, attempts)
    model = designer.options.model or "the LLM"
    last = ""
    for attempt in range(1, attempts + 1):
        text, finish, key, error = designer.ask(list(conversation.messages), {"purpose": "fitness", "iteration": 0,
                                                                              "attempt": attempt})
        if error is not None:
            raise FitnessProposalError(f"the LLM gave no fitness proposal ({error}); pass --fitness FILE.py:FUNCTION "
                                       "with your own, or --task NAME (see `rewardsmith envs`)")
        offer = read_reply(text, finish, attempt, key)
        if offer.refusal is None and not offer.default_goal:
            verdict = check_fitness(offer.source, task.spec, task.task_spec, seed)
            offer = replace(offer, verdict=verdict, refusal=None if verdict.accepted else verdict.explain())
        if offer.refusal is not None:
            decide(offer)
            _record(record, offer, None)
            last = offer.refusal
            conversation.answered(strip_reasoning(text or ""), offer.refusal, False, attempt + 1)
            continue
        agreed, reason = _ask_person(task, offer, decide, seed, model, record)
        if agreed is not None:
            return agreed
        last = f"the person rejected it: {reason}"
        conversation.answered(strip_reasoning(text or ""), reason, True, attempt + 1)
    raise FitnessProposalError(f"no fitness was agreed on after {attempts} proposals (the last: {one_line(last, 300)}); "
                               "pass --fitness FILE.py:FUNCTION with your own, or --task NAME for one of the env's "
                               "tasks (see `rewardsmith envs`)")


def _ask_person(task: ResolvedTask, offer: FitnessOffer, decide: Decide, seed: int, model: str,
                record: Callable[..., Any] | None) -> tuple[ProposedFitness | None, str]:
    """The person's answer to a usable offer: the agreed fitness, or None with their reason for rejecting it."""
    for _ in range(MAX_EDITS + 1):
        decision = decide(offer) or Decision("accept")
        if decision.action == "accept":
            _record(record, offer, decision)
            if offer.default_goal:
                return ProposedFitness(DEFAULT_GOAL, offer.definition), ""
            solved = offer.verdict.solved if offer.verdict else None
            return ProposedFitness(f"proposed by {model}", offer.definition, offer.source, solved), ""
        if decision.action == "reject":
            _record(record, offer, decision)
            return None, decision.reason.strip() or "no reason given"
        edited = decision.source or ""
        verdict = check_fitness(edited, task.spec, task.task_spec, seed)
        edit = replace(offer, source=edited, verdict=verdict, default_goal=False, edited=True,
                       refusal=None if verdict.accepted else verdict.explain())
        _record(record, edit, decision)
        if verdict.accepted:
            return ProposedFitness(f"edited by the person (from {model}'s proposal)", offer.definition, edited,
                                   verdict.solved, edited=True), ""
        decide(edit)  # shows why the edit was refused; the person answers the offer again
    raise FitnessProposalError(f"the critic refused {MAX_EDITS + 1} edits of the proposed fitness; pass --fitness "
                               "FILE.py:FUNCTION with your own, or --task NAME (see `rewardsmith envs`)")


def _record(record: Callable[..., Any] | None, offer: FitnessOffer, decision: Decision | None) -> None:
    if record is not None:
        record("fitness_offered", offer=offer.to_dict(),
               decision=None if decision is None else {"action": decision.action, "reason": decision.reason})


# ------------------------------------------------------------------------------------- fitness.py


def fitness_file_text(proposed: ProposedFitness, task_text: str) -> str:
    """``fitness.py`` as a run keeps it: the program under comment lines saying where it came from."""
    if proposed.source is None:
        raise ValueError("the default goal has no fitness program")
    solved = f"; solved at a mean fitness of {fmt_num(proposed.solved)}" if proposed.solved is not None else ""
    wrap = textwrap.TextWrapper(width=100, initial_indent="#   ", subsequent_indent="#   ")
    lines = [
        FITNESS_HEADER,
        f"# origin:  {safe_line(proposed.origin)}{solved}",
        f"# task:    {safe_line(task_text)}",
        "# success:",
        *wrap.wrap(safe_line(proposed.definition)),
        "# It is untrusted code: rewardsmith runs it only in its sandbox. `rewardsmith evaluate REWARD --env ENV",
        "# --fitness RUN` scores with it; run.json holds the copy the run uses.",
        "",
    ]
    return "\n".join(lines) + proposed.source.rstrip() + "\n"


def run_fitness(path: str | Path) -> ProposedFitness | None:
    """The fitness a run agreed on, named by the run's directory or its ``fitness.py`` (``evaluate --fitness RUN``);
    None when ``path`` is neither (a user's own fitness file).

    Raises:
        UsageError: a run that agreed on no fitness program (its fitness is ``--task``'s or the default goal's).
    """
    given = Path(path)
    root = given if given.is_dir() else given.parent if given.name == FITNESS_FILE else None
    if root is None or not (root / "run.json").is_file():
        return None
    from rewardsmith.runs import RunDir
    from rewardsmith.task import TaskRef

    try:
        ref = TaskRef.from_dict(RunDir.open(root).read_run()["task"])
    except (KeyError, TypeError, ValueError, RunDirError) as exc:
        raise UsageError(f"{root}: run.json does not record a task ({exc})") from None
    if ref.proposed is None or ref.proposed.source is None:
        raise UsageError(f"{root} was scored by {ref.fitness or (ref.task or 'the default task')}, not by a fitness "
                         "agreed on from its words; pass that instead")
    return ref.proposed
