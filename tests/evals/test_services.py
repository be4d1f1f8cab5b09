"""Evaluation services: Celery execution with a concurrency limit, cancel and resume, the judge,
team roles, and failed runs counted by their review outcome."""

import time

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.evals import selectors, services
from apps.evals.generators import generate
from apps.evals.models import CaseStatus, EvalCase, Evaluation, EvaluationStatus
from apps.evals.services import EvaluationNotFound, QuestionFile
from apps.review.models import RunReview
from apps.runs.execution import run_execute
from apps.runs.models import RunStatus
from apps.teams.models import Membership, Role
from tests.conftest import make_user
from tests.evals.conftest import ROOT
from tests.web.runs_factories import make_document
from worker.simulated import Fault

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_rate_limits", "data_dir")]

OFFLINE = "offline/heuristic"


def niah(user, team, cases=2, modes=("rlm",), model=OFFLINE, **extra):
    return services.evaluation_create(user, team, "niah", [model], list(modes), [10_000], cases, seed=1, **extra)


def test_the_matrix_expands_into_pending_cases_sharing_their_documents(user, team):
    evaluation = niah(user, team, cases=3, modes=("rlm", "direct"))
    cases = list(evaluation.cases.all())
    assert len(cases) == 6 and {c.status for c in cases} == {CaseStatus.PENDING}
    assert [c.item_key for c in cases] == ["niah-10000-0"] * 2 + ["niah-10000-1"] * 2 + ["niah-10000-2"] * 2
    assert cases[0].document_ids == cases[1].document_ids != cases[2].document_ids  # one haystack per question


def test_celery_runs_the_cases_within_the_concurrency_limit(user, team, celery_worker):
    evaluation = niah(user, team, cases=3, modes=("rlm", "rlm-no-subcalls"), concurrency=2)
    assert services.evaluation_start(evaluation.pk) == 2
    most_running, deadline = 0, time.monotonic() + 120
    while time.monotonic() < deadline:
        evaluation.refresh_from_db()
        most_running = max(most_running, evaluation.cases.filter(status=CaseStatus.RUNNING).count())
        if evaluation.status == EvaluationStatus.FINISHED:
            break
        time.sleep(0.1)
    assert evaluation.status == EvaluationStatus.FINISHED
    assert most_running <= 2
    assert set(evaluation.cases.values_list("status", flat=True)) == {CaseStatus.SCORED}
    assert selectors.progress(evaluation)["done"] == 6


def test_cancel_keeps_scored_cases_and_resume_runs_the_rest(user, team):
    evaluation = niah(user, team, cases=3)
    first = services.case_claim_next(evaluation.pk)
    services.case_run(first)
    second = services.case_claim_next(evaluation.pk)

    def cancelled_meanwhile(run_id):
        services.evaluation_cancel(user, evaluation)
        run_execute(run_id)

    services.case_run(second, execute=cancelled_meanwhile)
    statuses = dict(evaluation.cases.values_list("index", "status"))
    assert statuses == {0: CaseStatus.SCORED, 1: CaseStatus.CANCELLED, 2: CaseStatus.CANCELLED}
    second.refresh_from_db()
    assert second.run.status == RunStatus.CANCELLED
    first_run = EvalCase.objects.get(index=0).run_id

    services.evaluation_resume(user, evaluation, enqueue=False)
    services.evaluation_run_here(evaluation)
    evaluation.refresh_from_db()
    assert evaluation.status == EvaluationStatus.FINISHED
    assert set(evaluation.cases.values_list("status", flat=True)) == {CaseStatus.SCORED}
    assert EvalCase.objects.get(index=0).run_id == first_run  # finished cases are kept, not re-run
    assert EvalCase.objects.get(index=1).run_id != second.run_id


def test_failed_runs_score_zero_and_count_by_their_review_outcome(user, team, scripted):
    scripted.provider.faults = [Fault("401", when=lambda request: True, times=1000)]
    evaluation = niah(user, team, cases=2, model=ROOT)
    services.evaluation_run_here(evaluation)
    cases = list(evaluation.cases.all())
    assert [c.score for c in cases] == [0.0, 0.0]
    assert all(c.outcome == "provider_error" and c.reason.startswith("no answer: run failed") for c in cases)
    assert RunReview.objects.filter(run__in=[c.run for c in cases], outcome="provider_error").count() == 2
    assert selectors.matrix(evaluation)[0]["failures"] == {"provider_error": 2}


def test_the_judge_scores_and_its_cost_counts(user, team, scripted):
    document = make_document(team, "The harbour board elected Ada Quill as chair.\n", name="minutes.txt")
    questions = QuestionFile("q.jsonl", '{"question": "Who chairs the board?", "expected": "Ada Quill", "scorer": "judge"}\n'
                                        '{"question": "When was she elected?", "expected": "2019", "scorer": "judge"}\n')
    scripted.set("rlm", "Who chairs the board?", "Ada Quill")
    scripted.set("rlm", "When was she elected?", "In 2021")
    evaluation = services.evaluation_create(user, team, "file", [ROOT], ["rlm"], None, 5, document_ids=[document.pk],
                                            question_file=questions, judge_model=ROOT)
    services.evaluation_run_here(evaluation)
    cases = list(evaluation.cases.all())
    assert [c.score for c in cases] == [1.0, 0.0]
    assert cases[0].reason.startswith(f"judge {ROOT}: CORRECT")
    assert all(c.judge_cost_usd > 0 for c in cases)
    evaluation.refresh_from_db()
    assert evaluation.spent_usd == pytest.approx(sum(c.cost_usd + c.judge_cost_usd for c in cases))


def test_a_judge_is_required_for_judge_scored_cases(user, team):
    with pytest.raises(ValidationError, match="judge model"):
        niah(user, team, scorer="judge")


def test_team_roles(user, team):
    viewer = make_user("victor")
    Membership.objects.create(user=viewer, team=team, role=Role.VIEWER)
    with pytest.raises(PermissionDenied):
        niah(viewer, team)
    with pytest.raises(EvaluationNotFound):
        niah(make_user("mallory"), team)
    evaluation = niah(user, team)
    with pytest.raises(PermissionDenied):
        services.evaluation_cancel(viewer, evaluation)
    assert selectors.evaluation_get_for_user(viewer, evaluation.pk) == evaluation
    assert selectors.evaluation_get_for_user(make_user("eve"), evaluation.pk) is None


def test_generated_documents_are_reused_across_evaluations(user, team):
    a, b = niah(user, team), niah(user, team)
    assert a.cases.first().document_ids == b.cases.first().document_ids
    item = generate("niah", 1, 10_000, 2)[0]
    assert a.cases.first().question == item.question and a.cases.first().expected == item.expected



def test_a_case_whose_evaluation_lost_its_creator_is_skipped_with_the_reason(user, team):
    # Evaluation.created_by is SET_NULL: the account that started it may be deleted while cases wait.
    evaluation = niah(user, team, cases=1)
    case = services.case_claim_next(evaluation.pk)
    user.delete()
    assert services.case_start(case) is None
    case.refresh_from_db()
    assert case.status == CaseStatus.SKIPPED
    assert case.reason == "Not run: the account that started the evaluation no longer exists."


def test_the_sweep_recovers_cases_whose_task_was_lost(user, team, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from rlmweb.sweeps import sweeps

    assert services.evaluations_recover in sweeps()
    started = []
    monkeypatch.setattr("apps.evals.tasks.run_case.delay", lambda case_id: started.append(case_id))
    evaluation = niah(user, team, cases=3, concurrency=2)
    finished_run = services.case_claim_next(evaluation.pk)
    run = services.case_start(finished_run)
    run_execute(run.pk)  # its task died after the run finished, before scoring
    lost = services.case_claim_next(evaluation.pk)  # its task never arrived
    EvalCase.objects.filter(pk=lost.pk).update(claimed_at=timezone.now() - timedelta(hours=1))

    assert services.evaluations_recover() == 2
    statuses = dict(evaluation.cases.values_list("index", "status"))
    assert statuses[0] == CaseStatus.SCORED
    assert statuses[1] == statuses[2] == CaseStatus.RUNNING and len(started) == 2  # both slots given out again
    assert services.evaluations_recover() == 0  # nothing left to recover: nothing happens


def test_runs_use_the_evaluations_sub_model(user, team, scripted):
    evaluation = niah(user, team, cases=1, sub_model=ROOT, depths=[0.1])
    assert evaluation.depths == [0.1] and evaluation.cases.get().meta["depth"] == 0.1
    services.evaluation_run_here(evaluation)
    run = evaluation.cases.get().run
    assert (run.root_model, run.sub_model) == (OFFLINE, ROOT)
    assert run.subcalls > 0 and scripted.provider.requests  # the offline root's sub-calls reached the sub-model


def test_sub_model_and_depths_are_validated(user, team):
    with pytest.raises(ValidationError) as raised:
        niah(user, team, sub_model="acme/none", depths=[2])
    assert set(raised.value.message_dict) == {"sub_model", "depths"}


def test_a_preparation_that_cannot_store_its_documents_fails_with_the_reason(user, team, settings):
    settings.MAX_UPLOAD_BYTES = 5_000  # the generated 10,000-character haystacks are refused
    with pytest.raises(ValidationError, match="over the limit"):
        niah(user, team)  # in-process (the CLI): nothing is left behind
    assert not Evaluation.objects.exists()
    later = niah(user, team, prepare=False)  # the web form: prepared by the evals.prepare task
    assert later.status == EvaluationStatus.PREPARING and not later.cases.exists()
    prepared = services.evaluation_prepare(later.pk)
    assert prepared.status == EvaluationStatus.FAILED and "over the limit" in prepared.error
    assert services.evaluation_resume(user, prepared, enqueue=False).status == EvaluationStatus.FAILED


def test_a_busy_team_puts_the_case_back_and_the_cli_waits(user, team, settings, monkeypatch):
    from tests.web.runs_factories import make_run

    settings.MAX_CONCURRENT_RUNS_PER_TEAM = 1
    evaluation = niah(user, team, cases=1, concurrency=1)
    other = make_run(team, user, status=RunStatus.RUNNING)  # someone else's run holds the team's slot
    case = services.case_claim_next(evaluation.pk)
    with pytest.raises(services.TeamBusy):
        services.case_run(case)
    case.refresh_from_db()
    assert case.status == CaseStatus.PENDING and case.run is None

    def slot_freed(seconds):
        type(other).objects.filter(pk=other.pk).update(status=RunStatus.SUCCEEDED)

    monkeypatch.setattr(services.time, "sleep", slot_freed)
    services.evaluation_run_here(evaluation)
    assert evaluation.cases.get().status == CaseStatus.SCORED
