"""Share links: who creates and revokes them, and what a link holder (signed out) can read.

A link opens one run's explorer, events, trajectory and (if the link allows it) its documents'
text; nothing else. Revoked and expired links are 410, unknown and malformed ones 404; the share
websocket closes 4403/4404/4400 for the same cases.
"""

import datetime as dt
import re

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.urls import reverse
from django.utils import timezone

from apps.runs import consumers as run_consumers
from apps.runs.models import RunStatus
from apps.runs.sink import persist_events, publish_events
from apps.sharing import services
from apps.sharing.models import ShareLink, hash_token
from apps.teams.models import Membership, Role
from tests.conftest import make_user
from tests.web.runs_factories import make_document, make_events, make_run
from tests.web.test_consumer_runs import WebsocketCommunicator

pytestmark = pytest.mark.usefixtures("data_dir")
TIMEOUT = 10


def share(run, user, **kwargs) -> str:
    """A new link's token."""
    return services.share_create(user, run, **kwargs)[1]


def ws_client(path: str, user=None) -> WebsocketCommunicator:
    """A websocket client through the whole ASGI application (origin check, session auth, routes)."""
    from rlmweb.asgi import application

    comm = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://localhost"),
                                                             (b"host", b"localhost")])
    if user is not None:
        comm.scope["user"] = user
    return comm


async def close_code(comm: WebsocketCommunicator) -> int:
    connected, _ = await comm.connect(timeout=TIMEOUT)
    assert connected  # accepted first, so browsers see the code
    while True:
        message = await comm.receive_output(TIMEOUT)
        if message["type"] == "websocket.close":
            return message["code"]


@pytest.fixture
def run(team, user):
    doc = make_document(team, text="Clause 7: the fee is 42 euros.\n", name="contract.txt", user=user)
    run = make_run(team, user, [doc], status=RunStatus.SUCCEEDED, final_answer="42 euros")
    persist_events(run.pk, make_events(1, 4, final=True))
    return run


# --- creating and revoking ---------------------------------------------------------------------------

@pytest.mark.django_db
def test_creator_shares_from_the_run_page_and_sees_the_link_once(client, user, run):
    client.force_login(user)
    response = client.post(reverse("share_create", args=[run.pk]), {"expires_in_days": "7"})
    assert response.status_code == 201
    url = re.search(r'id="share-url">([^<]+)<', response.content.decode()).group(1)
    token = url.rstrip("/").rsplit("/", 1)[1]
    link = ShareLink.objects.get(run=run)
    assert link.token_hash == hash_token(token) and token not in link.token_hash
    assert link.expires_at > timezone.now() + dt.timedelta(days=6)
    assert not link.show_document_text


@pytest.mark.django_db
def test_who_may_share(run, team, user):
    admin, member, viewer = (make_user(n) for n in ("ada", "meg", "vic"))
    for person, role in ((admin, Role.ADMIN), (member, Role.MEMBER), (viewer, Role.VIEWER)):
        Membership.objects.create(team=team, user=person, role=role)
    assert services.can_share(user, run) and services.can_share(admin, run)
    assert not services.can_share(member, run)  # not their run
    assert not services.can_share(viewer, run)
    assert not services.can_share(make_user("outsider"), run)


@pytest.mark.django_db
def test_panel_lists_links_for_those_who_may_share(client, user, run, other_user):
    from django.template import engines

    share(run, user)
    template = engines["django"].from_string('{% include "sharing/_share_panel.html" %}')
    request = client.get("/").wsgi_request

    request.user = user
    html = template.render({"run": run}, request)
    assert 'id="share-panel"' in html and "/s/" in html and "Revoke" in html
    request.user = other_user
    assert "share-panel" not in template.render({"run": run}, request)


@pytest.mark.django_db
def test_revoke(client, user, run, other_user):
    token = share(run, user)
    link = ShareLink.objects.get(run=run)
    client.force_login(other_user)
    assert client.post(reverse("share_revoke", args=[link.pk])).status_code == 404  # other team
    client.force_login(user)
    assert client.post(reverse("share_revoke", args=[link.pk])).status_code == 302
    client.logout()
    assert client.get(reverse("share_page", args=[token])).status_code == 410


@pytest.mark.django_db
def test_expiry_out_of_range_is_refused(user, run):
    from django.core.exceptions import ValidationError

    for days in (0, 366, "7", True):
        with pytest.raises(ValidationError):
            services.share_create(user, run, expires_in_days=days)


# --- what a link holder reads -------------------------------------------------------------------------

@pytest.mark.django_db
def test_public_page_renders_the_run_and_counts_views(client, user, run):
    token = share(run, user)
    other = make_run(run.team, user, question="A different, private question?")
    for expected in (1, 2):
        page = client.get(reverse("share_page", args=[token]))
        assert page.status_code == 200
        assert ShareLink.objects.get(run=run).view_count == expected
    html = page.content.decode()
    assert run.question in html and "contract.txt" in html
    assert f"/ws/share/{token}/" in html and f"/s/{token}/events.json" in html
    assert page["Cache-Control"] == "private, no-store" and page["Referrer-Policy"] == "no-referrer"
    for secret in (user.email, "alice", str(other.pk), other.question, str(run.documents.get().pk)):
        assert secret not in html


@pytest.mark.django_db
def test_events_json_same_shape_with_only_documented_fields(client, user, run):
    from worker.engine.events import Event

    persist_events(run.pk, [Event(5, "cell.finished", 1.0, {"cell_id": "c1", "stdout": "ok",
                                                          "document_text": "SECRET FULL TEXT"})])
    token = share(run, user)
    body = client.get(reverse("share_events", args=[token]) + "?since=0").json()
    assert set(body) == {"run", "status", "last_seq", "events", "more"}
    assert [e["seq"] for e in body["events"]] == [1, 2, 3, 4, 5]
    assert body["events"][-1]["data"] == {"cell_id": "c1", "stdout": "ok"}
    assert body["status"] == "succeeded" and body["last_seq"] == 5
    assert client.get(reverse("share_events", args=[token]) + "?since=3").json()["events"][0]["seq"] == 4


@pytest.mark.django_db
def test_trajectory_export_leaves_out_team_creator_and_ids(client, user, run):
    token = share(run, user)
    response = client.get(reverse("share_trajectory", args=[token]))
    assert response.status_code == 200
    import json

    body = json.loads(b"".join(response.streaming_content))
    assert body["shared"] and len(body["events"]) == 4
    assert "created_by" not in body["run"] and "team" not in body["run"]
    assert body["run"]["documents"] == [{"name": "contract.txt", "chars": 31}]


@pytest.mark.django_db
def test_document_text_only_when_the_link_allows_it(client, user, run):
    closed = share(run, user)
    opened = share(run, user, show_document_text=True)
    assert client.get(reverse("share_document_text", args=[closed, 0])).status_code == 404
    response = client.get(reverse("share_document_text", args=[opened, 0]))
    assert response.status_code == 200 and b"".join(response.streaming_content).startswith(b"Clause 7")
    assert client.get(reverse("share_document_text", args=[opened, 1])).status_code == 404
    page = client.get(reverse("share_page", args=[opened])).content.decode()
    assert reverse("share_document_text", args=[opened, 0]) in page


@pytest.mark.django_db
@pytest.mark.parametrize("state", ["revoked", "expired"])
def test_revoked_and_expired_links_are_gone(client, user, run, state):
    token = share(run, user, expires_in_days=1)
    field = {"revoked": {"revoked_at": timezone.now()},
             "expired": {"expires_at": timezone.now() - dt.timedelta(seconds=1)}}[state]
    ShareLink.objects.filter(run=run).update(**field)
    page = client.get(reverse("share_page", args=[token]))
    assert page.status_code == 410 and "no longer works" in page.content.decode()
    for name in ("share_events", "share_trajectory"):
        assert client.get(reverse(name, args=[token])).status_code == 410
    assert ShareLink.objects.get(run=run).view_count == 0


@pytest.mark.django_db
@pytest.mark.parametrize("token", ["x" * 43, "short", "a" * 42 + "!", "A" * 200])
def test_unknown_and_malformed_tokens_are_404(client, token):
    assert client.get(f"/s/{token}/").status_code == 404
    assert client.get(f"/s/{token}/events.json").status_code == 404


# --- the share websocket ---------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_websocket_replays_then_streams_live_without_sign_in(team, user):
    run = make_run(team, user, [make_document(team)], status=RunStatus.RUNNING)
    persist_events(run.pk, make_events(1, 3))
    token = share(run, user)

    async def scenario():
        comm = ws_client(f"/ws/share/{token}/?since=1")
        connected, _ = await comm.connect(timeout=TIMEOUT)
        assert connected
        frame = await comm.receive_json_from(TIMEOUT)
        assert frame["type"] == "events" and [e["seq"] for e in frame["events"]] == [2, 3]
        assert (await comm.receive_json_from(TIMEOUT))["type"] == "replayed"
        from worker.engine.events import Event

        live = [Event(4, "cell.finished", 1.0, {"cell_id": "c9", "stdout": "x", "secret_extra": "no"})]
        await database_sync_to_async(persist_events)(run.pk, live)
        await database_sync_to_async(publish_events)(run.pk, live)
        frame = await comm.receive_json_from(TIMEOUT)
        assert frame["events"] == [{"seq": 4, "type": "cell.finished", "ts": 1.0,
                                    "data": {"cell_id": "c9", "stdout": "x"}}]
        await comm.disconnect()

    async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_websocket_close_codes(run, user):
    token = share(run, user)
    revoked = share(run, user)
    ShareLink.objects.filter(token_hash=hash_token(revoked)).update(revoked_at=timezone.now())
    expired = share(run, user, expires_in_days=1)
    ShareLink.objects.filter(token_hash=hash_token(expired)).update(expires_at=timezone.now())

    async def scenario():
        assert await close_code(ws_client(f"/ws/share/{revoked}/")) == 4403
        assert await close_code(ws_client(f"/ws/share/{expired}/")) == 4403
        assert await close_code(ws_client(f"/ws/share/{'x' * 43}/")) == 4404
        assert await close_code(ws_client("/ws/share/not-a-token/")) == 4400
        assert await close_code(ws_client(f"/ws/share/{token}/?since=-1")) == 4400

    async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("with_events", [True, False], ids=["live-events", "quiet-run"])
def test_websocket_closes_when_the_link_is_revoked_while_open(team, user, monkeypatch, with_events):
    """The run consumer's periodic access check re-resolves the link, so even a quiet run's socket
    (no events, no resumes) is closed 4403 within one ACCESS_RECHECK_S."""
    monkeypatch.setattr(run_consumers, "ACCESS_RECHECK_S", 0.2)
    run = make_run(team, user, [make_document(team)], status=RunStatus.RUNNING)
    token = share(run, user)

    async def scenario():
        comm = ws_client(f"/ws/share/{token}/")
        await comm.connect(timeout=TIMEOUT)
        assert (await comm.receive_json_from(TIMEOUT))["type"] == "replayed"
        await database_sync_to_async(ShareLink.objects.filter(run=run).update)(revoked_at=timezone.now())
        if with_events:
            events = make_events(1, 2)
            await database_sync_to_async(persist_events)(run.pk, events)
            await database_sync_to_async(publish_events)(run.pk, events)
        message = await comm.receive_output(TIMEOUT)
        while message["type"] == "websocket.send":  # events already in flight may still arrive
            assert with_events
            message = await comm.receive_output(TIMEOUT)
        assert message == {"type": "websocket.close", "code": 4403}
        assert await comm.receive_nothing(0.5)

    async_to_sync(scenario)()
