"""The engine's event sink for the web app: persist, then publish.

Events are written by one thread per run in transactions together with the run fields they
determine (totals, status, answer), so a run's row always agrees with its events. The writer
starts on the first event it is given, and everything emitted while it writes becomes the next
batch: no event waits for a timer, and a busy run still gets few, large transactions.
After the commit, the batch goes to the run's channel group for live viewers. Viewers that miss
a message catch up from the database by sequence number, so publishing is best-effort.
"""

import logging
import threading
import time
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import InterfaceError, OperationalError, close_old_connections, connection, transaction
from django.utils import timezone

from worker.engine.events import Event

from .models import Run, RunEvent, RunStatus

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.05
MAX_BATCH = 200
# A batch that fails on a database error is retried (a locked SQLite file, a PostgreSQL restart or
# failover): backoff 0.2 s doubling, about 6 s in all, before the sink gives up and the run fails.
PERSIST_ATTEMPTS = 6
RETRY_BACKOFF_S = 0.2


def group_name(run_id) -> str:
    return f"run.{run_id}"


def run_fields_from_events(events: Iterable[Event]) -> dict:
    """The Run columns that a batch of events sets. The last event of each kind wins."""
    fields: dict = {}
    for event in events:
        data = event.data
        totals = data.get("totals") if event.type in ("cost.updated", "run.finished") else None
        if totals:
            fields.update(
                iterations=totals.get("iterations", 0),
                subcalls=totals.get("subcalls", 0),
                max_depth_reached=totals.get("max_depth_reached", 0),
                prompt_tokens=totals.get("prompt_tokens", 0),
                completion_tokens=totals.get("completion_tokens", 0),
                cost_usd=totals.get("cost_usd") or 0.0,
                cost_unknown_calls=totals.get("cost_unknown_calls", 0),
            )
        if event.type == "final.answer":
            fields.update(final_answer=data.get("answer") or "", answer_source=data.get("source") or "")
        elif event.type == "run.finished":
            fields.update(
                status=data.get("status") or RunStatus.FAILED,
                failure_reason=data.get("failure_reason") or "",
                stop_reason=data.get("stop_reason") or "",
                forced_final=bool(data.get("forced_final")),
                finished_at=timezone.now(),
            )
        fields["last_seq"] = event.seq
    return fields


def persist_events(run_id, events: list[Event]) -> None:
    if not events:
        return
    with transaction.atomic():
        RunEvent.objects.bulk_create(
            [RunEvent(run_id=run_id, seq=e.seq, type=e.type, ts=e.ts, data=e.data) for e in events]
        )
        Run.objects.filter(pk=run_id).update(**run_fields_from_events(events))


def publish_events(run_id, events: list[Event]) -> None:
    layer = get_channel_layer()
    if layer is None or not events:
        return
    try:
        async_to_sync(layer.group_send)(
            group_name(run_id), {"type": "run.events", "events": [e.to_dict() for e in events]}
        )
    except Exception:  # viewers catch up from the database; a lost publish must not fail the run
        logger.warning("Could not publish %d events of run %s", len(events), run_id, exc_info=True)


class DatabaseSink:
    """EventSink that persists and publishes in batches from a background thread."""

    def __init__(self, run_id) -> None:
        self.run_id = run_id
        self.last_seq = Run.objects.filter(pk=run_id).values_list("last_seq", flat=True).first() or 0
        self._buffer: list[Event] = []
        self._cond = threading.Condition()
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=f"sink-{run_id}", daemon=True)
        self._thread.start()

    @property
    def failed(self) -> bool:
        """Persisting gave up: the run cannot be recorded any more and should stop."""
        return self._error is not None

    def write(self, event: Event) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("sink is closed")
            if self._error is not None:  # nothing more can be recorded; the run is being stopped
                return
            self._buffer.append(event)
            self.last_seq = event.seq
            if len(self._buffer) == 1 or len(self._buffer) >= MAX_BATCH or event.type == "run.finished":
                self._cond.notify()  # wakes the writer only when it is waiting for events

    def close(self) -> None:
        """Flush everything and stop; re-raises a persistence error, if one happened."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _take(self) -> tuple[list[Event], bool]:
        with self._cond:
            if not self._buffer and not self._closed:
                self._cond.wait(FLUSH_INTERVAL_S)
            batch, self._buffer = self._buffer, []
            return batch, self._closed and not batch

    def _loop(self) -> None:
        try:
            while True:
                batch, done = self._take()
                if done:
                    return
                if batch:
                    self._persist(batch)
                    publish_events(self.run_id, batch)
                    time.sleep(0)  # let the engine threads run between flushes
        except BaseException as exc:  # surfaced by close(); the run is then marked failed
            logger.exception("Persisting events of run %s failed", self.run_id)
            self._error = exc
        finally:
            close_old_connections()
            connection.close()

    def _persist(self, batch: list[Event]) -> None:
        for attempt in range(1, PERSIST_ATTEMPTS + 1):
            try:
                persist_events(self.run_id, batch)
                return
            except (OperationalError, InterfaceError):
                if attempt == PERSIST_ATTEMPTS:
                    raise
                logger.warning("Persisting %d events of run %s failed (attempt %d); retrying", len(batch),
                               self.run_id, attempt, exc_info=True)
                connection.close()  # a broken connection is replaced on the next query
                time.sleep(RETRY_BACKOFF_S * 2 ** (attempt - 1))
                try:  # the commit may have succeeded with only its acknowledgement lost
                    if RunEvent.objects.filter(run_id=self.run_id, seq=batch[-1].seq).exists():
                        return
                except (OperationalError, InterfaceError):
                    pass
