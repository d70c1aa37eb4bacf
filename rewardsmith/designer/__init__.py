"""Designers produce candidate reward programs: the built-in offline one, or an LLM."""

from __future__ import annotations

from typing import Any

from rewardsmith.designer.base import DesignContext, Designer, Proposal, Usage
from rewardsmith.designer.builtin import BuiltinDesigner

__all__ = ["BuiltinDesigner", "DesignContext", "Designer", "Proposal", "Usage", "make_designer"]


def make_designer(name: str, options: dict[str, Any] | None = None, run_dir: Any = None) -> Designer:
    """The designer called ``name``, built from the options recorded in run.json.

    ``run`` and ``resume`` both build their designer here, so a resumed run gets the same one.
    """
    from rewardsmith.errors import UsageError

    if name == "builtin":
        return BuiltinDesigner()
    raise UsageError(f"unknown designer {name!r}; choose builtin")
