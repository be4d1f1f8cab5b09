"""Sub-calls from the REPL: concurrency, recursion, ranges, errors."""

import time

from worker.engine import run

from .conftest import ROOT, SUB, repl, sim_spec


def overlap(requests) -> int:
    """The most requests the provider was serving at one moment."""
    edges = sorted([(r.received_at, 1) for r in requests] + [(r.finished_at, -1) for r in requests])
    current = peak = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def test_batched_subcalls_really_overlap(provider, write_doc, sink):
    # Long enough that all 12 are in flight together even when the first call's setup (litellm's
    # first request in a process) is slow on a busy machine.
    provider.latency_s = 1.0
    doc = write_doc("a.txt", "abc " * 1000)
    script = [repl("answers = llm_query_batched(['part ' + str(i) for i in range(12)])\nprint(answers)"),
              'FINAL_VAR("answers")']
    started = time.monotonic()
    result = run(sim_spec(provider, [doc], root_script=script, subcall_concurrency=16), sink)
    took = time.monotonic() - started
    assert result.status == "succeeded", result.failure_reason
    assert overlap(provider.requests) == 12
    assert took < 12 * 1.0 / 2
    assert result.final_answer == str([f"ECHO: part {i}" for i in range(12)])  # answers in prompt order
    starts = sink.of_type("subcall.started")
    assert len({e.data["batch_id"] for e in starts}) == 1
    assert sorted(e.data["batch_index"] for e in starts) == list(range(12))


def test_concurrency_cap_bounds_the_overlap(provider, write_doc, sink):
    provider.latency_s = 0.2
    doc = write_doc("a.txt", "abc")
    script = [repl("a = llm_query_batched(['p' + str(i) for i in range(9)])"), 'FINAL_VAR("a")']
    run(sim_spec(provider, [doc], root_script=script, subcall_concurrency=3), sink)
    assert overlap(provider.requests) == 3


def test_llm_query_is_told_its_depth_and_the_spend(provider, write_doc, sink):
    doc = write_doc("a.txt", "abc")
    script = [repl("r = llm_query('Summarise: ' + context)\nprint(r)"), 'FINAL_VAR("r")']
    result = run(sim_spec(provider, [doc], root_script=script), sink)
    assert result.final_answer == "ECHO: Summarise: abc"
    request = provider.requests[0]
    assert request.model == "gpt-4o-mini"
    assert "depth 1" in request.messages[0]["content"] and "spent $" in request.messages[0]["content"]
    started = sink.of_type("subcall.started")[0].data
    assert (started["kind"], started["depth"], started["parent_id"], started["model"]) == ("llm", 1, None, SUB)
    assert started["cell_id"] == sink.of_type("cell.started")[0].data["cell_id"]
    assert started["prompt"] == "Summarise: abc" and started["prompt_chars"] == 14


def test_depth_two_recursion_runs_a_child_rlm_with_its_own_repl(provider, write_doc, sink):
    text = "Intro. " * 50 + "Chapter 2. The code is 42. " + "Outro. " * 50
    doc = write_doc("book.txt", text)
    start = text.index("Chapter 2")
    top = [repl(f"part = context[{start}:{start + 27}]\nr = rlm_query('Find the code', context=part)\nprint(r)"),
           'FINAL_VAR("r")']
    provider.root_replies = [  # the child RLM's root, live through the provider
        repl("print(len(context))\nsub = llm_query('Which code? ' + context)"),
        repl("FINAL('child says: ' + sub)"),
    ]
    result = run(sim_spec(provider, [doc], root_script=top, max_depth=2), sink)
    assert result.status == "succeeded", result.failure_reason
    assert result.final_answer == "child says: ECHO: Which code? Chapter 2. The code is 42."
    assert result.max_depth_reached == 2
    rlm_node = next(e.data for e in sink.of_type("subcall.started") if e.data["kind"] == "rlm")
    llm_node = next(e.data for e in sink.of_type("subcall.started") if e.data["kind"] == "llm")
    assert (rlm_node["depth"], rlm_node["parent_id"]) == (1, None)
    # (its ranges come from the REPL's context_ranges: see test_promises.py for the mapping)
    assert (llm_node["depth"], llm_node["parent_id"]) == (2, rlm_node["node_id"])
    child_turns = [e.data for e in sink.of_type("root.turn") if e.data["node_id"] == rlm_node["node_id"]]
    assert [t["depth"] for t in child_turns] == [1, 1]
    child_cells = [e.data for e in sink.of_type("cell.started") if e.data["node_id"] == rlm_node["node_id"]]
    assert child_cells and all(c["depth"] == 1 for c in child_cells)
    assert llm_node["cell_id"] == child_cells[0]["cell_id"]
    rlm_done = next(e.data for e in sink.of_type("subcall.finished") if e.data["node_id"] == rlm_node["node_id"])
    child_cost = sum(t["cost_usd"] for t in child_turns) + next(
        e.data["cost_usd"] for e in sink.of_type("subcall.finished") if e.data["node_id"] == llm_node["node_id"])
    assert abs(rlm_done["cost_usd"] - child_cost) < 1e-12  # the child's spend rolls up into its node


def test_rlm_query_at_the_depth_limit_is_a_plain_subcall(provider, write_doc, sink):
    doc = write_doc("a.txt", "abc")
    script = [repl("r = rlm_query('Look at this', context='some text')"), 'FINAL_VAR("r")']
    result = run(sim_spec(provider, [doc], root_script=script, max_depth=1), sink)
    assert result.final_answer == "ECHO: Look at this"
    assert [e.data["kind"] for e in sink.of_type("subcall.started")] == ["llm"]
    assert "some text" in provider.requests[0].prompt


def test_a_failed_subcall_surfaces_in_the_repl_and_the_run_goes_on(provider, write_doc, sink):
    from worker.simulated import Fault

    provider.faults = [Fault("500", at=0, times=1), Fault("500", at=1), Fault("500", at=2)]
    doc = write_doc("a.txt", "abc")
    script = [repl("r = llm_query('hello')"), repl("print('recovered')"), "FINAL(ok)"]
    spec = sim_spec(provider, [doc], root_script=script)
    spec.model_options = {m: o.__class__(**{**o.__dict__, "max_retries": 2}) for m, o in spec.model_options.items()}
    result = run(spec, sink)
    assert result.status == "succeeded"
    assert "llm_query failed" in result.cells[0]["error"] and "3 attempts" in result.cells[0]["error"]
    done = sink.of_type("subcall.finished")[0].data
    assert done["attempts"] == 3 and "InternalServerError" in done["error"]


def test_one_failed_prompt_in_a_batch_comes_back_as_an_error_string(provider, write_doc, sink):
    from worker.simulated import Fault

    provider.faults = [Fault("500", when=lambda r: "bad" in r.prompt, times=99)]
    doc = write_doc("a.txt", "abc")
    script = [repl("a = llm_query_batched(['good', 'bad', 'fine'])"), 'FINAL_VAR("a")']
    spec = sim_spec(provider, [doc], root_script=script)
    spec.model_options = {m: o.__class__(**{**o.__dict__, "max_retries": 1}) for m, o in spec.model_options.items()}
    result = run(spec, sink)
    answers = eval(result.final_answer)  # noqa: S307 - our own repr of a list of str
    assert answers[0] == "ECHO: good" and answers[2] == "ECHO: fine"
    assert answers[1].startswith("ERROR:")


def test_a_prompt_larger_than_the_sub_models_window_is_refused_before_calling(provider, write_doc, sink):
    doc = write_doc("a.txt", "word " * 200_000)
    script = [repl("r = llm_query(context)"), repl("r = llm_query(context[:1000])"), 'FINAL_VAR("r")']
    result = run(sim_spec(provider, [doc], root_script=script), sink)  # gpt-4o-mini: 128,000 tokens
    assert "llm_query refused" in result.cells[0]["error"] and "Split it" in result.cells[0]["error"]
    assert len(provider.requests) == 1 and result.subcalls == 1


def test_llm_query_may_only_name_the_runs_models(provider, write_doc, sink):
    doc = write_doc("a.txt", "abc")
    script = [repl(
        "try:\n"
        "    llm_query('x', model='anthropic/claude-opus-4')\n"
        "except RuntimeError as e:\n"
        "    refusal = str(e)\n"
        "r = llm_query('y', model='openai/gpt-4o-mini')\n"
        "print(refusal)"
    ), 'FINAL_VAR("refusal")']
    spec = sim_spec(provider, [doc], root_script=script)
    spec.allowed_models = [ROOT, SUB]
    result = run(spec, sink)
    assert result.status == "succeeded", result.failure_reason
    assert "'anthropic/claude-opus-4' is not one of this run's models" in result.final_answer
    subcalls = [(r.model, r.messages[-1]["content"]) for r in provider.requests if r.messages[-1]["content"] in "xy"]
    assert subcalls == [("gpt-4o-mini", "y")]  # the refused call never left the host
