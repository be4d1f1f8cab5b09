"""Built-in suites are pure functions of (seed, size, count, documents) with checkable answers."""

import re
from collections import Counter

import pytest

from apps.evals.generators import (
    QuestionFileError,
    SourceDocument,
    generate,
    keyed_records,
    parse_question_file,
    rng_for,
)


@pytest.mark.parametrize("suite", ["niah", "multi", "aggregate", "pairs"])
def test_same_arguments_same_items_other_seed_other_items(suite):
    a, b = generate(suite, 7, 20_000, 3), generate(suite, 7, 20_000, 3)
    assert a == b
    assert generate(suite, 8, 20_000, 3) != a


@pytest.mark.parametrize("size", [10_000, 1_000_000])
def test_niah_plants_one_unique_fact_at_the_chosen_depths(size):
    items = generate("niah", 1, size, 3)
    for item, depth in zip(items, [0.0, 0.5, 1.0], strict=True):
        text = item.documents[0].text
        assert abs(len(text) - size) <= 2
        assert text.count(item.expected) == 1
        assert abs(text.index(item.expected) / len(text) - depth) < 0.05
        assert item.meta["depth"] == depth


def test_niah_uses_the_users_document_as_haystack():
    source = SourceDocument("minutes.txt", "The harbour board met on Tuesday. " * 50)
    item = generate("niah", 1, 10_000, 1, [source])[0]
    text = item.documents[0].text
    assert "harbour board" in text and text.count(item.expected) == 1 and abs(len(text) - 10_000) <= 2


def test_multi_spreads_the_linked_facts_over_different_documents():
    for item in generate("multi", 3, 100_000, 4):
        holders = [i for i, d in enumerate(item.documents) if item.expected in d.text]
        assert holders, item
        hops = item.meta["hops"]
        assert len(item.meta["documents_with_facts"]) == hops and len(set(item.meta["documents_with_facts"])) == hops


def test_aggregate_answers_match_a_recount_of_the_records():
    items = generate("aggregate", 5, 50_000, 6)
    text = items[0].documents[0].text
    counts = Counter(re.findall(r"label: (\w+)", text))
    for item in items:
        if item.meta["kind"] == "count":
            label = re.search(r"'(\w+)'", item.question).group(1)
            assert item.expected == counts[label]
        elif item.meta["kind"] == "most_frequent":
            assert item.expected == counts.most_common(1)[0][0]
        else:
            a, b = re.findall(r"'(\w+)'", item.question)
            assert item.expected == (a if counts[a] > counts[b] else b)


def test_pairs_expected_are_exactly_the_pairs_sharing_a_key():
    text, expected = keyed_records(rng_for(1, "x"), 30_000)
    by_key: dict[str, list[str]] = {}
    for rid, key in re.findall(r"Record (R\d{7}): region \w+, key (\w+)\.", text):
        by_key.setdefault(key, []).append(rid)
    truth = sorted(",".join(sorted((a, b))) for ids in by_key.values() for i, a in enumerate(ids) for b in ids[i + 1:])
    assert expected == truth and len(expected) >= 3


def test_size_out_of_range_is_refused():
    with pytest.raises(ValueError, match="between"):
        generate("niah", 1, 10, 1)


def test_question_file_jsonl_and_csv():
    jsonl = ('{"question": "Who?", "expected": "Ada", "documents": ["a.txt"]}\n\n'
             '{"question": "How many?", "expected": 3, "scorer": "numeric"}\n')
    items = parse_question_file(jsonl, "q.jsonl", ["a.txt", "b.txt"])
    assert [(i.question, i.expected, i.scorer, i.document_names) for i in items] == [
        ("Who?", "Ada", "contains", ("a.txt",)), ("How many?", 3, "numeric", ())]
    csv_text = "question,expected,documents,scorer\nWho?,Ada,a.txt|b.txt,exact\nWhere?,Oslo,,\n"
    items = parse_question_file(csv_text, "q.csv", ["a.txt", "b.txt"])
    assert [(i.scorer, i.document_names) for i in items] == [("exact", ("a.txt", "b.txt")), ("contains", ())]


@pytest.mark.parametrize(("text", "message"), [
    ("not json", "line 1: not JSON"),
    ('{"question": "Q"}', "no expected"),
    ('{"question": "Q", "expected": "x", "documents": ["c.txt"]}', "no document named 'c.txt'"),
    ('{"question": "Q", "expected": "x", "scorer": "bleu"}', "unknown scorer"),
    ("", "no questions"),
])
def test_question_file_errors_name_the_line(text, message):
    with pytest.raises(QuestionFileError, match=message):
        parse_question_file(text, "q.jsonl", ["a.txt"])


def test_niah_chosen_depths_are_used_in_turn():
    items = generate("niah", 1, 20_000, 4, depths=[0.25, 0.9])
    assert [i.meta["depth"] for i in items] == [0.25, 0.9, 0.25, 0.9]
    for item in items:
        text = item.documents[0].text
        assert abs(text.index(item.expected) / len(text) - item.meta["depth"]) < 0.05
    with pytest.raises(ValueError, match="Depths"):
        generate("niah", 1, 20_000, 1, depths=[1.5])
