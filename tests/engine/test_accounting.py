"""Accounting: what iterations, attempts, latency and a child RLM's roll-up count, exactly."""

from worker.engine import run
from worker.simulated import Fault

from .conftest import repl, sim_spec

# iterations: completed top-level root turns ----------------------------------------------------

def test_a_run_whose_first_root_call_fails_has_no_iteration(provider, write_doc, sink):
    provider.faults = [Fault("400", at=0)]
    doc = write_doc("a.txt", "abc")
    result = run(sim_spec(provider, [doc]), sink)
    assert (result.status, result.stop_reason) == ("failed", "provider_error")
    assert sink.of_type("root.turn") == []
    assert result.iterations == 0
    assert sink.events[-1].data["totals"]["iterations"] == 0


def test_a_root_call_failing_later_counts_only_the_turns_that_happened(provider, write_doc, sink):
    provider.root_replies = [repl("print(1)"), repl("print(2)")]
    provider.faults = [Fault("400", at=2)]
    doc = write_doc("a.txt", "abc")
    result = run(sim_spec(provider, [doc]), sink)
    assert result.stop_reason == "provider_error"
    assert result.iterations == 2 == len(sink.of_type("root.turn"))


def test_a_root_script_that_runs_out_counts_only_its_turns(provider, write_doc, sink):
    doc = write_doc("a.txt", "x")
    result = run(sim_spec(provider, [doc], root_script=[repl("print(1)")]), sink)
    assert result.stop_reason == "no_final_answer"
    assert result.iterations == 1


def test_iterations_at_the_limit_count_the_forced_turn_and_max_iterations_still_caps(provider, write_doc, sink):
    doc = write_doc("a.txt", "abc")
    provider.root_replies = [repl(f"print({i})") for i in range(3)] + ["FINAL(best)"]
    result = run(sim_spec(provider, [doc], max_iterations=3), sink)
    assert (result.final_answer, result.forced_final, result.stop_reason) == ("best", True, "max_iterations")
    turns = [e.data for e in sink.of_type("root.turn")]
    assert [t["iteration"] for t in turns] == [1, 2, 3, 4] and [t["forced"] for t in turns] == [False] * 3 + [True]
    assert result.iterations == 4 == len(provider.requests)
    # every totals snapshot after a root turn already counts it
    for event in sink.events:
        if event.type == "cost.updated":
            done = sum(1 for e in sink.events if e.type == "root.turn" and e.seq < event.seq)
            assert event.data["totals"]["iterations"] == done
