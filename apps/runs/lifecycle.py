"""Ending a run: the one function that writes a run's end when the engine did not.

The engine ends every run it executes with its own `run.finished`, which the sink records like
any event (`sink.persist_events`). Every other end goes through `end_run`: a run its worker lost
(the sweep), a queued run no worker picked up (the sweep), a run whose message could not be
enqueued, a run cancelled before it started, a run whose engine crashed or whose events could
not be recorded, a run the command line leaves behind. `end_run` builds the same typed
`RunFinished` the engine emits, numbered after the last recorded event, and writes it with the
run's status, stop reason and totals in one transaction; a run that is no longer in the states
it may be ended from is left alone (idempotent: ending a finished run twice writes nothing).
"""

from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from worker.engine import events as ev
from worker.engine.totals import TOTALS_EVENT_TYPES, recorded_totals
from worker.engine.vocabulary import RunStatus as EngineRunStatus
from worker.engine.vocabulary import StopReason

from .models import Run, RunEvent, RunStatus
from .sink import persist_events, publish_events

UNFINISHED = (RunStatus.QUEUED, RunStatus.RUNNING)


def run_recorded_totals(run_id) -> dict | None:
    """The run's totals as its recorded events say (`worker.engine.totals.recorded_totals`); None
    for a run with no events (it never started)."""
    rows = RunEvent.objects.filter(run_id=run_id, type__in=TOTALS_EVENT_TYPES).order_by("seq")
    if not RunEvent.objects.filter(run_id=run_id).exists():
        return None
    return recorded_totals(rows.values_list("type", "data").iterator())


def end_run(run_id, status: RunStatus, failure_reason: str, stop_reason: StopReason | None = None, *,
            only_from: Iterable[RunStatus] = UNFINISHED, guard: Q | None = None) -> bool:
    """End the run with `status` and its `run.finished`, if it is still in one of `only_from` (and
    matches `guard`); False, and nothing written, otherwise.

    The status change is a guarded `UPDATE … WHERE status IN only_from`, the same form as the
    worker's claim of a queued run, in one transaction with the event: of a worker claiming a
    queued run and `end_run(only_from=(QUEUED,))`, exactly one wins. The totals are those the
    engine reported, plus the calls recorded after them (`run_recorded_totals`). Raises when the
    event's seq is taken (a worker thought lost wrote meanwhile): nothing is written then.
    """
    with transaction.atomic():
        rows = Run.objects.filter(pk=run_id, status__in=list(only_from))
        if guard is not None:
            rows = rows.filter(guard)
        if not rows.update(status=status):
            return False
        last_seq = Run.objects.filter(pk=run_id).values_list("last_seq", flat=True).get()
        finished = ev.RunFinished(status=EngineRunStatus(status), failure_reason=failure_reason, stop_reason=stop_reason,
                                  totals=run_recorded_totals(run_id), forced_final=False)
        event = finished.event(last_seq + 1, timezone.now().timestamp())
        persist_events(run_id, [event])
    publish_events(run_id, [event])
    return True
