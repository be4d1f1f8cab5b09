"""The one door to language models: litellm, with retries, usage, latency and cost.

Nothing else in the project imports litellm. API keys are resolved here from the environment at
call time and passed straight to litellm; they never reach prompts, events or the REPL.
"""

import math
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of the price table at import

import email.utils
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import litellm

from worker.engine import offline

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

    def __init__(self, executor) -> None:
        self._executor = executor

    def submit(self, fn, /, *args, **kwargs):
        if _litellm_logging_wanted():
            return self._executor.submit(fn, *args, **kwargs)
        skipped: Future = Future()
        skipped.cancel()
        return skipped

    def __getattr__(self, name: str):
        return getattr(self._executor, name)


if hasattr(litellm.utils, "executor") and not isinstance(litellm.utils.executor, _SuccessLoggingGate):
    litellm.utils.executor = _SuccessLoggingGate(litellm.utils.executor)

RETRYABLE = (
    litellm.RateLimitError,
    litellm.InternalServerError,
    litellm.ServiceUnavailableError,
    litellm.BadGatewayError,
    litellm.Timeout,
    litellm.APIConnectionError,
)
MAX_BACKOFF_S = 60.0


@dataclass(frozen=True)
class ModelOptions:
    """How to reach one model. `api_key_env` names the environment variable holding its key."""

    api_base: str | None = None
    api_key_env: str | None = None
    timeout_s: float = 300.0
    max_retries: int = 4
    context_window: int | None = None


@dataclass(frozen=True)
class Completion:
    content: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None  # None: litellm has no price for this model (unknown, not free)
    latency_s: float  # the whole call: every attempt and the backoff waits between them
    attempts: int


class LLMError(Exception):
    """A model call failed for good (after retries, or at once when retrying cannot help)."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class LLMCancelled(LLMError):
    """The run was stopped while the call was waiting to retry."""


class EmptyCompletion(Exception):
    """The provider answered 200 with no text: treated like a transient error."""


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


def response_cost_usd(response, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """The cost litellm already priced this response at (from its price table, for the usage the
    response reports), or, when it did not, `cost_usd` for that usage: one pricing per call, not two."""
    hidden = getattr(response, "_hidden_params", None)
    priced = hidden.get("response_cost") if isinstance(hidden, dict) else None
    if isinstance(priced, int | float) and not isinstance(priced, bool):
        return float(priced)
    return cost_usd(model, prompt_tokens, completion_tokens)


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

    def options_for(self, model: str) -> ModelOptions:
        return self.options.get(model) or ModelOptions()

    def context_window(self, model: str) -> int | None:
        if model not in self._windows:
            self._windows[model] = context_window(model, self.options.get(model))
        return self._windows[model]

    def complete(self, model: str, messages: list[dict], should_stop: Callable[[], bool] = lambda: False,
                 time_left: Callable[[], float] = lambda: math.inf) -> Completion:
        """One chat completion, retried on rate limits and transient errors; raises LLMError.

        `time_left`: seconds the run has left. No attempt waits longer than that for the provider,
        and no retry is scheduled beyond it (a slow or Retry-After-happy provider cannot hold a run
        past its time limit).
        """
        opts = self.options_for(model)
        kwargs: dict = {"max_retries": 0}  # we retry ourselves, visibly
        if opts.api_base:
            kwargs["api_base"] = opts.api_base
        if opts.api_key_env:
            key = os.environ.get(opts.api_key_env)
            if not key:
                raise LLMError(f"{model}: the environment variable {opts.api_key_env} holding its API key is not set.", 0)
            kwargs["api_key"] = key
        elif opts.api_base and not is_offline(model):
            kwargs["api_key"] = "no-key"  # local OpenAI-compatible servers need none, but the client wants one
        attempts = 0
        started = time.monotonic()
        while True:
            attempts += 1
            left = time_left()
            if left <= 0:
                raise LLMCancelled(f"{model}: the run has no time left for this call", attempts - 1)
            try:
                response = litellm.completion(model=model, messages=messages,
                                              timeout=max(0.5, min(opts.timeout_s, left)), **kwargs)
                content = response.choices[0].message.content or ""
                if not content.strip():
                    raise EmptyCompletion(f"{model} returned an empty completion")
            except (*RETRYABLE, EmptyCompletion) as exc:
                if attempts > opts.max_retries:
                    raise LLMError(f"{model} failed after {attempts} attempts: {_describe(exc)}", attempts) from exc
                delay = _retry_after_s(exc)
                if delay is None:
                    delay = min(MAX_BACKOFF_S, self.base_backoff_s * 2 ** (attempts - 1)) * random.uniform(0.8, 1.2)
                if delay >= time_left():
                    raise LLMError(f"{model} failed after {attempts} attempts: {_describe(exc)}; a retry in "
                                   f"{delay:.1f} s would pass the run's time limit", attempts) from exc
                logger.info("%s: attempt %d failed (%s); retrying in %.1f s", model, attempts, _describe(exc), delay)
                if not self._sleep(delay, should_stop):
                    raise LLMCancelled(f"{model}: stopped while waiting to retry", attempts) from exc
                continue
            except Exception as exc:  # bad request, auth, unknown model, malformed reply: retrying cannot help
                raise LLMError(f"{model} failed: {_describe(exc)}", attempts) from exc
            latency = time.monotonic() - started
            usage = getattr(response, "usage", None)
            prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
            completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
            return Completion(
                content=content,
                model=model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost_usd=response_cost_usd(response, model, prompt_tokens, completion_tokens),
                latency_s=latency,
                attempts=attempts,
            )

    @staticmethod
    def _sleep(seconds: float, should_stop: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if should_stop():
                return False
            time.sleep(min(0.1, left))
        return not should_stop()
