"""The RLM loop: root turns, cells, sub-calls, child RLMs, budgets, events.

One `RunState` is shared by the top-level RLM and every child RLM of a run: it holds the event
emitter, the LM client, the running totals and the stop flag. Each `RLM` owns one REPL sandbox
and one conversation with its root model.

Depth: the top-level root is depth 0 and its sub-calls depth 1. A child RLM started by rlm_query
from depth d sits at depth d+1 and its own sub-calls at d+2, so `max_depth` bounds the deepest
model call: with the default 1, rlm_query is a plain sub-call (the paper's setting); with 2, one
level of child RLMs; with 0, no sub-calls at all.

Budgets hold against hostile REPL code (docs/engine.md): every model call is admitted before it is
sent (`RunState.admit_call`): counted (max_subcalls counts llm sub-calls and child RLMs' root
turns; the top-level root is bounded by max_iterations) and its worst case reserved against the
cost cap, released when it returns (`settle`).

Stopping: a crossed budget stops the whole run with its stop_reason. After iterations, sub-calls
or depth, the root still gets one last turn to give its best answer; money, time, cancellation
and provider failures stop at once (running cells are interrupted).
"""

import itertools
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from worker.engine import compaction, parsing, prompts
from worker.engine import events as ev
from worker.engine import session as sessions
from worker.engine.llm import (
    Completion,
    LLMClient,
    LLMError,
    ModelOptions,
    RetryRefused,
    count_tokens,
    is_offline,
)
from worker.engine.text import sanitize
from worker.engine.vocabulary import RunStatus, StopReason
from worker.sandbox import REPL_RULES, CellResult, Sandbox, SandboxCallError, SandboxError, SandboxLimits

logger = logging.getLogger(__name__)

EVENT_TEXT_CAP = 100_000
MONITOR_INTERVAL_S = 0.1
# Budgets whose crossing still allows the root one last turn: it costs no sub-call and no depth.
# Money and time are hard caps, so they allow none.
FORCED_AFTER = (StopReason.MAX_ITERATIONS, StopReason.MAX_SUBCALLS, StopReason.MAX_DEPTH)
MODES = ("rlm", "rlm-no-subcalls", "direct")


@dataclass
class Limits:
    max_iterations: int = 20
    max_depth: int = 1
    max_subcalls: int = 1000
    max_cost_usd: float | None = 5.0
    max_wall_s: float = 3600
    subcall_concurrency: int = 16
    output_limit_chars: int = 20_000
    cell_timeout_s: float = 120
    # A prompt to a model whose context window is unknown is refused above this many characters.
    max_prompt_chars: int = 2_000_000
    # rlm_query(prompt, context=[...]): at most this many context strings, this many characters in all.
    max_child_contexts: int = 1000
    max_child_context_chars: int = 50_000_000
    # llm_query_batched: at most this many prompts in one call (refused whole, before any work).
    max_batch_prompts: int = 10_000


@dataclass
class DocumentInput:
    name: str
    path: str
    chars: int


@dataclass
class RunSpec:
    question: str
    documents: list[DocumentInput]
    mode: str = "rlm"
    root_model: str = "offline/heuristic"
    sub_model: str | None = None
    limits: Limits = field(default_factory=Limits)
    model_options: dict[str, ModelOptions] = field(default_factory=dict)
    root_script: list[str] | None = None
    # The models the REPL's llm_query(model=...) may name, besides root_model and sub_model; None
    # allows any litellm model. The web app passes its configured list, so code a document
    # injected cannot pick some other model whose key happens to be in the environment.
    allowed_models: list[str] | None = None
    # Under a cost cap, a model with no known price may be called only when this is set (its spend
    # is then shown as unknown and counted in tokens). Without a cap, unpriced calls always run.
    allow_unpriced: bool = False
    # Follow-ups (conversation, REPL snapshot in and out) and team helpers: worker/engine/session.py.
    session: sessions.Session = field(default_factory=sessions.Session)

    def __post_init__(self) -> None:
        if not self.sub_model:
            self.sub_model = self.root_model


@dataclass
class RunResult:
    status: str
    final_answer: str | None
    answer_source: str | None
    forced_final: bool
    failure_reason: str | None
    stop_reason: str | None
    iterations: int
    subcalls: int
    max_depth_reached: int
    cost_usd: float | None
    prompt_tokens: int
    completion_tokens: int
    cells: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Usage:
    """What the model calls of one RLM's subtree took: its own root turns and sub-calls, and those of
    its child RLMs. Failed calls add their attempts and nothing else (providers do not bill them)."""

    cost_usd: float = 0.0
    cost_unknown_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 0

    def add(self, cost: float | None, prompt_tokens: int, completion_tokens: int, attempts: int) -> None:
        if cost is None:
            self.cost_unknown_calls += 1
        else:
            self.cost_usd += cost
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.attempts += attempts


@dataclass
class Outcome:
    """How one RLM ended: an answer, or none (then `error` says why when it is not a run stop)."""

    answer: str | None = None
    source: str | None = None
    forced: bool = False
    error: str | None = None


class RunStopped(Exception):
    """The run is stopping (budget, time, cancellation); unwinds the loop."""


class RootFailed(Exception):
    """A child RLM's root model failed for good: the parent's REPL gets the error."""


class CallRefused(Exception):
    """A model call the budgets do not admit (its worst case does not fit, or its price is unknown
    under a cost cap); nothing was sent. The run goes on unless the caller stops it."""


CALL_KINDS = ("root", "sub", "child_root")  # top-level root turns, llm sub-calls, child RLMs' root turns


@dataclass
class Ticket:
    """One admitted model call: its worst case per attempt, reserved `reservations` times."""

    kind: str
    model: str
    worst_usd: float
    reservations: int = 1


class RunState:
    """Everything an RLM of this run shares: events, LM client, totals, budgets, the stop flag."""

    def __init__(self, spec: RunSpec, emitter: ev.EventEmitter, should_stop: Callable[[], bool]) -> None:
        self.spec = spec
        self.limits = spec.limits
        self.emitter = emitter
        self.client = LLMClient(spec.model_options)
        self._should_stop = should_stop
        self.lock = threading.RLock()
        self.started = time.monotonic()
        self.cost_usd = 0.0
        self.cost_unknown_calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cached_tokens = 0  # prompt tokens served from providers' prompt caches
        self.cache_saving_usd = 0.0
        self.iterations = 0
        self.subcalls = 0  # model calls made for REPL code: llm sub-calls and child RLMs' root turns
        self.calls = dict.fromkeys(CALL_KINDS, 0)
        self.child_rlms = 0
        self.attempts = 0
        self.reserved_usd = 0.0  # worst cases of the calls in flight
        self.held_usd = 0.0  # what calls whose completion is unknown may still add to cost_usd
        self.incomplete_calls = 0
        self.max_depth_reached = 0
        self.stop_reason: StopReason | None = None
        self.stop_message: str | None = None
        self._ids = {"n": itertools.count(1), "c": itertools.count(1), "b": itertools.count(1)}
        self._sandboxes: set[Sandbox] = set()
        self.executor = ThreadPoolExecutor(max(1, self.limits.subcall_concurrency), thread_name_prefix="subcall")
        self._done = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="rlm-monitor", daemon=True)
        self._monitor.start()

    def new_id(self, kind: str) -> str:
        with self.lock:
            return f"{kind}{next(self._ids[kind])}"

    def emit(self, type_: str, **data: Any) -> ev.Event:
        return self.emitter.emit(type_, **data)

    # stopping ---------------------------------------------------------------------------------
    def stopping(self) -> bool:
        """Any stop, including the soft ones that still allow the root a last turn."""
        if self.stop_reason is None and self._should_stop():
            self.stop(StopReason.CANCELLED, "Cancelled.")
        return self.stop_reason is not None

    def halted(self) -> bool:
        """A hard stop: no model call of any kind any more."""
        return self.stopping() and self.stop_reason not in FORCED_AFTER

    def stop(self, reason: StopReason, message: str) -> None:
        """Stop the run (the first reason wins); money, time and cancellation interrupt running cells."""
        with self.lock:
            if self.stop_reason is not None:
                return
            self.stop_reason, self.stop_message = reason, message
            sandboxes = list(self._sandboxes) if reason not in FORCED_AFTER else []
        for sandbox in sandboxes:
            try:
                sandbox.interrupt()
            except Exception:
                logger.warning("Interrupting a sandbox failed", exc_info=True)

    def _watch(self) -> None:
        """Cancellation and wall time must be noticed even while a cell computes for minutes."""
        while not self._done.wait(MONITOR_INTERVAL_S):
            if self.stopping():
                continue
            if self.elapsed() > self.limits.max_wall_s:
                self.stop(StopReason.MAX_WALL_TIME, f"Stopped: the run reached its time limit of {self.limits.max_wall_s:g} s.")

    def close(self) -> None:
        self._done.set()
        self._monitor.join()
        self.executor.shutdown(wait=True, cancel_futures=True)

    def track(self, sandbox: Sandbox) -> None:
        with self.lock:
            self._sandboxes.add(sandbox)
        if self.stop_reason is not None and self.stop_reason not in FORCED_AFTER:
            sandbox.interrupt()

    def untrack(self, sandbox: Sandbox) -> None:
        with self.lock:
            self._sandboxes.discard(sandbox)

    # budgets and totals -------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def time_left(self) -> float:
        return self.limits.max_wall_s - self.elapsed()

    def check_model_call(self, last_turn: bool = False) -> None:
        """Before any model call: raise RunStopped if the run is stopping or out of money or time.

        `last_turn`: the root's one forced turn, still allowed after a soft stop.
        """
        if self.halted() or (self.stopping() and not last_turn):
            raise RunStopped(self.stop_message)
        cap = self.limits.max_cost_usd
        if cap is not None and self.cost_usd > 0 and self.cost_usd >= cap:  # a cap of 0 still allows free calls
            self.stop(StopReason.MAX_COST, f"Stopped: the run spent ${self.cost_usd:.4f}, reaching its cost limit of ${cap:g}.")
            raise RunStopped(self.stop_message)
        if self.elapsed() > self.limits.max_wall_s:
            self.stop(StopReason.MAX_WALL_TIME, f"Stopped: the run reached its time limit of {self.limits.max_wall_s:g} s.")
            raise RunStopped(self.stop_message)

    def committed_usd(self) -> float:
        """Spent, plus the worst case of every call in flight, plus what unfinished calls may add."""
        return self.cost_usd + self.reserved_usd + self.held_usd

    def admit_call(self, kind: str, depth: int, model: str, messages: list[dict[str, Any]], last_turn: bool = False) -> Ticket:
        """Admit one model call before anything is sent: count it against its budget and reserve its
        worst case against the cost cap. RunStopped when a budget stops the run; CallRefused when
        this one call cannot be made (unknown price under a cap, or its worst case does not fit)."""
        self.check_model_call(last_turn=last_turn)
        worst = self.client.worst_case_usd(model, messages)
        cap = self.limits.max_cost_usd
        if worst is None and cap is not None and not self.spec.allow_unpriced:
            raise CallRefused(
                f"{model} has no known price, and this run has a cost limit of ${cap:g}. An operator can give its "
                "per-token prices (input_cost_per_token, output_cost_per_token) in RLMWEB_MODELS_JSON, or allow "
                "calls of unknown price (RLMWEB_ALLOW_UNPRICED, rlm ask --allow-unpriced).")
        with self.lock:
            if kind == "sub" and depth > self.limits.max_depth:
                self.stop(StopReason.MAX_DEPTH, f"Stopped: a sub-call at depth {depth} exceeds the depth limit of "
                                       f"{self.limits.max_depth}.")
            elif kind != "root" and self.subcalls >= self.limits.max_subcalls:
                self.stop(StopReason.MAX_SUBCALLS, f"Stopped: the run reached its limit of {self.limits.max_subcalls} "
                                          "sub-calls (llm sub-calls and child RLMs' root turns).")
            elif cap is not None and worst is not None and self.committed_usd() + worst > cap:
                left = max(0.0, cap - self.committed_usd())
                why = (f"its worst case (every prompt token and max_tokens={self.client.max_tokens(model)} of "
                       f"completion from {model}) is ${worst:.4f}, more than the ${left:.4f} left of the cost "
                       f"limit of ${cap:g}")
                if self.reserved_usd > 0:  # calls in flight may leave room: refuse this one only
                    raise CallRefused(f"{why} while other calls are in flight. Send a shorter prompt, or "
                                      "wait for them to finish.")
                # Nothing in flight: the cap is reached for this call as it is; money is a hard stop.
                self.stop(StopReason.MAX_COST, f"Stopped at the cost limit: a model call was refused because {why}.")
            else:
                self.calls[kind] += 1
                if kind != "root":
                    self.subcalls += 1
                if kind == "sub":
                    self.max_depth_reached = max(self.max_depth_reached, depth)
                self.reserved_usd += worst or 0.0
                return Ticket(kind, model, worst or 0.0)
        raise RunStopped(self.stop_message)

    def retry_hook(self, ticket: Ticket) -> Callable[[bool], None]:
        """Before a retry: an attempt whose answer never came may still be billed, so the next one
        needs a reservation of its own, admitted like a new call."""
        def before_retry(previous_incomplete: bool) -> None:
            if self.halted():
                raise RetryRefused("the run is stopping")
            if not previous_incomplete:
                return
            cap = self.limits.max_cost_usd
            with self.lock:
                if cap is not None and self.committed_usd() + ticket.worst_usd > cap:
                    raise RetryRefused("a timed-out attempt may still be billed, and another one does not fit in "
                                       f"the cost limit of ${cap:g}")
                ticket.reservations += 1
                self.reserved_usd += ticket.worst_usd
        return before_retry

    def admit_child(self, depth: int) -> None:
        """Before a child RLM is set up: the run must be going, the depth allowed, and at least one
        model call left in the sub-call budget for its root."""
        self.check_model_call()
        with self.lock:
            if depth > self.limits.max_depth:
                self.stop(StopReason.MAX_DEPTH, f"Stopped: a sub-call at depth {depth} exceeds the depth limit of "
                                       f"{self.limits.max_depth}.")
            elif self.subcalls >= self.limits.max_subcalls:
                self.stop(StopReason.MAX_SUBCALLS, f"Stopped: the run reached its limit of {self.limits.max_subcalls} "
                                          "sub-calls (llm sub-calls and child RLMs' root turns).")
            else:
                self.child_rlms += 1
                self.max_depth_reached = max(self.max_depth_reached, depth)
                return
        raise RunStopped(self.stop_message)

    def count_iteration(self) -> None:
        """One more completed top-level root turn (counted once its reply is in, never before the call)."""
        with self.lock:
            self.iterations += 1

    def settle(self, ticket: Ticket, usages: Iterable[Usage], reply: Completion | None = None,
               error: LLMError | None = None, record: tuple[str, dict[str, Any]] | None = None) -> float | None:
        """A call ended (with `reply`, or failed with `error`): release its reservation, record what it
        cost, and return that cost (None: unknown). Attempts whose answer never came (timed out or
        abandoned) are recorded with their estimated prompt tokens and the prompt part of their cost;
        their completion is unknown, so the rest of their worst case stays held against the cap.

        `record`: the call's own event (type, data), emitted with the cost.updated after it under
        one lock, so the two are adjacent in the stream: every call recorded before a totals event
        is counted in it, and a stream cut anywhere (a worker killed) leaves at most the last call
        uncounted (`worker.engine.totals.recorded_totals`)."""
        source = reply if reply is not None else error
        assert source is not None, "settle takes a reply or an error"
        incomplete = getattr(source, "incomplete", 0)
        incomplete_tokens = getattr(source, "incomplete_prompt_tokens", 0)
        attempts = source.attempts
        part = self.client.prompt_cost_usd(ticket.model, incomplete_tokens) if incomplete else 0.0
        if reply is not None:
            cost = None if reply.cost_usd is None or part is None else reply.cost_usd + part
            prompt_tokens, completion_tokens = reply.prompt_tokens + incomplete_tokens, reply.completion_tokens
        else:  # providers do not bill failed requests; only unfinished attempts may cost something
            cost = part
            prompt_tokens, completion_tokens = incomplete_tokens, 0
        with self.lock:
            self.reserved_usd = max(0.0, self.reserved_usd - ticket.worst_usd * ticket.reservations)
            if incomplete:
                self.incomplete_calls += 1
                self.held_usd += max(0.0, ticket.worst_usd * incomplete - (part or 0.0))
            self.attempts += attempts
            for usage in usages:
                usage.add(cost, prompt_tokens, completion_tokens, attempts)
            if cost is None:
                self.cost_unknown_calls += 1
            else:
                self.cost_usd += cost
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            if reply is not None:
                self.cached_tokens += reply.cached_tokens
                self.cache_saving_usd += reply.cache_saving_usd or 0.0
            cap = self.limits.max_cost_usd
            over = cap is not None and self.cost_usd > 0 and self.cost_usd >= cap
            if record is not None:
                self.emit(record[0], **record[1])
            self.emit(ev.COST_UPDATED, totals=self.totals())  # under the lock: totals never go backwards
        if over:
            self.stop(StopReason.MAX_COST, f"Stopped: the run spent ${self.cost_usd:.4f}, reaching its cost limit of ${cap:g}.")
        return cost

    def usage_of(self, usage: Usage) -> Usage:
        """A consistent copy of a roll-up that other threads may still be adding to."""
        with self.lock:
            return replace(usage)

    def totals(self) -> dict[str, Any]:
        with self.lock:
            return {
                "cost_usd": round(self.cost_usd, 10),
                "cost_unknown_calls": self.cost_unknown_calls,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "iterations": self.iterations,
                "subcalls": self.subcalls,
                "max_depth_reached": self.max_depth_reached,
                "elapsed_s": round(self.elapsed(), 3),
                "model_calls": sum(self.calls.values()),
                "root_calls": self.calls["root"],
                "llm_subcalls": self.calls["sub"],
                "child_root_calls": self.calls["child_root"],
                "child_rlms": self.child_rlms,
                "attempts": self.attempts,
                "incomplete_calls": self.incomplete_calls,
                "cost_in_flight_usd": round(self.reserved_usd, 10),
                "cost_unsettled_usd": round(self.held_usd, 10),
                "cached_tokens": self.cached_tokens,
                "cache_saving_usd": round(self.cache_saving_usd, 10),
            }

    def standing(self, depth: int, iteration: int) -> prompts.Standing:
        with self.lock:
            return prompts.Standing(
                depth=depth, max_depth=self.limits.max_depth, iteration=iteration,
                max_iterations=self.limits.max_iterations, spent_usd=self.cost_usd,
                unknown_cost_calls=self.cost_unknown_calls, max_cost_usd=self.limits.max_cost_usd,
                subcalls=self.subcalls, max_subcalls=self.limits.max_subcalls,
                seconds_left=self.limits.max_wall_s - self.elapsed(),
            )


DocMap = list[tuple[int, int] | None]  # per document of an RLM: (top-level doc index, offset) if known


MAX_RANGES = 1000  # per prompt: more is garbage from REPL code, not a slice's provenance


def map_ranges(ranges: object, doc_map: DocMap) -> list[dict[str, Any]]:
    """REPL-computed ranges (indices into this RLM's documents) as ranges of the top-level documents.

    Untrusted (REPL code can call the channel with anything): only a list of {"doc", "start",
    "end"} ints with 0 <= start <= end and a known document counts, or an ambiguous range
    {"doc", "chars", "places"} (text found in several places: no offsets, never a guessed copy);
    anything else is ignored."""
    if not isinstance(ranges, list):
        return []
    mapped = []
    doc: Any
    start: Any
    end: Any
    chars: Any
    places: Any
    for r in ranges[:MAX_RANGES]:
        if not isinstance(r, dict):
            continue
        if "places" in r:
            doc, chars, places = r.get("doc"), r.get("chars"), r.get("places")
            if (all(type(v) is int for v in (doc, chars, places)) and 0 <= doc < len(doc_map)
                    and chars >= 0 and places >= 2 and doc_map[doc] is not None):
                mapped.append({"doc": doc_map[doc][0], "chars": chars, "places": places})
            continue
        doc, start, end = r.get("doc"), r.get("start"), r.get("end")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (doc, start, end)):
            continue
        if not (0 <= doc < len(doc_map) and 0 <= start <= end):
            continue
        where = doc_map[doc]
        if where is not None:
            mapped.append({"doc": where[0], "start": where[1] + start, "end": where[1] + end})
    return mapped


def capture_limit(limits: Limits) -> int:
    """How much output the REPL keeps per cell: far more than the root is shown, to measure it."""
    return max(1_000_000, 10 * limits.output_limit_chars)


def cap(text: str) -> str:
    return text if len(text) <= EVENT_TEXT_CAP else text[:EVENT_TEXT_CAP]


def _new_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a root turn sends that the previous turn did not: the messages after the last reply
    (the system prompt and first turn, then each turn's feedback), for the root.turn event."""
    last_reply = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    return [{"role": m["role"], "content": cap(m["content"]), "chars": len(m["content"])}
            for m in messages[last_reply + 1:]]


class RLM:
    """One root model working one REPL: the top-level run (depth 0) or a child started by rlm_query."""

    def __init__(self, state: RunState, depth: int, node_id: str | None, question: str,
                 documents: list[tuple[str, str]], doc_map: DocMap, script: list[str] | None = None,
                 parent: "RLM | None" = None) -> None:
        self.state = state
        self.parent = parent
        self.usage = Usage()  # this RLM's subtree: what its rlm_query node reports when it ends
        self.depth = depth
        self.node_id = node_id
        self.question = question
        self.documents = documents
        self.doc_map = doc_map
        self.script = list(script) if script is not None else None
        self.subcalls_on = state.spec.mode == "rlm"
        self.cells: list[dict[str, Any]] = []
        self.cell_id: str | None = None
        self.sandbox: Sandbox | None = None
        self.carried = ""  # what session.begin added to the first turn
        self.token_counts: dict[str, int] = {}  # the root history's texts, tokenized once (compaction)

    # the loop -----------------------------------------------------------------------------------
    def run(self) -> Outcome:
        limits = self.state.limits
        self.sandbox = sandbox = Sandbox(
            documents=self.documents, handler=self.handle,
            limits=SandboxLimits(cell_timeout_s=limits.cell_timeout_s, output_limit_chars=capture_limit(limits)),
        )
        self.state.track(sandbox)
        try:
            sandbox.start()
            self.carried = sessions.begin(self)
            outcome = self._loop()
            sessions.end(self)
            return outcome
        finally:
            self.state.untrack(sandbox)
            sandbox.close()

    def _loop(self) -> Outcome:
        limits = self.state.limits
        # The history only grows: no message is re-rendered once sent, so each request starts with the
        # previous one byte for byte and providers' prompt caches serve that prefix. What changes per
        # turn (the standing line) ends the newest message, never the system prompt.
        messages = [
            {"role": "system", "content": prompts.root_system_prompt(
                REPL_RULES, self.subcalls_on, limits.output_limit_chars)},
            {"role": "user", "content": f"{self._first_turn()}\n\n{self.state.standing(self.depth, 1).line()}"},
        ]
        try:
            for iteration in range(1, limits.max_iterations + 1):
                if self.state.stopping():
                    break
                outcome = self._turn(messages, iteration, forced=False)
                if outcome is not None:
                    return outcome
            if self.state.halted():
                return Outcome()
            if self.state.stop_reason is None and self.depth == 0:
                self.state.stop(StopReason.MAX_ITERATIONS, f"The root reached its limit of {limits.max_iterations} "
                                                  "iterations and was asked once for its best final answer.")
            messages.append({"role": "user", "content": prompts.forced_final_turn()})
            outcome = self._turn(messages, limits.max_iterations + 1, forced=True)
        except RunStopped:
            return Outcome()
        except RootFailed as exc:
            return Outcome(error=str(exc))
        return outcome or Outcome(error="No final answer, even when asked for one at the limit.")

    def _first_turn(self) -> str:
        names = [name for name, _ in self.documents]
        previews, lengths = [], []
        for _, path in self.documents:
            with open(path, encoding="utf-8") as handle:
                previews.append(handle.read(prompts.PREVIEW_CHARS))
            lengths.append(self._chars(path))
        return prompts.root_first_turn(self.question, names, previews, lengths) + self.carried

    @staticmethod
    def _chars(path: str) -> int:
        count = 0
        with open(path, encoding="utf-8") as handle:
            while chunk := handle.read(1 << 22):
                count += len(chunk)
        return count

    def _turn(self, messages: list[dict[str, Any]], iteration: int, forced: bool) -> Outcome | None:
        """One root turn: ask, then act on the reply. Returns an Outcome when the RLM is done."""
        compaction.maybe_compact(self, messages, iteration)
        content = self._ask_root(messages, iteration, forced)
        messages.append({"role": "assistant", "content": content})
        outcome, feedback = self._act(content, iteration, forced)
        if outcome is None and not forced:
            standing = self.state.standing(self.depth, iteration + 1).line()
            messages.append({"role": "user", "content": f"{feedback}\n\n{standing}"})
        return outcome

    def _ask_root(self, messages: list[dict[str, Any]], iteration: int, forced: bool) -> str:
        state = self.state
        sent = _new_messages(messages)
        state.check_model_call(last_turn=forced)
        if self.script is not None:
            if not self.script:
                state.stop(StopReason.NO_FINAL_ANSWER, "The root script ended without a final answer.")
                raise RunStopped(state.stop_message)
            content = self.script.pop(0)
            self._count_turn()
            with state.lock:  # adjacent, as `settle` records a call and its totals
                state.emit(ev.ROOT_TURN, node_id=self.node_id, depth=self.depth, iteration=iteration,
                           content=content, prompt_tokens=0, completion_tokens=0, cost_usd=0.0, latency_s=0.0,
                           model="script", forced=forced, attempts=0, input=sent)
                state.emit(ev.COST_UPDATED, totals=state.totals())
            return content
        model = state.spec.root_model
        try:
            ticket = state.admit_call("root" if self.depth == 0 else "child_root", self.depth, model, messages,
                                      last_turn=forced)
        except CallRefused as exc:
            if self.depth > 0:
                raise RootFailed(f"The child RLM's root model call was refused: {exc}") from exc
            state.stop(StopReason.MAX_COST, f"Stopped: the root model's next turn was refused under the cost limit: {exc}")
            raise RunStopped(state.stop_message) from exc
        try:
            reply = state.client.complete(model, messages, should_stop=state.halted, time_left=state.time_left,
                                          before_retry=state.retry_hook(ticket), cache_prefix=True)
        except LLMError as exc:
            state.settle(ticket, self._lineage(), error=exc)
            if state.halted():
                raise RunStopped(state.stop_message) from exc
            if self.depth > 0:
                raise RootFailed(f"The child RLM's root model failed: {exc}") from exc
            state.stop(StopReason.PROVIDER_ERROR, f"The root model failed: {exc}")
            raise RunStopped(state.stop_message) from exc
        self._count_turn()
        turn = dict(node_id=self.node_id, depth=self.depth, iteration=iteration, content=reply.content,
                    prompt_tokens=reply.prompt_tokens + reply.incomplete_prompt_tokens,
                    completion_tokens=reply.completion_tokens, cost_usd=_call_cost(state, ticket, reply),
                    latency_s=round(reply.latency_s, 4), model=model, forced=forced, attempts=reply.attempts,
                    input=sent, incomplete_attempts=reply.incomplete, **_cache_fields(reply))
        state.settle(ticket, self._lineage(), reply=reply, record=(ev.ROOT_TURN, turn))
        return reply.content

    def _lineage(self) -> list[Usage]:
        """The roll-ups a call made by this RLM (its root or its REPL) counts in: its own and its ancestors'."""
        usages: list[Usage] = []
        rlm: RLM | None = self
        while rlm is not None:
            usages.append(rlm.usage)
            rlm = rlm.parent
        return usages

    def _count_turn(self) -> None:
        """A root turn happened (its reply is in): the top-level root's turns are the run's iterations."""
        if self.depth == 0:
            self.state.count_iteration()

    def _act(self, content: str, iteration: int, forced: bool) -> tuple[Outcome | None, str]:
        blocks = parsing.code_blocks(content)
        if blocks:
            feedback = []
            for index, code in enumerate(blocks):
                if self.state.halted() or (self.state.stopping() and not forced):
                    break
                result, shown = self._run_cell(code, iteration, index)
                feedback.append(shown)
                if result.final is not None:
                    return Outcome(str(result.final.value), result.final.source, forced), ""
            if parsing.text_final(content):
                feedback.append("[The FINAL you wrote outside the code was ignored: you had not seen this output yet. "
                                "Check it, then give the final answer.]")
            return None, "\n\n".join(feedback)
        final = parsing.text_final(content)
        if final and final.kind == "FINAL":
            return Outcome(final.value, "FINAL", forced), ""
        if final:
            assert self.sandbox is not None  # (set by run)
            try:
                return Outcome(self.sandbox.read_variable(final.value), "FINAL_VAR", forced), ""
            except KeyError:
                return None, (f"There is no variable named {final.value!r} in the REPL, so there is no final answer "
                              f"yet. Variables: {self.sandbox.variable_summary()}")
            except SandboxError as exc:  # its str() looped, crashed or ran out of memory: the run goes on
                return None, (f"FINAL_VAR({final.value}) could not be read: {exc}. Put the answer in a plain str "
                              "variable, or use FINAL(text).")
        if not content.strip():
            return None, "Your message was empty. Write ```repl code, or give the final answer."
        if self.cells or forced:
            return Outcome(content.strip(), "forced" if forced else "plain", forced), ""
        return None, ("You have not looked at the context yet. Explore it with ```repl code before answering; "
                      "when you know the answer, give it with FINAL(...).")

    def _run_cell(self, code: str, iteration: int, index: int) -> tuple[CellResult, str]:
        state = self.state
        self.cell_id = state.new_id("c")
        state.emit(ev.CELL_STARTED, cell_id=self.cell_id, node_id=self.node_id, depth=self.depth,
                   iteration=iteration, index=index, code=code)
        assert self.sandbox is not None  # (set by run)
        result = self.sandbox.run_cell(code)
        total = len(result.stdout)  # at least: the REPL itself stops capturing at capture_limit()
        limit = state.limits.output_limit_chars
        stdout = result.stdout[:limit]
        truncated = total > limit or result.output_truncated
        state.emit(ev.CELL_FINISHED, cell_id=self.cell_id, node_id=self.node_id, depth=self.depth, stdout=stdout,
                   stdout_chars=total, truncated=truncated, error=result.error,
                   duration_s=round(result.duration_s, 4), killed=result.killed, state_note=result.state_note)
        self.cells.append({"code": code, "stdout": stdout, "error": result.error})
        shown = prompts.cell_output(index, stdout, result.error, truncated, total, result.state_note)
        return result, shown

    # REPL calls -----------------------------------------------------------------------------------
    def handle(self, name: str, args: dict[str, Any]) -> str | list[str]:
        """Called by the sandbox when REPL code calls a model. Budget stops surface as SandboxCallError.

        `args` come from REPL code: untrusted. Every value is checked before it is used.
        """
        if not self.subcalls_on:
            raise SandboxCallError(f"{name} is not available: {prompts.NO_SUBCALLS_NOTE} (mode rlm-no-subcalls). "
                                   "Answer with Python alone.")
        if not isinstance(args, dict):
            raise SandboxCallError(f"{name}: malformed call")
        try:
            if name == "llm_query":
                return self._llm_call(_str_arg(args.get("prompt")), _model_arg(args.get("model")), args.get("ranges"))
            if name == "llm_query_batched":
                prompts_ = args.get("prompts")
                if not isinstance(prompts_, list):
                    raise SandboxCallError("llm_query_batched(prompts): prompts must be a list of str")
                if len(prompts_) > self.state.limits.max_batch_prompts:
                    raise SandboxCallError(f"llm_query_batched refused: {len(prompts_):,} prompts; at most "
                                           f"{self.state.limits.max_batch_prompts:,} per call. Batch larger slices.")
                return self._batch([_str_arg(p) for p in prompts_], _model_arg(args.get("model")), args.get("ranges"))
            if name == "rlm_query":
                return self._rlm_call(_str_arg(args.get("prompt")), args.get("context"), args.get("context_ranges"))
        except RunStopped as exc:
            raise SandboxCallError(str(exc) or "The run is stopping.") from exc
        raise SandboxCallError(f"unknown function {name}")

    def _check_prompt_size(self, what: str, model: str, chars: int) -> None:
        """Refuse a prompt no window holds, or, when the window is unknown, one above max_prompt_chars."""
        state = self.state
        window = state.client.context_window(model)
        if window is not None:
            if chars > 4 * window:  # ~4 characters per token in prose
                raise SandboxCallError(f"{what} refused: the prompt has {chars:,} characters, more than the "
                                       f"~{window:,}-token window of {model} holds. Split it into smaller slices.")
        elif chars > state.limits.max_prompt_chars:
            raise SandboxCallError(f"{what} refused: the prompt has {chars:,} characters; the context window of "
                                   f"{model} is unknown, so prompts are capped at {state.limits.max_prompt_chars:,} "
                                   "characters (RLMWEB_MAX_PROMPT_CHARS). Split it into smaller slices.")

    def _llm_call(self, prompt: str, model: str | None, ranges: object, batch_id: str | None = None,
                  batch_index: int | None = None, mapped: list[dict[str, Any]] | None = None, what: str = "llm_query") -> str:
        state = self.state
        depth = self.depth + 1
        sub_model = state.spec.sub_model or state.spec.root_model  # (RunSpec sets sub_model; for the type checker)
        model = model or sub_model
        allowed = state.spec.allowed_models
        if allowed is not None and model not in allowed and model not in (state.spec.root_model, sub_model):
            choices = ", ".join(sorted({*allowed, state.spec.root_model, sub_model}))
            raise SandboxCallError(f"{what} refused: model {model!r} is not one of this run's models ({choices})")
        self._check_prompt_size(what, model, len(prompt))
        prompt = sanitize(prompt)  # after the size check: no work on a prompt that is refused anyway
        messages = [
            {"role": "system", "content": prompts.subcall_system(depth, state.standing(depth, 0))},
            {"role": "user", "content": prompt},
        ]
        try:
            ticket = state.admit_call("sub", depth, model, messages)
        except CallRefused as exc:
            raise SandboxCallError(f"{what} refused: {exc}") from None
        node_id = state.new_id("n")
        state.emit(ev.SUBCALL_STARTED, node_id=node_id, parent_id=self.node_id, cell_id=self.cell_id, depth=depth,
                   kind="llm", model=model, prompt=cap(prompt), prompt_chars=len(prompt),
                   ranges=mapped if mapped is not None else map_ranges(ranges, self.doc_map),
                   batch_id=batch_id, batch_index=batch_index)
        started = time.monotonic()
        try:
            reply = state.client.complete(model, messages, should_stop=state.halted, time_left=state.time_left,
                                          before_retry=state.retry_hook(ticket))
        except LLMError as exc:
            failed = dict(node_id=node_id, response="", response_chars=0,
                          prompt_tokens=exc.incomplete_prompt_tokens, completion_tokens=0,
                          cost_usd=_call_cost(state, ticket, exc), latency_s=round(time.monotonic() - started, 4),
                          error=str(exc), attempts=exc.attempts, incomplete_attempts=exc.incomplete)
            state.settle(ticket, self._lineage(), error=exc, record=(ev.SUBCALL_FINISHED, failed))
            if state.halted():
                raise RunStopped(state.stop_message) from exc
            raise SandboxCallError(f"{what} failed: {exc}") from exc
        done = dict(node_id=node_id, response=cap(reply.content), response_chars=len(reply.content),
                    prompt_tokens=reply.prompt_tokens + reply.incomplete_prompt_tokens,
                    completion_tokens=reply.completion_tokens, cost_usd=_call_cost(state, ticket, reply),
                    latency_s=round(reply.latency_s, 4), error=None, attempts=reply.attempts,
                    incomplete_attempts=reply.incomplete, **_cache_fields(reply))
        state.settle(ticket, self._lineage(), reply=reply, record=(ev.SUBCALL_FINISHED, done))
        return reply.content

    def _batch(self, prompts_: list[str], model: str | None, ranges: object) -> list[str]:
        state = self.state
        state.check_model_call()
        batch_id = state.new_id("b")
        ranges = ranges if isinstance(ranges, list) and len(ranges) == len(prompts_) else [None] * len(prompts_)
        futures = [
            state.executor.submit(self._llm_call, p, model, r, batch_id, i)
            for i, (p, r) in enumerate(zip(prompts_, ranges, strict=True))
        ]
        answers: list[str] = []
        stopped: RunStopped | None = None
        for future in futures:
            try:
                answers.append(future.result())
            except RunStopped as exc:
                stopped = exc
                answers.append("")
            except SandboxCallError as exc:
                answers.append(f"ERROR: {exc}")
        if stopped is not None:
            raise stopped
        return answers

    def _rlm_call(self, prompt: str, context: object, context_ranges: object) -> str:
        """rlm_query: a child RLM over `context`, or, at the depth limit, a plain sub-call.

        Hostile code chooses `context`: its size is bounded and the budgets admit the call before
        any work, and the host never searches documents for it. Where each context string sits in
        the top-level documents comes from `context_ranges`, computed by the REPL in its own process
        (untrusted: checked, and mapped through this RLM's doc_map).
        """
        state = self.state
        limits = state.limits
        depth = self.depth + 1
        if context is None:
            texts = [prompt]
        elif isinstance(context, str):
            texts = [context]
        elif isinstance(context, list):
            if len(context) > limits.max_child_contexts:
                raise SandboxCallError(f"rlm_query refused: context has {len(context):,} strings; at most "
                                       f"{limits.max_child_contexts:,}. Join them, or pass fewer.")
            texts = [_str_arg(c) for c in context]
        else:
            raise SandboxCallError("rlm_query(prompt, context=None): context must be a str, a list of str, or None")
        total = sum(len(t) for t in texts)
        if total > limits.max_child_context_chars:
            raise SandboxCallError(f"rlm_query refused: context has {total:,} characters; at most "
                                   f"{limits.max_child_context_chars:,}.")
        if depth + 1 <= limits.max_depth:  # a child RLM: its question goes into every root turn it takes
            self._check_prompt_size("rlm_query", state.spec.root_model, len(prompt))
        state.check_model_call()
        prompt = sanitize(prompt)  # sizes checked and the run admitted: now the (bounded) work
        texts = [sanitize(t) for t in texts] if context is not None else [prompt]
        where = self._context_places(texts, context_ranges) if context is not None else [None]
        if depth + 1 > limits.max_depth:  # its own sub-calls would be too deep: a plain sub-call
            if context is None:
                return self._llm_call(prompt, None, None, mapped=[], what="rlm_query")
            self._check_prompt_size("rlm_query", state.spec.sub_model or state.spec.root_model, len(prompt) + total + 2 * len(texts))
            joined = "\n\n".join(texts)
            return self._llm_call(f"{prompt}\n\n{joined}" if joined else prompt, None, None,
                                  mapped=_ranges_of(where, texts), what="rlm_query")
        state.admit_child(depth)
        node_id = state.new_id("n")
        state.emit(ev.SUBCALL_STARTED, node_id=node_id, parent_id=self.node_id, cell_id=self.cell_id, depth=depth,
                   kind="rlm", model=state.spec.root_model, prompt=cap(prompt), prompt_chars=len(prompt),
                   ranges=_ranges_of(where, texts), batch_id=None, batch_index=None)
        started = time.monotonic()
        child = None
        try:
            with tempfile.TemporaryDirectory(prefix="rlm-child-") as tmp:
                docs = []
                for i, text in enumerate(texts):
                    if state.halted():
                        raise RunStopped(state.stop_message)
                    path = Path(tmp) / f"context_{i}.txt"
                    path.write_text(text, encoding="utf-8")
                    docs.append((f"context_{i}" if len(texts) > 1 else "context", str(path)))
                child = RLM(state, depth, node_id, prompt, docs, where, parent=self)
                outcome = child.run()
        except RunStopped:
            outcome = Outcome()
        except Exception as exc:  # a child's sandbox failing is the parent's error to handle
            outcome = Outcome(error=f"{type(exc).__name__}: {exc}")
        used = state.usage_of(child.usage) if child is not None else Usage()  # its own subtree only
        error = None if outcome.answer is not None else (outcome.error or state.stop_message or "no answer")
        answer = outcome.answer or ""
        state.emit(ev.SUBCALL_FINISHED, node_id=node_id, response=cap(answer), response_chars=len(answer),
                   prompt_tokens=used.prompt_tokens, completion_tokens=used.completion_tokens,
                   cost_usd=round(used.cost_usd, 10) if not used.cost_unknown_calls else None,
                   latency_s=round(time.monotonic() - started, 4), error=error, attempts=used.attempts)
        if outcome.answer is None:
            if state.stopping():
                raise RunStopped(state.stop_message)
            raise SandboxCallError(f"rlm_query failed: {error}")
        return answer

    def _context_places(self, texts: list[str], context_ranges: object) -> DocMap:
        """Where each context string sits in the top-level documents, from the REPL's ranges into
        this RLM's documents (untrusted: an entry that is not a consistent range is ignored)."""
        places: DocMap = [None] * len(texts)
        if not isinstance(context_ranges, list) or len(context_ranges) != len(texts):
            return places
        doc: Any
        start: Any
        end: Any
        for i, (r, text) in enumerate(zip(context_ranges, texts, strict=True)):
            if not isinstance(r, dict):
                continue
            doc, start, end = r.get("doc"), r.get("start"), r.get("end")
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (doc, start, end)):
                continue
            if not (0 <= doc < len(self.doc_map) and 0 <= start <= end and end - start == len(text)):
                continue
            base = self.doc_map[doc]
            if base is not None:
                places[i] = (base[0], base[1] + start)
        return places


def _str_arg(value: object) -> str:
    """A text argument from REPL code: a str (sanitized to valid UTF-8 once its size is checked)."""
    if not isinstance(value, str):
        raise SandboxCallError(f"expected a str, got {type(value).__name__}")
    return value


def _model_arg(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SandboxCallError(f"model must be a str, got {type(value).__name__}")
    return value


def _ranges_of(places: DocMap, texts: list[str]) -> list[dict[str, Any]]:
    return [{"doc": p[0], "start": p[1], "end": p[1] + len(t)} for p, t in zip(places, texts, strict=True)
            if p is not None]


def _cache_fields(reply: Completion) -> dict[str, Any]:
    """Optional fields of root.turn and subcall.finished: the prompt tokens the provider's cache
    served (billed at its cache-read price) and what that saved (None: the price is unknown)."""
    saving = reply.cache_saving_usd
    return {"cached_tokens": reply.cached_tokens,
            "cache_saving_usd": round(saving, 10) if saving is not None else None}


def _call_cost(state: RunState, ticket: Ticket, outcome: Completion | LLMError) -> float | None:
    """What one call cost, as `settle` records it: the reply's cost plus the prompt part of attempts
    whose answer never came (for an LLMError only that part: providers do not bill failed requests)."""
    part = state.client.prompt_cost_usd(ticket.model, outcome.incomplete_prompt_tokens) if outcome.incomplete else 0.0
    if isinstance(outcome, LLMError):
        return part
    return None if outcome.cost_usd is None or part is None else outcome.cost_usd + part


def _direct(state: RunState) -> Outcome:
    """Mode `direct`: every document in one model call, refused when it cannot fit the window."""
    spec = state.spec
    model = spec.root_model
    window = state.client.context_window(model)
    chars = sum(d.chars for d in spec.documents)
    refusal = (f"Direct mode refused: the documents are about {{tokens:,}} tokens ({chars:,} characters), more than "
               f"the {window or 0:,}-token window of {model}. Use mode rlm, which never puts the documents in a prompt.")
    if window is not None and chars > window * 8:  # no tokenizer packs 8 characters into one token
        return Outcome(error=refusal.format(tokens=chars // 4))
    if window is None and chars > state.limits.max_prompt_chars:
        return Outcome(error=f"Direct mode refused: the documents are {chars:,} characters; the context window of "
                             f"{model} is unknown, so prompts are capped at {state.limits.max_prompt_chars:,} "
                             "characters (RLMWEB_MAX_PROMPT_CHARS). Use mode rlm.")
    texts = [Path(d.path).read_text(encoding="utf-8") for d in spec.documents]
    user = prompts.direct_user(spec.question, [d.name for d in spec.documents], texts)
    if window is not None and (tokens := count_tokens(model, user)) > window:
        return Outcome(error=refusal.format(tokens=tokens))
    messages = [{"role": "system", "content": prompts.direct_system()}, {"role": "user", "content": user}]
    try:
        ticket = state.admit_call("root", 0, model, messages)
    except CallRefused as exc:
        state.stop(StopReason.MAX_COST, f"Stopped: the model call was refused under the cost limit: {exc}")
        return Outcome()
    except RunStopped:
        return Outcome()
    try:
        reply = state.client.complete(model, messages, should_stop=state.halted, time_left=state.time_left,
                                      before_retry=state.retry_hook(ticket))
    except LLMError as exc:
        state.settle(ticket, (), error=exc)
        if not state.halted():
            state.stop(StopReason.PROVIDER_ERROR, f"The model failed: {exc}")
        return Outcome()
    state.count_iteration()
    turn = dict(node_id=None, depth=0, iteration=1, content=reply.content,
                prompt_tokens=reply.prompt_tokens + reply.incomplete_prompt_tokens,
                completion_tokens=reply.completion_tokens, cost_usd=_call_cost(state, ticket, reply),
                latency_s=round(reply.latency_s, 4), model=model, forced=False, attempts=reply.attempts,
                input=_new_messages(messages), incomplete_attempts=reply.incomplete, **_cache_fields(reply))
    state.settle(ticket, (), reply=reply, record=(ev.ROOT_TURN, turn))
    return Outcome(reply.content.strip(), "plain")


def run(spec: RunSpec, sink: ev.EventSink, should_stop: Callable[[], bool] = lambda: False) -> RunResult:
    """Run one question over the documents; every step goes to `sink` as events.

    Never raises for model or sandbox failures: the run ends with a run.finished event whose
    status is failed (or cancelled), and the same outcome is returned.
    """
    emitter = ev.EventEmitter(sink)
    state = RunState(spec, emitter, should_stop)
    state.emit(
        ev.RUN_STARTED, question=spec.question, mode=spec.mode, root_model=spec.root_model,
        sub_model=spec.sub_model, limits=vars(spec.limits).copy(),
        documents=[{"name": d.name, "chars": d.chars} for d in spec.documents],
        offline=is_offline(spec.root_model) or (spec.mode == "rlm" and is_offline(spec.sub_model or "")),
    )
    top: RLM | None = None
    try:
        if spec.mode not in MODES:
            outcome = Outcome(error=f"Unknown mode {spec.mode!r}: use one of {', '.join(MODES)}.")
        elif not spec.documents:
            outcome = Outcome(error="No documents to ask about.")
        elif spec.mode == "direct":
            outcome = _direct(state)
        else:
            top = RLM(state, 0, None, spec.question, [(d.name, d.path) for d in spec.documents],
                      [(i, 0) for i in range(len(spec.documents))], spec.root_script)
            outcome = top.run()
    except Exception as exc:
        logger.exception("Run failed")
        outcome = Outcome(error=f"{type(exc).__name__}: {exc}")
    finally:
        state.close()
    return _finish(state, outcome, top.cells if top else [])


def _finish(state: RunState, outcome: Outcome, cells: list[dict[str, Any]]) -> RunResult:
    reason = state.stop_reason
    if reason == StopReason.CANCELLED:
        status, failure = RunStatus.CANCELLED, state.stop_message
    elif outcome.answer is not None:
        status, failure = RunStatus.SUCCEEDED, None
    else:
        status = RunStatus.FAILED
        failure = outcome.error or state.stop_message or "The root gave no final answer."
        if reason is None and outcome.error is None:
            reason = StopReason.NO_FINAL_ANSWER
    if outcome.answer is not None and status == RunStatus.SUCCEEDED:
        state.emit(ev.FINAL_ANSWER, answer=outcome.answer, source=outcome.source, node_id=None)
    totals = state.totals()
    state.emit(ev.RUN_FINISHED, status=status, failure_reason=failure, stop_reason=reason, totals=totals,
               forced_final=outcome.forced)
    return RunResult(
        status=status,
        final_answer=outcome.answer if status == RunStatus.SUCCEEDED else None,
        answer_source=outcome.source if status == RunStatus.SUCCEEDED else None,
        forced_final=outcome.forced,
        failure_reason=failure,
        stop_reason=reason,
        iterations=totals["iterations"],
        subcalls=totals["subcalls"],
        max_depth_reached=totals["max_depth_reached"],
        cost_usd=totals["cost_usd"] if not totals["cost_unknown_calls"] else None,
        prompt_tokens=totals["prompt_tokens"],
        completion_tokens=totals["completion_tokens"],
        cells=cells,
    )
