"""The JSON channel: framing of large messages, refusal of malformed frames, fd passing."""

from __future__ import annotations

import os
import socket
import struct
import threading

import pytest

from worker.sandbox.channel import Channel, ChannelClosed, ChannelTimeout, ProtocolError


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    ca, cb = Channel(a), Channel(b)
    yield ca, cb
    ca.close()
    cb.close()


def test_round_trip_of_a_large_message(pair):
    a, b = pair
    payload = {"prompt": "é" * 20_000_000, "n": [1, 2.5, None, True], "lone": "\ud800"}
    t = threading.Thread(target=a.send, args=(payload,))
    t.start()
    assert b.recv(timeout=30) == payload
    t.join()


def test_timeout_and_close(pair):
    a, b = pair
    with pytest.raises(ChannelTimeout):
        b.recv(timeout=0.05)
    a.close()
    with pytest.raises(ChannelClosed):
        b.recv(timeout=1)


def test_malformed_and_oversized_frames_are_refused(pair):
    a, b = pair
    a.sock.sendall(struct.pack(">I", 5) + b"{nope")
    with pytest.raises(ProtocolError):
        b.recv(timeout=1)
    deep = b"[" * 100_000 + b"]" * 100_000
    a.sock.sendall(struct.pack(">I", len(deep)) + deep)
    with pytest.raises(ProtocolError):
        b.recv(timeout=5)
    small = Channel(b.sock, max_frame=10)
    a.sock.sendall(struct.pack(">I", 11))
    with pytest.raises(ProtocolError):
        small.recv(timeout=1)


def test_never_unpickles(pair):
    import pickle

    a, b = pair
    blob = pickle.dumps({"x": 1})
    a.sock.sendall(struct.pack(">I", len(blob)) + blob)
    with pytest.raises(ProtocolError):
        b.recv(timeout=1)


def test_fd_passing_accepts_only_sockets(pair):
    a, b = pair
    x, y = socket.socketpair()
    a.send_fd(x.fileno())
    fd = b.recv_fd(timeout=1)
    Channel(socket.socket(fileno=fd)).send({"via": "passed fd"})
    assert Channel(y).recv(timeout=1) == {"via": "passed fd"}
    r, w = os.pipe()
    a.send_fd(r)
    with pytest.raises(ProtocolError):
        b.recv_fd(timeout=1)
    for f in (r, w):
        os.close(f)
    x.close()
    y.close()
