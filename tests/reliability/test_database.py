"""Events are written in transactions that never leave a run half-recorded, and a run's totals
always equal the sum of its events — also when persisting fails part-way, transiently or for good.
"""

import threading

import pytest
from django.db import OperationalError

from apps.runs import execution, sink
from apps.runs.models import Run, RunEvent, RunStatus
from tests.reliability.runs import assert_recorded_whole
from tests.web.runs_factories import make_document, make_events, make_run
from worker.engine.events import Event

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("data_dir")]


@pytest.fixture
def run(team, user):
    return make_run(team, user, [make_document(team)], status=RunStatus.RUNNING)


def cost_event(seq: int, spent: float) -> Event:
    totals = {"cost_usd": spent, "cost_unknown_calls": 0, "prompt_tokens": seq * 10, "completion_tokens": seq,
              "iterations": 1, "subcalls": seq, "max_depth_reached": 1, "elapsed_s": 0.1}
    return Event(seq, "cost.updated", 0.0, {"totals": totals})


def test_a_batch_that_fails_half_way_leaves_no_event_and_no_total(run, monkeypatch):
    sink.persist_events(run.pk, make_events(1, 3))
    real = Run.objects.filter

    def fail_on_update(*args, **kwargs):  # the events insert succeeded; the run's row update fails
        query = real(*args, **kwargs)
        query.update = lambda **fields: (_ for _ in ()).throw(OperationalError("disk I/O error"))
        return query

    monkeypatch.setattr(Run.objects, "filter", fail_on_update)
    with pytest.raises(OperationalError):
        sink.persist_events(run.pk, [*make_events(4, 5), cost_event(6, 0.5)])
    monkeypatch.undo()
    assert list(RunEvent.objects.filter(run=run).values_list("seq", flat=True)) == [1, 2, 3]
    run.refresh_from_db()
    assert (run.last_seq, run.cost_usd) == (3, 0)


def test_the_sink_retries_a_transient_database_error_and_loses_nothing(run, monkeypatch):
    real = sink.persist_events
    failures = {"left": 3}

    def flaky(run_id, events):
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("database is locked")
        real(run_id, events)

    monkeypatch.setattr(sink, "persist_events", flaky)
    monkeypatch.setattr(sink, "RETRY_BACKOFF_S", 0.01)
    s = sink.DatabaseSink(run.pk)
    for event in [*make_events(1, 40), cost_event(41, 0.25)]:
        s.write(event)
    s.close()
    run.refresh_from_db()
    assert run.last_seq == 41 and run.cost_usd == 0.25 and failures["left"] == 0
    assert list(RunEvent.objects.filter(run=run).values_list("seq", flat=True)) == list(range(1, 42))


def engine_that_emits():
    """A stand-in engine emitting root turns and their running totals, as the real one does, until
    told to stop (the real one checks `should_stop` before every model call)."""
    def fake_run(spec, event_sink, should_stop):
        seq, turns = 0, 0
        while turns < 5000 and not should_stop():
            turns += 1
            event_sink.write(Event(seq + 1, "root.turn", 0.0, {
                "node_id": None, "depth": 0, "iteration": turns, "content": "…", "prompt_tokens": 10,
                "completion_tokens": 1, "cost_usd": 0.001, "latency_s": 0.0, "model": "m", "forced": False}))
            event_sink.write(Event(seq + 2, "cost.updated", 0.0, {"totals": {
                "cost_usd": round(turns * 0.001, 10), "cost_unknown_calls": 0, "prompt_tokens": turns * 10,
                "completion_tokens": turns, "iterations": turns, "subcalls": 0, "max_depth_reached": 0,
                "elapsed_s": 0.1}}))
            seq += 2
            if turns % 10 == 0:
                threading.Event().wait(0.06)  # let the sink flush batches
        return None

    return fake_run


def test_a_run_whose_events_cannot_be_recorded_fails_cleanly_with_the_reason(run, monkeypatch):
    """Persistence failing for good: the engine is stopped, the run ends failed (not running) with
    the reason, and what was recorded before is whole (contiguous, totals = events)."""
    Run.objects.filter(pk=run.pk).update(status=RunStatus.QUEUED)
    real = sink.persist_events
    calls = {"n": 0}

    def breaks_after_three_batches(run_id, events):
        calls["n"] += 1
        if calls["n"] > 3 and events[-1].type != "run.finished":
            raise OperationalError("could not extend file: No space left on device")
        real(run_id, events)

    monkeypatch.setattr(sink, "persist_events", breaks_after_three_batches)
    monkeypatch.setattr(sink, "RETRY_BACKOFF_S", 0.01)
    monkeypatch.setattr(execution, "engine_run", engine_that_emits())
    status = execution.run_execute(run.pk)
    run.refresh_from_db()
    assert status == run.status == RunStatus.FAILED
    assert "Recording the run's events failed" in run.failure_reason and "No space left" in run.failure_reason
    events = assert_recorded_whole(run)
    assert events[-1]["type"] == "run.finished" and len(events) < 1000  # the engine was stopped early


def test_a_crashing_engine_fails_the_run_after_its_last_recorded_event(run, monkeypatch):
    Run.objects.filter(pk=run.pk).update(status=RunStatus.QUEUED)

    def crash(spec, event_sink, should_stop):
        for event in make_events(1, 25):
            event_sink.write(event)
        raise RuntimeError("boom")

    monkeypatch.setattr(execution, "engine_run", crash)
    assert execution.run_execute(run.pk) == RunStatus.FAILED
    run.refresh_from_db()
    assert "Internal error: RuntimeError: boom" in run.failure_reason
    assert len(assert_recorded_whole(run)) == 26


def test_a_heartbeat_survives_a_transient_database_error(run, monkeypatch):
    monkeypatch.setattr(execution, "HEARTBEAT_S", 0.5)
    real = Run.objects.filter
    failures = {"left": 2}

    def flaky(*args, **kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return real(*args, **kwargs)

    Run.objects.filter(pk=run.pk).update(heartbeat_at=None)
    monkeypatch.setattr(Run.objects, "filter", flaky)
    with execution.RunWatch(run.pk):
        threading.Event().wait(2.5)
    monkeypatch.undo()
    run.refresh_from_db()
    assert failures["left"] == 0 and run.heartbeat_at is not None
