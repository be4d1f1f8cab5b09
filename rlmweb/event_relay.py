"""Channel-layer messages from the embedded worker process to the web process, over a socketpair.

On the embedded default `manage.py serve` runs the Celery worker in a child process of its own
(`rlmweb.worker_process`), so the engine's CPU (litellm, the sinks, the broker's polling) never
holds the GIL that the web process's event loop needs for pages and websockets. The child cannot
reach the web process's in-memory channel layer, so its channel layer is `RelayChannelLayer`: every
`group_send` / `send` becomes one frame (4-byte big-endian length, then JSON) on a Unix socket the
web process inherited the other end of; `RelayReader`, a thread in the web process, reads the
frames in order and hands them to the web process's `EmbeddedChannelLayer` on its event loop.

Publishing stays best effort, as with Redis: a frame the web process never reads (it is gone, or
nobody is connected) is lost, and viewers catch up from the database by sequence number.
"""

import asyncio
import json
import logging
import os
import socket
import struct
import threading
from typing import Any

from channels.layers import BaseChannelLayer

logger = logging.getLogger(__name__)

RELAY_FD_ENV = "RLMWEB_EVENT_RELAY_FD"  # the child's end of the socketpair, as an inherited fd
PARENT_PID_ENV = "RLMWEB_EMBEDDED_WORKER_PARENT"  # the pid of the `serve` that spawned the child
_HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024


def encode_frame(kind: str, name: str, message: dict) -> bytes:
    body = json.dumps({"op": kind, "name": name, "message": message}, separators=(",", ":")).encode()
    return _HEADER.pack(len(body)) + body


class RelayChannelLayer(BaseChannelLayer):
    """The worker process's channel layer: it can only send, to the web process that spawned it."""

    extensions = ["groups"]

    def __init__(self, fd: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        raw = fd if fd is not None else int(os.environ[RELAY_FD_ENV])
        self._sock = socket.socket(fileno=raw)
        self._sock.set_inheritable(False)  # REPL processes and other children must not hold it
        self._lock = threading.Lock()

    def _write(self, kind: str, name: str, message: dict) -> None:
        frame = encode_frame(kind, name, message)
        with self._lock:  # one frame at a time: the sink threads of every run share the socket
            self._sock.sendall(frame)

    async def group_send(self, group: str, message: dict) -> None:
        self.require_valid_group_name(group)
        self._write("group_send", group, message)

    async def send(self, channel: str, message: dict) -> None:
        self.require_valid_channel_name(channel)
        self._write("send", channel, message)

    async def receive(self, channel: str) -> dict:
        raise NotImplementedError("the worker process has no consumers; websockets live in the web process")

    async def new_channel(self, prefix: str = "specific.") -> str:
        raise NotImplementedError("the worker process has no consumers; websockets live in the web process")

    async def group_add(self, group: str, channel: str) -> None:
        raise NotImplementedError("the worker process has no consumers; websockets live in the web process")

    async def group_discard(self, group: str, channel: str) -> None:
        raise NotImplementedError("the worker process has no consumers; websockets live in the web process")


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(min(size - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class RelayReader(threading.Thread):
    """Reads one worker process's frames and hands them, in order, to this process's channel layer.

    Frames are handed over on the layer's home loop (the one its consumers listen on); before any
    consumer has listened there is no group member to reach, and the frame is dropped. Ends when
    the worker's end of the socket closes (the worker exited).
    """

    def __init__(self, sock: socket.socket, layer: Any = None) -> None:
        super().__init__(name="event-relay", daemon=True)
        self.sock = sock
        self.layer = layer
        self.frames = 0

    def _layer(self) -> Any:
        if self.layer is None:
            from channels.layers import get_channel_layer

            self.layer = get_channel_layer()
        return self.layer

    def run(self) -> None:
        try:
            while (header := _read_exactly(self.sock, _HEADER.size)) is not None:
                (size,) = _HEADER.unpack(header)
                if size > MAX_FRAME:
                    logger.error("Event relay frame of %d bytes refused; closing the relay", size)
                    return
                body = _read_exactly(self.sock, size)
                if body is None:
                    return
                self.frames += 1
                self._deliver(json.loads(body))
        except OSError:
            logger.warning("The event relay from the worker process failed", exc_info=True)
        finally:
            self.sock.close()

    def _deliver(self, frame: dict) -> None:
        layer = self._layer()
        loop: asyncio.AbstractEventLoop | None = getattr(layer, "_home_loop", None)
        if loop is None or loop.is_closed() or not loop.is_running():
            return  # no consumer has listened yet: nobody to deliver to
        send = layer.group_send if frame["op"] == "group_send" else layer.send
        # Not waited for: frames are scheduled in the order they arrive, and the loop runs them in
        # that order, so each channel receives them in order.
        asyncio.run_coroutine_threadsafe(send(frame["name"], frame["message"]), loop)
