"""rewardsmith: write, check, train and export reward functions for Gymnasium environments.

The public API is imported lazily, so ``import rewardsmith`` stays cheap (the sandbox worker
imports this package too, and never needs torch).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = [
    "Candidate",
    "Critic",
    "EnvSpec",
    "Episode",
    "Issue",
    "RewardSandbox",
    "RewardsmithError",
    "RunDir",
    "SearchConfig",
    "TaskRef",
    "TaskSpec",
    "TrainConfig",
    "TrainingResult",
    "Verdict",
    "check",
    "load_spec",
    "resume_search",
    "run_search",
    "train",
]

_WHERE = {
    "Candidate": "rewardsmith.candidate",
    "Critic": "rewardsmith.critic",
    "EnvSpec": "rewardsmith.spec",
    "Episode": "rewardsmith.episode",
    "Issue": "rewardsmith.sandbox",
    "RewardSandbox": "rewardsmith.sandbox",
    "RewardsmithError": "rewardsmith.errors",
    "RunDir": "rewardsmith.runs",
    "SearchConfig": "rewardsmith.loop",
    "TaskRef": "rewardsmith.task",
    "TaskSpec": "rewardsmith.spec",
    "TrainConfig": "rewardsmith.training",
    "TrainingResult": "rewardsmith.training",
    "Verdict": "rewardsmith.critic",
    "check": "rewardsmith.critic",
    "load_spec": "rewardsmith.spec",
    "resume_search": "rewardsmith.loop",
    "run_search": "rewardsmith.loop",
    "train": "rewardsmith.training",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'rewardsmith' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__ + ["__version__"])
