"""Shared fixtures: small, real configurations (real SB3, real subprocesses, tiny budgets)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


@pytest.fixture(scope="session")
def cartpole():
    from rewardsmith.spec import load_spec

    return load_spec("cartpole")


@pytest.fixture
def tiny_search():
    """A search configuration that finishes in seconds."""
    from rewardsmith.state import SearchConfig

    return SearchConfig(iterations=2, samples=2, timesteps=512, workers=2, checkpoints=2, eval_episodes=2,
                        final_episodes=2, media=False)
