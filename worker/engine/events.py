"""The engine's event stream: one typed, ordered record of everything a run does.

Every reader (database rows, websocket frames, exports, the explorer) consumes these events and
nothing else, so each event carries all the data needed to rebuild the trajectory.

Event types and their `data` (ids are strings; `depth` 0 is the top-level root):

- run.started: question, mode, root_model, sub_model, limits, documents [{name, chars}], offline
- root.turn: node_id, depth, iteration, content, prompt_tokens, completion_tokens, cost_usd,
  latency_s, model, forced, attempts, input [{role, content, chars}] (the messages this turn sent
  that the previous one did not: the system prompt and first turn, then each turn's feedback)
- cell.started: cell_id, node_id, depth, iteration, index, code
- cell.finished: cell_id, node_id, depth, stdout, stdout_chars, truncated, error, duration_s,
  killed, state_note
- subcall.started: node_id, parent_id, cell_id, depth, kind ("llm"|"rlm"), model, prompt,
  prompt_chars, ranges [{doc, start, end}], batch_id, batch_index
- subcall.finished: node_id, response, response_chars, prompt_tokens, completion_tokens,
  cost_usd, latency_s, error, attempts
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
iterations, subcalls (all depths), max_depth_reached, elapsed_s}. A cost of None means unknown,
never zero. `iterations` counts completed top-level root turns, i.e. the root.turn events at
depth 0 (the forced last turn included): a root call that fails is no iteration. max_iterations
caps the unforced turns, so a run forced at the limit has up to max_iterations + 1.

Cost bookkeeping: every model call is counted once, in its root.turn, its root.compacted or its llm
subcall.finished;
run totals are the sum of those. A subcall.finished of kind "rlm" carries the roll-up of its child
RLM's subtree: the sums of prompt_tokens, completion_tokens, cost_usd and attempts over the
child's own root turns, its llm sub-calls and its own child RLMs (each already counted in its own
event; cost None if any part was unknown), and nothing else that ran meanwhile. A failed call
(error set) costs 0, as providers do not bill failed requests, but its attempts still count in the
roll-up. Root turns replayed from a root script have model "script", cost 0 and attempts 0.

`attempts`: the provider requests a call took, retries included (for an rlm node, its subtree's).
`latency_s`: the whole call's wall time, every attempt and the backoff waits between them included
(for an rlm node, the child RLM's whole run).
"""

import threading
import time
from dataclasses import dataclass
from typing import Protocol

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
    data: dict

    def to_dict(self) -> dict:
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

    def emit(self, type_: str, /, **data) -> Event:
        with self._lock:
            self._seq += 1
            event = Event(seq=self._seq, type=type_, ts=time.time(), data=data)
            self._sink.write(event)
            return event

    @property
    def last_seq(self) -> int:
        return self._seq
