"""Runs as JSONL, one object per run, and back.

Each line holds the question, the documents' metadata and hashes (never their text), the settings,
the full trajectory (every event, exactly as stored), the run's result, and the review: outcome,
patterns, labels, notes, state and feedback. Importing a line creates a new Run in the given team
whose events are written by `persist_events`, so the run's row is derived from its events exactly as
for a live run, and the explorer shows it like any other run. Imported runs are marked `imported`:
their cost was spent elsewhere, so it never counts toward the team's spending or its cap.
"""

import json
import math
from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.documents.models import Document
from apps.runs.models import Run, RunDocument, RunStatus
from apps.runs.sink import persist_events
from apps.teams.models import Team
from rlmweb.web.api import MalformedJson, parse_json
from rlmweb.web.errors import Invalid
from worker.engine import events as ev
from worker.engine.events import EVENT_TYPES, Event
from worker.engine.vocabulary import CallKind

from .models import Label, ReviewState
from .services import review_classify

FORMAT = "rlmweb-run-export"
VERSION = 1
RESULT_FIELDS = ("status", "final_answer", "answer_source", "forced_final", "stop_reason", "failure_reason",
                 "iterations", "subcalls", "max_depth_reached", "prompt_tokens", "completion_tokens", "cost_usd",
                 "cost_unknown_calls")


# One exported run per line, its whole trajectory included.
IMPORT_LINE_MAX_BYTES = 512 * 1024 * 1024


class ImportFailed(Invalid):
    """An export line that cannot be imported; the message says which and why."""


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def run_record(run: Run) -> dict:
    """One run as the exported object."""
    review = getattr(run, "review", None)  # RelatedObjectDoesNotExist is an AttributeError
    documents = [
        {"position": rd.position, "name": rd.document.name, "chars": rd.document.chars,
         "sha256": rd.document.sha256, "size_bytes": rd.document.size_bytes, "format": rd.document.format,
         "lines": rd.document.lines}
        for rd in RunDocument.objects.filter(run=run).select_related("document").order_by("position")
    ]
    record = {
        "format": FORMAT,
        "version": VERSION,
        "run_id": str(run.pk),
        "team": run.team.name,
        "created_by": run.created_by.get_username() if run.created_by else None,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "question": run.question,
        "documents": documents,
        "settings": {"mode": run.mode, "root_model": run.root_model, "sub_model": run.sub_model,
                     "limits": run.limits},
        "result": {f: getattr(run, f) for f in RESULT_FIELDS},
        "events": [e.to_dict() for e in run.events.order_by("seq")],
        "outcome": review.outcome if review else None,
        "patterns": review.patterns if review else [],
        "details": review.details if review else {},
        "state": review.state if review else None,
        "labels": sorted(label.name for label in review.labels.all()) if review else [],
        "notes": review.notes if review else "",
        "assignee": review.assignee.get_username() if review and review.assignee else None,
        "imported_from": review.imported_from if review else None,
        "feedback": [
            {"user": f.user.get_username(), "rating": "up" if f.rating > 0 else "down", "comment": f.comment,
             "created_at": _iso(f.created_at), "updated_at": _iso(f.updated_at)}
            for f in run.feedback.select_related("user").order_by("created_at")
        ],
    }
    return record


def export_lines(runs: Iterable[Run]) -> Iterator[str]:
    """JSONL lines (each ending in a newline) for the runs, one query batch per run: safe to stream."""
    for run in runs:
        yield json.dumps(run_record(run), ensure_ascii=False, separators=(",", ":")) + "\n"


def _validate(record, line_no: int) -> None:
    def fail(message: str):
        raise ImportFailed(f"line {line_no}: {message}")

    if not isinstance(record, dict) or record.get("format") != FORMAT:
        fail(f"not an rlmweb run export (expected \"format\": \"{FORMAT}\")")
    if record.get("version") != VERSION:
        fail(f"unsupported version {record.get('version')!r}; this rlmweb reads version {VERSION}")
    if not isinstance(record.get("question"), str) or not isinstance(record.get("settings"), dict):
        fail("question and settings are required")
    events = record.get("events")
    if not isinstance(events, list) or not events:
        fail("events must be a non-empty list")
    for expected, event in enumerate(events, start=1):
        if not isinstance(event, dict) or event.get("seq") != expected:
            fail(f"events must be numbered 1, 2, 3…; event {expected} is not")
        if event.get("type") not in EVENT_TYPES or not isinstance(event.get("data"), dict):
            fail(f"event {expected} has an unknown type {event.get('type')!r} or no data")
        if not isinstance(event.get("ts"), int | float):
            fail(f"event {expected} has no timestamp")
    if events[-1]["type"] != ev.RUN_FINISHED:
        fail("the trajectory does not end with run.finished")
    _validate_costs(events, record.get("result"), fail)


# Float sums of the same costs in another order differ in the last digits.
COST_TOLERANCE = 1e-9


def _cost(value, where: str, fail) -> float:
    """A cost as imported: unknown (None) counts 0; otherwise a finite number, 0 or more."""
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        fail(f"{where} has cost_usd {value!r}; a cost is a finite number of USD, 0 or more")
    return float(value)


def _validate_costs(events: list, result, fail) -> None:
    """Every cost is finite and ≥ 0, and the run's totals are the sum of its calls' costs (each model
    call counted once: root turns and llm sub-calls; an rlm sub-call's cost is a roll-up of those)."""
    kinds = {e["data"].get("node_id"): e["data"].get("kind") for e in events if e["type"] == ev.SUBCALL_STARTED}
    calls = 0.0
    for event in events:
        data, where = event["data"], f"event {event['seq']} ({event['type']})"
        if event["type"] in (ev.ROOT_TURN, ev.SUBCALL_FINISHED):
            cost = _cost(data.get("cost_usd"), where, fail)
            if event["type"] == ev.ROOT_TURN or kinds.get(data.get("node_id")) != CallKind.RLM:
                calls += cost
        elif event["type"] in (ev.COST_UPDATED, ev.RUN_FINISHED):
            totals = data.get("totals")
            if totals is not None and not isinstance(totals, dict):
                fail(f"{where} has totals that are not an object")
            _cost((totals or {}).get("cost_usd"), where, fail)
    # The run's cost is the last totals any event carried (as `run_fields_from_events` reads them).
    totals = [e["data"]["totals"] for e in events if e["type"] in (ev.COST_UPDATED, ev.RUN_FINISHED)
              and e["data"].get("totals")]
    claimed = {"final totals": _cost(totals[-1].get("cost_usd") if totals else 0.0, "the totals", fail)}
    if isinstance(result, dict) and "cost_usd" in result:
        claimed["result"] = _cost(result["cost_usd"], "result", fail)
    for where, value in claimed.items():
        if not math.isclose(value, calls, rel_tol=COST_TOLERANCE, abs_tol=COST_TOLERANCE):
            fail(f"the {where} cost_usd {value!r} is not the sum of the calls' costs ({calls!r})")


def import_record(record: dict, team: Team, user: User | None, source: str) -> Run:
    """Create one Run (and its review) from an exported object; validated beforehand."""
    settings_ = record["settings"]
    run = Run.objects.create(
        team=team, created_by=user, question=record["question"], mode=settings_.get("mode") or "rlm",
        root_model=settings_.get("root_model") or "", sub_model=settings_.get("sub_model") or "",
        limits=settings_.get("limits") or {}, status=RunStatus.RUNNING, imported=True,
    )
    persist_events(run.pk, [Event(e["seq"], e["type"], e["ts"], e["data"]) for e in record["events"]])
    times = {k: parse_datetime(record[k]) for k in ("created_at", "started_at", "finished_at") if record.get(k)}
    if times:
        Run.objects.filter(pk=run.pk).update(**times)
    # Link the documents this team already holds (same content hash): the explorer can then show slices.
    for meta in record.get("documents") or []:
        document = Document.objects.filter(team=team, sha256=meta.get("sha256") or "-").first()
        if document is not None:
            RunDocument.objects.get_or_create(run=run, position=meta.get("position", 0),
                                              defaults={"document": document})
    review = review_classify(run)
    if review is not None:
        review.notes = record.get("notes") or ""
        if record.get("state") in ReviewState.values:
            review.state = record["state"]
        review.imported_from = {
            "source": source, "run_id": record.get("run_id"), "team": record.get("team"),
            "created_by": record.get("created_by"), "imported_at": timezone.now().isoformat(),
            "documents": record.get("documents") or [], "feedback": record.get("feedback") or [],
            "outcome": record.get("outcome"), "patterns": record.get("patterns") or [],
        }
        review.save()
        for name in record.get("labels") or []:
            label, _ = Label.objects.get_or_create(name=str(name)[:80])
            review.labels.add(label)
    run.refresh_from_db()
    return run


def import_lines(lines: Iterable[bytes | str], team: Team, user: User | None = None,
                 source: str = "") -> list[Run]:
    """Import a JSONL export into `team`: every line or none (one transaction)."""
    records: list[Any] = []  # each checked by _validate
    for line_no, raw in enumerate(lines, start=1):
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if not text.strip():
            continue
        try:
            record = parse_json(text, max_bytes=IMPORT_LINE_MAX_BYTES)
        except MalformedJson as exc:
            raise ImportFailed(f"line {line_no}: not JSON ({exc})") from None
        _validate(record, line_no)
        records.append(record)
    if not records:
        raise ImportFailed("the file holds no runs")
    with transaction.atomic():
        return [import_record(record, team, user, source) for record in records]
