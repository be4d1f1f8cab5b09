"""Real Celery workers running inside the web process (embedded profile).

Tasks still go through the broker (serialised to the filesystem queue) and are executed by Celery
WorkControllers with thread pools: the same code path as `celery -A rlmweb worker`, minus the
separate process. Runs and text extraction get a pool each (`EmbeddedWorkers`), as they get
separate worker processes in production, so extractions can never hold the slots runs need.
With `sweep=True` (`manage.py serve`) the process also runs the periodic sweep (`rlmweb.sweeps`),
started with the workers and stopped before them.
"""

import logging
import threading

from celery import Celery
from celery._state import _set_task_join_will_block
from celery.worker import WorkController
from django.conf import settings

logger = logging.getLogger(__name__)


class _Controller(WorkController):
    def __init__(self, *args, **kwargs):
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer):
        self.ready.set()


class EmbeddedWorker:
    def __init__(
        self, app, concurrency: int = 4, hostname: str = "embedded@localhost", queues: list[str] | None = None
    ) -> None:
        self.app = app
        self.concurrency = concurrency
        self.hostname = hostname
        self.queues = queues
        self._controller: _Controller | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0, make_current: bool = True) -> None:
        if make_current:
            self.app.set_current()
        self.app.loader.import_default_modules()
        self._controller = _Controller(
            app=self.app,
            concurrency=self.concurrency,
            pool="threads",
            hostname=self.hostname,
            queues=self.queues,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            loglevel="INFO",
        )
        self._thread = threading.Thread(target=self._controller.start, name=f"celery-{self.hostname}", daemon=True)
        self._thread.start()
        if not self._controller.ready.wait(timeout):
            raise RuntimeError(f"The embedded Celery worker did not start within {timeout} s")
        # Starting a worker marks this process as "inside a task", which forbids result.get();
        # the web side of the process is not a task, so lift it (as Celery's own test worker does).
        _set_task_join_will_block(False)
        logger.info("Embedded Celery worker %s started (%s threads, queues %s)", self.hostname, self.concurrency,
                    self.queues)

    def stop(self, timeout: float = 15.0) -> None:
        if self._controller is None:
            return
        self._controller.stop(in_sighandler=False, exitcode=0)
        if self._thread is not None:
            self._thread.join(timeout)
        self._controller = None


class EmbeddedWorkers:
    """The run pool (default queue) and the extraction pool, each its own WorkController.

    The extraction pool works on a second Celery app: a worker selects its queues on its app's
    shared queue table, so two workers on one app would overwrite each other's choice.
    """

    def __init__(self, app, run_concurrency: int, extraction_concurrency: int, name: str = "embedded",
                 sweep: bool = False) -> None:
        from rlmweb.celery import make_app

        self.sweep = sweep  # also run the periodic sweep (`rlmweb.sweeps`), as a Celery worker process does

        extraction_app: Celery = make_app()
        for key in ("broker_url", "broker_transport_options", "result_backend"):  # tests override these
            extraction_app.conf[key] = app.conf[key]
        self.runs = EmbeddedWorker(app, run_concurrency, f"{name}-runs@localhost", [settings.RUNS_QUEUE])
        self.extraction = EmbeddedWorker(
            extraction_app, extraction_concurrency, f"{name}-extraction@localhost", [settings.EXTRACTION_QUEUE]
        )

    def start(self, timeout: float = 30.0) -> None:
        self.extraction.start(timeout, make_current=False)
        self.runs.start(timeout)
        if self.sweep:
            from rlmweb.sweeps import start_sweeper

            start_sweeper()

    def stop(self, timeout: float = 15.0) -> None:
        if self.sweep:
            from rlmweb.sweeps import stop_sweeper

            stop_sweeper(timeout)
        self.runs.stop(timeout)
        self.extraction.stop(timeout)
