"""The Celery application. Each app's tasks live beside it (`apps/<app>/tasks.py`), the periodic
sweep in `rlmweb/sweeps.py`; configuration comes from Django settings.

Two queues, each with its own workers so one can never take the other's slots: runs (and
everything else) on the default queue, text extraction on `settings.EXTRACTION_QUEUE`.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlmweb.settings")


TASK_MODULES = ("apps.runs.tasks", "apps.documents.tasks", "apps.evals.tasks", "rlmweb.sweeps")


def make_app() -> Celery:
    """A Celery app configured from Django settings. The embedded profile makes a second one for
    its extraction worker, because a worker selects its queues on the app it is given."""
    celery_app = Celery("rlmweb")
    celery_app.config_from_object("django.conf:settings", namespace="CELERY")
    celery_app.conf.imports = TASK_MODULES
    return celery_app


app = make_app()


@app.task(name="rlmweb.ping")
def ping(value: str = "pong") -> str:
    """Round trip through broker and worker; used by health checks and tests."""
    return value
