"""An in-process channel layer that the embedded Celery worker threads can publish to.

Channels' InMemoryChannelLayer keeps asyncio queues that belong to the event loop serving the
websockets. Worker threads publish through `async_to_sync`, which runs on a different loop, and
asyncio queues are not thread-safe. This layer remembers the loop its consumers listen on and
hands every send from another loop over to it, so the embedded profile needs no Redis.
"""

import asyncio

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
        return await self._on_home_loop(super().send(channel, message))

    async def group_send(self, group, message):
        return await self._on_home_loop(super().group_send(group, message))

    async def group_discard(self, group, channel):
        return await self._on_home_loop(super().group_discard(group, channel))
