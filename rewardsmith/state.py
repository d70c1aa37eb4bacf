"""A run's state apart from the search: what it was asked, what happened, rebuilt from its event log.

Commands that only read a run (``show``, ``report``, ``export``) need nothing else: importing this module
imports neither the search loop, the process pool, the trainer nor torch, and :func:`load_state` with
``read_only=True`` takes the task from what run.json recorded, so the env and the user's fitness file are
never loaded. The search (:mod:`rewardsmith.loop`) writes the events this module replays.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from rewardsmith.candidate import Candidate, source_hash
from rewardsmith.critic import Verdict
from rewardsmith.errors import RunDirError, UsageError
from rewardsmith.results import FailureReason, TrainingResult
from rewardsmith.runs import RunDir
from rewardsmith.task import ResolvedTask, TaskRef, is_solved

__all__ = ["Guidance", "Rejection", "SearchConfig", "SearchState", "add_ranking", "best_manifest", "check_ranking",
           "default_workers", "load_state", "ranking_text", "record_event", "record_feedback", "record_ranking",
           "summary_of"]


def default_workers() -> int:
    """Trainings side by side by default: one per CPU this process may use."""
    from rewardsmith.executors import default_workers as cpus

    return cpus()


@dataclass(frozen=True)
class SearchConfig:
    """How a search runs; recorded in run.json."""

    iterations: int = 3
    samples: int = 4
    """Candidates per iteration (K)."""
    timesteps: int | None = None
    """PPO steps per candidate; None takes the env spec's budget."""
    seed: int = 0
    workers: int = field(default_factory=lambda: default_workers())
    """Trainings run side by side (processes, one torch thread each)."""
    device: str = "auto"
    repairs: int = 2
    """Times a refused or crashed candidate goes back to the designer."""
    checkpoints: int = 10
    eval_episodes: int = 5
    final_episodes: int = 10
    media: bool = True
    """Render a GIF of each scored candidate's policy (a person watches them side by side and may rank them)."""
    executor: str = "local"
    """Where jobs run: ``local`` (a process pool) or ``ray``."""
    ray_address: str | None = None
    """The Ray cluster (``auto``, ``HOST:PORT``, ``ray://…``); None starts a local Ray instance."""
    schedule: str = "full"
    """``full``: every accepted candidate trains the whole budget; ``halving``: successive halving in rungs."""
    eta: int = 3
    """Halving: the top 1/eta of a rung go on, each rung eta times longer than the one before."""
    min_fraction: float = 1 / 9
    """Halving: the first rung's share of the full budget."""

    def __post_init__(self) -> None:
        for name in ("iterations", "samples", "workers"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name} must be at least 1")
        if self.timesteps is not None and self.timesteps < 64:
            raise UsageError("--timesteps must be at least 64")
        if self.repairs < 0:
            raise UsageError("--repairs must be 0 or more")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise UsageError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        from rewardsmith.executors import EXECUTORS

        if self.executor not in EXECUTORS:
            raise UsageError(f"--executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if self.ray_address is not None and self.executor != "ray":
            raise UsageError("--ray-address needs --executor ray")
        if self.schedule not in ("full", "halving"):
            raise UsageError(f"--schedule must be full or halving, got {self.schedule!r}")
        if self.eta < 2:
            raise UsageError("--eta must be at least 2")
        if not 0 < self.min_fraction < 1:
            raise UsageError("--min-fraction must be between 0 and 1 (exclusive)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Rejection:
    """A refused check or a failed training of one version of a candidate."""

    id: str
    attempt: int
    """Which version: 0 the proposal, N the Nth repair."""
    stage: Literal["critic", "reviewer", "training"]
    issue: FailureReason
    source: str
    """The version it refused."""
    outcome: str | None = None
    """``sent back for repair``, or None: what became of the candidate is its final status."""


@dataclass(frozen=True)
class Guidance:
    """Feedback a person gave, a parent they chose or a ranking they made, for the proposals of ``iteration``."""

    kind: Literal["feedback", "parent_chosen", "ranking"]
    time: str
    iteration: int
    text: str


@dataclass
class SearchState:
    """The search so far, rebuilt from the event log on resume."""

    run: RunDir
    task: ResolvedTask
    config: SearchConfig
    designer: str
    budget: int = 0
    """PPO steps each training runs, in whole rollouts: run.json's ``budget``, fixed when the run started."""
    candidates: dict[str, Candidate] = field(default_factory=dict)
    feedback: dict[int, list[str]] = field(default_factory=dict)
    """Feedback to give the designer when it proposes iteration N."""
    parents: dict[int, str] = field(default_factory=dict)
    rankings: dict[int, list[str]] = field(default_factory=dict)
    """A person's ranking (best first, maybe partial) of iteration N's scored candidates, keyed by N; the latest
    given for N. Its first is the parent of N + 1 unless a parent was chosen after it."""
    iterations_done: int = 0
    status: str = "running"
    stop_reason: str | None = None
    final_choice: str | None = None
    """The candidate a final multi-seed evaluation chose for export (``--final-eval``)."""
    notices: list[dict[str, Any]] = field(default_factory=list)
    """What the search told the person (code, iteration, text): an endpoint that ignores sampling, re-asked samples."""
    started: str | None = None
    """When the run started: the time of its first event."""
    rejections: list[Rejection] = field(default_factory=list)
    """Every refused check and failed training, in the order the event log recorded them."""
    guidance: list[Guidance] = field(default_factory=list)
    """Every piece of feedback, chosen parent and ranking, in the order the event log recorded them."""

    @property
    def best(self) -> Candidate | None:
        scored = [c for c in self.candidates.values() if c.status == "scored"]
        return max(scored, key=lambda c: c.merit) if scored else None

    @property
    def no_progress(self) -> bool:
        """Every scored candidate (two or more) has the same fitness: the fitness told no reward from another,
        so the best is only the first of equals, no better than a random pick among them."""
        scored = [c.fitness for c in self.candidates.values() if c.status == "scored" and c.fitness is not None]
        return len(scored) >= 2 and all(math.isclose(f, scored[0], rel_tol=1e-9, abs_tol=1e-12) for f in scored)

    @property
    def exported(self) -> Candidate | None:
        """The candidate to export: the final evaluation's choice, else the search's best."""
        if self.final_choice in self.candidates:
            return self.candidates[self.final_choice]
        return self.best

    def of_iteration(self, iteration: int) -> list[Candidate]:
        return [c for c in self.candidates.values() if c.iteration == iteration]

    def ranking_for(self, iteration: int) -> list[Candidate]:
        """The ranking a person gave of the round before ``iteration`` (best first), for its proposals; or []."""
        return [self.candidates[cid] for cid in self.rankings.get(iteration - 1, []) if cid in self.candidates]

    def ranked_place(self, iteration: int, candidate_id: str) -> int | None:
        """Where a person ranked the candidate among ``iteration``'s rollouts (1 is best); None when unranked."""
        ranking = self.rankings.get(iteration, [])
        return ranking.index(candidate_id) + 1 if candidate_id in ranking else None

    def parent_for(self, iteration: int) -> Candidate | None:
        """The parent of ``iteration``'s proposals: the one a person chose (or ranked first), else the best of
        earlier iterations (by :attr:`Candidate.merit`: a candidate stopped early never outranks one trained to the
        full budget)."""
        chosen = self.parents.get(iteration)
        if chosen and chosen in self.candidates:
            return self.candidates[chosen]
        earlier = [c for c in self.candidates.values() if c.status == "scored" and c.iteration < iteration]
        return max(earlier, key=lambda c: c.merit) if earlier else None


def load_state(run: RunDir, read_only: bool = False) -> SearchState:
    """The search state recorded in ``run``'s event log and files.

    ``read_only`` (``show``, ``report``, ``export``) takes the task from what run.json recorded, so neither
    the env nor the user's modules are loaded; a run recorded before that resolves its task as usual.
    """
    info = run.read_run()
    try:
        task_ref = TaskRef.from_dict(info["task"])
        config = SearchConfig.from_dict(info["config"])
        recorded = info.get("env") if read_only else None
        task = ResolvedTask.from_record(task_ref, recorded) if isinstance(recorded, dict) else None
    except (KeyError, TypeError, ValueError) as exc:
        raise RunDirError(f"{run.run_json} is damaged: {exc}") from None
    task = task or task_ref.resolve()
    budget = info.get("budget")
    if not isinstance(budget, int) or isinstance(budget, bool):  # a run recorded before the budget was
        budget = task.budget(config.timesteps)
    state = SearchState(run, task, config, info.get("designer", "builtin"), budget=budget,
                        status=info.get("status", "running"))
    for event in run.iter_events():
        if state.started is None:
            state.started = event.get("time")
        _apply_event(state, event)
    return state


def record_feedback(run: RunDir, text: str) -> int:
    """Record human feedback on a run; it reaches the designer when the search resumes.

    Returns:
        The iteration whose proposals will receive it.
    """
    if not text.strip():
        raise UsageError("feedback text is empty")
    state = load_state(run, read_only=True)
    iteration = state.iterations_done
    run.append_event("feedback", iteration=iteration, text=text)
    return iteration


def check_ranking(state: SearchState, iteration: int, ids: list[str]) -> None:
    """Refuse a ranking of ``iteration`` that is empty, repeats an id or names anything but its scored candidates.

    Raises:
        UsageError: why, with the ids that may be ranked.
    """
    scored = [c.id for c in state.of_iteration(iteration) if c.status == "scored"]
    allowed = ", ".join(scored) or "none"
    if not ids:
        raise UsageError(f"a ranking needs at least one candidate id, best first; round {iteration + 1}'s scored "
                         f"candidates: {allowed}")
    repeated = sorted({cid for cid in ids if ids.count(cid) > 1})
    if repeated:
        raise UsageError(f"{', '.join(repeated)} named more than once; name each candidate once, best first")
    unknown = [cid for cid in ids if cid not in scored]
    if unknown:
        raise UsageError(f"not a scored candidate of round {iteration + 1}: {', '.join(unknown)}; "
                         f"its scored candidates: {allowed}")


def record_ranking(run: RunDir, ids: list[str]) -> int:
    """Record a person's ranking (best first, maybe partial) of the last finished iteration's scored candidates.

    The first becomes the next iteration's parent, and the ranking reaches the designer's next prompt when the
    search resumes.

    Returns:
        The iteration ranked.

    Raises:
        UsageError: no finished iteration, the next one already proposed (the ranking would reach no designer),
            or ids :func:`check_ranking` refuses.
    """
    state = load_state(run, read_only=True)
    iteration = state.iterations_done - 1
    if iteration < 0:
        raise UsageError(f"{run.root} has no finished round to rank yet")
    if state.of_iteration(iteration + 1):
        raise UsageError(f"round {iteration + 2} of {run.root} has already started, so a ranking of round "
                         f"{iteration + 1} would reach no designer")
    add_ranking(state, iteration, ids)
    return iteration


def add_ranking(state: SearchState, iteration: int, ids: list[str]) -> None:
    """Check a ranking of ``iteration`` (:func:`check_ranking`), record it as an event and apply it to ``state``."""
    check_ranking(state, iteration, ids)
    record_event(state, "ranking", iteration=iteration, ids=list(ids))


def record_event(state: SearchState, kind: str, **fields: Any) -> None:
    """Append an event to the run's log and apply it to ``state`` the way a replay would, so the state in memory
    (what the report written at the end reads) and the state a later command loads agree."""
    _apply_event(state, state.run.append_event(kind, **fields))


def ranking_text(ids: list[str]) -> str:
    """``01-02 > 01-00 > 01-03``: a ranking, best first."""
    return " > ".join(ids)


def _apply_event(state: SearchState, event: dict[str, Any]) -> None:
    kind = event.get("kind")
    cands = state.candidates
    if kind == "candidate_proposed":
        cand = Candidate(event["id"], event["iteration"], event["index"], event["source"], event.get("origin", {}))
        cands[cand.id] = cand
    elif kind == "candidate_repaired" and event["id"] in cands:
        cand = cands[event["id"]]
        cand.attempts.append({"source": cand.source, "problem": event.get("problem", "")})
        cand.source, cand.origin, cand.status, cand.result = event["source"], event.get("origin", {}), "proposed", None
        cand.rung, cand.stopped_at_rung = 0, None
        for row in state.rejections:
            if row.id == cand.id and row.attempt == len(cand.attempts) - 1:
                row.outcome = "sent back for repair"
    elif kind == "candidate_checked" and event["id"] in cands:
        cand = cands[event["id"]]
        cand.verdict = Verdict.from_dict(event["verdict"])
        cand.status = "proposed" if cand.verdict.accepted else "rejected"
        if not cand.verdict.accepted:
            state.rejections += [Rejection(cand.id, len(cand.attempts), "reviewer" if i.code == "review" else "critic",
                                           i, cand.source) for i in cand.verdict.errors]
    elif kind == "candidate_finished" and event["id"] in cands:
        cand = cands[event["id"]]
        if event["status"] in ("scored", "failed"):
            _load_outcome(state, cand, event["status"])
        elif event["status"] == "rejected":
            cand.status = "rejected"
        if event["status"] == "failed" and event.get("reason"):
            state.rejections.append(Rejection(cand.id, len(cand.attempts), "training", _failure(event), cand.source))
    elif kind == "rung_decided":
        for cid in event.get("kept", []):
            if cid in cands:
                cands[cid].rung = int(event["rung"]) + 1
        for cid in event.get("stopped", []):  # scored at this rung, whether or not its candidate_finished got out
            if cid in cands:
                cands[cid].stopped_at_rung = int(event["rung"])
                _load_outcome(state, cands[cid], "scored")
    elif kind == "iteration_finished":
        state.iterations_done = max(state.iterations_done, int(event["iteration"]) + 1)
    elif kind == "feedback":
        state.feedback.setdefault(int(event["iteration"]), []).append(event["text"])
        state.guidance.append(Guidance("feedback", str(event.get("time", "")), int(event["iteration"]),
                                       str(event["text"])))
    elif kind == "parent_chosen":
        state.parents[int(event["iteration"])] = event["id"]
        state.guidance.append(Guidance("parent_chosen", str(event.get("time", "")), int(event["iteration"]),
                                       f"use {event['id']} as the parent"))
    elif kind == "ranking" and event.get("ids"):
        ranked, ids = int(event["iteration"]), [str(cid) for cid in event["ids"]]
        state.rankings[ranked] = ids
        state.parents[ranked + 1] = ids[0]
        state.guidance.append(Guidance("ranking", str(event.get("time", "")), ranked + 1,
                                       f"ranked iteration {ranked}'s rollouts: {ranking_text(ids)}"))
    elif kind == "final_evaluation":
        state.final_choice = event["chosen"]
    elif kind == "notice":
        state.notices.append({"code": event.get("code"), "iteration": event.get("iteration"),
                              "text": str(event.get("text", ""))})

def _load_outcome(state: SearchState, cand: Candidate, status: str) -> None:
    """``cand`` finished as ``status``, with the result and analysis its folder holds (if it holds them)."""
    paths = state.run.candidate(cand.iteration, cand.index)
    if paths.curves.is_file():
        cand.result = TrainingResult.from_dict(state.run.read_json(paths.curves))
        cand.status = status  # type: ignore[assignment]
        if paths.analysis.is_file():
            cand.analysis = state.run.read_json(paths.analysis)


def _failure(event: dict[str, Any]) -> FailureReason:
    """The reason a ``candidate_finished`` event gives for a failed training: the issue it recorded, or for a
    run recorded before events held one, its one-line text as the message."""
    issue = event.get("issue")
    if isinstance(issue, dict):
        return FailureReason.from_dict(issue)
    return FailureReason.from_dict({"code": "", "message": str(event["reason"])})


def best_manifest(state: SearchState, cand: Candidate) -> dict[str, Any]:
    recorded = state.run.read_run().get("env")
    build = recorded.get("build") if isinstance(recorded, dict) else None
    return {
        "task": state.task.text,
        "task_name": (state.task.fitness_label if state.task.ref.fitness or state.task.proposed_program
                      else state.task.task_spec.name),
        "fitness_origin": state.task.ref.proposed.origin if state.task.ref.proposed is not None else None,
        "proposed_program": state.task.proposed_program,
        "env": state.task.spec.gym_id,
        "spec": state.task.spec.name,
        "candidate": cand.id,
        "fitness": cand.fitness,
        "solved": state.task.solved_or_none,
        "fitness_doc": state.task.fitness_doc,
        "run": str(state.run.root),
        "source_hash": source_hash(cand.source),
        "no_progress": state.no_progress,
        "env_build": build,
    }


def summary_of(state: SearchState, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    best = state.exported
    best_entry = None
    if best is not None:
        best_entry = {
            "id": best.id,
            "fitness": best.fitness,
            "reward_path": str(state.run.candidate(best.iteration, best.index).reward),
            "export_path": str(state.run.best_dir / "reward.py"),
            "solved": is_solved(best.fitness, state.task.solved),
        }
    return {
        "task": state.task.text,
        "env": state.task.spec.gym_id,
        "task_name": state.task.task_spec.name,
        "fitness": state.task.fitness_label,
        "solved_threshold": state.task.solved_or_none,
        "scored_on_default": state.task.scored_on_default,
        "status": state.status,
        "stop_reason": state.stop_reason,
        "designer": state.designer,
        "iterations_done": state.iterations_done,
        "candidates": [c.summary() for c in state.candidates.values()],
        "best": best_entry,
        "no_progress": state.no_progress,
        "rankings": {str(iteration): ids for iteration, ids in sorted(state.rankings.items())},
        "final_eval": _final_eval_entry(state),
        "notices": list(state.notices),
        "usage": usage or {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0},
    }


def _final_eval_entry(state: SearchState) -> dict[str, Any] | None:
    if state.final_choice is None or not state.run.final_eval_json.is_file():
        return None
    data = state.run.read_json(state.run.final_eval_json)
    return {"chosen": data["chosen"], "seeds": data["seeds"], "path": str(state.run.final_eval_json),
            "mean": {label: arm["mean"] for label, arm in data["arms"].items()},
            "human_normalised": data["arms"][data["chosen"]]["human_normalised"]}
