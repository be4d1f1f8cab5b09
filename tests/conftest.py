"""Fixtures shared by the whole suite.

Every test session gets its own data directory, so tests never touch ./data and the filesystem
Celery broker of the embedded profile starts empty.
"""

import os
import shutil
import tempfile

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def pytest_configure(config):
    """Give the session its own data directory and, on the embedded default, its own broker."""
    from pathlib import Path

    from django.conf import settings

    from rlmweb.celery import app
    from rlmweb.settings import embedded_broker

    data_dir = Path(tempfile.mkdtemp(prefix="rlmweb-test-"))
    os.environ["RLMWEB_DATA_DIR"] = str(data_dir)  # for subprocesses the tests start
    settings.DATA_DIR = data_dir
    settings.MEDIA_ROOT = data_dir / "media"
    if settings.PROFILE == "embedded":
        # A file, not SQLite's shared in-memory database: the worker and websocket threads write
        # while tests read, and shared-cache memory databases answer that with "table is locked"
        # instead of waiting like WAL files do.
        settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = str(data_dir / "test.sqlite3")
        options, backend = embedded_broker(data_dir)
        settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
        settings.CELERY_RESULT_BACKEND = backend
        app.conf.broker_transport_options = options
        app.conf.result_backend = backend
    config._rlmweb_data_dir = data_dir


def pytest_unconfigure(config):
    data_dir = getattr(config, "_rlmweb_data_dir", None)
    if data_dir is not None and not os.environ.get("RLMWEB_TEST_KEEP_DATA"):
        shutil.rmtree(data_dir, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Service-backed tests run only in the production profile (DATABASE_URL and REDIS_URL set)."""
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        return
    skip = pytest.mark.skip(
        reason="needs PostgreSQL and Redis: set DATABASE_URL and REDIS_URL (bin/test starts both)"
    )
    for item in items:
        if "services" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def enqueued(monkeypatch):
    """Record what would be sent to Celery instead of sending it."""
    from apps.runs.tasks import run_rlm

    sent = []
    monkeypatch.setattr(run_rlm, "apply_async", lambda args, task_id: sent.append((args, task_id)))
    return sent


@pytest.fixture
def celery_worker(transactional_db):
    """Real Celery workers (a run pool and an extraction pool, thread pools) consuming the configured
    broker, inside the test process, as `manage.py serve` starts them."""
    from rlmweb.celery import app
    from rlmweb.embedded_worker import EmbeddedWorkers

    worker = EmbeddedWorkers(app, run_concurrency=2, extraction_concurrency=1, name="tests")
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def make_user(username: str, password: str = "correct horse battery staple", **extra):
    from django.contrib.auth.models import User

    return User.objects.create_user(username=username, password=password, email=f"{username}@example.com", **extra)


@pytest.fixture
def user(db):
    return make_user("alice")


@pytest.fixture
def other_user(db):
    return make_user("mallory")


@pytest.fixture
def team(user):
    return user.teams.first()


@pytest.fixture
def data_dir(settings, tmp_path):
    """Point DATA_DIR and MEDIA_ROOT at a fresh directory for one test."""
    settings.DATA_DIR = tmp_path
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(autouse=True)
def events_match_their_schema(monkeypatch):
    """Every event the code under test emits or builds fits its dataclass in worker/engine/events.py.

    In production a violation is logged once and the event still goes out; here it fails the test
    (at teardown, listing each violation). Events written by tests themselves (factories, imports of
    hand-edited exports) do not pass through `check`, so they are not judged.
    """
    from worker.engine import events

    found: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(events, "report_violation", lambda type_, problems: found.append((type_, problems)))
    yield found
    if found:
        pytest.fail("events that do not match their schema (worker/engine/events.py): " +
                    "; ".join(f"{type_}: {', '.join(problems)}" for type_, problems in found[:10]), pytrace=False)
