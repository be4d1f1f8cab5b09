"""The narrow channel between the host and the REPL processes: JSON frames over a socketpair.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON. Nothing is ever
pickled: the host parses untrusted bytes only with ``json.loads`` and checks the shape of every
message it gets. Reads are exact (no read-ahead buffer), so a file descriptor sent with
``send_fd`` (SCM_RIGHTS, one marker byte) arrives exactly where the reader expects it.

Used by both sides; keep it free of imports beyond the standard library.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import stat
import struct
import time

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 1024**3  # 1 GiB: prompts and final answers may be large, but not unbounded
_CHUNK = 4 * 1024 * 1024
_FD_MARKER = b"F"


class ChannelClosed(Exception):
    """The other end closed the channel (or died)."""


class ChannelTimeout(Exception):
    """No complete frame arrived before the deadline."""


class ProtocolError(Exception):
    """The other end sent something that is not a well-formed frame."""


def _encode(obj: object) -> bytes:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
    # Lone surrogates can exist in Python strings the REPL builds; carry them through intact.
    return text.encode("utf-8", "surrogatepass")


class Channel:
    """Blocking, exact-read framing on a connected stream socket."""

    def __init__(self, sock: socket.socket, max_frame: int = MAX_FRAME_BYTES) -> None:
        self.sock = sock
        self.max_frame = max_frame
        sock.setblocking(True)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    # -- sending -----------------------------------------------------------------------------
    def send(self, obj: object) -> None:
        data = _encode(obj)
        if len(data) > self.max_frame:
            raise ProtocolError(f"frame of {len(data)} bytes exceeds the {self.max_frame}-byte limit")
        try:
            self.sock.sendall(HEADER.pack(len(data)))
            view = memoryview(data)
            for start in range(0, len(view), _CHUNK):
                self.sock.sendall(view[start : start + _CHUNK])
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ChannelClosed(str(exc)) from None

    def send_fd(self, fd: int) -> None:
        try:
            socket.send_fds(self.sock, [_FD_MARKER], [fd])
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ChannelClosed(str(exc)) from None

    # -- receiving ---------------------------------------------------------------------------
    def _wait_readable(self, deadline: float | None) -> None:
        if deadline is None:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ChannelTimeout()
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
        if not poller.poll(remaining * 1000):
            raise ChannelTimeout()

    def _read_exact(self, n: int, deadline: float | None) -> bytearray:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            self._wait_readable(deadline)
            try:
                k = self.sock.recv_into(view[got:], min(n - got, _CHUNK))
            except (ConnectionResetError, BrokenPipeError) as exc:
                raise ChannelClosed(str(exc)) from None
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue
            if k == 0:
                raise ChannelClosed("end of stream")
            got += k
        return buf

    def recv(self, timeout: float | None = None) -> object:
        """Receive one frame. A timeout that expires mid-frame leaves the channel unusable."""
        deadline = None if timeout is None else time.monotonic() + timeout
        (size,) = HEADER.unpack(self._read_exact(HEADER.size, deadline))
        if size > self.max_frame:
            raise ProtocolError(f"frame of {size} bytes exceeds the {self.max_frame}-byte limit")
        data = self._read_exact(size, deadline)
        try:
            return json.loads(data.decode("utf-8", "surrogatepass"))
        except (ValueError, RecursionError, MemoryError) as exc:
            raise ProtocolError(f"malformed frame: {type(exc).__name__}") from None

    def recv_fd(self, timeout: float | None = None) -> int:
        """Receive one file descriptor sent with ``send_fd``; it must be a socket."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wait_readable(deadline)
        msg, fds, _flags, _addr = socket.recv_fds(self.sock, 1, 4)
        if not msg:
            for fd in fds:
                os.close(fd)
            raise ChannelClosed("end of stream")
        if msg != _FD_MARKER or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise ProtocolError("expected exactly one file descriptor")
        fd = fds[0]
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            os.close(fd)
            raise ProtocolError("the descriptor received is not a socket")
        return fd
