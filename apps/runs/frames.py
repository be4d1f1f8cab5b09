"""Websocket frames of run events, each event encoded to JSON once per process.

Every viewer of a run is sent the same events: the ones replayed from the database when it
connects (all ten viewers of a new run replay its first turns, whose `input` holds the whole
prompt) and the live ones after. Encoding them again for every viewer was the web process's main
work under load. An event's JSON never changes (events are append-only, unique per run and seq),
so its text is kept here, by view (what a member sees, what a share link shows) and (run, seq),
in a least-recently-used map bounded by its total size.
"""

import json
import threading
from collections import OrderedDict

MAX_CACHED_CHARS = 32 * 1024 * 1024


class EncodedEvents:
    def __init__(self, max_chars: int = MAX_CACHED_CHARS) -> None:
        self.max_chars = max_chars
        self._texts: OrderedDict[tuple, str] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()  # consumers run on one loop; tests may encode from threads

    def text(self, view: str, run_id: object, event: dict) -> str:
        key = (view, str(run_id), event["seq"])
        with self._lock:
            cached = self._texts.get(key)
            if cached is not None:
                self._texts.move_to_end(key)
                return cached
        text = json.dumps(event)
        with self._lock:
            if key not in self._texts:
                self._texts[key] = text
                self._chars += len(text)
                while self._chars > self.max_chars and self._texts:
                    _, old = self._texts.popitem(last=False)
                    self._chars -= len(old)
        return text

    def clear(self) -> None:
        with self._lock:
            self._texts.clear()
            self._chars = 0


ENCODED = EncodedEvents()


def events_frame(view: str, run_id: object, events: list[dict]) -> str:
    """`{"type": "events", "events": [...]}` as text, from the events' cached JSON."""
    return '{"type": "events", "events": [' + ", ".join(ENCODED.text(view, run_id, e) for e in events) + "]}"
