"""The run stream's websocket contract: every event after `since` exactly once, in order, then live.

Events are written the way the worker writes them (`persist_events` then `publish_events`) while
clients connect, disconnect and resume, and each client's received sequence numbers are compared
with exactly since+1..N.
"""

import asyncio
import json
import random

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings

from apps.runs import consumers
from apps.runs.models import RunStatus
from apps.runs.routing import websocket_urlpatterns
from apps.runs.sink import persist_events, publish_events
from apps.teams.models import Membership, Role
from tests.web.runs_factories import make_document, make_events, make_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("data_dir")]

TIMEOUT = 10


@pytest.fixture
def run(team, user):
    return make_run(team, user, [make_document(team)], status=RunStatus.RUNNING)


def communicator(run_id, user, query: str = "") -> WebsocketCommunicator:
    """A client of the consumer with `user` already authenticated (as AuthMiddlewareStack leaves it)."""
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/runs/{run_id}/{query}")
    comm.scope["user"] = user
    return comm


@database_sync_to_async
def write(run_id, events, publish: bool = True) -> None:
    """What the worker's sink does: commit the events, then tell the group."""
    persist_events(run_id, events)
    if publish:
        publish_events(run_id, events)


class Client:
    """Collects a client's frames: event seqs in arrival order, and the replayed markers."""

    def __init__(self, comm: WebsocketCommunicator) -> None:
        self.comm = comm
        self.seqs: list[int] = []
        self.markers: list[dict] = []
        self.finished = False

    async def connect(self) -> None:
        connected, _ = await self.comm.connect(timeout=TIMEOUT)
        assert connected

    async def read(self, timeout: float = TIMEOUT) -> dict:
        frame = await self.comm.receive_json_from(timeout=timeout)
        if frame["type"] == "events":
            self.seqs += [e["seq"] for e in frame["events"]]
            self.finished = self.finished or any(e["type"] == "run.finished" for e in frame["events"])
        elif frame["type"] == "replayed":
            self.markers.append(frame)
        return frame

    async def read_until_replayed(self) -> dict:
        while (frame := await self.read())["type"] != "replayed":
            pass
        return frame

    async def read_until_seq(self, seq: int) -> None:
        while not self.seqs or self.seqs[-1] < seq:
            await self.read()


def test_replay_after_since_then_live_events(run, user):
    async def scenario():
        await write(run.pk, make_events(1, 5))
        client = Client(communicator(run.pk, user, "?since=2"))
        await client.connect()
        marker = await client.read_until_replayed()
        assert client.seqs == [3, 4, 5]
        assert marker == {"type": "replayed", "last_seq": 5, "status": "running"}
        await write(run.pk, make_events(6, 8))
        await client.read_until_seq(8)
        assert client.seqs == [3, 4, 5, 6, 7, 8]
        await client.comm.disconnect()

    async_to_sync(scenario)()


def test_a_finished_run_replays_from_the_database_in_pages(run, user):
    async def scenario():
        await write(run.pk, make_events(1, 1234, final=True), publish=False)
        client = Client(communicator(run.pk, user))
        await client.connect()
        sizes = []
        while (frame := await client.read())["type"] != "replayed":
            sizes.append(len(frame["events"]))
        assert client.seqs == list(range(1, 1235)) and client.finished
        assert sizes == [500, 500, 234]
        assert client.markers[-1]["status"] == "succeeded"
        assert await client.comm.receive_nothing(0.2)  # stays open after run.finished
        await client.comm.disconnect()

    async_to_sync(scenario)()


def test_interleaved_live_events_reach_late_and_reconnecting_clients_exactly_once(run, user):
    """A writer streams 600 events in random batches while clients join at different points, and one
    drops and resumes from the last seq it saw; each ends with exactly since+1..600."""
    total = 600
    rng = random.Random(7)

    async def writer():
        seq = 0
        while seq < total:
            size = min(rng.randint(1, 25), total - seq)
            await write(run.pk, make_events(seq + 1, seq + size, final=seq + size == total))
            seq += size
            await asyncio.sleep(rng.uniform(0, 0.01))

    async def viewer(delay: float, since_from_db: bool):
        await asyncio.sleep(delay)
        since = 0
        if since_from_db:  # a reconnecting page knows where it stopped: anywhere up to the current seq
            since = await database_sync_to_async(lambda: type(run).objects.get(pk=run.pk).last_seq)()
            since = rng.randint(0, since)
        client = Client(communicator(run.pk, user, f"?since={since}"))
        await client.connect()
        while not client.finished:
            await client.read()
        await client.comm.disconnect()
        assert client.seqs == list(range(since + 1, total + 1)), (since, client.seqs[:20])

    async def dropper():
        client = Client(communicator(run.pk, user, "?since=0"))
        await client.connect()
        await client.read_until_seq(rng.randint(50, 250))
        await client.comm.disconnect()
        seen = list(client.seqs)
        await asyncio.sleep(0.05)
        again = Client(communicator(run.pk, user, f"?since={seen[-1]}"))
        await again.connect()
        while not again.finished:
            await again.read()
        await again.comm.disconnect()
        assert seen + again.seqs == list(range(1, total + 1))

    async def scenario():
        await asyncio.gather(
            writer(), dropper(),
            *(viewer(d, bool(i % 2)) for i, d in enumerate([0, 0.02, 0.05, 0.1, 0.15, 0.3])),
        )

    async_to_sync(scenario)()


def test_a_live_batch_after_a_gap_is_completed_from_the_database(run, user):
    async def scenario():
        await write(run.pk, make_events(1, 3))
        client = Client(communicator(run.pk, user))
        await client.connect()
        await client.read_until_replayed()
        await write(run.pk, make_events(4, 9), publish=False)  # these group messages were lost
        await write(run.pk, make_events(10, 11))
        await client.read_until_seq(11)
        assert client.seqs == list(range(1, 12))
        await database_sync_to_async(publish_events)(run.pk, make_events(2, 11))  # stale duplicates
        assert await client.comm.receive_nothing(0.3)
        await client.comm.disconnect()

    async_to_sync(scenario)()


def test_an_idle_viewer_catches_up_when_the_last_message_was_lost(run, user, monkeypatch):
    monkeypatch.setattr(consumers, "IDLE_CHECK_S", 0.2)

    async def scenario():
        client = Client(communicator(run.pk, user))
        await client.connect()
        await client.read_until_replayed()
        await write(run.pk, make_events(1, 4, final=True), publish=False)
        await client.read_until_seq(4)
        assert client.seqs == [1, 2, 3, 4] and client.finished
        await client.comm.disconnect()

    async_to_sync(scenario)()


def test_many_viewers_get_the_same_live_stream(run, user, other_user):
    Membership.objects.create(team=run.team, user=other_user, role=Role.VIEWER)

    async def scenario():
        clients = [Client(communicator(run.pk, u)) for u in (user, other_user, user)]
        for c in clients:
            await c.connect()
            await c.read_until_replayed()
        await write(run.pk, make_events(1, 30, final=True))
        for c in clients:
            await c.read_until_seq(30)
            assert c.seqs == list(range(1, 31))
            await c.comm.disconnect()

    async_to_sync(scenario)()


def test_a_viewer_that_fell_behind_gets_the_waiting_batches_in_one_frame_of_at_most_500(run, user):
    from channels.layers import get_channel_layer

    from apps.runs.sink import group_name

    layer = get_channel_layer()

    async def scenario():
        client = Client(communicator(run.pk, user))
        await client.connect()
        await client.read_until_replayed()
        events = make_events(1, 700)
        await write(run.pk, events, publish=False)
        # Four batches queued for the viewer before it gets to run (this loop does not yield here).
        for start in range(0, 700, 200):
            await layer.group_send(group_name(run.pk), {"type": "run.events",
                                                        "events": [e.to_dict() for e in events[start:start + 200]]})
        first, second = await client.read(), await client.read()
        assert [len(first["events"]), len(second["events"])] == [500, 200]
        assert client.seqs == list(range(1, 701))
        assert await client.comm.receive_nothing(0.3)
        await client.comm.disconnect()

    async_to_sync(scenario)()


def test_resume_replays_again_from_the_given_seq(run, user):
    async def scenario():
        await write(run.pk, make_events(1, 6))
        client = Client(communicator(run.pk, user, "?since=6"))
        await client.connect()
        await client.read_until_replayed()
        assert client.seqs == []
        await client.comm.send_json_to({"type": "resume", "since": 3})
        marker = await client.read_until_replayed()
        assert client.seqs == [4, 5, 6] and marker["last_seq"] == 6
        await client.comm.disconnect()

    async_to_sync(scenario)()


@pytest.mark.parametrize("query", ["?since=abc", "?since=-1", "?since=1.5", "?since=99999999999999"])
def test_a_bad_since_is_closed_with_4400(run, user, query):
    async def scenario():
        comm = communicator(run.pk, user, query)
        connected, _ = await comm.connect(timeout=TIMEOUT)
        assert connected
        assert (await comm.receive_json_from(TIMEOUT))["type"] == "error"
        assert await comm.receive_output(TIMEOUT) == {"type": "websocket.close", "code": 4400}

    async_to_sync(scenario)()


@pytest.mark.parametrize("frame", [
    {"text_data": "{not json"},
    {"text_data": json.dumps({"type": "subscribe"})},
    {"text_data": json.dumps({"type": "resume", "since": "x"})},
    {"text_data": json.dumps([1, 2])},
    {"text_data": json.dumps({"type": "resume", "since": 0, "pad": "x" * 70_000})},
    {"bytes_data": b"\x00\x01"},
])
def test_bad_client_messages_get_an_error_and_4400(run, user, frame):
    async def scenario():
        client = Client(communicator(run.pk, user))
        await client.connect()
        await client.read_until_replayed()
        await client.comm.send_to(**frame)
        error = await client.comm.receive_json_from(TIMEOUT)
        assert error["type"] == "error" and error["error"]
        assert await client.comm.receive_output(TIMEOUT) == {"type": "websocket.close", "code": 4400}

    async_to_sync(scenario)()


def session_communicator(client, run_id) -> WebsocketCommunicator:
    """Through the real ASGI stack: origin check, session cookie, AuthMiddlewareStack."""
    from rlmweb.asgi import application

    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    cookie = client.cookies.get(settings.SESSION_COOKIE_NAME)
    if cookie is not None:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie.value}".encode()))
    return WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=headers)


def close_code(comm: WebsocketCommunicator):
    async def scenario():
        connected, _ = await comm.connect(timeout=TIMEOUT)
        assert connected  # accepted first, so the browser sees the code
        while (out := await comm.receive_output(TIMEOUT))["type"] != "websocket.close":
            pass
        return out["code"]

    return async_to_sync(scenario)()


def test_refusals_have_clear_close_codes(client, run, user, other_user):
    import uuid

    assert close_code(session_communicator(client, run.pk)) == 4401
    client.force_login(other_user)
    # An outsider cannot tell a run they may not read from one that does not exist (pages: 404).
    assert close_code(session_communicator(client, run.pk)) == 4404
    assert close_code(session_communicator(client, uuid.uuid4())) == 4404


def test_signed_in_members_stream_through_the_real_stack(client, run, user):
    client.force_login(user)

    async def scenario():
        await write(run.pk, make_events(1, 2))
        c = Client(session_communicator(client, run.pk))
        await c.connect()
        await c.read_until_replayed()
        assert c.seqs == [1, 2]
        await c.comm.disconnect()

    async_to_sync(scenario)()


# --- the origin check: scheme, host and port ------------------------------------------------------------


def handshake_accepted(client, run_id, origin: bytes, host: bytes, scheme: str = "ws") -> bool:
    from rlmweb.asgi import application

    headers = [(b"origin", origin), (b"host", host)]
    cookie = client.cookies.get(settings.SESSION_COOKIE_NAME)
    headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie.value}".encode()))
    comm = WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=headers)
    comm.scope["scheme"] = scheme

    async def scenario():
        connected, _ = await comm.connect(timeout=TIMEOUT)
        await comm.disconnect()
        return connected

    return async_to_sync(scenario)()


def test_a_page_on_another_port_of_the_same_host_cannot_open_a_socket(client, run, user):
    client.force_login(user)
    assert handshake_accepted(client, run.pk, b"http://127.0.0.1:8201", b"127.0.0.1:8201")
    assert not handshake_accepted(client, run.pk, b"http://127.0.0.1:8202", b"127.0.0.1:8201")
    assert not handshake_accepted(client, run.pk, b"https://127.0.0.1:8201", b"127.0.0.1:8201")  # scheme
    assert not handshake_accepted(client, run.pk, b"http://evil.example:8201", b"127.0.0.1:8201")
    assert not handshake_accepted(client, run.pk, b"null", b"127.0.0.1:8201")
    assert handshake_accepted(client, run.pk, b"http://localhost:80", b"localhost")  # default port
    assert handshake_accepted(client, run.pk, b"https://localhost", b"localhost", scheme="wss")


def test_a_trusted_origin_of_a_proxy_is_accepted(client, run, user, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://rlm.example.com"]
    client.force_login(user)
    assert handshake_accepted(client, run.pk, b"https://rlm.example.com", b"127.0.0.1:8000")
    assert not handshake_accepted(client, run.pk, b"https://rlm.example.com:8443", b"127.0.0.1:8000")
