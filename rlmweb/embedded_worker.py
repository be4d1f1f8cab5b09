"""A real Celery worker running inside the web process (embedded profile).

Tasks still go through the broker (serialised to the filesystem queue) and are executed by a
Celery WorkController with a thread pool: the same code path as `celery -A rlmweb worker`, minus
the separate process.
"""

import logging
import threading

from celery._state import _set_task_join_will_block
from celery.worker import WorkController

logger = logging.getLogger(__name__)


class _Controller(WorkController):
    def __init__(self, *args, **kwargs):
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer):
        self.ready.set()


class EmbeddedWorker:
    def __init__(self, app, concurrency: int = 4, hostname: str = "embedded@localhost") -> None:
        self.app = app
        self.concurrency = concurrency
        self.hostname = hostname
        self._controller: _Controller | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.app.set_current()
        self.app.loader.import_default_modules()
        self._controller = _Controller(
            app=self.app,
            concurrency=self.concurrency,
            pool="threads",
            hostname=self.hostname,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            loglevel="INFO",
        )
        self._thread = threading.Thread(target=self._controller.start, name="celery-embedded", daemon=True)
        self._thread.start()
        if not self._controller.ready.wait(timeout):
            raise RuntimeError(f"The embedded Celery worker did not start within {timeout} s")
        # Starting a worker marks this process as "inside a task", which forbids result.get();
        # the web side of the process is not a task, so lift it (as Celery's own test worker does).
        _set_task_join_will_block(False)
        logger.info("Embedded Celery worker started (%s threads)", self.concurrency)

    def stop(self, timeout: float = 15.0) -> None:
        if self._controller is None:
            return
        self._controller.stop(in_sighandler=False, exitcode=0)
        if self._thread is not None:
            self._thread.join(timeout)
        self._controller = None
