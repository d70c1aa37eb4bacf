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
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rewardsmith.episode import Episode
from rewardsmith.errors import UsageError
from rewardsmith.hyperparams import apply_overrides
from rewardsmith.resources import import_file
from rewardsmith.spec import EnvSpec, TaskSpec, load_spec

__all__ = ["ResolvedTask", "TaskRef", "is_solved", "load_fitness"]


def is_solved(fitness: float | None, threshold: float | None) -> bool:
    """The one meaning of *solved*: a candidate's fitness (the mean over its final evaluation episodes) reaches
    the threshold.

    Two other numbers are labelled apart from it wherever they appear: the share of those final episodes whose
    own fitness reaches the threshold ("episodes ≥ threshold"), and the first training checkpoint whose mean
    fitness reached it ("checkpoint ≥ threshold at step"), which a policy may reach and then lose.
    """
    return fitness is not None and threshold is not None and math.isfinite(threshold) and fitness >= threshold


@dataclass(frozen=True)
class TaskRef:
    """A task as plain strings: safe to record in run.json and to send to worker processes."""

    env: str
    """Bundled short name, spec file path, or Gymnasium id."""
    text: str
    """What the designer is asked to achieve."""
    task: str | None = None
    """A task the spec names; None for the spec's default task."""
    fitness: str | None = None
    """``FILE.py:FUNCTION`` of the user's own fitness; overrides the task's fitness."""
    ppo: dict[str, Any] | None = None
    """PPO settings laid over the spec's (``--ppo``, ``--hyperparams``), as PPOConfig field names."""

    def resolve(self) -> ResolvedTask:
        spec = load_spec(self.env)
        if self.ppo:
            spec = replace(spec, ppo=apply_overrides(spec.ppo, self.ppo))
        task = spec.task(self.task)
        if self.fitness:
            fn, solved, doc = load_fitness(self.fitness)
            return ResolvedTask(self, spec, task, fn, solved, doc)
        return ResolvedTask(self, spec, task, task.fitness, task.solved, task.fitness_doc)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskRef:
        return cls(env=data["env"], text=data["text"], task=data.get("task"), fitness=data.get("fitness"),
                   ppo=data.get("ppo") or None)


@dataclass(frozen=True)
class ResolvedTask:
    ref: TaskRef
    spec: EnvSpec
    task: TaskSpec
    fitness: Callable[[Episode], float]
    solved: float
    fitness_doc: str

    @property
    def text(self) -> str:
        return self.ref.text

    @property
    def scored_on_default(self) -> bool:
        """No ``--task`` and no ``--fitness``: candidates are scored on the env's default goal, whatever the text says."""
        return (self.ref.task is None and not self.ref.fitness
                and self.text.strip() != self.task.description.strip())

    @property
    def solved_or_none(self) -> float | None:
        """The solved threshold, or None where the fitness has none (+inf)."""
        return self.solved if math.isfinite(self.solved) else None

    @property
    def fitness_label(self) -> str:
        """What scores candidates: the user's ``FILE.py:FUNCTION``, else ``env:task``."""
        return self.ref.fitness or f"{self.spec.name}:{self.task.name}"

    def budget(self, timesteps: int | None = None) -> int:
        """PPO steps per training: ``timesteps`` where given, else the task's own budget, in whole rollouts
        (:meth:`PPOConfig.round_budget`): the number shown is the number trained."""
        return self.spec.ppo.round_budget(timesteps) if timesteps else self.task.budget(self.spec.ppo)


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
