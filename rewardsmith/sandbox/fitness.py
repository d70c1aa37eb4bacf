"""Untrusted fitness programs (a fitness an LLM proposed): ``fitness(episode)`` run in the sandbox worker.

A fitness the user wrote is trusted and imported (:func:`rewardsmith.task.load_fitness`); one an LLM wrote
is data until the sandbox has run it. The worker compiles it under the reward programs' policy (the same
imports, constructs and limits), reads its optional ``SOLVED``, and scores one episode per request: the
host sends the episode's observations, actions and env rewards as plain arrays, the worker rebuilds an
:class:`~rewardsmith.episode.Episode` over them and returns one checked, finite number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from rewardsmith.episode import Episode
from rewardsmith.errors import RewardsmithError
from rewardsmith.sandbox.client import MAX_EXCHANGE_BYTES, LoadResult, RewardCallError, RewardSandbox, SandboxLimits
from rewardsmith.sandbox.issues import Issue

__all__ = ["FitnessProgramError", "FitnessSandbox", "SandboxedFitness", "encode_episode"]


def encode_episode(episode: Episode) -> tuple[dict[str, Any], bytes]:
    """The frame header and raw bytes of one episode, as the worker's ``score`` request reads them."""
    obs = np.ascontiguousarray(episode.obs.data, dtype=np.float64)
    obs = obs.reshape(len(obs), -1)
    actions = np.asarray(episode.actions)
    integer = np.issubdtype(actions.dtype, np.integer) or actions.dtype == bool
    actions = np.ascontiguousarray(actions, dtype=np.int64 if integer else np.float64)
    if actions.ndim == 0 or len(actions) != len(episode):
        actions = actions.reshape(len(episode), -1)
    rewards = np.ascontiguousarray(episode.env_rewards, dtype=np.float64)
    header = {"t": len(episode), "d": int(obs.shape[1]) if obs.ndim == 2 else 0, "as": list(actions.shape),
              "ai": bool(integer), "term": bool(episode.terminated), "trunc": bool(episode.truncated)}
    return header, obs.tobytes() + actions.tobytes() + rewards.tobytes()


class FitnessSandbox(RewardSandbox):
    """One worker running one fitness program.

    Example:
        >>> with FitnessSandbox(spec.field_layout) as box:
        ...     loaded = box.load(source)       # loaded.solved: its SOLVED, if any
        ...     value = box.score(episode)
    """

    program_kind = "fitness"

    def score(self, episode: Episode) -> float:
        """The program's fitness of ``episode``.

        Raises:
            RewardCallError: the call raised, returned something other than a finite number, or ran past its
                deadline (``call_timeout`` plus ``timeout_per_transition`` per step).
        """
        if self._source is None:
            raise RewardCallError(Issue("no_fitness", "no fitness program loaded"))
        self._restart_if_killed(self._source)
        header, blob = encode_episode(episode)
        if len(blob) > MAX_EXCHANGE_BYTES:
            raise RewardCallError(Issue("too_large", f"an episode of {len(episode)} steps takes {len(blob):,} bytes; "
                                                     f"a sandboxed fitness reads at most {MAX_EXCHANGE_BYTES:,}"))
        timeout = self.limits.batch_timeout(len(episode))
        reply, _ = self._request({"op": "score", "timeout": timeout, **header}, timeout, blob)
        if reply.get("ok") is not True:
            issue = reply.get("issue")
            raise RewardCallError(Issue.from_dict(issue) if isinstance(issue, dict) else
                                  Issue("worker_crashed", "the worker refused the episode without saying why"))
        value = reply.get("value")
        if type(value) not in (int, float) or not math.isfinite(value):
            raise RewardCallError(Issue("worker_crashed", "the worker sent a malformed fitness value"))
        return float(value)


class FitnessProgramError(RewardsmithError):
    """A sandboxed fitness failed on an episode; the message says why (its issue)."""


class SandboxedFitness:
    """A fitness program as a plain callable (``fitness(episode) -> float``), run in a sandbox worker started
    on the first call. It pickles as its source alone, so it can cross to another process."""

    def __init__(self, source: str, fields: Mapping[str, Any], limits: SandboxLimits | None = None) -> None:
        self.source = source
        self.fields = dict(fields)
        self.limits = limits
        self._box: FitnessSandbox | None = None

    def __call__(self, episode: Episode) -> float:
        if self._box is None:
            box = FitnessSandbox(self.fields, self.limits)
            loaded: LoadResult = box.load(self.source)
            if not loaded.ok:
                box.close()
                raise FitnessProgramError(f"the fitness program does not load: {loaded.issues[-1]}")
            self._box = box
        try:
            return self._box.score(episode)
        except RewardCallError as exc:
            raise FitnessProgramError(f"the fitness program failed on an episode of {len(episode)} steps: "
                                      f"{exc.issue}") from None

    def close(self) -> None:
        if self._box is not None:
            self._box.close()
            self._box = None

    def __getstate__(self) -> dict[str, Any]:
        return {"source": self.source, "fields": self.fields, "limits": self.limits}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["source"], state["fields"], state["limits"])  # type: ignore[misc]
