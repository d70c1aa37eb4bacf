"""Environment specs and tasks: what a designer may know about an environment.

A bundled spec is a Python file in ``envs/`` that defines ``SPEC = EnvSpec(...)``; a user can
write their own and pass its path as ``--env``. Any other registered Gymnasium id gets a spec
derived by introspection (``rewardsmith.introspect``: the env's docstring, spaces, a probe and its
code, the env's own return as the fitness). Every spec is checked against its env's real
observation space when it loads.
"""

from __future__ import annotations

import ast
import json
import keyword
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import gymnasium as gym
import numpy as np

from rewardsmith.episode import Episode, NamedValues, Slot
from rewardsmith.errors import SpecError, UnknownEnvError, UnknownTaskError, UsageError
from rewardsmith.obsspace import FlatObservation, flat_size, is_flat_box, space_problem
from rewardsmith.resources import bundled_dir, import_file, template_env

if TYPE_CHECKING:
    from rewardsmith.introspect import Introspection

__all__ = [
    "EnvSpec",
    "Field",
    "PPOConfig",
    "ShapingHint",
    "TaskSpec",
    "TerminationCause",
    "env_reward_fitness",
    "list_specs",
    "load_spec",
    "usable_hints",
    "validate_spec",
]

FitnessFn = Callable[[Episode], float]


@dataclass(frozen=True)
class Field:
    """One named part of the flat observation vector: a scalar, or a vector or array from ``index`` on.

    The flat vector is the observation's values in the space's own order (``rewardsmith.obsspace``):
    a flat Box as it is; a Dict, Tuple, Discrete, MultiDiscrete, MultiBinary or other Box flattened.
    """

    name: str
    """snake_case name used in reward code: ``next_obs.<name>``; a nested Dict key joins with dots
    (``robot.joint_pos``: ``next_obs.robot.joint_pos`` or ``next_obs["robot.joint_pos"]``)."""
    index: int
    """Position in the observation vector (``next_obs[index]``) of its first value."""
    meaning: str = ""
    """What it measures, in a few words."""
    unit: str = ""
    low: float | None = None
    """Documented or observed lower bound (None where unbounded); of every element for an array field."""
    high: float | None = None
    shape: tuple[int, ...] = ()
    """() for a scalar; ``(2,)`` for a vector of two values from ``index`` (read as a read-only array)."""
    integer: bool = False
    """The values are ints (a Discrete observation reads as an int, a MultiDiscrete as an int array)."""

    @property
    def size(self) -> int:
        """How many values of the flat vector it covers."""
        return math.prod(self.shape) if isinstance(self.shape, tuple) else 1

    @property
    def nested(self) -> bool:
        """A nested Dict key (``robot.joint_pos``)."""
        return "." in self.name

    @property
    def span(self) -> str:
        """Where it sits, for people: ``3`` for a scalar, ``3:5`` for a vector."""
        return str(self.index) if not self.shape else f"{self.index}:{self.index + self.size}"


@dataclass(frozen=True)
class TerminationCause:
    """A named reason an episode ends, tested on its last observation and info."""

    name: str
    """snake_case, e.g. ``pole_fell``."""
    description: str
    test: Callable[[NamedValues, dict[str, Any]], bool]
    """True when a terminated episode ended for this reason."""


@dataclass(frozen=True)
class ShapingHint:
    """One term the built-in designer may compose into a reward.

    ``expr`` is a Python expression in the reward contract's vocabulary (``obs``, ``action``,
    ``next_obs``, ``info``, ``math``, ``np``).
    """

    name: str
    expr: str
    kind: Literal["error", "gain", "flag", "constant"]
    """error: a non-negative quantity to drive to zero; gain: a quantity to raise;
    flag: a condition that pays ``weight`` when true; constant: paid every step."""
    scale: float = 1.0
    """Typical magnitude of ``expr``; the designer sets temperatures and gains from it."""
    weight: float = 1.0
    """Starting weight (negative for penalties on flags)."""
    optional: bool = False
    """The designer may leave it out."""
    doc: str = ""
    requires: tuple[str, ...] = ()
    """What the hint needs of the env beyond the fields its expression reads (those are checked anyway):
    ``"discrete_actions"``, ``"continuous_actions"``, or a field name. A hint that does not fit an env
    (a variant made with other ``make_kwargs``, say) is left out rather than failing every candidate."""
    progress: bool = False
    """Paid as the term's change over the step (its value at ``next_obs`` minus its value at ``obs``, a
    difference of potentials) rather than its value: moving toward what it pays for pays, staying there pays
    nothing, and over an episode it adds up to the change from first state to last, so it never makes
    lingering pay. Only for an ``expr`` that reads ``next_obs`` alone."""

    def misfit(self, spec: EnvSpec) -> str | None:
        """Why this hint does not fit ``spec``'s env, or None when it does."""
        if self.progress and (self.kind == "constant" or _names_read(self.expr) & {"obs", "action", "info"}):
            return "a progress term needs an expression of next_obs alone"
        names = set(spec.field_names)
        for needed in (*self.requires, *sorted(_fields_read(self.expr))):
            if needed in ("discrete_actions", "continuous_actions"):
                discrete = bool(spec.facts().get("discrete"))
                if discrete != (needed == "discrete_actions"):
                    return f"needs {needed.replace('_', ' ')}"
            elif needed not in names:
                return f"reads field {needed!r}, which {spec.name} does not have"
        return None


def usable_hints(spec: EnvSpec, task: TaskSpec) -> tuple[ShapingHint, ...]:
    """The env's and the task's hints that fit this env (:meth:`ShapingHint.misfit`)."""
    return tuple(h for h in spec.hints + task.hints if h.misfit(spec) is None)


def _parsed(expr: str) -> list[ast.AST]:
    """Every node of ``expr``; none where it does not parse (the critic says why)."""
    try:
        return list(ast.walk(ast.parse(expr, mode="eval")))
    except SyntaxError:
        return []


def _fields_read(expr: str) -> set[str]:
    """The field names ``expr`` reads as ``obs.NAME`` or ``next_obs.NAME``."""
    return {node.attr for node in _parsed(expr)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id in ("obs", "next_obs")}


def _names_read(expr: str) -> set[str]:
    """The bare names ``expr`` reads (``next_obs``, ``math``, ``info``, …)."""
    return {node.id for node in _parsed(expr) if isinstance(node, ast.Name)}


MIN_UPDATES = 10
"""Updates a training of the budget gets at least, where the spec leaves PPO's rollout length to be chosen."""

ACTIVATIONS = ("tanh", "relu", "elu", "leaky_relu", "gelu", "silu")
"""Activation functions a policy may use (``torch.nn`` classes by their lower-case name)."""


@dataclass(frozen=True)
class PPOConfig:
    """PPO settings that learn this env in a short budget (rl-baselines3-zoo's tuned values).

    A training always runs whole rollouts (``n_envs * n_steps`` steps per update), so a budget is
    rounded down to whole rollouts (at least one) by :meth:`round_budget`, and that rounded budget is
    the one shown, recorded and trained. A spec without tuned settings leaves ``n_steps`` to
    :meth:`fitted`, which picks it so that the budget gives at least ``MIN_UPDATES`` updates.
    """

    n_envs: int = 8
    n_steps: int | None = None
    """Steps per env per update; None: chosen from the budget (the largest power of two from 16 to 2048
    that still gives ``MIN_UPDATES`` updates)."""
    batch_size: int = 64
    n_epochs: int = 10
    gamma: float = 0.99
    gae_lambda: float = 0.95
    learning_rate: float = 3e-4
    linear_lr: bool = False
    """Decay the learning rate linearly to zero over the budget (zoo's ``lin_``)."""
    clip_range: float = 0.2
    linear_clip: bool = False
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    use_sde: bool = False
    sde_sample_freq: int = -1
    normalize_obs: bool = False
    """Normalise observations with running statistics (the zoo's ``normalize``)."""
    normalize_reward: bool = False
    """Scale rewards by the running spread of the discounted return, clipped at ±10, as the zoo's
    ``normalize`` does (VecNormalize's reward normalisation; the shaped reward gets the same scaling)."""
    log_std_init: float | None = None
    ortho_init: bool = True
    activation_fn: str = "tanh"
    """The policy's activation, one of ``ACTIVATIONS``."""
    net_arch: Any = None
    """The policy's layer sizes as SB3 takes them (``[64, 64]`` or ``{"pi": [...], "vf": [...]}``); None: SB3's."""
    timesteps: int = 50_000
    """Default training budget per candidate."""
    schedule_horizon: int | None = None
    """Steps over which linear schedules fall to zero (the zoo's ``n_timesteps``), whatever the budget,
    so a short training follows the tuned schedule instead of a compressed one."""

    def fitted(self, budget: int) -> PPOConfig:
        """These settings with ``n_steps`` chosen for a training of ``budget`` steps, where the spec left it open."""
        if self.n_steps is not None:
            return self
        n_steps = 16
        while n_steps < 2048 and self.n_envs * n_steps * 2 * MIN_UPDATES <= budget:
            n_steps *= 2
        return replace(self, n_steps=n_steps)

    def rollout(self, budget: int) -> int:
        """Environment steps per PPO update for a training of ``budget`` steps."""
        fitted = self.fitted(budget)
        return fitted.n_envs * int(fitted.n_steps or 1)

    def round_budget(self, budget: int) -> int:
        """``budget`` rounded down to whole rollouts, at least one: the steps a training really runs.

        Rounding again gives the same number, so the budget shown is the budget trained.
        """
        rollout = self.rollout(budget)
        return max(budget // rollout, 1) * rollout

    def sb3_kwargs(self, total_timesteps: int) -> dict[str, Any]:
        """Keyword arguments for ``stable_baselines3.PPO`` for a training of ``total_timesteps``."""
        fitted = self.fitted(total_timesteps)
        n_steps = int(fitted.n_steps or 1)
        lr: Any = self.learning_rate
        clip: Any = self.clip_range
        horizon = self.schedule_horizon or total_timesteps
        stretch = total_timesteps / horizon
        if self.linear_lr:
            lr = _Linear(self.learning_rate, stretch)
        if self.linear_clip:
            clip = _Linear(self.clip_range, stretch)
        policy_kwargs: dict[str, Any] = {}
        if self.log_std_init is not None:
            policy_kwargs["log_std_init"] = self.log_std_init
        if not self.ortho_init:
            policy_kwargs["ortho_init"] = False
        if self.activation_fn != "tanh":
            policy_kwargs["activation_fn"] = _activation(self.activation_fn)
        if self.net_arch is not None:
            policy_kwargs["net_arch"] = self.net_arch
        batch = min(self.batch_size, n_steps * self.n_envs)
        return dict(
            n_steps=n_steps,
            batch_size=batch,
            n_epochs=self.n_epochs,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            learning_rate=lr,
            clip_range=clip,
            ent_coef=self.ent_coef,
            vf_coef=self.vf_coef,
            max_grad_norm=self.max_grad_norm,
            use_sde=self.use_sde,
            sde_sample_freq=self.sde_sample_freq,
            policy_kwargs=policy_kwargs or None,
        )


def _activation(name: str) -> type:
    import torch.nn as nn

    return {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU,
            "silu": nn.SiLU}[name]


@dataclass(frozen=True)
class _Linear:
    """A picklable linear schedule from ``start`` towards zero.

    SB3 passes the remaining progress of the current training (1 → 0); ``stretch`` is this
    training's budget over the schedule's horizon, so the value falls by ``stretch`` of the way.
    """

    start: float
    stretch: float = 1.0

    def __call__(self, progress_remaining: float) -> float:
        return self.start * max(1.0 - (1.0 - progress_remaining) * self.stretch, 0.0)


def env_reward_fitness(episode: Episode) -> float:
    """The episode's return under the environment's own reward."""
    return episode.env_return


@dataclass(frozen=True)
class TaskSpec:
    """A goal on an environment, with the trusted fitness that measures it."""

    name: str
    description: str
    """The task text a designer receives when the user gives none."""
    fitness: FitnessFn
    fitness_doc: str
    """How fitness is computed, for people and for ``describe``."""
    solved: float
    """Mean fitness at or above which the task counts as solved."""
    reference_reward: str | None = None
    """A hand-written reward program (the human baseline); None means the env's own reward."""
    sparse_reward: str | None = None
    """The task's success signal alone, as a reward program (the sparse baseline)."""
    hints: tuple[ShapingHint, ...] = ()
    """Terms the built-in designer composes (added to the env's generic hints)."""
    default: bool = False
    """The env's own goal, measured by its own reward."""
    wrappers: tuple[Callable[[gym.Env], gym.Env], ...] = ()
    """Wrappers the task needs on the env (e.g. one that ignores the env's own termination)."""
    env_changes: str = ""
    """What ``wrappers`` change, in words the designer is told."""
    timesteps: int | None = None
    """The training budget this task needs, where it differs from the env's (``PPOConfig.timesteps``)."""
    terminations: tuple[str, ...] | None = None
    """The env's termination causes that can end this task's episodes (None: all of them); a task whose
    wrapper turns one off, or adds one, says which apply."""

    def applies(self, cause: TerminationCause) -> bool:
        return self.terminations is None or cause.name in self.terminations

    def budget(self, ppo: PPOConfig) -> int:
        """This task's training budget under ``ppo``, in whole rollouts (:meth:`PPOConfig.round_budget`)."""
        return ppo.round_budget(self.timesteps or ppo.timesteps)


@dataclass(frozen=True)
class EnvSpec:
    """What the designer may know about an environment."""

    name: str
    gym_id: str
    description: str
    fields: tuple[Field, ...]
    actions: str
    """What the actions mean."""
    reward_doc: str
    """The env's own reward, in words (reward code may read it as ``info["env_reward"]``)."""
    terminations: tuple[TerminationCause, ...]
    tasks: tuple[TaskSpec, ...]
    ppo: PPOConfig = PPOConfig()
    hints: tuple[ShapingHint, ...] = ()
    """Generic terms usable for any task on this env."""
    make_kwargs: dict[str, Any] = field(default_factory=dict)
    extra: str | None = None
    """The pip extra this env needs (``box2d``), if any."""
    source: str = "bundled"
    """Where the spec came from: ``bundled``, a file path, or ``introspected``."""
    termination_doc: str = ""
    """What ends an episode, in the env's own words, where no ``TerminationCause`` tests it."""
    introspection: Introspection | None = None
    """What probing the env showed (observed ranges, info keys, episode ends, its code): introspected envs only."""

    def __post_init__(self) -> None:
        # Fields are kept in index order, however the spec lists them, so everything that walks them
        # (describe, the analyzer) shows them as the observation holds them.
        # A field whose index is not an int sorts last; validate_spec refuses it with a clear message.
        object.__setattr__(self, "fields", tuple(sorted(
            self.fields, key=lambda f: (0, f.index) if isinstance(f.index, (int, np.integer)) else (1, 0))))

    @property
    def field_names(self) -> tuple[str, ...]:
        """The field names in index order."""
        return tuple(f.name for f in self.fields)

    @property
    def field_index(self) -> dict[str, int]:
        """Each field name with the observation index of its first value."""
        return {f.name: f.index for f in self.fields}

    @property
    def field_layout(self) -> dict[str, Slot]:
        """Each field name with its slot (index, shape, integer): how every named view binds its fields."""
        return {f.name: Slot(f.index, tuple(f.shape), bool(f.integer)) for f in self.fields}

    @property
    def default_task(self) -> TaskSpec:
        for task in self.tasks:
            if task.default:
                return task
        return self.tasks[0]

    def task(self, name: str | None) -> TaskSpec:
        """The task called ``name``, or the default task for None."""
        if name is None:
            return self.default_task
        for task in self.tasks:
            if task.name == name:
                return task
        names = ", ".join(t.name for t in self.tasks)
        raise UnknownTaskError(f"env {self.name!r} has no task {name!r}; its tasks: {names}")

    def make(self, task: TaskSpec | None = None, render_mode: str | None = None) -> gym.Env:
        """A fresh env, with the task's wrappers applied; its observation is the flat vector the fields
        name (an env whose observation is not a flat Box is wrapped in ``FlatObservation``)."""
        env = self.make_structured(task, render_mode)
        if not is_flat_box(env.observation_space) and space_problem(env.observation_space) is None:
            env = FlatObservation(env)
        return env

    def action_space(self, task: TaskSpec | None = None) -> gym.Space:
        """The action space of the task's env (a fresh env, made and closed to read it)."""
        env = self.make(task)
        try:
            return env.action_space
        finally:
            env.close()

    def make_structured(self, task: TaskSpec | None = None, render_mode: str | None = None) -> gym.Env:
        """A fresh env with the task's wrappers, its observation as the env gives it."""
        env = gym.make(self.gym_id, render_mode=render_mode, **self.make_kwargs)
        for wrap in (task.wrappers if task else ()):
            env = wrap(env)
        return env

    def termination_cause(self, final_obs: NamedValues, info: dict[str, Any], truncated: bool,
                          task: TaskSpec | None = None) -> str:
        """The name of the cause that ended an episode (``timeout`` when truncated)."""
        if truncated:
            return "timeout"
        for cause in self.terminations:
            if task is not None and not task.applies(cause):
                continue
            try:
                if cause.test(final_obs, info):
                    return cause.name
            except Exception:  # a spec predicate must never break an analysis
                continue
        return "terminated"

    def describe(self, task: TaskSpec | None = None, prompts_dir: Path | None = None) -> str:
        """The compact representation a designer receives (``rewardsmith describe``)."""
        template = template_env(prompts_dir).get_template("env.j2")
        return template.render(spec=self, task=task or self.default_task, facts=self.facts())

    def facts(self) -> dict[str, Any]:
        """What the env itself says: its action space in words and its time limit."""
        return _env_facts(self.gym_id, json.dumps(self.make_kwargs, sort_keys=True, default=repr))


@cache
def _env_facts(gym_id: str, make_kwargs_json: str) -> dict[str, Any]:
    """Keyed by the kwargs as JSON: a kwarg may be a list or a dict (``--env-kwargs goal=[1,2]``), not hashable."""
    env = gym.make(gym_id, **json.loads(make_kwargs_json))
    try:
        return {
            "action_space": describe_space(env.action_space),
            "discrete": isinstance(env.action_space, gym.spaces.Discrete),
            "max_episode_steps": env.spec.max_episode_steps if env.spec else None,
        }
    finally:
        env.close()


def describe_space(space: gym.Space) -> str:
    """A short human-readable description of a Gymnasium space."""
    if isinstance(space, gym.spaces.Discrete):
        return f"discrete: an int in 0..{int(space.n) - 1}"
    if isinstance(space, gym.spaces.Box):
        low = np.array2string(space.low, precision=3)
        high = np.array2string(space.high, precision=3)
        return f"continuous: a float array of shape {space.shape}, low {low}, high {high}"
    return str(space)


# ----------------------------------------------------------------------------- loading


def list_specs() -> list[EnvSpec]:
    """Every bundled spec, in name order (as written: not checked against its env)."""
    return sorted((_load_spec_file(str(path)) for path in _bundled_paths()), key=lambda s: s.name)


def _bundled_paths() -> list[Path]:
    return sorted(p for p in bundled_dir("envs").glob("*.py") if not p.name.startswith("_"))


def bundled_names() -> list[str]:
    return sorted(p.stem.replace("_", "-") for p in _bundled_paths())


def load_spec(name: str, kwargs: dict[str, Any] | None = None, paths: Sequence[str] = ()) -> EnvSpec:
    """An EnvSpec for any way of naming an env (``rewardsmith.envref``), checked against its env.

    ``kwargs`` go to the env's constructor (``gym.make``'s kwargs, or the class or factory call);
    ``paths`` go on ``sys.path`` first. A Gymnasium id that a bundled spec covers (its own id, or
    another id of the same env class, e.g. ``LunarLanderContinuous-v3``) keeps the bundled spec
    while the spec still fits the env made with those kwargs; otherwise the env is introspected.

    Raises:
        UnknownEnvError: nothing by that name exists.
        SpecError: the spec's fields do not fit the env's observation.
    """
    if not name or not name.strip():
        raise UnknownEnvError("an env name is required (try `rewardsmith envs`)")
    return _load_spec(name.strip(), json.dumps(kwargs or {}, sort_keys=True), tuple(paths))


@cache
def _load_spec(name: str, kwargs_json: str, paths: tuple[str, ...]) -> EnvSpec:
    from rewardsmith.envref import add_import_paths, import_location, register_callable, split_reference

    kwargs: dict[str, Any] = json.loads(kwargs_json)
    add_import_paths(paths)
    bundled = bundled_dir("envs") / f"{name.replace('-', '_')}.py"
    if bundled.is_file():
        return _with_kwargs(_checked_spec_file(str(bundled), "bundled"), kwargs)
    split = split_reference(name)
    if split is not None:
        where, what = split
        module = import_location(where)  # registers its envs, or holds the class or factory
        entry = getattr(module, what, None) if what.isidentifier() else None
        if callable(entry) and not isinstance(entry, EnvSpec):
            return _spec_for_id(register_callable(where, what, entry), kwargs)
        if what not in gym.registry:
            raise UnknownEnvError(f"{where!r} defines no env class or factory and registers no Gymnasium id "
                                  f"named {what!r}")
        return _spec_for_id(what, kwargs)
    if Path(name).suffix == ".py":
        if not Path(name).is_file():
            raise UnknownEnvError(f"spec file {name!r} does not exist")
        return _with_kwargs(_checked_spec_file(str(Path(name).resolve()), name), kwargs)
    return _spec_for_id(name, kwargs)


def _with_kwargs(spec: EnvSpec, kwargs: dict[str, Any], gym_id: str | None = None) -> EnvSpec:
    """``spec`` made with ``kwargs`` on top of its own (and under ``gym_id``), checked again where that changes it."""
    if not kwargs and gym_id in (None, spec.gym_id):
        return spec
    changed = replace(spec, gym_id=gym_id or spec.gym_id, make_kwargs={**spec.make_kwargs, **kwargs})
    validate_spec(changed)
    return changed


def _spec_for_id(gym_id: str, kwargs: dict[str, Any]) -> EnvSpec:
    """The bundled spec covering ``gym_id`` where it fits the env made with ``kwargs``, else an introspected one."""
    covering = _bundled_covering(gym_id)
    if covering is not None:
        try:
            return _with_kwargs(_checked_spec_file(covering, "bundled"), kwargs, gym_id)
        except SpecError:
            if not kwargs and gym_id == _load_spec_file(covering).gym_id:
                raise
    from rewardsmith.introspect import introspect

    return introspect(gym_id, make_kwargs=kwargs)


def _bundled_covering(gym_id: str) -> str | None:
    """The bundled spec file for ``gym_id``: its own, or one for the same registered env class with the same time
    limit (``LunarLanderContinuous-v3`` is LunarLander with ``continuous=True``; ``CartPole-v0``'s 200 steps
    would not fit the bundled tasks' thresholds)."""
    registered = gym.registry.get(gym_id)
    for path in _bundled_paths():
        bundled_id = _load_spec_file(str(path)).gym_id
        if bundled_id == gym_id:
            return str(path)
        bundled = gym.registry.get(bundled_id)
        if (registered is not None and bundled is not None and isinstance(registered.entry_point, str)
                and registered.entry_point == bundled.entry_point
                and registered.max_episode_steps == bundled.max_episode_steps):
            return str(path)
    return None


@cache
def _checked_spec_file(path: str, source: str) -> EnvSpec:
    spec = _load_spec_file(path)
    if source != spec.source:
        spec = replace(spec, source=source)
    validate_spec(spec)
    return spec


@cache
def _load_spec_file(path: str) -> EnvSpec:
    try:
        module = import_file(Path(path), "rewardsmith_envs")
    except Exception as exc:
        raise UsageError(f"spec file {path} failed to load: {type(exc).__name__}: {exc}") from exc
    if module is None:
        raise UnknownEnvError(f"cannot load spec file {path}")
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, EnvSpec):
        raise UsageError(f"spec file {path} defines no SPEC = EnvSpec(...)")
    return spec


def make_registered(gym_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make(gym_id)``, with each of Gymnasium's refusals turned into one line that says what to do.

    Gymnasium's own warnings while making (a deprecation, in ANSI colours) are dropped when making fails:
    the error says the same; they are passed on when it succeeds.

    Raises:
        UnknownEnvError: no env by that name, version or dependency.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            env = gym.make(gym_id, **kwargs)
        except gym.error.DependencyNotInstalled as exc:
            raise UnknownEnvError(f"env {gym_id!r} is registered but a dependency is missing: {exc}") from None
        except gym.error.DeprecatedEnv as exc:
            raise UnknownEnvError(f"env {gym_id!r} is an outdated version: {exc}") from None
        except gym.error.VersionNotFound as exc:
            raise UnknownEnvError(f"env {gym_id!r} has no such version: {exc}") from None
        except gym.error.Error as exc:
            known = ", ".join(bundled_names())
            raise UnknownEnvError(f"unknown env {gym_id!r}: bundled envs are {known}; "
                                  f"or give a registered Gymnasium id or a spec file ({exc})") from None
        except Exception as exc:  # the env's own constructor failed (a missing extra, say)
            raise UnknownEnvError(f"env {gym_id!r} could not be made: {type(exc).__name__}: {exc}") from None
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return env



# ----------------------------------------------------------------------------- checking a spec

RESERVED_FIELD_NAMES = frozenset({"keys", "items", "values", "get", "data", "row"})
"""Attributes the observation views already have: a field by one of these names would be hidden."""


def field_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name an observation field, or None when it can."""
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
        return "is not a Python identifier (use snake_case: letters, digits and _)"
    if keyword.iskeyword(name):
        return "is a Python keyword"
    if name.startswith("_"):
        return "starts with an underscore"
    if name in RESERVED_FIELD_NAMES:
        return "is already a method of the observation views"
    return None


def observation_size(space: gym.Space, env_label: str) -> int:
    """How many values the flat vector of ``space`` holds.

    Raises:
        SpecError: rewardsmith cannot read the space (a Text, Graph or Sequence observation, say).
    """
    problem = space_problem(space)
    if problem is None:
        return flat_size(space)
    shown = " ".join(str(space).split())
    shown = shown if len(shown) <= 120 else shown[:117] + "..."
    raise SpecError(f"{env_label} has observation space {shown}: {problem}")


def check_fields(fields: Sequence[Field], size: int, where: str) -> None:
    """Check a spec's fields against an observation of ``size`` values: together they cover each value once.

    Raises:
        SpecError: an invalid or duplicate name, an index that is not an int, a bad shape, a field that
            reaches past the observation or overlaps another, or values no field names.
    """
    seen_names: set[str] = set()
    owner: dict[int, Field] = {}
    for f in fields:
        label = _short_repr(f.name)
        problem = next((p for p in map(field_name_problem, str(f.name).split(".")) if p), None) \
            if isinstance(f.name, str) and f.name else field_name_problem(f.name)
        if problem:
            raise SpecError(f"{where}: field name {label} {problem}")
        if f.name in seen_names:
            raise SpecError(f"{where}: field name {label} is used twice")
        seen_names.add(f.name)
        if isinstance(f.index, bool) or not isinstance(f.index, (int, np.integer)):
            raise SpecError(f"{where}: field {label} has index {_short_repr(f.index)}; an index is an int")
        if not isinstance(f.shape, tuple) or not all(type(n) is int and n > 0 for n in f.shape):
            raise SpecError(f"{where}: field {label} has shape {_short_repr(f.shape)}; a shape is a tuple of "
                            "positive ints, () for a scalar")
        end = int(f.index) + f.size
        if not 0 <= f.index or end > size:
            span = f"index {f.index}" if not f.shape else f"values {f.index}..{end - 1} (shape {f.shape})"
            raise SpecError(f"{where}: field {label} has {span}, but the observation has {size} values "
                            f"(indices 0..{size - 1})")
        for i in range(int(f.index), end):
            if i in owner:
                what = f"have index {i}" if not f.shape and not owner[i].shape else f"cover value {i}"
                raise SpecError(f"{where}: fields {_short_repr(owner[i].name)} and {label} both {what}")
            owner[i] = f
    if len(owner) != size:
        missing = ", ".join(str(i) for i in range(size) if i not in owner)
        missing = missing if len(missing) <= 80 else missing[:77] + "..."
        if all(not f.shape for f in fields):
            raise SpecError(f"{where}: the spec names {len(fields)} fields but the observation has {size} values; "
                            f"name every index (missing: {missing})")
        raise SpecError(f"{where}: the spec's fields cover {len(owner)} of the observation's {size} values; "
                        f"name every value (missing: {missing})")


def validate_spec(spec: EnvSpec) -> None:
    """Check ``spec`` against its env's real observation space (the env and each task's wrapped env).

    Raises:
        SpecError: the env cannot be made, its observation is not one rewardsmith reads, or the fields
            do not fit it.
    """
    where = f"spec {spec.name!r}" if spec.source == "bundled" else f"spec file {spec.source}"
    wrapped = [task for task in spec.tasks if task.wrappers]
    for task in [None, *wrapped]:
        label = spec.gym_id if task is None else f"{spec.gym_id} with task {task.name!r}'s wrappers"
        try:
            env = spec.make_structured(task)
        except Exception as exc:  # the env's own constructor, or a wrapper, failed
            extra = f" (it needs the {spec.extra} extra: pip install 'rewardsmith[{spec.extra}]')" if spec.extra else ""
            message = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            raise SpecError(f"{where}: {label} could not be made{extra}: {message}") from None
        try:
            size = observation_size(env.observation_space, f"{where}: {label}")
        finally:
            env.close()
        check_fields(spec.fields, size, f"{where} ({label})" if task is not None else where)


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
