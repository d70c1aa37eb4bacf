"""The ``rewardsmith`` command: parses, calls the library, renders with Rich."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from typer.exceptions import TyperException

from rewardsmith.errors import RewardsmithError, UsageError

app = typer.Typer(
    name="rewardsmith",
    help="Design, check, train and export reward functions for Gymnasium environments.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode=None,
)
console = Console()
err_console = Console(stderr=True)

EnvOption = Annotated[str, typer.Option("--env", "-e", help="Bundled env name, spec file, or Gymnasium id.")]
TaskOption = Annotated[Optional[str], typer.Option("--task", "-t", help="A task the env spec names.")]
FitnessOption = Annotated[Optional[str], typer.Option("--fitness", help="FILE.py:FUNCTION scoring one episode.")]


def _read_source(path: Path) -> str:
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"reward file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read reward file {path}: {exc}") from None
    if not source.strip():
        raise UsageError(f"reward file {path} is empty")
    return source


def _task_ref(env: str, text: str | None, task: str | None, fitness: str | None):
    from rewardsmith.task import TaskRef

    env_ref = str(Path(env).resolve()) if env.endswith(".py") else env
    fitness_ref = None
    if fitness:
        path, sep, name = fitness.rpartition(":")
        fitness_ref = f"{Path(path).resolve()}:{name}" if sep and path else fitness
    text = (text or "").strip()
    ref = TaskRef(env_ref, text, task, fitness_ref)
    resolved = ref.resolve()
    if not text:
        if task is None and fitness is None:
            raise UsageError("give a task text, or --task NAME for one of the env's tasks (see `rewardsmith envs`)")
        ref = TaskRef(env_ref, resolved.task.description, task, fitness_ref)
        resolved = ref.resolve()
    return ref, resolved


# ------------------------------------------------------------------------------------------ run


@app.command()
def run(
    text: Annotated[Optional[str], typer.Argument(help="What the agent should do, in words.")] = None,
    env: EnvOption = ...,  # type: ignore[assignment]
    task: TaskOption = None,
    fitness: FitnessOption = None,
    designer: Annotated[str, typer.Option(help="builtin (offline), or openai for any OpenAI-compatible endpoint.")]
    = "auto",
    iterations: Annotated[int, typer.Option("--iterations", "-n", help="Design rounds.")] = 3,
    samples: Annotated[int, typer.Option("--samples", "-k", help="Candidates per round.")] = 4,
    timesteps: Annotated[Optional[int], typer.Option(help="PPO steps per candidate (default: the spec's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the designer and the trainings.")] = 0,
    out: Annotated[Path, typer.Option(help="Directory that receives the run directory.")] = Path("runs"),
    workers: Annotated[Optional[int], typer.Option(help="Trainings in parallel (default: CPU cores).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (auto takes CUDA when present).")] = "auto",
    repairs: Annotated[int, typer.Option(help="Times a refused candidate goes back to the designer.")] = 2,
    media: Annotated[bool, typer.Option(help="Render a GIF of each round's best policy.")] = True,
) -> None:
    """Search for a reward: design, check, train, select and export."""
    from rewardsmith.designer import BuiltinDesigner
    from rewardsmith.executors import default_workers
    from rewardsmith.loop import SearchConfig, run_search
    from rewardsmith.progress import LiveProgress
    from rewardsmith.runs import RunDir

    ref, resolved = _task_ref(env, text, task, fitness)
    config = SearchConfig(iterations=iterations, samples=samples, timesteps=timesteps, seed=seed,
                          workers=workers or min(default_workers(), samples), device=device, repairs=repairs,
                          media=media)
    if designer not in ("auto", "builtin"):
        raise UsageError(f"unknown designer {designer!r}; choose builtin")
    chosen = BuiltinDesigner()
    console.print("no LLM endpoint configured: using the built-in designer (offline, composes the env spec's "
                  "shaping hints)", style="dim")
    if resolved.scored_on_default:
        console.print(f"note: candidates are scored on {resolved.spec.name}'s default task "
                      f"'{resolved.task.name}' ({resolved.fitness_doc}); pass --task or --fitness to score "
                      "another goal", style="yellow")
    run_dir = RunDir.create(out, resolved.spec.name, ref.text)
    console.print(f"run: {run_dir.root}", soft_wrap=True)
    hooks = LiveProgress(console)
    try:
        state = run_search(run_dir, ref, chosen, config, hooks)
    finally:
        hooks.close()
    _print_outcome(state)


def _print_outcome(state) -> None:
    from rewardsmith.progress import fmt_fitness

    run_dir, solved_at = state.run, state.task.solved
    if state.stop_reason:
        console.print(f"stopped: {state.stop_reason}", style="yellow")
    best = state.best
    if best is None:
        console.print(f"[red]no candidate trained successfully[/]; see {run_dir.summary_json}", soft_wrap=True)
        raise typer.Exit(1)
    solved = best.fitness is not None and best.fitness >= solved_at
    threshold = ""
    if math.isfinite(solved_at):
        threshold = f" (solved: ≥ {solved_at:g})" if solved else f" (solved at ≥ {solved_at:g})"
    console.print(f"\nbest: [bold]{best.id}[/] fitness [bold]{fmt_fitness(best.fitness)}[/]{threshold}")
    console.print(f"reward:   {run_dir.candidate(best.iteration, best.index).reward}", soft_wrap=True)
    console.print(f"exported: {run_dir.best_dir / 'reward.py'}", soft_wrap=True)
    console.print(f"summary:  {run_dir.summary_json}", soft_wrap=True)


# ------------------------------------------------------------------------------ resume, feedback


@app.command()
def resume(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A run directory.")],
    iterations: Annotated[Optional[int], typer.Option("--iterations", "-n",
                          help="Further rounds after the last finished one (default: finish the original plan).")]
    = None,
    workers: Annotated[Optional[int], typer.Option(help="Trainings in parallel.")] = None,
) -> None:
    """Continue a stopped, interrupted or finished search (finished candidates are not redone)."""
    from rewardsmith.designer import make_designer
    from rewardsmith.loop import load_state, resume_search
    from rewardsmith.progress import LiveProgress
    from rewardsmith.runs import RunDir

    if iterations is not None and iterations < 1:
        raise UsageError("--iterations must be at least 1")
    run = RunDir.open(run_dir)
    info = run.read_run()
    designer = make_designer(info.get("designer", "builtin"), info.get("designer_options"), run)
    state = load_state(run)
    finished = sum(c.status in ("scored", "failed", "rejected") for c in state.candidates.values())
    console.print(f"resuming {run.root}: {state.iterations_done} round(s) done, {finished} candidate(s) finished",
                  soft_wrap=True)
    hooks = LiveProgress(console)
    try:
        state = resume_search(run, designer, iterations, hooks, workers)
    finally:
        hooks.close()
    _print_outcome(state)


@app.command()
def feedback(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A run directory.")],
    text: Annotated[str, typer.Argument(help="What is wrong with the best policy, in words.")],
) -> None:
    """Record feedback on a run; `rewardsmith resume` gives it to the designer."""
    from rewardsmith.loop import record_feedback
    from rewardsmith.runs import RunDir

    iteration = record_feedback(RunDir.open(run_dir), text)
    console.print(f"recorded: round {iteration + 1} will receive it (run `rewardsmith resume {run_dir} "
                  "--iterations N`)", soft_wrap=True)


# ---------------------------------------------------------------------------------------- check


@app.command()
def check(
    file: Annotated[Path, typer.Argument(help="A reward program (compute_reward).")],
    env: EnvOption = ...,  # type: ignore[assignment]
    task: TaskOption = None,
) -> None:
    """Run the critic on a reward file: exit 0 accepted, 1 rejected, 2 usage error."""
    from rewardsmith.critic import check as run_check
    from rewardsmith.spec import load_spec

    source = _read_source(file)
    spec = load_spec(env)
    verdict = run_check(source, spec, spec.task(task))
    for issue in verdict.issues:
        style = "red" if issue.severity == "error" else "yellow"
        console.print(f"[{style}]{issue.severity}[/] {escape(str(issue))}", highlight=False)
    if verdict.accepted:
        timing = f" ({verdict.call_us:.0f} µs per call)" if verdict.call_us else ""
        console.print(f"[green]accepted[/]{timing}: components {', '.join(verdict.components) or '(none)'}")
        return
    console.print("[red]rejected[/]")
    raise typer.Exit(1)


# ------------------------------------------------------------------------------- envs, describe


@app.command()
def envs() -> None:
    """List bundled envs and their tasks."""
    from rewardsmith.spec import bundled_names, load_spec

    table = Table(title="bundled environments")
    table.add_column("name")
    table.add_column("gymnasium id")
    table.add_column("tasks (★ default)")
    table.add_column("solved at")
    table.add_column("needs")
    for name in bundled_names():
        try:
            spec = load_spec(name)
        except RewardsmithError as exc:
            table.add_row(name, "", f"[red]{escape(str(exc))}[/]", "", "")
            continue
        tasks = "\n".join(("★ " if t.default else "  ") + t.name + f": {t.description}" for t in spec.tasks)
        solved = "\n".join(f"{t.solved:g}" for t in spec.tasks)
        table.add_row(spec.name, spec.gym_id, tasks, solved, spec.extra or "")
    console.print(table)


@app.command()
def describe(env: Annotated[str, typer.Argument(help="Bundled env name, spec file, or Gymnasium id.")],
             task: TaskOption = None) -> None:
    """Print exactly what a designer is told about an env."""
    from rewardsmith.spec import load_spec

    spec = load_spec(env)
    console.print(spec.describe(spec.task(task)), highlight=False, markup=False)


# --------------------------------------------------------------------------------------- export


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A run directory.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write here (default: stdout).")] = None,
    candidate: Annotated[Optional[str], typer.Option(help="A candidate id (default: the best).")] = None,
) -> None:
    """Write a candidate's reward as a standalone module (numpy + gymnasium only)."""
    from rewardsmith.export import render_export
    from rewardsmith.loop import best_manifest, load_state
    from rewardsmith.runs import RunDir, atomic_write_text

    state = load_state(RunDir.open(run_dir))
    if candidate is None:
        chosen = state.best
        if chosen is None:
            raise UsageError(f"{run_dir} has no scored candidate to export")
    else:
        chosen = state.candidates.get(candidate)
        if chosen is None:
            raise UsageError(f"{run_dir} has no candidate {candidate!r}; ids: {', '.join(state.candidates)}")
    module = render_export(chosen.source, state.task.spec, best_manifest(state, chosen))
    if output is None:
        sys.stdout.write(module)
        return
    atomic_write_text(output, module)
    err_console.print(f"wrote {output} (candidate {chosen.id}, fitness {chosen.fitness})")


# ----------------------------------------------------------------------------------------- main


def main() -> None:
    """Console-script entry: user errors print one line and exit with their code."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        code = app(standalone_mode=False)
    except RewardsmithError as exc:
        raise SystemExit(_exit(str(exc), exc.exit_code)) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise SystemExit(130) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        raise SystemExit(1) from None
    except TyperException as exc:  # usage errors: unknown options, bad values
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            err_console.print(f"error: {exc.format_message()}")
        raise SystemExit(exc.exit_code) from None
    raise SystemExit(code if isinstance(code, int) else 0)


def _exit(message: str, code: int) -> int:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return code


if __name__ == "__main__":
    main()
