"""The periodic sweep: ends what nobody else will (runs whose worker was lost, queued runs no
worker picked up, documents stuck extracting, expired uploads, unclassified finished runs).

Each app owns its sweeps; this module only orders and schedules them. One `Sweeper` thread per
process runs them every `settings.SWEEP_INTERVAL_S`: in every Celery worker process (started on
`worker_ready`, so no beat process is needed: whichever worker survives a crash notices the
orphaned work), and on the embedded default in `manage.py serve` (`EmbeddedWorkers` starts and
stops it). `rlmweb.sweep` runs one pass, for deployments that prefer celery beat.

Reading a run never ends it: pages and the API only show a silent run as "worker lost"
(`apps.runs.selectors.run_seems_lost`) until a sweep fails it.
"""

import logging
import threading

from celery import shared_task
from celery.signals import worker_ready

logger = logging.getLogger(__name__)


@shared_task(name="rlmweb.sweep")
def sweep() -> dict[str, int | None]:
    """One pass of the periodic sweep, for deployments that prefer celery beat to the worker thread."""
    return sweep_once()


def sweep_interval_s() -> float:
    """SWEEP_INTERVAL_S (30 s), or more often when runs are declared lost sooner (twice per RUN_LOST_AFTER_S)."""
    from django.conf import settings

    return max(0.1, min(float(settings.SWEEP_INTERVAL_S), settings.RUN_LOST_AFTER_S / 2))


def sweeps() -> list:
    """The sweeps, in order. Review classification comes last, so it files every run the others
    ended, and runs ended elsewhere without classification (a queued run cancelled by a user)."""
    from apps.documents.services import documents_fail_stuck, upload_sessions_clean_stale
    from apps.evals.services import evaluations_recover
    from apps.review.services import reviews_classify_pending
    from apps.runs.execution import runs_fail_unclaimed, runs_mark_lost

    return [runs_mark_lost, runs_fail_unclaimed, documents_fail_stuck, upload_sessions_clean_stale,
            reviews_classify_pending, evaluations_recover]


def sweep_once() -> dict[str, int | None]:
    """Run every sweep once; one failing (logged, None in the result) does not stop the others."""
    done: dict[str, int | None] = {}
    for job in sweeps():
        try:
            done[job.__name__] = job()
        except Exception:
            logger.exception("Sweep %s failed", job.__name__)
            done[job.__name__] = None
    return done


class Sweeper:
    """A daemon thread that runs `sweep_once` now and then every `interval_s` until `stop`."""

    def __init__(self, interval_s: float | None = None) -> None:
        self.interval_s = interval_s
        self.passes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sweeper", daemon=True)

    def start(self) -> "Sweeper":
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the pass under way (if any); returns once the thread has ended or `timeout`."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        from django.db import close_old_connections, connection

        try:
            while not self._stop.is_set():
                close_old_connections()  # the thread outlives connections: drop broken or expired ones
                sweep_once()
                self.passes += 1
                self._stop.wait(self.interval_s if self.interval_s is not None else sweep_interval_s())
        finally:
            connection.close()


_sweeper_lock = threading.Lock()
_sweeper: Sweeper | None = None


def start_sweeper(interval_s: float | None = None) -> Sweeper:
    """This process's sweeper, started if it is not running (one per process, however many
    workers it runs)."""
    global _sweeper
    with _sweeper_lock:
        if _sweeper is None or not _sweeper.running:
            _sweeper = Sweeper(interval_s).start()
        return _sweeper


def stop_sweeper(timeout: float = 30.0) -> None:
    """Stop this process's sweeper, if it runs."""
    global _sweeper
    with _sweeper_lock:
        sweeper, _sweeper = _sweeper, None
    if sweeper is not None:
        sweeper.stop(timeout)


@worker_ready.connect
def _start_sweeping(sender=None, **kwargs) -> None:
    """A Celery worker process (`celery -A rlmweb worker`) sweeps: see the module's docstring."""
    start_sweeper()
