"""`manage.py serve`: the whole app from one command on the embedded default.

Starts uvicorn with the ASGI application (pages and websockets) and, unless the production
profile is configured, the Celery workers and the periodic sweep (`rlmweb.sweeps`, which ends lost
runs; pages never do) in a child process it supervises (`rlmweb.worker_process`;
`--worker-in-process` runs them inside this process instead, as before).
"""

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand

from rlmweb.celery import app as celery_app
from rlmweb.embedded_worker import EmbeddedWorkers
from rlmweb.worker_process import WorkerProcess


class Command(BaseCommand):
    help = "Serve rlmweb (ASGI: pages + websockets) and, on the embedded default, a Celery worker too."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-worker", action="store_true", help="Do not start the embedded worker.")
        parser.add_argument(
            "--worker-in-process", action="store_true",
            help="Run the embedded worker's threads inside this process (one interpreter for pages, "
                 "websockets and runs) instead of in a child process.",
        )

    def handle(self, *args, host: str, port: int, no_worker: bool, worker_in_process: bool, **options):
        worker: EmbeddedWorkers | WorkerProcess | None = None
        if settings.EMBEDDED_WORKER and not no_worker:
            if worker_in_process:
                worker = EmbeddedWorkers(
                    celery_app, settings.EMBEDDED_WORKER_CONCURRENCY, settings.EMBEDDED_EXTRACTION_CONCURRENCY,
                    sweep=True,  # the periodic sweep ends lost runs; pages never do
                )
                where = "in this process"
            else:
                worker = WorkerProcess()
                where = "in a child process"
            worker.start()
            self.stdout.write(
                f"Embedded Celery workers running {where} ({settings.EMBEDDED_WORKER_CONCURRENCY} threads for runs, "
                f"{settings.EMBEDDED_EXTRACTION_CONCURRENCY} for text extraction)."
            )
        self.stdout.write(f"rlmweb ({settings.PROFILE} profile) at http://{host}:{port}/")
        try:
            uvicorn.run("rlmweb.asgi:application", host=host, port=port, log_level="info", lifespan="off")
        finally:
            if worker is not None:
                worker.stop()
