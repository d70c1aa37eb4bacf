"""Untrusted text as terminal-safe Rich text, and the control characters a reward program may not hold.

Anything an LLM reply, a reward program or a fitness wrote (source, component names, exception
messages, printed text, reasons) is data: renderers turn it into a :class:`rich.text.Text` with
:func:`literal`, which Rich never parses as markup, after :func:`sanitize` has shown every terminal
control character as an escape (``\\x1b``) instead of letting it act. No untrusted string is ever
interpolated into a markup string.
"""

from __future__ import annotations

from rich.text import Text

from rewardsmith.sandbox.issues import sanitize

__all__ = ["control_characters", "literal", "one_line", "safe_line", "sanitize"]


def literal(text: object, style: str = "") -> Text:
    """``text`` shown exactly as written: no markup, no terminal control (shown as escapes)."""
    return Text(sanitize(str(text)), style=style)


def one_line(text: object, limit: int | None = None) -> str:
    """``text`` on one line (every run of whitespace, newlines included, as one space), cut to ``limit``
    characters ending in ``…`` when longer."""
    line = " ".join(str(text).split())
    return line if limit is None or len(line) <= limit else line[:limit - 1] + "…"


def safe_line(text: object) -> str:
    """``text`` safe inside one ``#`` comment or one terminal line: one line, control characters shown as escapes.

    A task text or a docstring may hold a newline; written raw into a comment it would end the comment
    and put its text into the file as code.
    """
    return sanitize(one_line(text))


def control_characters(source: str) -> list[tuple[int, str]]:
    """``(line, character)`` for every character of ``source`` that could drive a terminal.

    The same characters :func:`sanitize` escapes: C0 controls but tab and newline, DEL, C1
    controls, bidirectional overrides and isolates, lone surrogates. A carriage return is allowed
    only as half of a CRLF line ending; alone it moves the cursor back and lets printed code
    overwrite its own line.
    """
    found = []
    for number, line in enumerate(source.split("\n"), 1):
        body = line[:-1] if line.endswith("\r") else line
        if sanitize(body) != body:  # fast path: most lines are clean
            found.extend((number, char) for char in body if sanitize(char) != char)
    return found
