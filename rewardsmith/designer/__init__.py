"""Designers produce candidate reward programs: the built-in offline one, or an LLM."""

from rewardsmith.designer.base import DesignContext, Designer, Proposal, Usage
from rewardsmith.designer.builtin import BuiltinDesigner

__all__ = ["BuiltinDesigner", "DesignContext", "Designer", "Proposal", "Usage"]
