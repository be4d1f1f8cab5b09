"""Accounting: what iterations, attempts, latency and a child RLM's roll-up count, exactly."""

import threading

import pytest

from worker.engine import run
from worker.engine.events import EventEmitter
from worker.engine.runner import RLM, RunState
from worker.simulated import Fault

from .conftest import ROOT, repl, sim_spec

RETRY_AFTER_S = 0.5


def by_node(sink, type_: str, node_id: str) -> dict:
    return next(e.data for e in sink.of_type(type_) if e.data["node_id"] == node_id)

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



def test_each_root_turn_records_what_it_sent_that_the_previous_did_not(provider, write_doc, sink):
    provider.root_replies = [repl("print('seen: ' + context[:3])"), "FINAL(1)"]
    doc = write_doc("a.txt", "abc")
    run(sim_spec(provider, [doc], question="What is it?"), sink)
    first, second = (e.data["input"] for e in sink.of_type("root.turn"))
    sent = provider.requests[0].messages
    assert [m["role"] for m in first] == ["system", "user"]
    assert [m["content"] for m in first] == [m["content"] for m in sent]  # exactly what the provider got
    assert "What is it?" in first[1]["content"] and first[1]["chars"] == len(sent[1]["content"])
    assert [m["role"] for m in second] == ["user"] and "seen: abc" in second[0]["content"]
    assert provider.requests[1].messages[-1]["content"] == second[0]["content"]

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


# a child RLM's roll-up: its own subtree, nothing else ------------------------------------------------

def child_root(request) -> str:
    """The root model of each child RLM, told apart by its question; sub-calls echo."""
    first_user = next(m["content"] for m in request.messages if m["role"] == "user")
    turn = sum(1 for m in request.messages if m["role"] == "assistant")
    if "CHEAP" in first_user:
        return [repl("s = llm_query('short')"), "FINAL(cheap done)"][turn]
    # the expensive child: a long sub-call prompt, then a nested child RLM, then its answer
    if "EXPENSIVE" in first_user:
        return [repl("s = llm_query('long ' + 'word ' * 4000)"),
                repl("g = rlm_query('GRANDCHILD', context='grandchild context text')"),
                "FINAL(expensive done)"][turn]
    return "FINAL(grandchild done)"


def responder(request) -> str:
    if request.model == "gpt-4o":
        return child_root(request)
    return "ECHO"


def own_calls(sink, node_id: str) -> list[dict]:
    """The model calls a child RLM made itself: its root turns and its plain sub-calls."""
    turns = [e.data for e in sink.of_type("root.turn") if e.data["node_id"] == node_id]
    llm = {e.data["node_id"] for e in sink.of_type("subcall.started")
           if e.data["parent_id"] == node_id and e.data["kind"] == "llm"}
    return turns + [e.data for e in sink.of_type("subcall.finished") if e.data["node_id"] in llm]


def subtree(sink, node_id: str) -> list[dict]:
    calls = own_calls(sink, node_id)
    for e in sink.of_type("subcall.started"):
        if e.data["parent_id"] == node_id and e.data["kind"] == "rlm":
            calls += subtree(sink, e.data["node_id"])
    return calls


def test_concurrent_children_are_each_charged_only_their_own_subtree(provider, write_doc, sink):
    """Two child RLMs at once (the sandbox's handler, called from two threads): each one's
    subcall.finished carries exactly the sum of its own subtree's calls, not what the other
    spent meanwhile."""
    provider.responder = responder
    provider.latency_s = 0.15
    doc = write_doc("a.txt", "abc")
    spec = sim_spec(provider, [doc], max_depth=3)
    state = RunState(spec, EventEmitter(sink), lambda: False)
    top = RLM(state, 0, None, spec.question, [("a.txt", doc.path)], [(0, 0)])
    answers: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def ask(name: str) -> None:
        barrier.wait()
        answers[name] = top.handle("rlm_query", {"prompt": name, "context": f"{name} context"})

    threads = [threading.Thread(target=ask, args=(name,)) for name in ("CHEAP", "EXPENSIVE")]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        state.close()
    assert answers == {"CHEAP": "cheap done", "EXPENSIVE": "expensive done"}

    children = {e.data["prompt"]: e.data["node_id"] for e in sink.of_type("subcall.started")
                if e.data["kind"] == "rlm"}
    assert set(children) == {"CHEAP", "EXPENSIVE", "GRANDCHILD"}
    # they really overlapped: each child's first root request came before the other's last reply
    spans = {}
    for name in ("CHEAP", "EXPENSIVE"):
        mine = [r for r in provider.requests if r.model == "gpt-4o" and name in r.messages[1]["content"]]
        spans[name] = (mine[0].received_at, mine[-1].finished_at)
    assert spans["CHEAP"][0] < spans["EXPENSIVE"][1] and spans["EXPENSIVE"][0] < spans["CHEAP"][1]

    rolled = {}
    for name, node_id in children.items():
        done = by_node(sink, "subcall.finished", node_id)
        calls = subtree(sink, node_id)
        assert done["error"] is None
        assert done["cost_usd"] == pytest.approx(sum(c["cost_usd"] for c in calls), rel=1e-9, abs=1e-15)
        assert done["prompt_tokens"] == sum(c["prompt_tokens"] for c in calls)
        assert done["completion_tokens"] == sum(c["completion_tokens"] for c in calls)
        assert done["attempts"] == sum(c["attempts"] for c in calls)
        rolled[name] = done
    assert rolled["EXPENSIVE"]["cost_usd"] > 2 * rolled["CHEAP"]["cost_usd"] > 0
    assert rolled["CHEAP"]["attempts"] == 3  # two root turns and one sub-call, no retries
    # the grandchild rolls up into the expensive child only, and nothing is counted twice
    totals = state.totals()
    assert totals["cost_usd"] == pytest.approx(rolled["CHEAP"]["cost_usd"] + rolled["EXPENSIVE"]["cost_usd"],
                                               rel=1e-9)
    assert totals["prompt_tokens"] == rolled["CHEAP"]["prompt_tokens"] + rolled["EXPENSIVE"]["prompt_tokens"]
    assert totals["iterations"] == 0  # only the top-level root's turns are iterations


def test_a_childs_node_counts_the_retries_and_failed_calls_of_its_subtree(provider, write_doc, sink):
    provider.faults = [Fault("429", when=lambda r: r.prompt == "retried", retry_after=0.1),
                       Fault("400", when=lambda r: r.prompt == "refused")]
    provider.root_replies = [  # the child RLM's root
        repl("a = llm_query('retried')\ntry:\n    llm_query('refused')\nexcept RuntimeError:\n    pass"),
        "FINAL(child done)",
    ]
    doc = write_doc("a.txt", "abc")
    script = [repl("r = rlm_query('Ask twice', context='some text')"), 'FINAL_VAR("r")']
    result = run(sim_spec(provider, [doc], root_script=script, max_depth=2), sink)
    assert result.final_answer == "child done"
    node = next(e.data["node_id"] for e in sink.of_type("subcall.started") if e.data["kind"] == "rlm")
    done = by_node(sink, "subcall.finished", node)
    calls = subtree(sink, node)
    assert sorted(c["attempts"] for c in calls) == [1, 1, 1, 2]  # two root turns, one retried, one refused
    assert done["attempts"] == 5 == len(provider.requests)
    assert done["cost_usd"] == pytest.approx(result.cost_usd, rel=1e-9)  # the child made every priced call
    assert done["prompt_tokens"] == result.prompt_tokens
