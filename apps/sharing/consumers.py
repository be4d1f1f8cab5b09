"""The live stream of a shared run: `ws/share/<token>/?since=N`, without sign-in.

The protocol is the run stream's (`apps.runs.consumers`): the same frames, resume message,
exactly-once ordering and close codes for bad requests; this consumer only authorises by the
link instead of the user, and sends events as `services.shared_event` filters them.

Close codes: 4400 malformed token (or a bad `since` / client frame, as for runs), 4404 no such
link, 4403 the link is revoked or expired — at connect, and while open: the link is checked again
before live events and resumes, at most every LINK_RECHECK_S seconds.
"""

import asyncio
import time
from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from apps.runs.consumers import (
    CLOSE_BAD_REQUEST,
    CLOSE_FORBIDDEN,
    CLOSE_NOT_FOUND,
    RunEventsConsumer,
    parse_since,
)
from apps.runs.sink import group_name

from . import services

LINK_RECHECK_S = 10.0


@database_sync_to_async
def _resolve(token: str) -> services.Resolved:
    return services.share_resolve(token)


class SharedRunEventsConsumer(RunEventsConsumer):
    denied = False

    async def connect(self) -> None:
        await self.accept()
        self.lock = asyncio.Lock()
        self.last_sent = 0
        self.finished_sent = False
        self.last_activity = time.monotonic()
        self.watch_task = None
        self.token = self.scope["url_route"]["kwargs"]["token"]
        resolved = await _resolve(self.token)
        if resolved.state != "active":
            code = {"malformed": CLOSE_BAD_REQUEST, "missing": CLOSE_NOT_FOUND}.get(resolved.state, CLOSE_FORBIDDEN)
            await self.close(code)
            return
        self.link_checked = time.monotonic()
        self.run_id = resolved.link.run_id
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        since = parse_since(query.get("since", ["0"])[-1])
        if since is None:
            await self._refuse("`since` must be a non-negative integer.")
            return
        self.group = group_name(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        async with self.lock:
            await self._replay(since)
        self.watch_task = asyncio.create_task(self._watch_idle())

    async def _link_still_active(self) -> bool:
        if self.denied:
            return False
        if time.monotonic() - self.link_checked < LINK_RECHECK_S:
            return True
        resolved = await _resolve(self.token)
        self.link_checked = time.monotonic()
        if resolved.state == "active":
            return True
        self.denied = True
        if self.watch_task is not None:
            self.watch_task.cancel()
        await self.close(CLOSE_FORBIDDEN)
        return False

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if await self._link_still_active():
            await super().receive(text_data=text_data, bytes_data=bytes_data)

    async def run_events(self, message: dict) -> None:
        if await self._link_still_active():
            await super().run_events(message)

    async def _send_events(self, events: list[dict]) -> None:
        await super()._send_events([services.shared_event(e) for e in events])
