"""`apps.runs.lifecycle.end_run`: the one function that ends a run the engine did not end."""

import time
from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from apps.runs.lifecycle import end_run
from apps.runs.models import Run, RunEvent, RunStatus
from apps.runs.sink import persist_events
from tests.web.runs_factories import make_run
from worker.engine.events import Event
from worker.engine.vocabulary import StopReason

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("data_dir")]


def finished_events(run) -> list[dict]:
    return list(RunEvent.objects.filter(run=run, type="run.finished").values_list("data", flat=True))


def test_ending_a_run_twice_writes_its_end_once(team, user):
    run = make_run(team, user, status=RunStatus.RUNNING, started_at=timezone.now())
    persist_events(run.pk, [Event(1, "run.started", time.time(), {})])
    assert end_run(run.pk, RunStatus.FAILED, "Internal error: boom") is True
    assert end_run(run.pk, RunStatus.CANCELLED, "again", StopReason.CANCELLED) is False
    run.refresh_from_db()
    assert (run.status, run.failure_reason, run.stop_reason, run.last_seq) == (RunStatus.FAILED, "Internal error: boom",
                                                                               "", 2)
    [data] = finished_events(run)
    assert data["status"] == "failed" and data["totals"]["cost_usd"] == 0.0 and run.finished_at is not None


def test_a_queued_run_ends_with_no_totals_and_a_claimed_one_is_not_ended_as_queued(team, user):
    queued = make_run(team, user)
    assert end_run(queued.pk, RunStatus.CANCELLED, "Cancelled before it started.", StopReason.CANCELLED,
                   only_from=(RunStatus.QUEUED,))
    queued.refresh_from_db()
    assert (queued.status, queued.stop_reason, queued.last_seq) == (RunStatus.CANCELLED, "cancelled", 1)
    assert finished_events(queued)[0]["totals"] is None
    claimed = make_run(team, user, status=RunStatus.RUNNING)
    assert not end_run(claimed.pk, RunStatus.FAILED, "never picked up", StopReason.WORKER_LOST,
                       only_from=(RunStatus.QUEUED,))
    assert Run.objects.get(pk=claimed.pk).status == RunStatus.RUNNING and not finished_events(claimed)


def test_a_guard_keeps_a_run_whose_worker_beat_meanwhile(team, user):
    cutoff = timezone.now() - timedelta(seconds=60)
    run = make_run(team, user, status=RunStatus.RUNNING, heartbeat_at=timezone.now())
    assert not end_run(run.pk, RunStatus.FAILED, "lost", StopReason.WORKER_LOST, only_from=(RunStatus.RUNNING,),
                       guard=Q(heartbeat_at__lt=cutoff))
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING


def test_a_taken_seq_writes_nothing(team, user):
    """A worker thought lost wrote meanwhile: the end is refused whole, the status included."""
    run = make_run(team, user, status=RunStatus.RUNNING)
    RunEvent.objects.create(run=run, seq=1, type="cell.finished", ts=time.time(), data={})  # last_seq still 0
    with pytest.raises(Exception):  # noqa: B017 (the database's unique (run, seq))
        end_run(run.pk, RunStatus.FAILED, "lost", StopReason.WORKER_LOST)
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING and not finished_events(run)
