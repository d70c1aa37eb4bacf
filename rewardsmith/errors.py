"""Errors a user can act on.

Every error here prints as one line on stderr in the CLI; anything else is a bug and
gets a traceback (without locals, so keys never leak).

    RewardsmithError
     ├── UsageError            a bad option, file or name: exit 2
     │    ├── UnknownEnvError
     │    ├── UnknownTaskError
     │    └── SpecError        a spec that does not match its env's observation
     ├── RunDirError           a run directory that cannot be read, resumed or written
     ├── LLMError              the designer's endpoint refused us for good (bad key, model, host)
     ├── BudgetExceeded        a token budget ran out; the search stops cleanly
     └── EndpointDown          the LLM endpoint stopped answering for longer than the wait; the search stops cleanly
"""

from __future__ import annotations

__all__ = [
    "AgreementInterrupted",
    "BudgetExceeded",
    "EndpointDown",
    "LLMError",
    "RewardsmithError",
    "RunDirError",
    "SpecError",
    "UnknownEnvError",
    "UnknownTaskError",
    "UsageError",
]


class RewardsmithError(Exception):
    """Base of every error a user can fix; printed as one line."""

    exit_code: int = 1


class UsageError(RewardsmithError):
    """A bad option value, file or name given on the command line or to the library."""

    exit_code = 2


class UnknownEnvError(UsageError):
    """An environment name that is neither bundled, a spec file, nor a registered Gymnasium id."""


class UnknownTaskError(UsageError):
    """A task name the environment's spec does not define."""


class SpecError(UsageError):
    """An env spec that does not fit its env: field count, indices or names against the real observation."""


class RunDirError(RewardsmithError):
    """A run directory that is missing, damaged or not ours."""

    exit_code = 2


class AgreementInterrupted(RewardsmithError):
    """Ctrl-C while agreeing on a fitness: no search has started, so there is nothing to resume."""

    exit_code = 130


class LLMError(RewardsmithError):
    """The LLM endpoint refused for a reason retrying cannot fix (key, model, host)."""

    exit_code = 1


class BudgetExceeded(RewardsmithError):
    """A configured budget (tokens, cost) is spent."""


class EndpointDown(RewardsmithError):
    """The LLM endpoint could not be reached for longer than ``--llm-outage``; ``resume`` goes on later."""
