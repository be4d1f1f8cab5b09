"""The RLM loop: root turns, cells, sub-calls, child RLMs, budgets, events.

One `RunState` is shared by the top-level RLM and every child RLM of a run: it holds the event
emitter, the LM client, the running totals and the stop flag. Each `RLM` owns one REPL sandbox
and one conversation with its root model.

Depth: the top-level root is depth 0 and its sub-calls depth 1. A child RLM started by rlm_query
from depth d sits at depth d+1 and its own sub-calls at d+2, so `max_depth` bounds the deepest
model call: with the default 1, rlm_query is a plain sub-call (the paper's setting); with 2, one
level of child RLMs; with 0, no sub-calls at all.

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

from worker.engine import compaction, parsing, prompts
from worker.engine import events as ev
from worker.engine import session as sessions
from worker.engine.llm import LLMClient, LLMError, ModelOptions, count_tokens, is_offline
from worker.sandbox import REPL_RULES, Sandbox, SandboxCallError, SandboxLimits

logger = logging.getLogger(__name__)

EVENT_TEXT_CAP = 100_000
MONITOR_INTERVAL_S = 0.1
# Budgets whose crossing still allows the root one last turn: it costs no sub-call and no depth.
# Money and time are hard caps, so they allow none.
FORCED_AFTER = ("max_iterations", "max_subcalls", "max_depth")
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
    cells: list[dict] = field(default_factory=list)


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
        self.iterations = 0
        self.subcalls = 0
        self.max_depth_reached = 0
        self.stop_reason: str | None = None
        self.stop_message: str | None = None
        self._ids = {"n": itertools.count(1), "c": itertools.count(1), "b": itertools.count(1)}
        self._sandboxes: set = set()
        self.executor = ThreadPoolExecutor(max(1, self.limits.subcall_concurrency), thread_name_prefix="subcall")
        self._top_texts: list[str] | None = None
        self._done = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="rlm-monitor", daemon=True)
        self._monitor.start()

    def new_id(self, kind: str) -> str:
        with self.lock:
            return f"{kind}{next(self._ids[kind])}"

    def emit(self, type_: str, **data) -> ev.Event:
        return self.emitter.emit(type_, **data)

    # stopping ---------------------------------------------------------------------------------
    def stopping(self) -> bool:
        """Any stop, including the soft ones that still allow the root a last turn."""
        if self.stop_reason is None and self._should_stop():
            self.stop("cancelled", "Cancelled.")
        return self.stop_reason is not None

    def halted(self) -> bool:
        """A hard stop: no model call of any kind any more."""
        return self.stopping() and self.stop_reason not in FORCED_AFTER

    def stop(self, reason: str, message: str) -> None:
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
                self.stop("max_wall_time", f"Stopped: the run reached its time limit of {self.limits.max_wall_s:g} s.")

    def close(self) -> None:
        self._done.set()
        self._monitor.join()
        self.executor.shutdown(wait=True, cancel_futures=True)

    def track(self, sandbox) -> None:
        with self.lock:
            self._sandboxes.add(sandbox)
        if self.stop_reason is not None and self.stop_reason not in FORCED_AFTER:
            sandbox.interrupt()

    def untrack(self, sandbox) -> None:
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
        if cap is not None and self.cost_usd >= cap:
            self.stop("max_cost", f"Stopped: the run spent ${self.cost_usd:.4f}, reaching its cost limit of ${cap:g}.")
            raise RunStopped(self.stop_message)
        if self.elapsed() > self.limits.max_wall_s:
            self.stop("max_wall_time", f"Stopped: the run reached its time limit of {self.limits.max_wall_s:g} s.")
            raise RunStopped(self.stop_message)

    def admit_subcall(self, depth: int) -> None:
        """Count one more sub-call at `depth`, or stop the run if that crosses a budget."""
        self.check_model_call()
        with self.lock:
            if depth > self.limits.max_depth:
                self.stop("max_depth", f"Stopped: a sub-call at depth {depth} exceeds the depth limit of "
                                       f"{self.limits.max_depth}.")
            elif self.subcalls >= self.limits.max_subcalls:
                self.stop("max_subcalls", f"Stopped: the run reached its limit of {self.limits.max_subcalls} sub-calls.")
            else:
                self.subcalls += 1
                self.max_depth_reached = max(self.max_depth_reached, depth)
                return
        raise RunStopped(self.stop_message)

    def count_iteration(self) -> None:
        """One more completed top-level root turn (counted once its reply is in, never before the call)."""
        with self.lock:
            self.iterations += 1

    def record(self, cost: float | None, prompt_tokens: int, completion_tokens: int, attempts: int = 1,
               usages: Iterable[Usage] = ()) -> None:
        """One successful model call: into the run totals and into `usages` (the calling RLM's and
        its ancestors'), under one lock, so a child's roll-up holds its own subtree's calls only."""
        with self.lock:
            for usage in usages:
                usage.add(cost, prompt_tokens, completion_tokens, attempts)
            if cost is None:
                self.cost_unknown_calls += 1
            else:
                self.cost_usd += cost
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            cap = self.limits.max_cost_usd
            over = cap is not None and self.cost_usd >= cap
            self.emit(ev.COST_UPDATED, totals=self.totals())  # under the lock: totals never go backwards
        if over:
            self.stop("max_cost", f"Stopped: the run spent ${self.cost_usd:.4f}, reaching its cost limit of ${cap:g}.")

    def record_failed(self, attempts: int, usages: Iterable[Usage]) -> None:
        """A model call that failed for good: its attempts count in the roll-ups; it costs nothing."""
        with self.lock:
            for usage in usages:
                usage.attempts += attempts

    def usage_of(self, usage: Usage) -> Usage:
        """A consistent copy of a roll-up that other threads may still be adding to."""
        with self.lock:
            return replace(usage)

    def totals(self) -> dict:
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

    def top_texts(self) -> list[str]:
        """The top-level documents, read only when a child context must be located in them."""
        with self.lock:
            if self._top_texts is None:
                self._top_texts = [Path(d.path).read_text(encoding="utf-8") for d in self.spec.documents]
            return self._top_texts


DocMap = list[tuple[int, int] | None]  # per document of an RLM: (top-level doc index, offset) if known


def map_ranges(ranges: list[dict] | None, doc_map: DocMap) -> list[dict]:
    """REPL-computed ranges (indices into this RLM's documents) as ranges of the top-level documents."""
    mapped = []
    for r in ranges or []:
        try:
            where = doc_map[int(r["doc"])]
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if where is not None:
            mapped.append({"doc": where[0], "start": where[1] + int(r["start"]), "end": where[1] + int(r["end"])})
    return mapped


def capture_limit(limits: Limits) -> int:
    """How much output the REPL keeps per cell: far more than the root is shown, to measure it."""
    return max(1_000_000, 10 * limits.output_limit_chars)


def cap(text: str) -> str:
    return text if len(text) <= EVENT_TEXT_CAP else text[:EVENT_TEXT_CAP]


def _new_messages(messages: list[dict]) -> list[dict]:
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
        self.cells: list[dict] = []
        self.cell_id: str | None = None
        self.sandbox = None
        self.carried = ""  # what session.begin added to the first turn

    # the loop -----------------------------------------------------------------------------------
    def run(self) -> Outcome:
        limits = self.state.limits
        self.sandbox = Sandbox(
            documents=self.documents, handler=self.handle,
            limits=SandboxLimits(cell_timeout_s=limits.cell_timeout_s, output_limit_chars=capture_limit(limits)),
        )
        self.state.track(self.sandbox)
        try:
            self.sandbox.start()
            self.carried = sessions.begin(self)
            outcome = self._loop()
            sessions.end(self)
            return outcome
        finally:
            self.state.untrack(self.sandbox)
            self.sandbox.close()

    def _loop(self) -> Outcome:
        limits = self.state.limits
        messages = [
            {"role": "system", "content": prompts.root_system_prompt(
                REPL_RULES, self.subcalls_on, limits.output_limit_chars, self.state.standing(self.depth, 1))},
            {"role": "user", "content": self._first_turn()},
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
                self.state.stop("max_iterations", f"The root reached its limit of {limits.max_iterations} "
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

    def _turn(self, messages: list[dict], iteration: int, forced: bool) -> Outcome | None:
        """One root turn: ask, then act on the reply. Returns an Outcome when the RLM is done."""
        compaction.maybe_compact(self, messages, iteration)
        content = self._ask_root(messages, iteration, forced)
        messages.append({"role": "assistant", "content": content})
        outcome, feedback = self._act(content, iteration, forced)
        if outcome is None and not forced:
            standing = self.state.standing(self.depth, iteration + 1).line()
            messages.append({"role": "user", "content": f"{feedback}\n\n{standing}"})
        return outcome

    def _ask_root(self, messages: list[dict], iteration: int, forced: bool) -> str:
        state = self.state
        sent = _new_messages(messages)
        state.check_model_call(last_turn=forced)
        if self.script is not None:
            if not self.script:
                state.stop("no_final_answer", "The root script ended without a final answer.")
                raise RunStopped(state.stop_message)
            content = self.script.pop(0)
            self._count_turn()
            state.emit(ev.ROOT_TURN, node_id=self.node_id, depth=self.depth, iteration=iteration, content=content,
                       prompt_tokens=0, completion_tokens=0, cost_usd=0.0, latency_s=0.0, model="script",
                       forced=forced, attempts=0, input=sent)
            state.emit(ev.COST_UPDATED, totals=state.totals())
            return content
        model = state.spec.root_model
        try:
            reply = state.client.complete(model, messages, should_stop=state.halted, time_left=state.time_left)
        except LLMError as exc:
            state.record_failed(exc.attempts, self._lineage())
            if state.halted():
                raise RunStopped(state.stop_message) from exc
            if self.depth > 0:
                raise RootFailed(f"The child RLM's root model failed: {exc}") from exc
            state.stop("provider_error", f"The root model failed: {exc}")
            raise RunStopped(state.stop_message) from exc
        self._count_turn()
        state.emit(ev.ROOT_TURN, node_id=self.node_id, depth=self.depth, iteration=iteration, content=reply.content,
                   prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                   cost_usd=reply.cost_usd, latency_s=round(reply.latency_s, 4), model=model, forced=forced,
                   attempts=reply.attempts, input=sent)
        state.record(reply.cost_usd, reply.prompt_tokens, reply.completion_tokens, reply.attempts, self._lineage())
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
            try:
                return Outcome(self.sandbox.read_variable(final.value), "FINAL_VAR", forced), ""
            except KeyError:
                return None, (f"There is no variable named {final.value!r} in the REPL, so there is no final answer "
                              f"yet. Variables: {self.sandbox.variable_summary()}")
        if not content.strip():
            return None, "Your message was empty. Write ```repl code, or give the final answer."
        if self.cells or forced:
            return Outcome(content.strip(), "forced" if forced else "plain", forced), ""
        return None, ("You have not looked at the context yet. Explore it with ```repl code before answering; "
                      "when you know the answer, give it with FINAL(...).")

    def _run_cell(self, code: str, iteration: int, index: int):
        state = self.state
        self.cell_id = state.new_id("c")
        state.emit(ev.CELL_STARTED, cell_id=self.cell_id, node_id=self.node_id, depth=self.depth,
                   iteration=iteration, index=index, code=code)
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
    def handle(self, name: str, args: dict):
        """Called by the sandbox when REPL code calls a model. Budget stops surface as SandboxCallError."""
        if not self.subcalls_on:
            raise SandboxCallError(f"{name} is not available: {prompts.NO_SUBCALLS_NOTE} (mode rlm-no-subcalls). "
                                   "Answer with Python alone.")
        try:
            if name == "llm_query":
                return self._llm_call(str(args.get("prompt", "")), args.get("model"), args.get("ranges"))
            if name == "llm_query_batched":
                return self._batch(list(args.get("prompts") or []), args.get("model"), args.get("ranges"))
            if name == "rlm_query":
                return self._rlm_call(str(args.get("prompt", "")), args.get("context"))
        except RunStopped as exc:
            raise SandboxCallError(str(exc) or "The run is stopping.") from exc
        raise SandboxCallError(f"unknown function {name}")

    def _llm_call(self, prompt: str, model: str | None, ranges, batch_id: str | None = None,
                  batch_index: int | None = None, mapped: list[dict] | None = None) -> str:
        state = self.state
        depth = self.depth + 1
        model = model or state.spec.sub_model
        allowed = state.spec.allowed_models
        if allowed is not None and model not in allowed and model not in (state.spec.root_model, state.spec.sub_model):
            choices = ", ".join(sorted({*allowed, state.spec.root_model, state.spec.sub_model}))
            raise SandboxCallError(f"llm_query refused: model {model!r} is not one of this run's models ({choices})")
        window = state.client.context_window(model)
        if window is not None and len(prompt) > 4 * window:  # ~4 characters per token in prose
            raise SandboxCallError(f"llm_query refused: the prompt has {len(prompt):,} characters, more than the "
                                   f"~{window:,}-token window of {model} holds. Split it into smaller slices.")
        state.admit_subcall(depth)
        node_id = state.new_id("n")
        state.emit(ev.SUBCALL_STARTED, node_id=node_id, parent_id=self.node_id, cell_id=self.cell_id, depth=depth,
                   kind="llm", model=model, prompt=cap(prompt), prompt_chars=len(prompt),
                   ranges=mapped if mapped is not None else map_ranges(ranges, self.doc_map),
                   batch_id=batch_id, batch_index=batch_index)
        messages = [
            {"role": "system", "content": prompts.subcall_system(depth, state.standing(depth, 0))},
            {"role": "user", "content": prompt},
        ]
        started = time.monotonic()
        try:
            reply = state.client.complete(model, messages, should_stop=state.halted, time_left=state.time_left)
        except LLMError as exc:  # providers do not bill failed requests: cost 0, known
            state.record_failed(exc.attempts, self._lineage())
            state.emit(ev.SUBCALL_FINISHED, node_id=node_id, response="", response_chars=0, prompt_tokens=0,
                       completion_tokens=0, cost_usd=0.0, latency_s=round(time.monotonic() - started, 4),
                       error=str(exc), attempts=exc.attempts)
            if state.halted():
                raise RunStopped(state.stop_message) from exc
            raise SandboxCallError(f"llm_query failed: {exc}") from exc
        state.emit(ev.SUBCALL_FINISHED, node_id=node_id, response=cap(reply.content),
                   response_chars=len(reply.content), prompt_tokens=reply.prompt_tokens,
                   completion_tokens=reply.completion_tokens, cost_usd=reply.cost_usd,
                   latency_s=round(reply.latency_s, 4), error=None, attempts=reply.attempts)
        state.record(reply.cost_usd, reply.prompt_tokens, reply.completion_tokens, reply.attempts, self._lineage())
        return reply.content

    def _batch(self, prompts_: list, model: str | None, ranges) -> list[str]:
        state = self.state
        batch_id = state.new_id("b")
        ranges = ranges if isinstance(ranges, list) and len(ranges) == len(prompts_) else [None] * len(prompts_)
        futures = [
            state.executor.submit(self._llm_call, str(p), model, r, batch_id, i)
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

    def _rlm_call(self, prompt: str, context) -> str:
        state = self.state
        depth = self.depth + 1
        if context is None:
            texts = [prompt]
        elif isinstance(context, str):
            texts = [context]
        else:
            texts = [str(c) for c in context]
        if depth + 1 > state.limits.max_depth:  # its own sub-calls would be too deep: a plain sub-call
            joined = "\n\n".join(texts) if context is not None else ""
            return self._llm_call(f"{prompt}\n\n{joined}" if joined else prompt, None, None,
                                  mapped=self._locate(texts) if context is not None else [])
        state.admit_subcall(depth)
        node_id = state.new_id("n")
        child_map = self._child_map(texts) if context is not None else [None]
        ranges = [{"doc": m[0], "start": m[1], "end": m[1] + len(t)}
                  for m, t in zip(child_map, texts, strict=True) if m is not None]
        state.emit(ev.SUBCALL_STARTED, node_id=node_id, parent_id=self.node_id, cell_id=self.cell_id, depth=depth,
                   kind="rlm", model=state.spec.root_model, prompt=cap(prompt), prompt_chars=len(prompt),
                   ranges=ranges, batch_id=None, batch_index=None)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="rlm-child-") as tmp:
            docs = []
            for i, text in enumerate(texts):
                path = Path(tmp) / f"context_{i}.txt"
                path.write_text(text, encoding="utf-8")
                docs.append((f"context_{i}" if len(texts) > 1 else "context", str(path)))
            child = RLM(state, depth, node_id, prompt, docs, child_map, parent=self)
            try:
                outcome = child.run()
            except Exception as exc:  # a child's sandbox failing is the parent's error to handle
                outcome = Outcome(error=f"{type(exc).__name__}: {exc}")
        used = state.usage_of(child.usage)  # its own subtree, whatever ran alongside it
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

    def _child_map(self, texts: list[str]) -> DocMap:
        """Where each child context sits in the top-level documents, when it is a verbatim slice."""
        tops = self.state.top_texts()
        found: DocMap = []
        for text in texts:
            where = None
            if len(text) >= 16:
                for d, top in enumerate(tops):
                    offset = top.find(text)
                    if offset >= 0:
                        where = (d, offset)
                        break
            found.append(where)
        return found

    def _locate(self, texts: list[str]) -> list[dict]:
        return [{"doc": m[0], "start": m[1], "end": m[1] + len(t)}
                for m, t in zip(self._child_map(texts), texts, strict=True) if m is not None]


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
    texts = [Path(d.path).read_text(encoding="utf-8") for d in spec.documents]
    user = prompts.direct_user(spec.question, [d.name for d in spec.documents], texts)
    if window is not None and (tokens := count_tokens(model, user)) > window:
        return Outcome(error=refusal.format(tokens=tokens))
    messages = [{"role": "system", "content": prompts.direct_system()}, {"role": "user", "content": user}]
    state.check_model_call()
    try:
        reply = state.client.complete(model, messages, should_stop=state.halted, time_left=state.time_left)
    except LLMError as exc:
        if not state.halted():
            state.stop("provider_error", f"The model failed: {exc}")
        return Outcome()
    state.count_iteration()
    state.emit(ev.ROOT_TURN, node_id=None, depth=0, iteration=1, content=reply.content,
               prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens, cost_usd=reply.cost_usd,
               latency_s=round(reply.latency_s, 4), model=model, forced=False, attempts=reply.attempts,
               input=_new_messages(messages))
    state.record(reply.cost_usd, reply.prompt_tokens, reply.completion_tokens)
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


def _finish(state: RunState, outcome: Outcome, cells: list[dict]) -> RunResult:
    reason = state.stop_reason
    if reason == "cancelled":
        status, failure = "cancelled", state.stop_message
    elif outcome.answer is not None:
        status, failure = "succeeded", None
    else:
        status = "failed"
        failure = outcome.error or state.stop_message or "The root gave no final answer."
        if reason is None and outcome.error is None:
            reason = "no_final_answer"
    if outcome.answer is not None and status == "succeeded":
        state.emit(ev.FINAL_ANSWER, answer=outcome.answer, source=outcome.source, node_id=None)
    totals = state.totals()
    state.emit(ev.RUN_FINISHED, status=status, failure_reason=failure, stop_reason=reason, totals=totals,
               forced_final=outcome.forced)
    return RunResult(
        status=status,
        final_answer=outcome.answer if status == "succeeded" else None,
        answer_source=outcome.source if status == "succeeded" else None,
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
