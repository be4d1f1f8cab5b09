"""The production profile against real services: PostgreSQL, Redis broker, Redis channel layer,
and a separate `celery worker` process."""

import asyncio

import pytest
from channels.layers import get_channel_layer
from django.conf import settings

from rlmweb.celery import app, ping
from tests.helpers import celery_worker_process

pytestmark = pytest.mark.services


def test_settings_use_the_production_services():
    assert settings.PROFILE == "production"
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert app.conf.broker_url.startswith("redis://")
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"


def test_task_goes_through_redis_to_a_separate_worker_process(transactional_db):
    with celery_worker_process() as worker:
        result = ping.delay("hello through redis")
        assert result.get(timeout=60) == "hello through redis"
    assert "ready." in worker.output()


def test_redis_channel_layer_delivers_across_connections():
    layer = get_channel_layer()

    async def scenario():
        channel = await layer.new_channel()
        await layer.group_add("run.prodcheck", channel)
        await layer.group_send("run.prodcheck", {"type": "run.events", "events": [{"seq": 1}]})
        message = await asyncio.wait_for(layer.receive(channel), 10)
        await layer.flush()
        return message

    assert asyncio.run(scenario()) == {"type": "run.events", "events": [{"seq": 1}]}
