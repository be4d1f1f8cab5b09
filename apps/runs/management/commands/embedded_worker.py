"""`manage.py embedded_worker`: the embedded default's Celery workers, as a process of their own.

Spawned and supervised by `manage.py serve` (rlmweb/worker_process.py), not meant to be started
by hand: it publishes its channel-layer messages to the `serve` process that spawned it, over the
socket whose descriptor is in RLMWEB_EVENT_RELAY_FD. It stops on SIGTERM or SIGINT (finishing the
tasks it runs, like `celery worker`'s warm shutdown) and when its parent is gone.
"""

import os
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from rlmweb.celery import app as celery_app
from rlmweb.embedded_worker import EmbeddedWorkers
from rlmweb.event_relay import PARENT_PID_ENV, RELAY_FD_ENV
from rlmweb.heap import freeze_startup_heap

PARENT_CHECK_S = 0.2
STOP_GRACE_S = 30.0


class Command(BaseCommand):
    help = "The embedded default's Celery workers in a process of their own (spawned by `manage.py serve`)."

    def handle(self, *args, **options):
        if not os.environ.get(RELAY_FD_ENV):
            raise CommandError("`manage.py serve` starts this; run `manage.py serve` instead.")
        from worker.sandbox.lockdown import set_pdeathsig

        # The spawning `serve` names itself: read from getppid() here, a parent that died while this
        # process was starting would be pid 1 (the orphan's new parent), and the check below would pass.
        parent = int(os.environ.get(PARENT_PID_ENV) or os.getppid())
        set_pdeathsig(signal.SIGTERM)  # serve killed outright: stop too
        # The handlers only append to a list: a handler that takes a lock (threading.Event.set) can
        # interrupt the main thread while it holds that very lock and deadlock it.
        signals: list[int] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda number, _frame: signals.append(number))
        if os.getppid() != parent:  # the parent died before the signal was armed
            return
        workers = EmbeddedWorkers(  # with the periodic sweep, as every Celery worker process runs it
            celery_app, settings.EMBEDDED_WORKER_CONCURRENCY, settings.EMBEDDED_EXTRACTION_CONCURRENCY, sweep=True
        )
        workers.start()
        freeze_startup_heap()
        self.stdout.write(
            f"Embedded Celery workers running in process {os.getpid()} ({settings.EMBEDDED_WORKER_CONCURRENCY} "
            f"threads for runs, {settings.EMBEDDED_EXTRACTION_CONCURRENCY} for text extraction)."
        )
        self.stdout.flush()
        try:
            while not signals and os.getppid() == parent:
                time.sleep(PARENT_CHECK_S)
        finally:
            # A run that does not stop within STOP_GRACE_S is ended with the process; the sweep
            # fails it as "worker lost", as when a worker is killed.
            watchdog = threading.Timer(STOP_GRACE_S, os._exit, args=(1,))
            watchdog.daemon = True
            watchdog.start()
            workers.stop()
