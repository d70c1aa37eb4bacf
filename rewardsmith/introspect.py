"""A spec for a Gymnasium env nobody wrote one for, from what the env itself says.

The designer is told: the class docstring (Gymnasium's ``## Observation Space`` table parsed into
named fields, ``## Action Space``, ``## Rewards``, ``## Episode End``), the bounds the spaces
declare, what random-action probe rollouts showed (observed ranges, the ``info`` keys, how episodes
ended), and, as in Eureka, the source of the env's observation and step code.
"""

from __future__ import annotations

import inspect
import json
import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import gymnasium as gym
import numpy as np

from rewardsmith.obsspace import flatten, is_flat_box, leaves
from rewardsmith.spec import (
    EnvSpec,
    Field,
    ShapingHint,
    TaskSpec,
    describe_space,
    env_reward_fitness,
    field_name_problem,
    make_registered,
    observation_size,
)

__all__ = ["EnvDoc", "Introspection", "field_name", "introspect", "parse_env_doc"]

PROBE_STEPS = 2000
"""Random-action steps taken to see the env's ranges, info keys and episode ends."""
SOURCE_BUDGET = 6000
"""Characters of the env's own code the designer is shown."""
SECTION_BUDGET = 1500
"""Characters of one documentation section (actions, rewards, episode end)."""
DESCRIPTION_BUDGET = 800
NAME_LIMIT = 40
"""Longest field name derived from a description (cut at a word boundary)."""
SOURCE_METHODS = ("_get_obs", "get_obs", "step", "reset", "reset_model")
UNBOUNDED = 1e30
"""A declared bound at or beyond this magnitude means "no bound" (float32 max stands in for infinity)."""

_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
_SEPARATOR_CELL = re.compile(r"^:?-{2,}:?$")
_FENCE = re.compile(r"```.*?```", re.DOTALL)
_MARKUP = re.compile(r"<[^>]{1,20}>|[*`]")
_ARTICLES = {"the", "a", "an"}


@dataclass(frozen=True)
class DocField:
    """One row of a docstring's observation table."""

    index: int
    name: str
    meaning: str
    unit: str = ""


@dataclass(frozen=True)
class EnvDoc:
    """The parts of an env class docstring a designer needs (empty strings where a section is absent)."""

    description: str = ""
    actions: str = ""
    rewards: str = ""
    episode_end: str = ""
    observation: str = ""
    """The observation section's prose (shown where the space's structure, not a table, names the fields)."""
    fields: tuple[DocField, ...] = ()
    """The observation table's rows, where the docstring has one."""


@dataclass(frozen=True)
class Introspection:
    """What introspecting an env found beyond its fields (shown by ``describe``)."""

    observed: dict[str, tuple[float, float]]
    """Each field's range seen over the probe (random actions): not a bound."""
    probe_steps: int
    terminated: int
    """Probe episodes that ended in a terminal state."""
    truncated: int
    """Probe episodes cut by the time limit."""
    info_keys: tuple[str, ...]
    """The env's own step ``info`` keys that reward code can read as ``info[key]``."""
    source: str
    """The env's observation and step code, trimmed to ``SOURCE_BUDGET``."""
    documented_fields: int
    """How many fields took their name and meaning from the docstring's observation table."""
    observation_doc: str = ""
    """The docstring's observation section, for an observation whose fields its structure names."""


# ------------------------------------------------------------------------------ the docstring


def parse_env_doc(doc: str | None, size: int) -> EnvDoc:
    """The sections of a Gymnasium-style docstring, with the observation table's rows for ``size`` values."""
    sections = _sections(inspect.cleandoc(doc or ""))
    observation = _find(sections, "observation space", "observations", "observation")
    episode_end = "\n\n".join(
        text for title, text in sections.items()
        if title in ("episode end", "episode termination", "episode truncation", "termination", "truncation")
    )
    return EnvDoc(
        description=_trim(_prose(_find(sections, "description")), DESCRIPTION_BUDGET),
        actions=_trim(_prose(_find(sections, "action space", "actions", "action")), SECTION_BUDGET),
        rewards=_trim(_prose(_find(sections, "rewards", "reward")), SECTION_BUDGET),
        episode_end=_trim(_prose(episode_end), SECTION_BUDGET),
        observation=_trim(_prose(observation), SECTION_BUDGET),
        fields=_observation_fields(observation, size),
    )


def _sections(text: str) -> dict[str, str]:
    """Markdown sections by lower-cased title (the text before the first heading is dropped)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    fenced = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        heading = None if fenced else _HEADING.match(line.strip())
        if heading:
            current = sections.setdefault(heading.group(1).strip().lower(), [])
        elif current is not None:
            current.append(line)
    return {title: "\n".join(lines).strip() for title, lines in sections.items()}


def _find(sections: dict[str, str], *titles: str) -> str:
    for title in titles:
        if sections.get(title):
            return sections[title]
    return ""


def _prose(text: str) -> str:
    """Section text without code blocks and figure directives, blank runs collapsed."""
    text = _FENCE.sub("", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def _trim(text: str, budget: int) -> str:
    if len(text) <= budget:
        return text
    cut = text.rfind("\n", 0, budget)
    cut = cut if cut > budget // 2 else budget
    return text[:cut].rstrip() + f"\n[... {len(text) - cut} more characters of the env's documentation]"


def _tables(text: str) -> list[list[list[str]]]:
    """Markdown tables as rows of cells (separator rows dropped)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in text.splitlines() + [""]:
        stripped = line.strip()
        if stripped.startswith("|"):
            cells = [cell.strip() for cell in stripped.strip("|").split("|")]
            if not all(_SEPARATOR_CELL.match(cell) for cell in cells if cell):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def _column(header: Sequence[str], *words: str) -> int | None:
    lowered = [cell.lower() for cell in header]
    for word in words:
        for i, cell in enumerate(lowered):
            if word in cell:
                return i
    return None


def _observation_fields(section: str, size: int) -> tuple[DocField, ...]:
    """The rows of the first table in ``section`` that numbers observation indices 0..size-1."""
    for table in _tables(section):
        header, rows = table[0], table[1:]
        num = _column(header, "num", "index", "#")
        text = _column(header, "observation", "description", "meaning")
        if num is None or text is None:
            continue
        unit = _column(header, "unit")
        found: dict[int, tuple[str, str]] = {}
        for row in rows:
            if max(num, text) >= len(row) or not row[num].isdigit():
                continue
            index = int(row[num])
            if index < size and index not in found:
                found[index] = (_clean(row[text]), _unit(row[unit]) if unit is not None and unit < len(row) else "")
        if found:
            names = unique_names({i: field_name(meaning, i) for i, (meaning, _) in sorted(found.items())})
            return tuple(DocField(i, names[i], meaning, unit_) for i, (meaning, unit_) in sorted(found.items()))
    return ()


def _clean(cell: str) -> str:
    return " ".join(_MARKUP.sub("", cell).split())


def _unit(cell: str) -> str:
    """``angular velocity (rad/s)`` gives ``rad/s``; ``unitless`` gives nothing."""
    cell = _clean(cell)
    inner = re.search(r"\(([^()]+)\)\s*$", cell)
    unit = inner.group(1) if inner else cell
    return "" if unit.lower() in ("unitless", "na", "n/a", "-", "") else unit


def field_name(text: str, index: int) -> str:
    """A snake_case identifier from a field's description (``obs_<index>`` when nothing usable is left)."""
    words = [w for w in re.sub(r"[^a-z0-9]+", " ", text.lower()).split() if w not in _ARTICLES]
    name = ""
    for word in words:
        longer = f"{name}_{word}" if name else word
        if len(longer) > NAME_LIMIT:
            break
        name = longer
    if not name:
        return f"obs_{index}"
    if name[0].isdigit():
        name = f"obs_{name}"
    if field_name_problem(name):
        name = f"{name}_value"
    return name if field_name_problem(name) is None else f"obs_{index}"


def unique_names(names: dict[int, str]) -> dict[int, str]:
    """The names with repeats told apart by a suffix (``x``, ``x_2``, ``x_3``)."""
    taken: set[str] = set()
    unique: dict[int, str] = {}
    for index, name in names.items():
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{name}_{n}"
        taken.add(candidate)
        unique[index] = candidate
    return unique


# ------------------------------------------------------------------------------- the env's code


def env_source(env_class: type, budget: int = SOURCE_BUDGET) -> str:
    """The source of the env's observation, step and reset methods (its own, not gym.Env's), trimmed."""
    parts: list[str] = []
    for name in SOURCE_METHODS:
        owner = next((klass for klass in env_class.__mro__ if name in vars(klass)), None)
        if owner is None or owner in (gym.Env, object) or owner.__module__.startswith("gymnasium.core"):
            continue
        try:
            code = textwrap.dedent(inspect.getsource(vars(owner)[name]))
        except (OSError, TypeError):  # defined in C, in a notebook, or generated
            continue
        parts.append(f"# {owner.__name__}.{name}\n{code.rstrip()}")
    text = "\n\n".join(parts)
    if len(text) <= budget:
        return text
    cut = text.rfind("\n", 0, budget)
    cut = cut if cut > 0 else budget
    return text[:cut] + f"\n# [... {len(text) - cut} more characters trimmed]"


# --------------------------------------------------------------------------------- the probe


@dataclass(frozen=True)
class _Probe:
    rows: np.ndarray
    terminated: int
    truncated: int
    info_keys: tuple[str, ...]


def _probe(env: gym.Env, steps: int, seed: int) -> _Probe:
    """Random actions for ``steps`` steps, seeded: the same result in every process."""
    from rewardsmith.sandbox import plain_info

    space = env.observation_space
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    rows = [flatten(space, obs)]
    terminated_count = truncated_count = 0
    keys: dict[str, None] = {}
    for _ in range(steps):
        obs, _, terminated, truncated, info = env.step(env.action_space.sample())
        rows.append(flatten(space, obs))
        keys.update(dict.fromkeys(plain_info(info, step=True)))
        if terminated or truncated:
            terminated_count += bool(terminated)
            truncated_count += bool(truncated and not terminated)
            obs, _ = env.reset()
            rows.append(flatten(space, obs))
    return _Probe(np.asarray(rows), terminated_count, truncated_count, tuple(keys))


# ------------------------------------------------------------------------------ the spec


def _bound(value: np.floating) -> float | None:
    """A declared bound as the space's dtype prints it (float32's 4.8, not 4.800000190734863); None if unbounded."""
    number = float(str(value))
    return number if math.isfinite(number) and abs(number) < UNBOUNDED else None


def introspect(gym_id: str, probe_steps: int = PROBE_STEPS, seed: int = 0,
               make_kwargs: dict[str, Any] | None = None) -> EnvSpec:
    """A spec derived from a registered Gymnasium env: its docstring, its spaces, a probe and its code.

    ``make_kwargs`` go to ``gym.make`` (and are kept in the spec).

    Raises:
        UnknownEnvError: the id is not registered or cannot be made.
        SpecError: the env's observation is not one rewardsmith reads.
    """
    return _introspect(gym_id, probe_steps, seed, json.dumps(make_kwargs or {}, sort_keys=True))


@cache  # every training, evaluation and media job resolves the task again: probe once per process
def _introspect(gym_id: str, probe_steps: int, seed: int, make_kwargs_json: str) -> EnvSpec:
    make_kwargs: dict[str, Any] = json.loads(make_kwargs_json)
    env = make_registered(gym_id, **make_kwargs)
    try:
        space = env.observation_space
        size = observation_size(space, f"env {gym_id!r}")
        env_class = type(env.unwrapped)
        doc = parse_env_doc(env_class.__doc__, size if is_flat_box(space) else 0)
        probe = _probe(env, probe_steps, seed)
        threshold = env.spec.reward_threshold if env.spec is not None else None
        action_space = describe_space(env.action_space)
        source = env_source(env_class)
    finally:
        env.close()
    documented = {f.index: f for f in doc.fields}
    if is_flat_box(space):
        names = unique_names({i: documented[i].name if i in documented else f"obs_{i}" for i in range(size)})
        fields = tuple(
            Field(name=names[i], index=i, meaning=documented[i].meaning if i in documented else "",
                  unit=documented[i].unit if i in documented else "",
                  low=_bound(space.low[i]), high=_bound(space.high[i]))
            for i in range(size)
        )
    else:  # named from the space's structure: Dict keys, Tuple positions
        fields = tuple(Field(name=leaf.name, index=leaf.index, low=leaf.low, high=leaf.high, shape=leaf.shape,
                             integer=leaf.integer) for leaf in leaves(space))
    findings = Introspection(
        observed={f.name: (float(probe.rows[:, f.index:f.index + f.size].min()),
                           float(probe.rows[:, f.index:f.index + f.size].max())) for f in fields},
        probe_steps=probe_steps, terminated=probe.terminated, truncated=probe.truncated,
        info_keys=probe.info_keys, source=source, documented_fields=len(documented),
        observation_doc="" if is_flat_box(space) else doc.observation,
    )
    return EnvSpec(
        name=gym_id,
        gym_id=gym_id,
        description=doc.description or f"{gym_id} ({env_class.__name__}; its docstring has no description).",
        fields=fields,
        actions=doc.actions or action_space,
        reward_doc=doc.rewards or "not documented (the env's docstring has no Rewards section).",
        termination_doc=doc.episode_end,
        terminations=(),
        tasks=(default_task(gym_id, threshold),),
        source="introspected",
        introspection=findings,
        make_kwargs=make_kwargs,
    )


def default_task(gym_id: str, threshold: float | None) -> TaskSpec:
    """The env's own goal: its return, solved at its registered reward threshold."""
    return TaskSpec(
        name="default",
        description=f"Maximise the return of {gym_id}'s own reward.",
        fitness=env_reward_fitness,
        fitness_doc="the episode's return under the env's own reward",
        solved=float(threshold) if threshold is not None else math.inf,
        default=True,
        hints=(ENV_REWARD_HINT,),
    )


ENV_REWARD_HINT = ShapingHint("env_reward", 'info["env_reward"]', "gain", scale=1.0, weight=1.0,
                              doc="the environment's own reward")
