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

_ENV_HELP = ("Bundled env name, spec file (my_spec.py), Gymnasium id (optionally module:Id-v0), or a class or "
             "factory (path/to/envs.py:RoverEnv, my_pkg.envs:make_rover).")
EnvOption = Annotated[str, typer.Option("--env", "-e", help=_ENV_HELP)]
EnvKwargsOption = Annotated[Optional[list[str]], typer.Option(
    "--env-kwargs", metavar="JSON|KEY=VALUE", help="Keyword arguments for the env's constructor: a JSON object, or "
    "key=value (repeatable; values parsed as JSON where possible).")]
TaskOption = Annotated[Optional[str], typer.Option("--task", "-t", help="A task the env spec names.")]
FitnessOption = Annotated[Optional[str], typer.Option("--fitness", help="FILE.py:FUNCTION scoring one episode.")]
_LLM = "LLM designer"


def _read_source(path: Path) -> str:
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"reward file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read reward file {path}: {exc}") from None
    if not source.strip():
        raise UsageError(f"reward file {path} is empty")
    from rewardsmith.export import reward_program

    return reward_program(source)


def _env_args(env: str, env_kwargs: list[str] | None) -> tuple[str, dict, tuple[str, ...]]:
    """``--env`` in absolute form, its parsed ``--env-kwargs``, and the folders its modules import from."""
    from rewardsmith.envref import absolute_env_reference, parse_env_kwargs

    kwargs = parse_env_kwargs(env_kwargs)
    env_ref, paths = absolute_env_reference(env)
    return env_ref, kwargs, paths


def _load_env(env: str, env_kwargs: list[str] | None):
    from rewardsmith.spec import load_spec

    return load_spec(*_env_args(env, env_kwargs))


def _task_ref(env: str, text: str | None, task: str | None, fitness: str | None,
              env_kwargs: list[str] | None = None):
    from rewardsmith.task import TaskRef

    env_ref, kwargs, paths = _env_args(env, env_kwargs)
    fitness_ref = None
    if fitness:
        path, sep, name = fitness.rpartition(":")
        fitness_ref = f"{Path(path).resolve()}:{name}" if sep and path else fitness
    text = (text or "").strip()
    ref = TaskRef(env_ref, text, task, fitness_ref, kwargs, paths)
    resolved = ref.resolve()
    if not text:
        if task is None and fitness is None:
            raise UsageError("give a task text, or --task NAME for one of the env's tasks (see `rewardsmith envs`)")
        ref = TaskRef(env_ref, resolved.task.description, task, fitness_ref, kwargs, paths)
        resolved = ref.resolve()
    return ref, resolved


# ------------------------------------------------------------------------------------------ run


@app.command()
def run(
    text: Annotated[Optional[str], typer.Argument(help="What the agent should do, in words.")] = None,
    env: EnvOption = ...,  # type: ignore[assignment]
    env_kwargs: EnvKwargsOption = None,
    task: TaskOption = None,
    fitness: FitnessOption = None,
    designer: Annotated[str, typer.Option(help="auto (openai when an endpoint is configured, else builtin), builtin "
                                               "(offline), or openai (any OpenAI-compatible endpoint).")] = "auto",
    iterations: Annotated[int, typer.Option("--iterations", "-n", help="Design rounds.")] = 3,
    samples: Annotated[int, typer.Option("--samples", "-k", help="Candidates per round.")] = 4,
    timesteps: Annotated[Optional[int], typer.Option(help="PPO steps per candidate (default: the spec's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the designer and the trainings.")] = 0,
    out: Annotated[Path, typer.Option(help="Directory that receives the run directory.")] = Path("runs"),
    workers: Annotated[Optional[int], typer.Option(help="Trainings in parallel (default: CPU cores).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (auto takes CUDA when present).")] = "auto",
    repairs: Annotated[int, typer.Option(help="Times a refused candidate goes back to the designer.")] = 2,
    media: Annotated[bool, typer.Option(help="Render a GIF of each round's best policy.")] = True,
    final_eval: Annotated[int, typer.Option("--final-eval", metavar="N",
                          help="Re-train the top 3 and the baselines on N fresh seeds; export the best mean.")] = 0,
    interactive: Annotated[bool, typer.Option("--interactive", "-i",
                           help="After each round, show the best and ask for feedback.")] = False,
    model: Annotated[Optional[str], typer.Option(help="LLM model (Azure: the deployment name); default: the only "
                                                 "one the endpoint serves.", rich_help_panel=_LLM)] = None,
    base_url: Annotated[Optional[str], typer.Option(envvar="OPENAI_BASE_URL", help="OpenAI-compatible endpoint, "
                                                    "e.g. http://localhost:11434/v1 (default: OpenAI's).",
                                                    rich_help_panel=_LLM)] = None,
    api_key_env: Annotated[str, typer.Option(metavar="NAME", help="Environment variable holding the API key.",
                                             rich_help_panel=_LLM)] = "OPENAI_API_KEY",
    temperature: Annotated[Optional[float], typer.Option(help="Sampling temperature (default 0.8).",
                                                         rich_help_panel=_LLM)] = None,
    max_tokens: Annotated[Optional[int], typer.Option(help="Tokens per reply (default 4096).",
                                                      rich_help_panel=_LLM)] = None,
    max_total_tokens: Annotated[Optional[int], typer.Option(help="Stop the search once the run has spent this many "
                                                            "tokens.", rich_help_panel=_LLM)] = None,
    max_cost: Annotated[Optional[float], typer.Option(help="Stop the search once the run has cost this much "
                                                      "(needs prices).", rich_help_panel=_LLM)] = None,
    concurrency: Annotated[int, typer.Option(help="LLM requests in flight at once.", rich_help_panel=_LLM)] = 4,
    llm_timeout: Annotated[float, typer.Option(help="Seconds one LLM request may take.", rich_help_panel=_LLM)]
    = 300.0,
    prompts: Annotated[Optional[Path], typer.Option(metavar="DIR", help="Templates here override the bundled "
                                                    "prompts by file name.", rich_help_panel=_LLM)] = None,
    replay: Annotated[Optional[Path], typer.Option(metavar="RUN_DIR", help="Answer from another run's recorded "
                                                   "LLM replies; no network.", rich_help_panel=_LLM)] = None,
    review: Annotated[bool, typer.Option(help="Have the LLM review each accepted candidate before training.",
                                         rich_help_panel=_LLM)] = False,
    price_per_1k_input: Annotated[Optional[float], typer.Option(help="Price of 1000 prompt tokens.",
                                                                rich_help_panel=_LLM)] = None,
    price_per_1k_output: Annotated[Optional[float], typer.Option(help="Price of 1000 completion tokens.",
                                                                 rich_help_panel=_LLM)] = None,
    prices: Annotated[Optional[Path], typer.Option(metavar="FILE", help='JSON price table: {"input": P, "output": '
                                                   'P} per 1000 tokens, or one such entry per model.',
                                                   rich_help_panel=_LLM)] = None,
) -> None:
    """Search for a reward: design, check, train, select and export."""
    from rewardsmith.designer import make_designer
    from rewardsmith.designer.llm import choose_designer
    from rewardsmith.executors import default_workers
    from rewardsmith.loop import SearchConfig, run_search
    from rewardsmith.progress import InteractiveProgress, LiveProgress
    from rewardsmith.runs import RunDir

    ref, resolved = _task_ref(env, text, task, fitness, env_kwargs)
    config = SearchConfig(iterations=iterations, samples=samples, timesteps=timesteps, seed=seed,
                          workers=workers or min(default_workers(), samples), device=device, repairs=repairs,
                          media=media)
    llm_given = {"model": model, "base_url": base_url, "api_key_env": api_key_env, "temperature": temperature,
                 "max_tokens": max_tokens, "max_total_tokens": max_total_tokens, "max_cost": max_cost,
                 "concurrency": concurrency, "timeout": llm_timeout, "prompts": str(prompts) if prompts else None,
                 "replay": str(replay) if replay else None, "review": review, "max_repairs": repairs,
                 "price_input": price_per_1k_input, "price_output": price_per_1k_output}
    name, llm_options = choose_designer(designer, {k: v for k, v in llm_given.items() if v is not None}, prices)
    if llm_options is not None:
        source = f"replaying {llm_options.replay}" if llm_options.replay else llm_options.url
        console.print(f"designer: {llm_options.model} ({source})", style="dim", soft_wrap=True)
    elif designer == "auto":
        console.print("no LLM endpoint configured: using the built-in designer (offline, composes the env spec's "
                      "shaping hints)", style="dim")
    if resolved.scored_on_default:
        console.print(f"note: candidates are scored on {resolved.spec.name}'s default task "
                      f"'{resolved.task.name}' ({resolved.fitness_doc}); pass --task or --fitness to score "
                      "another goal", style="yellow")
    run_dir = RunDir.create(out, resolved.spec.name, ref.text)
    console.print(f"run: {run_dir.root}", soft_wrap=True)
    chosen = make_designer(name, llm_options.to_dict() if llm_options else None, run_dir)
    hooks = InteractiveProgress(console) if interactive else LiveProgress(console)
    if final_eval < 0:
        raise UsageError("--final-eval must be 0 or more")
    try:
        state = run_search(run_dir, ref, chosen, config, hooks)
    finally:
        hooks.close()
        _print_usage(chosen)
    if final_eval and state.best is not None:
        from rewardsmith.evaluate import Evaluation
        from rewardsmith.loop import final_evaluation

        console.print(f"final evaluation: the top candidates and the baselines on {final_eval} fresh seeds")
        data = final_evaluation(state, chosen, final_eval)
        console.print(Evaluation.from_dict(data))
    _print_outcome(state)


def _print_usage(designer) -> None:
    """The designer's token use, per round and in all (nothing for the offline designer)."""
    usage = designer.usage.to_dict()
    if not usage.get("requests") and not usage.get("cached_requests"):
        return
    rounds = "; ".join(f"round {int(i) + 1}: {row['total_tokens']:,}" for i, row in usage.get("iterations", {}).items())
    cost = f", cost {usage['cost']:.4g}" if usage.get("cost") is not None else ""
    cached = f" (+{usage['cached_requests']} answered from the run's llm/)" if usage.get("cached_requests") else ""
    failed = f", {usage['failed_requests']} failed" if usage.get("failed_requests") else ""
    console.print(f"LLM: {usage['requests']} requests{cached}{failed}, {usage['total_tokens']:,} tokens "
                  f"({usage['prompt_tokens']:,} in, {usage['completion_tokens']:,} out){cost}"
                  + (f" — {rounds}" if rounds else ""), style="dim", soft_wrap=True)


def _print_outcome(state) -> None:
    from rewardsmith.progress import fmt_fitness

    run_dir, solved_at = state.run, state.task.solved
    if state.stop_reason:
        console.print(f"stopped: {state.stop_reason}", style="yellow")
    report_path = _write_report(state)
    best = state.best
    if best is None:
        console.print(f"[red]no candidate trained successfully[/]; see {report_path or run_dir.summary_json}",
                      soft_wrap=True)
        raise typer.Exit(1)
    solved = best.fitness is not None and best.fitness >= solved_at
    threshold = ""
    if math.isfinite(solved_at):
        threshold = f" (solved: ≥ {solved_at:g})" if solved else f" (solved at ≥ {solved_at:g})"
    console.print(f"\nbest: [bold]{best.id}[/] fitness [bold]{fmt_fitness(best.fitness)}[/]{threshold}")
    console.print(f"reward:   {run_dir.candidate(best.iteration, best.index).reward}", soft_wrap=True)
    console.print(f"exported: {run_dir.best_dir / 'reward.py'}", soft_wrap=True)
    console.print(f"summary:  {run_dir.summary_json}", soft_wrap=True)
    if report_path is not None:
        console.print(f"report:   {report_path}", soft_wrap=True)


def _write_report(state) -> Path | None:
    """``report.html`` at the end of ``run`` and ``resume``; one that cannot be written is only a warning."""
    from rewardsmith.report import write_report

    try:
        return write_report(state.run, state=state)
    except (RewardsmithError, OSError) as exc:
        err_console.print(f"[yellow]warning:[/] report not written: {escape(str(exc))}", highlight=False)
        return None


# ------------------------------------------------------------------------------ resume, feedback


@app.command()
def resume(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A run directory.")],
    iterations: Annotated[Optional[int], typer.Option("--iterations", "-n",
                          help="Further rounds after the last finished one (default: finish the original plan).")]
    = None,
    workers: Annotated[Optional[int], typer.Option(help="Trainings in parallel.")] = None,
    interactive: Annotated[bool, typer.Option("--interactive", "-i",
                           help="After each round, show the best and ask for feedback.")] = False,
    max_total_tokens: Annotated[Optional[int], typer.Option(help="A new token budget for the whole run (LLM "
                                                            "designer).")] = None,
    max_cost: Annotated[Optional[float], typer.Option(help="A new cost budget for the whole run (LLM designer).")]
    = None,
) -> None:
    """Continue a stopped, interrupted or finished search (finished candidates are not redone)."""
    from rewardsmith.designer import make_designer
    from rewardsmith.loop import load_state, resume_search
    from rewardsmith.progress import InteractiveProgress, LiveProgress
    from rewardsmith.runs import RunDir

    if iterations is not None and iterations < 1:
        raise UsageError("--iterations must be at least 1")
    run = RunDir.open(run_dir)
    info = run.read_run()
    budgets = {k: v for k, v in (("max_total_tokens", max_total_tokens), ("max_cost", max_cost)) if v is not None}
    if budgets:  # a search stopped by its budget goes on with a new one
        run.update_run(designer_options={**(info.get("designer_options") or {}), **budgets})
        info = run.read_run()
    designer = make_designer(info.get("designer", "builtin"), info.get("designer_options"), run)
    state = load_state(run)
    finished = sum(c.status in ("scored", "failed", "rejected") for c in state.candidates.values())
    console.print(f"resuming {run.root}: {state.iterations_done} round(s) done, {finished} candidate(s) finished",
                  soft_wrap=True)
    hooks = InteractiveProgress(console) if interactive else LiveProgress(console)
    try:
        state = resume_search(run, designer, iterations, hooks, workers)
    finally:
        hooks.close()
        _print_usage(designer)
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


# ------------------------------------------------------------------------------------- evaluate


@app.command()
def evaluate(
    file: Annotated[Path, typer.Argument(metavar="REWARD_FILE", help="A reward program (compute_reward).")],
    env: EnvOption = ...,  # type: ignore[assignment]
    env_kwargs: EnvKwargsOption = None,
    task: TaskOption = None,
    fitness: FitnessOption = None,
    seeds: Annotated[int, typer.Option(help="Training seeds per reward.")] = 5,
    timesteps: Annotated[Optional[int], typer.Option(help="PPO steps per training (default: the spec's).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Trainings in parallel (default: CPU cores).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train a reward on several seeds beside the human baseline and the sparse reward, same budget and seeds."""
    import json

    from rewardsmith.critic import check as run_check
    from rewardsmith.evaluate import evaluate_rewards
    from rewardsmith.executors import default_workers

    if seeds < 1:
        raise UsageError("--seeds must be at least 1")
    if timesteps is not None and timesteps < 64:
        raise UsageError("--timesteps must be at least 64")
    source = _read_source(file)
    if task is None and fitness is None:
        task = _load_env(env, env_kwargs).default_task.name
    ref, resolved = _task_ref(env, None, task, fitness, env_kwargs)
    verdict = run_check(source, resolved.spec, resolved.task)
    if not verdict.accepted:
        for issue in verdict.errors:
            err_console.print(f"[red]error[/] {escape(str(issue))}", highlight=False)
        raise typer.Exit(1)
    evaluation = evaluate_rewards(ref, {file.name: source}, seeds, timesteps, workers or default_workers(), device)
    if as_json:
        sys.stdout.write(json.dumps(evaluation.to_dict(), indent=2) + "\n")
        return
    console.print(evaluation)


# ---------------------------------------------------------------------------------------- check


@app.command()
def check(
    file: Annotated[Path, typer.Argument(help="A reward program (compute_reward).")],
    env: EnvOption = ...,  # type: ignore[assignment]
    env_kwargs: EnvKwargsOption = None,
    task: TaskOption = None,
) -> None:
    """Run the critic on a reward file: exit 0 accepted, 1 rejected, 2 usage error."""
    from rewardsmith.critic import check as run_check

    source = _read_source(file)
    spec = _load_env(env, env_kwargs)
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

    table = Table(title="bundled environments (★ the env's own goal)", show_lines=True)
    table.add_column("env", no_wrap=True)
    table.add_column("task", no_wrap=True)
    table.add_column("solved at", justify="right")
    table.add_column("budget", justify="right")
    table.add_column("what it asks", ratio=1)
    for name in bundled_names():
        try:
            spec = load_spec(name)
        except RewardsmithError as exc:
            table.add_row(name, "", "", "", f"[red]{escape(str(exc))}[/]")
            continue
        label = f"{spec.name}\n[dim]{spec.gym_id}[/]" + (f"\n[dim]{escape(f'needs the {spec.extra} extra')}[/]" if spec.extra else "")
        for i, task in enumerate(spec.tasks):
            table.add_row(label if i == 0 else "", ("★ " if task.default else "  ") + task.name,
                          f"{task.solved:g}", f"{task.budget(spec.ppo):,}", escape(task.description))
    console.print(table)


@app.command()
def describe(env: Annotated[str, typer.Argument(help=_ENV_HELP)], env_kwargs: EnvKwargsOption = None,
             task: TaskOption = None) -> None:
    """Print exactly what a designer is told about an env."""
    spec = _load_env(env, env_kwargs)
    sys.stdout.write(spec.describe(spec.task(task)))


@app.command("prompts")
def prompts_command(
    env: Annotated[str, typer.Argument(help=_ENV_HELP)],
    text: Annotated[Optional[str], typer.Argument(help="What the agent should do, in words.")] = None,
    env_kwargs: EnvKwargsOption = None,
    task: TaskOption = None,
    fitness: FitnessOption = None,
    prompts: Annotated[Optional[Path], typer.Option(metavar="DIR", help="Templates here override the bundled ones.")]
    = None,
) -> None:
    """Print the messages the LLM designer would send first (system, then task)."""
    from rewardsmith.designer.prompts import preview_messages

    if prompts is not None and not prompts.is_dir():
        raise UsageError(f"--prompts {prompts}: not a directory")
    _, resolved = _task_ref(env, text, task, fitness, env_kwargs)
    for message in preview_messages(resolved, prompts):
        sys.stdout.write(f"──── {message['role']} ────\n{message['content'].rstrip()}\n\n")


# ------------------------------------------------------------------------------------ spec init

spec_app = typer.Typer(help="Write env specs.", no_args_is_help=True)
app.add_typer(spec_app, name="spec")


@spec_app.command("init")
def spec_init(
    env: Annotated[str, typer.Argument(help="A registered Gymnasium id (or module:id).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write here (default: stdout).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write an editable spec file for an env from its own documentation, spaces and a probe."""
    from rewardsmith.introspect import introspect
    from rewardsmith.runs import atomic_write_text
    from rewardsmith.specfile import render_spec_file

    source = render_spec_file(introspect(env.strip()))
    if output is None:
        sys.stdout.write(source)
        return
    if output.exists() and not force:
        raise UsageError(f"{output} exists (--force overwrites it)")
    atomic_write_text(output, source)
    err_console.print(f"wrote {escape(str(output))}: check it with `rewardsmith describe {escape(str(output))}`",
                      highlight=False, soft_wrap=True)


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

    state = load_state(RunDir.open(run_dir), read_only=True)
    if candidate is None:
        chosen = state.exported
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


# --------------------------------------------------------------------------------------- report


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A run directory.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o",
                      help="Write here (default: RUN/report.html).")] = None,
) -> None:
    """Write the run's report: one self-contained HTML file (charts, code and diffs, rejections, GIFs, feedback)."""
    from rewardsmith.report import write_report
    from rewardsmith.runs import RunDir

    path = write_report(RunDir.open(run_dir), output)
    console.print(f"report: {path}", soft_wrap=True)


# ----------------------------------------------------------------------------------------- show


@app.command()
def show(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A run directory.")],
    candidate: Annotated[Optional[str], typer.Option("--candidate", "-c",
                         help="A candidate id (e.g. 01-03): its full analysis.")] = None,
) -> None:
    """Print a run's candidates with their flags, or one candidate's analysis, as tables."""
    from rewardsmith.show import show as render_show

    console.print(render_show(run_dir, candidate))


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
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return code


if __name__ == "__main__":
    main()
