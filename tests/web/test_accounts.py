"""Accounts: sign-in, sign-up (switchable), sign-out, API tokens."""

import html
import io
import os
import stat

import pytest
from django.contrib.auth.models import User

from apps.accounts.models import ApiToken, hash_token

pytestmark = pytest.mark.django_db


def test_home_requires_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_sign_in_and_see_the_empty_home(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "correct horse battery staple"})
    assert response.status_code == 302
    page = client.get("/").content.decode()
    assert "No documents yet" in page and "No runs yet" in page
    assert "alice&#x27;s team" in page or "alice's team" in page


def test_wrong_password_is_refused(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "didn't match" in html.unescape(response.content.decode())


def test_signup_creates_an_account_with_a_personal_team(client, settings):
    settings.SIGNUP_ENABLED = True  # the embedded default; production's is off
    response = client.post(
        "/accounts/signup/",
        {"username": "bob", "email": "bob@example.com", "password1": "a-long-pass-phrase-9", "password2": "a-long-pass-phrase-9"},
    )
    assert response.status_code == 302
    bob = User.objects.get(username="bob")
    team = bob.teams.get()
    assert team.personal and team.memberships.get().role == "owner"


def test_signup_can_be_switched_off(client, settings):
    settings.SIGNUP_ENABLED = False
    assert client.get("/accounts/signup/").status_code == 404
    assert client.post("/accounts/signup/", {"username": "eve"}).status_code == 404
    assert not User.objects.filter(username="eve").exists()
    assert "Ask an administrator" in client.get("/accounts/login/").content.decode()


def test_sign_out(client, user):
    client.force_login(user)
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_token_is_shown_once_and_stored_hashed(client, user):
    client.force_login(user)
    page = client.post("/accounts/tokens/new/", {"name": "script"}).content.decode()
    token = ApiToken.objects.get(user=user)
    raw = page.split('id="new-token"')[1].split("<code>")[1].split("</code>")[0]
    assert raw.startswith("rlm_") and token.token_hash == hash_token(raw)
    assert raw not in client.get("/accounts/tokens/").content.decode()


def test_token_revocation(client, user, other_user):
    token, _ = ApiToken.issue(user)
    client.force_login(other_user)
    client.post(f"/accounts/tokens/{token.pk}/delete/")
    assert ApiToken.objects.filter(pk=token.pk).exists()  # not theirs
    client.force_login(user)
    client.post(f"/accounts/tokens/{token.pk}/delete/")
    assert not ApiToken.objects.filter(pk=token.pk).exists()


# --- sign-in throttling -------------------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    """The throttle's clock, moved by hand; the cache starts empty."""
    from django.core.cache import cache

    from apps.accounts import throttle

    cache.clear()
    now = [1_000_000.0]
    monkeypatch.setattr(throttle, "_now", lambda: now[0])
    yield now
    cache.clear()


def sign_in(client, username: str, password: str, url: str = "/accounts/login/"):
    return client.post(url, {"username": username, "password": password})


def test_after_five_wrong_passwords_even_the_right_one_waits_and_is_told_when(client, user, clock):
    for _ in range(4):
        assert "didn't match" in html.unescape(sign_in(client, "alice", "guess").content.decode())
    assert "Try again in 30 seconds" in sign_in(client, "alice", "guess").content.decode()  # the fifth locks
    page = sign_in(client, "alice", "correct horse battery staple")
    assert page.status_code == 429 and "Try again in 30 seconds" in page.content.decode()
    assert page["Retry-After"] == "30"
    assert client.get("/").status_code == 302  # not signed in
    clock[0] += 31
    assert sign_in(client, "alice", "correct horse battery staple").status_code == 302


def test_the_lockout_doubles_with_each_further_failure(client, user, clock):
    for _ in range(5):
        sign_in(client, "alice", "guess")
    clock[0] += 31
    assert "Try again in 60 seconds" in sign_in(client, "alice", "guess").content.decode()
    clock[0] += 61
    assert "Try again in 120 seconds" in sign_in(client, "Alice ", "guess").content.decode()  # same account


def test_a_flood_from_one_address_locks_that_address_for_every_account(client, user, clock, settings):
    for i in range(settings.LOGIN_FREE_FAILURES_PER_ADDRESS):
        sign_in(client, f"nobody{i}", "guess")
    assert "Try again in" in sign_in(client, "alice", "correct horse battery staple").content.decode()
    other = client_from("10.0.0.9")
    assert sign_in(other, "alice", "correct horse battery staple").status_code == 302


def client_from(address: str):
    from django.test import Client

    return Client(REMOTE_ADDR=address)


def test_the_admin_sign_in_is_throttled_too(client, clock):
    User.objects.create_superuser("root", password="correct horse battery staple")
    for _ in range(5):
        sign_in(client, "root", "guess", "/admin/login/")
    page = sign_in(client, "root", "correct horse battery staple", "/admin/login/")
    assert page.status_code == 429 and "Try again in 30 seconds" in page.content.decode()
    assert client.get("/admin/").status_code == 302


def test_an_all_digit_password_is_refused_at_sign_up(client, settings):
    settings.SIGNUP_ENABLED = True
    response = client.post("/accounts/signup/", {"username": "bob", "email": "bob@example.com",
                                                 "password1": "84736251948372", "password2": "84736251948372"})
    assert response.status_code == 200 and "entirely numeric" in response.content.decode()
    assert not User.objects.filter(username="bob").exists()


# --- the first account and the data directory's permissions -------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_first_accounts_password_is_shown_once_on_a_terminal_and_never_in_a_log(data_dir):
    from django.core.management import call_command

    log = io.StringIO()
    call_command("first_account", stdout=log)
    credentials = data_dir / "first-account.txt"
    password = credentials.read_text().split("password: ")[1].strip()
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert password not in log.getvalue() and str(credentials) in log.getvalue()
    again = Terminal()
    call_command("first_account", stdout=again)  # every later start: where, never what
    assert password not in again.getvalue()
    User.objects.all().delete()
    terminal = Terminal()
    call_command("first_account", stdout=terminal)
    assert credentials.read_text().split("password: ")[1].strip() in terminal.getvalue()


def test_the_data_directory_and_its_files_are_private(tmp_path):
    import subprocess
    import sys

    from tests.helpers import REPO

    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    out = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO,
                         env={**env, "RLMWEB_DATA_DIR": str(data)}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    created = [p for p in data.rglob("*")]
    assert created and (data / "rlmweb.sqlite3") in created
    for path in created:
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path


# --- password change, token expiry and read-only tokens ------------------------------------------------------


def test_a_signed_in_user_changes_their_password_under_the_validators(client, user):
    client.force_login(user)
    assert client.get("/accounts/password/").status_code == 200
    weak = client.post("/accounts/password/", {"old_password": "correct horse battery staple",
                                               "new_password1": "12345678901", "new_password2": "12345678901"})
    assert weak.status_code == 200 and "entirely numeric" in weak.content.decode()
    done = client.post("/accounts/password/", {"old_password": "correct horse battery staple",
                                               "new_password1": "a-new-long-phrase-7", "new_password2": "a-new-long-phrase-7"})
    assert done.status_code == 302 and done["Location"] == "/accounts/password/done/"
    user.refresh_from_db()
    assert user.check_password("a-new-long-phrase-7")


def test_an_expired_token_is_refused(client, user):
    from datetime import timedelta

    from django.utils import timezone

    token, raw = ApiToken.issue(user, expires_in_days=7)
    assert client.get("/api/runs/", headers={"Authorization": f"Token {raw}"}).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get("/api/runs/", headers={"Authorization": f"Token {raw}"})
    assert response.status_code == 401 and "expired" in response.json()["error"]


def test_a_read_only_token_reads_but_changes_nothing(client, user):
    _, raw = ApiToken.issue(user, read_only=True)
    auth = {"Authorization": f"Token {raw}"}
    assert client.get("/api/teams/", headers=auth).status_code == 200
    response = client.post("/api/teams/", {"name": "Skunkworks"}, content_type="application/json", headers=auth)
    assert response.status_code == 403 and "read-only" in response.json()["error"]
    assert not user.teams.filter(name="Skunkworks").exists()


def test_tokens_are_created_with_an_expiry_and_access_from_the_page(client, user):
    client.force_login(user)
    client.post("/accounts/tokens/new/", {"name": "ci", "expires_in_days": "30", "read_only": "on"})
    token = ApiToken.objects.get(user=user, name="ci")
    assert token.read_only and 29 <= (token.expires_at - token.created_at).days <= 30
    client.post("/accounts/tokens/new/", {"name": "odd", "expires_in_days": "100000"})
    assert not ApiToken.objects.filter(name="odd").exists()
