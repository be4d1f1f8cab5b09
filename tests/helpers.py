"""Helpers for tests that start real processes."""

import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from django.db import connection

REPO = Path(__file__).resolve().parent.parent


class ProcessHandle:
    def __init__(self, proc: subprocess.Popen, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def pdf_from_objects(objects: list[bytes]) -> bytes:
    """A PDF file of `objects` (numbered from 1; object 1 is the catalog) with its xref table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def test_database_url() -> str:
    """DATABASE_URL of the test database pytest-django created (PostgreSQL only)."""
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


@contextlib.contextmanager
def celery_worker_process(concurrency: int = 2, extra_env: dict | None = None) -> Iterator[ProcessHandle]:
    """`celery -A rlmweb worker` as a separate process on the test database, as in production."""
    env = dict(os.environ)
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = test_database_url()
    env.update(extra_env or {})
    log = Path(tempfile.mkstemp(prefix="celery-worker-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "rlmweb", "worker", "-Q", "celery,extraction", "--pool", "threads",
             "--concurrency", str(concurrency), "--loglevel", "INFO", "--hostname", f"test-{os.getpid()}@%h",
             "--without-mingle", "--without-gossip"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    handle = ProcessHandle(proc, log)
    try:
        deadline = time.monotonic() + 60
        while "ready." not in handle.output():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("celery worker did not start:\n" + handle.output()[-3000:])
            time.sleep(0.2)
        yield handle
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
