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
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from rewardsmith.candidate import Candidate, candidate_id, source_hash
from rewardsmith.critic import Critic, Verdict
from rewardsmith.designer.base import REVIEW_NO_VERDICT, DesignContext, Designer, Proposal
from rewardsmith.errors import BudgetExceeded, EndpointDown, LLMError, RewardsmithError, UsageError
from rewardsmith.executors import JobFailed, ProcessPool, WorkerDied, make_executor
from rewardsmith.halving import keep_top, rung_budgets
from rewardsmith.hooks import IterationDecision, LoopHooks
from rewardsmith.jobs import render_media_job, train_candidate_job
from rewardsmith.results import FailureReason, TrainingResult
from rewardsmith.runs import RunDir, atomic_write_text
from rewardsmith.sandbox import Issue
from rewardsmith.state import (
    SearchConfig,
    SearchState,
    add_ranking,
    best_manifest,
    load_state,
    record_event,
    summary_of,
)
from rewardsmith.task import TaskRef
from rewardsmith.training import RungLeg, TrainConfig

__all__ = ["IterationDecision", "LoopHooks", "export_best", "final_evaluation", "resume_search", "run_search"]


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
    budget = task.budget(config.timesteps)
    run.write_json(run.run_json, {
        "rewardsmith": __version__,
        "task": task_ref.to_dict(),
        "config": config.to_dict(),
        "designer": designer.name,
        "designer_options": _designer_options(designer),
        "status": "running",
        "scored_on_default": task.scored_on_default,
        "budget": budget,  # whole PPO rollouts: the steps each training runs
        "ppo": asdict(task.spec.ppo.fitted(budget)),  # the settings every training uses
        "env": task.record(),
    })
    run.append_event("run_started", task=task_ref.to_dict(), config=config.to_dict(), designer=designer.name)
    state = SearchState(run, task, config, designer.name, budget=budget)
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


# ------------------------------------------------------------------------------------ the search


def _search(state: SearchState, designer: Designer, hooks: LoopHooks, until: int,
            reask: list[Candidate] | None = None) -> SearchState:
    run, config = state.run, state.config
    hooks.on_run_start(state)
    try:
        with (make_executor(config.executor, config.workers, config.ray_address, config.device) as pool,
              Critic(state.task.spec, state.task.task_spec) as critic):
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
            record_event(state, "feedback", iteration=next_iteration, text=text)
    if decision.ranking:  # before the parent: a parent chosen with the ranking overrides its first
        add_ranking(state, next_iteration - 1, decision.ranking)
    if decision.parent:
        if decision.parent not in state.candidates:
            raise UsageError(f"no candidate {decision.parent!r} in this run")
        record_event(state, "parent_chosen", iteration=next_iteration, id=decision.parent)


def _context(state: SearchState, iteration: int) -> DesignContext:
    history = [c for c in state.candidates.values() if c.iteration < iteration]
    return DesignContext(
        task=state.task, iteration=iteration, samples=state.config.samples, seed=state.config.seed,
        history=history, parent=state.parent_for(iteration), feedback=list(state.feedback.get(iteration, [])),
        ranking=state.ranking_for(iteration), repairs=state.config.repairs, budget=state.budget,
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
            and (c.status in ("scored", "failed") or c.id in ahead)]
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
    cand.rung, cand.stopped_at_rung = 0, None
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
    """Train candidates side by side (in rungs with ``--schedule halving``); returns those whose training
    failed by the program's fault."""
    if state.config.schedule == "halving":
        return _train_in_rungs(state, hooks, pool, cands)
    return _train_batch(state, hooks, pool, [(cand, None) for cand in cands])


def _train_in_rungs(state: SearchState, hooks: LoopHooks, pool: ProcessPool,
                    cands: list[Candidate]) -> list[Candidate]:
    """Successive halving: each rung trains the candidates still in the race further; after it the top
    ``ceil(n / eta)`` go on (from the state the rung saved) and the rest stop, scored at that rung.

    A candidate decided past earlier rungs (a resumed run) joins at its own rung.
    """
    config = state.config
    plan = rung_budgets(state.budget, state.task.spec.ppo.rollout(state.budget), config.min_fraction, config.eta)
    failed: list[Candidate] = []
    for rung, steps in enumerate(plan):
        racing = [c for c in cands if c.status not in ("scored", "failed") and min(c.rung, len(plan) - 1) == rung]
        if not racing:
            continue
        last = rung == len(plan) - 1
        batch = []
        for cand in racing:  # the states are named within the candidate's folder (the Ray executor ships it)
            batch.append((cand, RungLeg(stop_at=None if last else steps,
                                        resume_from=_rung_state(rung - 1) if rung else None,
                                        save_to=None if last else _rung_state(rung))))
        failed += _train_batch(state, hooks, pool, batch, final=last, rung=rung)
        if last:
            break
        trained = [c for c in racing if c.status == "training" and c.result is not None]
        kept, stopped = keep_top(trained, config.eta, lambda c: (c.result.fitness, -c.index))  # type: ignore[union-attr]
        state.run.append_event("rung_decided", iteration=racing[0].iteration, rung=rung, steps=steps,
                               kept=[c.id for c in kept], stopped=[c.id for c in stopped],
                               fitness={c.id: c.result.fitness for c in trained if c.result is not None})
        for cand in kept:
            cand.rung = rung + 1
        for cand in stopped:
            cand.stopped_at_rung = rung
            _record_outcome(state, cand, cand.result)
            hooks.on_candidate(state, cand)
    finished = [c for it in {c.iteration for c in cands} for c in state.of_iteration(it)]
    for cand in finished:  # a finished candidate (this call's, or one a killed run stopped) never continues
        if cand.status in ("scored", "failed"):
            for path in state.run.candidate(cand.iteration, cand.index).root.glob("rung-*.state"):
                path.unlink(missing_ok=True)
    return failed


def _rung_state(rung: int) -> Path:
    """Where, in its folder, a candidate's training paused at the end of ``rung`` (see
    :class:`rewardsmith.training.RungLeg`)."""
    return Path(f"rung-{rung}.state")


def _train_batch(state: SearchState, hooks: LoopHooks, pool: ProcessPool,
                 batch: list[tuple[Candidate, RungLeg | None]], final: bool = True,
                 rung: int | None = None) -> list[Candidate]:
    """Train candidates side by side; returns those whose training failed by the program's fault.

    A training process that died (killed, out of memory) is not the program's fault: such a candidate
    is recorded as failed but not returned, so it is not sent for repair. With ``final`` False (a rung
    before the last), a scored result is kept on the candidate but not recorded as its outcome yet.
    """
    futures: dict[Future, Candidate] = {}
    train_config = TrainConfig.for_search(state.config, state.budget)
    for cand, leg in batch:
        paths = state.run.candidate(cand.iteration, cand.index)
        args: tuple[Any, ...] = (state.task.ref.to_dict(), cand.source, train_config, paths, cand.id)
        future = pool.submit(train_candidate_job, *args, *((leg,) if leg is not None else ()))
        futures[future] = cand
        cand.status = "training"
        extra = {"rung": rung} if rung is not None else {}
        state.run.append_event("candidate_training", id=cand.id, source_hash=source_hash(cand.source), **extra)
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
                result = TrainingResult("failed", -math.inf, reason=FailureReason("worker_crashed", str(exc)))
                state.run.write_json(state.run.candidate(cand.iteration, cand.index).curves, result.to_dict())
            if final or result.status != "scored":
                _record_outcome(state, cand, result)
            else:
                cand.result = result  # this rung's result: the rung's decision records it or trains on
            hooks.on_candidate(state, cand)
            if cand.status == "failed" and not died:
                failed.append(cand)
    return failed


def _record_outcome(state: SearchState, cand: Candidate, result: TrainingResult | None) -> None:
    if result is not None:
        cand.result = result
        cand.status = "scored" if result.status == "scored" else "failed"
    reason = cand.reason
    state.run.append_event("candidate_finished", id=cand.id, status=cand.status, fitness=cand.fitness,
                           reason=str(reason) if reason else None, issue=reason.to_dict() if reason else None,
                           source_hash=source_hash(cand.source))


def _render_media(state: SearchState, pool: ProcessPool, iteration: int) -> None:
    """A GIF of every scored policy of the iteration (and an MP4 of its best, with ffmpeg), rendered side by side
    on the executor into each candidate's folder: a person watches them together and may rank them."""
    scored = [c for c in state.of_iteration(iteration) if c.status == "scored"]
    if not state.config.media or not scored:
        return
    best = max(scored, key=lambda c: c.merit)  # a rung's fitness never outranks a full training's
    futures = [(cand, pool.submit(render_media_job, state.task.ref.to_dict(),
                                  state.run.candidate(cand.iteration, cand.index), mp4=cand.id == best.id))
               for cand in scored]
    for cand, future in futures:
        try:
            files = future.result()
        except (WorkerDied, JobFailed) as exc:  # a picture is never worth failing the search
            state.run.append_event("media_failed", id=cand.id, reason=str(exc))
            continue
        state.run.append_event("media_written", id=cand.id, **files)


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


def _write_summary(state: SearchState, designer: Designer) -> None:
    state.run.write_json(state.run.summary_json, summary_of(state, designer.usage.to_dict()))
