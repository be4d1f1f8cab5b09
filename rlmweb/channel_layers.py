"""An in-process channel layer that the embedded Celery worker threads can publish to.

Channels' InMemoryChannelLayer keeps asyncio queues that belong to the event loop serving the
websockets. Worker threads publish through `async_to_sync`, which runs on a different loop, and
asyncio queues are not thread-safe. This layer remembers the loop its consumers listen on and
hands every send from another loop over to it, so the embedded profile needs no Redis. (The worker
process that `manage.py serve` spawns publishes over a socket instead: `rlmweb.event_relay`.)

Two differences from InMemoryChannelLayer, both for live events to many viewers:
- a message is queued for every member of a group as it is, not deep-copied per member: receivers
  must treat messages as read-only (the run and evaluation consumers do);
- `take_pending(channel, type)` hands a consumer the messages of one type already waiting at the
  head of its channel, so a viewer that fell behind gets one frame for all of them.
"""

import asyncio
import contextlib
import time

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer


class EmbeddedChannelLayer(InMemoryChannelLayer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._home_loop: asyncio.AbstractEventLoop | None = None

    def _remember_loop(self) -> None:
        self._home_loop = asyncio.get_running_loop()

    async def _on_home_loop(self, coro):
        home = self._home_loop
        current = asyncio.get_running_loop()
        if home is None or home is current or home.is_closed() or not home.is_running():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, home))

    async def receive(self, channel):
        self._remember_loop()
        return await super().receive(channel)

    async def group_add(self, group, channel):
        self._remember_loop()
        return await super().group_add(group, channel)

    async def send(self, channel, message):
        return await self._on_home_loop(self._send(channel, message))

    async def _send(self, channel: str, message: dict) -> None:
        """InMemoryChannelLayer.send without the deep copy."""
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        queue = self.channels.setdefault(channel, asyncio.Queue(maxsize=self.get_capacity(channel)))
        try:
            queue.put_nowait((time.time() + self.expiry, message))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def group_send(self, group, message):
        return await self._on_home_loop(self._group_send(group, message))

    async def _group_send(self, group: str, message: dict) -> None:
        """InMemoryChannelLayer.group_send, queueing for each member in turn (no task per member)."""
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, {})):
            with contextlib.suppress(ChannelFull):
                await self._send(channel, message)

    async def group_discard(self, group, channel):
        return await self._on_home_loop(super().group_discard(group, channel))

    def take_pending(self, channel: str, message_type: str) -> list[dict]:
        """The messages of `message_type` waiting at the head of `channel`, removed from it (call it
        on the home loop, from the channel's consumer)."""
        queue = self.channels.get(channel)
        taken: list[dict] = []
        while queue is not None and not queue.empty() and queue._queue[0][1].get("type") == message_type:
            taken.append(queue.get_nowait()[1])
        return taken
