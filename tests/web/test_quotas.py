"""Limits that keep one account, or many, from taking the server: the team storage quota, sign-up
off in production, a monthly cap for new personal teams, and uploads refused before their body is read."""

import subprocess
import sys
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.accounts.models import ApiToken
from apps.documents import upload_handlers
from apps.documents.models import Document, UploadSession
from apps.teams.models import Membership, Role
from tests.conftest import make_user
from tests.helpers import REPO
from tests.web.runs_factories import make_document

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(user, data_dir) -> Client:
    cache.clear()
    return Client(headers={"Authorization": f"Token {ApiToken.issue(user)[1]}"})


@pytest.fixture
def small_quota(settings, team):
    """A 1,000-byte quota, 600 of it already taken by a document."""
    settings.TEAM_STORAGE_BYTES = 1000
    document = make_document(team, "x" * 600)
    assert document.size_bytes == 600
    return settings


def start(api, size: int):
    return api.post("/api/documents/uploads/", {"name": "a.txt", "size": size}, content_type="application/json")


# --- storage quota ---------------------------------------------------------------------------------------


def test_an_upload_that_does_not_fit_the_quota_is_refused_before_any_byte(api, small_quota):
    response = start(api, 401)
    assert response.status_code == 413
    assert "storage quota" in response.json()["error"] and "RLMWEB_TEAM_STORAGE_GB" in response.json()["error"]
    assert not UploadSession.objects.exists()
    assert start(api, 400).status_code == 201  # exactly fits


def test_unfinished_uploads_reserve_their_size(api, small_quota):
    assert start(api, 300).status_code == 201
    assert start(api, 101).status_code == 413  # 600 stored + 300 announced + 101 > 1000


def test_chunks_are_refused_once_the_quota_no_longer_fits(api, small_quota):
    upload = start(api, 300).json()
    small_quota.TEAM_STORAGE_BYTES = 800  # lowered meanwhile (or other uploads finished)
    response = api.put(f"{upload['chunk_url']}?offset=0", b"y" * 300, content_type="application/octet-stream")
    assert response.status_code == 413 and "storage quota" in response.json()["error"]
    assert api.get(upload["url"]).json()["offset"] == 0


def test_a_completed_upload_counts_once_not_twice(api, small_quota, data_dir):
    upload = start(api, 400).json()
    assert api.put(f"{upload['chunk_url']}?offset=0", b"y" * 400, content_type="application/octet-stream").status_code == 200
    assert api.post(upload["complete_url"]).status_code == 201


def test_a_single_request_upload_over_the_quota_is_refused(api, small_quota, data_dir):
    response = api.post("/api/documents/", {"file": SimpleUploadedFile("b.txt", b"z" * 500)})
    assert response.status_code == 413 and "storage quota" in response.json()["error"]
    assert Document.objects.count() == 1


# --- a single-request upload refused before its body is read ---------------------------------------------


@pytest.fixture
def bodies_read(monkeypatch):
    """Files the upload handler started writing to disk."""
    started = []
    original = upload_handlers.DocumentUploadHandler.new_file

    def new_file(self, *args, **kwargs):
        started.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(upload_handlers.DocumentUploadHandler, "new_file", new_file)
    return started


def session_client(user) -> Client:
    client = Client(enforce_csrf_checks=True)  # CSRF checked as in a browser: what read the body before
    client.force_login(user)
    return client


def test_a_viewers_multipart_upload_is_refused_before_its_body_is_read(user, team, data_dir, bodies_read):
    viewer = make_user("victor")
    Membership.objects.create(team=team, user=viewer, role=Role.VIEWER)
    client = session_client(viewer)
    response = client.post(f"/api/documents/?team={team.pk}", {"file": SimpleUploadedFile("a.txt", b"a" * 4096)})
    assert response.status_code == 403 and "does not allow uploading" in response.json()["error"]
    assert bodies_read == []


def test_a_rate_limited_multipart_upload_is_refused_before_its_body_is_read(user, data_dir, bodies_read, settings):
    cache.clear()
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "upload": (0, 60)}
    response = session_client(user).post("/api/documents/", {"file": SimpleUploadedFile("a.txt", b"a" * 4096)})
    assert response.status_code == 429
    assert bodies_read == []


def test_a_session_upload_still_needs_its_csrf_token(user, data_dir):
    cache.clear()
    response = session_client(user).post("/api/documents/", {"file": SimpleUploadedFile("a.txt", b"hello\n")})
    assert response.status_code == 403 and "CSRF" in response.json()["error"]
    assert not Document.objects.exists()


# --- sign-up and the monthly cap of new personal teams ---------------------------------------------------


def test_signup_is_off_by_default_in_the_production_profile_only():
    code = "import django; django.setup(); from django.conf import settings; print(settings.SIGNUP_ENABLED)"
    base = {"DJANGO_SETTINGS_MODULE": "rlmweb.settings", "PATH": "/usr/bin:/bin", "RLMWEB_SECRET_KEY": "s" * 50}

    def signup_enabled(**env) -> str:
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**base, **env}, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.strip()

    assert signup_enabled(DATABASE_URL="postgres://rlmweb@127.0.0.1:1/rlmweb") == "False"
    assert signup_enabled(DATABASE_URL="postgres://rlmweb@127.0.0.1:1/rlmweb", RLMWEB_SIGNUP_ENABLED="1") == "True"
    assert signup_enabled() == "True"


def test_new_personal_teams_get_the_default_cap_when_a_hosted_model_is_usable(monkeypatch, settings):
    settings.DEFAULT_MONTHLY_CAP_USD = "20"
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    assert make_user("offline_only").teams.get().monthly_cap_usd is None  # nothing can cost money
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert make_user("hosted").teams.get().monthly_cap_usd == Decimal("20.00")
    settings.DEFAULT_MONTHLY_CAP_USD = ""
    assert make_user("uncapped").teams.get().monthly_cap_usd is None
