"""Structured findings about a reward program, worded so a person or an LLM can fix the code."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["CODES", "Issue", "IssueList", "sanitize"]

# C0 controls but tab and newline, DEL, C1 controls, the bidirectional overrides and isolates
# ("Trojan Source"), and lone surrogates (which no terminal encoding can print): a message from
# reward code must not drive, or crash, the terminal it is printed on.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def sanitize(text: str) -> str:
    """``text`` with terminal control characters shown as escapes (``\\x1b``) instead of acting."""
    return _UNSAFE.sub(lambda m: ascii(m.group())[1:-1], text)

Severity = Literal["error", "warning"]

CODES: dict[str, str] = {
    "too_large": "the source exceeds the size cap",
    "too_deep": "brackets, blocks or expressions nest deeper than the cap",
    "syntax": "the source does not parse",
    "control_character": "the source holds a terminal control character (ESC, BEL, a bidi override, ...)",
    "no_compute_reward": "no module-level function compute_reward",
    "bad_signature": "compute_reward does not take (obs, action, next_obs, info)",
    "forbidden_import": "an import other than math, numpy or typing",
    "forbidden_construct": "a construct the sandbox does not run (classes, async, globals of other modules)",
    "restricted": "RestrictedPython refused a name or construct",
    "unknown_field": "an observation field the env does not have",
    "forbidden_attribute": "an attribute the sandbox does not expose",
    "forbidden_name": "a name that is not available in the sandbox",
    "module_error": "running the module's top level raised",
    "runtime_error": "compute_reward raised",
    "bad_return": "compute_reward did not return (total, components)",
    "non_finite": "a NaN or infinite value was returned",
    "bad_components": "components is not a dict of names to numbers",
    "timeout": "a call ran past its wall-clock deadline",
    "too_slow": "calls take too long on average for training",
    "memory": "the program ran out of its memory allowance",
    "worker_crashed": "the sandbox worker process died",
    "bare_total": "compute_reward returned a number, not (total, components)",
    "constant_reward": "the total does not change across probe transitions",
    "constant_component": "a component does not change across probe transitions",
    "huge_magnitude": "values far larger than RL training handles well",
    "unused_argument": "compute_reward never reads next_obs or obs",
    "no_fitness": "no module-level function fitness (a fitness program)",
    "bad_solved": "a fitness program's SOLVED is not a finite number",
    "constant_fitness": "a fitness program gives the same value to every behaviour it was tried on",
}


@dataclass(frozen=True)
class Issue:
    """One finding: a stable ``code``, a message that says what to change, and the source line."""

    code: str
    message: str
    line: int | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"[{self.code}] {where}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Issue:
        line = data.get("line")
        return cls(
            code=sanitize(str(data.get("code", "worker_crashed"))[:64]),
            message=sanitize(str(data.get("message", ""))[:4000]),
            line=int(line) if isinstance(line, int) else None,
            severity="warning" if data.get("severity") == "warning" else "error",
        )


class IssueList:
    """What a verdict holding ``issues`` says of them (shared by the reward critic's and the fitness critic's)."""

    issues: tuple[Issue, ...]

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    def explain(self) -> str:
        """Every issue, one per line, as a person or an LLM would read it to fix the code."""
        return "\n".join(str(i) for i in self.issues) or "accepted"
