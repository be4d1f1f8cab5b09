"""The documents app's Celery tasks: thin adapters that take ids and call the app's services."""

from celery import shared_task


@shared_task(name="documents.extract", bind=True, acks_late=True)
def extract_document(self, document_id: str) -> str:
    from .services import document_extract  # (services enqueue this task: import at call time)

    return document_extract(document_id)
