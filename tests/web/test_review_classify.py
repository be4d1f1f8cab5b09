"""The classifier's rules, one test (or a few) per rule, on synthetic trajectories.

Pure functions over event dicts: no database. The same classes and patterns produced by real engine
runs through the simulated provider are in test_review_engine.py.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.review import classify as c
from apps.review.classify import RunFacts, classify
from tests.review.trajectories import Trajectory, succeeded


def outcome(t: Trajectory, facts: RunFacts | None = None) -> str:
    return classify(t.events, facts).outcome


def patterns(t: Trajectory) -> list[str]:
    return classify(t.events).patterns


# outcomes -----------------------------------------------------------------------------------------

def test_succeeded():
    result = classify(succeeded().events)
    assert (result.outcome, result.patterns) == ("succeeded", [])


def test_succeeded_forced_when_the_answer_came_at_the_iteration_limit():
    t = Trajectory().turn("```repl\nprint(1)\n```").cell(stdout="1").turn("It is 1", forced=True).answer("1", "forced")
    t.finish(stop_reason="max_iterations", forced_final=True)
    assert outcome(t) == "succeeded_forced"


def test_cancelled():
    t = Trajectory().turn("```repl\nprint(1)\n```").cell(stdout="1").finish("cancelled", "cancelled", "Cancelled.")
    assert outcome(t) == "cancelled"


def test_cancelled_before_it_started_has_no_totals():
    t = Trajectory().finish("cancelled", "cancelled", "Cancelled before it started.", totals=False)
    assert outcome(t) == "cancelled"


def test_worker_lost():
    t = Trajectory().turn("```repl\nprint(1)\n```").cell(stdout="1")
    t.finish("failed", "worker_lost", "Worker lost: the worker stopped responding.", totals=False)
    assert outcome(t) == "worker_lost"


def test_worker_lost_from_the_run_fields_when_events_lack_a_stop_reason():
    t = Trajectory().turn("```repl\nprint(1)\n```")
    assert outcome(t, RunFacts(status="failed", stop_reason="worker_lost")) == "worker_lost"


def test_provider_error():
    t = Trajectory().finish("failed", "provider_error", "The root model failed: 500")
    assert outcome(t) == "provider_error"


@pytest.mark.parametrize("stop, expected", [
    ("max_cost", "budget_exceeded_cost"),
    ("max_iterations", "budget_exceeded_iterations"),
    ("max_depth", "budget_exceeded_depth"),
    ("max_subcalls", "budget_exceeded_subcalls"),
    ("max_wall_time", "budget_exceeded_time"),
])
def test_budget_exceeded(stop, expected):
    t = Trajectory().turn("```repl\nx = llm_query('a')\n```").cell().finish("failed", stop, "Stopped: limit.")
    assert outcome(t) == expected


def test_a_budget_stop_that_still_answered_is_succeeded_forced_not_budget_exceeded():
    t = Trajectory().turn("FINAL(partial)", forced=True).answer("partial").finish(
        stop_reason="max_subcalls", forced_final=True)
    assert outcome(t) == "succeeded_forced"


def test_sandbox_errors_counts_failed_cells_and_their_kinds():
    t = (Trajectory().turn("```repl\nprint(x)\n```").cell("print(x)", error="NameError: name 'x' is not defined")
         .turn("```repl\nwhile True: pass\n```").cell("while True: pass", error="Cell timed out", killed=True)
         .turn("```repl\n1/0\n```").cell("1/0", error="Traceback (most recent call last):\nZeroDivisionError: "
                                                       "division by zero"))
    t.finish("failed", "no_final_answer", "The root script ended without a final answer.")
    result = classify(t.events)
    assert result.outcome == "sandbox_errors"
    errors = result.details["cell_errors"]
    assert (errors["cells"], errors["failed"]) == (3, 3)
    assert errors["kinds"] == {"NameError": 1, "killed": 1, "ZeroDivisionError": 1}


def test_no_final_answer_when_the_code_worked():
    t = Trajectory().turn("```repl\nprint(1)\n```").cell(stdout="1")
    t.finish("failed", "no_final_answer", "The root script ended without a final answer.")
    assert outcome(t) == "no_final_answer"


def test_engine_error_for_a_failure_without_a_stop_reason():
    t = Trajectory().finish("failed", None, "Direct mode refused: the documents are too large.")
    assert outcome(t) == "engine_error"


def test_error_kind():
    assert c.error_kind("Traceback...\n  File x\nKeyError: 'a'") == "KeyError"
    assert c.error_kind("json.decoder.JSONDecodeError: bad") == "JSONDecodeError"
    assert c.error_kind("anything", killed=True) == "killed"
    assert c.error_kind("The cell timed out after 120 s") == "timeout"
    assert c.error_kind("something odd") == "other"


# patterns -----------------------------------------------------------------------------------------

def test_repeated_identical_subcall_prompts():
    t = Trajectory().turn("```repl\n...\n```").cell()
    for _ in range(3):
        t.subcall("What is the code in this text?  ")
    t.subcall("Something else entirely")
    t.answer("ok").finish()
    result = classify(t.events)
    assert "repeated_subcall_prompts" in result.patterns
    assert result.details["repeated_subcall_prompts"]["max_repeats"] == 3


def test_two_identical_prompts_are_not_yet_repetition():
    t = Trajectory().cell().subcall("same").subcall("same").answer("ok").finish()
    assert "repeated_subcall_prompts" not in patterns(t)


def test_near_identical_subcall_prompts():
    base = "Read the following section and list every person named together with their role in the project: "
    text = "Alice leads design; Bob writes the parser; Carol runs the tests; Dan handles the release notes."
    t = Trajectory().cell()
    t.subcall(base + text).subcall(base + text + " Be brief.").subcall(base.replace("every", "each") + text)
    t.answer("ok").finish()
    assert "near_duplicate_subcall_prompts" in patterns(t)


def test_different_chunks_with_the_same_instruction_are_not_near_duplicates():
    t = Trajectory(doc_chars=1_000_000).cell()
    for i in range(5):
        chunk = " ".join(f"word{i}_{j}" for j in range(200))
        t.subcall(f"Summarise this chunk: {chunk}")
    t.answer("ok").finish()
    assert "near_duplicate_subcall_prompts" not in patterns(t)


def test_verification_loop():
    t = Trajectory().cell(stdout="PLUM-42")
    for wording in ("Verify that the secret code is PLUM-42 in this text",
                    "Please verify that the secret code is PLUM-42 in this text",
                    "Double-check: verify that the secret code is PLUM-42 in this text"):
        t.subcall(wording, response="Yes, PLUM-42")
    t.answer("PLUM-42").finish()
    result = classify(t.events)
    assert "verification_loop" in result.patterns
    assert result.details["verification_loop"]["requests"] == 3


def test_a_single_verification_is_not_a_loop():
    t = Trajectory().cell().subcall("Verify that the code is PLUM-42").answer("ok").finish()
    assert "verification_loop" not in patterns(t)


def test_answer_not_in_computed_values():
    t = (Trajectory().turn("```repl\nprint(context.count('x'))\n```").cell(stdout="The secret code is PLUM-42")
         .subcall("what is the code", response="PLUM-42").turn("FINAL(APPLE-7)").answer("APPLE-7").finish())
    result = classify(t.events)
    assert "answer_not_in_computed_values" in result.patterns
    assert result.details["answer_not_in_computed_values"]["word_coverage"] == 0


def test_answer_found_in_the_last_output_is_fine():
    assert "answer_not_in_computed_values" not in patterns(succeeded("PLUM-42"))


def test_long_answer_mostly_present_is_fine():
    t = (Trajectory().cell(stdout="revenue grew 12 percent in 2023 driven by exports to Canada and Mexico")
         .turn("FINAL(Revenue grew 12 percent in 2023, driven mainly by exports to Canada and Mexico.)")
         .answer("Revenue grew 12 percent in 2023, driven mainly by exports to Canada and Mexico.").finish())
    assert "answer_not_in_computed_values" not in patterns(t)


def test_final_var_and_final_of_an_expression_are_computed_by_construction():
    by_var = Trajectory().cell("FINAL_VAR('result')", stdout="").answer("anything", "FINAL_VAR").finish()
    by_expression = Trajectory().cell("FINAL(answer)", stdout="nothing").answer("anything").finish()
    assert "answer_not_in_computed_values" not in patterns(by_var)
    assert "answer_not_in_computed_values" not in patterns(by_expression)
    by_literal = Trajectory().cell("FINAL('anything')", stdout="nothing like it").answer("anything").finish()
    assert "answer_not_in_computed_values" in patterns(by_literal)


def test_direct_runs_compute_nothing_and_are_not_judged():
    t = Trajectory(mode="direct").turn("The code is X").answer("The code is X", "plain").finish()
    assert "answer_not_in_computed_values" not in patterns(t)


def test_subcall_fanout_one_call_per_line():
    t = Trajectory(doc_chars=20_000).cell()
    for i in range(40):
        t.subcall(f"Does line {i} mention the code? line text {i}")
    t.answer("ok").finish()
    result = classify(t.events)
    assert "subcall_fanout" in result.patterns
    assert result.details["subcall_fanout"]["calls_per_10k_chars"] == 20.0


def test_subcall_fanout_rereading_the_documents():
    t = Trajectory(doc_chars=5_000).cell()
    for _ in range(10):
        t.subcall("x" * 2_000)  # 20K prompt chars for a 5K document: read 4 times over
    t.answer("ok").finish()
    assert "subcall_fanout" in patterns(t)


def test_proportionate_fanout_is_fine():
    t = Trajectory(doc_chars=10_000_000).cell()
    for i in range(100):
        t.subcall(f"chunk {i} " + "y" * 100)
    t.answer("ok").finish()
    assert "subcall_fanout" not in patterns(t)


def test_many_cell_errors_even_when_the_run_succeeded():
    t = Trajectory()
    for _ in range(3):
        t.cell("print(y)", error="NameError: name 'y' is not defined")
    t.cell("print(1)", stdout="PLUM-42").answer("PLUM-42").finish()
    result = classify(t.events)
    assert result.outcome == "succeeded"
    assert "many_cell_errors" in result.patterns


def test_every_rule_has_a_docstring():
    for rule in [*c.OUTCOME_RULES, *c.PATTERN_RULES.values()]:
        assert rule.__doc__, rule.__name__
    assert set(c.PATTERN_RULES) == set(c.PATTERNS)


def test_classification_is_fast_on_thousands_of_subcalls():
    import time

    t = Trajectory(doc_chars=10_000_000).cell()
    for i in range(3000):
        t.subcall(f"Summarise part {i}: " + " ".join(f"w{i}_{j}" for j in range(50)))
    started = time.monotonic()
    classify(t.events)
    assert time.monotonic() - started < 10


# robustness ----------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
event_types = st.sampled_from(["run.started", "root.turn", "cell.started", "cell.finished", "subcall.started",
                               "subcall.finished", "cost.updated", "final.answer", "run.finished"])
field_names = st.sampled_from(["prompt", "response", "stdout", "error", "killed", "depth", "code", "content",
                               "answer", "source", "status", "stop_reason", "forced_final", "documents",
                               "prompt_chars", "state_note", "failure_reason"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(event_types, st.dictionaries(field_names, json_values, max_size=6)), max_size=25))
def test_the_classifier_never_fails_on_odd_events(items):
    """Whatever a (future, buggy or hand-edited) event stream holds, classification answers."""
    events = [{"seq": i + 1, "type": t, "ts": 0.0, "data": d} for i, (t, d) in enumerate(items)]
    result = classify(events)
    assert result.outcome in c.OUTCOMES
    assert set(result.patterns) <= set(c.PATTERNS)


# a direct run refused as too large, and the answer-quality patterns ------------------------------

REFUSAL = ("Direct mode refused: the documents are about 2,500,000 tokens (10,000,000 characters), more than "
           "the 128,000-token window of openai/gpt-4o. Use mode rlm, which never puts the documents in a prompt.")


def test_a_direct_run_refused_as_too_large_has_its_own_outcome():
    t = Trajectory(mode="direct").finish("failed", None, REFUSAL)
    assert outcome(t) == "too_large_for_direct"
    assert outcome(Trajectory(mode="direct").finish("failed", None, "Unknown mode 'x'.")) == "engine_error"


def with_ranges(t: Trajectory, ranges: list[list[dict]]) -> Trajectory:
    """Give the trajectory's sub-calls these ranges, in order (the builder sends none)."""
    started = [e for e in t.events if e["type"] == "subcall.started"]
    for event, r in zip(started, ranges, strict=True):
        event["data"]["ranges"] = r
    return t


def two_documents() -> Trajectory:
    t = Trajectory()
    t.events[0]["data"]["documents"] = [{"name": "a.txt", "chars": 5000}, {"name": "b.txt", "chars": 5000}]
    return t


def test_a_document_no_sub_call_read_is_named():
    t = two_documents().turn("```repl\nprint(llm_query(context[0][:100]))\n```").cell(stdout="The code is PLUM-42.")
    t.subcall("What is the code? " + "x" * 100, "The code is PLUM-42.")
    with_ranges(t.turn("FINAL(PLUM-42)").answer("PLUM-42").finish(), [[{"doc": 0, "start": 0, "end": 100}]])
    result = classify(t.events)
    assert "document_never_read" in result.patterns
    assert result.details["document_never_read"] == {"documents": ["b.txt"], "of": 2}


def test_an_ambiguous_read_still_counts_as_reading_the_document():
    t = two_documents().turn("```repl\nprint(llm_query(block))\n```").cell(stdout="The code is PLUM-42.")
    t.subcall("What is the code? block", "The code is PLUM-42.").subcall("And here? block", "The code is PLUM-42.")
    with_ranges(t.turn("FINAL(PLUM-42)").answer("PLUM-42").finish(),
                [[{"doc": 0, "start": 0, "end": 100}], [{"doc": 1, "chars": 40, "places": 3}]])
    assert "document_never_read" not in patterns(t)


def test_every_sub_call_not_found_in_a_succeeded_run():
    t = Trajectory().turn("```repl\nprint(llm_query_batched(parts))\n```").cell(stdout="done")
    for reply in ("NOT FOUND", "Not found.", "None.", "The passage does not mention a code."):
        t.subcall("What is the code? part", reply)
    t.turn("FINAL(PLUM-42)").answer("PLUM-42").finish()
    result = classify(t.events)
    assert "all_subcalls_not_found" in result.patterns
    assert result.details["all_subcalls_not_found"] == {"subcalls": 4}
    # One real finding is enough to clear it.
    t2 = Trajectory().turn("```repl\nprint(llm_query_batched(parts))\n```").cell(stdout="done")
    t2.subcall("What is the code? part", "NOT FOUND").subcall("What is the code? part 2", "The code is PLUM-42.")
    assert "all_subcalls_not_found" not in patterns(t2.turn("FINAL(PLUM-42)").answer("PLUM-42").finish())


def test_an_answer_found_nowhere_in_the_trajectory():
    t = Trajectory().turn("```repl\nprint(context[:50])\n```").cell(stdout="The secret code is PLUM-42.")
    t.cell(stdout="Nothing else of note.").cell(stdout="Still nothing.").cell(stdout="Done.")
    # The earlier output holds the answer: not in the last values, but in the trajectory.
    t.turn("FINAL(PLUM-42)").answer("PLUM-42").finish()
    assert "answer_not_in_trajectory" not in patterns(t)
    assert "answer_not_in_computed_values" in patterns(t)
    made_up = succeeded("PLUM-42")
    made_up.events[-2]["data"]["answer"] = "GRAPE-99"
    assert "answer_not_in_trajectory" in patterns(made_up)


def test_sub_calls_without_any_range_leave_reading_unjudged():
    t = two_documents().turn("```repl\nprint(llm_query(context[0][:60]))\n```").cell(stdout="The code is PLUM-42.")
    t.subcall("What is the code? short slice", "The code is PLUM-42.").turn("FINAL(PLUM-42)").answer("PLUM-42").finish()
    assert "document_never_read" not in patterns(t)
