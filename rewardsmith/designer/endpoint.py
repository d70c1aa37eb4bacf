"""The endpoint side of the LLM designer: its options, the OpenAI client, and one request's transport.

OpenAI, Azure OpenAI (its ``/openai/v1/`` endpoint), vLLM, Ollama, llama.cpp's server and LM Studio
all speak the same chat-completions protocol; ``base_url``, ``model`` and the name of the environment
variable that holds the key are all that differ (see docs/llm.md).

:meth:`Endpoint.post` is the one place where requests leave rewardsmith. 429, 5xx, timeouts and
malformed bodies are retried with exponential backoff and jitter (honouring ``Retry-After``); when the
retries run out it raises :class:`RequestFailed` and the designer marks the sample failed. A server
that goes away (connections refused or dropped) is waited for, up to ``outage`` seconds, then
:class:`~rewardsmith.errors.EndpointDown` stops the search cleanly. A refused key (401/403), an unknown
model (404) or a host never reached raise :class:`~rewardsmith.errors.LLMError` at once: one line naming
the cause and the option that fixes it. Every HTTP error quotes the server's own message.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from rewardsmith.errors import EndpointDown, LLMError, UsageError
from rewardsmith.sandbox.issues import sanitize

__all__ = ["BASE_URL_ENV", "Endpoint", "LLMOptions", "RequestFailed", "RequestRefused", "check_endpoint",
           "choices", "choose_designer", "count_tokens", "endpoint_configured", "load_prices"]

BASE_URL_ENV = "OPENAI_BASE_URL"
"""The environment variable naming the endpoint when ``--base-url`` is not given (read only by :func:`base_url`)."""

OPENAI_URL = "https://api.openai.com/v1"
MAX_RETRY_AFTER = 60.0
"""Longest ``Retry-After`` honoured, seconds; beyond it the usual backoff applies."""
OUTAGE_STEP = 10.0
"""Longest pause, seconds, between tries while the endpoint cannot be reached."""
PURPOSE_HEADER = "X-Rewardsmith-Purpose"
"""Sent with every request (``propose``, ``repair``, ``review``) so proxies and logs can tell them apart."""



def base_url(given: str | None) -> str | None:
    """The endpoint asked for: ``given`` (``--base-url``), else ``$OPENAI_BASE_URL``, else None."""
    return given or os.environ.get(BASE_URL_ENV) or None



@dataclass(frozen=True)
class LLMOptions:
    """How the LLM designer reaches its endpoint and what it may spend; recorded in run.json (never the key)."""

    model: str | None = None
    """The model (for Azure: the deployment name). None: the only model the endpoint lists."""
    base_url: str | None = None
    """The endpoint, ending in ``/v1`` for most servers; None reads ``OPENAI_BASE_URL``, else OpenAI's."""
    api_key_env: str = "OPENAI_API_KEY"
    """The environment variable that holds the key (only its name is recorded)."""
    temperature: float = 0.8
    max_tokens: int = 4096
    """Completion tokens per reply (reasoning models need more: their thinking counts)."""
    max_total_tokens: int | None = None
    """Stop the search cleanly once this many tokens have been spent in the run."""
    max_cost: float | None = None
    """Stop the search cleanly once this much has been spent (needs prices)."""
    price_input: float | None = None
    """Price of 1000 prompt tokens."""
    price_output: float | None = None
    """Price of 1000 completion tokens."""
    concurrency: int = 4
    """Requests in flight at once when samples are requested one by one."""
    timeout: float = 300.0
    """Seconds one request may take."""
    retries: int = 4
    """Retries of a request after 429, 5xx, a timeout or a malformed reply."""
    backoff: float = 1.0
    """Seconds before the first retry; doubled each time (up to 30 s), with jitter."""
    outage: float = 120.0
    """Seconds to keep trying while the endpoint cannot be reached (a server restarting), with pauses
    doubling up to 10 s; then the search stops (status ``stopped``) and ``resume`` goes on from there."""
    use_n: bool | None = None
    """Ask for K samples in one request: None detects whether the server honours ``n``."""
    prompts: str | None = None
    """A directory whose templates override the bundled ones."""
    replay: str | None = None
    """Another run's directory: answer from its recorded replies, never the network."""
    review: bool = False
    """Have the LLM review every program the critic accepts, before training."""
    history: int = 16
    """Other candidates summarised in the reflection prompt."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        if self.max_tokens < 16:
            raise UsageError("--max-tokens must be at least 16")
        if not 0 <= self.temperature <= 2:
            raise UsageError("--temperature must be between 0 and 2")
        if self.max_total_tokens is not None and self.max_total_tokens < 1:
            raise UsageError("--max-total-tokens must be at least 1")
        if self.retries < 0 or self.timeout <= 0 or self.backoff < 0:
            raise UsageError("retries, timeout and backoff must be positive")
        if self.outage < 0:
            raise UsageError("--llm-outage must be 0 or more seconds")
        if self.max_cost is not None and (self.price_input is None and self.price_output is None):
            raise UsageError("--max-cost needs prices: --price-per-1k-input/--price-per-1k-output or --prices")
        if self.prompts is not None and not Path(self.prompts).is_dir():
            raise UsageError(f"--prompts {self.prompts}: not a directory")

    @property
    def url(self) -> str:
        return (base_url(self.base_url) or OPENAI_URL).rstrip("/")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LLMOptions:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})


def endpoint_configured(options: LLMOptions) -> bool:
    """True when an endpoint is configured (a URL or a key in the environment) or a replay is asked for."""
    return bool(options.replay or base_url(options.base_url) or os.environ.get(options.api_key_env))


_REPLAYED = ("model", "temperature", "max_tokens", "use_n", "history")
"""Options that shape the requests: a replay takes them from the recorded run unless given again."""


def choose_designer(requested: str, given: dict[str, Any], prices: str | Path | None = None,
                    check: bool = True) -> tuple[str, LLMOptions | None]:
    """The designer a ``run`` uses, with its LLM options filled in and checked.

    ``auto`` means ``openai`` when an endpoint is configured (``--base-url``, ``OPENAI_BASE_URL``,
    a key in the environment, or ``--replay``), else ``builtin``. For ``openai``: a replay takes the
    recorded run's model and sampling options unless they are given again; otherwise the endpoint is
    asked for its models (failing fast on a refused key or an unreachable host), and a missing
    ``--model`` becomes the only one it serves.

    Args:
        given: the LLM options set on the command line (None values left out).
        prices: a JSON price table (see :func:`load_prices`).
        check: ask the endpoint before the run starts.

    Raises:
        UsageError: an unknown designer, or no model to use.
        LLMError: the endpoint refuses the key or cannot be reached.
    """
    from rewardsmith.runs import RunDir

    if requested not in ("auto", "builtin", "openai"):
        raise UsageError(f"unknown designer {requested!r}; choose auto, builtin or openai")
    if requested == "builtin":
        return "builtin", None
    given = dict(given)
    max_cost = given.pop("max_cost", None)  # checked once the prices are known
    options = LLMOptions.from_dict(given)
    if requested == "auto" and not endpoint_configured(options):
        return "builtin", None
    filled: dict[str, Any] = {"max_cost": max_cost}
    if options.replay:
        filled["replay"] = str(Path(options.replay).resolve())
        info = RunDir.open(options.replay).read_run()
        if info.get("designer") != "openai":
            raise UsageError(f"--replay {options.replay}: that run used the {info.get('designer')} designer and "
                             "recorded no LLM replies")
        recorded = info.get("designer_options") or {}
        for name in _REPLAYED:
            if name not in given and recorded.get(name) is not None:
                filled[name] = recorded[name]
    else:
        filled["base_url"] = options.url
    if not options.replay and check:
        models = check_endpoint(options)
        if not options.model:
            if len(models) != 1:
                listed = ", ".join(sanitize(m) for m in models[:12])
                served = f"it serves {listed}" if models else "it lists no models"
                raise UsageError(f"pass --model: {options.url} {served}")
            filled["model"] = models[0]
        elif models and not _listed(options.model, models, options.url):
            raise UsageError(f"--model {options.model!r} is not served by {options.url}; it serves "
                             f"{', '.join(sanitize(m) for m in models[:12])}{' …' if len(models) > 12 else ''}")
    model = filled.get("model", options.model)
    if not model:
        raise UsageError("pass --model (for Azure OpenAI, the deployment name)")
    if options.prompts:
        filled["prompts"] = str(Path(options.prompts).resolve())
    if prices is not None:
        filled["price_input"], filled["price_output"] = load_prices(prices, model)
    return "openai", replace(options, **filled)


def _listed(model: str, models: list[str], url: str) -> bool:
    """Whether the endpoint's model list names ``model``.

    Ollama also answers ``name`` for ``name:latest``; Azure OpenAI lists base models, not the
    deployment names its requests take, so there the list proves nothing.
    """
    if ".openai.azure.com" in url.lower():
        return True
    return model in models or f"{model}:latest" in models


def load_prices(path: str | Path, model: str | None) -> tuple[float | None, float | None]:
    """Prices per 1000 input and output tokens from a JSON table.

    The table is either ``{"input": 0.15, "output": 0.6}`` or one such entry per model name.
    """
    try:
        table = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"price table {path} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"price table {path} is not JSON: {exc}") from None
    if isinstance(table, dict) and model in table and isinstance(table[model], dict):
        table = table[model]
    if not isinstance(table, dict) or not ({"input", "output"} & set(table)):
        raise UsageError(f"price table {path} has no prices for model {model!r} "
                         '(write {"input": PRICE, "output": PRICE} per 1000 tokens, or one such entry per model)')
    try:
        return (float(table["input"]) if "input" in table else None,
                float(table["output"]) if "output" in table else None)
    except (TypeError, ValueError):
        raise UsageError(f"price table {path}: prices must be numbers") from None




class RequestFailed(Exception):
    """A request that got no usable reply (retries spent, or refused as a bad request): one sample lost."""

    def __init__(self, message: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts
        """How many times the request was sent."""


class RequestRefused(RequestFailed):
    """HTTP 400/422: the server understood and refused this request (not worth retrying as is)."""




def parse_completion(text: str) -> dict[str, Any]:
    """The reply body as a dict, checked to be a chat completion with choices."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        raise RequestFailed(f"the reply is not JSON: {text[:80]!r}") from None
    listed = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(listed, list) or not listed:
        raise RequestFailed(f"the reply is not a chat completion (no choices): {text[:80]!r}")
    for choice in listed:
        if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
            raise RequestFailed(f"the reply's choices have no message: {text[:80]!r}")
    return data


def choices(reply: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    """(text, finish reason) of each choice of a checked reply, in index order; text None when there is none."""
    ordered = sorted(reply["choices"], key=lambda c: c.get("index", 0) if isinstance(c.get("index"), int) else 0)
    out = []
    for choice in ordered:
        content = choice["message"].get("content")
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        out.append((content if isinstance(content, str) else None, choice.get("finish_reason")))
    return out


def count_tokens(reply: dict[str, Any], request: dict[str, Any]) -> tuple[int, int]:
    """(prompt, completion) tokens of an exchange: the server's count, else an estimate."""
    usage = reply.get("usage") if isinstance(reply.get("usage"), dict) else {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return prompt, completion
    # a server that reports no usage: estimate at four characters a token
    chars_in = sum(len(str(m.get("content", ""))) for m in request.get("messages", []))
    chars_out = sum(len(c or "") for c, _ in choices(reply))
    return math.ceil(chars_in / 4), math.ceil(chars_out / 4)


def _connect_failure(exc: BaseException) -> BaseException | None:
    """The underlying connect error (refused, DNS) of a connection failure, if that is what it is."""
    cause: BaseException | None = exc
    while cause is not None:
        if any(k.__name__ in ("ConnectError", "ConnectionRefusedError", "gaierror") for k in type(cause).__mro__):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def _key_refused(options: LLMOptions, exc: Exception) -> LLMError:
    return LLMError(f"{options.url} refused the API key in ${options.api_key_env} (HTTP 401: {_error_message(exc)}); "
                    "set a valid key there, or name the variable that holds it with --api-key-env")


def _unreachable(options: LLMOptions, refused: BaseException) -> LLMError:
    return LLMError(f"cannot reach {options.url} ({refused}); check --base-url (or OPENAI_BASE_URL) and "
                    "that the server is running")


def _client(options: LLMOptions) -> Any:
    """An OpenAI client for the endpoint, with the key from ``$api_key_env`` (no retries: we retry ourselves).

    Raises:
        LLMError: no key set for the OpenAI API itself.
    """
    import openai

    key = os.environ.get(options.api_key_env, "").strip()
    if not key:
        if options.url == OPENAI_URL:
            raise LLMError(f"no API key: ${options.api_key_env} is not set; export it, name "
                           "the variable that holds the key with --api-key-env, or point --base-url "
                           "at a local server")
        key = "unused"  # local servers take any key
    return openai.OpenAI(base_url=options.url, api_key=key, max_retries=0, timeout=options.timeout)


def _model_ids(client: Any, timeout: float) -> list[str]:
    """The ids of the models the endpoint lists (``GET /models``)."""
    return [m.id for m in client.with_options(timeout=timeout).models.list()]


def _error_message(exc: Any) -> str:
    """The server's own words for an HTTP error: the body's ``error.message`` (or ``error``, ``detail``,
    ``message``), else the body's text; one line, control characters shown as escapes, at most 500 characters."""
    found = _message_in(getattr(exc, "body", None))
    if not found:
        response = getattr(exc, "response", None)
        try:
            raw = response.text if response is not None else ""
        except Exception:  # noqa: BLE001 - a body that cannot be read has nothing to say
            raw = ""
        try:
            found = _message_in(json.loads(raw)) or raw
        except (json.JSONDecodeError, TypeError):
            found = raw
    text = " ".join(str(found or getattr(exc, "message", "") or exc).split())
    return sanitize(text if len(text) <= 500 else text[:499] + "…")


def _message_in(body: Any, depth: int = 0) -> str:
    """The message an error body holds: OpenAI's ``{"error": {"message"}}``, ``{"error": "…"}``, FastAPI's
    ``{"detail": …}``, a bare string."""
    if isinstance(body, str) or depth > 3:
        return body if isinstance(body, str) else ""
    if isinstance(body, list):
        return "; ".join(m for m in (_message_in(item, depth + 1) for item in body[:5]) if m)
    if isinstance(body, dict):
        for name in ("message", "error", "detail", "msg"):
            found = _message_in(body.get(name), depth + 1)
            if found:
                return found
    return ""



class Endpoint:
    """One chat-completions endpoint as the designer uses it: a lazily made client, the transport with its
    retries, backoff and outage waits, and the request parameters the server turned out to refuse.

    Thread-safe: the designer sends ``concurrency`` requests at once through one endpoint.
    """

    def __init__(self, options: LLMOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._client: Any = None
        self._reached = False
        """Whether any request got through: a refused connection after that is an outage, not a wrong URL."""
        self._wire: dict[str, Any] = {"max_tokens": "max_tokens", "temperature": True, "seed": True}

    def _openai(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = _client(self.options)
            return self._client

    def post(self, body: dict[str, Any], purpose: str) -> tuple[dict[str, Any], int]:
        """Send one chat-completion request; returns the reply and the retries it took.

        Raises:
            LLMError: the endpoint refused us for good (key, model, host).
            RequestRefused: the server refused this request (400/422).
            RequestFailed: no usable reply once the retries were spent.
        """
        import openai

        client = self._openai()
        sent = failures = outage_tries = 0
        down_since: float | None = None
        while True:
            sent += 1
            retry_after: float | None = None
            try:
                raw = client.chat.completions.with_raw_response.create(
                    **self._wire_body(body), extra_headers={PURPOSE_HEADER: purpose})
                reply = parse_completion(raw.http_response.text)
                with self._lock:
                    self._reached = True
                return reply, sent - 1
            except openai.AuthenticationError as exc:
                raise _key_refused(self.options, exc) from None
            except openai.PermissionDeniedError as exc:
                raise LLMError(f"{self.options.url} denied access (HTTP 403: {_error_message(exc)}); the key in "
                               f"${self.options.api_key_env} may not use model {self.options.model!r}: pass another "
                               "--model, or another key with --api-key-env") from None
            except openai.NotFoundError as exc:
                raise LLMError(self._not_found(exc)) from None
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                message = _error_message(exc)
                if self._adapt_wire(message):
                    continue
                raise RequestRefused(f"the endpoint refused the request (HTTP {exc.status_code}: {message})",
                                  sent) from None
            except openai.APITimeoutError:
                problem = f"no reply within {self.options.timeout:g} s (--llm-timeout)"
            except openai.APIConnectionError as exc:
                refused = _connect_failure(exc)
                with self._lock:
                    reached = self._reached
                if refused is not None and not reached:
                    raise _unreachable(self.options, refused) from None
                # the server went away (a crash, a restart): wait for it, patiently and for a bounded time
                now = time.monotonic()
                down_since = now if down_since is None else down_since
                waited = now - down_since
                if waited >= self.options.outage:
                    raise EndpointDown(
                        f"{self.options.url} has not answered for {waited:.0f} s (the last try: connection failed: "
                        f"{refused or exc.__cause__ or exc}); the search stopped with what it has; "
                        "`rewardsmith resume RUN` goes on once the server is back (--llm-outage sets the wait)"
                    ) from None
                outage_tries += 1
                time.sleep(min(self._outage_delay(outage_tries), self.options.outage - waited))
                continue
            except openai.APIStatusError as exc:
                if exc.status_code not in (408, 409, 429) and exc.status_code < 500:
                    raise RequestRefused(f"the endpoint refused the request (HTTP {exc.status_code}: "
                                      f"{_error_message(exc)})", sent) from None
                problem = f"HTTP {exc.status_code}: {_error_message(exc)}"
                retry_after = _retry_after(exc.response.headers if exc.response is not None else {})
            except RequestFailed as exc:
                problem = str(exc)
            down_since, outage_tries = None, 0
            failures += 1
            if failures > self.options.retries:
                raise RequestFailed(f"no usable reply after {sent} tries; the last: {problem}", sent)
            time.sleep(self._delay(failures, retry_after))

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None and 0 <= retry_after <= MAX_RETRY_AFTER:
            return retry_after
        base = min(self.options.backoff * 2 ** (attempt - 1), 30.0)
        return base * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography

    def _outage_delay(self, attempt: int) -> float:
        """Seconds before the next try while the server cannot be reached: doubling, capped at OUTAGE_STEP."""
        base = min(self.options.backoff * 2 ** min(attempt - 1, 16), OUTAGE_STEP)
        return base * random.uniform(0.75, 1.0)  # noqa: S311 - jitter, not cryptography

    def _wire_body(self, body: dict[str, Any]) -> dict[str, Any]:
        wire = dict(body)
        if self._wire["max_tokens"] != "max_tokens":
            wire[self._wire["max_tokens"]] = wire.pop("max_tokens")
        if not self._wire["temperature"]:
            wire.pop("temperature", None)
        if not self._wire["seed"]:
            wire.pop("seed", None)
        return wire

    def _adapt_wire(self, message: str) -> bool:
        """Adapt to a server that refuses a parameter by name (newer OpenAI models); True to retry."""
        lowered = message.lower()
        with self._lock:
            if "max_completion_tokens" in lowered and self._wire["max_tokens"] == "max_tokens":
                self._wire["max_tokens"] = "max_completion_tokens"
                return True
            if "temperature" in lowered and self._wire["temperature"]:
                self._wire["temperature"] = False
                return True
            if "seed" in lowered and self._wire["seed"]:
                self._wire["seed"] = False
                return True
        return False

    def _not_found(self, exc: Any) -> str:
        message = _error_message(exc)
        models = self.list_models()
        if models and self.options.model not in models:
            return (f"model {self.options.model!r} is not served by {self.options.url} (HTTP 404: {message}); "
                    f"pass one of {', '.join(sanitize(m) for m in models[:12])} with --model")
        if "model" in message.lower():
            return (f"model {self.options.model!r} is unknown to {self.options.url} (HTTP 404: {message}); "
                    "pass a model the endpoint serves with --model")
        return (f"no chat-completions endpoint at {self.options.url}/chat/completions (HTTP 404: {message}); "
                "check --base-url (most servers expect it to end in /v1)")

    def list_models(self) -> list[str]:
        try:
            return _model_ids(self._openai(), timeout=5.0)
        except Exception:  # noqa: BLE001 - only used to improve an error message
            return []



def _retry_after(headers: Any) -> float | None:
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        if value is None:
            continue
        try:
            return float(value) / scale
        except ValueError:
            continue
    return None



def check_endpoint(options: LLMOptions) -> list[str]:
    """Ask the endpoint which models it serves; fail fast on a refused key or an unreachable host.

    Returns:
        The model ids listed (empty when the endpoint lists none, or has no ``/models``).

    Raises:
        LLMError: the key is refused (401/403) or the host cannot be reached.
    """
    import openai

    client = _client(options)
    try:
        return _model_ids(client, timeout=min(options.timeout, 15.0))
    except openai.AuthenticationError as exc:
        raise _key_refused(options, exc) from None
    except openai.PermissionDeniedError as exc:
        raise LLMError(f"{options.url} denied access (HTTP 403: {_error_message(exc)}); check the key in "
                       f"${options.api_key_env} (or pass another with --api-key-env)") from None
    except openai.APIConnectionError as exc:
        refused = _connect_failure(exc)
        if refused is not None:
            raise _unreachable(options, refused) from None
        return []
    except openai.APIError:
        return []  # no /models here: the first request will tell
