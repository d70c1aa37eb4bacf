"""Where the bundled prompts and env specs live, installed or in a checkout.

A wheel carries ``prompts/`` and ``envs/`` inside the package as ``rewardsmith/_bundled/``;
an editable install or a bare checkout reads them from the repository's top level.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

__all__ = ["bundled_dir", "template_env"]

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
