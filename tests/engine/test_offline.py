"""The offline heuristic model genuinely finds facts stated once in large documents."""

import pytest

from worker.engine import RunSpec, run
from worker.engine.offline import extract_answer, keywords

from .conftest import filler, hide

NEEDLE = "The secret launch code is 7F3K-92QX."
QUESTION = "What is the secret launch code?"


def test_sub_model_answers_extractively_from_its_passage():
    prompt = f"Question: {QUESTION}\nAnswer or NOT FOUND.\n\nPassage:\nThe code is long. {NEEDLE} Then rain."
    assert extract_answer(prompt) == NEEDLE
    assert extract_answer("Question: Who won the derby?\n\nPassage:\nNothing relevant here.") == "NOT FOUND"
    assert keywords(QUESTION) == ["secret", "launch", "code"]


@pytest.mark.slow
def test_finds_a_needle_in_a_10_mb_document(write_doc, sink):
    doc = write_doc("haystack.txt", hide(filler(10_000_000), NEEDLE, 0.73))
    result = run(RunSpec(question=QUESTION, documents=[doc]), sink)
    assert result.status == "succeeded", result.failure_reason
    assert "7F3K-92QX" in result.final_answer
    assert result.answer_source == "FINAL_VAR" and result.subcalls >= 1
    # the root never saw the document: only metadata, a preview and short outputs
    assert all(len(e.data["content"]) < 10_000 for e in sink.of_type("root.turn"))
    carried = [r for e in sink.of_type("subcall.started") for r in e.data["ranges"]]
    position = doc.chars * 0.73
    assert any(r["doc"] == 0 and r["start"] - 5_000 < position < r["end"] + 5_000 for r in carried)


def test_finds_a_fact_across_several_documents(write_doc, sink):
    docs = [write_doc(f"report-{i}.txt", filler(400_000, seed=i)) for i in range(4)]
    fact = "The vault in Lisbon opens with combination 5521."
    docs[2] = write_doc("report-2.txt", hide(filler(400_000, seed=2), fact, 0.4))
    result = run(RunSpec(question="Which combination opens the vault in Lisbon?", documents=docs), sink)
    assert result.status == "succeeded", result.failure_reason
    assert "5521" in result.final_answer
    assert any(r["doc"] == 2 for e in sink.of_type("subcall.started") for r in e.data["ranges"])


def test_no_subcalls_mode_answers_from_the_repl_alone(write_doc, sink):
    doc = write_doc("haystack.txt", hide(filler(1_000_000), NEEDLE, 0.2))
    result = run(RunSpec(question=QUESTION, documents=[doc], mode="rlm-no-subcalls"), sink)
    assert result.status == "succeeded" and "7F3K-92QX" in result.final_answer
    assert result.subcalls == 0 and not sink.of_type("subcall.started")
    assert all("llm_query" not in e.data["code"] for e in sink.of_type("cell.started"))


def test_says_not_found_when_the_fact_is_absent(write_doc, sink):
    doc = write_doc("haystack.txt", filler(200_000))
    result = run(RunSpec(question="What is the password of the lighthouse keeper?", documents=[doc]), sink)
    assert result.status == "succeeded" and result.final_answer.startswith("Not found")
