"""A scripted chat-completions server for tests: real HTTP on a free loopback port.

It speaks enough of the OpenAI protocol for the ``openai`` client (``POST /v1/chat/completions``,
``GET /v1/models``), answers from a script, records every request it receives, and fails on cue::

    with ScriptedLLM() as server:
        server.push(Reply("```python\\n...\\n```"), Fault(429, retry_after=0.1), Reply("..."))
        server.route = lambda request: Reply(FIXED) if purpose_of(request) == "repair" else None
        client = openai.OpenAI(base_url=server.url, api_key=server.api_key)

Each chat request takes its answer from ``route`` (if it returns something), else from the front
of the script, else from ``default``. ``Outage(seconds)`` drops the connection and refuses new ones
for that long, then listens again on the same port (a server killed and restarted). A request with ``n`` > 1 takes one scripted reply per choice
while ``honour_n`` is true, and one reply (a single choice) otherwise.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Union

__all__ = ["Fault", "Malformed", "Outage", "Reply", "ScriptedLLM", "Slow", "last_user_text", "purpose_of"]


@dataclass(frozen=True)
class Reply:
    """One choice of a successful completion."""

    content: str | None
    finish_reason: str = "stop"
    reasoning: str | None = None
    """Sent as ``message.reasoning_content`` (as vLLM and DeepSeek do)."""


@dataclass(frozen=True)
class Fault:
    """An HTTP error reply."""

    status: int
    message: str = ""
    retry_after: float | None = None
    code: str | None = None
    body: Any = None
    """Sent instead of OpenAI's ``{"error": {...}}``: a JSON value, or ``str`` sent as plain text."""


@dataclass(frozen=True)
class Slow:
    """Wait ``seconds`` before answering with ``then`` (longer than the client's timeout: a timeout)."""

    seconds: float
    then: Any = None


@dataclass(frozen=True)
class Malformed:
    """A 200 reply whose body is not a chat completion."""

    body: bytes = b'{"id": "x", "choices": [ {"message": '
    content_type: str = "application/json"


@dataclass(frozen=True)
class Outage:
    """The server goes away: this request's connection is dropped unanswered, and the listener stays
    closed (connections refused) for ``seconds`` before it listens again on the same port with ``then``
    next in line (as a server killed and restarted does)."""

    seconds: float
    then: Any = None


Item = Union[Reply, Fault, Slow, Malformed, Outage]


def purpose_of(request: dict[str, Any]) -> str:
    """``propose``, ``repair`` or ``review``: what a recorded request was for (rewardsmith's header says)."""
    return request["headers"].get("x-rewardsmith-purpose", "")


def last_user_text(request: dict[str, Any]) -> str:
    """The text of the last user message of a recorded request (or of a bare body)."""
    body = request.get("body", request) or {}
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


@dataclass
class ScriptedLLM:
    """The server; use as a context manager (it starts on enter and stops on exit)."""

    api_key: str = "sk-test-key"
    models: tuple[str, ...] = ("test-model",)
    honour_n: bool = True
    pinned: bool = False
    """Serve only ``models[0]``, refusing any other with a 400 whose body is ``{"error": "<a string>"}``
    (as a single-model server does), rather than OpenAI's 404."""
    default: Item | None = None
    """The answer when the script is empty and no route answers (None: a 500 saying so)."""
    route: Callable[[dict[str, Any]], Item | None] | None = None
    """Called with each recorded chat request (method, path, headers, body) before the script."""
    tokens_per_char: float = 0.25
    requests: list[dict[str, Any]] = field(default_factory=list)
    """Every request received: method, path, headers (lower-case names) and the JSON body."""
    in_flight: int = 0
    max_in_flight: int = 0
    """The most chat requests being answered at the same time."""
    _script: deque = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # -- control -------------------------------------------------------------------------------

    def push(self, *items: Item) -> None:
        with self._lock:
            self._script.extend(items)

    def push_front(self, item: Item) -> None:
        with self._lock:
            self._script.appendleft(item)

    @property
    def remaining(self) -> int:
        return len(self._script)

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def chats(self) -> list[dict[str, Any]]:
        """The recorded chat-completion requests, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    def chats_for(self, purpose: str) -> list[dict[str, Any]]:
        return [r for r in self.chats if purpose_of(r) == purpose]

    def start(self, port: int = 0) -> ScriptedLLM:
        server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="scripted-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def go_away(self, seconds: float) -> None:
        """Stop listening now (connections are refused) and listen again on the same port after ``seconds``."""
        port = self._server.server_address[1] if self._server is not None else 0
        self.stop()

        def come_back() -> None:
            time.sleep(seconds)
            self.start(port)

        threading.Thread(target=come_back, name="scripted-llm-restart", daemon=True).start()

    def __enter__(self) -> ScriptedLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answering -----------------------------------------------------------------------------

    def _next(self, request: dict[str, Any]) -> Item | None:
        if self.route is not None:
            routed = self.route(request)
            if routed is not None:
                return routed
        with self._lock:
            if self._script:
                return self._script.popleft()
        return self.default

    def _choices(self, first: Reply, request: dict[str, Any], wanted: int) -> list[Reply]:
        replies = [first]
        while len(replies) < wanted:
            item = self._next(request)
            if not isinstance(item, Reply):  # a fault cannot be one of several choices: put it back
                if item is not None:
                    with self._lock:
                        self._script.appendleft(item)
                break
            replies.append(item)
        return replies

    def _completion(self, body: dict[str, Any], replies: list[Reply]) -> dict[str, Any]:
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
        completion_chars = sum(len(r.content or "") + len(r.reasoning or "") for r in replies)
        prompt_tokens = max(1, int(prompt_chars * self.tokens_per_char))
        completion_tokens = max(1, int(completion_chars * self.tokens_per_char))
        choices = []
        for index, reply in enumerate(replies):
            message: dict[str, Any] = {"role": "assistant", "content": reply.content}
            if reply.reasoning is not None:
                message["reasoning_content"] = reply.reasoning
            choices.append({"index": index, "message": message, "finish_reason": reply.finish_reason,
                            "logprobs": None})
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }


def _handler_for(server: ScriptedLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            pass

        def _record(self, body: Any) -> dict[str, Any]:
            request = {"method": self.command, "path": self.path,
                       "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
            with server._lock:
                server.requests.append(request)
            return request

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None,
                  raw: bytes | None = None, content_type: str = "application/json") -> None:
            data = raw if raw is not None else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout)

        def _authorised(self) -> bool:
            if not server.api_key:
                return True
            if self.headers.get("Authorization", "") == f"Bearer {server.api_key}":
                return True
            self._send(401, {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                       "code": "invalid_api_key"}})
            return False

        def do_GET(self) -> None:  # noqa: N802
            self._record(None)
            if not self.path.rstrip("/").endswith("/v1/models"):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            if self._authorised():
                self._send(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "test"}
                                                            for m in server.models]})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                body = {"unparsable": raw.decode(errors="replace")}
            request = self._record(body)
            if not self.path.rstrip("/").endswith("/v1/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            if not self._authorised():
                return
            with server._lock:
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            try:
                self._chat(request, body)
            finally:
                with server._lock:
                    server.in_flight -= 1

        def _chat(self, request: dict[str, Any], body: dict[str, Any]) -> None:
            model = body.get("model")
            if server.pinned and model != server.models[0]:
                self._send(400, {"error": f"Server is pinned to '{server.models[0]}'; requested '{model}'"})
                return
            if model not in server.models:
                self._send(404, {"error": {"message": f"The model `{model}` does not exist or you do not have "
                                                      "access to it.", "type": "invalid_request_error",
                                           "code": "model_not_found"}})
                return
            self._answer(request, server._next(request))

        def _answer(self, request: dict[str, Any], item: Item | None) -> None:
            body = request["body"]
            if isinstance(item, Slow):
                time.sleep(item.seconds)
                item = item.then
            if item is None:
                self._send(500, {"error": {"message": "the test script is empty"}})
            elif isinstance(item, Outage):
                if item.then is not None:
                    server.push_front(item.then)
                self.close_connection = True  # no reply: the client sees the connection drop
                server.go_away(item.seconds)
            elif isinstance(item, Fault) and item.body is not None:
                raw = item.body.encode() if isinstance(item.body, str) else None
                self._send(item.status, item.body, raw=raw,
                           content_type="text/plain" if raw is not None else "application/json")
            elif isinstance(item, Fault):
                headers = {"Retry-After": f"{item.retry_after:g}"} if item.retry_after is not None else {}
                error = {"message": item.message or f"scripted failure {item.status}", "type": "server_error"}
                if item.code:
                    error["code"] = item.code
                self._send(item.status, {"error": error}, headers)
            elif isinstance(item, Malformed):
                self._send(200, None, raw=item.body, content_type=item.content_type)
            else:
                wanted = int(body.get("n") or 1) if server.honour_n else 1
                self._send(200, server._completion(body, server._choices(item, request, wanted)))

    return Handler
