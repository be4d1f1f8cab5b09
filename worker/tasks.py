"""Celery tasks: thin adapters that take ids and call the apps' services."""

from celery import shared_task
from celery.signals import worker_ready


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


@worker_ready.connect
def _sweep_on_start(sender=None, **kwargs) -> None:
    """A worker that starts after a crash fails the runs the crashed worker left running."""
    from apps.runs.execution import runs_mark_lost

    runs_mark_lost()
