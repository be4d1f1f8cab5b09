"""Usage and cost from litellm's price table, rolled into totals; the event stream is complete."""

import json
import time

import pytest

from worker.engine import run
from worker.engine.llm import cost_usd
from worker.engine.runner import RunSpec

from .conftest import ROOT, SUB, repl, sim_options, sim_spec

litellm = pytest.importorskip("litellm")


def price(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    prompt_cost, completion_cost = litellm.cost_per_token(
        model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    return prompt_cost + completion_cost


def run_with_subcalls(provider, write_doc, sink):
    doc = write_doc("a.txt", "The code is 42. " * 100)
    provider.root_replies = [
        repl("a = llm_query_batched([context[i:i + 200] for i in range(0, 1000, 200)])\nprint(len(a))"),
        repl("b = llm_query('Check: ' + a[0])\nprint(b)"),
        "FINAL(42)",
    ]
    return run(sim_spec(provider, [doc]), sink)


def test_every_cost_is_litellms_price_for_the_usage_returned(provider, write_doc, sink):
    result = run_with_subcalls(provider, write_doc, sink)
    assert result.status == "succeeded"
    turns = sink.of_type("root.turn")
    subs = sink.of_type("subcall.finished")
    assert len(turns) == 3 and len(subs) == 6
    for event in turns:
        d = event.data
        assert d["model"] == ROOT and d["prompt_tokens"] > 0
        assert d["cost_usd"] == pytest.approx(price("gpt-4o", d["prompt_tokens"], d["completion_tokens"]), rel=1e-12)
    for event in subs:
        d = event.data
        assert d["cost_usd"] == pytest.approx(price("gpt-4o-mini", d["prompt_tokens"], d["completion_tokens"]),
                                              rel=1e-12)
    # usage is what the provider returned, request by request
    usage = sorted((r.body["model"], len(r.reply)) for r in provider.requests)
    assert len(usage) == 9
    total = sum(e.data["cost_usd"] for e in turns) + sum(e.data["cost_usd"] for e in subs)
    assert total > 0
    assert result.cost_usd == pytest.approx(total, rel=1e-9)
    assert sink.events[-1].data["totals"]["cost_usd"] == pytest.approx(total, rel=1e-9)
    assert result.prompt_tokens == sum(e.data["prompt_tokens"] for e in turns + subs)


def test_event_stream_is_complete_and_ordered(provider, write_doc, sink):
    run_with_subcalls(provider, write_doc, sink)
    events = sink.events
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == "run.started" and events[-1].type == "run.finished"
    assert [e.type for e in events].count("run.finished") == 1
    assert all(a.ts <= b.ts for a, b in zip(events, events[1:], strict=False))
    for kind in ("cell", "subcall"):
        key = "cell_id" if kind == "cell" else "node_id"
        started = [e.data[key] for e in events if e.type == f"{kind}.started"]
        done = [e.data[key] for e in events if e.type == f"{kind}.finished"]
        assert sorted(started) == sorted(done) and len(set(started)) == len(started)
        for e in events:
            if e.type == f"{kind}.finished":
                assert started.index(e.data[key]) >= 0
                start_seq = next(s.seq for s in events if s.type == f"{kind}.started" and s.data[key] == e.data[key])
                assert start_seq < e.seq
    totals = [e.data["totals"] for e in events if e.type == "cost.updated"]
    assert [t["cost_usd"] for t in totals] == sorted(t["cost_usd"] for t in totals)
    assert totals[-1]["subcalls"] == 6 and totals[-1]["iterations"] == 3
    started = events[0].data
    assert started["root_model"] == ROOT and started["sub_model"] == SUB and started["offline"] is False
    assert started["documents"] == [{"name": "a.txt", "chars": 1600}]
    json.dumps([e.to_dict() for e in events])


def test_subcall_ranges_say_which_part_of_which_document_a_prompt_carried(provider, write_doc, sink):
    docs = [write_doc("a.txt", "alpha " * 2000), write_doc("b.txt", "".join(f"line {i}\n" for i in range(2000)))]
    script = [repl("r = llm_query('Read: ' + context[1][500:3500])"), 'FINAL_VAR("r")']
    run(sim_spec(provider, docs, root_script=script), sink)
    assert sink.of_type("subcall.started")[0].data["ranges"] == [{"doc": 1, "start": 500, "end": 3500}]


def test_a_model_without_a_price_has_unknown_cost_not_zero(provider, write_doc, sink):
    doc = write_doc("a.txt", "abc")
    unpriced = "openai/house-model-without-a-price"
    spec = RunSpec(question="q", documents=[doc], root_model=ROOT, sub_model=unpriced,
                   model_options=sim_options(provider, ROOT, unpriced), allow_unpriced=True,
                   root_script=[repl("r = llm_query('x')"), 'FINAL_VAR("r")'])
    result = run(spec, sink)
    assert result.status == "succeeded"
    assert sink.of_type("subcall.finished")[0].data["cost_usd"] is None
    assert result.cost_usd is None
    assert sink.events[-1].data["totals"]["cost_unknown_calls"] == 1
    assert cost_usd(unpriced, 10, 10) is None


def test_offline_model_is_free_and_says_so(write_doc, sink):
    doc = write_doc("a.txt", "The code is 42.")
    result = run(RunSpec(question="What is the code?", documents=[doc]), sink)
    assert result.cost_usd == 0.0
    assert sink.events[0].data["offline"] is True
    assert all(e.data["cost_usd"] == 0.0 for e in sink.of_type("root.turn"))


def test_unknown_price_is_none_not_zero(provider):
    from worker.engine.llm import LLMClient

    model = "openai/rlmweb-unpriced-model"
    reply = LLMClient(sim_options(provider, model)).complete(model, [{"role": "user", "content": "hi"}])
    assert reply.prompt_tokens > 0 and reply.cost_usd is None


def test_litellm_success_logging_still_reaches_a_configured_callback(provider, monkeypatch):
    """rlmweb skips litellm's own success logging only while nothing would read it."""
    from litellm.integrations.custom_logger import CustomLogger

    from worker.engine.llm import LLMClient

    seen = []

    class Recorder(CustomLogger):
        def log_success_event(self, kwargs, response_obj, start_time, end_time):
            seen.append(kwargs.get("model"))

    monkeypatch.setattr(litellm, "callbacks", [Recorder()])
    reply = LLMClient(sim_options(provider, SUB)).complete(SUB, [{"role": "user", "content": "hi"}])
    assert reply.cost_usd == pytest.approx(price("gpt-4o-mini", reply.prompt_tokens, reply.completion_tokens),
                                           rel=1e-12)
    for _ in range(100):  # litellm logs on a background thread
        if seen:
            break
        time.sleep(0.05)
    assert seen
