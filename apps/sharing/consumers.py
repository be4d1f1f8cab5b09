"""The live stream of a shared run: `ws/share/<token>/?since=N`, without sign-in.

The protocol is the run stream's (`apps.runs.consumers`): the same frames, resume message,
exactly-once ordering and close codes for bad requests; this consumer only authorises by the
link instead of the user, and sends events as `services.shared_event` filters them.

Close codes: 4400 malformed token (or a bad `since` / client frame, as for runs), 4404 no such
link, 4403 the link is revoked or expired — at connect, and while open: the run consumer's access
watch re-resolves the link (`still_allowed`) every `ACCESS_RECHECK_S` seconds, events or not.
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

from . import services


@database_sync_to_async
def _resolve(token: str) -> services.Resolved:
    return services.share_resolve(token)


class SharedRunEventsConsumer(RunEventsConsumer):
    access_denied_code = CLOSE_FORBIDDEN
    frame_view = "shared"  # its events are filtered (services.shared_event), so encoded apart

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
        self.run_id = resolved.link.run_id
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        since = parse_since(query.get("since", ["0"])[-1])
        if since is None:
            await self._refuse("`since` must be a non-negative integer.")
            return
        await self._start_stream(since)

    async def still_allowed(self) -> bool:
        """The link is still active (not revoked, not expired); re-resolved on every access check."""
        return (await _resolve(self.token)).state == "active"

    async def _send_events(self, events: list[dict]) -> None:
        await super()._send_events([services.shared_event(e) for e in events])
