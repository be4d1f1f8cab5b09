"""A run cut anywhere (its worker killed) is totalled from its recorded events by
`worker.engine.totals.recorded_totals`: the last totals the engine reported plus the calls
recorded after them. Checked against the engine's own totals at every point of real runs."""

import pytest

from worker.engine import run
from worker.engine.totals import SUMMED, recorded_totals

from .conftest import repl, sim_spec
from .test_costs_and_events import run_with_subcalls

CALL_TYPES = ("root.turn", "root.compacted")


batched_run = run_with_subcalls  # a batch of five sub-calls, then one more


def child_rlm_run(provider, write_doc, sink):
    doc = write_doc("book.txt", "Intro. " * 50 + "Chapter 2. The code is 42. " + "Outro. " * 50)
    top = [repl("r = rlm_query('Find the code', context=context[350:377])\nprint(r)"), 'FINAL_VAR("r")']
    provider.root_replies = [
        repl("sub = llm_query('Which code? ' + context)"),
        repl("FINAL('child says: ' + sub)"),
    ]
    return run(sim_spec(provider, [doc], root_script=top, max_depth=2), sink)


def is_call(event, kinds: dict) -> bool:
    return event.type in CALL_TYPES or (event.type == "subcall.finished" and kinds[event.data["node_id"]] == "llm")


def compared(totals: dict) -> dict:
    return {k: pytest.approx(totals[k], abs=1e-12) for k in (*SUMMED, "max_depth_reached")}


@pytest.mark.parametrize("scenario", [batched_run, child_rlm_run])
def test_a_stream_cut_anywhere_adds_up_to_the_engines_totals(provider, write_doc, sink, scenario):
    result = scenario(provider, write_doc, sink)
    assert result.status == "succeeded", result.failure_reason
    events = sink.events
    pairs = [(e.type, e.data) for e in events]
    kinds = {e.data["node_id"]: e.data["kind"] for e in events if e.type == "subcall.started"}
    # each call's event comes with the totals that count it, nothing between them
    calls = [i for i, e in enumerate(events) if is_call(e, kinds)]
    assert calls and all(events[i + 1].type == "cost.updated" for i in calls)
    # cut just before each totals event: what was recorded adds up to what the engine then reported
    cuts = [i for i, e in enumerate(events) if e.type in ("cost.updated", "run.finished")]
    for i in cuts:
        assert compared(recorded_totals(pairs[:i])) == {
            k: v for k, v in events[i].data["totals"].items() if k in (*SUMMED, "max_depth_reached")}, i
    assert recorded_totals(pairs) == events[-1].data["totals"]


def test_nothing_reported_yet_sums_every_recorded_call():
    turn = {"node_id": None, "depth": 0, "cost_usd": 0.1, "prompt_tokens": 10, "completion_tokens": 5, "attempts": 1}
    compacted = {"node_id": None, "depth": 0, "cost_usd": 0.25, "prompt_tokens": 20, "completion_tokens": 3,
                 "attempts": 2}
    started = {"node_id": "n1", "kind": "llm", "depth": 1}
    sub = {"node_id": "n1", "cost_usd": None, "prompt_tokens": 4, "completion_tokens": 1, "attempts": 1}
    totals = recorded_totals([("run.started", {}), ("root.turn", turn), ("root.compacted", compacted),
                              ("subcall.started", started), ("subcall.finished", sub)])
    assert (totals["cost_usd"], totals["cost_unknown_calls"], totals["prompt_tokens"]) == (0.35, 1, 34)
    assert (totals["iterations"], totals["root_calls"], totals["subcalls"], totals["max_depth_reached"]) == (1, 2, 1, 1)
    assert totals["attempts"] == 4 and totals["model_calls"] == 3
    assert recorded_totals([("run.started", {})])["cost_usd"] == 0.0
