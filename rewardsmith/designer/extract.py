"""Taking the reward program out of an LLM's reply.

Real replies come in many shapes: a ```` ```python ```` block, ```` ```py ````, a bare fence, several
blocks (helpers in one, ``compute_reward`` in another, a usage example in a third), no fence at all,
a ``<think>…</think>`` section with its own drafts before the answer, or a reply cut off by the
token limit. :func:`extract_program` handles each and returns either a program or a refusal worded
so the LLM can act on it:

* the block that defines ``compute_reward`` is taken (the last one, when a reply revises itself),
  with the constants, helpers and imports it uses from the reply's other blocks;
* code inside the reasoning section is ignored: it holds drafts, not the answer;
* example calls, ``if __name__ == "__main__":`` sections and prints at the top level are dropped;
  ``import numpy as np`` / ``import math`` are added when the program uses them without importing;
* a reply cut off inside its program is refused as ``truncated`` (only when it holds no complete
  program: a complete block followed by a cut-off copy yields the complete one); prose without code
  as ``no_code``; code without ``compute_reward`` as ``no_compute_reward``.

``function="fitness"`` takes a fitness program (``fitness(episode)``) out of a reply the same way.

No code from the reply is ever run here: only parsed. The reply is untrusted and this runs on the
host, so nothing here may crash or hang on it: a reply over :data:`MAX_REPLY_CHARS` is refused as
``too_large`` unread, code the parser gives up on (nesting that exhausts its stack or memory, null
bytes) is refused as ``unparsable``, every regular expression is linear in its input, and the
search for unfenced code tries at most :data:`_MAX_REGION_TRIES` cuts.
"""

from __future__ import annotations

import ast
import builtins
import re
import textwrap
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

from rewardsmith.sandbox import Issue

__all__ = ["MAX_REPLY_CHARS", "Extraction", "extract_program", "strip_reasoning"]

MAX_REPLY_CHARS = 200_000
"""The longest reply examined, in characters (about 50 000 tokens; the default ``--max-tokens`` of 4096
gives about 16 000). A longer one is refused as ``too_large`` without being read, so the work done on
any reply stays bounded (well under a second)."""
_MAX_REGION_TRIES = 64
"""Cuts of unfenced code tried with the parser (one parse each) before it is refused as not parsing."""
_MAX_SHOWN_CHARS = 64_000
"""The longest code kept in a refusal for the repair prompt (the sandbox refuses longer programs anyway)."""

# Every pattern here is linear in its input: no two adjacent or nested quantifiers can match the same text.


class _Target(NamedTuple):
    """The function a reply must define: its name, how it is called, what it returns, the code of its absence."""

    name: str
    call: str
    returns: str
    missing: str


_TARGETS = {
    "compute_reward": _Target("compute_reward", "compute_reward(obs, action, next_obs, info)",
                              "returns (total, components)", "no_compute_reward"),
    "fitness": _Target("fitness", "fitness(episode)", "returns one number", "no_fitness"),
}


@cache
def _def_pattern(name: str) -> re.Pattern[str]:
    return re.compile(r"^[ \t]*def[ \t]+" + re.escape(name) + r"[ \t]*\(", re.MULTILINE)


_PYTHON_INFO = re.compile(r"^(?:py|python|ipython)[\d.]*$|^$", re.IGNORECASE)
_THINK_TAGS = ("think", "thinking", "reasoning", "thought")
_OPEN_THINK = re.compile(r"<(?P<tag>" + "|".join(_THINK_TAGS) + r")>", re.IGNORECASE)
_CODEISH = re.compile(
    r"""^(?:import[ \t]+\w|from[ \t]+[\w.]+[ \t]+import[ \t]|def[ \t]+\w+[ \t]*\(|@\w|\#|"{3}|'{3}|"""
    r"""[A-Za-z_][\w.]*(?:[ \t]*,[ \t]*[A-Za-z_]\w*)*[ \t]*(?::[^=\n]*)?=(?!=)|if[ \t]+__name__)"""
)
_BUILTINS = frozenset(dir(builtins))
_AUTO_IMPORTS = {"np": "import numpy as np", "numpy": "import numpy", "math": "import math"}
_TRUNCATED_HINT = ("write a shorter reply: a sentence or two of explanation, then the complete program in one "
                   "```python block, with no drafts or alternatives")


@dataclass(frozen=True)
class Extraction:
    """What a reply yielded: a program, or the reason there is none."""

    source: str
    """The program to check (for a refusal: the partial code found, if any)."""
    refusal: Issue | None = None
    """Why no program could be taken; None when ``source`` is the answer."""
    note: str = ""
    """The reply's own explanation, shortened to a sentence (what the candidate tries)."""

    @property
    def ok(self) -> bool:
        return self.refusal is None


@dataclass(frozen=True)
class _Block:
    info: str
    code: str
    closed: bool

    @property
    def python(self) -> bool:
        return bool(_PYTHON_INFO.match(self.info.split()[0] if self.info.strip() else ""))

    def defines(self, target: _Target) -> bool:
        return bool(_def_pattern(target.name).search(self.code))


def extract_program(reply: str | None, finish_reason: str | None = "stop",
                    function: str = "compute_reward") -> Extraction:
    """The reward program in ``reply`` (or with ``function="fitness"`` the fitness program), or a refusal saying
    what was wrong with the reply.

    Never raises on any text: a reply too large to read, or code the parser gives up on, is a refusal.

    Args:
        reply: the assistant message's text (None when the server sent no content).
        finish_reason: the choice's ``finish_reason``; ``"length"`` means the token limit cut it off.
    """
    text = reply or ""
    if len(text) > MAX_REPLY_CHARS:
        return _refuse("too_large", f"the reply is {len(text)} characters long and at most {MAX_REPLY_CHARS} are "
                                    f"read; {_TRUNCATED_HINT}")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        return _extract(text, finish_reason, _TARGETS[function])
    except _Unparsable as exc:
        return _refuse("unparsable", str(exc), source=exc.source)
    except (RecursionError, MemoryError) as exc:  # a parsed tree too deep for a later step
        return _refuse("unparsable", _unparsable_reason(exc))


def _extract(text: str, finish_reason: str | None, target: _Target) -> Extraction:
    definition = _def_pattern(target.name)
    cut = finish_reason == "length"
    reasoning, answer, unclosed = _split_reasoning(text)
    blocks = _fenced_blocks(answer)
    prose = _outside_fences(answer, blocks)
    note = _note(prose)
    if unclosed and not answer.strip():
        if cut:
            return _refuse("truncated", "the reply was cut off by the token limit while still reasoning, before "
                                        f"any program; {_TRUNCATED_HINT}", note=note)
        return _refuse("no_code", "the reply ended inside its reasoning section (<think> was never closed) and "
                                  "gave no program; close the reasoning, then give the program in one ```python "
                                  "block", note=note)
    candidates = [b for b in blocks if b.defines(target) and (b.python or f"def {target.name}" in b.code)]
    if candidates:
        # Only the last block can be cut off (an unclosed fence runs to the end of the reply): a complete
        # program before it is the answer, and the fragment is not borrowed from.
        complete = [b for b in candidates if _complete(b, finish_reason)]
        chosen = complete[-1] if complete else candidates[-1]
        code = textwrap.dedent(chosen.code)
        if not complete:
            return _refuse("truncated", "the reply was cut off (the code block is never closed" +
                           (" and the token limit was reached" if cut else "") + f"); {_TRUNCATED_HINT}",
                           source=code, note=note)
        others = [b for b in blocks if b is not chosen and (b.python or b.defines(target)) and
                  _complete(b, finish_reason)]
        return _assemble(code, [textwrap.dedent(b.code) for b in others], note, target.name)
    if definition.search(prose):
        region, reaches_end = _unfenced_region(prose, definition)
        if region is None or (cut and reaches_end):
            partial = region or _from_def(answer, definition)
            if cut:
                return _refuse("truncated", f"the reply was cut off by the token limit inside the program; "
                                            f"{_TRUNCATED_HINT}", source=partial, note=note)
            return _refuse("syntax", "the reply's code outside any fence does not parse as Python; give the "
                                     "complete program in one ```python block", source=partial, note=note)
        return _assemble(region, [textwrap.dedent(b.code) for b in blocks if b.python], note, target.name)
    python_blocks = [b for b in blocks if b.python]
    if python_blocks:
        if cut and not python_blocks[-1].closed:
            return _refuse("truncated", f"the reply was cut off by the token limit before {target.name} was "
                                        f"written; {_TRUNCATED_HINT}", source=python_blocks[-1].code, note=note)
        names = sorted({n for b in python_blocks for n in _defined_functions(b.code)})
        found = f" (it defines {', '.join(names)})" if names else ""
        return _refuse(target.missing, f"the reply's code never defines {target.name}{found}; name the "
                                       f"function `{target.call}`",
                       source=textwrap.dedent(python_blocks[-1].code), note=note)
    if definition.search(reasoning):
        return _refuse("no_code", "the program appears only inside the reasoning section (<think>…</think>), "
                                  "which is not read as the answer; after the reasoning, give the final program "
                                  "in one ```python block", note=note)
    if cut:
        return _refuse("truncated", f"the reply was cut off by the token limit before any code; {_TRUNCATED_HINT}",
                       note=note)
    return _refuse("no_code", "the reply contains no Python code; answer with one ```python block that defines "
                              f"{target.call} and {target.returns}",
                   note=note)


def _complete(block: _Block, finish_reason: str | None) -> bool:
    """Whether ``block`` holds all its author wrote: closed, or left open by a reply that ended normally and parses."""
    if block.closed:
        return True
    if finish_reason not in ("stop", "eos", "end_turn"):
        return False
    return _parses(textwrap.dedent(block.code))


def _refuse(code: str, message: str, source: str = "", note: str = "") -> Extraction:
    return Extraction(source, Issue(code, message), note)


# ------------------------------------------------------------------------------------------ parsing


class _Unparsable(Exception):
    """The parser gave up on the reply's code (not a syntax error: those go to the critic, with a line)."""

    def __init__(self, reason: str, source: str) -> None:
        super().__init__(reason)
        self.source = source if len(source) <= _MAX_SHOWN_CHARS else ""


def _unparsable_reason(exc: BaseException) -> str:
    if isinstance(exc, (RecursionError, MemoryError)):
        return (f"the reply's code could not be parsed ({type(exc).__name__}): an expression or block nests far "
                "too deeply; write it with named intermediate values")
    return f"the reply's code could not be parsed ({type(exc).__name__}: {str(exc)[:200]}); give plain Python text"


def _parse(code: str) -> ast.Module | None:
    """``code``'s tree, or None for a syntax error.

    Raises:
        _Unparsable: the parser itself failed (too deep for its stack, out of memory, a null byte).
    """
    if "\x00" in code:  # a ValueError or a SyntaxError, depending on the Python version
        raise _Unparsable("the reply's code contains a null byte; give plain Python text", code)
    try:
        return ast.parse(code)
    except SyntaxError:
        return None
    except (RecursionError, MemoryError, ValueError, OverflowError) as exc:
        raise _Unparsable(_unparsable_reason(exc), code) from None


def _parses(code: str) -> bool:
    return _parse(code) is not None


# ------------------------------------------------------------------------------- reasoning, fences


def strip_reasoning(text: str) -> str:
    """``text`` without its ``<think>…</think>`` sections (an unclosed one runs to the end)."""
    return _split_reasoning(text)[1]


def _split_reasoning(text: str) -> tuple[str, str, bool]:
    """(reasoning, answer, unclosed): the ``<think>`` sections apart from the rest of the reply."""
    reasoning: list[str] = []
    answer: list[str] = []
    position = 0
    lower = text.lower()
    # a server that strips the opening tag leaves only "</think>": everything before it is reasoning
    closers = [(lower.find(f"</{tag}>"), tag) for tag in _THINK_TAGS]
    first_close = min(((i, t) for i, t in closers if i >= 0), default=None)
    first_open = _OPEN_THINK.search(text)
    if first_close is not None and (first_open is None or first_open.start() > first_close[0]):
        index, tag = first_close
        reasoning.append(text[:index])
        position = index + len(tag) + 3
    while True:
        opened = _OPEN_THINK.search(text, position)
        if opened is None:
            answer.append(text[position:])
            return "\n".join(reasoning), "\n".join(answer), False
        answer.append(text[position:opened.start()])
        closing = f"</{opened.group('tag').lower()}>"
        end = lower.find(closing, opened.end())
        if end < 0:
            reasoning.append(text[opened.end():])
            return "\n".join(reasoning), "\n".join(answer), True
        reasoning.append(text[opened.end():end])
        position = end + len(closing)


def _opening_fence(line: str) -> tuple[str, str] | None:
    """(fence, info) when ``line`` opens a fenced block: 3+ backticks or tildes, then an info string without backticks."""
    stripped = line.lstrip(" \t")
    mark = stripped[:1]
    if mark not in ("`", "~"):
        return None
    info = stripped.lstrip(mark)
    run = len(stripped) - len(info)
    if run < 3 or "`" in info:
        return None
    return stripped[:run], info.strip()


def _fenced_blocks(text: str) -> list[_Block]:
    blocks: list[_Block] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        opened = _opening_fence(lines[i])
        if opened is None:
            i += 1
            continue
        fence, info = opened
        body: list[str] = []
        j = i + 1
        closed = False
        while j < len(lines):
            if _closes(lines[j], fence):
                closed = True
                break
            body.append(lines[j])
            j += 1
        blocks.append(_Block(info, "\n".join(body), closed))
        i = j + 1
    return blocks


def _closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes a block opened by ``fence``: at least as many of its marks, and nothing else."""
    stripped = line.strip()
    return stripped.startswith(fence[0] * len(fence)) and not stripped.lstrip(fence[0]).strip()


def _outside_fences(text: str, blocks: list[_Block]) -> str:
    """The text with every fenced block removed (its lines blanked, so line structure stays)."""
    if not blocks:
        return text
    out: list[str] = []
    inside: str | None = None
    for line in text.split("\n"):
        if inside is None:
            opened = _opening_fence(line)
            if opened is not None:
                inside = opened[0]
                out.append("")
                continue
            out.append(line)
        else:
            if _closes(line, inside):
                inside = None
            out.append("")
    return "\n".join(out)


def _note(prose: str) -> str:
    """The first sentence of the reply's prose (its text outside fences), for the candidate's origin."""
    for line in prose.split("\n"):
        line = re.sub(r"[*_`#>]+", "", line).strip(" -:\t")
        if len(line) < 12 or _CODEISH.match(line) or line.startswith(("def ", "return ")):
            continue
        sentence = re.split(r"(?<=[.!?])\s", line, maxsplit=1)[0]
        return sentence[:200]
    return ""


# ------------------------------------------------------------------------------------ unfenced code


def _unfenced_region(text: str, definition: re.Pattern[str]) -> tuple[str | None, bool]:
    """The code around the last ``def compute_reward`` (``definition``) in prose; (None, _) if none of it parses."""
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if definition.match(line)]
    d = starts[-1]
    s = d
    while s > 0 and (not lines[s - 1].strip() or _CODEISH.match(lines[s - 1]) or lines[s - 1][:1] in " \t"):
        s -= 1
    e = d + 1
    while e < len(lines) and (not lines[e].strip() or lines[e][:1] in " \t" or _CODEISH.match(lines[e])):
        e += 1
    while s < d and not lines[s].strip():
        s += 1
    while e > d + 1 and not lines[e - 1].strip():
        e -= 1
    reaches_end = not any(line.strip() for line in lines[e:])
    tries = 0
    for start in range(s, d + 1):
        for end in range(e, d, -1):
            chunk = textwrap.dedent("\n".join(lines[start:end]))
            if not definition.search(chunk):
                continue
            if _parses(chunk):
                return chunk, reaches_end and end == e
            tries += 1
            if tries >= _MAX_REGION_TRIES:
                return None, reaches_end
    return None, reaches_end


def _from_def(text: str, definition: re.Pattern[str]) -> str:
    match = list(definition.finditer(text))
    return textwrap.dedent(text[match[-1].start():]) if match else ""


# -------------------------------------------------------------------------------------- assembling


def _assemble(code: str, others: list[str], note: str, name: str) -> Extraction:
    """``code`` with what it uses from the other blocks, cleaned of example calls (of ``name``)."""
    code = _strip_examples(code, name)
    tree = _parse(code)
    if tree is None:
        return Extraction(code.strip("\n") + "\n", None, note)  # the critic words the syntax error
    needed = _free_names(tree)
    bindings = _module_bindings(tree)
    parsed: list[tuple[int, str, ast.Module]] = []
    if needed:
        for b, other in enumerate(others):
            other_tree = _parse(other)
            if other_tree is not None:
                parsed.append((b, other, other_tree))
    borrowed: list[tuple[int, int, ast.stmt, str]] = []
    taken: set[tuple[int, int]] = set()
    changed = True
    while changed and needed:
        changed = False
        for b, other, other_tree in parsed:
            for s, stmt in enumerate(other_tree.body):
                if (b, s) in taken or not (_bound_by(stmt) & needed) or _is_example(stmt, name):
                    continue
                taken.add((b, s))
                borrowed.append((b, s, stmt, _segment(other, stmt)))
                needed |= _free_names(ast.Module(body=[stmt], type_ignores=[])) - bindings
                needed -= _bound_by(stmt)
                changed = True
    borrowed.sort(key=lambda item: (item[0], item[1]))
    imports = [text for _, _, stmt, text in borrowed if isinstance(stmt, (ast.Import, ast.ImportFrom))]
    rest = ""
    previous: tuple[int, bool] | None = None
    for b, _, stmt, text in borrowed:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        is_def = isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        if previous is not None:
            rest += "\n" if previous == (b, False) and not is_def else "\n\n\n"
        rest += text
        previous = (b, is_def)
    bound = bindings | {n for _, _, stmt, _ in borrowed for n in _bound_by(stmt)}
    used = _free_names(tree) | {n for _, _, stmt, _ in borrowed for n in _free_names(ast.Module([stmt], []))}
    auto = [line for name, line in _AUTO_IMPORTS.items() if name in used and name not in bound]
    parts = [p for p in ("\n".join(auto + imports), rest, code.strip("\n")) if p.strip()]
    return Extraction("\n\n\n".join(parts) + "\n", None, note)


def _strip_examples(code: str, name: str) -> str:
    """Drop top-level statements that only demonstrate the function: calls, prints, ``__main__`` blocks."""
    tree = _parse(code)
    if tree is None:
        return code
    drop = [stmt for stmt in tree.body if _is_example(stmt, name)]
    if not drop:
        return code
    lines = code.split("\n")
    for stmt in reversed(drop):
        start = stmt.lineno - 1
        end = stmt.end_lineno or stmt.lineno
        del lines[start:end]
    return "\n".join(lines)


def _is_example(stmt: ast.stmt, name: str) -> bool:
    if isinstance(stmt, ast.If):  # a walk, not ast.unparse: that recurses, and the tree may be deep
        return any(isinstance(n, ast.Name) and n.id == "__name__" for n in ast.walk(stmt.test))
    if isinstance(stmt, ast.Expr):
        return not isinstance(stmt.value, ast.Constant)  # keep docstrings; drop bare calls and prints
    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.For, ast.While, ast.With)):
        return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(stmt))
    return False


def _segment(source: str, stmt: ast.stmt) -> str:
    lines = source.split("\n")
    start = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])]) - 1
    return "\n".join(lines[start:stmt.end_lineno or stmt.lineno])


def _bound_by(stmt: ast.stmt) -> set[str]:
    """Names a top-level statement binds."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, ast.Import):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names}
    if isinstance(stmt, ast.ImportFrom):
        return {a.asname or a.name for a in stmt.names}
    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return set()


def _module_bindings(tree: ast.Module) -> set[str]:
    return {name for stmt in tree.body for name in _bound_by(stmt)}


def _free_names(tree: ast.Module) -> set[str]:
    """Names read somewhere and bound nowhere in ``tree`` (builtins excluded): what it needs from outside."""
    loaded: set[str] = set()
    bound: set[str] = set(_module_bindings(tree))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= _bound_by(node)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return loaded - bound - _BUILTINS


def _defined_functions(code: str) -> list[str]:
    return re.findall(r"^[ \t]*def[ \t]+(\w+)", code, re.MULTILINE)
