"""The periodic sweep: runs whose queue message was lost, documents stuck extracting, expired
uploads, and prompt review classification of the runs the sweep (or a cancel) ended.

Time is simulated by moving timestamps back in the database and file mtimes back on disk.
"""

import os
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from apps.documents import services as documents
from apps.documents.models import Document, DocumentStatus, UploadSession
from apps.review.models import RunReview
from apps.runs import execution, services
from apps.runs.execution import run_execute, runs_fail_unclaimed, runs_mark_lost
from apps.runs.models import Run, RunEvent, RunStatus
from rlmweb import sweeps
from tests.web.runs_factories import make_document, make_run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("data_dir")]


def age(obj, **delta) -> None:
    """Move an object's created_at back by `delta`."""
    type(obj).objects.filter(pk=obj.pk).update(created_at=timezone.now() - timedelta(**delta))


def set_mtime(path: Path, **delta) -> None:
    then = time.time() - timedelta(**delta).total_seconds()
    os.utime(path, (then, then))


def queued(team, user, **delta) -> Run:
    run = make_run(team, user, [make_document(team)], task_id=str(uuid.uuid4()))
    if delta:
        age(run, **delta)
    return run


def events_of(run) -> list[tuple[int, str]]:
    return list(RunEvent.objects.filter(run=run).values_list("seq", "type"))


# --- runs stuck queued ------------------------------------------------------------------------------


def test_a_run_never_picked_up_is_failed_with_its_terminal_event_and_classified(team, user):
    run = queued(team, user, minutes=16)
    assert runs_fail_unclaimed() == 1
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.finished_at is not None and run.started_at is None
    assert run.failure_reason.startswith("Never picked up by a worker")
    assert events_of(run) == [(1, "run.finished")] and run.last_seq == 1
    assert RunEvent.objects.get(run=run).data["failure_reason"] == run.failure_reason
    assert RunReview.objects.get(run=run).outcome == "worker_lost"
    assert runs_fail_unclaimed() == 0  # once


def test_a_late_delivery_of_a_failed_run_does_not_execute_it(team, user):
    """The worker's claim is `UPDATE … WHERE status = 'queued'`: the message turning up after all
    (or delivered twice) finds the run ended and runs nothing."""
    run = queued(team, user, minutes=16)
    runs_fail_unclaimed()
    assert run_execute(run.pk, worker="late") == RunStatus.FAILED
    assert events_of(run) == [(1, "run.finished")]
    assert Run.objects.get(pk=run.pk).worker == ""


def test_a_run_queued_less_than_the_threshold_is_left_alone(team, user, settings):
    run = queued(team, user, minutes=14)
    assert runs_fail_unclaimed() == 0
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED
    settings.RUN_QUEUED_STALE_AFTER_S = 10 * 60  # the threshold is the setting
    assert runs_fail_unclaimed() == 1
    assert "10 minutes" in Run.objects.get(pk=run.pk).failure_reason


def test_claimed_runs_are_never_touched(team, user):
    running = make_run(team, user, status=RunStatus.RUNNING, task_id="t1", started_at=timezone.now(),
                       heartbeat_at=timezone.now())
    age(running, hours=3)
    finished = make_run(team, user, status=RunStatus.SUCCEEDED, task_id="t2", finished_at=timezone.now())
    age(finished, hours=3)
    assert runs_fail_unclaimed() == 0
    assert Run.objects.get(pk=running.pk).status == RunStatus.RUNNING
    assert Run.objects.get(pk=finished.pk).status == RunStatus.SUCCEEDED
    assert not RunEvent.objects.exists()


def test_a_worker_claiming_the_run_during_the_sweep_wins(team, user, monkeypatch):
    """The sweep's status change is guarded like the claim: a run claimed after the sweep chose it is
    left to its worker, with no event written."""
    run = queued(team, user, minutes=20)
    real_idle = execution.workers_idle

    def claim_meanwhile(now=None):
        now = timezone.now()
        assert Run.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=now, heartbeat_at=now, worker="w1")
        return real_idle(now)

    monkeypatch.setattr(execution, "workers_idle", claim_meanwhile)
    assert runs_fail_unclaimed() == 0
    run.refresh_from_db()
    assert (run.status, run.worker, run.failure_reason) == (RunStatus.RUNNING, "w1", "")
    assert events_of(run) == [] and not RunReview.objects.filter(run=run).exists()


def test_a_run_waiting_behind_busy_workers_is_left_alone_until_a_later_run_overtakes_it(team, user):
    busy = make_run(team, user, status=RunStatus.RUNNING, task_id="busy", started_at=timezone.now(),
                    heartbeat_at=timezone.now())
    age(busy, hours=1)
    waiting = queued(team, user, minutes=40)
    assert runs_fail_unclaimed() == 0
    assert Run.objects.get(pk=waiting.pk).status == RunStatus.QUEUED
    # A run asked after it has been claimed: the queue is FIFO, so its message is gone.
    make_run(team, user, status=RunStatus.RUNNING, task_id="later", started_at=timezone.now(),
             heartbeat_at=timezone.now())
    assert runs_fail_unclaimed() == 1
    assert Run.objects.get(pk=waiting.pk).status == RunStatus.FAILED
    assert Run.objects.get(pk=busy.pk).status == RunStatus.RUNNING


def test_a_run_that_just_finished_counts_as_a_busy_worker(team, user):
    waiting = queued(team, user, minutes=40)
    make_run(team, user, status=RunStatus.SUCCEEDED, task_id="x", finished_at=timezone.now() - timedelta(seconds=30))
    age(Run.objects.exclude(pk=waiting.pk).get(), hours=1)  # asked before: no evidence of overtaking
    assert runs_fail_unclaimed() == 0
    Run.objects.exclude(pk=waiting.pk).update(finished_at=timezone.now() - timedelta(minutes=5))
    assert runs_fail_unclaimed() == 1


def test_a_cli_run_whose_process_died_is_failed_even_while_workers_are_busy(team, user):
    make_run(team, user, status=RunStatus.RUNNING, task_id="busy", heartbeat_at=timezone.now())
    cli = make_run(team, user, task_id="")  # enqueue=False: only its own process would run it
    age(cli, minutes=16)
    assert runs_fail_unclaimed() == 1
    assert Run.objects.get(pk=cli.pk).status == RunStatus.FAILED


def test_a_stuck_queued_run_whose_cancel_was_requested_ends_cancelled(team, user):
    run = queued(team, user, minutes=16)
    Run.objects.filter(pk=run.pk).update(cancel_requested=True)
    assert runs_fail_unclaimed() == 1
    run.refresh_from_db()
    assert (run.status, run.stop_reason) == (RunStatus.CANCELLED, "cancelled")
    assert RunReview.objects.get(run=run).outcome == "cancelled"


# --- lost running runs and prompt classification ---------------------------------------------------


def test_runs_marked_lost_are_classified_by_the_same_sweep(team, user):
    run = make_run(team, user, status=RunStatus.RUNNING, started_at=timezone.now(),
                   heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert runs_mark_lost() == 1
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.stop_reason == "worker_lost"
    assert RunReview.objects.get(run=run).outcome == "worker_lost"



WRITES = ("INSERT", "UPDATE", "DELETE")


@pytest.mark.parametrize("where", ["page", "api", "list", "api_list", "events"])
def test_looking_at_a_lost_run_writes_nothing_and_shows_it_lost(team, user, where):
    """Reads never write: the run page, the runs list and the API show a silent run as lost; only
    the sweep fails it."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    lost = make_run(team, user, status=RunStatus.RUNNING, started_at=timezone.now(),
                    heartbeat_at=timezone.now() - timedelta(seconds=settings.RUN_LOST_AFTER_S + 5))
    alive = make_run(team, user, status=RunStatus.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now())
    client = Client()
    client.force_login(user)
    url = {"page": f"/runs/{lost.pk}/", "api": f"/api/runs/{lost.pk}/", "list": f"/runs/?team={team.pk}",
           "api_list": f"/api/runs/?team={team.pk}", "events": f"/api/runs/{lost.pk}/events/"}[where]
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith(WRITES)]
    assert writes == []
    lost.refresh_from_db()
    assert lost.status == RunStatus.RUNNING and events_of(lost) == []
    if where in ("page", "list"):
        assert response.content.decode().count("worker lost") == 1  # the lost run only, not the live one
    elif where == "api":
        assert response.json()["worker_lost"] is True
    elif where == "api_list":
        assert {r["id"]: r["worker_lost"] for r in response.json()["runs"]} == {str(lost.pk): True,
                                                                               str(alive.pk): False}
    # the sweep is what ends it
    assert sweeps.sweep_once()["runs_mark_lost"] == 1
    lost.refresh_from_db()
    assert (lost.status, lost.stop_reason) == (RunStatus.FAILED, "worker_lost")
    assert events_of(lost)[-1][1] == "run.finished"
    assert Run.objects.get(pk=alive.pk).status == RunStatus.RUNNING
    assert "no heartbeat" not in client.get(f"/runs/{lost.pk}/").content.decode()  # failed now, not "seems lost"


def test_a_lost_run_ends_with_the_totals_its_engine_reported_plus_the_calls_after_them(team, user):
    """Totals come from the engine's events: the last cost.updated, plus a call recorded after it
    (the worker died between the two), summed by the engine's own `recorded_totals`."""
    from apps.runs.sink import persist_events
    from worker.engine.events import Event

    run = make_run(team, user, status=RunStatus.RUNNING, started_at=timezone.now(),
                   heartbeat_at=timezone.now() - timedelta(minutes=5))
    reported = {"cost_usd": 0.5, "cost_unknown_calls": 0, "prompt_tokens": 100, "completion_tokens": 10,
                "iterations": 1, "subcalls": 0, "max_depth_reached": 0, "elapsed_s": 3.0}
    turn = {"node_id": None, "depth": 0, "iteration": 2, "cost_usd": 0.25, "prompt_tokens": 40, "completion_tokens": 4,
            "model": "m", "attempts": 1}
    persist_events(run.pk, [Event(1, "run.started", time.time(), {}), Event(2, "cost.updated", time.time(),
                                                                         {"totals": reported}),
                            Event(3, "root.turn", time.time(), turn)])
    assert runs_mark_lost() == 1
    run.refresh_from_db()
    totals = RunEvent.objects.get(run=run, seq=4).data["totals"]
    assert (totals["cost_usd"], totals["prompt_tokens"], totals["iterations"], totals["elapsed_s"]) == (0.75, 140, 2, 3.0)
    assert (run.cost_usd, run.prompt_tokens, run.completion_tokens, run.iterations) == (0.75, 140, 14, 2)


def test_the_sweeper_thread_sweeps_until_stopped(monkeypatch, settings):
    """The beat of `manage.py serve` (and of each Celery worker process): `sweep_once` every N s,
    stopped cleanly."""
    passes: list[float] = []
    monkeypatch.setattr(sweeps, "sweep_once", lambda: passes.append(time.monotonic()) or {})
    sweeper = sweeps.Sweeper(interval_s=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while len(passes) < 3:
            assert time.monotonic() < deadline, "the sweeper did not sweep three times"
            time.sleep(0.02)
    finally:
        sweeper.stop(timeout=10)
    assert not sweeper.running
    done = len(passes)
    time.sleep(0.2)
    assert len(passes) == done and sweeper.passes == done  # stopped: no pass after stop
    assert all(b - a >= 0.04 for a, b in zip(passes, passes[1:], strict=False))
    settings.SWEEP_INTERVAL_S, settings.RUN_LOST_AFTER_S = 5, 60
    assert sweeps.sweep_interval_s() == 5
    settings.RUN_LOST_AFTER_S = 4  # runs declared lost sooner: swept twice as often
    assert sweeps.sweep_interval_s() == 2


def test_serve_runs_the_sweeper_with_its_embedded_workers_and_stops_it(monkeypatch):
    from rlmweb.embedded_worker import EmbeddedWorkers

    monkeypatch.setattr(sweeps, "sweep_once", lambda: {})
    started = []
    monkeypatch.setattr("rlmweb.embedded_worker.EmbeddedWorker.start", lambda self, *a, **k: started.append(self))
    monkeypatch.setattr("rlmweb.embedded_worker.EmbeddedWorker.stop", lambda self, *a, **k: None)
    from rlmweb.celery import app

    workers = EmbeddedWorkers(app, 1, 1, name="sweeping", sweep=True)
    workers.start()
    try:
        assert len(started) == 2 and sweeps._sweeper is not None and sweeps._sweeper.running
        sweeper = sweeps._sweeper
    finally:
        workers.stop()
    assert sweeps._sweeper is None and not sweeper.running


def test_one_run_that_cannot_be_marked_lost_does_not_stop_the_others(team, user):
    """A worker that was alive after all wrote an event with the seq the sweep wanted."""
    stale = timezone.now() - timedelta(minutes=5)
    alive = make_run(team, user, status=RunStatus.RUNNING, heartbeat_at=stale)
    RunEvent.objects.create(run=alive, seq=1, type="cell.finished", ts=time.time(), data={})
    lost = make_run(team, user, status=RunStatus.RUNNING, heartbeat_at=stale)
    assert runs_mark_lost() == 1
    assert Run.objects.get(pk=lost.pk).status == RunStatus.FAILED
    assert Run.objects.get(pk=alive.pk).status == RunStatus.RUNNING
    assert RunReview.objects.filter(run=lost).exists() and not RunReview.objects.filter(run=alive).exists()


def test_a_run_cancelled_before_it_started_is_classified_by_the_next_sweep(team, user):
    run = queued(team, user)
    services.run_cancel(user, run)
    assert not RunReview.objects.filter(run=run).exists()
    result = sweeps.sweep_once()
    assert result["reviews_classify_pending"] == 1
    assert RunReview.objects.get(run=run).outcome == "cancelled"


def test_one_run_that_cannot_be_classified_does_not_keep_the_others_unreviewed(team, user, monkeypatch):
    from apps.review import services as review_services

    broken = make_run(team, user, status=RunStatus.SUCCEEDED)
    fine = make_run(team, user, status=RunStatus.SUCCEEDED)
    real = review_services.review_classify

    def review_classify(run):
        if run.pk == broken.pk:
            raise ValueError("a rule tripped over this run")
        return real(run)

    monkeypatch.setattr(review_services, "review_classify", review_classify)
    assert review_services.reviews_classify_pending() == 1
    assert RunReview.objects.filter(run=fine).exists() and not RunReview.objects.filter(run=broken).exists()


# --- documents stuck extracting ---------------------------------------------------------------------


def extracting(team, **delta) -> Document:
    doc = make_document(team, status=DocumentStatus.EXTRACTING)
    Path(settings.MEDIA_ROOT, "documents", str(team.pk), f"{doc.pk}.txt").unlink()  # extraction writes it
    original = Path(settings.MEDIA_ROOT) / "documents" / str(team.pk) / f"{doc.pk}.original.txt"
    original.write_text("The secret code is PLUM-42.\n")
    Document.objects.filter(pk=doc.pk).update(original_file=str(original.relative_to(settings.MEDIA_ROOT)))
    if delta:
        age(doc, **delta)
    return Document.objects.get(pk=doc.pk)


def text_part(doc, **delta) -> Path:
    part = Path(settings.MEDIA_ROOT) / "documents" / str(doc.team_id) / f"{doc.pk}.txt.{uuid.uuid4().hex[:8]}.part"
    part.write_text("The secret")
    if delta:
        set_mtime(part, **delta)
    return part


def files_of(doc) -> list[str]:
    return sorted(p.name for p in (Path(settings.MEDIA_ROOT) / "documents" / str(doc.team_id)).glob(f"{doc.pk}.*"))


def test_a_document_whose_worker_died_mid_extraction_is_failed_and_its_files_removed(team):
    doc = extracting(team, hours=2)
    text_part(doc, minutes=31)
    assert documents.documents_fail_stuck() == 1
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.FAILED and doc.error.startswith("Text extraction did not finish")
    assert "Upload the file again" in doc.error
    assert (doc.original_file, doc.text_file, doc.progress) == ("", "", 0.0)
    assert files_of(doc) == []


def test_an_extraction_still_writing_is_left_alone(team):
    doc = extracting(team, hours=2)
    part = text_part(doc, minutes=1)
    assert documents.documents_fail_stuck() == 0
    assert Document.objects.get(pk=doc.pk).status == DocumentStatus.EXTRACTING and part.exists()


def test_a_young_document_is_left_alone(team):
    doc = extracting(team, minutes=5)
    assert documents.documents_fail_stuck() == 0
    assert Document.objects.get(pk=doc.pk).status == DocumentStatus.EXTRACTING
    assert len(files_of(doc)) == 1


def test_an_extraction_never_started_is_failed_when_the_workers_are_idle(team):
    doc = extracting(team, minutes=31)
    assert documents.documents_fail_stuck() == 1
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.FAILED and doc.error.startswith("Text extraction never started")
    assert files_of(doc) == []


def test_an_extraction_waiting_behind_busy_workers_is_left_alone_until_overtaken(team, user):
    make_run(team, user, status=RunStatus.RUNNING, heartbeat_at=timezone.now())
    doc = extracting(team, minutes=45)
    assert documents.documents_fail_stuck() == 0
    assert Document.objects.get(pk=doc.pk).status == DocumentStatus.EXTRACTING
    make_document(team, text="uploaded later, already extracted\n")
    assert documents.documents_fail_stuck() == 1
    assert Document.objects.get(pk=doc.pk).status == DocumentStatus.FAILED


def test_another_extraction_writing_counts_as_a_busy_worker(team):
    writing = extracting(team, minutes=40)
    text_part(writing, seconds=10)
    waiting = extracting(team, minutes=45)  # uploaded before it, so not overtaken by a finished one
    assert documents.documents_fail_stuck() == 0
    assert Document.objects.get(pk=waiting.pk).status == DocumentStatus.EXTRACTING


def test_an_extraction_that_finishes_during_the_sweep_is_not_failed(team, monkeypatch):
    doc = extracting(team, minutes=31)
    from apps.runs import execution as runs_execution

    def finish_meanwhile(now=None):
        Document.objects.filter(pk=doc.pk).update(status=DocumentStatus.READY, text_file="x.txt")
        return True

    monkeypatch.setattr(runs_execution, "workers_idle", finish_meanwhile)
    assert documents.documents_fail_stuck() == 0
    doc.refresh_from_db()
    assert (doc.status, doc.error) == (DocumentStatus.READY, "")
    assert len(files_of(doc)) == 1  # its original is kept


def test_a_failed_document_is_retried_by_uploading_it_again(team, user, data_dir):
    doc = extracting(team, minutes=31)
    content = b"The secret code is PLUM-42.\n"
    Document.objects.filter(pk=doc.pk).update(sha256=documents.hashlib.sha256(content).hexdigest())
    documents.documents_fail_stuck()
    upload = data_dir / "again.txt"
    upload.write_bytes(content)
    outcome = documents.document_create_from_file(user=user, team=team, name="notes.txt", path=upload)
    assert outcome.created and outcome.document.status == DocumentStatus.EXTRACTING
    assert not Document.objects.filter(pk=doc.pk).exists()  # the failed one was replaced


def test_stray_partial_texts_of_documents_no_longer_extracting_are_removed(team):
    ready = make_document(team)
    old, fresh = text_part(ready, minutes=31), text_part(ready, minutes=1)
    gone = Path(settings.MEDIA_ROOT) / "documents" / str(team.pk) / f"{uuid.uuid4()}.txt.abcd1234.part"
    gone.write_text("x")
    set_mtime(gone, hours=1)
    young = extracting(team, minutes=1)
    young_part = text_part(young, minutes=40)  # its document is young: not stray, not stuck yet
    unrelated = Path(settings.MEDIA_ROOT) / "documents" / str(team.pk) / "notes.txt.1.part"
    unrelated.write_text("x")
    set_mtime(unrelated, hours=1)
    documents.documents_fail_stuck()
    assert not old.exists() and not gone.exists()
    assert fresh.exists() and young_part.exists() and unrelated.exists()
    assert Path(settings.MEDIA_ROOT, ready.text_file).exists()


# --- uploads and the sweep itself -------------------------------------------------------------------


def test_the_sweep_deletes_expired_uploads_and_orphaned_part_files(team, user):
    expired = UploadSession.objects.create(team=team, created_by=user, name="big.bin", size_bytes=100)
    documents.uploads_dir()
    expired.part_path.write_bytes(b"x" * 10)
    age(expired, hours=25)
    set_mtime(expired.part_path, hours=25)
    active = UploadSession.objects.create(team=team, created_by=user, name="big.bin", size_bytes=100)
    age(active, hours=25)  # started long ago, but a chunk arrived a minute ago
    active.part_path.write_bytes(b"x" * 10)
    set_mtime(active.part_path, minutes=1)
    orphan = documents.uploads_dir() / f"{uuid.uuid4()}.part"
    orphan.write_bytes(b"x")
    set_mtime(orphan, hours=25)
    result = sweeps.sweep_once()
    assert result["upload_sessions_clean_stale"] == 1
    assert not expired.part_path.exists() and not UploadSession.objects.filter(pk=expired.pk).exists()
    assert not orphan.exists()
    assert active.part_path.exists() and UploadSession.objects.filter(pk=active.pk).exists()


def test_the_sweep_runs_every_sweep_and_one_failing_does_not_stop_the_others(team, user, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(execution, "runs_mark_lost", broken)
    run = queued(team, user, minutes=16)
    doc = extracting(team, minutes=31)
    result = sweeps.sweep_once()
    assert result == {"broken": None, "runs_fail_unclaimed": 1, "documents_fail_stuck": 1,
                      "upload_sessions_clean_stale": 0, "reviews_classify_pending": 0, "evaluations_recover": 0}
    assert Run.objects.get(pk=run.pk).status == RunStatus.FAILED
    assert Document.objects.get(pk=doc.pk).status == DocumentStatus.FAILED
    assert RunReview.objects.filter(run=run).exists()
