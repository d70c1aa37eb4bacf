"""The search: iterations of design, critique, training and selection, written to the run as it goes.

Each iteration: the designer proposes K programs; the critic checks each (a refused one goes back
to the designer for repair, up to ``repairs`` times); the accepted ones train in parallel on the
process pool; the best so far is kept; a person (or a hook) may add feedback or pick the parent.

Everything is an event in ``events.jsonl``. :func:`resume_search` rebuilds the state from those
events: finished candidates are not trained again, recorded proposals are not asked for again.
A resume first asks again for the samples the LLM never answered (``llm_failed``). Within a round,
each distinct program trains once (a repeat is refused as ``duplicate``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from rewardsmith.candidate import Candidate, candidate_id, source_hash
from rewardsmith.critic import Critic, Verdict
from rewardsmith.designer.base import REVIEW_NO_VERDICT, DesignContext, Designer, Proposal
from rewardsmith.errors import BudgetExceeded, EndpointDown, LLMError, RewardsmithError, RunDirError, UsageError
from rewardsmith.executors import EXECUTORS, JobFailed, ProcessPool, WorkerDied, default_workers, make_executor
from rewardsmith.runs import RunDir, atomic_write_text, to_json
from rewardsmith.sandbox import Issue
from rewardsmith.task import ResolvedTask, TaskRef, is_solved
from rewardsmith.training import TrainConfig, TrainingResult

__all__ = ["IterationDecision", "LoopHooks", "SearchConfig", "SearchState", "resume_search", "run_search"]


@dataclass(frozen=True)
class SearchConfig:
    """How a search runs; recorded in run.json."""

    iterations: int = 3
    samples: int = 4
    """Candidates per iteration (K)."""
    timesteps: int | None = None
    """PPO steps per candidate; None takes the env spec's budget."""
    seed: int = 0
    workers: int = field(default_factory=default_workers)
    """Trainings run side by side (processes, one torch thread each)."""
    device: str = "auto"
    repairs: int = 2
    """Times a refused or crashed candidate goes back to the designer."""
    checkpoints: int = 10
    eval_episodes: int = 5
    final_episodes: int = 10
    media: bool = True
    """Render a GIF of each iteration's best policy."""
    executor: str = "local"
    """Where jobs run: ``local`` (a process pool) or ``ray``."""
    ray_address: str | None = None
    """The Ray cluster (``auto``, ``HOST:PORT``, ``ray://…``); None starts a local Ray instance."""

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
        if self.executor not in EXECUTORS:
            raise UsageError(f"--executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if self.ray_address is not None and self.executor != "ray":
            raise UsageError("--ray-address needs --executor ray")

    def train_config(self, task: ResolvedTask) -> TrainConfig:
        return TrainConfig(
            timesteps=task.budget(self.timesteps),
            seed=self.seed,
            device=self.device,
            checkpoints=self.checkpoints,
            eval_episodes=self.eval_episodes,
            final_episodes=self.final_episodes,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class IterationDecision:
    """What a person (or hook) decided after an iteration."""

    stop: bool = False
    feedback: list[str] = field(default_factory=list)
    parent: str | None = None
    """Use this candidate as the next iteration's parent instead of the best."""


class LoopHooks:
    """Callbacks on the caller's thread; override what you need (the CLI renders with them)."""

    def on_run_start(self, state: SearchState) -> None: ...

    def on_iteration_start(self, state: SearchState, iteration: int) -> None: ...

    def on_candidate(self, state: SearchState, candidate: Candidate) -> None: ...

    def on_progress(self, state: SearchState, candidate: Candidate, checkpoint: dict[str, Any]) -> None: ...

    def on_notice(self, state: SearchState, text: str) -> None:
        """Something the person running the search should know (also an event and in ``summary.json``)."""

    def on_iteration_end(self, state: SearchState, iteration: int) -> IterationDecision | None:
        return None

    def on_run_end(self, state: SearchState) -> None: ...


@dataclass
class SearchState:
    """The search so far, rebuilt from the event log on resume."""

    run: RunDir
    task: ResolvedTask
    config: SearchConfig
    designer: str
    candidates: dict[str, Candidate] = field(default_factory=dict)
    feedback: dict[int, list[str]] = field(default_factory=dict)
    """Feedback to give the designer when it proposes iteration N."""
    parents: dict[int, str] = field(default_factory=dict)
    iterations_done: int = 0
    status: str = "running"
    stop_reason: str | None = None
    final_choice: str | None = None
    """The candidate a final multi-seed evaluation chose for export (``--final-eval``)."""
    notices: list[dict[str, Any]] = field(default_factory=list)
    """What the search told the person (code, iteration, text): an endpoint that ignores sampling, re-asked samples."""

    @property
    def best(self) -> Candidate | None:
        scored = [c for c in self.candidates.values() if c.status == "scored"]
        return max(scored, key=lambda c: (c.fitness, -c.iteration, -c.index)) if scored else None

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

    def parent_for(self, iteration: int) -> Candidate | None:
        """The parent of ``iteration``'s proposals: the one a person chose, else the best of earlier iterations."""
        chosen = self.parents.get(iteration)
        if chosen and chosen in self.candidates:
            return self.candidates[chosen]
        earlier = [c for c in self.candidates.values() if c.status == "scored" and c.iteration < iteration]
        return max(earlier, key=lambda c: (c.fitness, -c.iteration, -c.index)) if earlier else None


# ----------------------------------------------------------------------------------------- entry


def run_search(
    run: RunDir,
    task_ref: TaskRef,
    designer: Designer,
    config: SearchConfig,
    hooks: LoopHooks | None = None,
) -> SearchState:
    """Start a new search in ``run`` (an empty run directory)."""
    from rewardsmith import __version__

    task = task_ref.resolve()
    run.write_json(run.run_json, {
        "rewardsmith": __version__,
        "task": task_ref.to_dict(),
        "config": config.to_dict(),
        "designer": designer.name,
        "designer_options": _designer_options(designer),
        "status": "running",
        "scored_on_default": task.scored_on_default,
        "budget": task.budget(config.timesteps),  # whole PPO rollouts: the steps each training runs
        "ppo": asdict(task.spec.ppo.fitted(task.budget(config.timesteps))),  # the settings every training uses
        "env": task.record(),
    })
    run.append_event("run_started", task=task_ref.to_dict(), config=config.to_dict(), designer=designer.name)
    state = SearchState(run, task, config, designer.name)
    return _search(state, designer, hooks or LoopHooks(), until=config.iterations)


def _designer_options(designer: Designer) -> dict[str, Any]:
    """What rebuilds the same designer on resume (``make_designer(name, options, run)``); never a key."""
    options = getattr(designer, "options", None)
    return options.to_dict() if hasattr(options, "to_dict") else {}


def resume_search(run: RunDir, designer: Designer, iterations: int | None = None,
                  hooks: LoopHooks | None = None, workers: int | None = None) -> SearchState:
    """Continue a stopped, interrupted or finished search.

    Args:
        iterations: further iterations after the last finished one; None finishes the original plan.
    """
    state = load_state(run)
    if workers is not None:
        state.config = SearchConfig.from_dict({**state.config.to_dict(), "workers": workers})
    unanswered = [c for c in state.candidates.values() if _llm_failed(c)]
    if iterations is not None:
        until = state.iterations_done + iterations
    else:
        until = state.config.iterations
        if state.iterations_done >= until and not unanswered:
            raise UsageError(f"{run.root} finished all {until} iterations; pass --iterations N to search N more")
    run.update_run(status="running")
    run.append_event("run_resumed", iterations_done=state.iterations_done, until=until, reask=len(unanswered))
    state.status = "running"
    return _search(state, designer, hooks or LoopHooks(), until=until, reask=unanswered)


def _llm_failed(cand: Candidate) -> bool:
    """A sample that never got a reply from the LLM (``llm_failed``): a resume asks for it again."""
    refused = cand.origin.get("refused")
    return cand.status == "rejected" and isinstance(refused, dict) and refused.get("code") == "llm_failed"


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
    state = SearchState(run, task, config, info.get("designer", "builtin"), status=info.get("status", "running"))
    for event in run.iter_events():
        _apply_event(state, event)
    return state


def record_feedback(run: RunDir, text: str) -> int:
    """Record human feedback on a run; it reaches the designer when the search resumes.

    Returns:
        The iteration whose proposals will receive it.
    """
    if not text.strip():
        raise UsageError("feedback text is empty")
    state = load_state(run)
    iteration = state.iterations_done
    run.append_event("feedback", iteration=iteration, text=text)
    return iteration


# ------------------------------------------------------------------------------------ the search


def _search(state: SearchState, designer: Designer, hooks: LoopHooks, until: int,
            reask: list[Candidate] | None = None) -> SearchState:
    run, config = state.run, state.config
    hooks.on_run_start(state)
    try:
        with make_executor(config.executor, config.workers, config.ray_address, config.device) as pool, Critic(state.task.spec, state.task.task) as critic:
            if reask:
                _reask(state, designer, hooks, pool, critic, reask)
                _write_summary(state, designer)
            for iteration in range(state.iterations_done, until):
                hooks.on_iteration_start(state, iteration)
                _run_iteration(state, designer, hooks, pool, critic, iteration)
                _render_media(state, pool, iteration)
                state.iterations_done = iteration + 1
                best = state.best
                run.append_event("iteration_finished", iteration=iteration, best=best.id if best else None,
                                 best_fitness=best.fitness if best else None)
                _write_summary(state, designer)
                decision = hooks.on_iteration_end(state, iteration)
                if decision is not None:
                    _apply_decision(state, decision, iteration + 1)
                    if decision.stop:
                        state.status, state.stop_reason = "stopped", "stopped by the user"
                        break
        if state.status == "running":
            state.status = "finished"
    except (BudgetExceeded, EndpointDown) as exc:
        state.status, state.stop_reason = "stopped", str(exc)
    except LLMError as exc:
        state.status, state.stop_reason = "failed", str(exc)
        _finish_run(state, designer)
        raise
    except KeyboardInterrupt:
        state.status = "interrupted"
        state.stop_reason = f"interrupted (Ctrl-C); resume with `rewardsmith resume {run.root}`"
        _finish_run(state, designer)
        raise
    except Exception as exc:  # a bug (in a hook's rendering, say) must not leave the run "running" with no reason
        reason = str(exc) if isinstance(exc, RewardsmithError) else f"internal error: {type(exc).__name__}: {exc}"
        state.status, state.stop_reason = "failed", reason
        _finish_run(state, designer)
        raise
    _finish_run(state, designer)
    hooks.on_run_end(state)
    return state


def _finish_run(state: SearchState, designer: Designer) -> None:
    run = state.run
    if state.best is not None:
        export_best(state)
    run.update_run(status=state.status, stop_reason=state.stop_reason)
    run.append_event("run_" + state.status, reason=state.stop_reason)
    _write_summary(state, designer)


def _apply_decision(state: SearchState, decision: IterationDecision, next_iteration: int) -> None:
    for text in decision.feedback:
        if text.strip():
            state.run.append_event("feedback", iteration=next_iteration, text=text)
            state.feedback.setdefault(next_iteration, []).append(text)
    if decision.parent:
        if decision.parent not in state.candidates:
            raise UsageError(f"no candidate {decision.parent!r} in this run")
        state.run.append_event("parent_chosen", iteration=next_iteration, id=decision.parent)
        state.parents[next_iteration] = decision.parent


def _context(state: SearchState, iteration: int) -> DesignContext:
    history = [c for c in state.candidates.values() if c.iteration < iteration]
    return DesignContext(
        task=state.task, iteration=iteration, samples=state.config.samples, seed=state.config.seed,
        history=history, parent=state.parent_for(iteration), feedback=list(state.feedback.get(iteration, [])),
        repairs=state.config.repairs,
    )


def _run_iteration(state: SearchState, designer: Designer, hooks: LoopHooks, pool: ProcessPool,
                   critic: Critic, iteration: int) -> None:
    config = state.config
    ctx = _context(state, iteration)
    recorded = {c.index: c for c in state.of_iteration(iteration)}
    if len(recorded) < config.samples:
        proposals = designer.propose(ctx)[: config.samples]
        _record_proposals(state, hooks, iteration,
                          [(index, p) for index, p in enumerate(proposals) if index not in recorded])
    todo = [c for c in state.of_iteration(iteration) if c.status in ("proposed", "training")]
    _check_and_train(state, designer, hooks, pool, critic, ctx, todo)


def _record_proposals(state: SearchState, hooks: LoopHooks, iteration: int,
                      proposals: list[tuple[int, Proposal]]) -> None:
    """Record proposals as the candidates of ``iteration`` at their indices (replacing any there)."""
    for index, proposal in proposals:
        cand = Candidate(candidate_id(iteration, index), iteration, index, proposal.source, dict(proposal.origin))
        _write_candidate_source(state, cand)
        state.run.append_event("candidate_proposed", id=cand.id, iteration=iteration, index=index,
                               source=cand.source, origin=cand.origin)
        state.candidates[cand.id] = cand
        hooks.on_candidate(state, cand)
    resampled = sorted({str(p.origin["resampled"]) for _, p in proposals if p.origin.get("resampled")})
    for text in resampled:  # the designer saw identical samples and asked again (an LLM ignoring sampling)
        _notice(state, hooks, "identical_samples", iteration, text)


def _check_and_train(state: SearchState, designer: Designer, hooks: LoopHooks, pool: ProcessPool, critic: Critic,
                     ctx: DesignContext, todo: list[Candidate]) -> None:
    """Check, repair and train ``todo`` until each is scored or out of repairs."""
    while todo:
        accepted = [c for c in todo if _check_with_repairs(state, designer, hooks, critic, ctx, c)]
        accepted = [c for c in accepted if not _duplicate(state, hooks, c, accepted)]
        failed = _train_all(state, hooks, pool, accepted)
        todo = [c for c in failed if _repair_after_crash(state, designer, hooks, ctx, c)]


def _duplicate(state: SearchState, hooks: LoopHooks, cand: Candidate, batch: list[Candidate]) -> bool:
    """True (and ``cand`` refused as ``duplicate``) when an earlier candidate of its iteration has the same
    program and trains or trained: each distinct program is trained once per round."""
    ahead = {c.id for c in batch[: [c.id for c in batch].index(cand.id)]}
    same = [c for c in state.of_iteration(cand.iteration)
            if c.id != cand.id and c.source == cand.source
            and (c.status in ("scored", "failed", "training") or c.id in ahead)]
    if not same:
        return False
    issue = Issue("duplicate", f"the same program as {same[0].id}, which trains once for both")
    cand.verdict = Verdict(False, (issue,))
    cand.status = "rejected"
    state.run.write_json(state.run.candidate(cand.iteration, cand.index).critic, cand.verdict.to_dict())
    state.run.append_event("candidate_checked", id=cand.id, verdict=cand.verdict.to_dict(),
                           source_hash=source_hash(cand.source))
    _record_outcome(state, cand, None)
    hooks.on_candidate(state, cand)
    return True


def _reask(state: SearchState, designer: Designer, hooks: LoopHooks, pool: ProcessPool, critic: Critic,
           unanswered: list[Candidate]) -> None:
    """Ask again, on resume, for the samples whose LLM request failed; then check and train them."""
    ids = ", ".join(c.id for c in unanswered)
    _notice(state, hooks, "reasked", None, f"re-asking {len(unanswered)} sample(s) the LLM never answered: {ids}")
    for iteration in sorted({c.iteration for c in unanswered}):
        slots = tuple(sorted(c.index for c in unanswered if c.iteration == iteration))
        ctx = replace(_context(state, iteration), samples=len(slots), slots=slots)
        proposals = designer.propose(ctx)[: len(slots)]
        _record_proposals(state, hooks, iteration, list(zip(slots, proposals)))
        todo = [state.candidates[candidate_id(iteration, index)] for index in slots[: len(proposals)]]
        _check_and_train(state, designer, hooks, pool, critic, ctx, todo)


def _notice(state: SearchState, hooks: LoopHooks, code: str, iteration: int | None, text: str) -> None:
    """Tell the person: an event, a line on screen (``on_notice``) and an entry of ``summary.json``."""
    entry = {"code": code, "iteration": iteration, "text": text}
    state.run.append_event("notice", **entry)
    state.notices.append(entry)
    hooks.on_notice(state, text)


def _check_with_repairs(state: SearchState, designer: Designer, hooks: LoopHooks, critic: Critic,
                        ctx: DesignContext, cand: Candidate) -> bool:
    """Check ``cand``; while refused and repairs remain, ask the designer for a fix. True if accepted."""
    run = state.run
    while True:
        verdict = _verdict(critic, cand)
        if verdict.accepted:
            verdict = _review(state, designer, _serving(ctx, cand), cand, verdict)
        cand.verdict = verdict
        paths = run.candidate(cand.iteration, cand.index)
        run.write_json(paths.critic, verdict.to_dict())
        run.append_event("candidate_checked", id=cand.id, verdict=verdict.to_dict(), source_hash=source_hash(cand.source))
        if verdict.accepted:
            cand.status = "proposed"
            hooks.on_candidate(state, cand)
            return True
        cand.status = "rejected"
        hooks.on_candidate(state, cand)
        if len(cand.attempts) >= state.config.repairs:
            _record_outcome(state, cand, None)
            return False
        proposal = designer.repair(_serving(ctx, cand), cand.source, verdict.explain(), len(cand.attempts) + 1)
        if proposal is None:
            _record_outcome(state, cand, None)
            return False
        _record_repair(state, cand, proposal, verdict.explain())
        hooks.on_candidate(state, cand)


def _serving(ctx: DesignContext, cand: Candidate) -> DesignContext:
    """The context of a repair or review of ``cand``: which candidate, at which version, it serves.

    An LLM designer keys its requests by it, so identical programs of two candidates get two replies.
    """
    return replace(ctx, candidate=cand.id, attempt=len(cand.attempts))


def _verdict(critic: Critic, cand: Candidate) -> Verdict:
    """The critic's verdict, or the designer's own refusal of a reply it got no program from."""
    refused = cand.origin.get("refused")
    if refused:
        return Verdict(False, (Issue.from_dict(refused),))
    return critic.check(cand.source)


def _review(state: SearchState, designer: Designer, ctx: DesignContext, cand: Candidate, verdict: Verdict) -> Verdict:
    """A designer that reviews (``--review``) may refuse what the critic accepted; its reasons join the verdict."""
    review = getattr(designer, "review", None)
    outcome = review(ctx, cand.source, verdict) if review is not None else None
    if outcome is None:
        return verdict
    state.run.append_event("candidate_reviewed", id=cand.id, source_hash=source_hash(cand.source),
                           **outcome.to_dict())
    if outcome.passed is None:  # neither pass nor fail: the program trains, and the verdict says why unreviewed
        note = Issue(REVIEW_NO_VERDICT, outcome.reasons, severity="warning")
        return replace(verdict, issues=verdict.issues + (note,))
    if outcome.passed:
        return verdict
    return replace(verdict, accepted=False, issues=verdict.issues + (Issue("review", outcome.reasons),))


def _repair_after_crash(state: SearchState, designer: Designer, hooks: LoopHooks, ctx: DesignContext,
                        cand: Candidate) -> bool:
    """A candidate whose training failed goes back for repair while repairs remain."""
    if len(cand.attempts) >= state.config.repairs or cand.result is None or not cand.result.reason:
        return False
    proposal = designer.repair(_serving(ctx, cand), cand.source, f"training failed: {cand.reason}",
                               len(cand.attempts) + 1)
    if proposal is None:
        return False
    _record_repair(state, cand, proposal, f"training failed: {cand.reason}")
    hooks.on_candidate(state, cand)
    return True


def _record_repair(state: SearchState, cand: Candidate, proposal: Proposal, problem: str) -> None:
    cand.attempts.append({"source": cand.source, "problem": problem})
    cand.source = proposal.source
    cand.origin = {**cand.origin, **proposal.origin, "repairs": len(cand.attempts)}
    cand.status = "proposed"
    cand.result = None
    paths = state.run.candidate(cand.iteration, cand.index)
    state.run.write_json(paths.attempts, cand.attempts)
    _write_candidate_source(state, cand)
    state.run.append_event("candidate_repaired", id=cand.id, attempt=len(cand.attempts), problem=problem,
                           source=cand.source, origin=cand.origin)


def _write_candidate_source(state: SearchState, cand: Candidate) -> None:
    paths = state.run.candidate(cand.iteration, cand.index)
    paths.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(paths.reward, cand.source if cand.source.endswith("\n") else cand.source + "\n")
    state.run.write_json(paths.origin, cand.origin)


def _train_all(state: SearchState, hooks: LoopHooks, pool: ProcessPool, cands: list[Candidate]) -> list[Candidate]:
    """Train candidates side by side; returns those whose training failed by the program's fault.

    A training process that died (killed, out of memory) is not the program's fault: such a candidate
    is recorded as failed but not returned, so it is not sent for repair.
    """
    futures: dict[Future, Candidate] = {}
    train_config = state.config.train_config(state.task)
    for cand in cands:
        paths = state.run.candidate(cand.iteration, cand.index)
        future = pool.submit(train_candidate_job, state.task.ref.to_dict(), cand.source, train_config, paths, cand.id)
        futures[future] = cand
        cand.status = "training"
        state.run.append_event("candidate_training", id=cand.id, source_hash=source_hash(cand.source))
        hooks.on_candidate(state, cand)
    failed = []
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
        for future, data in pool.drain_progress():
            if future in futures:
                hooks.on_progress(state, futures[future], data)
        for future in done:
            cand = futures[future]
            died = False
            try:
                outcome = future.result()
                result = TrainingResult.from_dict(outcome["result"])
                cand.analysis = outcome.get("analysis")
            except (WorkerDied, JobFailed) as exc:
                died = isinstance(exc, WorkerDied)
                reason = {"code": "worker_crashed", "message": str(exc), "line": None, "severity": "error"}
                result = TrainingResult("failed", -math.inf, reason=reason)
                state.run.write_json(state.run.candidate(cand.iteration, cand.index).curves, result.to_dict())
            _record_outcome(state, cand, result)
            hooks.on_candidate(state, cand)
            if cand.status == "failed" and not died:
                failed.append(cand)
    return failed


def _record_outcome(state: SearchState, cand: Candidate, result: TrainingResult | None) -> None:
    if result is not None:
        cand.result = result
        cand.status = "scored" if result.status == "scored" else "failed"
    state.run.append_event("candidate_finished", id=cand.id, status=cand.status, fitness=cand.fitness,
                           reason=cand.reason, source_hash=source_hash(cand.source))


# ------------------------------------------------------------------------------- the worker job


def train_candidate_job(task_ref: dict[str, Any], source: str | None, config: TrainConfig,
                        paths: Any, candidate: str | None = None) -> dict[str, Any]:
    """Runs in a pool worker: train one candidate, analyse it, write its files, return its result."""
    from rewardsmith.analyzer import analyze_candidate, analyzer_failure
    from rewardsmith.executors import report_progress
    from rewardsmith.training import train

    task = TaskRef.from_dict(task_ref).resolve()
    trained = train(task.spec, task.task, task.fitness, task.solved, source, config, policy_dir=paths.policy_dir,
                    on_checkpoint=lambda c: report_progress(asdict(c)))
    try:
        outcome: dict[str, Any] = {"result": trained.result.to_dict(), "analysis": None}
        if trained.result.status == "scored":
            try:
                outcome["analysis"] = analyze_candidate(task, trained, candidate_id=candidate)
            except Exception as exc:  # noqa: BLE001 - an analyzer bug must not throw away a scored training
                outcome["analysis"] = analyzer_failure(exc)
    finally:
        trained.close()
    atomic_write_text(paths.curves, to_json(outcome["result"]))
    if outcome["analysis"] is not None:
        atomic_write_text(paths.analysis, to_json(outcome["analysis"]))
    return outcome


def _render_media(state: SearchState, pool: ProcessPool, iteration: int) -> None:
    """A GIF (and MP4 with ffmpeg) of the iteration's best policy, rendered on the pool, in its folder."""
    from rewardsmith.media import render_media_job

    scored = [c for c in state.of_iteration(iteration) if c.status == "scored"]
    if not state.config.media or not scored:
        return
    best = max(scored, key=lambda c: (c.fitness, -c.index))
    paths = state.run.candidate(best.iteration, best.index)
    try:
        files = pool.submit(render_media_job, state.task.ref.to_dict(), paths).result()
    except (WorkerDied, JobFailed) as exc:  # a picture is never worth failing the search
        state.run.append_event("media_failed", id=best.id, reason=str(exc))
        return
    state.run.append_event("media_written", id=best.id, **files)


# ------------------------------------------------------------------------------ state from events


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
    elif kind == "candidate_checked" and event["id"] in cands:
        cand = cands[event["id"]]
        cand.verdict = Verdict.from_dict(event["verdict"])
        cand.status = "proposed" if cand.verdict.accepted else "rejected"
    elif kind == "candidate_finished" and event["id"] in cands:
        cand = cands[event["id"]]
        paths = state.run.candidate(cand.iteration, cand.index)
        if event["status"] in ("scored", "failed") and paths.curves.is_file():
            cand.result = TrainingResult.from_dict(state.run.read_json(paths.curves))
            cand.status = event["status"]
            if paths.analysis.is_file():
                cand.analysis = state.run.read_json(paths.analysis)
        elif event["status"] == "rejected":
            cand.status = "rejected"
    elif kind == "iteration_finished":
        state.iterations_done = max(state.iterations_done, int(event["iteration"]) + 1)
    elif kind == "feedback":
        state.feedback.setdefault(int(event["iteration"]), []).append(event["text"])
    elif kind == "parent_chosen":
        state.parents[int(event["iteration"])] = event["id"]
    elif kind == "final_evaluation":
        state.final_choice = event["chosen"]
    elif kind == "notice":
        state.notices.append({"code": event.get("code"), "iteration": event.get("iteration"),
                              "text": str(event.get("text", ""))})


# ------------------------------------------------------------------------------------ the outputs


def export_best(state: SearchState) -> None:
    """Write the best candidate's standalone module and manifest into ``best/``."""
    from rewardsmith.export import write_export

    best = state.exported
    if best is None:
        return
    manifest = best_manifest(state, best)
    write_export(state.run.best_dir / "reward.py", best.source, state.task.spec, manifest)
    state.run.write_json(state.run.best_dir / "manifest.json", manifest)


def best_manifest(state: SearchState, cand: Candidate) -> dict[str, Any]:
    recorded = state.run.read_run().get("env")
    build = recorded.get("build") if isinstance(recorded, dict) else None
    return {
        "task": state.task.text,
        "task_name": state.task.task.name if not state.task.ref.fitness else state.task.ref.fitness,
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


def final_evaluation(state: SearchState, designer: Designer, seeds: int, top: int = 3,
                     on_result: Callable[[str, int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Re-train the top candidates and the baselines on fresh seeds; export the best mean (``--final-eval``)."""
    from rewardsmith.evaluate import evaluate_top_candidates

    evaluation, chosen = evaluate_top_candidates(state, seeds, top, on_result)
    data = evaluation.to_dict()
    data["chosen"] = chosen
    state.run.write_json(state.run.final_eval_json, data)
    state.run.append_event("final_evaluation", chosen=chosen, seeds=seeds)
    state.final_choice = chosen
    export_best(state)
    _write_summary(state, designer)
    return data


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
        "task_name": state.task.task.name,
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


def _write_summary(state: SearchState, designer: Designer) -> None:
    state.run.write_json(state.run.summary_json, summary_of(state, designer.usage.to_dict()))
