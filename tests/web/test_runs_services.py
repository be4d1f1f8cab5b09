"""Asking, cancelling and re-running, as the services specify them (views and API only translate)."""

import uuid

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.documents.models import DocumentStatus
from apps.runs import services
from apps.runs.models import Run, RunDocument, RunEvent, RunStatus
from apps.teams.models import Membership, Role
from rlmweb.web.errors import RateLimited
from tests.web.runs_factories import clean_rate_limits, make_document, make_run  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_rate_limits", "data_dir")]


@pytest.fixture
def docs(team, user):
    return [make_document(team, name="a.txt", user=user), make_document(team, "Second text.", name="b.txt")]


def ask(user, team, docs, **overrides):
    arguments = {"question": "What is the secret code?", "document_ids": [d.pk for d in docs], "mode": "rlm",
                 "root_model": "offline/heuristic", "sub_model": "offline/heuristic", "limits": None}
    arguments.update(overrides)
    return services.run_create(user, team, **arguments)


def test_ask_creates_the_run_with_its_documents_in_order_and_enqueues_it_after_commit(
        user, team, docs, enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = ask(user, team, list(reversed(docs)), limits={"max_iterations": 7, "max_cost_usd": 1})
    assert run.status == RunStatus.QUEUED and run.created_by == user and run.team == team
    assert list(RunDocument.objects.filter(run=run).values_list("document__name", flat=True)) == ["b.txt", "a.txt"]
    assert run.limits == {"max_iterations": 7, "max_depth": 1, "max_subcalls": 1000, "max_cost_usd": 1.0,
                          "max_wall_s": 3600}
    assert enqueued == [([str(run.pk)], run.task_id)]


def test_models_default_to_the_settings_default(user, team, docs, settings):
    run = services.run_create(user, team, "Q?", [d.pk for d in docs])
    assert run.root_model == settings.DEFAULT_ROOT_MODEL and run.sub_model == settings.DEFAULT_SUB_MODEL



def test_the_engine_is_given_the_configured_models_as_the_only_ones_code_may_name(user, team, docs, settings):
    from apps.runs.execution import build_spec

    settings.RLMWEB_MODELS = [*settings.RLMWEB_MODELS, {"model": "openai/gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"}]
    spec = build_spec(ask(user, team, docs))
    assert spec.allowed_models == [m["model"] for m in settings.RLMWEB_MODELS]
    assert "openai/gpt-4o-mini" in spec.allowed_models and "offline/heuristic" in spec.allowed_models


def test_the_repl_limits_come_from_the_settings(user, team, docs, settings):
    from apps.runs.execution import build_spec

    settings.RUN_OUTPUT_LIMIT_CHARS, settings.RUN_SUBCALL_CONCURRENCY, settings.RUN_CELL_TIMEOUT_S = 500, 3, 9
    limits = build_spec(ask(user, team, docs, limits={"max_iterations": 4})).limits
    assert (limits.output_limit_chars, limits.subcall_concurrency, limits.cell_timeout_s) == (500, 3, 9)
    assert limits.max_iterations == 4

BAD_ASKS = [
    ({"question": ""}, "question", "Write a question"),
    ({"question": "   \n"}, "question", "Write a question"),
    ({"question": "x" * 20_001}, "question", "at most 20,000"),
    ({"question": 12}, "question", "Write a question"),
    ({"document_ids": []}, "documents", "Pick at least one document"),
    ({"document_ids": ["not-a-uuid"]}, "documents", "is not a document id"),
    ({"document_ids": [uuid.uuid4()]}, "documents", "No such document in this team"),
    ({"mode": "fast"}, "mode", "Unknown mode 'fast'"),
    ({"root_model": "acme/unknown"}, "root_model", "Unknown model 'acme/unknown'"),
    ({"sub_model": "openai/gpt-5"}, "sub_model", "Set OPENAI_API_KEY"),
    ({"root_model": ""}, "root_model", "Choose a model"),
    ({"limits": {"max_iterations": 0}}, "limits.max_iterations", "between 1 and 200"),
    ({"limits": {"max_iterations": 201}}, "limits.max_iterations", "between 1 and 200"),
    ({"limits": {"max_iterations": "5"}}, "limits.max_iterations", "whole number"),
    ({"limits": {"max_iterations": 2.5}}, "limits.max_iterations", "whole number"),
    ({"limits": {"max_iterations": True}}, "limits.max_iterations", "whole number"),
    ({"limits": {"max_depth": 0}}, "limits.max_depth", "between 1 and 5"),
    ({"limits": {"max_depth": 6}}, "limits.max_depth", "between 1 and 5"),
    ({"limits": {"max_cost_usd": 0}}, "limits.max_cost_usd", "more than 0"),
    ({"limits": {"max_cost_usd": -3}}, "limits.max_cost_usd", "more than 0"),
    ({"limits": {"max_cost_usd": 1000.5}}, "limits.max_cost_usd", "at most 1000"),
    ({"limits": {"max_cost_usd": float("nan")}}, "limits.max_cost_usd", "Must be a number"),
    ({"limits": {"max_subcalls": 100_001}}, "limits.max_subcalls", "between 1 and 100000"),
    ({"limits": {"max_tokens": 5}}, "limits.max_tokens", "Unknown limit"),
    ({"limits": [1, 2]}, "limits", "must be an object"),
]


@pytest.mark.parametrize(("override", "field", "message"), BAD_ASKS)
def test_each_bad_ask_is_refused_with_a_clear_message_and_creates_nothing(
        user, team, docs, enqueued, monkeypatch, override, field, message):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValidationError) as refused:
        ask(user, team, docs, **override)
    errors = refused.value.message_dict
    assert field in errors, errors
    assert message.lower() in " ".join(errors[field]).lower()
    assert Run.objects.count() == 0 and RunDocument.objects.count() == 0 and enqueued == []


def test_documents_must_be_ready_and_of_the_team(user, other_user, team, enqueued):
    extracting = make_document(team, name="big.pdf", status=DocumentStatus.EXTRACTING)
    foreign = make_document(other_user.teams.first(), name="theirs.txt")
    with pytest.raises(ValidationError, match="big.pdf is not ready"):
        ask(user, team, [extracting])
    with pytest.raises(ValidationError, match="No such document in this team"):
        ask(user, team, [foreign])
    dup = make_document(team)
    with pytest.raises(ValidationError, match="listed twice"):
        ask(user, team, [dup, dup])
    assert Run.objects.count() == 0


def test_asking_needs_membership_and_a_role_that_creates(user, other_user, team, docs):
    with pytest.raises(services.RunNotFound):
        ask(other_user, team, docs)
    Membership.objects.create(team=team, user=other_user, role=Role.VIEWER)
    with pytest.raises(PermissionDenied):
        ask(other_user, team, docs)
    Membership.objects.filter(team=team, user=other_user).update(role=Role.MEMBER)
    assert ask(other_user, team, docs).created_by == other_user


def test_a_team_at_its_concurrent_run_limit_is_told_to_wait(user, team, docs, settings):
    settings.MAX_CONCURRENT_RUNS_PER_TEAM = 1
    make_run(team, user, docs, status=RunStatus.RUNNING)
    with pytest.raises(ValidationError, match="already has 1 runs queued or running"):
        ask(user, team, docs)


def test_a_team_at_its_monthly_spending_cap_cannot_ask_and_nothing_is_created(user, team, docs, enqueued):
    from decimal import Decimal

    team.monthly_cap_usd = Decimal("1.00")
    team.save(update_fields=["monthly_cap_usd"])
    make_run(team, user, docs, status=RunStatus.SUCCEEDED, cost_usd=0.99)
    ask(user, team, docs)  # under the cap: allowed
    Run.objects.filter(team=team, status=RunStatus.SUCCEEDED).update(cost_usd=1.0)
    before = Run.objects.count()
    with pytest.raises(ValidationError, match=r"monthly spending cap of \$1\.00"):
        ask(user, team, docs)
    assert Run.objects.count() == before


def test_asking_is_rate_limited_per_user(user, team, docs, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "ask": (2, 60)}
    ask(user, team, docs)
    ask(user, team, docs)
    with pytest.raises(RateLimited, match="at most 2 per 60 s"):
        ask(user, team, docs)


def test_a_run_that_cannot_be_queued_is_failed_with_the_reason(user, team, docs, monkeypatch,
                                                               django_capture_on_commit_callbacks):
    from apps.runs.tasks import run_rlm

    def broker_down(**kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(run_rlm, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        run = ask(user, team, docs)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "broker unreachable" in run.failure_reason
    assert list(RunEvent.objects.filter(run=run).values_list("seq", "type")) == [(1, "run.finished")]


def test_cancelling_a_queued_run_ends_it_at_once_with_a_terminal_event(user, team, docs):
    run = make_run(team, user, docs)
    services.run_cancel(user, run)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.cancel_requested and run.finished_at is not None
    event = RunEvent.objects.get(run=run)
    assert (event.seq, event.type, event.data["status"]) == (1, "run.finished", "cancelled")
    assert run.last_seq == 1


def test_a_cancelled_run_delivered_to_a_worker_afterwards_is_not_executed(user, team, docs):
    from apps.runs.execution import run_execute

    run = make_run(team, user, docs)
    services.run_cancel(user, run)
    assert run_execute(run.pk, worker="late") == RunStatus.CANCELLED
    assert RunEvent.objects.filter(run=run).count() == 1


def test_cancelling_a_running_run_asks_its_worker_to_stop(user, team, docs):
    run = make_run(team, user, docs, status=RunStatus.RUNNING)
    services.run_cancel(user, run)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.cancel_requested
    assert not RunEvent.objects.filter(run=run).exists()


def test_cancelling_a_finished_run_is_a_conflict(user, team, docs):
    run = make_run(team, user, docs, status=RunStatus.SUCCEEDED)
    with pytest.raises(services.RunConflict, match="already finished"):
        services.run_cancel(user, run)


def test_only_the_asker_or_a_team_admin_may_cancel(user, other_user, team, docs):
    run = make_run(team, user, docs)
    with pytest.raises(services.RunNotFound):
        services.run_cancel(other_user, run)
    Membership.objects.create(team=team, user=other_user, role=Role.MEMBER)
    with pytest.raises(PermissionDenied):
        services.run_cancel(other_user, run)
    Membership.objects.filter(team=team, user=other_user).update(role=Role.ADMIN)
    assert services.run_cancel(other_user, run).status == RunStatus.CANCELLED


def test_rerun_keeps_the_question_and_documents_and_changes_what_is_asked(user, team, docs):
    original = ask(user, team, docs, limits={"max_iterations": 5, "max_depth": 2})
    again = services.run_rerun(user, original, mode="rlm-no-subcalls", limits={"max_iterations": 9})
    assert again.rerun_of == original and again.question == original.question
    assert again.mode == "rlm-no-subcalls"
    assert again.limits["max_iterations"] == 9 and again.limits["max_depth"] == 2
    assert list(RunDocument.objects.filter(run=again).values_list("document_id", flat=True)) == [d.pk for d in docs]
    with pytest.raises(ValidationError, match="Unknown mode"):
        services.run_rerun(user, original, mode="nope")
    with pytest.raises(ValidationError):
        services.run_rerun(user, original, colour="blue")


@pytest.mark.django_db(transaction=True)
def test_parallel_asks_never_pass_the_concurrent_run_limit(user, team, settings, monkeypatch):
    """20 asks at once against a limit of 10: the count and the insert are one locked step."""
    import threading
    import time

    from django.db import connection

    settings.MAX_CONCURRENT_RUNS_PER_TEAM = 10
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "ask": (1000, 60)}
    doc = make_document(team)
    monkeypatch.setattr(services, "_enqueue", lambda run_id, task_id: None)
    counted = services.rate_limit_hit

    def slow_hit(*args):  # widen the window between counting the active runs and creating one
        time.sleep(0.05)
        counted(*args)

    monkeypatch.setattr(services, "rate_limit_hit", slow_hit)
    start = threading.Barrier(20)
    outcomes = []

    def ask_once():
        start.wait()
        try:
            services.run_create(user, team, "What is the code?", [doc.pk])
            outcomes.append("created")
        except ValidationError:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=ask_once) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["created"] * 10 + ["refused"] * 10
    assert Run.objects.filter(team=team, status=RunStatus.QUEUED).count() == 10
