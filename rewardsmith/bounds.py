"""How much of one candidate's untrusted text the host shows again: in prompts, ``analysis.json`` and the report.

The sandbox bounds what a program can produce in the first place (``sandbox.protocol``: at most
``MAX_COMPONENTS`` distinct component names over its life, each at most ``MAX_COMPONENT_NAME``
characters; ``SandboxLimits.print_cap`` characters of ``print`` output per batch; ``CompileLimits``
64 000 bytes of source; ``Issue`` messages of at most 4 000 characters). A run repeats that text in
every later prompt, in the analysis and in the report, once per candidate and repair, so these
caps keep what one candidate adds to a run small whatever it sends.
"""

from __future__ import annotations

__all__ = ["DIFF_ROWS", "REFLECTION_SHOWN", "SOURCE_SHOWN", "TERMS_SHOWN", "TEXT_SHOWN", "clip"]

SOURCE_SHOWN = 12_000
"""Characters of a program's source shown in the reflection and in the report (its ``reward.py``
keeps all of it). A reward function is typically 1-3 kB; four times the longest seen leaves room."""

DIFF_ROWS = 400
"""Rows of one diff shown in the report (a diff between two long programs is as long as both)."""

REFLECTION_SHOWN = 6_000
"""Characters of an analysis' reflection (``prompts/analysis.j2``) carried into the next prompt and the
report: a few lines per component, with room for all ``MAX_COMPONENTS`` of them."""

TERMS_SHOWN = 8
"""Component names listed for each other program in the reflection."""

TEXT_SHOWN = 2_000
"""Characters of one free text shown or stored again: a failure's reason or traceback, a message in
the report, the printed output the critic keeps."""


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters not shown)"
