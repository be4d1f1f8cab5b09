"""Accounts: sign-in, sign-up (switchable), sign-out, API tokens."""

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
    assert "didn't match" in response.content.decode()


def test_signup_creates_an_account_with_a_personal_team(client):
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
