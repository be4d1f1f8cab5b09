"""The embedded default: a real Celery worker and an in-process channel layer, no services."""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from rlmweb.celery import app, ping

pytestmark = pytest.mark.skipif(settings.PROFILE != "embedded", reason="embedded-profile test")


def test_settings_use_the_embedded_services():
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert app.conf.broker_url.startswith("filesystem://")
    assert not app.conf.task_always_eager
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "rlmweb.channel_layers.EmbeddedChannelLayer"


def test_task_goes_through_the_broker_to_a_real_worker(celery_worker):
    result = ping.delay("hello through the filesystem broker")
    assert result.get(timeout=20) == "hello through the filesystem broker"
    # The worker that ran it is the embedded one, not an eager call in this thread.
    assert result.successful()
    assert not app.conf.task_always_eager


def test_worker_thread_can_publish_to_a_consumer_on_the_server_loop():
    """Worker threads publish with async_to_sync (another loop); the consumer's loop receives it."""
    layer = get_channel_layer()

    async def scenario():
        channel = await layer.new_channel()
        await layer.group_add("run.test", channel)
        loop = asyncio.get_running_loop()
        # What DatabaseSink does from a Celery worker thread:
        await loop.run_in_executor(
            None, lambda: async_to_sync(layer.group_send)("run.test", {"type": "run.events", "events": [1]})
        )
        return await asyncio.wait_for(layer.receive(channel), 5)

    message = asyncio.run(scenario())
    assert message == {"type": "run.events", "events": [1]}


def test_the_worker_process_relays_group_messages_in_order_to_the_server_loop():
    """`serve`'s worker child publishes through RelayChannelLayer on a socketpair; RelayReader in the
    web process hands every frame, in order, to the consumers' layer on their loop."""
    import socket
    import threading

    from rlmweb.event_relay import RelayChannelLayer, RelayReader

    layer = get_channel_layer()
    mine, theirs = socket.socketpair()
    reader = RelayReader(mine, layer)
    relay = RelayChannelLayer(fd=theirs.detach())
    count = 300

    def worker_threads() -> None:  # two sink threads of two runs, as in the worker process
        def publish(group: str) -> None:
            for i in range(count):
                async_to_sync(relay.group_send)(group, {"type": "run.events", "events": [{"seq": i + 1}]})

        threads = [threading.Thread(target=publish, args=(group,)) for group in ("run.relay-a", "run.relay-b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    async def scenario() -> tuple[list[int], list[int], int]:
        a, b = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("run.relay-a", a)
        await layer.group_add("run.relay-b", b)
        reader.start()
        await asyncio.get_running_loop().run_in_executor(None, worker_threads)
        got_a = [(await asyncio.wait_for(layer.receive(a), 5))["events"][0]["seq"] for _ in range(count)]
        got_b = [(await asyncio.wait_for(layer.receive(b), 5))["events"][0]["seq"] for _ in range(count)]
        return got_a, got_b, reader.frames

    got_a, got_b, frames = asyncio.run(scenario())
    assert got_a == got_b == list(range(1, count + 1))
    assert frames == 2 * count
    relay._sock.close()  # the worker exits: the reader ends
    reader.join(5)
    assert not reader.is_alive()
