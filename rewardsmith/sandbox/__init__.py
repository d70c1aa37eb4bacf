"""Compiling and running untrusted reward code.

Reward programs run under RestrictedPython in a separate, resource-limited worker process that
holds no secrets; only plain data crosses the process boundary.
"""

from rewardsmith.sandbox.client import (
    BatchResult,
    LoadResult,
    RewardCallError,
    RewardSandbox,
    SandboxLimits,
    Transitions,
    plain_info,
)
from rewardsmith.sandbox.issues import CODES, Issue, IssueList

__all__ = [
    "CODES",
    "BatchResult",
    "Issue",
    "IssueList",
    "LoadResult",
    "RewardCallError",
    "RewardSandbox",
    "SandboxLimits",
    "Transitions",
    "plain_info",
]
