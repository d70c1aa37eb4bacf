"""Rich rendering of a running search: a live table of candidates, and the iteration summaries."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from rewardsmith.candidate import Candidate
from rewardsmith.designer.base import review_without_verdict
from rewardsmith.errors import UsageError
from rewardsmith.hooks import IterationDecision, LoopHooks
from rewardsmith.safetext import literal, sanitize
from rewardsmith.state import SearchState, check_ranking, ranking_text
from rewardsmith.task import is_solved

__all__ = ["REVIEW_UNDECIDED", "STATUS_STYLE", "LiveProgress", "candidate_table", "fmt_fitness"]

REVIEW_UNDECIDED = "review gave no verdict (trained unreviewed)"
"""How a candidate whose ``--review`` decided nothing is labelled on screen."""
STATUS_STYLE = {"proposed": "cyan", "training": "yellow", "scored": "green", "rejected": "red", "failed": "red"}


def fmt_fitness(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.4g}"


def candidate_table(state: SearchState, progress: dict[str, dict[str, Any]] | None = None,
                    iteration: int | None = None, title: str | None = None) -> Table:
    """A table of candidates (one iteration's, or all) with status, fitness and reason."""
    progress = progress or {}
    best = state.best
    table = Table(title=title, expand=False, show_lines=False)
    table.add_column("id", no_wrap=True)
    table.add_column("status")
    table.add_column("fitness", justify="right")
    table.add_column("episodes ≥ threshold", justify="right")
    table.add_column("training", no_wrap=True)
    table.add_column("note / reason", overflow="fold", max_width=70)
    cands = [c for c in state.candidates.values() if iteration is None or c.iteration == iteration]
    for cand in cands:
        star = " ★" if best is not None and cand.id == best.id else ""
        status = Text(cand.status + star, style=STATUS_STYLE.get(cand.status, ""))
        success = ""
        if cand.result is not None and cand.status == "scored":
            success = f"{cand.result.success_rate:.0%}"
        training = ""
        point = progress.get(cand.id)
        if cand.status == "training" and point:
            training = f"step {point['step']}: fitness {fmt_fitness(point['fitness'])}"
        elif cand.result is not None and cand.result.steps:
            training = f"{cand.result.steps} steps, {cand.result.seconds:.0f}s"
        note = str(cand.reason or cand.origin.get("note", ""))  # untrusted text: shown through literal()
        if cand.attempts:
            note = f"(repaired {len(cand.attempts)}×) {note}"
        shown = literal(note)
        if cand.status != "rejected" and review_without_verdict(cand.verdict) is not None:
            shown = Text(REVIEW_UNDECIDED + " ", style="yellow") + shown
        table.add_row(literal(cand.id), status, fmt_fitness(cand.fitness), success, training, shown)
    return table


class LiveProgress(LoopHooks):
    """Shows each candidate's state in a live table; prints a summary after each iteration."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: dict[str, dict[str, Any]] = {}
        self.live: Live | None = None
        self.iteration = 0

    def _render(self, state: SearchState) -> Group:
        header = Text(f"iteration {self.iteration + 1}", style="bold")
        return Group(header, candidate_table(state, self.progress, self.iteration))

    def on_iteration_start(self, state: SearchState, iteration: int) -> None:
        self.iteration = iteration
        self.progress.clear()
        self.live = Live(self._render(state), console=self.console, refresh_per_second=4, transient=False)
        self.live.start()

    def on_candidate(self, state: SearchState, candidate: Candidate) -> None:
        if self.live is not None:
            self.live.update(self._render(state))

    def on_progress(self, state: SearchState, candidate: Candidate, checkpoint: dict[str, Any]) -> None:
        self.progress[candidate.id] = checkpoint
        if self.live is not None:
            self.live.update(self._render(state))

    def on_notice(self, state: SearchState, text: str) -> None:
        self.console.print(Text(f"note: {text}", style="yellow"), soft_wrap=True)

    def on_iteration_end(self, state: SearchState, iteration: int) -> IterationDecision | None:
        if self.live is not None:
            self.live.update(self._render(state))
            self.live.stop()
            self.live = None
            self.console.print()
        best = state.best
        if best is not None:
            solved = " (solved)" if is_solved(best.fitness, state.task.solved) else ""
            self.console.print(Text.assemble("best so far: ", literal(best.id, "bold"), " fitness ",
                                             (fmt_fitness(best.fitness), "bold"), solved))
        return None

    def on_run_end(self, state: SearchState) -> None:
        self.close()

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


class InteractiveProgress(LiveProgress):
    """After each iteration: show the candidates, the best code and the rollouts, then ask what to do.

    Enter goes on; any other line is feedback for the designer (several lines may be given);
    ``use ID`` makes another candidate the next parent; ``rank ID ID …`` ranks the round's scored candidates
    best first (the first becomes the parent, the ranking reaches the designer's next prompt); ``stop`` ends the
    search. Works in a plain terminal; end of input counts as Enter.
    """

    def on_iteration_end(self, state: SearchState, iteration: int) -> IterationDecision | None:
        super().on_iteration_end(state, iteration)
        from rich.syntax import Syntax

        best = state.best
        if best is not None:
            # the critic refuses control characters, but a run recorded before it did may hold some
            self.console.print(Syntax(sanitize(best.source), "python", line_numbers=False, word_wrap=True))
        for cand in state.of_iteration(iteration):
            gif = state.run.candidate(cand.iteration, cand.index).gif
            if cand.status == "scored" and gif.exists():
                self.console.print(literal(f"rollout of {cand.id} (fitness {fmt_fitness(cand.fitness)}): {gif}"),
                                   soft_wrap=True)
        last = iteration + 1 >= state.config.iterations
        hint = " (last round: feedback is kept for `rewardsmith resume`)" if last else ""
        self.console.print(f"[bold]Enter[/] to go on · type feedback · [bold]use ID[/] to pick the parent · "
                           f"[bold]rank ID ID …[/] best first · [bold]stop[/]{hint}")
        decision = IterationDecision()
        while True:
            try:
                line = self.console.input("> ").strip()
            except EOFError:
                return decision
            if not line:
                return decision
            if line.lower() == "stop":
                decision.stop = True
                return decision
            if line.lower().startswith("use "):
                chosen = line[4:].strip()
                if chosen in state.candidates and state.candidates[chosen].status == "scored":
                    decision.parent = chosen
                    self.console.print(literal(f"next parent: {chosen}"))
                else:
                    scored = ", ".join(c.id for c in state.candidates.values() if c.status == "scored")
                    self.console.print(Text.assemble(literal(f"no scored candidate {chosen!r}", "red"),
                                                     literal(f"; scored: {scored}")))
                continue
            if line.lower() == "rank" or line.lower().startswith("rank "):
                self._rank(state, iteration, line.split()[1:], decision)
                continue
            decision.feedback.append(line)
            self.console.print("noted (Enter to go on, or add more)")

    def _rank(self, state: SearchState, iteration: int, ids: list[str], decision: IterationDecision) -> None:
        """Take a ranking of ``iteration`` into ``decision``, or say why it is refused (the person asks again)."""
        try:
            check_ranking(state, iteration, ids)
        except UsageError as exc:
            self.console.print(literal(f"ranking refused: {exc}", "red"), soft_wrap=True)
            return
        decision.ranking, decision.parent = list(ids), None  # the ranking's first is the parent
        self.console.print(literal(f"ranked: {ranking_text(ids)}; next parent: {ids[0]}"), soft_wrap=True)
