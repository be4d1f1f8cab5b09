"""Executing a Run: claim it, run the engine with the database sink, make sure it ends.

Called by the Celery task `worker.tasks.run_rlm` (and by `manage.py rlm ask`). Safe to call twice
for the same run: only the first call claims a queued run.
"""

import logging
import threading
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from worker.engine import DocumentInput, Limits, RunSpec
from worker.engine import run as engine_run
from worker.engine.events import Event
from worker.engine.llm import ModelOptions

from .models import Run, RunEvent, RunStatus
from .models_config import model_choices
from .sink import DatabaseSink, persist_events, publish_events

logger = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
LIMIT_KEYS = ("max_iterations", "max_depth", "max_subcalls", "max_cost_usd", "max_wall_s")


def build_spec(run: Run, root_script: list[str] | None = None) -> RunSpec:
    documents = [
        DocumentInput(name=d.name, path=str(d.text_path), chars=d.chars)
        for d in run.documents.order_by("rundocument__position")
    ]
    limits = Limits(**{k: v for k, v in (run.limits or {}).items() if k in LIMIT_KEYS})
    options = {
        m.model: ModelOptions(api_base=m.api_base, api_key_env=m.api_key_env, context_window=m.context_window,
                              **_call_options(m.model))
        for m in model_choices()
    }
    return RunSpec(
        question=run.question,
        documents=documents,
        mode=run.mode,
        root_model=run.root_model,
        sub_model=run.sub_model,
        limits=limits,
        model_options=options,
        root_script=root_script,
    )


def _call_options(model: str) -> dict:
    """`timeout_s` and `max_retries` of a model's RLMWEB_MODELS entry, where the operator set them."""
    entry = next((m for m in settings.RLMWEB_MODELS if m.get("model") == model), {})
    return {k: entry[k] for k in ("timeout_s", "max_retries") if entry.get(k) is not None}


class RunWatch:
    """Beats the run's heartbeat and watches for cancellation from a side thread.

    Neither may depend on the engine polling: a cell can run for minutes without a model call.
    """

    def __init__(self, run_id) -> None:
        self.run_id = run_id
        self.cancelled = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"watch-{run_id}", daemon=True)

    def __enter__(self) -> "RunWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def should_stop(self) -> bool:
        return self.cancelled.is_set()

    def _loop(self) -> None:
        try:
            beat = 0.0
            while not self._stop.wait(0.5):
                beat += 0.5
                try:
                    if beat >= HEARTBEAT_S:
                        Run.objects.filter(pk=self.run_id).update(heartbeat_at=timezone.now())
                        beat = 0.0
                    if Run.objects.filter(pk=self.run_id, cancel_requested=True).exists():
                        self.cancelled.set()
                except Exception:  # a database hiccup must not end the heartbeat: the run would look lost
                    logger.warning("Heartbeat of run %s failed; retrying", self.run_id, exc_info=True)
                    connection.close()
        finally:
            close_old_connections()


def recorded_totals(run_id) -> dict:
    """A run's totals summed from its recorded model calls (root turns and plain sub-calls; an
    rlm_query's own event repeats its children's). For runs the engine could not finish itself: a
    batch can end between a call and the totals event after it, and the run must still add up."""
    kinds: dict[str, str] = {}
    calls: list[dict] = []
    iterations = max_depth = 0
    rows = RunEvent.objects.filter(run_id=run_id, type__in=("root.turn", "subcall.started", "subcall.finished"))
    for type_, data in rows.order_by("seq").values_list("type", "data").iterator():
        if type_ == "root.turn":
            calls.append(data)
            iterations += data.get("depth") == 0
        elif type_ == "subcall.started":
            kinds[data.get("node_id")] = data.get("kind")
            max_depth = max(max_depth, data.get("depth") or 0)
        elif kinds.get(data.get("node_id")) == "llm":
            calls.append(data)
    known = [c["cost_usd"] for c in calls if c.get("cost_usd") is not None]
    return {
        "cost_usd": round(sum(known), 10), "cost_unknown_calls": len(calls) - len(known),
        "prompt_tokens": sum(c.get("prompt_tokens") or 0 for c in calls),
        "completion_tokens": sum(c.get("completion_tokens") or 0 for c in calls),
        "iterations": iterations, "subcalls": len(kinds), "max_depth_reached": max_depth,
    }


def _finish_with(run_id, last_seq: int, status: str, reason: str, stop_reason: str = "") -> None:
    """Write the terminal event for a run the engine could not finish itself."""
    event = Event(
        seq=last_seq + 1,
        type="run.finished",
        ts=timezone.now().timestamp(),
        data={"status": status, "failure_reason": reason, "stop_reason": stop_reason or None,
              "totals": recorded_totals(run_id), "forced_final": False},
    )
    persist_events(run_id, [event])
    publish_events(run_id, [event])


def run_execute(run_id, worker: str = "", root_script: list[str] | None = None) -> str:
    now = timezone.now()
    claimed = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=now, heartbeat_at=now, worker=worker[:200]
    )
    if not claimed:
        status = Run.objects.filter(pk=run_id).values_list("status", flat=True).first()
        logger.info("Run %s not claimed (status %s): delivered twice or gone", run_id, status)
        return status or "missing"
    run = Run.objects.get(pk=run_id)
    if run.cancel_requested:
        _finish_with(run.pk, run.last_seq, RunStatus.CANCELLED, "Cancelled before it started.", "cancelled")
        return RunStatus.CANCELLED
    sink = DatabaseSink(run.pk)
    failure = ""
    try:
        with RunWatch(run.pk) as watch:
            spec = build_spec(run, root_script)
            engine_run(spec, sink, should_stop=lambda: watch.should_stop() or sink.failed)
    except Exception as exc:
        logger.exception("Run %s crashed", run_id)
        failure = f"Internal error: {type(exc).__name__}: {exc}"
    try:
        sink.close()
    except Exception as exc:  # the engine was stopped when the sink gave up; say why the run ended
        logger.exception("Recording the events of run %s failed", run_id)
        failure = f"Recording the run's events failed: {type(exc).__name__}: {exc}"
    if failure:  # numbered after the last event that reached the database, so seqs stay contiguous
        last_seq = Run.objects.filter(pk=run_id).values_list("last_seq", flat=True).first() or 0
        _finish_with(run.pk, last_seq, RunStatus.FAILED, failure)
    final = Run.objects.get(pk=run_id)
    if not final.is_finished:  # the engine returned without its terminal event: never leave it running
        _finish_with(final.pk, final.last_seq, RunStatus.FAILED, "The engine stopped without a final status.")
        final.refresh_from_db()
    _classify(final)
    return final.status


def _classify(run: Run) -> None:
    """File the finished run for review; a classifier bug must not fail the run itself."""
    from apps.review.services import review_classify

    try:
        review_classify(run)
    except Exception:
        logger.exception("Classifying run %s failed; the periodic sweep will retry", run.pk)


def runs_mark_lost(stale_after: timedelta | None = None) -> int:
    """Fail running runs whose worker stopped beating (killed, crashed, machine lost) for longer
    than `stale_after` (default: settings.RUN_LOST_AFTER_S)."""
    if stale_after is None:
        stale_after = timedelta(seconds=settings.RUN_LOST_AFTER_S)
    cutoff = timezone.now() - stale_after
    lost = 0
    for run in Run.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff):
        _finish_with(run.pk, run.last_seq, RunStatus.FAILED, "Worker lost: the worker running this run stopped "
                     "responding (killed or crashed). Events recorded before that are kept.", "worker_lost")
        lost += 1
    return lost
