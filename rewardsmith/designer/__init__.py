"""Designers produce candidate reward programs: the built-in offline one, or an LLM."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rewardsmith.designer.base import DesignContext, Designer, Proposal, Review, Usage
from rewardsmith.designer.builtin import BuiltinDesigner
from rewardsmith.designer.endpoint import LLMOptions
from rewardsmith.designer.llm import LLMDesigner

if TYPE_CHECKING:
    from rewardsmith.runs import RunDir

__all__ = ["BuiltinDesigner", "DesignContext", "Designer", "LLMDesigner", "LLMOptions", "Proposal", "Review", "Usage",
           "designer_for_run", "make_designer"]


def make_designer(name: str, options: LLMOptions | None = None, run_dir: RunDir | None = None) -> Designer:
    """The designer called ``name``; ``openai`` needs its options.

    ``run`` builds its designer here and ``resume`` through :func:`designer_for_run`, so a resumed run
    gets the same one.
    """
    from rewardsmith.errors import UsageError

    if name == "builtin":
        return BuiltinDesigner()
    if name == "openai":
        return LLMDesigner(options if options is not None else LLMOptions(), run_dir)
    raise UsageError(f"unknown designer {name!r}; choose builtin or openai")


def designer_for_run(run: RunDir) -> Designer:
    """The designer a run recorded in its run.json (name and options), rebuilt to go on with it."""
    info = run.read_run()
    name = info.get("designer", "builtin")
    options = LLMOptions.from_dict(info.get("designer_options")) if name == "openai" else None
    return make_designer(name, options, run)
