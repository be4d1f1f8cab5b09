"""Fixtures for the reliability suite: API clients, ready documents, and row-count snapshots.

`table_counts()` is how "nothing changed" is asserted after a refused request: the row count of
every model of the project's apps (and of auth) before and after.
"""

import pytest
from django.apps import apps as django_apps
from django.core.cache import cache

from apps.accounts.models import ApiToken
from tests.web.runs_factories import make_document


def table_counts() -> dict[str, int]:
    """Rows per model of the project's apps and of auth (tokens' last-used stamps are updates)."""
    return {
        model._meta.label: model.objects.count()
        for config in django_apps.get_app_configs() if config.name.startswith("apps.") or config.label == "auth"
        for model in config.get_models()
    }


@pytest.fixture
def clean_cache():
    """Rate limits count in the process-wide cache; each test starts from zero."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def token(user) -> str:
    return ApiToken.issue(user)[1]


@pytest.fixture
def auth(token) -> dict:
    return {"Authorization": f"Token {token}"}


@pytest.fixture
def doc(team, user, data_dir):
    return make_document(team, user=user)


@pytest.fixture
def no_broker(monkeypatch):
    """Asks are created but not enqueued: the tests here are about what the web layer accepts."""
    from apps.runs.tasks import run_rlm

    monkeypatch.setattr(run_rlm, "apply_async", lambda **kw: None)
