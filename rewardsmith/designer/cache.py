"""Every LLM request and reply, stored in the run's ``llm/`` folder; also the replay cache.

::

    llm/
      <key>.json          one exchange: the request, the reply as the server sent it, tokens, seconds, retries
      <key>.failed.json   the last failure of a request that never got a reply (it is asked again on resume)

The key is a hash of the request (model, messages, temperature, n, max_tokens …) and of its *slot*:
which sample of which iteration it is, or which candidate (and which attempt of it) a repair or
review serves. Two identical prompts for two samples, or for two candidates, are two requests; the
same prompt for the same slot, after a resume, is the same request and is answered from here.

``replay`` names another run's ``llm/`` folder to answer from first: a reply
found there is copied in, so the new run is complete on its own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rewardsmith.runs import atomic_write_text

__all__ = ["Exchange", "ReplyCache", "request_key"]


def request_key(request: dict[str, Any], slot: dict[str, Any]) -> str:
    """The hash that names a request's files: its exact body plus the slot it fills."""
    canonical = json.dumps({"request": request, "slot": slot}, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


@dataclass
class Exchange:
    """One request and the reply it got."""

    key: str
    purpose: str
    """``propose``, ``repair`` or ``review``."""
    iteration: int
    slot: dict[str, Any]
    request: dict[str, Any]
    """The body sent (no key, no URL: those are not part of what was asked)."""
    reply: dict[str, Any]
    """The chat completion as the server sent it."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    retries: int = 0
    failures: int = 0
    """Earlier sends of this request that got no usable reply (they count in ``usage.failed_requests``)."""
    served: str = "network"
    """``network`` when this run paid for it, ``replay`` when it came from another run's folder."""
    time: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Exchange:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


class ReplyCache:
    """The ``llm/`` folder of one run, optionally backed by another run's for replay."""

    def __init__(self, directory: Path, replay: Path | None = None) -> None:
        self.directory = Path(directory)
        self.replay = Path(replay) if replay is not None else None

    def _path(self, key: str, failed: bool = False) -> Path:
        return self.directory / f"{key}{'.failed' if failed else ''}.json"

    def get(self, key: str) -> Exchange | None:
        """The stored exchange for ``key``: this run's own, else the replayed run's (copied in)."""
        own = _read(self._path(key))
        if own is not None:
            return own
        if self.replay is None:
            return None
        recorded = _read(self.replay / f"{key}.json")
        if recorded is None:
            return None
        recorded.served = "replay"
        self.put(recorded)
        return recorded

    def put(self, exchange: Exchange) -> None:
        """Store ``exchange``; a failure recorded for its key is folded into its ``failures`` and removed."""
        failed = self._path(exchange.key, failed=True)
        exchange.failures += _failure_count(failed)
        atomic_write_text(self._path(exchange.key), json.dumps(exchange.to_dict(), indent=1) + "\n")
        failed.unlink(missing_ok=True)

    def put_failure(self, key: str, purpose: str, iteration: int, slot: dict[str, Any], request: dict[str, Any],
                    error: str, attempts: int) -> None:
        """Record that the request ``key`` got no reply after ``attempts`` sends (``failures`` counts such ends)."""
        path = self._path(key, failed=True)
        record = {"key": key, "purpose": purpose, "iteration": iteration, "slot": slot, "request": request,
                  "error": error, "attempts": attempts, "failures": _failure_count(path) + 1,
                  "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        atomic_write_text(path, json.dumps(record, indent=1) + "\n")

    def exchanges(self) -> list[Exchange]:
        """Every exchange stored in this run's folder, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [_read(p) for p in self.directory.glob("*.json") if not p.name.endswith(".failed.json")]
        return sorted((e for e in found if e is not None), key=lambda e: (e.time, e.key))

    def failures(self) -> list[dict[str, Any]]:
        if not self.directory.is_dir():
            return []
        out = []
        for path in sorted(self.directory.glob("*.failed.json")):
            try:
                out.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, json.JSONDecodeError):
                continue
        return out


def _failure_count(path: Path) -> int:
    """How many times the request of a ``.failed.json`` record failed (0 when there is none)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return 0
    count = record.get("failures", 1) if isinstance(record, dict) else 0
    return count if isinstance(count, int) and count > 0 else 0


def _read(path: Path) -> Exchange | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("reply"), dict):
        return None
    try:
        return Exchange.from_dict(data)
    except TypeError:
        return None
