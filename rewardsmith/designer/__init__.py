"""Designers produce candidate reward programs: the built-in offline one, or an LLM."""

from __future__ import annotations

from typing import Any

from rewardsmith.designer.base import DesignContext, Designer, Proposal, Review, Usage
from rewardsmith.designer.builtin import BuiltinDesigner
from rewardsmith.designer.llm import LLMDesigner, LLMOptions

__all__ = ["BuiltinDesigner", "DesignContext", "Designer", "LLMDesigner", "LLMOptions", "Proposal", "Review", "Usage",
           "make_designer"]


def make_designer(name: str, options: dict[str, Any] | None = None, run_dir: Any = None) -> Designer:
    """The designer called ``name``, built from the options recorded in run.json.

    ``run`` and ``resume`` both build their designer here, so a resumed run gets the same one.
    """
    from rewardsmith.errors import UsageError

    if name == "builtin":
        return BuiltinDesigner()
    if name == "openai":
        return LLMDesigner(LLMOptions.from_dict(options), run_dir)
    raise UsageError(f"unknown designer {name!r}; choose builtin or openai")
