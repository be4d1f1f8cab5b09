"""The one door to language models: litellm, with retries, usage, latency and cost.

Nothing else in the project imports litellm. API keys are resolved here from the environment at
call time and passed straight to litellm; they never reach prompts, events or the REPL.
"""

import math
import os
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of the price table at import

import email.utils
import importlib
import logging
import queue
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass

import litellm

from worker.engine import offline
from worker.engine.text import sanitize

logger = logging.getLogger(__name__)

litellm.suppress_debug_info = True
offline.register(litellm)


def _litellm_logging_wanted() -> bool:
    """Whether anything would read litellm's own success logging: a callback or a litellm budget."""
    hooks = ("callbacks", "success_callback", "_async_success_callback", "service_callback")
    return any(getattr(litellm, name, None) for name in hooks) or bool(getattr(litellm, "max_budget", None))


class _SuccessLoggingGate:
    """Stands in for the executor litellm hands every finished sync completion's success logging to.

    rlmweb takes usage and cost from the response itself and configures no litellm callback, so that
    logging (a StandardLoggingPayload built on a background thread, a second cost computation, a
    thread hand-off) serves no one while costing about a tenth of the CPU of a call, all of it under
    the GIL that the other sub-call threads are waiting for. It is passed on untouched as soon as a
    callback or a litellm budget is configured.
    """

    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if _litellm_logging_wanted():
            return self._executor.submit(fn, *args, **kwargs)
        skipped: Future[Any] = Future()
        skipped.cancel()
        return skipped

    def __getattr__(self, name: str) -> Any:
        return getattr(self._executor, name)


if hasattr(litellm.utils, "executor") and not isinstance(litellm.utils.executor, _SuccessLoggingGate):
    # A stand-in with the executor's interface (submit; the rest through __getattr__).
    litellm.utils.executor = _SuccessLoggingGate(litellm.utils.executor)  # type: ignore[assignment]


def _gate_service_logging() -> None:
    """litellm times every provider request for its service loggers (Prometheus, Datadog, OTel),
    and from a thread without an event loop it dispatches that timing with `asyncio.run`: a new
    event loop (selector, epoll, socket pair) per call, about 5 % of a call's CPU, under the GIL.
    With no service callback configured that dispatch does nothing, so it is skipped; with one, it
    runs untouched."""
    try:
        from litellm._service_logger import ServiceLogging
    except ImportError:  # another litellm layout: nothing to gate
        return
    dispatch = ServiceLogging.__dict__.get("_dispatch_from_sync")
    if not isinstance(dispatch, staticmethod) or getattr(dispatch.__func__, "_rlmweb_gate", False):
        return
    original = dispatch.__func__

    def gated(hook: Any) -> Any:
        if getattr(litellm, "service_callback", None):
            return original(hook)
        return None

    gated._rlmweb_gate = True  # type: ignore[attr-defined]  # a marker on the function object
    ServiceLogging._dispatch_from_sync = staticmethod(gated)  # type: ignore[method-assign]  # the gate itself


_gate_service_logging()

# Modules litellm imports on its first completion rather than at its own import: its proxy's types
# (pulled in by the message file-id helper every call runs) and httpcore (when its first HTTP client
# is made). About 0.4 s of one call, which was the first root turn of a worker process's first run;
# imported here, it is paid where the engine is imported (a worker's start, before a prefork worker
# forks).
_FIRST_CALL_IMPORTS = ("litellm.proxy.openai_files_endpoints.common_utils", "httpcore")


def _preload() -> None:
    for name in _FIRST_CALL_IMPORTS:
        try:
            importlib.import_module(name)
        except Exception:  # another litellm layout: the first call imports what it needs
            logger.debug("Preloading %s failed", name, exc_info=True)


_preload()

RETRYABLE = (
    litellm.RateLimitError,
    litellm.InternalServerError,
    litellm.ServiceUnavailableError,
    litellm.BadGatewayError,
    litellm.Timeout,
    litellm.APIConnectionError,
)
MAX_BACKOFF_S = 60.0
# Every call is sent with max_tokens: the operator's `max_output_tokens` for the model, else this,
# lowered to the model's own output limit when litellm knows it. It bounds a call's worst case.
DEFAULT_MAX_OUTPUT_TOKENS = 8192
MESSAGE_OVERHEAD_TOKENS = 8  # role markers and separators a chat template adds per message
POLL_S = 0.05  # how often a call in flight looks at the stop flag and the time left
MIN_TIMEOUT_S = 0.5
_PRICE_KEY = re.compile(r"^(input|output)_cost_per_(token|reasoning_token)(_above_\d+k_tokens)?$")
# A prompt token written to a provider's cache (Anthropic) is billed above the plain input price:
# it counts as an input price for a call's worst case.
_CACHE_WRITE_KEY = re.compile(r"^cache_creation_input_token_cost(_above_\d+k_tokens)?$")
# Providers whose prompt caching needs explicit breakpoints (Anthropic's cache_control on content
# blocks; litellm passes them on for these). OpenAI, DeepSeek, Gemini 2.5 cache prefixes on their own.
CACHE_CONTROL_PROVIDERS = ("anthropic", "bedrock")
CACHE_CONTROL = {"type": "ephemeral"}


@dataclass(frozen=True)
class ModelOptions:
    """How to reach one model. `api_key_env` names the environment variable holding its key."""

    api_base: str | None = None
    api_key_env: str | None = None
    timeout_s: float = 300.0
    max_retries: int = 4
    context_window: int | None = None
    max_output_tokens: int | None = None
    # Per-token USD prices from the operator (RLMWEB_MODELS_JSON), for models litellm has no price for
    # (or to override its price). Both must be set to count.
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None

    @property
    def priced(self) -> bool:
        return self.input_cost_per_token is not None and self.output_cost_per_token is not None


@dataclass(frozen=True)
class Completion:
    content: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None  # None: litellm has no price for this model (unknown, not free)
    latency_s: float  # the whole call: every attempt and the backoff waits between them
    attempts: int
    # Attempts the provider may have processed without our seeing the answer (timed out, or
    # abandoned when the run stopped), and their estimated prompt tokens: their completion is unknown.
    incomplete: int = 0
    incomplete_prompt_tokens: int = 0
    # Prompt tokens the provider served from its prompt cache (part of prompt_tokens, billed at the
    # cache-read price), and those it wrote to its cache (Anthropic: billed above the input price).
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    # What caching saved on this call: its cost with every prompt token at the plain input price,
    # minus cost_usd (negative when cache writes cost more than they saved yet); None if unpriced.
    cache_saving_usd: float | None = 0.0


class LLMError(Exception):
    """A model call failed for good (after retries, or at once when retrying cannot help).

    `incomplete`/`incomplete_prompt_tokens`: as in Completion; such attempts may still be billed.
    """

    def __init__(self, message: str, attempts: int, incomplete: int = 0, incomplete_prompt_tokens: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.incomplete = incomplete
        self.incomplete_prompt_tokens = incomplete_prompt_tokens


class LLMCancelled(LLMError):
    """The run was stopped while the call was waiting to retry."""


class EmptyCompletion(Exception):
    """The provider answered 200 with no text: treated like a transient error."""


class RetryRefused(Exception):
    """Raised by a `before_retry` hook: the budget does not admit another attempt."""


class _Abandoned(Exception):
    """A call in flight was given up: the run stopped, or its time ran out."""


def sanitize_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**m, "content": sanitize(m.get("content") or "")} for m in messages]


def needs_cache_control(model: str, options: "ModelOptions | None" = None) -> bool:
    """Whether prompt caching on `model` needs explicit cache_control breakpoints (Anthropic-style)."""
    if is_offline(model):
        return False
    try:
        _, provider, _, _ = litellm.get_llm_provider(model, api_base=options.api_base if options else None)
    except Exception:
        return False
    if provider == "bedrock":  # on Bedrock only Anthropic's models take cache points this way
        return "anthropic" in model or "claude" in model
    return provider in CACHE_CONTROL_PROVIDERS


def with_cache_breakpoints(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`messages` with Anthropic-style cache breakpoints: on the system prompt, and on the last two
    user messages (the newest writes the prefix up to it to the cache; the one before reads what
    the previous call wrote). At most 3 of the 4 breakpoints Anthropic allows. The texts are left
    byte for byte as they are, so the prefix stays the same from one call to the next."""
    marked = {i for i, m in enumerate(messages) if m.get("role") == "system"}
    marked.update([i for i, m in enumerate(messages) if m.get("role") == "user"][-2:])
    out = []
    for i, message in enumerate(messages):
        content = message.get("content")
        if i in marked and isinstance(content, str) and content:
            message = {**message, "content": [{"type": "text", "text": content, "cache_control": CACHE_CONTROL}]}
        out.append(message)
    return out


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def cache_usage(usage: Any) -> tuple[int, int]:
    """(cached prompt tokens read, prompt tokens written to the cache) from a litellm usage: OpenAI's
    prompt_tokens_details.cached_tokens, or Anthropic's cache_read/cache_creation_input_tokens."""
    if usage is None:
        return 0, 0
    details = getattr(usage, "prompt_tokens_details", None)
    read = _int(getattr(details, "cached_tokens", None)) if details is not None else 0
    if not read:
        read = _int(getattr(usage, "cache_read_input_tokens", None) or getattr(usage, "_cache_read_input_tokens", None))
    written = _int(getattr(usage, "cache_creation_input_tokens", None)
                   or getattr(usage, "_cache_creation_input_tokens", None))
    if not written and details is not None:
        written = _int(getattr(details, "cache_creation_tokens", None))
    return read, written


def _is_encoding_error(exc: BaseException | None) -> bool:
    """An error caused by text that cannot be encoded: never the provider's fault, never retried."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, UnicodeError) or "surrogates not allowed" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def is_offline(model: str) -> bool:
    return model.startswith(offline.PREFIX)


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """USD cost from litellm's price table, or None when the model has no price there."""
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
    except Exception:
        return None
    return float(prompt_cost + completion_cost)


def response_cost_usd(response: Any, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """The cost litellm already priced this response at (from its price table, for the usage the
    response reports), or, when it did not, `cost_usd` for that usage: one pricing per call, not two."""
    hidden = getattr(response, "_hidden_params", None)
    priced = hidden.get("response_cost") if isinstance(hidden, dict) else None
    if isinstance(priced, int | float) and not isinstance(priced, bool):
        return float(priced)
    return cost_usd(model, prompt_tokens, completion_tokens)


def _model_info(model: str) -> Mapping[str, Any]:
    try:
        return litellm.get_model_info(model) or {}
    except Exception:
        return {}


def prices(model: str, options: ModelOptions | None = None) -> tuple[float, float] | None:
    """The highest USD price per prompt token and per completion token a call to `model` can be
    billed at (tiers for long prompts included), or None when the price is unknown.

    The operator's prices win over litellm's table; the offline model is known to cost 0.
    """
    if options is not None and options.input_cost_per_token is not None and options.output_cost_per_token is not None:
        return float(options.input_cost_per_token), float(options.output_cost_per_token)  # options.priced
    if is_offline(model):
        return 0.0, 0.0
    info = _model_info(model)
    found: dict[str, list[float]] = {"input": [], "output": []}
    for key, value in info.items():
        match = _PRICE_KEY.match(key)
        if not (isinstance(value, int | float) and not isinstance(value, bool)):
            continue
        if match:
            found[match.group(1)].append(float(value))
        elif _CACHE_WRITE_KEY.match(key):
            found["input"].append(float(value))
    if info.get("input_cost_per_token") is None or info.get("output_cost_per_token") is None:
        return None
    return max(found["input"]), max(found["output"])


def prompt_tokens_bound(messages: list[dict[str, Any]]) -> int:
    """An upper bound on the prompt tokens of `messages` under any byte-level tokenizer: one token
    per UTF-8 byte at most, plus each message's framing. Cheap (no tokenizer run on megabytes)."""
    total = 16
    for message in messages:
        total += len(sanitize(message.get("content") or "").encode("utf-8")) + MESSAGE_OVERHEAD_TOKENS
    return total


def estimate_prompt_tokens(model: str, messages: list[dict[str, Any]]) -> int:
    """The prompt tokens a provider likely counted for `messages` (for attempts whose usage never came)."""
    chars = sum(len(m.get("content") or "") for m in messages)
    if chars > 20_000:  # no tokenizer pass over long prompts: it would hold the GIL while a run stops
        return chars // 4 + MESSAGE_OVERHEAD_TOKENS * len(messages)
    return sum(count_tokens(model, sanitize(m.get("content") or "")) for m in messages) + MESSAGE_OVERHEAD_TOKENS * len(messages)


def context_window(model: str, options: ModelOptions | None = None) -> int | None:
    """Max input tokens: from the model's options, else litellm's model table; None if unknown."""
    if options and options.context_window:
        return options.context_window
    try:
        info = litellm.get_model_info(model)
    except Exception:
        return None
    return info.get("max_input_tokens") or info.get("max_tokens")


def count_tokens(model: str, text: str) -> int:
    try:
        return int(litellm.token_counter(model=model, text=text))
    except Exception:
        return len(text) // 4


def request_timeout_s(timeout_s: float, left: float) -> float:
    """The timeout an attempt is sent with: the model's timeout, or less when the run has less time
    left, rounded up to a power of two seconds. litellm keeps one SDK client (and its pool of HTTP
    connections) per distinct timeout, so a timeout that changed with every call's time left would
    open a new client and connection per call near the end of a run; a few fixed values keep the
    pooled ones. The run's own time limit is still kept to the poll: `_attempt` gives up on the
    attempt as soon as no time is left."""
    if left >= timeout_s:
        return timeout_s
    return min(timeout_s, max(MIN_TIMEOUT_S, 2.0 ** math.ceil(math.log2(max(left, MIN_TIMEOUT_S)))))


class _AttemptThreads:
    """Daemon threads that send provider requests, reused from one attempt to the next.

    Each attempt runs on a thread of its own so that its caller can give up on it at once (a stop,
    the run's time limit); a daemon thread, so that an abandoned request never holds the process
    up. Starting a thread per attempt cost about half a millisecond of CPU under the GIL and a
    start-up handshake that waits for the new thread to be scheduled, on every model call; here an
    idle thread takes the next attempt, and a new one is started only when none is idle. A thread
    idle for IDLE_S ends.

    Invariant, under the lock: `idle` = threads waiting for work - attempts queued for them, so a
    queued attempt always has a thread waiting for it.
    """

    IDLE_S = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = 0

    def run(self, target: Callable[[], None]) -> None:
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
                self._queue.put(target)
                return
        threading.Thread(target=self._work, args=(target,), name="llm-attempt", daemon=True).start()

    def _work(self, target: Callable[[], None]) -> None:
        while True:
            try:
                target()
            except BaseException:  # target hands its own errors over; nothing may end this thread
                logger.exception("An LLM attempt thread's task failed")
            with self._lock:
                self._idle += 1
            while True:
                try:
                    target = self._queue.get(timeout=self.IDLE_S)
                    break
                except queue.Empty:
                    with self._lock:
                        if self._idle > 0:  # more threads wait than attempts are queued: this one may go
                            self._idle -= 1
                            return
                    # an attempt was handed to this thread as it timed out: it is in the queue


_ATTEMPT_THREADS = _AttemptThreads()


def _retry_after_s(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or getattr(exc, "litellm_response_headers", None) or {}
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else None


def _describe(exc: Exception) -> str:
    message = str(exc).replace("litellm.", "").strip()
    return f"{type(exc).__name__}: {message[:500]}"


class LLMClient:
    """Completes chat messages for any litellm model string, per-model options applied."""

    def __init__(self, options: dict[str, ModelOptions] | None = None, base_backoff_s: float = 1.0) -> None:
        self.options = dict(options or {})
        self.base_backoff_s = base_backoff_s
        self._windows: dict[str, int | None] = {}  # litellm's model table does not change during a run
        self._prices: dict[str, tuple[float, float] | None] = {}
        self._max_tokens: dict[str, int] = {}
        self._cache_control: dict[str, bool] = {}

    def options_for(self, model: str) -> ModelOptions:
        return self.options.get(model) or ModelOptions()

    def context_window(self, model: str) -> int | None:
        if model not in self._windows:
            self._windows[model] = context_window(model, self.options.get(model))
        return self._windows[model]

    def prices(self, model: str) -> tuple[float, float] | None:
        if model not in self._prices:
            self._prices[model] = prices(model, self.options.get(model))
        return self._prices[model]

    def max_tokens(self, model: str) -> int:
        """The max_tokens every call to `model` is sent with."""
        if model not in self._max_tokens:
            opts = self.options_for(model)
            value = opts.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS
            if not opts.max_output_tokens:
                limit = _model_info(model).get("max_output_tokens")
                if isinstance(limit, int) and limit > 0:
                    value = min(value, limit)
            self._max_tokens[model] = max(1, int(value))
        return self._max_tokens[model]

    def worst_case_usd(self, model: str, messages: list[dict[str, Any]]) -> float | None:
        """The most one attempt of this call can be billed: every prompt token it can have and
        max_tokens of completion, at the model's highest prices. None when the price is unknown."""
        price = self.prices(model)
        if price is None:
            return None
        return price[0] * prompt_tokens_bound(messages) + price[1] * self.max_tokens(model)

    def prompt_cost_usd(self, model: str, prompt_tokens: int) -> float | None:
        """The known part of an attempt whose completion never came: its prompt tokens."""
        price = self.prices(model)
        return None if price is None else price[0] * prompt_tokens

    def cache_control(self, model: str) -> bool:
        """Whether calls to `model` are sent with cache breakpoints (looked up once per model)."""
        if model not in self._cache_control:
            self._cache_control[model] = needs_cache_control(model, self.options.get(model))
        return self._cache_control[model]

    def _cache_saving(self, model: str, cost: float | None, prompt_tokens: int, completion_tokens: int,
                      cache_used: int) -> float | None:
        """What the prompt cache saved on one call: the call priced as if no token came from or went
        to the cache, minus what it cost. 0 when the cache was not used or the operator priced the
        model (its prices have no cache rate: every token is counted at the input price)."""
        if cost is None:
            return None
        opts = self.options.get(model)
        if not cache_used or (opts is not None and opts.priced):
            return 0.0
        uncached = cost_usd(model, prompt_tokens, completion_tokens)
        return None if uncached is None else uncached - cost

    def _cost(self, response: Any, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        opts = self.options.get(model)
        if opts is not None and opts.input_cost_per_token is not None and opts.output_cost_per_token is not None:
            return opts.input_cost_per_token * prompt_tokens + opts.output_cost_per_token * completion_tokens
        return response_cost_usd(response, model, prompt_tokens, completion_tokens)

    def complete(self, model: str, messages: list[dict[str, Any]], should_stop: Callable[[], bool] = lambda: False,
                 time_left: Callable[[], float] = lambda: math.inf,
                 before_retry: Callable[[bool], None] | None = None, cache_prefix: bool = False) -> Completion:
        """One chat completion, retried on rate limits and transient errors; raises LLMError.

        `time_left`: seconds the run has left. No attempt waits longer than that for the provider,
        and no retry is scheduled beyond it (a slow or Retry-After-happy provider cannot hold a run
        past its time limit). `should_stop`: polled while an attempt is in flight; when it turns
        true the attempt is abandoned at once (LLMCancelled), whatever the model's timeout.
        `before_retry(previous_incomplete)`: called before each retry; raising RetryRefused ends
        the call (the budget does not admit another attempt).

        Prompts are sanitized to valid UTF-8 first, and every call is sent with max_tokens.
        `cache_prefix`: the messages are a conversation that will be sent again, longer (the root's):
        for providers whose prompt caching needs breakpoints (Anthropic, Bedrock's Claude) the system
        prompt and the last two user messages carry cache_control, the texts unchanged. Not for
        one-off calls: Anthropic bills a cache write above the input price, and no later call would
        read it.
        """
        opts = self.options_for(model)
        messages = sanitize_messages(messages)
        sent = with_cache_breakpoints(messages) if cache_prefix and self.cache_control(model) else messages
        kwargs: dict[str, Any] = {"max_retries": 0, "max_tokens": self.max_tokens(model)}  # we retry ourselves, visibly
        if opts.api_base:
            kwargs["api_base"] = opts.api_base
        if opts.api_key_env:
            key = os.environ.get(opts.api_key_env)
            if not key:
                raise LLMError(f"{model}: the environment variable {opts.api_key_env} holding its API key is not set.", 0)
            kwargs["api_key"] = key
        elif opts.api_base and not is_offline(model):
            kwargs["api_key"] = "no-key"  # local OpenAI-compatible servers need none, but the client wants one
        attempts = incomplete = 0
        previous_incomplete = False
        started = time.monotonic()

        def failed(message: str, cls: type[LLMError] = LLMError) -> LLMError:
            tokens = estimate_prompt_tokens(model, messages) * incomplete if incomplete else 0
            return cls(message, attempts, incomplete, tokens)

        while True:
            if attempts and before_retry is not None:
                try:
                    before_retry(previous_incomplete)
                except RetryRefused as exc:
                    raise failed(f"{model}: no retry: {exc}") from exc
            attempts += 1
            previous_incomplete = False
            left = time_left()
            if left <= 0:
                attempts -= 1
                raise failed(f"{model}: the run has no time left for this call", LLMCancelled)
            if should_stop():
                attempts -= 1
                raise failed(f"{model}: the run stopped before this call", LLMCancelled)
            try:
                response = self._attempt(model, sent, request_timeout_s(opts.timeout_s, left), kwargs,
                                         should_stop, time_left)
                content = response.choices[0].message.content or ""
                if not content.strip():
                    raise EmptyCompletion(f"{model} returned an empty completion")
            except _Abandoned as exc:
                incomplete += 1
                raise failed(f"{model}: {exc}", LLMCancelled) from None
            except (*RETRYABLE, EmptyCompletion) as exc:
                if _is_encoding_error(exc):
                    raise failed(f"{model} failed: the prompt is not valid text: {_describe(exc)}") from exc
                if isinstance(exc, litellm.Timeout):  # the provider may have done (and billed) the work
                    incomplete += 1
                    previous_incomplete = True
                if attempts > opts.max_retries:
                    raise failed(f"{model} failed after {attempts} attempts: {_describe(exc)}") from exc
                delay = _retry_after_s(exc)
                if delay is None:
                    delay = min(MAX_BACKOFF_S, self.base_backoff_s * 2 ** (attempts - 1)) * random.uniform(0.8, 1.2)
                if delay >= time_left():
                    raise failed(f"{model} failed after {attempts} attempts: {_describe(exc)}; a retry in "
                                 f"{delay:.1f} s would pass the run's time limit") from exc
                logger.info("%s: attempt %d failed (%s); retrying in %.1f s", model, attempts, _describe(exc), delay)
                if not self._sleep(delay, should_stop):
                    raise failed(f"{model}: stopped while waiting to retry", LLMCancelled) from exc
                continue
            except Exception as exc:  # bad request, auth, unknown model, malformed reply: retrying cannot help
                raise failed(f"{model} failed: {_describe(exc)}") from exc
            latency = time.monotonic() - started
            usage = getattr(response, "usage", None)
            prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
            completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
            cached, written = cache_usage(usage)
            cost = self._cost(response, model, prompt_tokens, completion_tokens)
            return Completion(
                content=content,
                model=model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost_usd=cost,
                cached_tokens=cached,
                cache_write_tokens=written,
                cache_saving_usd=self._cache_saving(model, cost, prompt_tokens, completion_tokens, cached or written),
                latency_s=latency,
                attempts=attempts,
                incomplete=incomplete,
                incomplete_prompt_tokens=estimate_prompt_tokens(model, messages) * incomplete if incomplete else 0,
            )

    @staticmethod
    def _attempt(model: str, messages: list[dict[str, Any]], timeout: float, kwargs: dict[str, Any],
                 should_stop: Callable[[], bool], time_left: Callable[[], float]) -> Any:
        """One provider request on a daemon thread of its own (reused, `_AttemptThreads`), so that a
        stop or the run's time limit ends our wait within POLL_S, however long the provider takes
        (the request is abandoned; its thread is free again at the request's own timeout and keeps
        nothing alive)."""
        box: dict[str, Any] = {}
        done = threading.Event()

        def target() -> None:
            try:
                box["response"] = litellm.completion(model=model, messages=messages, timeout=timeout, **kwargs)
            except BaseException as exc:  # handed to the waiting thread
                box["error"] = exc
            finally:
                done.set()

        _ATTEMPT_THREADS.run(target)
        while not done.wait(POLL_S):
            if should_stop():
                raise _Abandoned("stopped while the call was in flight")
            if time_left() <= 0:
                raise _Abandoned("the run's time ran out while the call was in flight")
        if "error" in box:
            raise box["error"]
        return box["response"]

    @staticmethod
    def _sleep(seconds: float, should_stop: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if should_stop():
                return False
            time.sleep(min(0.1, left))
        return not should_stop()
