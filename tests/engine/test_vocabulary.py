"""The typed vocabulary: one dataclass per event type, enums for stop reasons, statuses, modes.

Every event the suite produces is checked against its dataclass by the autouse fixture
`events_match_their_schema` (tests/conftest.py); these tests specify the check itself.
"""

import logging
import re
from pathlib import Path

import pytest

from worker.engine import events as ev
from worker.engine import runner
from worker.engine.vocabulary import AnswerSource, CallKind, Mode, RunStatus, StopReason

RUNNER_SOURCE = Path(runner.__file__).read_text(encoding="utf-8")


def finished(**overrides) -> dict:
    data = {"status": "failed", "failure_reason": "x", "stop_reason": "max_cost", "totals": None,
            "forced_final": False}
    return {**data, **overrides}


def test_every_event_type_has_exactly_one_dataclass():
    assert set(ev.SCHEMAS) == set(ev.EVENT_TYPES)
    assert all(type_ == schema.payload.TYPE for type_, schema in ev.SCHEMAS.items())
    with pytest.raises(ValueError, match="defined twice"):
        ev.event_type(ev.RUN_FINISHED)(ev.RunFinished)


def test_an_event_that_fits_its_dataclass_has_no_problems():
    assert ev.problems(ev.RUN_FINISHED, finished()) == []
    assert ev.problems(ev.RUN_FINISHED, finished(stop_reason=None, status="succeeded")) == []


def test_missing_and_unknown_fields_are_problems():
    data = finished(surprise=1)
    del data["totals"]
    assert ev.problems(ev.RUN_FINISHED, data) == ["missing field 'totals'", "unknown field 'surprise'"]


def test_a_field_with_a_default_may_be_left_out():
    turn = {"node_id": None, "depth": 0, "iteration": 1, "content": "", "prompt_tokens": 0,
            "completion_tokens": 0, "cost_usd": 0.0, "latency_s": 0.0, "model": "script", "forced": False,
            "attempts": 0, "input": []}
    assert ev.problems(ev.ROOT_TURN, turn) == []
    assert ev.problems(ev.ROOT_TURN, {**turn, "incomplete_attempts": 2}) == []
    assert ev.problems(ev.ROOT_TURN, {**turn, "incompete_attempts": 2}) == ["unknown field 'incompete_attempts'"]


def test_enum_fields_hold_one_of_their_values():
    assert ev.problems(ev.RUN_FINISHED, finished(stop_reason="final")) == [
        "field 'stop_reason' is 'final', not a StopReason"]
    assert ev.problems(ev.RUN_FINISHED, finished(status=None)) == ["field 'status' is None, not a RunStatus"]
    assert ev.problems(ev.FINAL_ANSWER, {"answer": "a", "source": ["FINAL"], "node_id": None}) == [
        "field 'source' is ['FINAL'], not a AnswerSource"]
    assert ev.SCHEMAS[ev.SUBCALL_STARTED].choices == {"kind": (CallKind, False)}


def test_an_unknown_type_is_a_problem_that_says_where_to_add_it():
    assert ev.problems("some.unknown", {}) == [
        "unknown event type 'some.unknown': add its dataclass to worker/engine/events.py"]


def test_in_production_a_violation_is_logged_once_and_the_event_still_goes_out(monkeypatch, caplog):
    monkeypatch.setattr(ev, "report_violation", ev.log_violation_once)
    monkeypatch.setattr(ev, "_reported", set())
    sink = ev.ListSink()
    emitter = ev.EventEmitter(sink)
    with caplog.at_level(logging.ERROR, logger="worker.engine.events"):
        emitter.emit("cost.updated", totals={}, extra=1)
        emitter.emit("cost.updated", totals={}, extra=2)
    assert [e.data["extra"] for e in sink.events] == [1, 2]
    assert [r.getMessage() for r in caplog.records] == [
        "Event 'cost.updated' does not match its schema: unknown field 'extra' (logged once)"]


def test_the_suite_wide_check_collects_what_emit_finds(events_match_their_schema):
    ev.EventEmitter(ev.ListSink()).emit("cost.updated")
    assert events_match_their_schema == [("cost.updated", ["missing field 'totals'"])]
    events_match_their_schema.clear()  # seen: this test's own violation must not fail it


def test_a_payload_builds_its_event_with_plain_string_values(events_match_their_schema):
    event = ev.RunFinished(status=RunStatus.FAILED, failure_reason="Could not queue the run.",
                           stop_reason=StopReason.ENQUEUE_FAILED, totals=None, forced_final=False).event(7, 1.5)
    assert event == ev.Event(7, "run.finished", 1.5, {
        "status": "failed", "failure_reason": "Could not queue the run.", "stop_reason": "enqueue_failed",
        "totals": None, "forced_final": False})
    assert type(event.data["stop_reason"]) is str
    ev.RunFinished(status="done", failure_reason=None, stop_reason=None, totals=None, forced_final=False).to_data()
    assert events_match_their_schema == [("run.finished", ["field 'status' is 'done', not a RunStatus"])]
    events_match_their_schema.clear()


def test_every_stop_reason_the_runner_writes_is_a_stop_reason():
    assert not re.findall(r"\bstop\(\"|reason = \"|reason == \"", RUNNER_SOURCE)  # members, no bare strings
    written = {StopReason[name] for name in re.findall(r"\bStopReason\.(\w+)", RUNNER_SOURCE)}
    assert written == {"cancelled", "max_wall_time", "max_cost", "max_depth", "max_subcalls", "max_iterations",
                       "no_final_answer", "provider_error"}
    assert set(runner.FORCED_AFTER) <= set(StopReason)


def test_events_carry_plain_strings_for_enum_members(events_match_their_schema):
    sink = ev.ListSink()
    ev.EventEmitter(sink).emit("run.finished", status=RunStatus.FAILED, failure_reason=None,
                               stop_reason=StopReason.MAX_COST, totals=None, forced_final=False)
    data = sink.events[0].data
    assert (data["status"], data["stop_reason"]) == ("failed", "max_cost")
    assert type(data["status"]) is str and type(data["stop_reason"]) is str


def test_the_runner_knows_the_modes_and_answer_sources_of_the_vocabulary():
    assert tuple(Mode) == runner.MODES
    assert set(re.findall(r"\"(FINAL|FINAL_VAR|forced|plain)\"", RUNNER_SOURCE)) == set(AnswerSource)


def test_vocabulary_values_are_the_strings_stored_and_sent():
    assert StopReason.ENQUEUE_FAILED == "enqueue_failed" and f"{StopReason.MAX_COST}" == "max_cost"
    assert [s.value for s in RunStatus] == ["queued", "running", "succeeded", "failed", "cancelled"]
    assert [m.value for m in Mode] == ["rlm", "rlm-no-subcalls", "direct"]
