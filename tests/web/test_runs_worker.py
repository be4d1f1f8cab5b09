"""Runs through a real Celery worker (the embedded one, on the test's filesystem broker)."""

import time

import pytest

from apps.accounts.models import ApiToken
from apps.runs.models import Run, RunEvent, RunStatus
from tests.web.runs_factories import clean_rate_limits, make_document  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_rate_limits", "data_dir"),
              pytest.mark.slow]

NEEDLE_DOC = ("Minutes of the harbour committee.\n" * 20_000) + "The pier master's password is TANGO-55.\n" + (
    "Weather: mild, wind from the north.\n" * 20_000)


def wait_for(predicate, timeout: float = 60.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out")


def test_ask_through_the_api_runs_on_the_worker_and_the_answer_reads_back(client, user, team, celery_worker):
    doc = make_document(team, NEEDLE_DOC, name="minutes.txt")
    auth = {"Authorization": f"Token {ApiToken.issue(user)[1]}"}
    response = client.post("/api/runs/", {"question": "What is the pier master's password?",
                                          "documents": [str(doc.pk)]}, content_type="application/json", headers=auth)
    assert response.status_code == 201, response.json()
    run_id = response.json()["id"]
    detail = wait_for(lambda: (d := client.get(f"/api/runs/{run_id}/", headers=auth).json())["status"]
                      in ("succeeded", "failed", "cancelled") and d)
    assert detail["status"] == "succeeded", detail["failure_reason"]
    assert "TANGO-55" in detail["final_answer"]
    events = client.get(f"/api/runs/{run_id}/events/?limit=5000", headers=auth).json()["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "run.started" and events[-1]["type"] == "run.finished"
    assert Run.objects.get(pk=run_id).worker  # recorded by the worker that claimed it


def test_cancelling_a_running_run_stops_its_worker_within_seconds(client, user, team, celery_worker, monkeypatch):
    """The engine is replaced by one that works until told to stop, as the engine contract says;
    what is tested is the path page → database → the worker's watch → should_stop → recorded."""
    from apps.runs import execution
    from worker.engine.events import EventEmitter

    def patient_engine(spec, sink, should_stop):
        emit = EventEmitter(sink).emit
        emit("run.started", question=spec.question, mode=spec.mode, root_model=spec.root_model,
             sub_model=spec.sub_model, limits={}, documents=[], offline=True)
        while not should_stop():
            emit("cost.updated", totals={"iterations": 1, "subcalls": 0, "max_depth_reached": 0, "prompt_tokens": 0,
                                         "completion_tokens": 0, "cost_usd": 0.0, "cost_unknown_calls": 0})
            time.sleep(0.1)
        emit("run.finished", status="cancelled", failure_reason="Cancelled by the user.", stop_reason="cancelled",
             totals=None, forced_final=False)

    monkeypatch.setattr(execution, "engine_run", patient_engine)
    client.force_login(user)
    doc = make_document(team)
    response = client.post("/runs/new/", {
        "documents": [str(doc.pk)], "question": "Anything?", "mode": "rlm", "root_model": "offline/heuristic",
        "sub_model": "offline/heuristic", "max_iterations": 5, "max_depth": 1, "max_subcalls": 10,
        "max_cost_usd": 1, "max_wall_s": 600,
    })
    run = Run.objects.get()
    assert response.status_code == 302
    wait_for(lambda: RunEvent.objects.filter(run=run, type="cost.updated").exists())
    client.post(f"/runs/{run.pk}/cancel/")
    asked = time.monotonic()
    wait_for(lambda: Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED, timeout=10)
    assert time.monotonic() - asked < 5
    run.refresh_from_db()
    assert run.finished_at is not None and run.stop_reason == "cancelled"
    assert RunEvent.objects.filter(run=run).order_by("-seq").first().type == "run.finished"


def test_the_real_engine_stops_a_busy_cell_within_seconds_of_a_cancel(user, team):
    """No mock: the engine is in a cell that would run for minutes when the user cancels."""
    import threading

    from django.db import connection

    from apps.runs import services
    from apps.runs.execution import run_execute

    doc = make_document(team)
    run = services.run_create(user, team, "Spin", [doc.pk], "rlm-no-subcalls", enqueue=False)
    script = ["```repl\nx = 0\nfor i in range(10**10):\n    x += i\n```", "FINAL(x)"]
    def execute():
        try:
            run_execute(run.pk, "test", script)
        finally:
            connection.close()

    thread = threading.Thread(target=execute)
    thread.start()
    wait_for(lambda: RunEvent.objects.filter(run=run, type="cell.started").exists(), timeout=30)
    time.sleep(0.5)
    services.run_cancel(user, Run.objects.get(pk=run.pk))
    asked = time.monotonic()
    thread.join(30)
    assert not thread.is_alive()
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED, (run.status, run.failure_reason)
    assert time.monotonic() - asked < 5
