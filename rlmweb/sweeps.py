"""The periodic sweep: every worker runs it (no beat process needed), and `rlmweb.sweep` runs one
pass for deployments that prefer celery beat. Each app owns its sweeps; this module only orders
and schedules them."""

import logging
import threading
import time

from celery import shared_task
from celery.signals import worker_ready

logger = logging.getLogger(__name__)


@shared_task(name="rlmweb.sweep")
def sweep() -> dict[str, int | None]:
    """One pass of the periodic sweep, for deployments that prefer celery beat to the worker thread."""
    return sweep_once()


SWEEP_INTERVAL_S = 30.0


def sweep_interval_s() -> float:
    """Every 30 s, or more often when runs are declared lost sooner (twice per RUN_LOST_AFTER_S)."""
    from django.conf import settings

    return min(SWEEP_INTERVAL_S, settings.RUN_LOST_AFTER_S / 2)


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


_sweeper_lock = threading.Lock()
_sweeper_started = False


@worker_ready.connect
def _sweep_lost_runs(sender=None, **kwargs) -> None:
    """Every worker sweeps, now and then every 30 s (`sweep_once`): it fails the runs whose worker
    stopped beating and the queued runs no worker will claim, fails documents stuck extracting,
    deletes expired uploads' partial files, and files every finished run not yet classified.

    No beat process is needed: whichever worker survives a crash notices the orphaned work.
    """

    from django.db import close_old_connections

    with _sweeper_lock:  # one sweeping thread per process, however many workers it runs
        global _sweeper_started
        if _sweeper_started:
            return
        _sweeper_started = True

    def loop() -> None:
        while True:
            close_old_connections()  # the thread outlives connections: drop broken or expired ones
            sweep_once()
            time.sleep(sweep_interval_s())

    threading.Thread(target=loop, name="sweep-lost-runs", daemon=True).start()
