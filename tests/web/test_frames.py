"""Run-event frames encode each event once per process, per view, within a size bound."""

import json

from apps.runs.frames import EncodedEvents, events_frame


def event(seq: int, **data) -> dict:
    return {"seq": seq, "type": "cell.finished", "ts": 1.5, "data": data}


def test_a_frame_is_the_json_of_its_events():
    events = [event(1, stdout="é \"quoted\"\n"), event(2, stdout=None, numbers=[1, 2.5])]
    assert json.loads(events_frame("member", "run-frames-1", events)) == {"type": "events", "events": events}


def test_member_and_share_link_views_of_one_event_are_kept_apart():
    full, shared = event(1, stdout="secret", code="x"), event(1, stdout="secret")
    assert json.loads(events_frame("member", "run-frames-2", [full]))["events"] == [full]
    assert json.loads(events_frame("shared", "run-frames-2", [shared]))["events"] == [shared]
    assert json.loads(events_frame("member", "run-frames-2", [full]))["events"] == [full]


def test_the_cache_is_bounded_and_evicts_the_least_recently_used():
    cache = EncodedEvents(max_chars=200)
    texts = [cache.text("member", "r", event(seq, stdout="x" * 40)) for seq in range(1, 6)]
    assert cache._chars <= 200 and len(cache._texts) < 5
    assert ("member", "r", 5) in cache._texts and ("member", "r", 1) not in cache._texts
    assert cache.text("member", "r", event(5, stdout="changed")) == texts[-1]  # a cached event is not re-encoded
