"""The work a process-pool worker does: each job resolves the task from its plain record (the user's env and
fitness load in the worker, never in the process that reads the run), then trains, evaluates or renders.

Jobs take and return plain data (a :class:`~rewardsmith.task.TaskRef` as a dict, JSON-ready results), so any
executor can run them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from typing import Any

from rewardsmith.runs import CandidatePaths, atomic_write_text, to_json
from rewardsmith.seeds import FINAL_SEED
from rewardsmith.task import TaskRef
from rewardsmith.training import RungLeg, TrainConfig

__all__ = ["evaluation_job", "render_media_job", "train_candidate_job"]


def train_candidate_job(task_ref: dict[str, Any], source: str | None, config: TrainConfig,
                        paths: CandidatePaths, candidate: str | None = None,
                        leg: RungLeg | None = None) -> dict[str, Any]:
    """Train one candidate of the search (or one rung of it: ``leg``), analyse it, write its files, return its
    result."""
    from rewardsmith.analyzer import analyze_candidate, analyzer_failure
    from rewardsmith.executors import report_progress
    from rewardsmith.training import train

    task = TaskRef.from_dict(task_ref).resolve()
    if leg is not None:  # its states are named within the candidate's folder, wherever the job runs that folder
        leg = replace(leg, resume_from=paths.root / leg.resume_from if leg.resume_from else None,
                      save_to=paths.root / leg.save_to if leg.save_to else None)
    trained = train(task, source, config, policy_dir=paths.policy_dir,
                    on_checkpoint=lambda c: report_progress(asdict(c)), leg=leg)
    try:
        outcome: dict[str, Any] = {"result": trained.result.to_dict(), "analysis": None}
        if trained.result.status == "scored":
            try:
                paused = leg is not None and leg.stop_at is not None  # a rung short of the full budget
                outcome["analysis"] = analyze_candidate(task, trained, candidate_id=candidate,
                                                        budget=config.timesteps if paused else None)
            except Exception as exc:  # noqa: BLE001 - an analyzer bug must not throw away a scored training
                outcome["analysis"] = analyzer_failure(exc)
    finally:
        trained.close()
    atomic_write_text(paths.curves, to_json(outcome["result"]))
    if outcome["analysis"] is not None:
        atomic_write_text(paths.analysis, to_json(outcome["analysis"]))
    return outcome


def evaluation_job(task_ref: dict[str, Any], source: str | None, config: TrainConfig,
                   sparse_from_fitness: bool = False) -> dict[str, Any]:
    """Train one arm of an evaluation on one seed; return its result (nothing is written).

    ``sparse_from_fitness``: train on the sparse reward the task's fitness defines (:mod:`rewardsmith.sparse`)."""
    from rewardsmith.sparse import SparseFromFitness
    from rewardsmith.training import train

    task = TaskRef.from_dict(task_ref).resolve()
    wrapper = None
    if sparse_from_fitness:
        def wrapper(env):
            return SparseFromFitness(env, task.spec, task.task_spec, task.fitness, task.solved)
    trained = train(task, source, config, reward_wrapper=wrapper)
    trained.close()
    return trained.result.to_dict()


def render_media_job(task_ref: dict[str, Any], paths: CandidatePaths, seed: int | None = None,
                     mp4: bool = True) -> dict[str, Any]:
    """Runs in a pool worker: render one episode of a candidate's saved policy into its folder: a GIF, and with
    ``mp4`` an MP4 where ffmpeg exists (it costs about twice the GIF, so the loop asks it of each round's best).

    Returns:
        ``{"gif": path or None, "mp4": path or None, "frames": n, "seconds": s}``, plus ``reason``
        when nothing could be rendered.
    """
    from rewardsmith.media import choose_mujoco_gl, load_policy, render_episode, write_gif, write_mp4

    started = time.monotonic()
    task = TaskRef.from_dict(task_ref).resolve()
    if task.spec.extra == "mujoco":
        no_gl = choose_mujoco_gl()
        if no_gl is not None:
            return {"gif": None, "mp4": None, "frames": 0, "seconds": 0.0, "reason": no_gl}
    try:
        policy = load_policy(task.spec, task.task_spec, paths.policy_dir)
    except FileNotFoundError as exc:
        return {"gif": None, "mp4": None, "frames": 0, "seconds": 0.0, "reason": str(exc)}
    try:
        frames, fps = render_episode(policy, task.spec, task.task_spec, FINAL_SEED if seed is None else seed)
    except Exception as exc:  # an OpenGL that cannot draw (mujoco.FatalError, RuntimeError): the run goes on
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        return {"gif": None, "mp4": None, "frames": 0, "seconds": time.monotonic() - started,
                "reason": f"{task.spec.gym_id} could not render: {reason}"}
    if not frames:
        return {"gif": None, "mp4": None, "frames": 0, "seconds": time.monotonic() - started,
                "reason": f"{task.spec.gym_id} rendered no frames"}
    gif = write_gif(frames, paths.gif, fps)
    video = write_mp4(frames, paths.mp4, fps) if mp4 else None
    return {"gif": str(gif), "mp4": str(video) if video else None, "frames": len(frames),
            "seconds": time.monotonic() - started}
