"""Accounting: what iterations, attempts, latency and a child RLM's roll-up count, exactly."""

from worker.engine import run
from worker.simulated import Fault

from .conftest import ROOT, repl, sim_spec

RETRY_AFTER_S = 0.5

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


# attempts and latency: the whole call, retries and waits included ---------------------------------

def test_root_turn_carries_its_attempts_and_the_whole_calls_latency(provider, write_doc, sink):
    provider.root_replies = [repl("print(1)"), "FINAL(1)"]
    provider.faults = [Fault("429", at=0, retry_after=RETRY_AFTER_S)]
    doc = write_doc("a.txt", "abc")
    result = run(sim_spec(provider, [doc]), sink)
    assert result.final_answer == "1"
    first, second = (e.data for e in sink.of_type("root.turn"))
    assert (first["attempts"], second["attempts"]) == (2, 1)
    assert first["latency_s"] >= RETRY_AFTER_S > second["latency_s"]
    assert result.iterations == 2


def test_scripted_and_direct_root_turns_carry_attempts(provider, write_doc, sink):
    doc = write_doc("a.txt", "abc")
    run(sim_spec(provider, [doc], root_script=["FINAL(1)"]), sink)
    assert sink.of_type("root.turn")[0].data["attempts"] == 0  # replayed, never sent to a provider
    provider.root_replies = ["42"]
    provider.faults = [Fault("500", at=0)]
    direct = run(sim_spec(provider, [doc], mode="direct"), sink)
    assert direct.iterations == 1
    turn = sink.of_type("root.turn")[-1].data
    assert turn["attempts"] == 2 and turn["model"] == ROOT


def test_subcall_latency_covers_retries_and_the_wait_between_them(provider, write_doc, sink):
    provider.faults = [Fault("429", at=0, retry_after=RETRY_AFTER_S)]
    doc = write_doc("a.txt", "abc")
    run(sim_spec(provider, [doc], root_script=[repl("r = llm_query('x')"), 'FINAL_VAR("r")']), sink)
    done = sink.of_type("subcall.finished")[0].data
    assert done["attempts"] == 2
    assert done["latency_s"] >= RETRY_AFTER_S
    first, second = provider.requests
    assert done["latency_s"] >= second.finished_at - first.received_at - 0.05


def test_a_failed_subcalls_latency_covers_all_its_attempts(provider, write_doc, sink):
    provider.faults = [Fault("429", when=lambda r: True, times=99, retry_after=0.2)]
    doc = write_doc("a.txt", "abc")
    spec = sim_spec(provider, [doc], root_script=[repl("r = llm_query('x')"), "FINAL(no)"])
    spec.model_options = {m: o.__class__(**{**o.__dict__, "max_retries": 2}) for m, o in spec.model_options.items()}
    run(spec, sink)
    done = sink.of_type("subcall.finished")[0].data
    assert done["attempts"] == 3 and done["error"] and done["latency_s"] >= 0.4
