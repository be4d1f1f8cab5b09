"""The event emitter: contiguous sequence numbers, delivered in order, from any thread."""

import json
import threading

from worker.engine.events import Event, EventEmitter, ListSink


def test_emit_numbers_events_from_one_and_hands_them_to_the_sink():
    sink = ListSink()
    emitter = EventEmitter(sink)
    first = emitter.emit("cost.updated", totals={"iterations": 1})
    second = emitter.emit("final.answer", answer="42", source="FINAL", node_id=None)
    assert [e.seq for e in sink.events] == [1, 2]
    assert sink.events == [first, second]
    assert first.to_dict() == {"seq": 1, "type": "cost.updated", "ts": first.ts, "data": {"totals": {"iterations": 1}}}
    json.dumps(second.to_dict())


def test_concurrent_emitters_never_reorder_or_skip():
    seen: list[int] = []

    class CheckingSink:
        def write(self, event: Event) -> None:
            seen.append(event.seq)

    emitter = EventEmitter(CheckingSink())
    threads = [threading.Thread(target=lambda: [emitter.emit("cost.updated", totals={}) for _ in range(500)])
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == list(range(1, 4001))
