"""`manage.py rlm eval`: the matrix expanded into ordinary runs, executed in-process, scored, and
aggregated, checked against known truth: the simulated provider answers right or wrong on purpose."""

import json

import pytest
from django.core.management import CommandError

from apps.evals.generators import generate
from apps.evals.models import CaseStatus, EvalCase, Evaluation
from apps.evals.stats import wilson
from apps.review.models import RunReview
from apps.runs.models import Run, RunStatus
from tests.evals.conftest import ROOT, UNPRICED, rlm_eval

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_rate_limits", "data_dir")]

MATRIX_KEYS = {"model", "mode", "size", "cases", "accuracy", "ci95", "cost_usd_mean", "cost_usd_p95", "latency_s_p50",
               "failures"}
CASE_KEYS = {"case_id", "question", "expected", "answer", "score", "scorer", "reason", "run_id", "cost_usd", "status"}


def test_offline_niah_runs_every_case_as_an_ordinary_run():
    text, result = rlm_eval("--suite", "niah", "--mode", "rlm,rlm-no-subcalls", "--sizes", "10000,50000",
                            "--cases", "2", "--seed", "4", "--json")
    assert set(result) >= {"evaluation_id", "matrix", "cases"}
    assert len(result["cases"]) == 2 * 2 * 2 and len(result["matrix"]) == 4
    assert all(set(c) >= MATRIX_KEYS for c in result["matrix"])
    assert all(set(c) >= CASE_KEYS for c in result["cases"])
    assert [(c["mode"], c["size"]) for c in result["matrix"]] == [
        ("rlm", 10000), ("rlm", 50000), ("rlm-no-subcalls", 10000), ("rlm-no-subcalls", 50000)]
    for case in result["cases"]:
        run = Run.objects.get(pk=case["run_id"])
        assert run.status == RunStatus.SUCCEEDED and run.final_answer == case["answer"]
        assert run.evaluation_case.pk == case["case_id"]
        assert RunReview.objects.filter(run=run).exists()  # filed for review like any run
        assert case["score"] == (1.0 if case["expected"].lower() in case["answer"].lower() else 0.0)
    # The heuristic finds planted needles: that is what it can do.
    assert all(c["accuracy"] == 1.0 for c in result["matrix"])
    assert Evaluation.objects.get(pk=result["evaluation_id"]).status == "finished"
    assert "accuracy" in text and "offline/heuristic" in text


def test_offline_aggregate_scores_are_honest_zeros():
    _, result = rlm_eval("--suite", "aggregate", "--sizes", "20000", "--cases", "3", "--json")
    assert [c["score"] for c in result["cases"]] == [0.0, 0.0, 0.0]
    assert result["matrix"][0]["accuracy"] == 0.0 and result["matrix"][0]["ci95"] == pytest.approx(list(wilson(0, 3)))


def test_scripted_answers_give_the_known_accuracy_per_cell(scripted):
    items = generate("niah", 11, 10_000, 4)
    for k, item in enumerate(items):
        scripted.set("rlm", item.question, f"The code is {item.expected}." if k < 3 else "XX-0000-NONE")
        scripted.set("direct", item.question, item.expected if k < 1 else "I could not find it.")
    _, result = rlm_eval("--suite", "niah", "--model", ROOT, "--mode", "rlm,direct", "--sizes", "10000",
                         "--cases", "4", "--seed", "11", "--json")
    cells = {c["mode"]: c for c in result["matrix"]}
    assert cells["rlm"]["accuracy"] == 0.75 and cells["direct"]["accuracy"] == 0.25
    assert cells["rlm"]["ci95"] == pytest.approx(list(wilson(3, 4)))
    assert cells["direct"]["ci95"] == pytest.approx(list(wilson(1, 4)))
    for cell in cells.values():  # gpt-4o has a price: every case's cost is known and positive
        assert cell["cost_usd_mean"] > 0 and cell["cost_usd_p95"] >= cell["cost_usd_mean"]
    costs = [c["cost_usd"] for c in result["cases"]]
    assert all(c > 0 for c in costs)
    assert result["spent_usd"] == pytest.approx(sum(costs))
    for case in result["cases"]:
        assert case["status"] == "scored" and Run.objects.get(pk=case["run_id"]).root_model == ROOT
        assert case["score"] == (1.0 if case["expected"] in case["answer"] else 0.0)


def test_unpriced_model_cost_is_unknown_not_zero(scripted, settings):
    # Under a cost cap, calls of unknown price run only where the operator allows them (#21).
    settings.RLMWEB_ALLOW_UNPRICED = True
    item = generate("niah", 2, 10_000, 1)[0]
    scripted.set("rlm", item.question, item.expected)
    _, result = rlm_eval("--suite", "niah", "--model", UNPRICED, "--sizes", "10000", "--cases", "1", "--seed", "2",
                         "--json")
    assert result["matrix"][0]["cost_usd_mean"] is None and result["matrix"][0]["cost_unknown_cases"] == 1
    assert result["cases"][0]["cost_usd"] is None and result["cases"][0]["score"] == 1.0


def test_pairs_partial_answers_score_fractional_f1(scripted):
    items = generate("pairs", 5, 10_000, 2)
    first, second = items
    scripted.set("rlm", first.question, "\n".join(p.replace(",", ", ") for p in first.expected))
    # Same question text for every pairs item: the script answers the first item's pairs for both.
    _, result = rlm_eval("--suite", "pairs", "--model", ROOT, "--sizes", "10000", "--cases", "2", "--seed", "5",
                         "--json")
    scores = [c["score"] for c in result["cases"]]
    assert scores[0] == 1.0
    assert scores[1] == 0.0 or set(first.expected) & set(second.expected)
    assert result["matrix"][0]["accuracy"] == pytest.approx(sum(scores) / 2)


def test_question_file_with_own_documents(tmp_path, scripted):
    (tmp_path / "minutes.txt").write_text("The harbour board elected Ada Quill as chair in 2019.\n" * 20)
    (tmp_path / "budget.txt").write_text("The 2024 budget of the harbour board is 4,200,000 crowns.\n" * 20)
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in [
        {"question": "Who chairs the harbour board?", "expected": "Ada Quill", "documents": ["minutes.txt"]},
        {"question": "What is the 2024 budget in crowns?", "expected": 4200000, "scorer": "numeric"},
        {"question": "In which year was the chair elected?", "expected": "2019", "scorer": "exact"},
    ]))
    scripted.set("rlm", "Who chairs the harbour board?", "Ada Quill chairs it.")
    scripted.set("rlm", "What is the 2024 budget in crowns?", "4,200,000 crowns")
    scripted.set("rlm", "In which year was the chair elected?", "In 2019.")
    _, result = rlm_eval("--suite", f"file:{questions}", "--doc", str(tmp_path / "minutes.txt"), "--doc",
                         str(tmp_path / "budget.txt"), "--model", ROOT, "--json")
    assert [c["score"] for c in result["cases"]] == [1.0, 1.0, 0.0]  # exact: "in 2019" is not "2019"
    first = Run.objects.get(pk=result["cases"][0]["run_id"])
    assert [d.name for d in first.documents.all()] == ["minutes.txt"]
    both = Run.objects.get(pk=result["cases"][1]["run_id"]).documents.all()
    assert len(both) == 2
    assert len(result["matrix"]) == 1 and result["matrix"][0]["size"] == sum(d.chars for d in both)
    assert result["matrix"][0]["accuracy"] == pytest.approx(2 / 3)


def test_cost_cap_stops_starting_cases_and_the_exit_status_says_so(scripted):
    for item in generate("niah", 3, 10_000, 3):
        scripted.set("rlm", item.question, item.expected)
    with pytest.raises(CommandError, match="2 of 3 cases did not run") as raised:
        rlm_eval("--suite", "niah", "--model", ROOT, "--sizes", "10000", "--cases", "3", "--seed", "3",
                 "--max-cost", "0.000001", "--json")
    assert raised.value.returncode == 1
    evaluation = Evaluation.objects.get()
    statuses = list(evaluation.cases.values_list("status", flat=True))
    assert statuses == [CaseStatus.SCORED, CaseStatus.SKIPPED, CaseStatus.SKIPPED]
    assert "cost cap" in EvalCase.objects.filter(status=CaseStatus.SKIPPED).first().reason
    assert evaluation.spent_usd <= 0.000001  # the engine never spends past a run's cap
    # The one run that started was capped at what was left of the evaluation's budget.
    assert evaluation.cases.get(index=0).run.limits["max_cost_usd"] <= 0.000001


@pytest.mark.parametrize(("args", "message"), [
    (["--suite", "nope"], "Unknown suite"),
    (["--suite", "niah", "--model", "acme/none"], "Unknown model"),
    (["--suite", "niah", "--mode", "rlm,fast"], "Choose modes"),
    (["--suite", "niah", "--sizes", "10"], "Sizes are between"),
    (["--suite", "niah", "--sizes", "ten"], "Not a comma-separated list"),
    (["--suite", "file:/nonexistent.jsonl"], "No such question file"),
    (["--suite", "niah", "--scorer", "judge"], "judge model"),
])
def test_bad_arguments_create_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        rlm_eval(*args)
    assert Evaluation.objects.count() == 0 and Run.objects.count() == 0
