"""Celery tasks: thin adapters that take ids and call the apps' services."""

import logging
import threading
import time

from celery import shared_task
from celery.signals import worker_ready

logger = logging.getLogger(__name__)


@shared_task(name="runs.execute", bind=True, acks_late=True)
def run_rlm(self, run_id: str) -> str:
    from apps.runs.execution import run_execute

    return run_execute(run_id, worker=self.request.hostname or "")


@shared_task(name="documents.extract", bind=True, acks_late=True)
def extract_document(self, document_id: str) -> str:
    from apps.documents.services import document_extract

    return document_extract(document_id)


@shared_task(name="runs.mark_lost")
def mark_lost_runs() -> int:
    from apps.runs.execution import runs_mark_lost

    return runs_mark_lost()


SWEEP_INTERVAL_S = 30.0


def sweep_interval_s() -> float:
    """Every 30 s, or more often when runs are declared lost sooner (twice per RUN_LOST_AFTER_S)."""
    from django.conf import settings

    return min(SWEEP_INTERVAL_S, settings.RUN_LOST_AFTER_S / 2)


@worker_ready.connect
def _sweep_lost_runs(sender=None, **kwargs) -> None:
    """Every worker sweeps, now and then every 30 s: it fails the runs whose worker stopped
    beating, and files every finished run not yet classified for review.

    No beat process is needed: whichever worker survives a crash notices the orphaned runs.
    """
    from apps.review.services import reviews_classify_pending
    from apps.runs.execution import runs_mark_lost

    def loop() -> None:
        while True:
            for sweep in (runs_mark_lost, reviews_classify_pending):
                try:
                    sweep()
                except Exception:
                    logger.exception("Sweep %s failed", sweep.__name__)
            time.sleep(sweep_interval_s())

    threading.Thread(target=loop, name="sweep-lost-runs", daemon=True).start()
