"""Live progress of one evaluation: `ws/evals/<evaluation_id>/`.

Frames to the client: `{"type": "progress", ...}` — the same object as `progress.json` (status,
total, done, counts per case status, spent_usd, max_cost_usd, matrix) — once at connect, then
whenever a case is scored or the evaluation changes state (group `evaluation.<id>`), and at
least every POLL_S seconds while it runs and something changed (cases run by another process,
such as `rlm eval`, publish to that process's own channel layer). The client sends nothing;
anything it sends gets close code 4400.

Close codes, as the run sockets: 4401 not signed in, 4404 no such evaluation *or* not allowed to
read it (checked at connect and again at every poll).
"""

import asyncio

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth import get_user_model

from . import selectors
from .progress import group_name

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
POLL_S = 3.0


@database_sync_to_async
def _snapshot(evaluation_id, user) -> dict | None:
    """The progress the user may read, or None (no such evaluation, or not theirs, or inactive user)."""
    if not get_user_model().objects.filter(pk=user.pk, is_active=True).exists():
        return None
    evaluation = selectors.evaluation_get_for_user(user, evaluation_id)
    if evaluation is None:
        return None
    return {"type": "progress", "evaluation_id": str(evaluation.pk), **selectors.progress(evaluation)}


class EvaluationProgressConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None
    poll_task: asyncio.Task | None = None

    async def connect(self) -> None:
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(CLOSE_UNAUTHENTICATED)
            return
        self.evaluation_id = self.scope["url_route"]["kwargs"]["evaluation_id"]
        self.lock = asyncio.Lock()
        self.last_sent: dict | None = None
        self.group = group_name(self.evaluation_id)
        await self.channel_layer.group_add(self.group, self.channel_name)  # before the first read
        if await self._send_snapshot():
            self.poll_task = asyncio.create_task(self._poll())

    async def disconnect(self, code) -> None:
        if self.poll_task is not None:
            self.poll_task.cancel()
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        await self.send_json({"type": "error", "error": "This socket only sends; the client sends nothing."})
        await self.close(CLOSE_BAD_REQUEST)

    async def evaluation_progress(self, message: dict) -> None:
        await self._send_snapshot()

    async def _send_snapshot(self, only_if_changed: bool = False) -> bool:
        """Send the current progress; close with 4404 (and False) when the user may no longer read it."""
        async with self.lock:
            snapshot = await _snapshot(self.evaluation_id, self.scope["user"])
            if snapshot is None:
                await self.close(CLOSE_NOT_FOUND)
                return False
            if not (only_if_changed and snapshot == self.last_sent):
                await self.send_json(snapshot)
                self.last_sent = snapshot
            return True

    async def _poll(self) -> None:
        while await self._send_snapshot(only_if_changed=True):
            await asyncio.sleep(POLL_S)
