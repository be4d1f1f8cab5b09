"""Locating document text inside prompts (worker/sandbox/ranges.py)."""

from __future__ import annotations

import random
import string
import time

import pytest

from worker.sandbox.ranges import DocumentIndex


def _text(n: int, seed: int) -> str:
    rnd = random.Random(seed)
    words = ["".join(rnd.choices(string.ascii_lowercase, k=rnd.randint(2, 9))) for _ in range(5000)]
    out, size = [], 0
    while size < n:
        w = rnd.choice(words)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)[:n]


DOC0 = _text(200_000, 1)
DOC1 = _text(50_000, 2)


@pytest.fixture(scope="module")
def index():
    return DocumentIndex([DOC0, DOC1])


def test_a_plain_slice(index):
    assert index.find(DOC0[12_345:54_321]) == [{"doc": 0, "start": 12_345, "end": 54_321}]


def test_slices_of_several_documents_with_instructions_around(index):
    prompt = "Question: who?\n" + DOC1[100:3000] + "\n---\n" + DOC0[777:1500] + "\nAnswer briefly."
    assert index.find(prompt) == [
        {"doc": 1, "start": 100, "end": 3000},
        {"doc": 0, "start": 777, "end": 1500},
    ]


def test_spans_shorter_than_the_minimum_are_ignored(index):
    assert index.find("x" * 10 + DOC0[5000:5040] + "y" * 10) == []
    found = index.find("x" * 10 + DOC0[5000:5070] + "y" * 10)
    assert found == [{"doc": 0, "start": 5000, "end": 5070}]


def test_text_in_no_document(index):
    assert index.find(_text(20_000, 99)) == []
    assert index.find("") == []


def test_every_reported_range_is_really_in_the_prompt(index):
    rnd = random.Random(5)
    for _ in range(30):
        parts = []
        for _ in range(rnd.randint(1, 4)):
            doc_no = rnd.randint(0, 1)
            doc = (DOC0, DOC1)[doc_no]
            a = rnd.randint(0, len(doc) - 500)
            parts.append(doc[a : a + rnd.randint(64, 500)])
            parts.append(_text(rnd.randint(0, 100), rnd.randint(100, 10_000)))
        prompt = "|".join(parts)
        for r in index.find(prompt):
            assert r["end"] - r["start"] >= 64
            assert (DOC0, DOC1)[r["doc"]][r["start"] : r["end"]] in prompt


def test_no_documents():
    assert DocumentIndex([]).find("anything at all " * 10) == []


def test_large_document_is_fast():
    doc = _text(10_000_000, 3)
    index = DocumentIndex([doc])
    started = time.perf_counter()
    first = index.find(doc[4_000_000:4_100_000])  # includes building the index
    build_and_find = time.perf_counter() - started
    started = time.perf_counter()
    again = index.find("Summarise this:\n" + doc[9_000_001:9_100_000] + "\nThanks.")
    find_only = time.perf_counter() - started
    assert first == [{"doc": 0, "start": 4_000_000, "end": 4_100_000}]
    assert again == [{"doc": 0, "start": 9_000_001, "end": 9_100_000}]
    assert build_and_find < 2.0, build_and_find
    assert find_only < 0.05, find_only


def test_scan_budget_bounds_foreign_text():
    index = DocumentIndex([DOC0], max_probes=100_000)
    started = time.perf_counter()
    assert index.find("z" * 5_000_000 + DOC0[:1000]) == []  # gave up before the document text
    assert time.perf_counter() - started < 1.0


# ---------------------------------------------------------------------------------------------
# Repeated text: certain places, or "ambiguous (N places)", never the wrong copy
# ---------------------------------------------------------------------------------------------
def _repeated_doc() -> tuple[str, str, list[int]]:
    import random

    rng = random.Random(7)
    block = "LICENSE: " + "".join(rng.choice("abcdefghij ") for _ in range(3000))
    parts, offsets, pos = [], [], 0
    for i in range(3):
        filler = f"[section {i}] " + "".join(rng.choice("klmnopqrst ") for _ in range(5000))
        parts += [filler, block]
        pos += len(filler)
        offsets.append(pos)
        pos += len(block)
    return "".join(parts), block, offsets


def _calls(code: str, documents: list[tuple[str, str]]) -> list[tuple[str, dict]]:
    from worker.sandbox.repl import Repl

    repl = Repl(documents, 10_000)
    calls: list[tuple[str, dict]] = []
    repl.call_host = lambda name, args: calls.append((name, args)) or ("ok" if name == "llm_query" else ["ok"])
    result = repl.run_cell(code)
    assert result["error"] is None, result["error"]
    return calls


def test_a_slice_of_a_repeated_block_is_attributed_to_the_copy_the_code_sliced():
    doc, block, offsets = _repeated_doc()
    second = offsets[1]
    calls = _calls(f"chunk = context[{second}:{second + len(block)}]\nllm_query('Summarise: ' + chunk)",
                   [("doc", doc)])
    assert calls[0][1]["ranges"] == [{"doc": 0, "start": second, "end": second + len(block)}]


def test_a_repeated_block_the_code_did_not_slice_is_reported_ambiguous():
    doc, block, offsets = _repeated_doc()
    calls = _calls("parts = context.split('] ')\nblock = [p for p in parts if 'LICENSE' in p][0]\n"
                   "llm_query(block[block.index('LICENSE'):])", [("doc", doc)])
    (ranges,) = [c[1]["ranges"] for c in calls]
    assert ranges and all("start" not in r for r in ranges), ranges
    assert ranges[0]["places"] == 3 and ranges[0]["chars"] >= len(block) - 64


def test_overlapping_slices_over_two_copies_leave_the_block_ambiguous():
    doc, block, offsets = _repeated_doc()
    a, b = offsets[1], offsets[2]
    calls = _calls(f"x = context[{a - 100}:{a + len(block)}]\ny = context[{b}:{b + len(block) + 100}]\n"
                   f"llm_query_batched([x[100:], y[:{len(block)}]])", [("doc", doc)])
    first, second = calls[0][1]["ranges"]
    # both slices of the code cover a copy of the block: which copy a prompt carries is unknowable
    assert first == [{"doc": 0, "chars": len(block), "places": 3}]
    assert second == [{"doc": 0, "chars": len(block), "places": 3}]


def test_unique_text_is_located_exactly_without_any_slice():
    doc, block, offsets = _repeated_doc()
    unique = doc[offsets[0] - 4000 : offsets[0] - 1000]
    calls = _calls(f"llm_query({unique!r})", [("doc", doc)])
    assert calls[0][1]["ranges"] == [{"doc": 0, "start": offsets[0] - 4000, "end": offsets[0] - 1000}]


def test_rlm_query_contexts_are_located_only_where_certain():
    doc, block, offsets = _repeated_doc()
    second = offsets[1]
    calls = _calls(
        f"s = context[{second}:{second + len(block)}]\n"
        "rlm_query('q', context=[s, 'not in the document at all ' * 3, context[100:900]])",
        [("doc", doc)],
    )
    assert calls[0][1]["context_ranges"] == [
        {"doc": 0, "start": second, "end": second + len(block)}, None, {"doc": 0, "start": 100, "end": 900},
    ]


@pytest.mark.parametrize("gap", [0, 1, 7, 31])  # the second copy's offset mod the stride varies
def test_the_index_tells_a_unique_span_from_a_repeated_one_at_any_alignment(gap):
    import random

    from worker.sandbox.ranges import DocumentIndex

    rng = random.Random(gap)
    noise = lambda n: "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(n))  # noqa: E731
    block = noise(500)
    doc = noise(3200) + block + noise(3200 + gap) + block + noise(3000)
    index = DocumentIndex([doc])
    first = doc.index(block)
    second = doc.index(block, first + 1)
    assert index.unique(0, first, first + 500) in (False, None)  # never "unique"
    assert index.unique(0, second, second + 500) in (False, None)
    lone = doc[100:700]
    assert index.unique(0, 100, 700) is True and doc.count(lone) == 1
