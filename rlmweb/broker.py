"""Celery broker transports: kombu's, with two fixes for faults rlmweb's reliability tests inject.

Embedded profile: the filesystem broker, with every message written atomically.

kombu's filesystem transport creates a message file under its final name and then writes it,
while its reader takes any `*.msg` file without waiting for the writer's lock. A worker polling
at the wrong moment reads an empty or partial message, fails to decode it, and stops consuming
altogether ("Unrecoverable error: JSONDecodeError"): every run asked afterwards stays queued.
Here the message is written under a name the reader ignores and renamed into place when complete.
Its exchange table (`control/<exchange>.exchange`) has the same flaw: a binder creates the file,
then locks and writes it, so a second binder or a publisher in between reads an empty file and
fails with JSONDecodeError. And kombu records a binding in the process's memory before it writes
the file, so another thread of the same process skips binding, finds no table and drops its
message as undeliverable. Here the file is opened without truncation and read, changed and written
under its exclusive lock, and the table a publisher routes by is the file's bindings plus the ones
this process has declared.

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
from typing import Any

from kombu.transport import filesystem, redis
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    # kombu's filesystem.Channel names the argument `payload`, its base class `message`.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"  # not `<queue>.msg`, so the reader skips it
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


    def get_table(self, exchange):
        table = self._read_table(exchange)
        declared = self.state.exchanges.get(exchange, {}).get("table", [])
        for routing_key, pattern, queue in declared:
            entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
            if entry not in table:
                table.append(entry)
        return table

    def _read_table(self, exchange) -> list:
        file = self._exchange_file(exchange)
        try:
            with file.open("rb") as handle:
                filesystem.lock(handle, filesystem.LOCK_SH)
                try:
                    raw = handle.read()
                finally:
                    filesystem.unlock(handle)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot open {file}") from exc
        return [filesystem.exchange_queue_t(*q) for q in loads(bytes_to_str(raw))] if raw else []

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        try:
            with file.open("a+b", buffering=0) as handle:  # created if missing, never truncated on open
                filesystem.lock(handle, filesystem.LOCK_EX)
                try:
                    handle.seek(0)
                    raw = handle.read()
                    queues = [filesystem.exchange_queue_t(*q) for q in loads(bytes_to_str(raw))] if raw else []
                    if entry not in queues:
                        queues.insert(0, entry)
                        handle.truncate(0)  # appends now start at 0
                        handle.write(str_to_bytes(dumps(queues)))
                finally:
                    filesystem.unlock(handle)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot open {file}") from exc


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
