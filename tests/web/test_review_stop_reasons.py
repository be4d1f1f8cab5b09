"""Every stop reason the engine, the web app and the CLI write is filed under a review outcome that says why.

A new StopReason fails here until this table (and, where needed, a classifier rule) says where it goes.
"""

import pytest

from apps.review.classify import OUTCOMES, RunFacts, classify
from apps.review.models import RunReview
from apps.review.services import reviews_classify_pending
from apps.runs import services
from apps.runs.models import RunStatus
from tests.review.trajectories import Trajectory
from tests.web.runs_factories import clean_rate_limits, make_document  # noqa: F401
from worker.engine.vocabulary import StopReason

OUTCOME_OF_STOP = {
    StopReason.MAX_ITERATIONS: "budget_exceeded_iterations",
    StopReason.MAX_DEPTH: "budget_exceeded_depth",
    StopReason.MAX_SUBCALLS: "budget_exceeded_subcalls",
    StopReason.MAX_COST: "budget_exceeded_cost",
    StopReason.MAX_WALL_TIME: "budget_exceeded_time",
    StopReason.CANCELLED: "cancelled",
    StopReason.PROVIDER_ERROR: "provider_error",
    StopReason.NO_FINAL_ANSWER: "no_final_answer",
    StopReason.WORKER_LOST: "worker_lost",
    StopReason.ENQUEUE_FAILED: "worker_lost",  # the workers never got it; was filed as no_final_answer
}


def ended(reason: StopReason) -> Trajectory:
    """A run that looked at its document, then was ended with `reason` and no answer."""
    status = RunStatus.CANCELLED if reason == StopReason.CANCELLED else RunStatus.FAILED
    t = Trajectory().turn("```repl\nprint(context[:50])\n```").cell(stdout="Some text.")
    return t.finish(status, reason, f"Ended: {reason}.")


def test_the_table_names_every_stop_reason_and_only_real_outcomes():
    assert set(OUTCOME_OF_STOP) == set(StopReason)
    assert set(OUTCOME_OF_STOP.values()) <= set(OUTCOMES)


@pytest.mark.parametrize("reason", list(StopReason))
def test_a_run_ended_by_a_stop_reason_is_filed_under_its_outcome(reason):
    assert classify(ended(reason).events).outcome == OUTCOME_OF_STOP[reason]


@pytest.mark.parametrize("reason", list(StopReason))
def test_the_run_fields_say_the_same_when_the_events_lack_the_end(reason):
    t = Trajectory().turn("```repl\nprint(context[:50])\n```").cell(stdout="Some text.")
    status = RunStatus.CANCELLED if reason == StopReason.CANCELLED else RunStatus.FAILED
    facts = RunFacts(status=status, stop_reason=reason, failure_reason=f"Ended: {reason}.")
    assert classify(t.events, facts).outcome == OUTCOME_OF_STOP[reason]


@pytest.mark.django_db
@pytest.mark.usefixtures("clean_rate_limits", "data_dir")
def test_a_run_that_could_not_be_queued_is_reviewed_as_lost_by_the_workers(user, team, monkeypatch,
                                                                           django_capture_on_commit_callbacks):
    from apps.runs.tasks import run_rlm

    def broker_down(**kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(run_rlm, "apply_async", broker_down)
    document = make_document(team, user=user)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.run_create(user, team, "What is the code?", [document.pk], root_model="offline/heuristic",
                                  sub_model="offline/heuristic")
    run.refresh_from_db()
    assert (run.status, run.stop_reason) == (RunStatus.FAILED, StopReason.ENQUEUE_FAILED)
    assert reviews_classify_pending() == 1
    review = RunReview.objects.get(run=run)
    assert review.outcome == "worker_lost"
    assert review.details["stop_reason"] == "enqueue_failed"
