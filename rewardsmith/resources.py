"""Where the bundled prompts and env specs live, installed or in a checkout; loading trusted Python files.

A wheel carries ``prompts/`` and ``envs/`` inside the package as ``rewardsmith/_bundled/``;
an editable install or a bare checkout reads them from the repository's top level.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import jinja2

__all__ = ["bundled_dir", "import_file", "template_env"]

_PACKAGE = Path(__file__).resolve().parent


def bundled_dir(name: str) -> Path:
    """The directory of bundled ``prompts`` or ``envs``."""
    for candidate in (_PACKAGE / "_bundled" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"rewardsmith's bundled {name}/ directory is missing from {_PACKAGE}")


def template_env(override: Path | None = None) -> jinja2.Environment:
    """A Jinja2 environment over the bundled prompts, with ``override`` searched first."""
    search = [str(override)] if override else []
    search.append(str(bundled_dir("prompts")))
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(search),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def import_file(path: Path, prefix: str) -> ModuleType | None:
    """Import a trusted Python file (an env spec, a fitness) as a uniquely named module.

    The module is registered in ``sys.modules`` so that functions and classes defined in it pickle across
    processes; it is removed again if the file fails to run, whose exception propagates. None when
    Python has no loader for the file. The name comes from the file's content, so every process (a pool
    worker, a Ray worker on another machine) that imports the same file names it alike: a paused rung's
    state, which refers to the spec's wrapper classes by module name, loads in any of them.
    """
    digest = hashlib.sha256(path.read_bytes() if path.is_file() else str(path.resolve()).encode()).hexdigest()[:16]
    name = f"{prefix}_{path.stem}_{digest}"
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        return None
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module
    try:
        loader_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
