"""A task: the text the designer reads, the env, and the trusted fitness that scores candidates.

:class:`TaskRef` is what a run records and what crosses into training processes (plain strings);
:meth:`TaskRef.resolve` loads the spec and the fitness wherever it is needed.

A fitness file is the user's own trusted Python::

    # my_fitness.py
    SOLVED = 400.0          # optional: the mean fitness that counts as solved

    def fitness(episode):   # rewardsmith.episode.Episode
        \"\"\"Steps with the cart right of x = 0.5.\"\"\"
        return float((episode.obs.cart_position[1:] > 0.5).sum())

and is passed as ``--fitness my_fitness.py:fitness``.

A fitness agreed on at the start of a run from the task's words (:class:`ProposedFitness`: an LLM's proposal,
accepted or edited by the person) is untrusted code: it is never imported, and resolving the task builds a
callable that scores each episode in the sandbox (:class:`~rewardsmith.sandbox.fitness.SandboxedFitness`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rewardsmith.envref import env_build
from rewardsmith.episode import Episode
from rewardsmith.errors import RunDirError, UsageError
from rewardsmith.hyperparams import apply_overrides
from rewardsmith.resources import import_file
from rewardsmith.spec import EnvSpec, Field, TaskSpec, load_spec

__all__ = ["FITNESS_FILE", "ProposedFitness", "ResolvedTask", "TaskRef", "is_solved", "load_fitness"]

FITNESS_FILE = "fitness.py"
"""The accepted fitness, as a run directory keeps it (with its origin in comment lines at the top)."""


def is_solved(fitness: float | None, threshold: float | None) -> bool:
    """The one meaning of *solved*: a candidate's fitness (the mean over its final evaluation episodes) reaches
    the threshold.

    Two other numbers are labelled apart from it wherever they appear: the share of those final episodes whose
    own fitness reaches the threshold ("episodes ≥ threshold"), and the first training checkpoint whose mean
    fitness reached it ("checkpoint ≥ threshold at step"), which a policy may reach and then lose.
    """
    return fitness is not None and threshold is not None and math.isfinite(threshold) and fitness >= threshold


@dataclass(frozen=True)
class ProposedFitness:
    """The fitness a run agreed on from the task's words, before its search started.

    ``source`` None means the answer was that the words ask for the env's default goal: the spec's own fitness
    scores, and the run records that this was decided rather than assumed.
    """

    origin: str
    """Who wrote it: ``proposed by MODEL``, ``edited by the person`` or ``default goal``."""
    definition: str
    """Success in words (one paragraph): what the fitness measures; the designer reads it as the fitness's doc."""
    source: str | None = None
    """The fitness program (``fitness(episode)``, optional ``SOLVED``); untrusted, run only in the sandbox."""
    solved: float | None = None
    """Its ``SOLVED``: the mean fitness that counts as solved (None: none)."""
    edited: bool = False
    """The person's edit of the LLM's proposal, not the proposal as offered."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProposedFitness:
        solved = data.get("solved")
        origin = str(data["origin"])
        edited = data.get("edited")
        return cls(origin=origin, definition=str(data.get("definition") or ""),
                   source=data["source"] if isinstance(data.get("source"), str) else None,
                   solved=float(solved) if isinstance(solved, (int, float)) and not isinstance(solved, bool) else None,
                   # a run.json written before ``edited`` was recorded says so only in its origin
                   edited=edited if isinstance(edited, bool) else origin.startswith("edited"))


@dataclass(frozen=True)
class TaskRef:
    """A task as plain data: safe to record in run.json and to send to worker processes."""

    env: str
    """How the env is named (``rewardsmith.envref``), with file paths absolute."""
    text: str
    """What the designer is asked to achieve."""
    task: str | None = None
    """A task the spec names; None for the spec's default task."""
    fitness: str | None = None
    """``FILE.py:FUNCTION`` of the user's own fitness; overrides the task's fitness."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the env's constructor (``--env-kwargs``)."""
    env_paths: tuple[str, ...] = ()
    """Folders put on ``sys.path`` before the env is loaded (where the user's modules are)."""

    ppo: dict[str, Any] | None = None
    """PPO settings laid over the spec's (``--ppo``, ``--hyperparams``), as PPOConfig field names."""
    proposed: ProposedFitness | None = None
    """The fitness agreed on from the words (``run`` with an LLM and neither ``--task`` nor ``--fitness``)."""

    def resolve(self) -> ResolvedTask:
        spec = load_spec(self.env, self.env_kwargs, self.env_paths)
        if self.ppo:
            spec = replace(spec, ppo=apply_overrides(spec.ppo, self.ppo))
        task = spec.task(self.task)
        if self.fitness:
            fn, solved, doc = load_fitness(self.fitness)
            return ResolvedTask(self, spec, task, fn, solved, doc)
        if self.proposed is not None and self.proposed.source is not None:
            from rewardsmith.sandbox.fitness import SandboxedFitness

            solved = self.proposed.solved if self.proposed.solved is not None else math.inf
            return ResolvedTask(self, spec, task, SandboxedFitness(self.proposed.source, spec.field_layout), solved,
                                self.proposed.definition)
        return ResolvedTask(self, spec, task, task.fitness, task.solved, task.fitness_doc)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["env_paths"] = list(self.env_paths)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskRef:
        proposed = data.get("proposed")
        return cls(env=data["env"], text=data["text"], task=data.get("task"), fitness=data.get("fitness"),
                   env_kwargs=dict(data.get("env_kwargs") or {}), env_paths=tuple(data.get("env_paths") or ()),
                   ppo=data.get("ppo") or None,
                   proposed=ProposedFitness.from_dict(proposed) if isinstance(proposed, dict) else None)


@dataclass(frozen=True)
class ResolvedTask:
    ref: TaskRef
    spec: EnvSpec
    task_spec: TaskSpec
    """The spec's task whose description, budget, hints and wrappers apply (its fitness may be overridden)."""
    fitness: Callable[[Episode], float]
    solved: float
    fitness_doc: str

    def record(self) -> dict[str, Any]:
        """What commands that only read a run need (``show``, ``report``, ``export``), so they never build the env
        or import the user's modules; and how to build the env again (the export's ``make_env``)."""
        spec, task = self.spec, self.task_spec
        return {
            "name": spec.name,
            "gym_id": spec.gym_id,
            "source": spec.source,
            "make_kwargs": spec.make_kwargs,
            "fields": [asdict(f) for f in spec.fields],
            "task": {"name": task.name, "description": task.description, "timesteps": task.budget(spec.ppo),
                     "solved": task.solved, "fitness_doc": task.fitness_doc},
            "solved": self.solved,
            "fitness_doc": self.fitness_doc,
            "build": env_build(spec.gym_id, spec.make_kwargs, task.wrappers, self.ref.env_paths),
        }

    @classmethod
    def from_record(cls, ref: TaskRef, data: dict[str, Any]) -> ResolvedTask:
        """A task rebuilt from :meth:`record` for reading a run: its fitness cannot score (nothing was imported)."""
        recorded = data["task"]
        task = TaskSpec(name=recorded["name"], description=recorded["description"], fitness=_not_loaded,
                        fitness_doc=recorded["fitness_doc"], solved=float(recorded["solved"]),
                        timesteps=recorded.get("timesteps"))
        spec = EnvSpec(name=data["name"], gym_id=data["gym_id"], description="", actions="", reward_doc="",
                       fields=tuple(Field(**f) for f in data["fields"]), terminations=(), tasks=(task,),
                       make_kwargs=dict(data.get("make_kwargs") or {}), source=data.get("source", "recorded"))
        return cls(ref, spec, task, _not_loaded, float(data["solved"]), data["fitness_doc"])

    @classmethod
    def of_spec(cls, spec: EnvSpec, task: TaskSpec | None = None, fitness: Callable[[Episode], float] | None = None,
                solved: float | None = None) -> ResolvedTask:
        """A task of a spec held in memory (not loaded by name): ``task`` (the default) scored by its own fitness
        and threshold unless others are given."""
        task = task or spec.default_task
        ref = TaskRef(spec.name, task.description, task.name)
        return cls(ref, spec, task, fitness or task.fitness, task.solved if solved is None else solved,
                   task.fitness_doc)

    @property
    def text(self) -> str:
        return self.ref.text

    @property
    def scored_on_default(self) -> bool:
        """No ``--task`` and no ``--fitness``: candidates are scored on the env's default goal, whatever the text says."""
        return (self.ref.task is None and not self.ref.fitness and not self.proposed_program
                and self.text.strip() != self.task_spec.description.strip())

    @property
    def proposed_program(self) -> bool:
        """Candidates are scored by a fitness program agreed on from the words (run in the sandbox)."""
        return self.ref.proposed is not None and self.ref.proposed.source is not None

    @property
    def solved_or_none(self) -> float | None:
        """The solved threshold, or None where the fitness has none (+inf)."""
        return self.solved if math.isfinite(self.solved) else None

    @property
    def fitness_label(self) -> str:
        """What scores candidates: the user's ``FILE.py:FUNCTION``, the fitness agreed on from the words
        (``proposed fitness (fitness.py)``), else ``env:task``."""
        if self.proposed_program:
            kind = "edited" if self.ref.proposed.edited else "proposed"  # type: ignore[union-attr]
            return f"{kind} fitness ({FITNESS_FILE})"
        return self.ref.fitness or f"{self.spec.name}:{self.task_spec.name}"

    def budget(self, timesteps: int | None = None) -> int:
        """PPO steps per training: ``timesteps`` where given, else the task's own budget, in whole rollouts
        (:meth:`PPOConfig.round_budget`): the number shown is the number trained."""
        return self.spec.ppo.round_budget(timesteps) if timesteps else self.task_spec.budget(self.spec.ppo)


def _not_loaded(episode: Episode) -> float:
    raise RunDirError("this run was opened read-only from its records; its fitness was not loaded")


def load_fitness(reference: str) -> tuple[Callable[[Episode], float], float, str]:
    """Load ``FILE.py:FUNCTION``; return the function, its solved threshold (``SOLVED``, else +inf) and its doc.

    Raises:
        UsageError: the file or function does not exist or does not load.
    """
    path_text, sep, name = reference.rpartition(":")
    if not sep or not path_text or not name:
        raise UsageError(f"--fitness takes FILE.py:FUNCTION, got {reference!r}")
    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"fitness file {path_text!r} does not exist")
    try:
        module = import_file(path, "rewardsmith_fitness")
    except Exception as exc:
        raise UsageError(f"fitness file {path_text!r} failed to load: {type(exc).__name__}: {exc}") from None
    if module is None:
        raise UsageError(f"cannot load fitness file {path_text!r}")
    fn = getattr(module, name, None)
    if not callable(fn):
        raise UsageError(f"fitness file {path_text!r} defines no function {name!r}")
    try:
        inspect.signature(fn).bind(None)
    except TypeError:
        raise UsageError(f"fitness function {name!r} must take one argument, the episode") from None
    solved = getattr(fn, "solved", getattr(module, "SOLVED", math.inf))
    doc = inspect.getdoc(fn) or f"{name} from {path.name}"
    return fn, float(solved), doc.splitlines()[0]
