"""Extraction is bounded in time and memory, and never holds the worker slots runs need.

The hostile files are built here: a PDF whose pages all draw one shared content stream of no-op
operators (parsed again for every page), and a PDF with one huge string in its content stream.
"""

import time
import zlib
from pathlib import Path

import pytest
from django.core.cache import cache

from apps.accounts.models import ApiToken
from apps.documents.models import Document, DocumentStatus
from apps.documents.services import document_create_from_file, document_extract
from apps.runs.models import RunStatus
from tests.helpers import pdf_from_objects
from tests.web.runs_factories import make_document


def pdf_sharing_one_stream(pages: int, content: bytes) -> bytes:
    """A PDF of `pages` pages whose /Contents is the same Flate-compressed stream."""
    stream = zlib.compress(content, 9)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{5 + i} 0 R" for i in range(pages))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} /Resources << /Font << /F1 4 0 R >> >> >>".encode())
    objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    objects += [b"<< /Type /Page /Parent 2 0 R /Contents 3 0 R >>"] * pages
    return pdf_from_objects(objects)


def slow_pdf(pages: int = 200) -> bytes:
    """About 20 KB; a quarter of a second of parsing per page, so ~50 s unbounded."""
    return pdf_sharing_one_stream(pages, b"BT ET " * 300_000)


@pytest.fixture
def adopt(db, user, team, data_dir):
    cache.clear()

    def adopt(name: str, data: bytes) -> Document:
        path = data_dir / f"incoming-{time.monotonic_ns()}"
        path.write_bytes(data)
        return document_create_from_file(user=user, team=team, name=name, path=path).document

    return adopt


def test_a_pdf_repeating_one_heavy_stream_fails_at_the_time_limit(adopt, settings, data_dir):
    settings.EXTRACTION_TIMEOUT_S = 2
    data = slow_pdf()
    assert len(data) < 25_000
    document = adopt("slow.pdf", data)
    started = time.monotonic()
    assert document_extract(str(document.pk)) == DocumentStatus.FAILED
    assert time.monotonic() - started < 10
    document.refresh_from_db()
    assert document.error.startswith("Text extraction ") and "limit of 2 s" in document.error, document.error
    assert not [p for p in (data_dir / "media").rglob("*") if p.is_file()]  # original and partial text gone


def test_a_pdf_that_needs_more_memory_than_allowed_fails_with_the_memory_limit(adopt, settings):
    settings.EXTRACTION_MEMORY_MB = 300
    # 70 MiB of text in one string: a few hundred MiB while pypdf decodes it, from a 70 KB file.
    document = adopt("big.pdf", pdf_sharing_one_stream(1, b"BT /F1 12 Tf (" + b"A" * (70 * 2**20) + b") Tj ET"))
    started = time.monotonic()
    assert document_extract(str(document.pk)) == DocumentStatus.FAILED
    assert time.monotonic() - started < 30
    document.refresh_from_db()
    assert "memory limit of 300 MiB" in document.error, document.error


def test_an_ordinary_document_still_extracts_in_the_child_process(adopt):
    document = adopt("a.md", b"# Title\n\nBody text.\n")
    assert document_extract(str(document.pk)) == DocumentStatus.READY
    document.refresh_from_db()
    assert (document.chars, document.lines, document.preview) == (20, 3, "# Title\n\nBody text.\n")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_run_is_picked_up_while_every_extraction_slot_is_busy(client, user, team, data_dir, celery_worker, settings):
    """Two slow PDFs would have filled the two slots of a shared pool; runs have their own."""
    cache.clear()
    settings.EXTRACTION_TIMEOUT_S = 120
    busy = [document_create_from_file(user=user, team=team, name=f"slow{i}.pdf", path=_write(data_dir, i)).document
            for i in range(2)]
    deadline = time.monotonic() + 30
    while not list((data_dir / "media").rglob("*.txt.*.part")):  # an extraction has started
        assert time.monotonic() < deadline
        time.sleep(0.1)
    doc = make_document(team, "The code word is HERON.\n")
    auth = {"Authorization": f"Token {ApiToken.issue(user)[1]}"}
    response = client.post("/api/runs/", {"question": "What is the code word?", "documents": [str(doc.pk)]},
                           content_type="application/json", headers=auth)
    assert response.status_code == 201, response.json()
    run_url = f"/api/runs/{response.json()['id']}/"
    deadline = time.monotonic() + 30
    while (status := client.get(run_url, headers=auth).json()["status"]) == RunStatus.QUEUED:
        assert time.monotonic() < deadline, "the run stayed queued behind the extractions"
        time.sleep(0.2)
    assert Document.objects.filter(pk__in=[d.pk for d in busy], status=DocumentStatus.EXTRACTING).exists()
    assert status in (RunStatus.RUNNING, RunStatus.SUCCEEDED)
    Document.objects.filter(pk__in=[d.pk for d in busy]).delete()  # their extractions stop at the next progress


def _write(data_dir, i: int):
    path = data_dir / f"slow-{i}"
    path.write_bytes(slow_pdf(400 + i))
    return path


def test_an_extraction_child_dies_with_the_worker_that_started_it(tmp_path):
    """A worker killed mid-extraction (restart, OOM) leaves no child parsing on for minutes."""
    import os
    import signal
    import subprocess
    import sys

    source = tmp_path / "slow.pdf"
    # One long page: no progress message (whose broken pipe would also end the child) for seconds.
    source.write_bytes(pdf_sharing_one_stream(1, b"BT ET " * 6_000_000))
    worker = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from apps.documents.bounded import extract_bounded; "
         "extract_bounded(Path(sys.argv[1]), Path(sys.argv[2]), 'slow.pdf', timeout_s=120, memory_mb=4096)",
         str(source), str(tmp_path / "out.txt")],
        cwd=Path(__file__).resolve().parents[2],
    )
    deadline = time.monotonic() + 30
    while not (children := _children_of(worker.pid)):
        assert time.monotonic() < deadline, "the extraction child did not start"
        time.sleep(0.1)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    deadline = time.monotonic() + 3
    while any(_alive(pid) for pid in children):
        assert time.monotonic() < deadline, "the extraction child outlived its worker"
        time.sleep(0.2)


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
