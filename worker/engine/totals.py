"""A run's totals as its recorded events say: for a run the engine could not finish itself.

The engine reports its totals in every `cost.updated` (and in `run.finished`); those are the
run's totals. A run that ends without the engine (its worker was killed, the sink gave up) ends
with the last totals it reported, plus the model calls recorded after them: the engine emits each
call's event and the `cost.updated` that counts it together (`RunState.settle`), so a stream cut
anywhere leaves at most the calls recorded after the last totals uncounted, and they are added
here, each the way `settle` and `admit_call` count it. Plain Python over events; no Django.
"""

from collections.abc import Iterable
from typing import Any

from worker.engine import events as ev
from worker.engine.vocabulary import CallKind

# The totals a recorded call adds to; the others (elapsed_s, cost_in_flight_usd, ...) stay as reported.
SUMMED = ("cost_usd", "cost_unknown_calls", "prompt_tokens", "completion_tokens", "iterations", "subcalls",
          "model_calls", "root_calls", "llm_subcalls", "child_root_calls", "child_rlms", "attempts",
          "incomplete_calls", "cached_tokens", "cache_saving_usd")
ROUNDED = ("cost_usd", "cache_saving_usd")
# The event types `recorded_totals` reads; a caller may pass only these.
TOTALS_EVENT_TYPES = (ev.ROOT_TURN, ev.ROOT_COMPACTED, ev.SUBCALL_STARTED, ev.SUBCALL_FINISHED, ev.COST_UPDATED,
                      ev.RUN_FINISHED)


def _zero() -> dict[str, Any]:
    return {**dict.fromkeys(SUMMED, 0), "cost_usd": 0.0, "cache_saving_usd": 0.0, "max_depth_reached": 0}


def _add_call(after: dict[str, Any], data: dict[str, Any]) -> None:
    """One settled model call (root turn, compaction or llm sub-call), as `RunState.settle` counts it."""
    cost = data.get("cost_usd")
    if cost is None:
        after["cost_unknown_calls"] += 1
    else:
        after["cost_usd"] += cost
    after["prompt_tokens"] += data.get("prompt_tokens") or 0
    after["completion_tokens"] += data.get("completion_tokens") or 0
    after["attempts"] += data.get("attempts") or 0
    after["incomplete_calls"] += bool(data.get("incomplete_attempts"))
    after["cached_tokens"] += data.get("cached_tokens") or 0
    after["cache_saving_usd"] += data.get("cache_saving_usd") or 0.0


def _admit_root(after: dict[str, Any], data: dict[str, Any]) -> None:
    """A root's call (a turn or a compaction), as `RunState.admit_call` counts it (a root script's
    replayed turn is no model call)."""
    if data.get("model") == "script":
        return
    after["model_calls"] += 1
    if (data.get("depth") or 0) == 0:
        after["root_calls"] += 1
    else:
        after["child_root_calls"] += 1
        after["subcalls"] += 1


def recorded_totals(events: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The totals of a run from its recorded events, (type, data) in seq order: the last totals the
    engine reported (`cost.updated` / `run.finished`), plus the model calls recorded after them.
    With nothing reported, every call recorded is summed (a run cut before its first totals)."""
    reported: dict[str, Any] = {}
    after = _zero()
    kinds: dict[Any, Any] = {}
    for type_, data in events:
        data = data or {}
        if type_ in (ev.COST_UPDATED, ev.RUN_FINISHED):
            if isinstance(data.get("totals"), dict):
                reported, after = data["totals"], _zero()
        elif type_ == ev.SUBCALL_STARTED:
            kinds[data.get("node_id")] = data.get("kind")
            after["max_depth_reached"] = max(after["max_depth_reached"], data.get("depth") or 0)
            if data.get("kind") == CallKind.LLM:  # admitted (counted) before it started
                after["subcalls"] += 1
                after["llm_subcalls"] += 1
                after["model_calls"] += 1
            else:
                after["child_rlms"] += 1
        elif type_ == ev.SUBCALL_FINISHED:
            if kinds.get(data.get("node_id")) == CallKind.LLM:  # an rlm node's figures roll up its calls'
                _add_call(after, data)
        elif type_ in (ev.ROOT_TURN, ev.ROOT_COMPACTED):
            _admit_root(after, data)
            _add_call(after, data)
            if type_ == ev.ROOT_TURN and (data.get("depth") or 0) == 0:
                after["iterations"] += 1
    totals = dict(reported)
    for key in SUMMED:
        totals[key] = (totals.get(key) or 0) + after[key]
    for key in ROUNDED:
        totals[key] = round(totals[key], 10)
    totals["max_depth_reached"] = max(totals.get("max_depth_reached") or 0, after["max_depth_reached"])
    return totals
