"""Limits and abuse: per-user rate limits on asks and uploads, the per-team cap on concurrent runs,
request size limits and CSRF on every form. Each refusal is a 4xx that changes nothing.
"""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.accounts.models import ApiToken
from apps.runs.models import Run, RunStatus
from apps.teams.models import Membership, Role
from tests.conftest import make_user
from tests.reliability.conftest import table_counts
from tests.web.runs_factories import make_document, make_run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache", "no_broker", "data_dir")]


def ask(client, doc, headers) -> object:
    body = {"question": "What is the code?", "documents": [str(doc.pk)]}
    return client.post("/api/runs/", json.dumps(body), content_type="application/json", headers=headers)


def ask_form(doc) -> dict:
    return {"documents": [str(doc.pk)], "question": "Q", "mode": "rlm", "root_model": "offline/heuristic",
            "sub_model": "offline/heuristic", "max_iterations": "3", "max_depth": "1", "max_subcalls": "10",
            "max_cost_usd": "1", "max_wall_s": "60"}


# --- rate limits --------------------------------------------------------------------------------


def test_asks_are_rate_limited_per_user_across_api_and_form(client, auth, doc, team, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "ask": (3, 60)}
    settings.MAX_CONCURRENT_RUNS_PER_TEAM = 100
    assert [ask(client, doc, auth).status_code for _ in range(2)] == [201, 201]
    client.force_login(doc.created_by)
    assert client.post("/runs/new/", ask_form(doc)).status_code == 302  # the third, through the page
    before = table_counts()
    refused = ask(client, doc, auth)
    assert refused.status_code == 429 and 0 < refused.json()["retry_after"] <= 60
    assert "at most 3 per 60 s" in refused.json()["error"]
    page = client.post("/runs/new/", ask_form(doc))
    assert page.status_code == 400 and b"Too many ask requests" in page.content
    assert table_counts() == before
    # A teammate has their own budget.
    mate = make_user("bob")
    Membership.objects.create(team=team, user=mate, role=Role.MEMBER)
    assert ask(Client(), doc, {"Authorization": f"Token {ApiToken.issue(mate)[1]}"}).status_code == 201


def test_uploads_are_rate_limited_per_user_chunked_and_single_request(client, auth, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "upload": (3, 60)}
    start = {"name": "a.txt", "size": 10}
    for _ in range(2):
        assert client.post("/api/documents/uploads/", start, content_type="application/json",
                           headers=auth).status_code == 201
    single = client.post("/api/documents/", {"file": SimpleUploadedFile("b.txt", b"beta\n")}, headers=auth)
    assert single.status_code == 201
    before = table_counts()
    again = client.post("/api/documents/uploads/", start, content_type="application/json", headers=auth)
    assert again.status_code == 429 and again.json()["retry_after"] > 0
    again = client.post("/api/documents/", {"file": SimpleUploadedFile("c.txt", b"gamma\n")}, headers=auth)
    assert again.status_code == 429
    assert table_counts() == before


# --- concurrency cap ----------------------------------------------------------------------------


def test_a_team_can_have_at_most_n_runs_queued_or_running(client, auth, doc, team, user, other_user, settings):
    settings.MAX_CONCURRENT_RUNS_PER_TEAM = 3
    make_run(team, user, [doc], status=RunStatus.RUNNING)
    make_run(team, user, [doc], status=RunStatus.SUCCEEDED)  # finished runs do not count
    assert ask(client, doc, auth).status_code == 201
    assert ask(client, doc, auth).status_code == 201
    before = table_counts()
    busy = ask(client, doc, auth)
    assert busy.status_code == 429 and "limit is 3" in busy.json()["error"]
    assert table_counts() == before
    # Another team is not affected by this team's runs.
    theirs = other_user.teams.first()
    their_doc = make_document(theirs, user=other_user)
    other_auth = {"Authorization": f"Token {ApiToken.issue(other_user)[1]}"}
    assert ask(Client(), their_doc, other_auth).status_code == 201
    # A run that ends frees its place.
    Run.objects.filter(team=team, status=RunStatus.QUEUED).update(status=RunStatus.CANCELLED)
    assert ask(client, doc, auth).status_code == 201


# --- request size -------------------------------------------------------------------------------


def test_request_bodies_over_the_limits_are_refused_without_storing(client, auth, user, doc, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 32 * 1024
    settings.MAX_UPLOAD_BYTES = 1024
    before = table_counts()
    big = json.dumps({"question": "q" * 40_000, "documents": [str(doc.pk)]})
    assert client.post("/api/runs/", big, content_type="application/json", headers=auth).status_code == 400
    too_big = client.post("/api/documents/uploads/", {"name": "a.txt", "size": 1025}, content_type="application/json",
                          headers=auth)
    assert too_big.status_code == 413
    single = client.post("/api/documents/", {"file": SimpleUploadedFile("big.txt", b"x" * 5000)}, headers=auth)
    assert single.status_code == 413
    client.force_login(user)
    assert client.post("/runs/new/", {**ask_form(doc), "question": "q" * 40_000}).status_code == 400
    assert table_counts() == before


# --- CSRF ---------------------------------------------------------------------------------------


def test_every_form_post_without_a_csrf_token_is_403_and_changes_nothing(user, team, doc):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    run = make_run(team, user, [doc], status=RunStatus.RUNNING)
    token, _ = ApiToken.issue(user)
    before = table_counts()
    posts = {
        "/runs/new/": ask_form(doc),
        f"/runs/{run.pk}/cancel/": {},
        f"/runs/{run.pk}/rerun/": ask_form(doc),
        f"/documents/{doc.pk}/delete/": {},
        "/accounts/tokens/new/": {"name": "x"},
        f"/accounts/tokens/{token.pk}/delete/": {},
        "/accounts/logout/": {},
        "/documents/uploads/": {"name": "a.txt", "size": 3},
    }
    for url, data in posts.items():
        assert browser.post(url, data).status_code == 403, url
    session_api = browser.post("/api/runs/", json.dumps({"question": "Q", "documents": [str(doc.pk)]}),
                               content_type="application/json")
    assert session_api.status_code == 403 and "CSRF" in session_api.json()["error"]
    assert table_counts() == before
    run.refresh_from_db()
    assert not run.cancel_requested
    # The sign-in and sign-up forms too (before any session exists).
    anonymous = Client(enforce_csrf_checks=True)
    assert anonymous.post("/accounts/login/", {"username": "alice", "password": "x"}).status_code == 403
    assert anonymous.post("/accounts/signup/", {"username": "eve", "password1": "a-Long-pass-123",
                                                "password2": "a-Long-pass-123"}).status_code == 403
    assert table_counts() == before


def test_the_same_form_post_with_its_csrf_token_works(user, team, doc):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    page = browser.get("/runs/new/")
    csrf = page.cookies["csrftoken"].value
    assert browser.post("/runs/new/", {**ask_form(doc), "csrfmiddlewaretoken": csrf}).status_code == 302
    assert Run.objects.count() == 1
