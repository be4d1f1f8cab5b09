"""`manage.py serve`: the whole app in one process on the embedded default.

Starts uvicorn with the ASGI application (pages and websockets) and, unless the production
profile is configured, a real Celery worker inside the same process, with the periodic sweep
(`rlmweb.sweeps`) that a Celery worker process runs.
"""

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand

from rlmweb.celery import app as celery_app
from rlmweb.embedded_worker import EmbeddedWorkers


class Command(BaseCommand):
    help = "Serve rlmweb (ASGI: pages + websockets) and, on the embedded default, a Celery worker too."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-worker", action="store_true", help="Do not start the in-process worker.")

    def handle(self, *args, host: str, port: int, no_worker: bool, **options):
        worker = None
        if settings.EMBEDDED_WORKER and not no_worker:
            worker = EmbeddedWorkers(
                celery_app, settings.EMBEDDED_WORKER_CONCURRENCY, settings.EMBEDDED_EXTRACTION_CONCURRENCY,
                sweep=True,  # the periodic sweep ends lost runs; pages never do
            )
            worker.start()
            self.stdout.write(
                f"Embedded Celery workers running ({settings.EMBEDDED_WORKER_CONCURRENCY} threads for runs, "
                f"{settings.EMBEDDED_EXTRACTION_CONCURRENCY} for text extraction)."
            )
        self.stdout.write(f"rlmweb ({settings.PROFILE} profile) at http://{host}:{port}/")
        try:
            uvicorn.run("rlmweb.asgi:application", host=host, port=port, log_level="info", lifespan="off")
        finally:
            if worker is not None:
                worker.stop()
