"""The engine's event stream: one typed, ordered record of everything a run does.

Every reader (database rows, websocket frames, exports, the explorer) consumes these events and
nothing else, so each event carries all the data needed to rebuild the trajectory. Each type's
`data` is defined by its dataclass at the end of this module (`RunStarted` … `RunFinished`), which
`emit` checks; the stop reasons, statuses and other shared names are in `worker.engine.vocabulary`.

Event types and their `data` (ids are strings; `depth` 0 is the top-level root):

- run.started: question, mode, root_model, sub_model, limits, documents [{name, chars}], offline
- root.turn: node_id, depth, iteration, content, prompt_tokens, completion_tokens, cost_usd,
  latency_s, model, forced, attempts, input [{role, content, chars}] (the messages this turn sent
  that the previous one did not: the system prompt and first turn, then each turn's feedback),
  incomplete_attempts (live calls only), cached_tokens, cache_saving_usd (prompt caching)
- cell.started: cell_id, node_id, depth, iteration, index, code
- cell.finished: cell_id, node_id, depth, stdout, stdout_chars, truncated, error, duration_s,
  killed, state_note
- subcall.started: node_id, parent_id, cell_id, depth, kind ("llm"|"rlm"), model, prompt,
  prompt_chars, ranges [{doc, start, end}], batch_id, batch_index
- subcall.finished: node_id, response, response_chars, prompt_tokens, completion_tokens,
  cost_usd, latency_s, error, attempts, incomplete_attempts (llm nodes: attempts that timed out or
  were abandoned on a stop, whose prompt tokens are counted and whose completion is unknown)
- cost.updated: totals
- final.answer: answer, source ("FINAL"|"FINAL_VAR"|"plain"|"forced"), node_id
- run.finished: status, failure_reason, stop_reason, totals, forced_final
- root.compacted: node_id, depth, iteration, tokens_before, tokens_after, window, turns_compacted,
  summary, model, prompt_tokens, completion_tokens, cost_usd, latency_s, attempts (a root's history
  neared its model's window: earlier turns were replaced by a summary the root wrote; the REPL is
  untouched; the summarising call is counted here, like a root turn)
- helpers.loaded: helpers [{name, version, signature, doc, error, stdout}] (the team's helpers
  ran as cells hidden from the root, before its first turn)
- snapshot.restored: variables [{name, type}], not_carried [{name, type, reason}], error (the
  previous run's plain-data variables were put into this REPL before its first cell)
- snapshot.saved: variables [{name, type}], not_carried [{name, type, reason}], bytes, error

`totals` = {cost_usd (sum of known costs), cost_unknown_calls, prompt_tokens, completion_tokens,
iterations, subcalls (the sub-call budget's count, all depths: llm sub-calls and child RLMs' root
turns), max_depth_reached, elapsed_s, model_calls (root_calls + llm_subcalls + child_root_calls),
root_calls, llm_subcalls, child_root_calls, child_rlms, attempts (provider requests, retries
included), incomplete_calls, cost_in_flight_usd (worst cases reserved for calls in flight),
cost_unsettled_usd (what unfinished attempts may still add)}. A cost of None means unknown,
never zero. `iterations` counts completed top-level root turns, i.e. the root.turn events at
depth 0 (the forced last turn included): a root call that fails is no iteration. max_iterations
caps the unforced turns, so a run forced at the limit has up to max_iterations + 1.

Cost bookkeeping: every model call is counted once, in its root.turn, its root.compacted or its llm
subcall.finished; run totals are the sum of those. That event is immediately followed by the
cost.updated whose totals count it (both are emitted under one lock), so a stream cut anywhere is
totalled by `worker.engine.totals.recorded_totals`: the last totals plus the calls recorded after
them. A subcall.finished of kind "rlm" carries the roll-up of its child RLM's subtree: the sums of prompt_tokens, completion_tokens, cost_usd and attempts over the
child's own root turns, its llm sub-calls and its own child RLMs (each already counted in its own
event; cost None if any part was unknown), and nothing else that ran meanwhile. A failed call
(error set) costs 0, as providers do not bill failed requests, but its attempts still count in the
roll-up; attempts that timed out or were abandoned add their estimated prompt tokens and the
prompt part of their cost (the provider may have processed them). Root turns replayed from a root script have model "script", cost 0 and attempts 0.

`attempts`: the provider requests a call took, retries included (for an rlm node, its subtree's).
`latency_s`: the whole call's wall time, every attempt and the backoff waits between them included
(for an rlm node, the child RLM's whole run).
"""

import logging
import threading
import time
import types
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from enum import Enum
from typing import Any, ClassVar, Protocol, get_args

from worker.engine.text import sanitize_data
from worker.engine.vocabulary import AnswerSource, CallKind, RunStatus, StopReason

logger = logging.getLogger(__name__)

RUN_STARTED = "run.started"
ROOT_TURN = "root.turn"
CELL_STARTED = "cell.started"
CELL_FINISHED = "cell.finished"
SUBCALL_STARTED = "subcall.started"
SUBCALL_FINISHED = "subcall.finished"
COST_UPDATED = "cost.updated"
FINAL_ANSWER = "final.answer"
RUN_FINISHED = "run.finished"
ROOT_COMPACTED = "root.compacted"
HELPERS_LOADED = "helpers.loaded"
SNAPSHOT_RESTORED = "snapshot.restored"
SNAPSHOT_SAVED = "snapshot.saved"

EVENT_TYPES = (
    RUN_STARTED, ROOT_TURN, CELL_STARTED, CELL_FINISHED, SUBCALL_STARTED, SUBCALL_FINISHED,
    COST_UPDATED, FINAL_ANSWER, RUN_FINISHED, ROOT_COMPACTED, HELPERS_LOADED, SNAPSHOT_RESTORED, SNAPSHOT_SAVED,
)


@dataclass(frozen=True)
class Event:
    seq: int
    type: str
    ts: float
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, "ts": self.ts, "data": self.data}


class EventSink(Protocol):
    def write(self, event: Event) -> None:
        """Receive one event. Called in seq order, under the emitter's lock: keep it quick."""


class ListSink:
    """Keeps every event in memory (tests, the command line)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def write(self, event: Event) -> None:
        self.events.append(event)

    def of_type(self, type_: str) -> list[Event]:
        return [e for e in self.events if e.type == type_]


class EventEmitter:
    """Numbers events per run (contiguous from 1) and hands them to the sink in that order.

    Thread-safe: sub-calls finish on pool threads and child RLMs emit from their own threads, so
    numbering and writing happen under one lock; a sink never sees seq n+1 before n.
    """

    def __init__(self, sink: EventSink) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self._seq = 0

    def emit(self, type_: str, /, **data: Any) -> Event:
        check(type_, data)
        with self._lock:
            self._seq += 1
            event = Event(seq=self._seq, type=type_, ts=time.time(), data=sanitize_data(data))
            self._sink.write(event)
            return event

    @property
    def last_seq(self) -> int:
        return self._seq


# The schema -------------------------------------------------------------------------------------
# One frozen dataclass per event type names its `data` fields: a field without a default must be in
# every event of that type (its value may be None where the type says so), a field with a default
# may be left out. Fields typed with a vocabulary enum must hold one of its values. Call sites keep
# passing plain keywords to `emit`, which checks them against the dataclass (`check`); code that
# builds an event itself constructs the dataclass (`RunFinished(...).event(seq, ts)`).
#
# Adding an event type: a constant above, and one dataclass below decorated `@event_type(CONSTANT)`.
# The test suite checks every event it produces against these (tests/conftest.py), so an emitted
# type without its dataclass fails the tests.


@dataclass(frozen=True)
class Payload:
    """Base of the event dataclasses; `TYPE` is set by `event_type`."""

    TYPE: ClassVar[str]

    def to_data(self) -> dict[str, Any]:
        """The event's `data`, checked; enum members as their plain string values."""
        data = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        check(self.TYPE, data)
        return data

    def event(self, seq: int, ts: float) -> Event:
        return Event(seq=seq, type=self.TYPE, ts=ts, data=self.to_data())


@dataclass(frozen=True)
class Schema:
    """What `check` needs of one event type, computed once from its dataclass."""

    payload: type[Payload]
    required: frozenset[str]
    optional: frozenset[str]
    choices: dict[str, tuple[type[Enum], bool]]  # field -> (its enum, whether None is allowed)


SCHEMAS: dict[str, Schema] = {}


def event_type(type_: str) -> Callable[[type[Payload]], type[Payload]]:
    """Register a payload dataclass as the schema of events of `type_`."""
    def register(cls: type[Payload]) -> type[Payload]:
        if type_ in SCHEMAS:
            raise ValueError(f"event type {type_!r} is defined twice")
        cls.TYPE = type_
        required: set[str] = set()
        optional: set[str] = set()
        choices: dict[str, tuple[type[Enum], bool]] = {}
        for f in fields(cls):
            has_default = f.default is not MISSING or f.default_factory is not MISSING
            (optional if has_default else required).add(f.name)
            args = get_args(f.type) if isinstance(f.type, types.UnionType) else (f.type,)
            enums = [a for a in args if isinstance(a, type) and issubclass(a, Enum)]
            if enums:
                choices[f.name] = (enums[0], type(None) in args)
        SCHEMAS[type_] = Schema(cls, frozenset(required), frozenset(optional), choices)
        return cls
    return register


def problems(type_: str, data: dict[str, Any]) -> list[str]:
    """How `data` breaks the schema of `type_` (empty when it fits)."""
    schema = SCHEMAS.get(type_)
    if schema is None:
        return [f"unknown event type {type_!r}: add its dataclass to worker/engine/events.py"]
    found = [f"missing field {name!r}" for name in sorted(schema.required - data.keys())]
    found += [f"unknown field {name!r}" for name in sorted(data.keys() - schema.required - schema.optional)]
    for name, (enum, nullable) in schema.choices.items():
        value = data.get(name)
        if name not in data or (value is None and nullable):
            continue
        if not isinstance(value, str) or value not in enum._value2member_map_:
            found.append(f"field {name!r} is {value!r}, not a {enum.__name__}")
    return found


def check(type_: str, data: dict[str, Any]) -> None:
    """Hand a schema violation to `report_violation`; never raises, so a slip never stops a run."""
    found = problems(type_, data)
    if found:
        report_violation(type_, found)


_reported: set[tuple[str, str]] = set()


def log_violation_once(type_: str, found: list[str]) -> None:
    """Production: log each kind of violation once per process; the event is emitted all the same.
    (The test suite replaces `report_violation` with a collector that fails the test.)"""
    new = [p for p in found if (type_, p) not in _reported]
    if new:
        _reported.update((type_, p) for p in new)
        logger.error("Event %r does not match its schema: %s (logged once)", type_, "; ".join(new))


report_violation: Callable[[str, list[str]], None] = log_violation_once


def _plain(value: object) -> object:
    return value.value if isinstance(value, Enum) else value


@event_type(RUN_STARTED)
@dataclass(frozen=True, kw_only=True)
class RunStarted(Payload):
    """The run's question and settings. `mode` is as asked: an unknown one is recorded, then refused."""

    question: str
    mode: str
    root_model: str
    sub_model: str
    limits: dict[str, Any]  # the engine's Limits, by name
    documents: list[dict[str, Any]]  # [{name, chars}]
    offline: bool


@event_type(ROOT_TURN)
@dataclass(frozen=True, kw_only=True)
class RootTurn(Payload):
    """One reply of a root model (node_id None: the top-level root; else the rlm node it belongs to)."""

    node_id: str | None
    depth: int
    iteration: int
    content: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    latency_s: float
    model: str
    forced: bool
    attempts: int
    input: list[dict[str, Any]]  # [{role, content, chars}]: what this turn sent that the previous one did not
    incomplete_attempts: int = 0  # model calls only (not root-script turns)
    cached_tokens: int = 0  # prompt tokens served from the provider's prompt cache
    cache_saving_usd: float | None = None  # what the cache saved against uncached input (None: unknown)


@event_type(CELL_STARTED)
@dataclass(frozen=True, kw_only=True)
class CellStarted(Payload):
    """A code block of a root turn, about to run in the REPL of node_id's RLM."""

    cell_id: str
    node_id: str | None
    depth: int
    iteration: int
    index: int
    code: str


@event_type(CELL_FINISHED)
@dataclass(frozen=True, kw_only=True)
class CellFinished(Payload):
    """What a cell printed (capped at output_limit_chars; stdout_chars counts all of it) and how it ended."""

    cell_id: str
    node_id: str | None
    depth: int
    stdout: str
    stdout_chars: int
    truncated: bool
    error: str | None
    duration_s: float
    killed: bool
    state_note: str | None


@event_type(SUBCALL_STARTED)
@dataclass(frozen=True, kw_only=True)
class SubcallStarted(Payload):
    """A model call made by REPL code: llm_query (kind llm) or a child RLM (kind rlm)."""

    node_id: str
    parent_id: str | None
    cell_id: str | None
    depth: int
    kind: CallKind
    model: str
    prompt: str
    prompt_chars: int
    ranges: list[dict[str, Any]]  # [{doc, start, end}] or ambiguous [{doc, chars, places}], in the top-level documents
    batch_id: str | None
    batch_index: int | None


@event_type(SUBCALL_FINISHED)
@dataclass(frozen=True, kw_only=True)
class SubcallFinished(Payload):
    """A sub-call's answer or error; for kind rlm, tokens, cost and attempts roll up the child's subtree."""

    node_id: str
    response: str
    response_chars: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    latency_s: float
    error: str | None
    attempts: int
    incomplete_attempts: int = 0  # llm nodes only
    cached_tokens: int = 0  # llm nodes: prompt tokens served from the provider's prompt cache
    cache_saving_usd: float | None = None


@event_type(COST_UPDATED)
@dataclass(frozen=True, kw_only=True)
class CostUpdated(Payload):
    """The run's running totals after a model call was settled."""

    totals: dict[str, Any]


@event_type(FINAL_ANSWER)
@dataclass(frozen=True, kw_only=True)
class FinalAnswer(Payload):
    """The run's answer (only for a run that succeeded)."""

    answer: str
    source: AnswerSource
    node_id: str | None


@event_type(RUN_FINISHED)
@dataclass(frozen=True, kw_only=True)
class RunFinished(Payload):
    """The last event of every run, from the engine or, for a run it could not finish, from the web app."""

    status: RunStatus
    failure_reason: str | None
    stop_reason: StopReason | None
    totals: dict[str, Any] | None  # None: the run never started
    forced_final: bool


@event_type(ROOT_COMPACTED)
@dataclass(frozen=True, kw_only=True)
class RootCompacted(Payload):
    """A root's history neared its model's window: earlier turns were replaced by a summary the root
    wrote (the REPL is untouched). The summarising call is counted here, like a root turn."""

    node_id: str | None
    depth: int
    iteration: int
    tokens_before: int
    tokens_after: int
    window: int
    turns_compacted: int
    summary: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    latency_s: float
    attempts: int


@event_type(HELPERS_LOADED)
@dataclass(frozen=True, kw_only=True)
class HelpersLoaded(Payload):
    """The team's helpers ran as cells hidden from the root, before its first turn."""

    helpers: list[dict[str, Any]]  # [{name, version, signature, doc, error, stdout}]


@event_type(SNAPSHOT_RESTORED)
@dataclass(frozen=True, kw_only=True)
class SnapshotRestored(Payload):
    """The previous run's plain-data variables were put into this REPL before its first cell."""

    variables: list[dict[str, Any]]  # [{name, type}]
    not_carried: list[dict[str, Any]]  # [{name, type, reason}]
    error: str | None


@event_type(SNAPSHOT_SAVED)
@dataclass(frozen=True, kw_only=True)
class SnapshotSaved(Payload):
    """The REPL's plain-data variables, saved when the run ended for a follow-up to inherit."""

    variables: list[dict[str, Any]]  # [{name, type}]
    not_carried: list[dict[str, Any]]  # [{name, type, reason}]
    bytes: int | None = None
    error: str | None = None
