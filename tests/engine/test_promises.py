"""Issue #21: the engine keeps its promises when the root model's code is hostile.

Every attack goes through the simulated provider over litellm's real HTTP path; its request log
is the truth the run's records are compared with.
"""

import contextlib
import threading
import time

import pytest

from worker.engine import ModelOptions, run
from worker.engine.events import EventEmitter
from worker.engine.runner import RLM, CallRefused, RunState
from worker.sandbox import SandboxCallError
from worker.simulated import Fault

from .conftest import KEY_ENV, ROOT, SUB, filler, repl, sim_options, sim_spec

litellm = pytest.importorskip("litellm")


def billed(provider, model: str) -> float:
    """What the provider's log says calls to `model` cost, at litellm's prices."""
    total = 0.0
    for r in provider.requests:
        if r.status == 200 and r.model == model.split("/", 1)[1]:
            p, c = litellm.cost_per_token(model=model, prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens)
            total += p + c
    return total


# 1. host-side work chosen by REPL code is bounded, admitted first, and never a document search ---------

def test_rlm_query_with_thousands_of_context_strings_is_refused_before_any_work(provider, write_doc, sink):
    doc = write_doc("big.txt", filler(2_000_000))
    script = [repl("parts = [context[i * 50:(i + 1) * 50] + str(i) for i in range(20000)]\n"
                   "try:\n    rlm_query('find it', context=parts)\nexcept RuntimeError as e:\n    err = str(e)"),
              'FINAL_VAR("err")']
    started = time.monotonic()
    result = run(sim_spec(provider, [doc], root_script=script, max_depth=1), sink)
    assert time.monotonic() - started < 20
    assert result.status == "succeeded", result.failure_reason
    assert "context has 20,000 strings; at most 1,000" in result.final_answer
    assert provider.requests == [] and result.subcalls == 0


def test_rlm_query_context_over_the_size_cap_is_refused(provider, write_doc, sink):
    doc = write_doc("a.txt", filler(5000))
    script = [repl("try:\n    rlm_query('q', context=['x' * 600, 'y' * 600])\nexcept RuntimeError as e:\n    err = str(e)"),
              'FINAL_VAR("err")']
    spec = sim_spec(provider, [doc], root_script=script, max_depth=2)
    spec.limits.max_child_context_chars = 1000
    result = run(spec, sink)
    assert "context has 1,200 characters; at most 1,000" in result.final_answer
    assert provider.requests == [] and not sink.of_type("subcall.started")


def test_rlm_query_ranges_come_from_the_repl_not_from_a_host_search(provider, write_doc, sink):
    text = filler(3000)
    doc = write_doc("a.txt", text)
    spec = sim_spec(provider, [doc], max_depth=1)
    state = RunState(spec, EventEmitter(sink), lambda: False)
    # a child-like RLM whose document 0 sits at offset 100 of top-level document 0
    rlm = RLM(state, 0, None, "q", [("a.txt", doc.path)], [(0, 100)])
    piece = text[200:260]
    try:
        rlm.handle("rlm_query", {"prompt": "p", "context": [piece, "not in any document", piece],
                                 "context_ranges": [{"doc": 0, "start": 200, "end": 260},
                                                    {"doc": 0, "start": "0", "end": 19},  # garbage: ignored
                                                    None]})
        # the text is in the document, but without REPL ranges the host does not go looking for it
        rlm.handle("rlm_query", {"prompt": "p2", "context": piece})
        rlm.handle("rlm_query", {"prompt": "p3", "context": [piece], "context_ranges": [{"doc": 7, "start": 0,
                                                                                          "end": 60}]})
    finally:
        state.close()
    ranges = [e.data["ranges"] for e in sink.of_type("subcall.started")]
    assert ranges == [[{"doc": 0, "start": 300, "end": 360}], [], []]


# 2. cancel and the wall limit abort calls in flight ---------------------------------------------------

def test_cancel_aborts_a_sixty_second_subcall_within_two_seconds(provider, write_doc, sink):
    provider.latency_for = lambda r: 60 if r.model == "gpt-4o-mini" else 0
    doc = write_doc("a.txt", filler(2000))
    script = [repl("r = llm_query('slow one: ' + context[:500])"), "FINAL(x)"]
    cancel_at = time.monotonic() + 1.0
    spec = sim_spec(provider, [doc], root_script=script)
    spec.model_options = sim_options(provider, timeout_s=300)
    result = run(spec, sink, should_stop=lambda: time.monotonic() > cancel_at)
    assert time.monotonic() - cancel_at < 2.0
    assert (result.status, result.stop_reason) == ("cancelled", "cancelled")
    done = sink.of_type("subcall.finished")[0].data
    assert done["error"] and done["incomplete_attempts"] == 1 and done["prompt_tokens"] > 100
    totals = sink.events[-1].data["totals"]
    assert totals["incomplete_calls"] == 1 and totals["llm_subcalls"] == 1 == len(provider.requests)
    assert totals["prompt_tokens"] == done["prompt_tokens"] and totals["cost_usd"] > 0  # the prompt part


def test_the_wall_limit_aborts_a_call_in_flight(provider, write_doc, sink):
    provider.latency_for = lambda r: 60
    doc = write_doc("a.txt", "abc")
    script = [repl("r = llm_query_batched(['a', 'b', 'c'])"), "FINAL(x)"]
    spec = sim_spec(provider, [doc], root_script=script, max_wall_s=1.0)
    spec.model_options = sim_options(provider, timeout_s=300)
    started = time.monotonic()
    result = run(spec, sink)
    assert time.monotonic() - started < 3.0
    assert result.stop_reason == "max_wall_time"
    assert sink.events[-1].data["totals"]["llm_subcalls"] == 3 == len(provider.requests)


# 3. the cost cap holds with calls in flight -------------------------------------------------------------

def test_a_batch_of_expensive_calls_never_spends_past_the_cap(provider, write_doc, sink):
    provider.usage_for = lambda r: (max(1, len(r.prompt) // 4), 1_000_000)  # every answer as long as allowed
    provider.latency_for = lambda r: 0.2
    provider.responder = lambda r: "a long answer"
    doc = write_doc("a.txt", filler(50_000))
    script = [repl("a = llm_query_batched([context[i * 200:(i + 1) * 200] for i in range(200)], model='openai/gpt-4o')\n"
                   "print(sum(x.startswith('ERROR') for x in a))"), "FINAL(done)"]
    result = run(sim_spec(provider, [doc], root_script=script, max_cost_usd=0.5), sink)
    assert provider.requests and all(r.max_tokens == 8192 for r in provider.requests)
    assert billed(provider, ROOT) <= 0.5 and result.cost_usd <= 0.5
    assert result.cost_usd == pytest.approx(billed(provider, ROOT), rel=1e-9)
    assert result.subcalls == len(provider.requests) < 200  # the rest were refused, never sent
    assert int(result.cells[0]["stdout"]) == 200 - len(provider.requests)  # each refusal came back as ERROR


def test_the_root_turn_is_admitted_against_the_cap_too(provider, write_doc, sink):
    provider.usage_for = lambda r: (max(1, len(r.system + r.prompt) // 4), 1_000_000)
    provider.root_replies = [repl("print(1)")] * 20
    doc = write_doc("a.txt", "abc")
    result = run(sim_spec(provider, [doc], max_cost_usd=0.3), sink)
    assert result.stop_reason == "max_cost"
    assert billed(provider, ROOT) <= 0.3 and result.cost_usd <= 0.3
    assert len(provider.requests) == result.iterations == 3  # 3 × $0.08 fit; a 4th worst case does not


# 4. calls of unknown price ---------------------------------------------------------------------------------

HOUSE = "openai/house-model-without-a-price"


def house_spec(provider, doc, script, **limits):
    spec = sim_spec(provider, [doc], root_script=script, **limits)
    spec.model_options = sim_options(provider, ROOT, SUB, HOUSE)
    spec.allowed_models = [ROOT, SUB, HOUSE]
    return spec


def test_an_unpriced_model_is_refused_under_a_cost_cap(provider, write_doc, sink):
    doc = write_doc("a.txt", "abc")
    script = [repl(f"a = llm_query_batched(['x' * 1000] * 100, model='{HOUSE}')\nprint(a[0])"), "FINAL(x)"]
    result = run(house_spec(provider, doc, script, max_cost_usd=0.001), sink)
    assert provider.requests == [] and result.subcalls == 0
    assert "has no known price" in result.cells[0]["stdout"]


def test_an_unpriced_model_runs_when_allowed_and_its_spend_shows_as_unknown(provider, write_doc, sink):
    doc = write_doc("a.txt", "abc")
    script = [repl(f"a = llm_query_batched(['x' * 1000] * 5, model='{HOUSE}')"), "FINAL(x)"]
    spec = house_spec(provider, doc, script, max_cost_usd=0.001)
    spec.allow_unpriced = True
    result = run(spec, sink)
    totals = sink.events[-1].data["totals"]
    assert len(provider.requests) == 5 == totals["cost_unknown_calls"] and result.cost_usd is None
    assert totals["prompt_tokens"] >= 5 * 250  # counted by tokens


def test_an_operator_price_makes_a_model_known_and_capped(provider, write_doc, sink):
    provider.usage_for = lambda r: (100, 1_000_000)
    doc = write_doc("a.txt", "abc")
    script = [repl(f"a = llm_query_batched(['q'] * 50, model='{HOUSE}')"), "FINAL(x)"]
    spec = house_spec(provider, doc, script, max_cost_usd=0.01)
    spec.model_options[HOUSE] = ModelOptions(api_base=provider.base_url, api_key_env=KEY_ENV,
                                             input_cost_per_token=1e-6, output_cost_per_token=1e-6,
                                             max_output_tokens=1000)
    result = run(spec, sink)
    assert all(r.max_tokens == 1000 for r in provider.requests)
    assert result.cost_usd == pytest.approx(len(provider.requests) * 1100e-6) and result.cost_usd <= 0.01
    assert 0 < len(provider.requests) < 50


# 5. lone surrogates -------------------------------------------------------------------------------------

def test_a_lone_surrogate_in_output_or_a_prompt_is_replaced_not_fatal(provider, write_doc, sink):
    doc = write_doc("a.txt", "abc")
    script = [repl('print("A\\ud800B")\nr = llm_query("X\\udfffY")'), 'FINAL_VAR("r")']
    result = run(sim_spec(provider, [doc], root_script=script), sink)
    assert result.status == "succeeded", result.failure_reason
    assert "A\ufffdB" in sink.of_type("cell.finished")[0].data["stdout"]
    assert len(provider.requests) == 1 and provider.requests[0].prompt == "X\ufffdY"  # sent once, no retries
    assert result.final_answer == "ECHO: X\ufffdY"
    for event in sink.events:
        str(event.data).encode("utf-8")


# 6. one budget for every model call below the root ---------------------------------------------------------

def test_max_subcalls_counts_a_child_rlms_root_turns(provider, write_doc, sink):
    provider.root_replies = [repl("r = llm_query('more')\nprint(r)")] * 60
    doc = write_doc("a.txt", filler(3000))
    script = [repl("r = rlm_query('dig', context=context[:500])"), "FINAL(best effort)"]
    result = run(sim_spec(provider, [doc], root_script=script, max_subcalls=1, max_depth=2), sink)
    assert len(provider.requests) == 1 == result.subcalls  # the child's first root turn, then nothing
    totals = sink.events[-1].data["totals"]
    assert (totals["child_root_calls"], totals["llm_subcalls"], totals["root_calls"]) == (1, 0, 0)
    assert result.stop_reason == "max_subcalls" and result.final_answer == "best effort"


# 7. timed-out attempts are recorded ----------------------------------------------------------------------

def test_a_timed_out_attempt_records_its_prompt_tokens_and_an_unknown_completion(provider, write_doc, sink):
    provider.faults = [Fault("slow", slow_s=5, when=lambda r: r.model == "gpt-4o-mini")]
    doc = write_doc("a.txt", filler(4000))
    script = [repl("r = llm_query('Summarise: ' + context[:2000])"), 'FINAL_VAR("r")']
    spec = sim_spec(provider, [doc], root_script=script)
    spec.model_options = sim_options(provider, timeout_s=1, max_retries=1)
    result = run(spec, sink)
    assert result.status == "succeeded", result.failure_reason
    done = sink.of_type("subcall.finished")[0].data
    assert done["attempts"] == 2 == len(provider.requests) and done["incomplete_attempts"] == 1
    answered = provider.requests[1]
    assert done["prompt_tokens"] > answered.prompt_tokens + 300  # the timed-out attempt's prompt is counted
    assert done["cost_usd"] > litellm.cost_per_token(model=SUB, prompt_tokens=answered.prompt_tokens,
                                                     completion_tokens=answered.completion_tokens)[0]
    assert sink.events[-1].data["totals"]["incomplete_calls"] == 1


# 8. a prompt cap when the window is unknown ---------------------------------------------------------------

def test_without_a_known_window_a_huge_prompt_is_refused(provider, write_doc, sink):
    doc = write_doc("a.txt", filler(30_000))
    script = [repl(f"try:\n    llm_query(context, model='{HOUSE}')\nexcept RuntimeError as e:\n    err = str(e)"),
              'FINAL_VAR("err")']
    spec = house_spec(provider, doc, script)
    spec.allow_unpriced = True
    spec.limits.max_prompt_chars = 20_000
    result = run(spec, sink)
    assert "RLMWEB_MAX_PROMPT_CHARS" in result.final_answer and "30,000 characters" in result.final_answer
    assert provider.requests == []


def test_concurrent_calls_never_overshoot_the_cap_from_many_threads(provider, write_doc, sink):
    """admit_call from many threads at once: the reservations are taken under one lock."""
    spec = sim_spec(provider, [write_doc("a.txt", "abc")], max_cost_usd=0.05)
    state = RunState(spec, EventEmitter(sink), lambda: False)
    admitted = []
    barrier = threading.Barrier(16)

    def grab() -> None:
        barrier.wait()
        with contextlib.suppress(CallRefused):
            admitted.append(state.admit_call("sub", 1, SUB, [{"role": "user", "content": "x" * 100}]))

    threads = [threading.Thread(target=grab) for _ in range(16)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        worst = admitted[0].worst_usd
        assert len(admitted) == int(0.05 // worst) and state.reserved_usd <= 0.05
    finally:
        state.close()


def test_garbage_from_the_repl_channel_is_refused_or_ignored_before_any_call(provider, write_doc, sink):
    doc = write_doc("a.txt", filler(3000))
    spec = sim_spec(provider, [doc])
    spec.limits.max_batch_prompts = 50
    state = RunState(spec, EventEmitter(sink), lambda: False)
    rlm = RLM(state, 0, None, "q", [("a.txt", doc.path)], [(0, 0)])
    try:
        with pytest.raises(SandboxCallError, match="51 prompts; at most 50"):
            rlm.handle("llm_query_batched", {"prompts": ["p"] * 51})
        with pytest.raises(SandboxCallError, match="expected a str"):
            rlm.handle("llm_query", {"prompt": {"not": "text"}})
        rlm.handle("llm_query", {"prompt": "p", "ranges": [{"doc": 0, "start": 5, "end": 9}, {"doc": True, "start": 0,
                   "end": 1}, {"doc": 0, "start": "9" * 5000, "end": 1}, "junk", {"doc": 3, "start": 0, "end": 1}]})
        rlm.handle("llm_query", {"prompt": "p", "ranges": "not a list"})
    finally:
        state.close()
    assert [e.data["ranges"] for e in sink.of_type("subcall.started")] == [[{"doc": 0, "start": 5, "end": 9}], []]
    assert len(provider.requests) == 2


def test_a_call_that_cannot_fit_with_nothing_in_flight_stops_the_run_at_the_cap(provider, write_doc, sink):
    doc = write_doc("a.txt", "abc")
    script = [repl("a = llm_query('hello')"), repl("b = llm_query('again')"), "FINAL(x)"]
    result = run(sim_spec(provider, [doc], root_script=script, max_cost_usd=1e-6), sink)
    assert (result.status, result.stop_reason) == ("failed", "max_cost")
    assert "refused because its worst case" in result.failure_reason
    assert provider.requests == [] and result.cost_usd == 0 and len(result.cells) == 1
