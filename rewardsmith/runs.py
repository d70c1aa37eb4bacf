"""The run directory: every path and file name of a search lives here.

    runs/2026-11-26T10-15-00_cartpole_keep-the-pole-upright/
      run.json        task, config, versions, status
      events.jsonl    append-only; the source of truth for resume
      summary.json    the machine-readable result
      llm/            every LLM request and reply (the replay cache)
      iter-00/cand-03/  reward.py, critic.json, curves.json, analysis.json, policy.zip, rollout.gif
      best/           reward.py (standalone), manifest.json
      report.html

Every write is atomic (a temporary file renamed into place), so a killed run never leaves a
half-written file; the event log is appended and fsynced one line at a time, and a torn last
line from a killed process is ignored when read.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rewardsmith.errors import RunDirError

__all__ = ["CandidatePaths", "RunDir", "atomic_write_text", "slugify"]


def slugify(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].rstrip("-") or "task"


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=_json_default, allow_nan=True) + "\n"


@dataclass(frozen=True)
class CandidatePaths:
    """Where one candidate's files go (picklable, handed to training workers)."""

    root: Path

    @property
    def reward(self) -> Path:
        return self.root / "reward.py"

    @property
    def critic(self) -> Path:
        return self.root / "critic.json"

    @property
    def curves(self) -> Path:
        return self.root / "curves.json"

    @property
    def analysis(self) -> Path:
        return self.root / "analysis.json"

    @property
    def origin(self) -> Path:
        return self.root / "origin.json"

    @property
    def attempts(self) -> Path:
        return self.root / "attempts.json"

    @property
    def gif(self) -> Path:
        return self.root / "rollout.gif"

    @property
    def mp4(self) -> Path:
        return self.root / "rollout.mp4"

    @property
    def policy_dir(self) -> Path:
        return self.root


class RunDir:
    """One search's directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def create(cls, base: Path, env_name: str, task_text: str, now: datetime | None = None) -> RunDir:
        now = now or datetime.now()
        stem = f"{now.strftime('%Y-%m-%dT%H-%M-%S')}_{slugify(env_name, 24)}_{slugify(task_text)}"
        base.mkdir(parents=True, exist_ok=True)
        for n in range(1000):
            root = base / (stem if n == 0 else f"{stem}-{n}")
            try:
                root.mkdir()
                return cls(root)
            except FileExistsError:
                continue
        raise RunDirError(f"cannot create a run directory under {base}")

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        root = Path(path)
        if not (root / "run.json").is_file():
            if (root / "events.jsonl").is_file():  # events come before run.json only while agreeing on a fitness
                raise RunDirError(f"{root} stopped before its search started (while agreeing on a fitness with the "
                                  "LLM): nothing was trained, so there is nothing to resume; start it again with "
                                  "`rewardsmith run` (its events.jsonl keeps what was offered)")
            raise RunDirError(f"{root} is not a rewardsmith run (no run.json)")
        return cls(root)

    # -- fixed files ---------------------------------------------------------------------------

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def events_file(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def summary_json(self) -> Path:
        return self.root / "summary.json"

    @property
    def llm_dir(self) -> Path:
        return self.root / "llm"

    @property
    def best_dir(self) -> Path:
        return self.root / "best"

    @property
    def final_eval_json(self) -> Path:
        return self.root / "final_eval.json"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    def candidate(self, iteration: int, index: int) -> CandidatePaths:
        return CandidatePaths(self.root / f"iter-{iteration:02d}" / f"cand-{index:02d}")

    # -- reading and writing -------------------------------------------------------------------

    def write_json(self, path: Path, data: Any) -> None:
        atomic_write_text(path, to_json(data))

    def read_json(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunDirError(f"{path} is missing") from None
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path} is damaged: {exc}") from None

    def read_run(self) -> dict[str, Any]:
        return self.read_json(self.run_json)

    def update_run(self, **changes: Any) -> None:
        data = self.read_run()
        data.update(changes)
        self.write_json(self.run_json, data)

    def append_event(self, kind: str, **data: Any) -> dict[str, Any]:
        event = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "kind": kind, **data}
        line = json.dumps(event, default=_json_default, allow_nan=True)
        with open(self.events_file, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return event

    def events(self) -> list[dict[str, Any]]:
        return list(self.iter_events())

    def iter_events(self) -> Iterator[dict[str, Any]]:
        if not self.events_file.exists():
            return
        with open(self.events_file, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by a killed process
