"""The live stream of one run's events: `ws/runs/<run_id>/?since=N`.

Contract: a client receives every event with seq > since exactly once, in order, with no gaps,
then live ones as the engine emits them. The consumer joins the run's group *before* reading the
database, so nothing emitted during the replay is missed; it remembers the last seq it sent, drops
live events it already sent, and fills any gap (a lost or reordered group message) from the
database, where the sink commits every event before publishing it. An idle consumer of an
unfinished run also checks the database every few seconds, so a lost final message cannot leave a
viewer waiting.

Frames to the client:
- `{"type": "events", "events": [{seq, type, ts, data}, …]}`: consecutive events, ≤ 500 per frame;
- `{"type": "replayed", "last_seq": N, "status": "running"}`: the replay from the database is
  done (sent after the connect replay and after every `resume`);
- `{"type": "error", "error": "…"}`: just before a 4400 close.
The socket stays open after `run.finished`; viewers may keep reading, the client closes.

Frames from the client: `{"type": "resume", "since": N}` replays again from N. Anything else
(unknown type, malformed JSON, binary, over 64 KB) gets an error frame and close code 4400.

Close codes (the socket is accepted first, so browsers see them): 4400 bad request (bad `since`
or client message), 4401 not signed in, 4404 no such run *or* not allowed to read it: like the
pages' 404, the code does not tell an outsider which runs exist.

Access is checked at connect and again every ACCESS_RECHECK_S seconds while the socket is open
(`_watch_access`, asking `still_allowed()`): a reader removed from the team (or deactivated, or
whose run was deleted) is closed with `access_denied_code` (4404) at the next check and gets no
event after it. The share-link consumer overrides both to re-check its link instead (4403).
"""

import asyncio
import time
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth import get_user_model

from apps.teams.permissions import can
from rlmweb.ids import parse_id
from rlmweb.web.api import MalformedJson, parse_json
from worker.engine.events import RUN_FINISHED

from .frames import events_frame
from .models import FINISHED_STATUSES, Run
from .selectors import EVENT_PAGE, run_events_between
from .sink import group_name

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403  # share links only (revoked or expired); run sockets answer 4404
CLOSE_NOT_FOUND = 4404
MAX_CLIENT_FRAME = 64 * 1024
IDLE_CHECK_S = 3.0
ACCESS_RECHECK_S = 10.0  # the longest a reader whose access was revoked keeps receiving events


MAX_SINCE = 10**11  # far beyond any run's event count; larger is a client bug, not a resume point


def parse_since(raw: object) -> int | None:
    """A resume point: a non-negative integer (str or int) below MAX_SINCE, else None."""
    since = parse_id(raw)
    return since if since is not None and since < MAX_SINCE else None


@database_sync_to_async
def _may_read(run_id, user) -> bool:
    """Whether `user`, still active, may read the run; False as well when there is no such run."""
    run = Run.objects.select_related("team").filter(pk=run_id).first()
    if run is None or not get_user_model().objects.filter(pk=user.pk, is_active=True).exists():
        return False
    return can(user, "view", run.team)


@database_sync_to_async
def _db_page(run_id, since: int, upto: int | None) -> list[dict]:
    return next(run_events_between(run_id, since, upto, EVENT_PAGE), [])


@database_sync_to_async
def _run_state(run_id) -> tuple[str, int]:
    return Run.objects.filter(pk=run_id).values_list("status", "last_seq").first() or ("missing", 0)


class RunEventsConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None
    access_task: asyncio.Task | None = None
    access_lost = False  # set (under the lock) when a recheck denies access: nothing more is sent

    async def connect(self) -> None:
        await self.accept()
        self.lock = asyncio.Lock()
        self.last_sent = 0
        self.finished_sent = False
        self.last_activity = time.monotonic()
        self.watch_task: asyncio.Task | None = None
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(CLOSE_UNAUTHENTICATED)
            return
        self.run_id = self.scope["url_route"]["kwargs"]["run_id"]
        if not await _may_read(self.run_id, user):
            await self.close(CLOSE_NOT_FOUND)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        since = parse_since(query.get("since", ["0"])[-1])
        if since is None:
            await self._refuse("`since` must be a non-negative integer.")
            return
        await self._start_stream(since)

    async def _start_stream(self, since: int) -> None:
        """Join the run's group, replay from `since`, then start the idle and access watches."""
        # Join first, replay second: whatever is published meanwhile waits in our channel.
        self.group = group_name(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        async with self.lock:
            await self._replay(since)
        self.watch_task = asyncio.create_task(self._watch_idle())
        self.access_task = asyncio.create_task(self._watch_access())

    async def disconnect(self, code) -> None:
        for task in (self.watch_task, self.access_task):
            if task is not None:
                task.cancel()
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    # --- from the client -----------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.access_lost:
            return
        if text_data is None or len(text_data) > MAX_CLIENT_FRAME:
            await self._refuse("Send JSON text frames of at most 64 KB.")
            return
        try:
            message = parse_json(text_data)
        except MalformedJson:
            await self._refuse("Malformed JSON.")
            return
        if not isinstance(message, dict) or message.get("type") != "resume":
            await self._refuse('Unknown message; the only one is {"type": "resume", "since": N}.')
            return
        since = parse_since(message.get("since"))
        if since is None:
            await self._refuse("`since` must be a non-negative integer.")
            return
        async with self.lock:
            if not self.access_lost:
                await self._replay(since)

    # --- from the run's group ------------------------------------------------------------------

    async def dispatch(self, message: dict) -> None:
        # Channels runs close_old_connections() in its sync thread before every handler: for live
        # events, one hop per viewer and batch through the one thread that all consumers share. The
        # live path reads no database (the gap fill does, and database_sync_to_async closes old
        # connections itself), so it is called directly.
        if message.get("type") == "run.events":
            await self.run_events(message)
        else:
            await super().dispatch(message)

    async def run_events(self, message: dict) -> None:
        events = list(message.get("events") or [])
        # A viewer that fell behind takes every batch already waiting for it: one frame, not one each.
        take_pending = getattr(self.channel_layer, "take_pending", None)
        if take_pending is not None:
            for pending in take_pending(self.channel_name, "run.events"):
                events += pending.get("events") or []
        events.sort(key=lambda e: e["seq"])
        async with self.lock:
            if not self.access_lost:
                await self._deliver(events)

    # --- internals -----------------------------------------------------------------------------

    async def _replay(self, since: int) -> None:
        self.last_sent = since
        self.finished_sent = False
        await self._send_from_db(None)
        status, last_seq = await _run_state(self.run_id)
        if last_seq > self.last_sent:  # committed between the replay and the status read
            await self._send_from_db(None)
        if status in FINISHED_STATUSES and self.last_sent >= last_seq:
            self.finished_sent = True  # nothing more will come; the idle watch can rest
        await self.send_json({"type": "replayed", "last_seq": self.last_sent, "status": status})

    async def _deliver(self, events: list[dict]) -> None:
        """Send live events: drop what was sent, fill gaps from the database."""
        fresh = [e for e in events if e["seq"] > self.last_sent]
        if not fresh:
            return
        contiguous = all(e["seq"] == self.last_sent + 1 + i for i, e in enumerate(fresh))
        if contiguous:
            for start in range(0, len(fresh), EVENT_PAGE):
                await self._send_events(fresh[start:start + EVENT_PAGE])
        else:
            await self._send_from_db(fresh[-1]["seq"])

    async def _send_from_db(self, upto: int | None) -> None:
        while page := await _db_page(self.run_id, self.last_sent, upto):
            await self._send_events(page)

    # Which version of the events this consumer sends (the cache of encoded events is kept per view).
    frame_view = "member"

    async def _send_events(self, events: list[dict]) -> None:
        await self.send(text_data=events_frame(self.frame_view, self.run_id, events))
        self.last_sent = events[-1]["seq"]
        self.last_activity = time.monotonic()
        if any(e["type"] == RUN_FINISHED for e in events):
            self.finished_sent = True

    async def _watch_idle(self) -> None:
        """Catch up from the database when an unfinished run has been quiet for a while."""
        while True:
            await asyncio.sleep(IDLE_CHECK_S)
            if self.finished_sent or time.monotonic() - self.last_activity < IDLE_CHECK_S:
                continue
            async with self.lock:
                _, last_seq = await _run_state(self.run_id)
                if last_seq > self.last_sent:
                    await self._send_from_db(last_seq)
                self.last_activity = time.monotonic()

    # Subclasses that authorise differently (share links) override these two.
    access_denied_code = CLOSE_NOT_FOUND

    async def still_allowed(self) -> bool:
        """Whether the socket may keep reading the run; checked every ACCESS_RECHECK_S."""
        return await _may_read(self.run_id, self.scope["user"])

    async def _watch_access(self) -> None:
        """Check again, every ACCESS_RECHECK_S, that the socket may still read the run."""
        while True:
            await asyncio.sleep(ACCESS_RECHECK_S)
            if not await self.still_allowed():
                break
        async with self.lock:  # let a frame being sent finish; none is sent after this
            self.access_lost = True
        if self.watch_task is not None:
            self.watch_task.cancel()
        await self.close(self.access_denied_code)

    async def _refuse(self, error: str) -> None:
        await self.send_json({"type": "error", "error": error})
        await self.close(CLOSE_BAD_REQUEST)
