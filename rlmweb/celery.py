"""The Celery application. Tasks live in `worker.tasks`; configuration comes from Django settings."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlmweb.settings")

app = Celery("rlmweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.imports = ("worker.tasks",)


@app.task(name="rlmweb.ping")
def ping(value: str = "pong") -> str:
    """Round trip through broker and worker; used by health checks and tests."""
    return value
