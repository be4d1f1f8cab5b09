"""The paper's ablations: rlm-no-subcalls (REPL only) and direct (one call with everything)."""

from worker.engine import ModelOptions, RunSpec, run

from .conftest import filler, hide, repl, sim_spec

NEEDLE = "The secret launch code is 7F3K-92QX."
QUESTION = "What is the secret launch code?"


def test_no_subcalls_mode_refuses_sub_calls_clearly(provider, write_doc, sink):
    doc = write_doc("a.txt", "abc")
    script = [repl("r = llm_query('x')"), repl("r = rlm_query('x')"), "FINAL(without help)"]
    result = run(sim_spec(provider, [doc], root_script=script, mode="rlm-no-subcalls"), sink)
    assert result.status == "succeeded" and result.subcalls == 0
    for cell in result.cells:
        assert "not available" in cell["error"] and "rlm-no-subcalls" in cell["error"]
    assert provider.requests == []


def test_no_subcalls_mode_tells_the_root(provider, write_doc, sink):
    doc = write_doc("a.txt", "abc")
    provider.root_replies = [repl("print(1)"), "FINAL(1)"]
    run(sim_spec(provider, [doc], mode="rlm-no-subcalls"), sink)
    system = provider.requests[0].messages[0]["content"]
    assert "Sub-calls are disabled in this run" in system and "~10-30 large prompts" not in system


def test_direct_mode_puts_the_documents_in_one_call(provider, write_doc, sink):
    docs = [write_doc("a.txt", "Alpha says the code is 42."), write_doc("b.txt", "Beta is silent.")]
    provider.root_replies = ["The code is 42 (from a.txt)."]
    result = run(sim_spec(provider, docs, mode="direct"), sink)
    assert (result.status, result.final_answer, result.answer_source) == ("succeeded", "The code is 42 (from a.txt).",
                                                                         "plain")
    (request,) = provider.requests
    assert "Alpha says the code is 42." in request.prompt and "Beta is silent." in request.prompt
    assert result.iterations == 1 and result.subcalls == 0 and result.cost_usd > 0


def test_direct_mode_refuses_documents_larger_than_the_window(write_doc, sink):
    doc = write_doc("big.txt", filler(2_000_000))
    result = run(RunSpec(question=QUESTION, documents=[doc], mode="direct"), sink)
    assert result.status == "failed"
    assert "Direct mode refused" in result.failure_reason and "128,000-token window" in result.failure_reason
    assert not sink.of_type("root.turn")


def test_direct_mode_window_can_be_set_per_model(write_doc, sink):
    doc = write_doc("a.txt", filler(5_000))
    spec = RunSpec(question=QUESTION, documents=[doc], mode="direct",
                   model_options={"offline/heuristic": ModelOptions(context_window=500)})
    result = run(spec, sink)
    assert result.status == "failed" and "500-token window" in result.failure_reason


def test_direct_mode_with_the_offline_model_answers_small_documents(write_doc, sink):
    doc = write_doc("a.txt", hide(filler(20_000), NEEDLE, 0.6))
    result = run(RunSpec(question=QUESTION, documents=[doc], mode="direct"), sink)
    assert result.status == "succeeded" and "7F3K-92QX" in result.final_answer


def test_unknown_mode_fails_clearly(write_doc, sink):
    doc = write_doc("a.txt", "abc")
    result = run(RunSpec(question="q", documents=[doc], mode="fast"), sink)
    assert result.status == "failed" and "Unknown mode 'fast'" in result.failure_reason
