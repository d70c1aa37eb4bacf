"""The seed plan: which episodes judge a policy, and which seeds train the evaluation's policies.

Every candidate is judged on the same episodes: checkpoint evaluations reset the env with seeds
``CHECKPOINT_SEED, CHECKPOINT_SEED + 1, …``, the final evaluation (whose mean fitness is the candidate's
score) with ``FINAL_SEED, …``, whatever the training seed. Two rewards are then compared on the same start
states, so a difference in fitness is the rewards' doing and not the luck of easier starts. The analyzer's
sampled-policy episodes and the evaluation's training seeds use ranges of their own, so no number here
is reused for another purpose.
"""

from __future__ import annotations

__all__ = ["CHECKPOINT_SEED", "EVALUATION_TRAINING_SEED", "FINAL_SEED", "STOCHASTIC_SEED"]

CHECKPOINT_SEED = 10_000
"""First env seed of each checkpoint evaluation during training (the learning curve)."""

FINAL_SEED = 20_000
"""First env seed of the final evaluation; also the episode a rollout GIF shows."""

STOCHASTIC_SEED = 30_000
"""First env seed of the analyzer's sampled-policy episodes."""

EVALUATION_TRAINING_SEED = 1_000
"""``evaluate`` and ``--final-eval`` train with seeds 1000, 1001, …: never the search's training seeds."""
