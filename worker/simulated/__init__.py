"""A simulated OpenAI-compatible provider for tests and benchmarks.

It speaks just enough of the OpenAI chat API (POST /v1/chat/completions, non-streaming) for
litellm's real HTTP path to work against it, so cost figures come from litellm's own price table
for whatever priced model name the caller uses (`openai/gpt-4o-mini` with `api_base=sp.base_url`).

    with SimulatedProvider(root_replies=[...], latency_s=0.2, faults=[Fault("429", at=0)]) as sp:
        ...  # sp.base_url, sp.requests (every request, with timestamps)

The request log (`sp.requests`, and with `log_path` one JSON line per finished request) is the
truth tests compare a run's records with: model, max_tokens sent, the usage billed, timestamps.
`latency_for(request) -> seconds` sets a per-request latency (else `latency_s`), and
`usage_for(request) -> (prompt_tokens, completion_tokens)` the usage reported (else ~4 characters
per token), so that slow or expensive calls can be made; the completion tokens billed never exceed
the request's max_tokens, as with a real provider.

`prompt_caching=True` emulates OpenAI's automatic prefix caching: a request's usage reports
`prompt_tokens_details.cached_tokens` for the prefix it shares, byte for byte, with the previous
request of the same conversation (the same first two messages), in 128-token blocks once that
prefix reaches 1,024 tokens (~4 characters per token, as above), so litellm prices those tokens at
the model's cache-read price.

Replies come from `responder(request) -> str` when given; otherwise requests for `root_model` take
the next of `root_replies` and all others get `sub_reply(prompt)` (by default an echo of the
prompt's first line). With `context_window` set, a request whose messages come to more tokens than
that (~4 characters per token, as its usage figures) is refused the way OpenAI refuses it (400,
code context_length_exceeded). Every request is served on its own thread (ThreadingHTTPServer), so
concurrent sub-calls really overlap.
"""

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULT_KINDS = ("400", "401", "429", "500", "502", "503", "reset", "slow", "malformed", "empty")


@dataclass
class Fault:
    """An injected failure: at request index `at` (0-based, counting every request), or for
    requests where `when(request)` is true, at most `times` times.

    kind: "400" (bad request), "401" (bad key): not worth retrying;
    "429" (with a Retry-After header when retry_after is set), "500", "502", "503",
    "reset" (close the connection without answering), "slow" (sleep `slow_s` then answer),
    "malformed" (200 with a body that is not JSON), "empty" (200 with an empty completion).
    """

    kind: str
    at: int | None = None
    when: Callable[["SimRequest"], bool] | None = None
    times: int = 1
    retry_after: float | None = None
    slow_s: float = 5.0
    used: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {FAULT_KINDS}")

    def matches(self, request: "SimRequest") -> bool:
        if self.used >= self.times:
            return False
        if self.at is not None:
            return request.index == self.at
        return self.when is not None and self.when(request)


@dataclass
class SimRequest:
    index: int
    model: str
    messages: list[dict[str, Any]]
    body: dict[str, Any]
    received_at: float
    headers: dict[str, Any] = field(default_factory=dict)
    finished_at: float | None = None
    status: int | None = None
    fault: str | None = None
    reply: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    client_gone: bool = False  # the client stopped waiting before the answer was written
    cached_tokens: int = 0  # with prompt_caching: prompt tokens served from the emulated prefix cache

    @property
    def max_tokens(self) -> int | None:
        value = self.body.get("max_tokens", self.body.get("max_completion_tokens"))
        return value if isinstance(value, int) else None

    def log_record(self) -> dict[str, Any]:
        return {"index": self.index, "model": self.model, "received_at": self.received_at,
                "finished_at": self.finished_at, "status": self.status, "fault": self.fault,
                "max_tokens": self.max_tokens, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "cached_tokens": self.cached_tokens,
                "client_gone": self.client_gone,
                "prompt_chars": len(self.prompt)}

    @property
    def prompt(self) -> str:
        """The last user message."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return _text(message.get("content"))
        return ""

    @property
    def system(self) -> str:
        return "\n".join(_text(m.get("content")) for m in self.messages if m.get("role") == "system")


def _text(content: Any) -> str:
    if isinstance(content, list):  # OpenAI content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


CACHE_MIN_TOKENS = 1024  # OpenAI caches prompts from 1,024 tokens on ...
CACHE_BLOCK_TOKENS = 128  # ... in blocks of 128 tokens


def _serialized(messages: list[dict[str, Any]]) -> str:
    """The prompt as the provider sees it for caching: roles and texts in order (cache_control
    markers and the content-part form do not change it)."""
    return "".join(f"\x00{m.get('role')}\x01{_text(m.get('content'))}" for m in messages)


def _conversation_key(messages: list[dict[str, Any]]) -> str:
    return _serialized(messages[:2])


def cached_prefix_tokens(previous: str | None, current: str, prompt_tokens: int) -> int:
    """The tokens of `current` an OpenAI-style prefix cache serves after `previous`: their common
    prefix (~4 characters a token), in 128-token blocks from 1,024 tokens on, at most the prompt."""
    if not previous:
        return 0
    n = min(len(previous), len(current))
    same = 0
    step = 4096
    while same < n:  # compare in slices (C speed), then narrow down inside the first slice that differs
        end = min(n, same + step)
        if previous[same:end] == current[same:end]:
            same = end
            continue
        while same < end and previous[same] == current[same]:
            same += 1
        break
    tokens = min(prompt_tokens, same // 4)
    if tokens < CACHE_MIN_TOKENS:
        return 0
    return tokens - tokens % CACHE_BLOCK_TOKENS


def echo_reply(prompt: str) -> str:
    first = prompt.strip().splitlines()[0] if prompt.strip() else ""
    return f"ECHO: {first[:200]}"


def approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: a burst of new connections (a batch of sub-calls
    # opening its pool at once) overflows it, and each dropped SYN is retried by the client's kernel
    # only after a second, a fake 1 s stall that no real provider's listener would add.
    request_queue_size = 128


class SimulatedProvider:
    def __init__(
        self,
        responder: Callable[[SimRequest], str] | None = None,
        root_replies: list[str] | None = None,
        root_model: str = "gpt-4o",
        sub_reply: Callable[[str], str] = echo_reply,
        latency_s: float = 0.0,
        faults: list[Fault] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_for: Callable[[SimRequest], float] | None = None,
        usage_for: Callable[[SimRequest], tuple[int, int]] | None = None,
        log_path: str | None = None,
        context_window: int | None = None,
        prompt_caching: bool = False,
    ) -> None:
        self.responder = responder
        self.root_replies = list(root_replies or [])
        self.root_model = root_model
        self.sub_reply = sub_reply
        self.latency_s = latency_s
        self.faults = list(faults or [])
        self.latency_for = latency_for
        self.usage_for = usage_for
        self.log_path = log_path
        self.context_window = context_window
        self.prompt_caching = prompt_caching
        self._last_prompt: dict[str, str] = {}  # conversation -> its previous request, serialized
        self.requests: list[SimRequest] = []
        self._lock = threading.Lock()
        self._root_index = 0
        self._server = _Server((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> "SimulatedProvider":
        self._thread = threading.Thread(target=self._server.serve_forever, name="simulated-provider", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join()

    def __enter__(self) -> "SimulatedProvider":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _admit(self, body: dict[str, Any], headers: dict[str, Any]) -> tuple[SimRequest, Fault | None]:
        with self._lock:
            request = SimRequest(
                index=len(self.requests), model=str(body.get("model", "")), messages=body.get("messages") or [],
                body=body, received_at=time.time(), headers=headers,
            )
            self.requests.append(request)
            fault = next((f for f in self.faults if f.matches(request)), None)
            if fault:
                fault.used += 1
                request.fault = fault.kind
            return request, fault

    def _finished(self, request: SimRequest) -> None:
        request.finished_at = time.time()
        if self.log_path:
            with self._lock, open(self.log_path, "a", encoding="utf-8") as log:
                log.write(json.dumps(request.log_record()) + "\n")

    def _usage(self, request: SimRequest, content: str) -> tuple[int, int]:
        if self.usage_for is not None:
            prompt_tokens, completion_tokens = self.usage_for(request)
        else:
            prompt_tokens = sum(approx_tokens(_text(m.get("content"))) for m in request.messages)
            completion_tokens = approx_tokens(content) if content else 0
        if request.max_tokens is not None:
            completion_tokens = min(completion_tokens, request.max_tokens)
        return int(prompt_tokens), int(completion_tokens)

    def _cached(self, request: SimRequest, prompt_tokens: int) -> int:
        """With prompt_caching: the prompt tokens the emulated prefix cache serves (and remember this
        request as its conversation's latest)."""
        if not self.prompt_caching:
            return 0
        key, current = _conversation_key(request.messages), _serialized(request.messages)
        with self._lock:
            previous = self._last_prompt.get(key)
            self._last_prompt[key] = current
        return cached_prefix_tokens(previous, current, prompt_tokens)

    def _reply_for(self, request: SimRequest) -> str:
        if self.responder is not None:
            return self.responder(request)
        if request.model == self.root_model:
            with self._lock:
                if self._root_index >= len(self.root_replies):
                    raise LookupError(f"no scripted root reply left for request {request.index}")
                reply = self.root_replies[self._root_index]
                self._root_index += 1
            return reply
        return self.sub_reply(request.prompt)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle on, the body waits ~40 ms for the
            # client's delayed ACK, which would add a fake 40 ms to every simulated call.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._json(200, {"object": "list", "data": []})
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
                    return
                request, fault = provider._admit(body, dict(self.headers))
                try:
                    self._serve(request, fault)
                finally:
                    provider._finished(request)

            def _serve(self, request: SimRequest, fault: Fault | None) -> None:
                latency = provider.latency_for(request) if provider.latency_for else provider.latency_s
                if latency:
                    time.sleep(latency)
                kind = fault.kind if fault else None
                if kind == "reset":
                    request.status = 0
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.close_connection = True
                    self.connection.close()
                    return
                if kind == "429" and fault is not None:
                    headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                    self._json(429, {"error": {"message": "Rate limit reached (simulated)", "type": "rate_limit_error",
                                               "code": "rate_limit_exceeded"}}, headers)
                    request.status = 429
                    return
                if kind in ("400", "401"):
                    self._json(int(kind), {"error": {"message": f"Simulated client error {kind}",
                                                     "type": "invalid_request_error"}})
                    request.status = int(kind)
                    return
                if kind in ("500", "502", "503"):
                    self._json(int(kind), {"error": {"message": f"Simulated server error {kind}", "type": "server_error"}})
                    request.status = int(kind)
                    return
                if kind == "slow" and fault is not None:
                    time.sleep(fault.slow_s)
                if kind == "malformed":
                    self._raw(200, b'{"id": "chatcmpl-broken", "choices": [', "application/json")
                    request.status = 200
                    return
                prompt_tokens = sum(approx_tokens(_text(m.get("content"))) for m in request.messages)
                if provider.context_window is not None and prompt_tokens > provider.context_window:
                    self._json(400, {"error": {
                        "message": f"This model's maximum context length is {provider.context_window} tokens. "
                                   f"However, your messages resulted in {prompt_tokens} tokens.",
                        "type": "invalid_request_error", "code": "context_length_exceeded"}})
                    request.status = 400
                    return
                try:
                    content = "" if kind == "empty" else provider._reply_for(request)
                except Exception as exc:  # a broken script is the test's bug: say so loudly
                    self._json(500, {"error": {"message": f"simulated responder failed: {exc}", "type": "server_error"}})
                    request.status = 500
                    return
                request.reply = content
                prompt_tokens, completion_tokens = provider._usage(request, content)
                request.prompt_tokens, request.completion_tokens = prompt_tokens, completion_tokens
                request.cached_tokens = provider._cached(request, prompt_tokens)
                usage: dict[str, Any] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                         "total_tokens": prompt_tokens + completion_tokens}
                if provider.prompt_caching:
                    usage["prompt_tokens_details"] = {"cached_tokens": request.cached_tokens}
                request.client_gone = not self._json(200, {
                    "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": request.model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": usage,
                })
                request.status = 200

            def _json(self, status: int, payload: dict[str, Any], headers: dict[str, Any] | None = None) -> bool:
                return self._raw(status, json.dumps(payload).encode(), "application/json", headers)

            def _raw(self, status: int, body: bytes, content_type: str, headers: dict[str, Any] | None = None) -> bool:
                """Write a response; False when the client had gone (it stopped waiting)."""
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                    return False
                return True

        return Handler
