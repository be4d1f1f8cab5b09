"""Evaluation pages: team access, the new form, results with plots and explorer links, progress
JSON, exports, cancel/resume, compare. Results come from case rows, in a bounded number of queries."""

import csv
import io
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.evals import services
from apps.evals.models import CaseStatus, EvalCase, Evaluation, EvaluationStatus
from apps.evals.stats import wilson
from tests.conftest import make_user
from tests.web.runs_factories import make_run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("data_dir")]


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def scored_evaluation(team, user, scores_by_cell: dict[tuple, list[float]], costs=None) -> Evaluation:
    """An evaluation whose cases were scored: one run each, in the given cells."""
    evaluation = Evaluation.objects.create(team=team, created_by=user, name="scored", suite="niah",
                                           root_models=["m1"], modes=["rlm", "direct"], sizes=[10_000, 1_000_000],
                                           status=EvaluationStatus.FINISHED)
    index = 0
    for (mode, size), scores in scores_by_cell.items():
        for score in scores:
            run = make_run(team, user, status="succeeded", final_answer=f"answer {index}")
            EvalCase.objects.create(
                evaluation=evaluation, index=index, item_key=f"k{index}", model="m1", mode=mode, size=size,
                question=f"Q{index}?", expected="x", scorer="contains", run=run, status=CaseStatus.SCORED,
                answer=f"answer {index}", score=score, reason="r", outcome="succeeded",
                cost_usd=(costs or {}).get(mode, 0.01), latency_s=1.0 + index, tokens=100, subcalls=2,
                scored_at=timezone.now())
            index += 1
    return evaluation


CELLS = {("rlm", 10_000): [1, 1, 0, 1], ("rlm", 1_000_000): [1, 0, 0, 0], ("direct", 10_000): [1, 1, 1, 1],
         ("direct", 1_000_000): [0, 0, 0, 0]}


def test_results_page_shows_matrix_plots_and_explorer_links(logged_in, team, user):
    evaluation = scored_evaluation(team, user, CELLS, costs={"rlm": 0.02, "direct": 0.05})
    page = logged_in.get(f"/evals/{evaluation.pk}/").content.decode()
    assert "75%" in page and "25%" in page and "100%" in page  # accuracies of the cells
    low, high = wilson(3, 4)
    assert f"{100 * low:.0f}–{100 * high:.0f}%" in page
    assert page.count("<svg") == 2 and "Accuracy vs context length" in page and "Accuracy vs cost" in page
    assert "<script" not in page.split("</header>", 1)[1]
    for case in evaluation.cases.all():
        assert f"/runs/{case.run_id}/" in page
    assert 'http-equiv="refresh"' not in page  # finished: no reload


def test_results_page_query_count_does_not_grow_with_cases(logged_in, team, user):
    small = scored_evaluation(team, user, {("rlm", 10_000): [1] * 5})
    large = scored_evaluation(team, user, {("rlm", 10_000): [1] * 300})
    with CaptureQueriesContext(connection) as few:
        logged_in.get(f"/evals/{small.pk}/")
    with CaptureQueriesContext(connection) as many:
        logged_in.get(f"/evals/{large.pk}/")
    assert len(many) == len(few)


def test_unknown_cost_is_shown_as_unknown(logged_in, team, user):
    evaluation = scored_evaluation(team, user, {("rlm", 10_000): [1, 0]})
    EvalCase.objects.filter(evaluation=evaluation, index=0).update(cost_usd=None)
    page = logged_in.get(f"/evals/{evaluation.pk}/").content.decode()
    assert "unknown" in page and "(1 unpriced)" in page


def test_progress_json_and_exports(logged_in, team, user):
    evaluation = scored_evaluation(team, user, CELLS)
    progress = logged_in.get(f"/evals/{evaluation.pk}/progress.json").json()
    assert progress["done"] == progress["total"] == 16
    assert {(c["mode"], c["size"]): c["accuracy"] for c in progress["matrix"]} == {
        ("rlm", 10_000): 0.75, ("rlm", 1_000_000): 0.25, ("direct", 10_000): 1.0, ("direct", 1_000_000): 0.0}
    response = logged_in.get(f"/evals/{evaluation.pk}/export.csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert response["Content-Type"].startswith("text/csv") and len(rows) == 16
    assert sum(float(r["score"]) for r in rows) == 8 and all(r["run_id"] for r in rows)
    data = json.loads(logged_in.get(f"/evals/{evaluation.pk}/export.json").content)
    assert len(data["cases"]) == 16 and len(data["matrix"]) == 4
    assert logged_in.get(f"/evals/{evaluation.pk}/export.xml").status_code == 404


def test_csv_neutralises_formulas_in_answers(logged_in, team, user):
    evaluation = scored_evaluation(team, user, {("rlm", 10_000): [0]})
    EvalCase.objects.filter(evaluation=evaluation).update(answer="=HYPERLINK(\"http://x\")")
    rows = list(csv.DictReader(io.StringIO(logged_in.get(f"/evals/{evaluation.pk}/export.csv").content.decode())))
    assert rows[0]["answer"].startswith("'=")


def test_other_teams_see_nothing(client, team, user):
    evaluation = scored_evaluation(team, user, {("rlm", 10_000): [1]})
    client.force_login(make_user("mallory"))
    for url in (f"/evals/{evaluation.pk}/", f"/evals/{evaluation.pk}/progress.json", f"/evals/{evaluation.pk}/export.csv",
                f"/evals/compare/?a={evaluation.pk}&b={evaluation.pk}"):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/evals/{evaluation.pk}/cancel/").status_code == 404
    assert "scored" not in client.get("/evals/").content.decode()


def test_new_form_creates_and_starts_an_evaluation(logged_in, team, enqueued, django_capture_on_commit_callbacks,
                                                    monkeypatch):
    from apps.evals.tasks import prepare_evaluation

    started, prepared = [], []
    monkeypatch.setattr("apps.evals.tasks.run_case.delay", lambda case_id: started.append(case_id))
    monkeypatch.setattr("apps.evals.tasks.prepare_evaluation.delay", prepared.append)
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in.post("/evals/new/", {
            "suite": "niah", "models": ["offline/heuristic"], "modes": ["rlm", "direct"], "sizes": "10000",
            "cases": "2", "seed": "3", "concurrency": "2", "max_cost_usd": "1.5"})
    evaluation = Evaluation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/evals/{evaluation.pk}/"
    # The request only validated and queued the preparation: no documents or cases yet.
    assert prepared == [str(evaluation.pk)] and evaluation.status == EvaluationStatus.PREPARING
    assert evaluation.cases.count() == 0 and "Preparing" in logged_in.get(f"/evals/{evaluation.pk}/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        assert prepare_evaluation(str(evaluation.pk)) == EvaluationStatus.RUNNING  # what the worker does
    evaluation.refresh_from_db()
    assert evaluation.cases.count() == 4 and evaluation.max_cost_usd == 1.5
    assert len(started) == 2 and evaluation.cases.filter(status=CaseStatus.RUNNING).count() == 2
    page = logged_in.get(f"/evals/{evaluation.pk}/").content.decode()
    assert 'http-equiv="refresh"' in page and "0 / 4 cases scored" in page


def test_new_form_shows_service_errors(logged_in):
    response = logged_in.post("/evals/new/", {"suite": "niah", "models": ["offline/heuristic"], "modes": ["rlm"],
                                              "sizes": "5", "cases": "2", "seed": "0", "concurrency": "1"})
    assert response.status_code == 400 and "Sizes are between" in response.content.decode()
    assert Evaluation.objects.count() == 0


def test_cancel_and_resume_buttons(logged_in, team, user, monkeypatch):
    monkeypatch.setattr("apps.evals.tasks.run_case.delay", lambda case_id: None)
    evaluation = services.evaluation_create(user, team, "niah", ["offline/heuristic"], ["rlm"], [10_000], 2)
    assert logged_in.post(f"/evals/{evaluation.pk}/cancel/").status_code == 302
    evaluation.refresh_from_db()
    assert evaluation.status == EvaluationStatus.CANCELLED
    assert set(evaluation.cases.values_list("status", flat=True)) == {CaseStatus.CANCELLED}
    assert logged_in.post(f"/evals/{evaluation.pk}/resume/", {"max_cost_usd": "2"}).status_code == 302
    evaluation.refresh_from_db()
    assert evaluation.status == EvaluationStatus.RUNNING and evaluation.max_cost_usd == 2
    assert evaluation.cases.filter(status=CaseStatus.RUNNING).count() == 2


def test_compare_lines_up_the_cells(logged_in, team, user):
    a = scored_evaluation(team, user, {("rlm", 10_000): [1, 0]})
    b = scored_evaluation(team, user, {("rlm", 10_000): [1, 1], ("direct", 10_000): [0]})
    page = logged_in.get(f"/evals/compare/?a={a.pk}&b={b.pk}").content.decode()
    assert "+50 pts" in page and page.count("<tr>") == 3  # header + two cells, the one missing from A shown as —


def test_list_shows_each_evaluations_progress_in_a_bounded_number_of_queries(logged_in, team, user):
    first = scored_evaluation(team, user, {("rlm", 10_000): [1, 0, 1]})
    EvalCase.objects.filter(evaluation=first, index=2).update(status=CaseStatus.PENDING, score=None)
    scored_evaluation(team, user, {("rlm", 10_000): [1]})
    with CaptureQueriesContext(connection) as two:
        page = logged_in.get("/evals/").content.decode()
    assert "2 / 3" in page and "1 / 1" in page
    for _ in range(3):
        scored_evaluation(team, user, {("rlm", 10_000): [1] * 5})
    with CaptureQueriesContext(connection) as five:
        logged_in.get("/evals/")
    assert len(five) == len(two)


def test_new_form_offers_the_suites_and_models_and_viewers_may_not_post(client, team, user):
    from apps.teams.models import Membership, Role

    client.force_login(user)
    page = client.get("/evals/new/").content.decode()
    assert all(f'value="{s}"' in page for s in ("niah", "multi", "aggregate", "pairs", "file"))
    assert 'value="offline/heuristic"' in page and 'enctype="multipart/form-data"' in page
    viewer = make_user("victor")
    Membership.objects.create(user=viewer, team=team, role=Role.VIEWER)
    client.force_login(viewer)
    assert client.post("/evals/new/", {"suite": "niah"}).status_code == 403
    assert Evaluation.objects.count() == 0


def test_new_form_with_a_question_file(logged_in, team, monkeypatch):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.evals.tasks import prepare_evaluation
    from tests.web.runs_factories import make_document

    monkeypatch.setattr("apps.evals.tasks.prepare_evaluation.delay", lambda evaluation_id: None)
    monkeypatch.setattr("apps.evals.tasks.run_case.delay", lambda case_id: None)
    doc = make_document(team, "The secret code is PLUM-42.\n", name="notes.txt")
    questions = SimpleUploadedFile("q.csv", b"question,expected,documents\nWhat is the code?,PLUM-42,notes.txt\n")
    form = {"suite": "file", "question_file": questions, "documents": [str(doc.pk)], "models": ["offline/heuristic"],
            "modes": ["rlm", "rlm-no-subcalls"], "sizes": "100000", "cases": "5", "seed": "0", "concurrency": "1"}
    assert logged_in.post("/evals/new/", form).status_code == 302
    evaluation = Evaluation.objects.get()
    assert evaluation.suite == "file:q.csv"
    prepare_evaluation(str(evaluation.pk))
    cases = list(evaluation.cases.all())
    assert [(c.mode, c.question, c.expected, c.document_ids) for c in cases] == [
        ("rlm", "What is the code?", "PLUM-42", [str(doc.pk)]),
        ("rlm-no-subcalls", "What is the code?", "PLUM-42", [str(doc.pk)])]
    bad = SimpleUploadedFile("q.jsonl", b'{"question": "Q?"}\n')
    response = logged_in.post("/evals/new/", {**form, "question_file": bad})
    assert response.status_code == 400 and "line 1: no expected answer" in response.content.decode()


def test_share_by_link_read_only_then_revoked(logged_in, team, user):
    import re

    from django.test import Client

    from apps.evals.models import EvaluationShareLink

    evaluation = scored_evaluation(team, user, CELLS)
    response = logged_in.post(f"/evals/{evaluation.pk}/share/", follow=True)
    url = re.search(r"http://testserver(/evals/shared/[\w-]+/)", response.content.decode()).group(1)
    link = EvaluationShareLink.objects.get()
    assert link.token_hash != url.split("/")[-2] and link.prefix in response.content.decode()
    client = Client()  # anyone, not signed in
    shared = client.get(url)
    page = shared.content.decode()
    assert shared.status_code == 200 and "75%" in page and "Q0?" in page
    assert "/runs/" not in page and "export.csv" not in page and "Cancel" not in page
    assert shared["Referrer-Policy"] == "no-referrer"
    assert client.get("/evals/shared/not-a-token/").status_code == 404
    logged_in.post(f"/evals/{evaluation.pk}/share/{link.pk}/revoke/")
    assert client.get(url).status_code == 404
