"""The embedded profile's filesystem broker under concurrent producers: a consumer polling while
messages are being written never reads a partial message, and every message arrives once."""

import threading
import time

import pytest
from kombu import Connection

from rlmweb.broker import Transport

pytestmark = pytest.mark.slow


def race(transport, tmp_path, producers: int = 4, each: int = 150) -> tuple[list, list]:
    options = {
        "data_folder_in": str(tmp_path),
        "data_folder_out": str(tmp_path),
        "control_folder": str(tmp_path / "control"),
        "polling_interval": 0,
    }
    received, errors = [], []
    done = threading.Event()
    payload = "x" * 200_000  # large enough that a write is not a single syscall's worth of time

    (tmp_path / "control").mkdir()  # as rlmweb.settings.embedded_broker does before any worker starts

    def produce(p: int) -> None:
        try:
            with Connection("filesystem://", transport=transport, transport_options=options) as conn:
                queue = conn.SimpleQueue("q")
                for i in range(each):
                    queue.put({"id": f"{p}-{i}", "pad": payload})
        except Exception as exc:  # a producer that dies must fail the test, not lose its messages quietly
            errors.append(exc)

    def consume() -> None:
        with Connection("filesystem://", transport=transport, transport_options=options) as conn:
            queue = conn.SimpleQueue("q")
            idle_since = time.monotonic()
            while not (done.is_set() and len(received) + len(errors) >= producers * each):
                try:
                    message = queue.get(timeout=0.5)
                except queue.Empty:
                    # A get that times out may still be handed a message it fetched; keep polling
                    # until the producers are done and nothing has come for a while.
                    if done.is_set() and time.monotonic() - idle_since > 10:
                        return
                    continue
                except Exception as exc:  # the stock transport: a partial file fails to decode
                    errors.append(exc)
                    continue
                received.append(message.payload["id"])
                message.ack()
                idle_since = time.monotonic()

    consumer = threading.Thread(target=consume)
    consumer.start()
    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    consumer.join(60)
    return received, errors


def test_concurrent_producers_never_hand_the_worker_a_partial_message(tmp_path):
    received, errors = race(Transport, tmp_path)
    assert errors == []
    assert sorted(received) == sorted(f"{p}-{i}" for p in range(4) for i in range(150))
