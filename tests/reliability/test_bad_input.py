"""Bad input at every entrance gets a clear 4xx (or websocket close code) and changes nothing.

Each case snapshots the row count of every model before and after the refused request. The JSON
API is also driven with arbitrary payloads by the property-based tests in test_api_fuzz.py.
"""

import json
import math
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter

from apps.runs.models import Run, RunStatus
from apps.runs.routing import websocket_urlpatterns
from apps.runs.services import MAX_QUESTION_CHARS
from tests.reliability.conftest import table_counts
from tests.web.runs_factories import make_run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache", "no_broker", "data_dir")]


def post_json(client, url, body, headers, raw: bool = False):
    data = body if raw else json.dumps(body, allow_nan=True)
    return client.post(url, data, content_type="application/json", headers=headers)


def refused(response, status: int = 400) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = response.json()
    assert body["error"], body
    return body


def ask(doc, **fields) -> dict:
    return {"question": "What is the code?", "documents": [str(doc.pk)], **fields}


# --- ask parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "error_field"), [
    ({"limits": {"max_iterations": -1}}, "limits.max_iterations"),
    ({"limits": {"max_iterations": 0}}, "limits.max_iterations"),
    ({"limits": {"max_depth": -5}}, "limits.max_depth"),
    ({"limits": {"max_subcalls": 10**12}}, "limits.max_subcalls"),
    ({"limits": {"max_cost_usd": -0.01}}, "limits.max_cost_usd"),
    ({"limits": {"max_cost_usd": 0}}, "limits.max_cost_usd"),
    ({"limits": {"max_cost_usd": math.inf}}, "limits.max_cost_usd"),
    ({"limits": {"max_cost_usd": math.nan}}, "limits.max_cost_usd"),
    ({"limits": {"max_wall_s": 1.5}}, "limits.max_wall_s"),
    ({"limits": {"max_iterations": True}}, "limits.max_iterations"),
    ({"limits": {"max_iterations": "10"}}, "limits.max_iterations"),
    ({"limits": {"max_tokens": 10}}, "limits.max_tokens"),
    ({"root_model": "openai/no-such-model"}, "root_model"),
    ({"sub_model": ""}, "sub_model"),
    ({"root_model": "offline/heuristic\x00"}, "root_model"),
    ({"mode": "turbo"}, "mode"),
    ({"question": ""}, "question"),
    ({"question": "   \n\t"}, "question"),
    ({"question": "x" * (MAX_QUESTION_CHARS + 1)}, "question"),
    ({"documents": []}, "documents"),
    ({"documents": ["not-a-uuid"]}, "documents"),
    ({"documents": [str(uuid.uuid4())]}, "documents"),
])
def test_bad_ask_parameters_are_400_with_the_field_and_create_nothing(client, auth, doc, fields, error_field):
    before = table_counts()
    body = refused(post_json(client, "/api/runs/", ask(doc, **fields), auth))
    assert error_field in body["fields"], body
    assert table_counts() == before


def test_a_huge_question_is_refused_before_anything_is_stored(client, auth, doc):
    before = table_counts()
    body = refused(post_json(client, "/api/runs/", ask(doc, question="why? " * 100_000), auth))
    assert "at most 20,000" in body["fields"]["question"][0]
    # Past 1 MiB the JSON body itself is refused, before it is parsed.
    body = refused(post_json(client, "/api/runs/", ask(doc, question="why? " * 1_000_000), auth))
    assert "too large" in body["error"]
    assert table_counts() == before


def test_a_body_over_the_request_size_limit_is_400_and_stores_nothing(client, auth, doc, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    before = table_counts()
    response = post_json(client, "/api/runs/", ask(doc, question="q" * 100_000), auth)
    assert response.status_code == 400
    assert table_counts() == before


def test_the_ask_form_refuses_negative_limits_and_unknown_models(client, user, doc):
    client.force_login(user)
    before = table_counts()
    form = {"documents": [str(doc.pk)], "question": "Q", "mode": "rlm", "root_model": "offline/heuristic",
            "sub_model": "offline/heuristic", "max_iterations": "-3", "max_depth": "1", "max_subcalls": "10",
            "max_cost_usd": "1", "max_wall_s": "60"}
    assert client.post("/runs/new/", form).status_code == 400
    assert client.post("/runs/new/", {**form, "max_iterations": "3", "root_model": "evil/model"}).status_code == 400
    assert client.post("/runs/new/", {**form, "max_iterations": "3", "question": "q" * 30_000}).status_code == 400
    assert client.post("/runs/new/", {**form, "max_iterations": "3", "documents": ["../../etc"]}).status_code == 400
    assert table_counts() == before


# --- API payloads: wrong types, missing fields, malformed bodies ------------------------------------


@pytest.mark.parametrize("body", [
    b"{", b"null", b"[]", b'"question"', b"42", b"\xff\xfe\x00", b'{"question": "Q", "documents": [}',
])
def test_malformed_bodies_are_400_on_every_json_endpoint(client, auth, doc, team, user, body):
    run = make_run(team, user, [doc], status=RunStatus.SUCCEEDED)
    before = table_counts()
    for url in ("/api/runs/", f"/api/runs/{run.pk}/rerun/", "/api/documents/uploads/"):
        refused(post_json(client, url, body, auth, raw=True))
    assert table_counts() == before


@pytest.mark.parametrize("payload", [
    {},
    {"name": "a.txt"},
    {"name": "a.txt", "size": "10"},
    {"name": "a.txt", "size": -1},
    {"name": "a.txt", "size": 0},
    {"name": "a.txt", "size": True},
    {"name": "a.txt", "size": 1.5},
    {"name": "a.txt", "size": 10**30},
    {"name": "a.txt", "size": 10, "sha256": "xyz"},
    {"name": "a.txt", "size": 10, "sha256": ["a"]},
    {"name": "", "size": 10},
    {"files": "a.txt"},
    {"files": [1, 2]},
    {"files": []},
    {"files": [{"name": "a.txt", "size": 1}] * 10_000},
])
def test_bad_upload_requests_are_4xx_and_store_nothing(client, auth, payload):
    before = table_counts()
    response = post_json(client, "/api/documents/uploads/", payload, auth)
    if response.status_code == 201:  # a batch reports per-file errors; then every file must be refused
        uploads = response.json()["uploads"]
        assert uploads and all("error" in u for u in uploads), uploads
    else:
        assert 400 <= response.status_code < 500, response.content
    assert table_counts() == before


@pytest.mark.parametrize("query", [
    "since=-1", "since=abc", "since=1e3", "since=99999999999999999999", "limit=0", "limit=100000", "limit=-4",
    "team=abc", "team=-1", "team=99999999999999999999999", "page=abc", "per_page=0",
    "status=%00", "q=" + "x" * 5000,
])
def test_bad_query_parameters_never_fail_the_server(client, auth, doc, team, user, query):
    run = make_run(team, user, [doc], status=RunStatus.SUCCEEDED)
    before = table_counts()
    for url in (f"/api/runs/?{query}", f"/api/runs/{run.pk}/events/?{query}", f"/api/documents/?{query}",
                f"/runs/{run.pk}/events.json?{query}"):
        if url.startswith("/runs/"):
            client.force_login(user)
        response = client.get(url, headers=auth)
        assert response.status_code < 500, (url, response.status_code)
    assert table_counts() == before


@pytest.mark.parametrize("url", [
    pytest.param("/api/runs/?team=%C2%B2", id="runs-api-team"),
    pytest.param("/api/documents/?team=%C2%B2", id="documents-api-team"),
    pytest.param("/api/documents/uploads/?team=%C2%B2", id="uploads-api-team"),
])
def test_unicode_digits_are_not_ids(client, auth, url):
    before = table_counts()
    response = client.get(url, headers=auth) if "uploads" not in url else post_json(
        client, url, {"name": "a.txt", "size": 3}, auth)
    assert 400 <= response.status_code < 500
    assert table_counts() == before


@pytest.mark.parametrize("header", [
    "Token", "Token ", "Bearer x", "Basic dXNlcjpwYXNz", "Token " + "a" * 10_000, "Token \u2603", "garbage",
])
def test_bad_credentials_are_401_and_change_nothing(client, doc, header):
    before = table_counts()
    headers = {"Authorization": header}
    refused(client.get("/api/runs/", headers=headers), 401)
    for url in ("/api/runs/", "/api/documents/uploads/"):
        refused(post_json(client, url, ask(doc), headers), 401)
    assert table_counts() == before


def test_ids_that_are_not_runs_are_404(client, auth, doc, team, user, other_user):
    foreign = make_run(other_user.teams.first(), other_user, [], status=RunStatus.RUNNING)
    before = table_counts()
    for url in (f"/api/runs/{uuid.uuid4()}/", f"/api/runs/{foreign.pk}/", f"/api/runs/{foreign.pk}/events/",
                "/api/runs/not-a-uuid/", "/api/runs/../../admin/"):
        assert client.get(url, headers=auth).status_code == 404, url
    for url in (f"/api/runs/{foreign.pk}/cancel/", f"/api/runs/{foreign.pk}/rerun/"):
        assert post_json(client, url, {}, auth).status_code == 404, url
    assert table_counts() == before
    foreign.refresh_from_db()
    assert foreign.status == RunStatus.RUNNING and not foreign.cancel_requested


# --- websocket messages ---------------------------------------------------------------------------


def communicator(run_id, user, path: str | None = None):
    from tests.web.test_consumer_runs import WebsocketCommunicator

    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path or f"/ws/runs/{run_id}/")
    comm.scope["user"] = user
    return comm


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("frame", [
    {"text_data": "x" * (1024 * 1024)},
    {"text_data": json.dumps({"type": "resume", "since": 0, "junk": "y" * (2 * 1024 * 1024)})},
    {"bytes_data": bytes(range(256)) * 4096},
    {"text_data": json.dumps({"type": "cancel"})},
    {"text_data": json.dumps({"type": "resume", "since": -1})},
    {"text_data": json.dumps({"type": "resume", "since": 1.5})},
    {"text_data": json.dumps({"type": "resume", "since": True})},
    pytest.param({"text_data": json.dumps({"type": "resume", "since": "\u00b2"})}),
    {"text_data": "\ud800"},
    {"text_data": " "},
])
def test_websocket_garbage_and_huge_frames_close_4400_and_change_nothing(team, user, doc, frame):
    run = make_run(team, user, [doc], status=RunStatus.RUNNING)
    before = table_counts()

    async def scenario():
        comm = communicator(run.pk, user)
        connected, _ = await comm.connect(timeout=10)
        assert connected
        while (await comm.receive_json_from(10))["type"] != "replayed":
            pass
        await comm.send_to(**frame)
        error = await comm.receive_json_from(3)
        assert error["type"] == "error", error
        assert await comm.receive_output(10) == {"type": "websocket.close", "code": 4400}

    async_to_sync(scenario)()
    assert table_counts() == before
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING


# --- share tokens ----------------------------------------------------------------------------------


def test_malformed_unknown_expired_and_revoked_share_tokens_are_refused_and_change_nothing(team, user, doc):
    from datetime import timedelta

    from django.test import Client
    from django.utils import timezone

    from apps.sharing.models import ShareLink
    from apps.sharing.services import share_create, share_revoke

    run = make_run(team, user, [doc], status=RunStatus.SUCCEEDED)
    expired_link, expired = share_create(user, run, expires_in_days=1)
    ShareLink.objects.filter(pk=expired_link.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    revoked_link, revoked = share_create(user, run)
    share_revoke(user, revoked_link)
    anonymous = Client()
    before = table_counts()
    for token, statuses in [
        ("x", {404}), ("a" * 5000, {404}), ("%00", {404}), ("..%2F..%2Fetc", {404}), ("%E2%98%83" * 20, {404}),
        ("' OR 1=1 --", {404}), (str(uuid.uuid4()), {404}), (expired, {410}), (revoked, {410}),
    ]:
        for suffix in ("", "events.json", "trajectory.json", "documents/0/text"):
            response = anonymous.get(f"/s/{token}/{suffix}")
            assert response.status_code in statuses | {404} and response.status_code < 500, (token, suffix)
        assert anonymous.get(f"/s/{token}/").status_code in statuses, token
    assert table_counts() == before
