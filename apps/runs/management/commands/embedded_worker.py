"""`manage.py embedded_worker`: the embedded default's Celery workers, as a process of their own.

Spawned and supervised by `manage.py serve` (rlmweb/worker_process.py), not meant to be started
by hand: it publishes its channel-layer messages to the `serve` process that spawned it, over the
socket whose descriptor is in RLMWEB_EVENT_RELAY_FD. It stops on SIGTERM or SIGINT (finishing the
tasks it runs, like `celery worker`'s warm shutdown) and when its parent is gone.
"""

import os
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from rlmweb.celery import app as celery_app
from rlmweb.embedded_worker import EmbeddedWorkers
from rlmweb.event_relay import RELAY_FD_ENV
from rlmweb.heap import freeze_startup_heap

PARENT_CHECK_S = 1.0


class Command(BaseCommand):
    help = "The embedded default's Celery workers in a process of their own (spawned by `manage.py serve`)."

    def handle(self, *args, **options):
        if not os.environ.get(RELAY_FD_ENV):
            raise CommandError("`manage.py serve` starts this; run `manage.py serve` instead.")
        from worker.sandbox.lockdown import set_pdeathsig

        parent = os.getppid()
        set_pdeathsig(signal.SIGTERM)  # serve killed outright: stop too
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        if os.getppid() != parent:  # the parent died before the signal was armed
            return
        workers = EmbeddedWorkers(
            celery_app, settings.EMBEDDED_WORKER_CONCURRENCY, settings.EMBEDDED_EXTRACTION_CONCURRENCY
        )
        workers.start()
        freeze_startup_heap()
        self.stdout.write(
            f"Embedded Celery workers running in process {os.getpid()} ({settings.EMBEDDED_WORKER_CONCURRENCY} "
            f"threads for runs, {settings.EMBEDDED_EXTRACTION_CONCURRENCY} for text extraction)."
        )
        self.stdout.flush()
        try:
            while not stop.wait(PARENT_CHECK_S):
                if os.getppid() != parent:
                    break
        finally:
            workers.stop()
