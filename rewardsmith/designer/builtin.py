"""The built-in designer: offline, deterministic for a seed, no LLM.

It composes reward programs from the spec's shaping hints. Each program is a *genome*: for every
hint, whether it is on, its weight, its temperature (the error scale at which a bonus fades) and
its form (``exp``, ``linear``, ``square`` for errors; ``linear``, ``tanh`` for gains). The first
iteration samples around the spec's defaults; later ones mutate the parent (the best so far, or
the one a person chose) and steer the mutation with the analyzer's findings:

* a *dominant* component's weight is halved, a *flat* one is sharpened (temperature halved; an
  optional flat constant or flag is switched off),
* the unflagged component that goes most with fitness across the parent's episodes
  (``corr_fitness`` ≥ 0.5), and pays on at least 5 % of steps, gets 1.5× its weight — or, when
  that move already failed to beat this parent, a sharper temperature (halved),
* a component *against* fitness, or one the policy *farms* (reward hacking), is switched off
  (halved if the spec says it is required),
* human feedback that names a component with "more/stronger/increase" doubles it,
  "less/weaker/decrease" halves it, "remove/drop/without" switches it off.

Where the task's fitness is not simply the env's own return, the designer first probes it
(:mod:`rewardsmith.designer.probe`: which fields, values, actions and endings raise it) and composes from
what it finds (:mod:`rewardsmith.designer.probe_terms`), keeping the spec's hints that agree; every term the
probe speaks for carries a ``# probe: …`` comment naming the result it came from. Where the probe cannot
tell whether the env's own reward goes with the fitness, that term starts off and the first iteration's
second candidate turns it on, so the search decides by fitness.

It emits source in the same contract an LLM would.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from rewardsmith.candidate import source_hash
from rewardsmith.designer.base import DesignContext, Proposal, Usage
from rewardsmith.designer.probe import FitnessProbe, probe_fitness
from rewardsmith.designer.probe_terms import compose_terms
from rewardsmith.safetext import sanitize
from rewardsmith.spec import ShapingHint, env_reward_fitness, usable_hints

__all__ = ["BuiltinDesigner", "Gene", "render_genome"]

_FORMS = {"error": ("exp", "linear", "square"), "gain": ("linear", "tanh"), "flag": ("flag",),
          "constant": ("constant",)}
_ENV_REWARD = ShapingHint("env_reward", 'info["env_reward"]', "gain", doc="the env's own reward")
"""Composed alone where none of the spec's hints fits the env."""
PROBE_CALLS = 432
"""Calls of the fitness a probe may make (an LLM-proposed fitness runs in the sandbox, so each costs): 400 for
the sweeps, actions and endings, 32 for the agreement with the env's reward."""
_ALIGNED = 0.5
"""An unflagged component whose per-step value correlates with fitness across the parent's episodes at
r ≥ 0.5 (the analyzer's ``corr_fitness``) gets 1.5× its weight: the evidence says more of it is better."""
_DENSE = 0.05
"""…if it pays on at least 5 % of the parent's steps (the analyzer's ``active``): an event the policy
rarely reaches (a goal flag) correlates with fitness because it *is* the goal, but more weight on it
teaches little; the dense term that goes with fitness carries the gradient."""
_MORE = re.compile(r"\b(more|increase|stronger|higher|bigger|raise|boost|up)\b")
_LESS = re.compile(r"\b(less|decrease|weaker|lower|smaller|reduce|down)\b")
_OFF = re.compile(r"\b(remove|drop|without|disable|ignore|get rid of|turn off|switch off|no more)\b")


@dataclass(frozen=True)
class Gene:
    on: bool
    weight: float
    temp: float
    form: str


Genome = dict[str, Gene]


def _round(x: float) -> float:
    return float(f"{x:.3g}")


def _default_genome(hints: tuple[ShapingHint, ...], off: frozenset[str] = frozenset()) -> Genome:
    return {h.name: Gene(h.name not in off, h.weight, h.scale, _FORMS[h.kind][0]) for h in hints}


def _starts_off(hints: tuple[ShapingHint, ...], probe: FitnessProbe | None) -> frozenset[str]:
    """The env's own reward, composed as optional because its agreement with the fitness is unsure: it
    starts off, and the first iteration's second candidate turns it on (the search then picks by fitness)."""
    if probe is None or probe.agreement is None or probe.agreement.verdict != "unsure":
        return frozenset()
    return frozenset(h.name for h in hints if h.optional and h.expr == 'info["env_reward"]')


def _docstring_text(text: str) -> str:
    """The person's sentence as docstring text that cannot end the docstring, break its escapes or hold a control
    character (the critic refuses a program with one): backslashes and quotes escaped, controls shown as escapes."""
    return sanitize(text.strip().replace("\\", "\\\\").replace('"', '\\"'))


def render_genome(genome: Genome, hints: tuple[ShapingHint, ...], task_text: str, env_name: str,
                  notes: dict[str, str] | None = None, probe: FitnessProbe | None = None) -> str:
    """The reward program a genome stands for; ``notes`` (term name → the probe result it came from) become
    comments above the terms' weights."""
    notes = notes or {}
    active = [h for h in hints if genome[h.name].on]
    needs_numpy = any("np." in h.expr for h in active)
    origin = (f"Composed by rewardsmith's built-in designer from the {env_name} spec's shaping hints."
              if probe is None else
              f"Composed by rewardsmith's built-in designer from probing the task's fitness ({probe.calls} calls on "
              f"recorded and constructed {env_name} episodes{_random_play(probe)})\nand the spec's shaping hints "
              "that agree with it.")
    lines = [f'"""Reward for: {_docstring_text(task_text)}', "", origin, '"""', "import math", ""]
    if needs_numpy:
        lines[-1:] = ["import numpy as np", ""]
        lines.insert(-2, "")
    for h in active:
        gene = genome[h.name]
        tag = h.name.upper()
        if h.name in notes:
            lines.append(f"# {notes[h.name]}")
        lines.append(f"W_{tag} = {_round(gene.weight)!r}")
        if gene.form not in ("flag", "constant"):
            lines.append(f"T_{tag} = {_round(gene.temp)!r}  # {_TEMP_DOC[gene.form]}")
    lines += ["", "", "def compute_reward(obs, action, next_obs, info):"]
    for h in active:
        lines.append(f"    {h.name} = {_term(h, genome[h.name].form)}")
    names = ", ".join(f'"{h.name}": {h.name}' for h in active)
    lines += [f"    components = {{{names}}}", "    return sum(components.values()), components", ""]
    return "\n".join(lines)


def _random_play(probe: FitnessProbe) -> str:
    return "" if probe.random_fitness is None else f"; random play scores {probe.random_fitness:.4g}"


_TEMP_DOC = {
    "exp": "error at which the bonus falls to 1/e",
    "linear": "error that costs one weight",
    "square": "error that costs one weight",
    "tanh": "gain at which the bonus nears its weight",
}


def _term(hint: ShapingHint, form: str) -> str:
    if not hint.progress:
        return _value(hint, form, hint.expr)
    before = re.sub(r"\bnext_obs\b", "obs", hint.expr)
    return f"({_value(hint, form, hint.expr)}) - ({_value(hint, form, before)})"


def _value(hint: ShapingHint, form: str, expr: str) -> str:
    """The term's value in ``form`` for ``expr``."""
    tag = hint.name.upper()
    if form == "exp":
        return f"W_{tag} * math.exp(-({expr}) / T_{tag})"
    if form == "square":
        return f"-W_{tag} * (({expr}) / T_{tag}) ** 2"
    if form == "linear" and hint.kind == "error":
        return f"-W_{tag} * ({expr}) / T_{tag}"
    if form == "linear":
        return f"W_{tag} * ({expr}) / T_{tag}"
    if form == "tanh":
        return f"W_{tag} * math.tanh(({expr}) / T_{tag})"
    if form == "flag":
        return f"W_{tag} * (1.0 if {expr} else 0.0)"
    return f"W_{tag}" if expr.strip() == "1.0" else f"W_{tag} * ({expr})"


class BuiltinDesigner:
    """Evolves shaping-hint compositions; see the module docstring."""

    name = "builtin"

    def __init__(self, sigma: float = 0.6, probe_calls: int = PROBE_CALLS) -> None:
        self.sigma = sigma
        self.probe_calls = probe_calls
        self.usage = Usage()
        self._probes: dict[tuple[str, str, str, int], FitnessProbe | None] = {}

    def terms(self, ctx: DesignContext) -> tuple[tuple[ShapingHint, ...], dict[str, str], FitnessProbe | None]:
        """The terms to compose, the probe note of each term it speaks for, and the probe (None where the
        fitness is the env's own return, which the spec's hints were written for, or where probing found
        nothing)."""
        task = ctx.task
        hints = usable_hints(task.spec, task.task_spec)
        probe = self._probe(ctx)
        if probe is None:
            return hints or (_ENV_REWARD,), {}, None
        composed, notes = compose_terms(probe, hints, task.spec, task.task_spec)
        return composed or (_ENV_REWARD,), notes, probe

    def _probe(self, ctx: DesignContext) -> FitnessProbe | None:
        task = ctx.task
        if task.fitness is env_reward_fitness:
            return None
        key = (task.spec.name, task.task_spec.name, task.fitness_label, ctx.seed)
        if key not in self._probes:
            probe = probe_fitness(task.fitness, task.spec, task.task_spec, seed=ctx.seed, max_calls=self.probe_calls)
            self._probes[key] = probe if probe.found else None
        return self._probes[key]

    def propose(self, ctx: DesignContext) -> list[Proposal]:
        hints, notes, probe = self.terms(ctx)
        rng = np.random.default_rng([ctx.seed, ctx.iteration, 20261126])
        seen = {source_hash(c.source) for c in ctx.history}
        off = _starts_off(hints, probe)
        parent_genome, parent_id = self._parent_genome(ctx, hints, off)
        guided, reasons = self._guidance(ctx, parent_genome, hints, off)
        second = self._second_genome(ctx, hints, parent_id)
        proposals = []
        for k in range(ctx.samples):
            if (ctx.iteration == 0 and not ctx.history and k == 0) or (k == 0 and reasons):
                genome, move = guided, ""
            elif k == 1 and second is not None:
                genome = self._mutate(self._crossover(guided, second, rng), hints, rng, strength=0.5)
                move = "crossover of the two best, lightly mutated"
            elif k == 1 and off and not any(guided[name].on for name in off):
                genome = {name: replace(gene, on=True) if name in off else gene for name, gene in guided.items()}
                move = f"the same terms with {', '.join(sorted(off))} on (its agreement with the fitness is unsure)"
            else:
                genome = self._mutate(guided, hints, rng, strength=1.0)
                move = "random mutation"
            source = render_genome(genome, hints, ctx.task.text, ctx.task.spec.name, notes, probe)
            for _ in range(20):
                if source_hash(source) not in seen:
                    break
                genome = self._mutate(genome, hints, rng, strength=1.0)
                move = move or "guided, then mutated (the guided program was already tried)"
                source = render_genome(genome, hints, ctx.task.text, ctx.task.spec.name, notes, probe)
            seen.add(source_hash(source))
            note = _change_note(parent_genome, genome, guided, reasons, move, from_defaults=parent_id is None)
            origin = {"designer": self.name, "parent": parent_id, "note": note,
                      "genome": {name: asdict(gene) for name, gene in genome.items()}}
            proposals.append(Proposal(source, origin))
        return proposals

    def repair(self, ctx: DesignContext, source: str, problem: str, attempt: int) -> Proposal | None:
        return None  # its programs come from vetted hints; there is nothing to repair

    # -- parents and guidance ------------------------------------------------------------------

    def _parent_genome(self, ctx: DesignContext, hints: tuple[ShapingHint, ...],
                       off: frozenset[str] = frozenset()) -> tuple[Genome, str | None]:
        parent = ctx.parent
        if parent is not None and "genome" in parent.origin:
            return _genome_from(parent.origin["genome"], hints, off), parent.id
        return _default_genome(hints, off), None

    def _second_genome(self, ctx: DesignContext, hints: tuple[ShapingHint, ...], parent_id: str | None) -> Genome | None:
        others = sorted((c for c in ctx.scored if c.id != parent_id and "genome" in c.origin),
                        key=lambda c: c.merit, reverse=True)
        return _genome_from(others[0].origin["genome"], hints) if others else None

    def _guidance(self, ctx: DesignContext, genome: Genome, hints: tuple[ShapingHint, ...],
                  off: frozenset[str] = frozenset()) -> tuple[Genome, list[tuple[str, str]]]:
        """The parent steered by its analysis and the feedback, and each change as (component, why)."""
        genome = dict(genome)
        notes: list[tuple[str, str]] = []
        required = {h.name for h in hints if not h.optional}
        analysis = ctx.parent.analysis if ctx.parent is not None and ctx.parent.analysis else {}
        for name, stats in analysis.get("components", {}).items():
            if name not in genome:
                continue
            flags = set(stats.get("flags", []))
            gene = genome[name]
            if flags & {"against", "hacked"}:
                if name in required:
                    genome[name] = replace(gene, weight=gene.weight * 0.5)
                    notes.append((name, f"halved {name} ({', '.join(sorted(flags & {'against', 'hacked'}))})"))
                else:
                    genome[name] = replace(gene, on=False)
                    notes.append((name, f"dropped {name} ({', '.join(sorted(flags & {'against', 'hacked'}))})"))
            elif "dominant" in flags:
                genome[name] = replace(gene, weight=gene.weight * 0.5)
                notes.append((name, f"halved dominant {name}"))
            elif "flat" in flags and gene.form in _TEMP_DOC:  # every form with a temperature
                genome[name] = replace(gene, temp=gene.temp * 0.5)
                notes.append((name, f"sharpened flat {name}"))
            elif "flat" in flags and name not in required:  # a constant or flag that teaches nothing
                genome[name] = replace(gene, on=False)
                notes.append((name, f"dropped flat {name}"))
        aligned = [(stats["corr_fitness"], name) for name, stats in analysis.get("components", {}).items()
                   if name in genome and genome[name].on and not stats.get("flags")
                   and (stats.get("corr_fitness") or 0.0) >= _ALIGNED and stats.get("active", 1.0) >= _DENSE]
        if aligned and analysis.get("fitness", {}).get("success_rate", 0.0) < 1.0:
            corr, name = max(aligned)
            gene = genome[name]
            levers = [("strengthened", replace(gene, weight=gene.weight * 1.5))]
            if gene.form in _TEMP_DOC:
                levers.append(("sharpened", replace(gene, temp=gene.temp * 0.5)))
            failed = _failed_moves(ctx)
            # two ways to make a term steer more; one that already failed from this parent is not repeated
            for verb, changed in levers:
                if f"{verb} {name} (r" not in failed:
                    genome[name] = changed
                    notes.append((name, f"{verb} {name} (r = {corr:+.2f} with fitness)"))
                    break
        for text in ctx.feedback:
            for sentence in re.split(r"[.;:,!?\n]", text.lower()):
                for name in genome:
                    if name.replace("_", " ") not in sentence and name not in sentence:
                        continue
                    gene = genome[name]
                    if _OFF.search(sentence):
                        genome[name] = replace(gene, on=False)
                        notes.append((name, f"feedback: dropped {name}"))
                    elif _MORE.search(sentence):
                        genome[name] = replace(gene, on=True, weight=gene.weight * 2)
                        notes.append((name, f"feedback: doubled {name}"))
                    elif _LESS.search(sentence):
                        genome[name] = replace(gene, weight=gene.weight * 0.5)
                        notes.append((name, f"feedback: halved {name}"))
        if not any(g.on for g in genome.values()):
            return _default_genome(hints, off), []
        return genome, notes

    # -- variation -----------------------------------------------------------------------------

    def _mutate(self, genome: Genome, hints: tuple[ShapingHint, ...], rng: np.random.Generator,
                strength: float) -> Genome:
        genome = dict(genome)
        by_name = {h.name: h for h in hints}
        names = list(genome)
        changes = 1 + int(rng.integers(0, max(2, len(names) // 2)))
        for name in rng.choice(names, size=min(changes, len(names)), replace=False):
            hint, gene = by_name[str(name)], genome[str(name)]
            roll = rng.random()
            if hint.optional and roll < 0.2:
                gene = replace(gene, on=not gene.on)
            elif roll < 0.35 and len(_FORMS[hint.kind]) > 1:
                forms = [f for f in _FORMS[hint.kind] if f != gene.form]
                gene = replace(gene, form=str(rng.choice(forms)))
            elif roll < 0.7 or hint.kind in ("flag", "constant"):
                gene = replace(gene, weight=gene.weight * math.exp(rng.normal(0, self.sigma * strength)))
            else:
                gene = replace(gene, temp=gene.temp * math.exp(rng.normal(0, self.sigma * strength)))
            genome[str(name)] = gene
        if not any(g.on for g in genome.values()):
            first = next(h.name for h in hints if not h.optional) if any(not h.optional for h in hints) else names[0]
            genome[first] = replace(genome[first], on=True)
        return genome

    @staticmethod
    def _crossover(a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        return {name: (a[name] if rng.random() < 0.5 else b.get(name, a[name])) for name in a}


def _change_note(parent: Genome, child: Genome, guided: Genome, reasons: list[tuple[str, str]], move: str,
                 from_defaults: bool) -> str:
    """What ``child`` changes from ``parent`` (the spec's defaults when it has none), gene by gene.

    A guided change that survived into ``child`` keeps its reason ("halved dominant upright"); any other
    difference is described as it is, so the note never claims a change the code does not have.
    """
    changes: list[str] = []
    for name, before in parent.items():
        after = child[name]
        if after == before or not (after.on or before.on):  # a switched-off term is not in the code
            continue
        why = [text for component, text in reasons if component == name]
        changes.extend(why if why and after == guided[name] else [_gene_change(name, before, after)])
    if not changes:
        return move or ("the spec's default composition" if from_defaults else "the parent unchanged")
    described = "; ".join(changes) + (" (from the spec's defaults)" if from_defaults else "")
    return f"{move}: {described}" if move else described


def _gene_change(name: str, before: Gene, after: Gene) -> str:
    if before.on and not after.on:
        return f"dropped {name}"
    parts = [f"restored {name}"] if after.on and not before.on else []
    if after.form != before.form:
        parts.append(f"{name} form {before.form} → {after.form}")
    if _round(after.weight) != _round(before.weight):
        parts.append(f"{name} weight {_round(before.weight):g} → {_round(after.weight):g}")
    if _round(after.temp) != _round(before.temp) and after.form not in ("flag", "constant"):
        parts.append(f"{name} temperature {_round(before.temp):g} → {_round(after.temp):g}")
    return ", ".join(parts) or f"{name} retuned"


def _failed_moves(ctx: DesignContext) -> str:
    """The notes of the parent's earlier children that did not beat it, joined: moves not worth repeating."""
    parent = ctx.parent
    if parent is None:
        return ""
    bar = parent.fitness if parent.fitness is not None else -math.inf
    return " | ".join(c.origin.get("note", "") for c in ctx.history
                      if c.parent == parent.id and (c.fitness is None or c.fitness <= bar))


def _genome_from(data: dict[str, Any], hints: tuple[ShapingHint, ...], off: frozenset[str] = frozenset()) -> Genome:
    genome = _default_genome(hints, off)
    for name, gene in data.items():
        if name in genome:
            genome[name] = Gene(**gene)
    return genome


