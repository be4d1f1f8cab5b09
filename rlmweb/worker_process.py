"""The embedded default's Celery worker, in a child process that `manage.py serve` supervises.

One command, no service: `serve` spawns `manage.py embedded_worker` (the same `EmbeddedWorkers`
the test suite starts in-process) and restarts it if it dies. Running the engine in its own
interpreter keeps its CPU (litellm, sinks, the broker's polling) off the GIL of the web process,
whose event loop serves pages and websockets: with both in one interpreter, 5 runs and 50 viewers
delayed live events by seconds (docs/benchmarks.md, "Live events under load").

Tasks reach the child through the filesystem broker, cancellation through the database, as
before; its channel-layer messages come back over a socketpair (`rlmweb.event_relay`).
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from django.conf import settings

from rlmweb.event_relay import PARENT_PID_ENV, RELAY_FD_ENV, RelayReader

logger = logging.getLogger(__name__)

RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
HEALTHY_AFTER_S = 60.0  # a child that lived this long restarts after the shortest backoff again


class WorkerProcess:
    """Spawns `manage.py embedded_worker`, relays its events, restarts it when it dies."""

    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen | None = None
        self.reader: RelayReader | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> None:
        # The supervising thread spawns the child: the child's parent-death signal is tied to the
        # thread that forked it, and this one lives until stop().
        self._thread = threading.Thread(target=self._supervise, name="embedded-worker-supervisor", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError("The embedded worker process could not be spawned")

    def _spawn(self) -> subprocess.Popen:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = {**os.environ, **self.extra_env, RELAY_FD_ENV: str(theirs.fileno()), PARENT_PID_ENV: str(os.getpid())}
        try:
            proc = subprocess.Popen(
                [sys.executable, str(settings.BASE_DIR / "manage.py"), "embedded_worker"],
                env=env, pass_fds=(theirs.fileno(),), cwd=settings.BASE_DIR,
            )
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        self.reader = RelayReader(mine)
        self.reader.start()
        logger.info("Embedded worker process %s started", proc.pid)
        return proc

    def _supervise(self) -> None:
        backoff = 0
        while not self._stopping.is_set():
            began = time.monotonic()
            try:
                self.proc = self._spawn()
            except OSError:
                logger.exception("Could not spawn the embedded worker process")
                self._started.set()
                return
            self._started.set()
            code = self.proc.wait()
            if self._stopping.is_set():
                return
            backoff = 0 if time.monotonic() - began > HEALTHY_AFTER_S else min(backoff + 1, len(RESTART_BACKOFF_S) - 1)
            delay = RESTART_BACKOFF_S[backoff]
            logger.error("The embedded worker process exited (code %s); restarting it in %.0f s", code, delay)
            self.restarts += 1
            if self._stopping.wait(delay):
                return

    def stop(self, timeout: float = 20.0) -> None:
        """Ask the worker to finish (SIGTERM: a warm shutdown), kill it after `timeout` s."""
        self._stopping.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("The embedded worker process did not stop within %.0f s; killing it", timeout)
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(5)
        if self.reader is not None:
            self.reader.join(5)
