"""Scorers, as docs/evals.md defines them: normalisation, numbers, set-F1, regex."""

import pytest

from apps.evals.scorers import Verdict, items, normalise, numbers_in, score


def test_normalise_casefolds_collapses_whitespace_and_strips_edge_punctuation():
    assert normalise("  The   Answer\n is\tPLUM-42. ") == "the answer is plum-42"
    assert normalise('"Oslo".') == "oslo"
    assert normalise("ﬁle") == "file"  # NFKC


@pytest.mark.parametrize(("answer", "expected", "result"), [
    ("Oslo", "oslo", 1.0), (" OSLO. ", "Oslo", 1.0), ("Oslo, Norway", "Oslo", 0.0), ("Bergen", ["Oslo", "Bergen"], 1.0),
])
def test_exact(answer, expected, result):
    assert score("exact", answer, expected).score == result


@pytest.mark.parametrize(("answer", "expected", "result"), [
    ("The code is QX-7431-MAUVE.", "qx-7431-mauve", 1.0),
    ("The code is\n  QX-7431   MAUVE", "QX-7431 mauve", 1.0),
    ("No idea", "QX-7431-MAUVE", 0.0),
    ("PLUM", ["QX", "plum"], 1.0),
])
def test_contains(answer, expected, result):
    assert score("contains", answer, expected).score == result


def test_numbers_are_found_with_thousands_separators_signs_and_decimals():
    assert numbers_in("1,234 and -5.5 then .25 and 7e3") == [1234.0, -5.5, 0.25, 7000.0]


@pytest.mark.parametrize(("answer", "expected", "params", "result"), [
    ("There are 31 records.", 31, {}, 1.0),
    ("31", "31", {}, 1.0),
    ("Out of 1,000 records, 31", 31, {}, 1.0),  # the last number counts
    ("31 of 1,000 records", 31, {}, 0.0),
    ("about 29", 31, {"abs_tol": 2}, 1.0),
    ("about 28", 31, {"abs_tol": 2}, 0.0),
    ("1050", 1000, {"rel_tol": 0.05}, 1.0),
    ("1051", 1000, {"rel_tol": 0.05}, 0.0),
    ("none", 3, {}, 0.0),
])
def test_numeric(answer, expected, params, result):
    assert score("numeric", answer, expected, params).score == result


PAIRS = {"item_pattern": r"(R\d{7})\W+(R\d{7})", "unordered": True}


def test_set_f1_with_unordered_pairs():
    expected = ["R0000001,R0000002", "R0000003,R0000004"]
    assert score("set_f1", "R0000002, R0000001\nR0000004 - R0000003", expected, PAIRS).score == 1.0
    half = score("set_f1", "R0000001, R0000002\nR0000005, R0000006", expected, PAIRS)
    assert half.score == pytest.approx(0.5)  # precision 1/2, recall 1/2
    one_of_two = score("set_f1", "R0000001, R0000002", expected, PAIRS)
    assert one_of_two.score == pytest.approx(2 / 3)  # precision 1, recall 1/2
    assert score("set_f1", "nothing here", expected, PAIRS).score == 0.0


def test_set_f1_default_items_split_on_newlines_commas_semicolons():
    assert items("Oslo, bergen;\n TROMSØ.", {}) == {"oslo", "bergen", "tromsø"}
    assert score("set_f1", "oslo, bergen", ["Oslo", "Bergen", "Tromsø"]).score == pytest.approx(0.8)


def test_regex_searches_without_flags():
    assert score("regex", "the code is QX-7431", r"QX-\d{4}").score == 1.0
    assert score("regex", "the code is qx-7431", r"QX-\d{4}").score == 0.0
    assert score("regex", "the code is qx-7431", r"(?i)QX-\d{4}").score == 1.0
    assert "invalid pattern" in score("regex", "x", "(").reason


def test_no_answer_scores_zero_and_unknown_scorer_is_refused():
    assert score("contains", "", "x") == Verdict(0.0, "no answer")
    assert score("exact", None, "x").score == 0.0
    with pytest.raises(ValueError, match="Unknown scorer"):
        score("bleu", "x", "x")


def test_an_unparsable_expected_number_scores_zero_with_a_reason():
    verdict = score("numeric", "12", "twelve")
    assert verdict.score == 0.0 and "cannot score" in verdict.reason
