"""The ``rewardsmith`` command: parses, calls the library, renders with Rich."""

from __future__ import annotations

import functools
import inspect
import math
import os
import shlex
import sys
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Optional, get_type_hints

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from typer.core import TyperArgument, TyperCommand
from typer.exceptions import TyperException

from rewardsmith.errors import AgreementInterrupted, RewardsmithError, UsageError
from rewardsmith.safetext import control_characters, literal

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


class _PlainUsage(TyperCommand):
    """Usage lines name arguments as their help does (``RUN``, ``[TEXT]``), without Typer's braces."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.display_name_raw.upper() + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


class SearchInterrupted(Exception):
    """Ctrl-C stopped a search; the run recorded itself as interrupted and can be resumed."""

    def __init__(self, run_root: Path) -> None:
        super().__init__(f"interrupted: {run_root}")
        self.run_root = run_root


def _print_version(value: bool) -> None:
    if value:
        from rewardsmith import __version__

        console.print(f"rewardsmith {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                   help="Print rewardsmith's version and exit.")] = False) -> None:
    """Design, check, train and export reward functions for Gymnasium environments."""


def _check_workers(workers: int | None) -> None:
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers} (leave it out to use every CPU core)")


def _check_device(device: str) -> None:
    """``--device cuda`` (or ``cuda:N``) on a machine where torch sees no such device is a usage error."""
    if not device.startswith("cuda"):
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = device.partition(":")[2]
    wanted = int(index) + 1 if index.isdigit() else 1
    if count >= wanted:
        return
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    seen = "no CUDA device" if count == 0 else f"{count} CUDA device(s), numbered from 0"
    raise UsageError(f"--device {device}: torch sees {seen} (torch {torch.__version__}, {build}); "
                     "use --device cpu or auto")

_ENV_HELP = ("Bundled env name, spec file (my_spec.py), Gymnasium id (optionally module:Id-v0), or a class or "
             "factory (path/to/envs.py:RoverEnv, my_pkg.envs:make_rover).")
EnvOption = Annotated[str, typer.Option("--env", "-e", help=_ENV_HELP)]
EnvKwargsOption = Annotated[Optional[list[str]], typer.Option(
    "--env-kwargs", metavar="JSON|KEY=VALUE", help="Keyword arguments for the env's constructor: a JSON object, or "
    "key=value (repeatable; values parsed as JSON where possible).")]
TaskOption = Annotated[Optional[str], typer.Option("--task", "-t", help="A task the env spec names.")]
FitnessOption = Annotated[Optional[str], typer.Option("--fitness", help="FILE.py:FUNCTION scoring one episode, or a "
                                                      "run directory: the fitness it agreed on from its words.")]
PPOOption = Annotated[Optional[list[str]], typer.Option(
    "--ppo", metavar="KEY=VALUE", help="A PPO setting over the spec's, e.g. n_steps=256, learning_rate=lin_3e-4, "
                                       "normalize=true (repeatable; wins over --hyperparams).")]
HyperparamsOption = Annotated[Optional[Path], typer.Option(
    "--hyperparams", metavar="FILE", help="rl-baselines3-zoo YAML: the env's entry sets PPO's settings.")]
_LLM = "LLM designer"


@dataclass(frozen=True)
class LLMFlags:
    """The LLM designer's flags of ``run``, declared once; :func:`_with_llm_flags` adds them to the command."""

    model: Annotated[Optional[str], typer.Option(help="LLM model (Azure: the deployment name); default: the only "
                                                 "one the endpoint serves.", rich_help_panel=_LLM)] = None
    base_url: Annotated[Optional[str], typer.Option(help="OpenAI-compatible endpoint, e.g. "
                                                    "http://localhost:11434/v1 (default: $OPENAI_BASE_URL, else "
                                                    "OpenAI's).",
                                                    rich_help_panel=_LLM)] = None
    api_key_env: Annotated[str, typer.Option(metavar="NAME", help="Environment variable holding the API key.",
                                             rich_help_panel=_LLM)] = "OPENAI_API_KEY"
    temperature: Annotated[Optional[float], typer.Option(help="Sampling temperature (default 0.8).",
                                                         rich_help_panel=_LLM)] = None
    max_tokens: Annotated[Optional[int], typer.Option(help="Tokens per reply (default 4096).",
                                                      rich_help_panel=_LLM)] = None
    max_total_tokens: Annotated[Optional[int], typer.Option(help="Stop the search once the run has spent this many "
                                                            "tokens.", rich_help_panel=_LLM)] = None
    max_cost: Annotated[Optional[float], typer.Option(help="Stop the search once the run has cost this much "
                                                      "(needs prices).", rich_help_panel=_LLM)] = None
    concurrency: Annotated[int, typer.Option(help="LLM requests in flight at once.", rich_help_panel=_LLM)] = 4
    llm_timeout: Annotated[float, typer.Option(help="Seconds one LLM request may take.", rich_help_panel=_LLM)] \
        = 300.0
    llm_outage: Annotated[float, typer.Option(metavar="SECONDS", help="How long to keep trying while the LLM "
                                              "endpoint cannot be reached (a server restarting) before the search "
                                              "stops.", rich_help_panel=_LLM)] = 120.0
    prompts: Annotated[Optional[Path], typer.Option(metavar="DIR", help="Templates here override the bundled "
                                                    "prompts by file name.", rich_help_panel=_LLM)] = None
    replay: Annotated[Optional[Path], typer.Option(metavar="RUN_DIR", help="Answer from another run's recorded "
                                                   "LLM replies; no network.", rich_help_panel=_LLM)] = None
    review: Annotated[bool, typer.Option(help="Have the LLM review each accepted candidate before training.",
                                         rich_help_panel=_LLM)] = False
    price_per_1k_input: Annotated[Optional[float], typer.Option(help="Price of 1000 prompt tokens.",
                                                                rich_help_panel=_LLM)] = None
    price_per_1k_output: Annotated[Optional[float], typer.Option(help="Price of 1000 completion tokens.",
                                                                 rich_help_panel=_LLM)] = None
    prices: Annotated[Optional[Path], typer.Option(metavar="FILE", help='JSON price table: {"input": P, "output": '
                                                   'P} per 1000 tokens, or one such entry per model.',
                                                   rich_help_panel=_LLM)] = None

    def given(self) -> dict[str, Any]:
        """The flags set, named as :class:`~rewardsmith.designer.endpoint.LLMOptions` fields (unset ones left out:
        a replay or the endpoint fills them in)."""
        named = {"model": self.model, "base_url": self.base_url, "api_key_env": self.api_key_env,
                 "temperature": self.temperature, "max_tokens": self.max_tokens,
                 "max_total_tokens": self.max_total_tokens, "max_cost": self.max_cost,
                 "concurrency": self.concurrency, "timeout": self.llm_timeout, "outage": self.llm_outage,
                 "prompts": str(self.prompts) if self.prompts else None,
                 "replay": str(self.replay) if self.replay else None, "review": self.review,
                 "price_input": self.price_per_1k_input, "price_output": self.price_per_1k_output}
        return {name: value for name, value in named.items() if value is not None}


def _with_llm_flags(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with :class:`LLMFlags`' fields as its last options, handed to it as one ``llm`` argument.

    Typer builds a command's options from its signature and has no dataclass binding: this writes the
    fields into the signature Typer reads, and packs their values back into one ``LLMFlags``.
    """
    hints = get_type_hints(LLMFlags, include_extras=True)
    flags = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
             for f in fields(LLMFlags)]
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "llm"]

    @functools.wraps(command)
    def bound(*args: Any, **kwargs: Any) -> None:
        llm = LLMFlags(**{f.name: kwargs.pop(f.name) for f in fields(LLMFlags)})
        command(*args, llm=llm, **kwargs)

    bound.__signature__ = signature.replace(parameters=own + flags)  # type: ignore[attr-defined]
    return bound


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
              env_kwargs: list[str] | None = None, ppo: list[str] | None = None,
              hyperparams: Path | None = None):
    from rewardsmith.task import TaskRef

    env_ref, kwargs, paths = _env_args(env, env_kwargs)
    fitness_ref = proposed = None
    if fitness:
        from rewardsmith.fitness_proposal import run_fitness

        path, sep, name = fitness.rpartition(":")
        proposed = run_fitness(path if sep and path else fitness)  # a run's agreed fitness: sandboxed, never imported
        if proposed is None:
            fitness_ref = f"{Path(path).resolve()}:{name}" if sep and path else fitness
    text = (text or "").strip()
    overrides = _ppo_overrides(env_ref, ppo, hyperparams)
    ref = TaskRef(env_ref, text, task, fitness_ref, kwargs, paths, ppo=overrides, proposed=proposed)
    resolved = ref.resolve()
    if not text:
        if task is None and fitness is None:
            raise UsageError("give a task text, or --task NAME for one of the env's tasks (see `rewardsmith envs`)")
        ref = TaskRef(env_ref, resolved.task_spec.description, task, fitness_ref, kwargs, paths, ppo=overrides,
                      proposed=proposed)
        resolved = ref.resolve()
    return ref, resolved


def _ppo_overrides(env_ref: str, ppo: list[str] | None, hyperparams: Path | None) -> dict | None:
    """``--hyperparams`` then ``--ppo`` as PPO settings over the spec's (None when neither is given)."""
    from rewardsmith.hyperparams import parse_ppo_options, read_zoo_file

    overrides: dict = {}
    if hyperparams is not None:
        from rewardsmith.spec import load_spec

        overrides.update(read_zoo_file(hyperparams, load_spec(env_ref).gym_id))
    overrides.update(parse_ppo_options(ppo or []))
    return overrides or None


def _training_line(resolved, timesteps: int | None) -> str:
    """The budget each training runs, in whole PPO rollouts."""
    budget = resolved.budget(timesteps)
    rollout = resolved.spec.ppo.rollout(budget)
    fitted = resolved.spec.ppo.fitted(budget)
    return (f"training: {budget:,} steps each ({budget // rollout} PPO updates of {fitted.n_envs} envs × "
            f"{fitted.n_steps} steps)")


# ------------------------------------------------------------------------------------------ run


@app.command(cls=_PlainUsage)
@_with_llm_flags
def run(
    text: Annotated[Optional[str], typer.Argument(help="What the agent should do, in words.")] = None,
    env: EnvOption = ...,  # type: ignore[assignment]
    env_kwargs: EnvKwargsOption = None,
    task: TaskOption = None,
    fitness: FitnessOption = None,
    ppo: PPOOption = None,
    hyperparams: HyperparamsOption = None,
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
    media: Annotated[bool, typer.Option(help="Render a GIF of each scored policy.")] = True,
    executor: Annotated[str, typer.Option(help="Where trainings run: local (a process pool) or ray (a Ray cluster; "
                                          "pip install 'rewardsmith[ray]').")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(metavar="ADDRESS", help="The Ray cluster: auto, HOST:PORT or "
                                                       "ray://HOST:PORT (default: a local Ray instance for the run).")]
    = None,
    schedule: Annotated[str, typer.Option(help="full (every candidate trains the whole budget) or halving "
                                          "(successive halving: the weaker candidates stop early).")] = "full",
    eta: Annotated[int, typer.Option(help="Halving: the top 1/ETA of each rung go on; rungs grow ETA times.")] = 3,
    min_fraction: Annotated[float, typer.Option(help="Halving: the first rung's share of the full budget.")] = 1 / 9,
    final_eval: Annotated[int, typer.Option("--final-eval", metavar="N",
                          help="Re-train the top 3 and the baselines on N fresh seeds; export the best mean.")] = 0,
    interactive: Annotated[bool, typer.Option("--interactive", "-i",
                           help="After each round, show the best and ask for feedback.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Accept the fitness the LLM proposes for the words "
                                      "without asking (with an LLM and neither --task nor --fitness).")] = False,
    *,
    llm: LLMFlags,
) -> None:
    """Search for a reward: design, check, train, select and export."""
    from rewardsmith.designer import make_designer
    from rewardsmith.designer.endpoint import choose_designer
    from rewardsmith.executors import default_workers
    from rewardsmith.loop import run_search
    from rewardsmith.progress import InteractiveProgress, LiveProgress
    from rewardsmith.runs import RunDir
    from rewardsmith.state import SearchConfig

    _check_workers(workers)
    if final_eval < 0:
        raise UsageError("--final-eval must be 0 or more")
    ref, resolved = _task_ref(env, text, task, fitness, env_kwargs, ppo, hyperparams)
    config = SearchConfig(iterations=iterations, samples=samples, timesteps=timesteps, seed=seed,
                          workers=workers or min(default_workers(), samples), device=device, repairs=repairs,
                          media=media, executor=executor, ray_address=ray_address, schedule=schedule, eta=eta,
                          min_fraction=min_fraction)
    if executor == "local":  # on Ray, the executor checks the cluster's GPUs when it connects
        _check_device(device)
    name, llm_options = choose_designer(designer, llm.given(), llm.prices)
    propose = llm_options is not None and resolved.scored_on_default
    if propose and not yes and not sys.stdin.isatty():
        raise UsageError("with an LLM and neither --task nor --fitness, the LLM proposes a fitness for your words and "
                         "you are asked to accept it, but there is no terminal to ask on: pass --yes to accept it "
                         "without asking, or --fitness FILE.py:FUNCTION (or --task NAME) to score by your own")
    if llm_options is not None:
        source = f"replaying {llm_options.replay}" if llm_options.replay else llm_options.url
        console.print(literal(f"designer: {llm_options.model} ({source})", "dim"), soft_wrap=True)
    elif designer == "auto":
        console.print("no LLM endpoint configured: using the built-in designer (offline)", style="dim")
    if name == "builtin" and task is None and fitness is None and resolved.scored_on_default:
        ref, resolved = _builtin_task(resolved)
    elif resolved.scored_on_default and not propose:
        console.print(literal(f"note: candidates are scored on {resolved.spec.name}'s default task "
                              f"'{resolved.task_spec.name}' ({resolved.fitness_doc}); pass --task or --fitness to score "
                              "another goal", "yellow"))
    run_dir = RunDir.create(out, resolved.spec.name, ref.text)
    console.print(literal(f"run: {run_dir.root}"), soft_wrap=True)
    console.print(_training_line(resolved, timesteps), style="dim", highlight=False)
    if config.schedule == "halving":
        from rewardsmith.halving import rung_budgets

        budget = resolved.budget(timesteps)
        rungs = rung_budgets(budget, resolved.spec.ppo.rollout(budget), config.min_fraction, config.eta)
        console.print(f"successive halving: rungs end at {', '.join(f'{r:,}' for r in rungs)} steps; the top "
                      f"1/{config.eta} of each rung go on", style="dim", highlight=False)
    chosen = make_designer(name, llm_options, run_dir)
    if propose:
        try:
            ref = _agree_fitness(ref, resolved, chosen, run_dir, yes, seed)
        except KeyboardInterrupt:
            raise AgreementInterrupted(f"interrupted while agreeing on a fitness: nothing was trained, so there is "
                                       f"nothing to resume; start again with `rewardsmith run` ({run_dir.root} "
                                       "keeps what was offered in events.jsonl)") from None
    elif ref.proposed is not None and ref.proposed.source is not None:  # --fitness RUN: another run's agreed fitness
        _save_fitness(run_dir, ref)
    hooks = InteractiveProgress(console) if interactive else LiveProgress(console)
    try:
        state = run_search(run_dir, ref, chosen, config, hooks)
    except KeyboardInterrupt:
        raise SearchInterrupted(run_dir.root) from None
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


def _builtin_task(resolved):
    """The task the built-in designer's candidates are scored on when the sentence names none: the spec's task the
    sentence clearly matches (recorded as if ``--task`` named it), else the default task; either is said in words."""
    from dataclasses import replace

    from rewardsmith.taskmatch import match_task

    spec = resolved.spec
    chosen = match_task(resolved.text, spec).chosen
    if chosen is not None:
        kind = "bundled" if spec.source == "bundled" else "spec's"
        console.print(literal(f"scored on {spec.name}/{chosen}, the closest {kind} task; pass --task to choose",
                              "yellow"), soft_wrap=True)
        ref = replace(resolved.ref, task=chosen)
        return ref, ref.resolve()
    default = resolved.task_spec
    console.print(literal(f"note: the built-in designer does not read the sentence, and it matches none of "
                          f"{spec.name}'s tasks clearly: candidates are scored on the default task "
                          f"'{default.name}' ({resolved.fitness_doc}); pass --fitness FILE.py:FUNCTION, or --task NAME "
                          "for one of:", "yellow"),
                  soft_wrap=True)
    for one in spec.tasks:
        console.print(literal(f"  --task {one.name}: {one.description}", "dim"), soft_wrap=True)
    return resolved.ref, resolved


def _agree_fitness(ref, resolved, designer, run_dir, yes: bool, seed: int):
    """Agree with the LLM (and the person, unless ``--yes``) on the fitness the words ask for; save it as the run's
    ``fitness.py``; return the task that records it."""
    from dataclasses import replace

    from rewardsmith.fitness_proposal import Decision, agree_fitness

    console.print(literal(f"asking {designer.options.model} for a fitness that measures what the words ask "
                          "(pass --task or --fitness to skip this)", "dim"), soft_wrap=True)

    def decide(offer) -> Decision | None:
        _show_offer(offer)
        if offer.refusal is not None:
            return None
        if yes:
            console.print("accepted (--yes)", style="green", highlight=False)
            return Decision("accept")
        return _ask_about_fitness(offer.source)

    proposed = agree_fitness(resolved, designer, decide, seed=seed, record=run_dir.append_event)
    ref = replace(ref, proposed=proposed)
    if proposed.source is None:
        task = resolved.task_spec
        console.print(literal(f"the LLM reads the words as {resolved.spec.name}'s default goal: candidates are scored "
                              f"on its task '{task.name}' ({resolved.fitness_doc})", "yellow"), soft_wrap=True)
        return ref
    path = _save_fitness(run_dir, ref)
    console.print(literal(f"fitness: {proposed.origin}, saved as {path}", "green"), soft_wrap=True)
    return ref


def _save_fitness(run_dir, ref) -> Path:
    """The run's ``fitness.py``: the agreed fitness program under comment lines saying where it came from."""
    from rewardsmith.fitness_proposal import fitness_file_text
    from rewardsmith.runs import atomic_write_text
    from rewardsmith.task import FITNESS_FILE

    path = run_dir.root / FITNESS_FILE
    atomic_write_text(path, fitness_file_text(ref.proposed, ref.text))
    return path


def _show_offer(offer) -> None:
    """One offer as literal text: the definition, the code, what the critic measured; or why it was refused."""
    if offer.refusal is not None:
        what = "your edit was refused" if offer.edited else f"proposal {offer.attempt} refused"
        console.print(Text.assemble((what, "yellow"), ": ", literal(offer.refusal)), soft_wrap=True)
        return
    if offer.default_goal:
        console.print(Text.assemble(("the LLM reads the words as the env's default goal", "bold"), ": ",
                                    literal(offer.definition)), soft_wrap=True)
        return
    console.print(Text(f"\nproposed fitness (attempt {offer.attempt})", "bold"))
    console.print(Text.assemble(("success: ", "bold"), literal(offer.definition)), soft_wrap=True)
    console.print(literal(offer.source.rstrip()), soft_wrap=True, highlight=False)
    verdict = offer.verdict
    if verdict is not None:
        tried = "; ".join(f"{label} {value:.4g}" for label, value in verdict.values)
        held = f"; a field held low or high {verdict.held[0]:.4g} to {verdict.held[1]:.4g}" if verdict.held else ""
        solved = f"; solved at {verdict.solved:g}" if verdict.solved is not None else "; no SOLVED threshold"
        console.print(literal(f"on the critic's episodes: {tried}{held}{solved}", "dim"), soft_wrap=True)


def _ask_about_fitness(source: str):
    """The person's answer to a proposed fitness, read from the terminal."""
    from rewardsmith.fitness_proposal import Decision

    console.print("[bold]Enter[/] accepts · [bold]e[/] edits it in $EDITOR · [bold]e FILE[/] takes the program from "
                  "a file · [bold]r REASON[/] rejects it (the LLM tries again with your reason)", highlight=False)
    while True:
        try:
            line = console.input("> ").strip()
        except EOFError:
            raise UsageError("no answer to the proposed fitness (end of input); pass --yes to accept it without "
                             "asking") from None
        word, _, rest = line.partition(" ")
        if not line or word.lower() in ("a", "accept", "y", "yes"):
            return Decision("accept")
        if word.lower() in ("r", "reject"):
            if rest.strip():
                return Decision("reject", rest.strip())
            console.print("say why after r, e.g. `r the cart must stay left of -1 m`", highlight=False)
            continue
        if word.lower() in ("e", "edit"):
            edited = _edited_source(rest.strip(), source)
            if edited is not None:
                return Decision("edit", source=edited)
            continue
        console.print(literal(f"not an answer: {line!r}"), style="red")


def _edited_source(path_text: str, source: str) -> str | None:
    """The person's program: read from ``path_text``, else ``source`` edited in ``$EDITOR`` on a temporary copy."""
    if path_text:
        try:
            return Path(path_text).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            console.print(literal(f"cannot read {path_text}: {exc}"), style="red")
            return None
    import subprocess
    import tempfile

    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.TemporaryDirectory(prefix="rewardsmith-fitness-") as folder:
        copy = Path(folder) / "fitness.py"
        copy.write_text(source, encoding="utf-8")
        try:
            code = subprocess.call([*shlex.split(editor), str(copy)])
        except (OSError, ValueError) as exc:
            console.print(literal(f"cannot start the editor {editor!r} ({exc}); set $EDITOR, or give a file: e FILE"),
                          style="red")
            return None
        edited = copy.read_text(encoding="utf-8", errors="replace")
    if code != 0 or edited == source:
        console.print("nothing changed: the proposal stands", style="dim")
        return None
    return edited


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
    from rewardsmith.task import is_solved

    run_dir, solved_at = state.run, state.task.solved
    if state.stop_reason:
        console.print(literal(f"stopped: {state.stop_reason}", "yellow"), soft_wrap=True)
    report_path = _write_report(state)
    best = state.best
    if best is None:
        console.print(Text.assemble(("no candidate trained successfully", "red"),
                                    literal(f"; see {report_path or run_dir.summary_json}")), soft_wrap=True)
        raise typer.Exit(1)
    threshold = ""
    if math.isfinite(solved_at):
        threshold = (f" (solved: fitness ≥ {solved_at:g})" if is_solved(best.fitness, solved_at)
                     else f" (not solved: solved at fitness ≥ {solved_at:g})")
    if state.no_progress:
        scored = sum(c.status == "scored" for c in state.candidates.values())
        console.print(f"\nno progress: all {scored} scored candidates have the same fitness "
                      f"({fmt_fitness(best.fitness)}), so none beat the others; {best.id} is exported only as the "
                      "first of equals, no better than a random choice. Check that the fitness can tell rewards "
                      "apart (a constant fitness cannot).", style="yellow", markup=False, highlight=False)
    console.print(Text.assemble("\nbest: ", literal(best.id, "bold"), " fitness ",
                                (fmt_fitness(best.fitness), "bold"), threshold))
    console.print(literal(f"reward:   {run_dir.candidate(best.iteration, best.index).reward}"), soft_wrap=True)
    console.print(literal(f"exported: {run_dir.best_dir / 'reward.py'}"), soft_wrap=True)
    console.print(literal(f"summary:  {run_dir.summary_json}"), soft_wrap=True)
    if report_path is not None:
        console.print(literal(f"report:   {report_path}"), soft_wrap=True)


def _write_report(state) -> Path | None:
    """``report.html`` at the end of ``run`` and ``resume``; one that cannot be written is only a warning."""
    from rewardsmith.report import write_report

    try:
        return write_report(state.run, state=state)
    except (RewardsmithError, OSError) as exc:
        err_console.print(Text.assemble(("warning:", "yellow"), literal(f" report not written: {exc}")),
                          highlight=False)
        return None


# ------------------------------------------------------------------------------ resume, feedback


@app.command(cls=_PlainUsage)
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
    from rewardsmith.designer import designer_for_run
    from rewardsmith.loop import resume_search
    from rewardsmith.progress import InteractiveProgress, LiveProgress
    from rewardsmith.runs import RunDir
    from rewardsmith.state import load_state

    if iterations is not None and iterations < 1:
        raise UsageError("--iterations must be at least 1")
    _check_workers(workers)
    run = RunDir.open(run_dir)
    budgets = {k: v for k, v in (("max_total_tokens", max_total_tokens), ("max_cost", max_cost)) if v is not None}
    if budgets:  # a search stopped by its budget goes on with a new one; checked before run.json keeps it
        info = run.read_run()
        options = {**(info.get("designer_options") or {}), **budgets}
        if info.get("designer") == "openai":
            from rewardsmith.designer import LLMOptions

            LLMOptions.from_dict(options)  # a UsageError here leaves run.json as it was
        run.update_run(designer_options=options)
    designer = designer_for_run(run)
    state = load_state(run)
    finished = sum(c.status in ("scored", "failed", "rejected") for c in state.candidates.values())
    console.print(literal(f"resuming {run.root}: {state.iterations_done} round(s) done, {finished} candidate(s) "
                          "finished"), soft_wrap=True)
    hooks = InteractiveProgress(console) if interactive else LiveProgress(console)
    try:
        state = resume_search(run, designer, iterations, hooks, workers)
    except KeyboardInterrupt:
        raise SearchInterrupted(run.root) from None
    finally:
        hooks.close()
        _print_usage(designer)
    _print_outcome(state)


@app.command(cls=_PlainUsage)
def feedback(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A run directory.")],
    text: Annotated[str, typer.Argument(help="What is wrong with the best policy, in words.")],
) -> None:
    """Record feedback on a run; `rewardsmith resume` gives it to the designer."""
    from rewardsmith.runs import RunDir
    from rewardsmith.state import record_feedback

    iteration = record_feedback(RunDir.open(run_dir), text)
    console.print(literal(f"recorded: round {iteration + 1} will receive it (run `rewardsmith resume {run_dir} "
                          "--iterations N`)"), soft_wrap=True)


@app.command(cls=_PlainUsage)
def rank(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A run directory.")],
    ids: Annotated[list[str], typer.Argument(metavar="ID", help="Scored candidates of the last finished round, "
                                             "best first (e.g. 01-02 01-00); some of them are enough.")],
) -> None:
    """Rank the last round's candidates after watching their rollouts; `rewardsmith resume` takes the first as the
    parent and gives the ranking to the designer."""
    from rewardsmith.runs import RunDir
    from rewardsmith.state import ranking_text, record_ranking

    iteration = record_ranking(RunDir.open(run_dir), ids)
    console.print(literal(f"recorded: round {iteration + 1} ranked {ranking_text(ids)}; round {iteration + 2} "
                          f"improves on {ids[0]} (run `rewardsmith resume {run_dir} --iterations N`)"), soft_wrap=True)


# ------------------------------------------------------------------------------------- evaluate


@app.command(cls=_PlainUsage)
def evaluate(
    file: Annotated[Path, typer.Argument(metavar="REWARD_FILE", help="A reward program (compute_reward).")],
    env: EnvOption = ...,  # type: ignore[assignment]
    env_kwargs: EnvKwargsOption = None,
    task: TaskOption = None,
    fitness: FitnessOption = None,
    ppo: PPOOption = None,
    hyperparams: HyperparamsOption = None,
    baseline: Annotated[Optional[Path], typer.Option(metavar="FILE", help="A human reference reward program "
                                                     "(compute_reward), trained as the human row.")] = None,
    seeds: Annotated[int, typer.Option(help="Training seeds per reward.")] = 5,
    timesteps: Annotated[Optional[int], typer.Option(help="PPO steps per training (default: the spec's).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Trainings in parallel (default: CPU cores).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train a reward on several seeds beside the baselines that exist for its fitness, same budget and seeds."""
    import json

    from rewardsmith.critic import check as run_check
    from rewardsmith.evaluate import evaluate_rewards
    from rewardsmith.executors import default_workers

    if seeds < 1:
        raise UsageError("--seeds must be at least 1")
    if timesteps is not None and timesteps < 64:
        raise UsageError("--timesteps must be at least 64")
    _check_workers(workers)
    _check_device(device)
    source = _read_source(file)
    human = _read_source(baseline) if baseline is not None else None
    if task is None and fitness is None:
        task = _load_env(env, env_kwargs).default_task.name
    ref, resolved = _task_ref(env, None, task, fitness, env_kwargs, ppo, hyperparams)
    for prefix, program in (("", source), ("baseline: ", human)):
        if program is None:
            continue
        verdict = run_check(program, resolved.spec, resolved.task_spec)
        if not verdict.accepted:
            for issue in verdict.errors:
                err_console.print(Text.assemble(("error", "red"), " ", prefix, literal(issue)), highlight=False)
            raise typer.Exit(1)
    evaluation = evaluate_rewards(ref, {file.name: source}, seeds, timesteps, workers or default_workers(), device,
                                  human=human)
    if as_json:
        sys.stdout.write(json.dumps(evaluation.to_dict(), indent=2) + "\n")
        return
    console.print(evaluation)


# ---------------------------------------------------------------------------------------- check


@app.command(cls=_PlainUsage)
def check(
    file: Annotated[Path, typer.Argument(metavar="REWARD_FILE", help="A reward program (compute_reward).")],
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
        console.print(Text.assemble((issue.severity, style), " ", literal(issue)), highlight=False)
    if verdict.accepted:
        timing = f" ({verdict.call_us:.0f} µs per call)" if verdict.call_us else ""
        components = ", ".join(verdict.components) or "(none)"
        console.print(Text.assemble(("accepted", "green"), literal(f"{timing}: components {components}")),
                      highlight=False)
        return
    console.print("rejected", style="red")
    raise typer.Exit(1)


# ------------------------------------------------------------------------------- envs, describe


@app.command(cls=_PlainUsage)
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
        label = f"{escape(spec.name)}\n[dim]{escape(spec.gym_id)}[/]" + (
            f"\n[dim]{escape(f'needs the {spec.extra} extra')}[/]" if spec.extra else "")
        for i, task in enumerate(spec.tasks):
            table.add_row(label if i == 0 else "", ("★ " if task.default else "  ") + escape(task.name),
                          f"{task.solved:g}", f"{task.budget(spec.ppo):,}", escape(task.description))
    console.print(table)


@app.command(cls=_PlainUsage)
def describe(env: Annotated[str, typer.Argument(help=_ENV_HELP)], env_kwargs: EnvKwargsOption = None,
             task: TaskOption = None) -> None:
    """Print exactly what a designer is told about an env."""
    spec = _load_env(env, env_kwargs)
    sys.stdout.write(spec.describe(spec.task(task)))


@app.command("prompts", cls=_PlainUsage)
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


@app.command(cls=_PlainUsage)
def export(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A run directory.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write here (default: stdout).")] = None,
    candidate: Annotated[Optional[str], typer.Option(help="A candidate id (default: the best).")] = None,
) -> None:
    """Write a candidate's reward as a standalone module (numpy + gymnasium only)."""
    from rewardsmith.export import render_export
    from rewardsmith.runs import RunDir, atomic_write_text
    from rewardsmith.state import best_manifest, load_state

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
    found = control_characters(module)
    if found:  # the critic refuses such a program, but any candidate can be named, and old runs predate the rule
        line, char = found[0]
        raise RewardsmithError(f"candidate {chosen.id} is not exported: its module would hold the control character "
                               f"{ascii(char)[1:-1]} on line {line}, which acts on a terminal that prints it")
    if output is None:
        sys.stdout.write(module)
        return
    atomic_write_text(output, module)
    err_console.print(literal(f"wrote {output} (candidate {chosen.id}, fitness {chosen.fitness})"))


# --------------------------------------------------------------------------------------- report


@app.command(cls=_PlainUsage)
def report(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A run directory.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o",
                      help="Write here (default: RUN/report.html).")] = None,
) -> None:
    """Write the run's report: one self-contained HTML file (charts, code and diffs, rejections, GIFs, feedback)."""
    from rewardsmith.report import write_report
    from rewardsmith.runs import RunDir

    path = write_report(RunDir.open(run_dir), output)
    console.print(literal(f"report: {path}"), soft_wrap=True)


# ----------------------------------------------------------------------------------------- show


@app.command(cls=_PlainUsage)
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
    warnings.showwarning = _show_warning
    try:
        code = app(standalone_mode=False)  # Typer turns Ctrl-C outside a search into a returned 130
    except SearchInterrupted as exc:
        err_console.print(f"\ninterrupted: the run is saved as it stands; continue it with\n"
                          f"  rewardsmith resume {shlex.quote(str(exc.run_root))}",
                          markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(130) from None
    except RewardsmithError as exc:
        raise SystemExit(_exit(str(exc), exc.exit_code)) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        raise SystemExit(1) from None
    except TyperException as exc:  # usage errors: unknown options, bad values
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            err_console.print(literal(f"error: {exc.format_message()}"))
        raise SystemExit(exc.exit_code) from None
    except Exception:  # a bug; its message may quote a reward program, so the traceback is shown as literal text
        err_console.print(literal(traceback.format_exc().rstrip()), highlight=False, soft_wrap=True)
        raise SystemExit(_exit("an internal error (the traceback above is worth reporting)", 1)) from None
    if code == 130:
        err_console.print("interrupted", markup=False, highlight=False)
    raise SystemExit(code if isinstance(code, int) else 0)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library's warning as one plain line: gymnasium colours its own with raw ANSI codes."""
    from rich.text import Text

    err_console.print(literal(f"warning: {Text.from_ansi(str(message)).plain}"), highlight=False, soft_wrap=True)


def _exit(message: str, code: int) -> int:
    err_console.print(Text.assemble(("error:", "bold red"), " ", literal(message)), highlight=False, soft_wrap=True)
    return code


if __name__ == "__main__":
    main()
