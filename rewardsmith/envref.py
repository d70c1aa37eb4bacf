"""How a user names an environment, and how to build the same env again anywhere.

One way to name any env, the same for every command (``--env``)::

    cartpole                    a bundled spec
    my_spec.py                  a spec file (its folder is importable: it may import a module beside it)
    LunarLander-v3              a registered Gymnasium id
    some_pkg:Some-v0            the same, with the module that registers it imported first (Gymnasium's convention)
    path/to/envs.py:RoverEnv    a class or factory in a file
    my_pkg.envs:make_rover      a class or factory in a module

The current directory (and a spec file's or env file's folder) go on ``sys.path``; the reference is
recorded in absolute form with those folders, so workers and later commands run from any directory
import the same modules. A class or factory is registered with Gymnasium under ``MODULE/NAME``, so
everything downstream builds it with ``gym.make`` like any other env.

:func:`env_build` records how an env was built (the registered id, its entry point as an import
path, the kwargs, the task's wrappers) as plain data: what ``run.json`` keeps and what the exported
module's ``make_env()`` replays without rewardsmith.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym

from rewardsmith.errors import UnknownEnvError, UsageError
from rewardsmith.resources import import_file

__all__ = [
    "absolute_env_reference",
    "add_import_paths",
    "env_build",
    "import_location",
    "parse_env_kwargs",
    "register_callable",
    "split_reference",
]

USER_MODULE_PREFIX = "rewardsmith_user"
"""Module-name prefix of user files imported by path (an env file; see :func:`import_location`)."""


# ------------------------------------------------------------------------------ parsing what the user typed


def parse_env_kwargs(values: Sequence[str] | None) -> dict[str, Any]:
    """``--env-kwargs`` values as one dict: each a JSON object, or ``key=value`` (value parsed as JSON where it can be).

    Raises:
        UsageError: a value is neither.
    """
    kwargs: dict[str, Any] = {}
    for value in values or ():
        text = value.strip()
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise UsageError(f"--env-kwargs {_clip(text)}: not a JSON object ({exc.msg})") from None
            if not isinstance(data, dict):
                raise UsageError(f"--env-kwargs {_clip(text)}: not a JSON object")
            kwargs.update(data)
            continue
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UsageError(f"--env-kwargs takes a JSON object or key=value, got {_clip(text)}")
        try:
            kwargs[key] = json.loads(raw)
        except json.JSONDecodeError:
            kwargs[key] = raw  # a bare word: a string
    return kwargs


def split_reference(name: str) -> tuple[str, str] | None:
    """``(where, what)`` for ``WHERE:WHAT`` (a module or ``.py`` file, then an attribute or a Gymnasium id), else None."""
    where, sep, what = name.rpartition(":")
    if not sep or not where or not what:
        return None
    return where, what


def absolute_env_reference(name: str, cwd: Path | None = None) -> tuple[str, tuple[str, ...]]:
    """``name`` with file paths made absolute, and the folders it needs on ``sys.path``.

    A spec or env file's folder comes first (a module beside it imports), then the current directory.
    Bundled names and plain Gymnasium ids need none.
    """
    name = name.strip()
    cwd = (cwd or Path.cwd()).resolve()
    split = split_reference(name)
    if split is not None:
        where, what = split
        if where.endswith(".py"):
            path = (cwd / where).resolve()
            return f"{path}:{what}", _unique((str(path.parent), str(cwd)))
        return name, (str(cwd),)
    if name.endswith(".py"):
        path = (cwd / name).resolve()
        return str(path), _unique((str(path.parent), str(cwd)))
    return name, ()


def _unique(paths: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(paths))


# ------------------------------------------------------------------------------ importing


def add_import_paths(paths: Iterable[str]) -> None:
    """Put ``paths`` at the front of ``sys.path`` (as ``python -m`` puts the current directory), once each."""
    for path in reversed(tuple(paths)):
        if path not in sys.path:
            sys.path.insert(0, path)


def import_location(where: str) -> ModuleType:
    """The module at ``where``: a ``.py`` file path (imported once per process) or a dotted module name.

    Raises:
        UnknownEnvError: it does not exist or fails to import (one line).
    """
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise UnknownEnvError(f"env file {where!r} does not exist")
            return _import_file_once(str(path.resolve()))
        return importlib.import_module(where)
    except UnknownEnvError:
        raise
    except Exception as exc:
        message = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise UnknownEnvError(f"cannot import {where!r}: {message} (the current directory and a spec file's "
                              "folder are importable)") from None


@cache
def _import_file_once(path: str) -> ModuleType:
    module = import_file(Path(path), USER_MODULE_PREFIX)
    if module is None:
        raise UnknownEnvError(f"cannot load env file {path}")
    return module


def register_callable(where: str, attr: str, entry: Callable[..., Any]) -> str:
    """Register a user's env class or factory with Gymnasium; return its id (``MODULE/NAME``, dots as ``_``).

    The same entry point keeps its id; another one under the same name gets a numbered id.
    """
    namespace = re.sub(r"[^\w-]", "_", Path(where).stem if where.endswith(".py") else where)
    base = f"{namespace}/{attr}"
    for n in range(1, 1000):
        env_id = base if n == 1 else f"{base}-{n}"
        registered = gym.registry.get(env_id)
        if registered is None:
            gym.register(env_id, entry_point=entry)
            return env_id
        if registered.entry_point is entry:
            return env_id
    raise UsageError(f"too many different envs named {base!r} in one process")


# ------------------------------------------------------------------------------ recording how it was built


def env_build(gym_id: str, make_kwargs: dict[str, Any], wrappers: Sequence[Callable[..., Any]],
              paths: Sequence[str]) -> dict[str, Any]:
    """How to build this env again without rewardsmith: plain data for ``run.json`` and the export's ``make_env``.

    ``entry_point`` is None for Gymnasium's own envs; otherwise it is ``module:attr`` or
    ``/abs/file.py:attr`` and ``registration`` holds what ``gym.register`` needs.
    """
    registered = gym.spec(gym_id)
    entry = registered.entry_point
    location: str | None
    if isinstance(entry, str):
        location = None if entry.startswith("gymnasium.") else entry
    elif entry is None:
        location = None
    else:
        location = callable_location(entry)
    registration = {
        "max_episode_steps": registered.max_episode_steps,
        "reward_threshold": registered.reward_threshold,
        "nondeterministic": registered.nondeterministic,
        "order_enforce": registered.order_enforce,
        "disable_env_checker": registered.disable_env_checker,
        "kwargs": _json_or_none(registered.kwargs) or {},
    }
    return {
        "id": registered.id,
        "kwargs": dict(make_kwargs),
        "entry_point": location,
        "registration": registration if location else None,
        "paths": list(paths),
        "wrappers": [callable_location(wrap) for wrap in wrappers],
    }


def callable_location(obj: Callable[..., Any]) -> str:
    """``module:qualname``, or ``/abs/file.py:qualname`` where the module was imported from a file by path."""
    module_name = getattr(obj, "__module__", "") or ""
    qualname = getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj)))
    module = sys.modules.get(module_name)
    by_name = module_name and not module_name.startswith("rewardsmith_") and module_name != "__main__"
    if by_name and module is not None and _importable_by_name(module_name):
        return f"{module_name}:{qualname}"
    try:
        source = inspect.getsourcefile(obj)
    except TypeError:
        source = None
    if source:
        return f"{Path(source).resolve()}:{qualname}"
    return f"{module_name}:{qualname}"


def _importable_by_name(module_name: str) -> bool:
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False


def _json_or_none(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value


def _clip(text: str) -> str:
    text = repr(text)
    return text if len(text) <= 80 else text[:77] + "..."
