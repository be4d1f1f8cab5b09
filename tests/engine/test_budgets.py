"""Each budget stops a run cleanly, with its stop_reason recorded."""

import time

from worker.engine import run
from worker.simulated import Fault

from .conftest import repl, sim_spec


def test_max_subcalls_stops_the_run_and_allows_a_last_answer(provider, write_doc, sink):
    doc = write_doc("a.txt", "abc")
    script = [repl("a = llm_query_batched(['p' + str(i) for i in range(10)])"), "FINAL(partial)"]
    result = run(sim_spec(provider, [doc], root_script=script, max_subcalls=4), sink)
    assert result.stop_reason == "max_subcalls"
    assert result.subcalls == 4 and len(provider.requests) == 4
    assert "sub-call" in result.cells[0]["error"]
    assert (result.status, result.final_answer, result.forced_final) == ("succeeded", "partial", True)


def test_max_cost_stops_the_run_without_more_calls(provider, write_doc, sink):
    doc = write_doc("a.txt", "abc")
    provider.root_replies = [repl("print(1)")] * 5
    result = run(sim_spec(provider, [doc], max_cost_usd=1e-9), sink)
    assert (result.status, result.stop_reason) == ("failed", "max_cost")
    assert len(provider.requests) == 0  # even the first root turn's worst case does not fit: never sent
    assert result.cost_usd == 0
    assert "cost limit" in result.failure_reason


def test_max_depth_zero_forbids_subcalls(provider, write_doc, sink):
    doc = write_doc("a.txt", "abc")
    script = [repl("r = llm_query('x')"), "FINAL(none)"]
    result = run(sim_spec(provider, [doc], root_script=script, max_depth=0), sink)
    assert result.stop_reason == "max_depth"
    assert provider.requests == []
    assert result.final_answer == "none" and result.forced_final


def test_max_wall_time_stops_a_slow_run(provider, write_doc, sink):
    provider.latency_s = 1.5
    doc = write_doc("a.txt", "abc")
    script = [repl("a = llm_query('slow')"), repl("b = llm_query('slower')"), "FINAL(x)"]
    started = time.monotonic()
    result = run(sim_spec(provider, [doc], root_script=script, max_wall_s=1.0), sink)
    assert (result.status, result.stop_reason) == ("failed", "max_wall_time")
    assert time.monotonic() - started < 4
    assert len(provider.requests) == 1



def test_a_provider_slower_than_the_time_left_cannot_hold_the_run_past_its_limit(provider, write_doc, sink):
    # The model's own timeout is 10 s, but the run has 1.5 s: the call waits no longer than that.
    provider.faults = [Fault(kind="slow", slow_s=20, when=lambda r: r.model == "gpt-4o-mini", times=99)]
    doc = write_doc("a.txt", "abc")
    script = [repl("a = llm_query('slow')"), "FINAL(x)"]
    started = time.monotonic()
    result = run(sim_spec(provider, [doc], root_script=script, max_wall_s=1.5), sink)
    assert (result.status, result.stop_reason) == ("failed", "max_wall_time")
    assert time.monotonic() - started < 5


def test_a_retry_after_beyond_the_time_left_fails_the_call_at_once(provider, write_doc, sink):
    provider.faults = [Fault(kind="429", retry_after=60, when=lambda r: r.model == "gpt-4o-mini")]
    doc = write_doc("a.txt", "abc")
    script = [repl("try:\n    llm_query('limited')\nexcept RuntimeError as e:\n    err = str(e)"), 'FINAL_VAR("err")']
    started = time.monotonic()
    result = run(sim_spec(provider, [doc], root_script=script, max_wall_s=20), sink)
    assert time.monotonic() - started < 10
    assert result.status == "succeeded", result.failure_reason
    assert "a retry in 60.0 s would pass the run's time limit" in result.final_answer
    assert sum(r.model == "gpt-4o-mini" for r in provider.requests) == 1

def test_max_wall_time_interrupts_a_cell_that_computes(provider, write_doc, sink):
    doc = write_doc("a.txt", "abc")
    script = [repl("n = 0\nwhile True:\n    n += 1"), "FINAL(x)"]
    started = time.monotonic()
    result = run(sim_spec(provider, [doc], root_script=script, max_wall_s=1.0, cell_timeout_s=30), sink)
    assert result.stop_reason == "max_wall_time"
    assert time.monotonic() - started < 10


def test_cancellation_is_noticed_during_a_cell(provider, write_doc, sink):
    provider.latency_s = 0.3
    doc = write_doc("a.txt", "abc")
    script = [repl("a = [llm_query('p' + str(i)) for i in range(20)]"), "FINAL(x)"]
    stop_at = time.monotonic() + 1.0
    result = run(sim_spec(provider, [doc], root_script=script), sink, should_stop=lambda: time.monotonic() > stop_at)
    assert (result.status, result.stop_reason) == ("cancelled", "cancelled")
    assert len(provider.requests) < 10
    assert sink.events[-1].data["status"] == "cancelled"


def test_a_cell_killed_for_its_time_limit_does_not_lose_the_run(provider, write_doc, sink):
    """The promise of docs/sandbox.md: the killed cell has no effect (variables as before it), the root is told, the run
    carries on to its answer."""
    doc = write_doc("a.txt", "abc")
    script = [repl("kept = 'before'"), repl("kept = 'changed'\nwhile True:\n    pass"),
              repl("answer = kept\nFINAL_VAR('answer')")]
    result = run(sim_spec(provider, [doc], root_script=script, cell_timeout_s=1.0), sink)
    assert (result.status, result.final_answer) == ("succeeded", "before")
    killed = [e.data for e in sink.events if e.type == "cell.finished" and e.data["killed"]]
    assert len(killed) == 1 and killed[0]["error"].startswith("TimeoutError")
    assert "variables are as they were before this cell" in killed[0]["state_note"]
