"""Builders for the runs tests: ready documents, runs in any state, engine events."""

import hashlib
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache

from apps.documents.models import Document, DocumentStatus
from apps.runs.models import Run, RunDocument, RunStatus


@pytest.fixture(autouse=False)
def clean_rate_limits():
    """The ask rate limit counts per user id in the process-wide cache; tests start from zero."""
    cache.clear()
    yield
    cache.clear()


def make_document(team, text: str = "The secret code is PLUM-42.\n", name: str = "notes.txt",
                  status: str = DocumentStatus.READY, user=None) -> Document:
    """A document as extraction leaves it: its UTF-8 text under MEDIA_ROOT."""
    doc_id = uuid.uuid4()
    relative = Path("documents") / str(team.pk) / f"{doc_id}.txt"
    path = Path(settings.MEDIA_ROOT) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return Document.objects.create(
        id=doc_id, team=team, created_by=user, name=name, format="txt", size_bytes=len(text.encode()),
        sha256=hashlib.sha256(text.encode() + doc_id.bytes).hexdigest(), status=status,
        text_file=str(relative) if status == DocumentStatus.READY else "", chars=len(text),
        lines=text.count("\n"), tokens_estimate=len(text) // 4,
    )


def make_run(team, user=None, documents=(), status: str = RunStatus.QUEUED, **fields) -> Run:
    """A run row straight in the database (no service, nothing enqueued)."""
    fields.setdefault("question", "What is the secret code?")
    fields.setdefault("root_model", settings.OFFLINE_MODEL)
    fields.setdefault("sub_model", settings.OFFLINE_MODEL)
    run = Run.objects.create(team=team, created_by=user, status=status, **fields)
    for i, d in enumerate(documents):
        RunDocument.objects.create(run=run, document=d, position=i)
    return run


def make_events(first: int, last: int, final: bool = False) -> list:
    """Engine events first..last (a cell.finished each; the last a run.finished when `final`)."""
    from worker.engine.events import Event

    events = []
    for seq in range(first, last + 1):
        if final and seq == last:
            events.append(Event(seq, "run.finished", time.time(), {
                "status": "succeeded", "failure_reason": None, "stop_reason": "final", "totals": None,
                "forced_final": False}))
        else:
            events.append(Event(seq, "cell.finished", time.time(), {"code": f"print({seq})", "stdout": str(seq),
                                                                      "error": None}))
    return events
