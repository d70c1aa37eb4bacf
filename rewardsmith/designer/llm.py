"""The LLM designer: prompts, requests, extraction, and the proposals, repairs and reviews they become.

The endpoint itself (options, client, retries, outages, error messages) is
:mod:`rewardsmith.designer.endpoint`. The story of one request:

1. :class:`~rewardsmith.designer.prompts.Prompts` renders the messages.
2. The request gets a key (a hash of its body and its slot: which sample, which repair); the run's
   ``llm/`` folder answers it if it was answered before (a resumed run, or ``--replay``).
3. Otherwise :meth:`~rewardsmith.designer.endpoint.Endpoint.post` sends it, retrying as it sees fit;
   a request that gets no usable reply marks its sample failed and the search goes on (a resume asks again).
4. The reply is stored, its tokens counted (and priced), and
   :func:`~rewardsmith.designer.extract.extract_program` takes the program out of it.

K samples per iteration use the request's ``n`` where the server honours it; a server that sends
fewer choices than asked (Ollama, llama.cpp) or refuses ``n`` gets the rest as separate requests,
``concurrency`` at a time. Samples that come back as the same program (a server that ignores
``temperature``) are asked again once, with a ``seed`` and a request for a different program.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rewardsmith.designer.base import DesignContext, Proposal, Review, Usage
from rewardsmith.designer.cache import Exchange, ReplyCache, request_key
from rewardsmith.designer.endpoint import Endpoint, LLMOptions, RequestFailed, RequestRefused, choices, count_tokens
from rewardsmith.designer.extract import extract_program, strip_reasoning
from rewardsmith.designer.prompts import Prompts
from rewardsmith.errors import BudgetExceeded, LLMError, UsageError

if TYPE_CHECKING:
    from rewardsmith.critic import Verdict
    from rewardsmith.runs import RunDir

__all__ = ["LLMDesigner", "LLMUsage", "parse_review"]


@dataclass
class LLMUsage(Usage):
    """Usage with retries, failures and a breakdown per iteration (``summary.json``'s ``usage``)."""

    retries: int = 0
    failed_requests: int = 0
    iterations: dict[int, dict[str, Any]] = field(default_factory=dict)
    price_input: float | None = None
    price_output: float | None = None

    def add(self, iteration: int, prompt_tokens: int, completion_tokens: int, retries: int = 0) -> None:
        self.requests += 1
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.retries += retries
        row = self.iterations.setdefault(iteration, {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0})
        row["requests"] += 1
        row["prompt_tokens"] += prompt_tokens
        row["completion_tokens"] += completion_tokens
        self.cost = self.price(self.prompt_tokens, self.completion_tokens)

    def price(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if self.price_input is None and self.price_output is None:
            return None
        return prompt_tokens / 1000 * (self.price_input or 0.0) + completion_tokens / 1000 * (self.price_output or 0.0)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["retries"] = self.retries
        data["failed_requests"] = self.failed_requests
        data["iterations"] = {
            str(i): {**row, "total_tokens": row["prompt_tokens"] + row["completion_tokens"],
                     "cost": self.price(row["prompt_tokens"], row["completion_tokens"])}
            for i, row in sorted(self.iterations.items())
        }
        return data


# ------------------------------------------------------------------------------------ internals


@dataclass(frozen=True)
class _Sample:
    text: str | None
    finish_reason: str | None
    key: str
    choice: int
    error: str | None = None


def _failed(key: str, error: str) -> _Sample:
    return _Sample(None, None, key, 0, error)


# -------------------------------------------------------------------------------------- designer


class LLMDesigner:
    """Proposes, repairs and reviews reward programs with an LLM; see the module docstring.

    Args:
        options: the endpoint, model and budgets.
        run_dir: the run (a :class:`~rewardsmith.runs.RunDir` or its path); its ``llm/`` folder
            stores every exchange. None keeps nothing (for one-off use).
    """

    name = "openai"

    def __init__(self, options: LLMOptions, run_dir: RunDir | Path | None = None) -> None:
        from rewardsmith.runs import RunDir

        self.options = options
        self.prompts = Prompts(Path(options.prompts) if options.prompts else None, history=options.history)
        replay = None
        if options.replay:
            replay = RunDir.open(options.replay).llm_dir
            if not replay.is_dir():
                raise UsageError(f"--replay {options.replay}: that run recorded no LLM replies (no llm/ folder)")
        self.cache = None if run_dir is None else ReplyCache(
            (run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))).llm_dir, replay)
        if self.cache is None and replay is not None:
            raise UsageError("--replay needs a run directory to write to")
        self.usage = LLMUsage(price_input=options.price_input, price_output=options.price_output)
        self.endpoint = Endpoint(options)
        self._lock = threading.Lock()
        self._use_n = options.use_n
        if self.cache is not None:  # what this run spent before a resume
            for exchange in self.cache.exchanges():
                if exchange.served == "network":
                    self.usage.add(exchange.iteration, exchange.prompt_tokens, exchange.completion_tokens,
                                   exchange.retries)
                    self.usage.failed_requests += exchange.failures
            self.usage.failed_requests += sum(f["failures"] if isinstance(f.get("failures"), int) else 1
                                              for f in self.cache.failures())

    # -- the designer protocol -----------------------------------------------------------------

    def propose(self, ctx: DesignContext) -> list[Proposal]:
        """One proposal per sample (or per ``ctx.slots``); samples that came back identical are asked again."""
        messages = self.prompts.propose_messages(ctx)
        slot = {"purpose": "propose", "iteration": ctx.iteration}
        if ctx.slots is None:
            indices = list(range(ctx.samples))
            samples = self._samples(messages, ctx.samples, slot)
        else:  # a resume re-asks the samples whose request failed, each in its own slot
            indices = list(ctx.slots)
            samples = self._each(indices, lambda i: self._one(messages, {**slot, "sample": i}))
        parent = ctx.parent.id if ctx.parent is not None else None
        proposals = [self._proposal(sample, {"parent": parent}) for sample in samples]
        return self._distinct(ctx, messages, slot, indices, proposals)

    def _distinct(self, ctx: DesignContext, messages: list[dict[str, str]], slot: dict[str, Any],
                  indices: list[int], proposals: list[Proposal]) -> list[Proposal]:
        """Ask again, once, for each sample whose program repeats an earlier one of the round.

        A server that ignores ``temperature`` (or ``n``) answers every sample alike; the repeats go out
        again with a ``seed`` and distinct.j2's hint to write a program other than the repeated one,
        and their origin's ``resampled`` says so (the loop tells the person).
        """
        first_of: dict[str, int] = {}
        repeats: list[tuple[int, int]] = []  # (position, position of the program it repeats)
        for position, proposal in enumerate(proposals):
            if proposal.origin.get("refused") is not None or not proposal.source.strip():
                continue
            if proposal.source in first_of:
                repeats.append((position, first_of[proposal.source]))
            else:
                first_of[proposal.source] = position
        if not repeats:
            return proposals
        note = (f"{len(repeats) + len({first for _, first in repeats})} of the {len(proposals)} samples of round "
                f"{ctx.iteration + 1} came back as the same program: the endpoint may be ignoring temperature "
                f"(or n); asked again for {len(repeats)} of them with a seed and a request for a different program")

        def vary(repeat: tuple[int, int]) -> _Sample:
            position, first = repeat
            index = indices[position]
            hint = self.prompts.distinct(proposals[first].source)
            hinted = messages[:-1] + [{**messages[-1], "content": messages[-1]["content"].rstrip("\n") + "\n\n" + hint}]
            seed = ctx.seed * 100_003 + ctx.iteration * 1_009 + index + 1
            return self._one(hinted, {**slot, "sample": index, "varied": 1}, seed=seed)

        parent = ctx.parent.id if ctx.parent is not None else None
        out = list(proposals)
        for (position, _), sample in zip(repeats, self._each(repeats, vary)):
            out[position] = self._proposal(sample, {"parent": parent, "resampled": note})
        return out

    def repair(self, ctx: DesignContext, source: str, problem: str, attempt: int) -> Proposal | None:
        if "[llm_failed]" in problem:
            return None  # the endpoint failed, not the program: nothing to show the LLM
        messages = self.prompts.repair_messages(ctx, source, problem, attempt, ctx.repairs)
        slot = {"purpose": "repair", "iteration": ctx.iteration, "candidate": ctx.candidate, "attempt": attempt}
        sample = self._one(messages, slot)
        if sample.error is not None:
            return None
        proposal = self._proposal(sample, {"repair": attempt})
        origin = dict(proposal.origin)
        origin["repair_note"] = origin.pop("note", "")
        return Proposal(proposal.source, origin)

    def review(self, ctx: DesignContext, source: str, verdict: Verdict) -> Review | None:
        """The LLM's review of a program the critic accepted; None unless ``--review`` is on."""
        if not self.options.review:
            return None
        sample_values = getattr(verdict, "sample", None)
        messages = self.prompts.review_messages(ctx.task, source, sample_values)
        slot = {"purpose": "review", "iteration": ctx.iteration, "candidate": ctx.candidate, "attempt": ctx.attempt}
        sample = self._one(messages, slot)
        origin = {"designer": self.name, "model": self.options.model, "request": sample.key}
        if sample.error is not None:  # a review that never came decides nothing: the program trains
            return Review(None, f"no review: {sample.error}", origin)
        passed, reasons = parse_review(sample.text or "")
        return Review(passed, reasons, origin)

    def ask(self, messages: list[dict[str, str]], slot: dict[str, Any]) -> tuple[str | None, str | None, str, str | None]:
        """One request outside the design rounds (the fitness proposal), through the same cache, budget, retries
        and usage accounting: (reply text, finish reason, request key, error where no reply came)."""
        sample = self._one(messages, slot)
        return sample.text, sample.finish_reason, sample.key, sample.error

    # -- samples -------------------------------------------------------------------------------

    def _proposal(self, sample: _Sample, extra: dict[str, Any]) -> Proposal:
        origin: dict[str, Any] = {"designer": self.name, "model": self.options.model, **extra,
                                  "request": sample.key, "choice": sample.choice,
                                  "finish_reason": sample.finish_reason, "refused": None}
        if sample.error is not None:
            origin["refused"] = {"code": "llm_failed", "message": sample.error}
            origin["note"] = "no reply from the LLM"
            return Proposal("", origin)
        extraction = extract_program(sample.text, sample.finish_reason)
        origin["note"] = extraction.note
        if extraction.refusal is not None:
            origin["refused"] = extraction.refusal.to_dict()
        return Proposal(extraction.source, origin)

    def _request(self, messages: list[dict[str, str]], n: int = 1, seed: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.options.model, "messages": messages,
                                "temperature": self.options.temperature, "max_tokens": self.options.max_tokens}
        if n > 1:
            body["n"] = n
        if seed is not None:
            body["seed"] = seed
        return body

    def _samples(self, messages: list[dict[str, str]], k: int, slot: dict[str, Any]) -> list[_Sample]:
        """``k`` replies to the same messages: one request with ``n`` if the server honours it, else ``k``."""
        results: list[_Sample | None] = [None] * k
        if k > 1 and self._use_n is not False:
            body = self._request(messages, n=k)
            n_slot = {**slot, "n": k}
            key = request_key(body, n_slot)
            try:
                exchange = self._exchange(body, n_slot, key)
            except RequestRefused:
                self._use_n = False  # the server refuses n: ask one by one
            except RequestFailed as exc:
                return [_failed(key, str(exc)) for _ in range(k)]
            else:
                replied = choices(exchange.reply)
                for i, (text, finish) in enumerate(replied[:k]):
                    results[i] = _Sample(text, finish, exchange.key, i)
                self._use_n = len(replied) >= k
        missing = [i for i, r in enumerate(results) if r is None]
        for i, sample in zip(missing, self._each(missing, lambda i: self._one(messages, {**slot, "sample": i}))):
            results[i] = sample
        return [r for r in results if r is not None]

    def _each(self, items: list[Any], ask: Callable[[Any], _Sample]) -> list[_Sample]:
        """``ask(item)`` for every item, ``concurrency`` at a time; the samples in the items' order."""
        if len(items) <= 1:
            return [ask(item) for item in items]
        pool = ThreadPoolExecutor(max_workers=min(self.options.concurrency, len(items)),
                                  thread_name_prefix="rewardsmith-llm")
        try:
            futures = [pool.submit(ask, item) for item in items]
            samples = [future.result() for future in futures]
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # a fatal error, a stop or Ctrl-C: queue no more
            raise
        pool.shutdown(wait=True)
        return samples

    def _one(self, messages: list[dict[str, str]], slot: dict[str, Any], seed: int | None = None) -> _Sample:
        body = self._request(messages, seed=seed)
        key = request_key(body, slot)
        try:
            exchange = self._exchange(body, slot, key)
        except (RequestFailed, RequestRefused) as exc:
            return _failed(key, str(exc))
        text, finish = choices(exchange.reply)[0]
        return _Sample(text, finish, exchange.key, 0)

    # -- exchanges: cache, budget, the network ---------------------------------------------------

    def _exchange(self, body: dict[str, Any], slot: dict[str, Any], key: str) -> Exchange:
        """The reply to ``body`` (named ``key``, its :func:`request_key`): cached, replayed, or asked for."""
        purpose, iteration = slot["purpose"], slot["iteration"]
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                with self._lock:
                    self.usage.cached_requests += 1
                return cached
        if self.options.replay:
            raise LLMError(f"--replay {self.options.replay} has no recorded reply for this {purpose} request "
                           f"(iteration {iteration}, key {key}): the search has left the recorded one (other "
                           "options, prompts, or critic verdicts); rerun with the recorded options, or without "
                           "--replay to ask the endpoint")
        self._check_budget()
        started = time.monotonic()
        try:
            reply, retries = self.endpoint.post(body, purpose)
        except (RequestFailed, RequestRefused) as exc:
            with self._lock:
                self.usage.failed_requests += 1
            if self.cache is not None:
                self.cache.put_failure(key, purpose, iteration, slot, body, str(exc), exc.attempts)
            raise
        prompt_tokens, completion_tokens = count_tokens(reply, body)
        exchange = Exchange(key, purpose, iteration, slot, body, reply, prompt_tokens, completion_tokens,
                            round(time.monotonic() - started, 3), retries)
        if self.cache is not None:
            self.cache.put(exchange)
        with self._lock:
            self.usage.add(iteration, prompt_tokens, completion_tokens, retries)
        return exchange

    def _check_budget(self) -> None:
        limit, cost_limit = self.options.max_total_tokens, self.options.max_cost
        with self._lock:
            spent = self.usage.total_tokens
            cost = self.usage.cost
        if limit is not None and spent >= limit:
            raise BudgetExceeded(f"token budget spent: {spent:,} tokens used, --max-total-tokens is {limit:,}")
        if cost_limit is not None and cost is not None and cost >= cost_limit:
            raise BudgetExceeded(f"cost budget spent: {cost:.4g} used, --max-cost is {cost_limit:g}")


_VERDICT_LINE = re.compile(r"[*_`#> ]*VERDICT[*_` ]*:[*_` ]*(PASS|FAIL)[*_`. ]*", re.IGNORECASE)
"""A verdict line as review.j2 asks for it (``VERDICT: PASS``), allowing Markdown emphasis around it."""


def parse_review(text: str) -> tuple[bool | None, str]:
    """(passed, reasons) from a review reply, decided only by its ``VERDICT: PASS`` / ``VERDICT: FAIL`` line.

    The last such line counts (review.j2 asks for it at the end); prose never decides, so a reason
    that reads "Failed to ..." is just a reason. A reply with no verdict line gives ``None``:
    neither pass nor fail, and the reasons say so.
    """
    answer = strip_reasoning(text or "").strip()
    lines = answer.split("\n")
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i].strip()
        match = _VERDICT_LINE.fullmatch(line) if len(line) <= 80 else None
        if match is not None:
            reasons = "\n".join(lines[:i] + lines[i + 1:]).strip() or line
            return match.group(1).upper() == "PASS", reasons[:4000]
    return None, f"the review gave no verdict line (VERDICT: PASS or VERDICT: FAIL): {answer[:300]}"
