"""Celery broker transports: kombu's, with two fixes for faults rlmweb's reliability tests inject.

Embedded profile: the filesystem broker, with every message written atomically.

kombu's filesystem transport creates a message file under its final name and then writes it,
while its reader takes any `*.msg` file without waiting for the writer's lock. A worker polling
at the wrong moment reads an empty or partial message, fails to decode it, and stops consuming
altogether ("Unrecoverable error: JSONDecodeError"): every run asked afterwards stays queued.
Here the message is written under a name the reader ignores and renamed into place when complete.

Production profile: Redis, surviving the loss of the connection a message came on. kombu 5.7
restores (at the drop) and acknowledges (when the task ends) such messages through their channel,
whose connection is gone by then: "AttributeError: 'NoneType' object has no attribute 'client'"
(or 'hostname') is raised as an unrecoverable error and the worker stops consuming after any Redis
restart or network blip. Here both are skipped when the channel has lost its connection; the
message stays in Redis's unacked index and is delivered again after the visibility timeout, as after
a crash. That is harmless: a run is only executed by the worker that claims it while queued, and
extraction is idempotent.
"""

import logging
import os
import uuid
from time import monotonic

from kombu.transport import filesystem, redis
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

logger = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"  # not `<queue>.msg`, so the reader skips it
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


class RedisQoS(redis.QoS):
    def _connected(self) -> bool:
        transport = self.channel.connection
        if transport is None or transport.client is None:
            logger.warning("The broker connection of a delivered message is gone; Redis keeps it unacked")
            return False
        return True

    def ack(self, delivery_tag):
        if self._connected():
            super().ack(delivery_tag)

    def reject(self, delivery_tag, requeue=False):
        if self._connected():
            super().reject(delivery_tag, requeue=requeue)

    def restore_unacked(self, client=None):
        if self._connected():
            return super().restore_unacked(client)
        self._delivered.clear()
        return None


class RedisChannel(redis.Channel):
    QoS = RedisQoS


class RedisTransport(redis.Transport):
    Channel = RedisChannel
