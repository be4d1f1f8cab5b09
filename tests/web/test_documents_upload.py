"""The chunked, resumable upload protocol and the documents page.

Every refusal is checked for its message and for what it leaves behind: no Document row, no
upload session, no temp file under DATA_DIR/uploads, no file under MEDIA_ROOT.
"""

import hashlib
import io
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.utils import timezone

from apps.documents.models import Document, DocumentStatus, UploadSession
from apps.documents.services import document_extract
from apps.teams.models import Membership, Role
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def files(data_dir):
    """Fresh DATA_DIR/MEDIA_ROOT for the test, and a clean rate-limit cache."""
    cache.clear()
    return data_dir


@pytest.fixture
def signed_in(client, user, files):
    client.force_login(user)
    return client


def leftovers(data_dir: Path) -> list[str]:
    """Every file the documents app could have left under the data directory."""
    found = []
    for folder in (data_dir / "uploads", data_dir / "media"):
        if folder.exists():
            found += [str(p.relative_to(data_dir)) for p in folder.rglob("*") if p.is_file()]
    return sorted(found)


def start(client, name: str, size: int, prefix: str = "/documents", headers: dict | None = None, **extra):
    return client.post(
        f"{prefix}/uploads/", {"name": name, "size": size, **extra}, content_type="application/json", headers=headers
    )


def put_chunk(client, upload: dict, offset: int, data: bytes):
    return client.put(f"{upload['chunk_url']}?offset={offset}", data, content_type="application/octet-stream")


def upload_bytes(client, name: str, data: bytes, chunk: int = 3 * 1024 * 1024, **headers) -> dict:
    """Start, send every chunk, complete; return the completion JSON."""
    started = client.post("/documents/uploads/", {"name": name, "size": len(data)}, content_type="application/json", **headers)
    assert started.status_code == 201, started.json()
    upload = started.json()
    for offset in range(0, len(data), chunk):
        sent = client.put(f"{upload['chunk_url']}?offset={offset}", data[offset : offset + chunk],
                          content_type="application/octet-stream", **headers)
        assert sent.status_code == 200, sent.json()
    done = client.post(upload["complete_url"], **headers)
    assert done.status_code in (200, 201), done.json()
    return done.json()


# --- the happy path -----------------------------------------------------------------------------------


def test_chunked_upload_creates_a_document_and_extraction_fills_its_stats(
    signed_in, team, files, settings, django_capture_on_commit_callbacks
):
    settings.STREAM_TEXT_EXTRACTION = False  # the extraction task (text decoded while uploading: test_documents_streaming)
    text = "".join(f"line {i}: the quick brown fox\n" for i in range(200_000)).encode()  # ~6 MB, 3 chunks
    with django_capture_on_commit_callbacks() as callbacks:
        result = upload_bytes(signed_in, "notes.txt", text)
    assert result["created"] is True and result["message"].startswith("Uploaded notes.txt")
    assert len(callbacks) == 1  # extraction is queued once, after the commit
    document = Document.objects.get(pk=result["document"]["id"])
    assert document.status == DocumentStatus.EXTRACTING and document.team == team
    assert document.sha256 == hashlib.sha256(text).hexdigest() and document.size_bytes == len(text)
    assert document.original_path.read_bytes() == text
    assert not list((files / "uploads").iterdir())

    assert document_extract(str(document.pk)) == "ready"
    document.refresh_from_db()
    assert (document.chars, document.lines) == (len(text), 200_000)
    assert document.tokens_estimate == (len(text) + 3) // 4
    assert document.preview.startswith("line 0: the quick") and len(document.preview) == 2000
    assert document.text_path == files / "media" / "documents" / str(team.pk) / f"{document.pk}.txt"
    assert document.text_path.read_bytes() == text
    assert document.progress == 1.0 and document.error == ""


def test_status_endpoint_reports_progress_and_stats(signed_in, files, settings):
    settings.STREAM_TEXT_EXTRACTION = False
    result = upload_bytes(signed_in, "a.md", b"# Title\n\nBody\n")
    doc_id = result["document"]["id"]
    polled = signed_in.get(f"/documents/status/?ids={doc_id},not-a-uuid").json()["documents"]
    assert [d["status"] for d in polled] == ["extracting"]
    document_extract(doc_id)
    polled = signed_in.get(f"/documents/status/?ids={doc_id}").json()["documents"][0]
    assert polled["status"] == "ready" and polled["lines"] == 3 and polled["format"] == "md"


def test_the_page_lists_documents_with_their_stats_and_an_ask_link(signed_in, files):
    doc_id = upload_bytes(signed_in, "report.csv", b"a,b\n1,2\n")["document"]["id"]
    document_extract(doc_id)
    page = signed_in.get("/documents/").content.decode()
    assert "report.csv" in page and "≈ 2" in page and f"/runs/new/?documents={doc_id}" in page
    assert 'id="dropzone"' in page and "js/upload.js" in page
    assert "a,b" in page  # preview


def test_identical_content_is_recognised_by_hash(signed_in, files):
    first = upload_bytes(signed_in, "one.txt", b"same bytes\n")
    again = upload_bytes(signed_in, "two.txt", b"same bytes\n")
    assert again["created"] is False
    assert again["document"]["id"] == first["document"]["id"]
    assert again["message"] == "Already uploaded as one.txt."
    assert Document.objects.count() == 1
    folder = f"media/documents/{Document.objects.get().team_id}"
    assert leftovers(files) == [f"{folder}/{first['document']['id']}.original.txt", f"{folder}/{first['document']['id']}.txt"]


def test_a_failed_document_is_replaced_when_the_same_content_is_uploaded_again(signed_in, files):
    failed = upload_bytes(signed_in, "blob.txt", b"\x00\x01\x02binary")["document"]["id"]
    document_extract(failed)
    assert Document.objects.get(pk=failed).status == "failed"
    again = upload_bytes(signed_in, "blob.txt", b"\x00\x01\x02binary")
    assert again["created"] is True and again["document"]["id"] != failed
    assert list(Document.objects.values_list("pk", flat=True)) == [again["document"]["id"]] or \
        [str(pk) for pk in Document.objects.values_list("pk", flat=True)] == [again["document"]["id"]]


def test_the_same_content_in_another_team_is_a_separate_document(client, user, other_user, files):
    client.force_login(user)
    mine = upload_bytes(client, "x.txt", b"shared text\n")
    client.force_login(other_user)
    theirs = upload_bytes(client, "x.txt", b"shared text\n")
    assert theirs["created"] is True and theirs["document"]["id"] != mine["document"]["id"]


# --- resuming -------------------------------------------------------------------------------------------


def test_a_gap_or_an_overlap_is_refused_with_the_offset_to_resume_from(signed_in, files):
    data = os.urandom(300_000)
    upload = start(signed_in, "r.txt", len(data)).json()
    assert put_chunk(signed_in, upload, 0, data[:100_000]).json() == {"offset": 100_000, "size": 300_000, "complete": False}
    gap = put_chunk(signed_in, upload, 150_000, data[150_000:200_000])
    assert gap.status_code == 409 and gap.json()["offset"] == 100_000
    assert "send the chunk at offset 100000" in gap.json()["error"]
    overlap = put_chunk(signed_in, upload, 50_000, data[50_000:150_000])
    assert overlap.status_code == 409 and overlap.json()["offset"] == 100_000
    assert (files / "uploads" / f"{upload['id']}.part").read_bytes() == data[:100_000]


class BrokenStream(io.RawIOBase):
    """A request body whose connection drops after `limit` bytes."""

    def __init__(self, data: bytes, limit: int) -> None:
        self.data, self.limit, self.pos = data, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.pos >= self.limit:
            raise ConnectionResetError("client went away")
        n = min(len(buffer), self.limit - self.pos)
        buffer[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def test_resume_after_a_connection_broken_mid_chunk(signed_in, user, files):
    from apps.documents import services

    data = os.urandom(5 * 1024 * 1024)
    upload = start(signed_in, "resume.txt", len(data)).json()
    session = UploadSession.objects.get(pk=upload["id"])
    # The connection drops 1.5 MiB into a 4 MiB chunk: what arrived is kept (it is a prefix).
    with pytest.raises(ConnectionResetError):
        services.upload_append(session, 0, BrokenStream(data[: 4 * 1024 * 1024], 1536 * 1024), 4 * 1024 * 1024)
    status = signed_in.get(upload["url"]).json()
    assert status["offset"] == 1536 * 1024
    # The client resumes from the server's offset and finishes.
    offset = status["offset"]
    while offset < len(data):
        offset = put_chunk(signed_in, upload, offset, data[offset : offset + 2 * 1024 * 1024]).json()["offset"]
    done = signed_in.post(upload["complete_url"]).json()
    assert done["document"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_completing_twice_gives_the_same_document(signed_in, files):
    """A client whose first `complete` answer was lost can simply ask again."""
    upload = start(signed_in, "twice.txt", 5).json()
    put_chunk(signed_in, upload, 0, b"hello")
    first = signed_in.post(upload["complete_url"])
    again = signed_in.post(upload["complete_url"])
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["document"]["id"] == first.json()["document"]["id"]
    assert signed_in.get(upload["url"]).json()["offset"] == 5
    late = put_chunk(signed_in, upload, 5, b"more")
    assert late.status_code == 409 and late.json()["error"] == "This upload is already complete."
    assert Document.objects.count() == 1


def test_completing_an_incomplete_upload_is_refused_and_keeps_the_bytes_for_resuming(signed_in, files):
    upload = start(signed_in, "half.txt", 1000).json()
    put_chunk(signed_in, upload, 0, b"a" * 400)
    response = signed_in.post(upload["complete_url"])
    assert response.status_code == 409
    assert response.json() == {"error": "The upload is incomplete: 400 of 1000 bytes received.", "offset": 400}
    assert Document.objects.count() == 0


def test_a_cancelled_upload_leaves_nothing(signed_in, files):
    upload = start(signed_in, "c.txt", 1000).json()
    put_chunk(signed_in, upload, 0, b"a" * 400)
    assert signed_in.delete(upload["url"]).json() == {"cancelled": True}
    assert signed_in.get(upload["url"]).status_code == 404
    assert UploadSession.objects.count() == 0 and Document.objects.count() == 0 and leftovers(files) == []


def test_abandoned_uploads_are_cleaned_on_the_next_upload_call(signed_in, files):
    old = start(signed_in, "old.txt", 1000).json()
    put_chunk(signed_in, old, 0, b"a" * 10)
    day_ago = timezone.now() - timedelta(hours=25)
    UploadSession.objects.filter(pk=old["id"]).update(created_at=day_ago)
    part = files / "uploads" / f"{old['id']}.part"
    os.utime(part, (day_ago.timestamp(), day_ago.timestamp()))
    orphan = files / "uploads" / "orphan.part"
    orphan.write_bytes(b"x")
    os.utime(orphan, (day_ago.timestamp(), day_ago.timestamp()))
    fresh = start(signed_in, "new.txt", 10).json()
    assert list(UploadSession.objects.values_list("name", flat=True)) == ["new.txt"]
    assert leftovers(files) == [f"uploads/{fresh['id']}.part"]


def test_an_old_session_still_receiving_bytes_is_not_cleaned(signed_in, files):
    old = start(signed_in, "slow.txt", 1000).json()
    UploadSession.objects.filter(pk=old["id"]).update(created_at=timezone.now() - timedelta(hours=30))
    put_chunk(signed_in, old, 0, b"a" * 10)  # touched just now
    start(signed_in, "other.txt", 10)
    assert UploadSession.objects.filter(pk=old["id"]).exists()


# --- refusals -------------------------------------------------------------------------------------------


def test_an_empty_file_is_refused_before_any_byte_moves(signed_in, files):
    response = start(signed_in, "empty.txt", 0)
    assert response.status_code == 400 and response.json()["error"] == "The file is empty."
    assert UploadSession.objects.count() == 0 and leftovers(files) == []


def test_a_file_over_the_limit_is_refused_at_creation(signed_in, files, settings):
    settings.MAX_UPLOAD_BYTES = 1000
    response = start(signed_in, "big.txt", 1001)
    assert response.status_code == 413
    assert response.json()["error"] == "The file is 1,001 bytes, over the limit of 1,000 bytes."
    assert UploadSession.objects.count() == 0 and leftovers(files) == []


def test_bytes_past_the_declared_size_cancel_the_upload_while_receiving(signed_in, files):
    upload = start(signed_in, "liar.txt", 100).json()
    put_chunk(signed_in, upload, 0, b"a" * 60)
    response = put_chunk(signed_in, upload, 60, b"b" * 60)
    assert response.status_code == 413
    assert "More bytes were sent than the declared size of 100" in response.json()["error"]
    assert UploadSession.objects.count() == 0 and Document.objects.count() == 0 and leftovers(files) == []


def test_a_chunk_larger_than_the_chunk_size_is_refused(signed_in, files, settings):
    settings.UPLOAD_CHUNK_BYTES = 1024
    upload = start(signed_in, "c.txt", 5000).json()
    response = put_chunk(signed_in, upload, 0, b"a" * 2000)
    assert response.status_code == 413 and response.json()["chunk_size"] == 1024
    assert signed_in.get(upload["url"]).json()["offset"] == 0


def test_more_files_than_allowed_in_one_batch_are_refused(signed_in, files, settings):
    settings.MAX_FILES_PER_UPLOAD = 3
    batch = [{"name": f"f{i}.txt", "size": 10} for i in range(4)]
    response = signed_in.post("/documents/uploads/", {"files": batch}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "4 files is too many for one upload: at most 3 at a time."
    assert UploadSession.objects.count() == 0 and leftovers(files) == []


def test_a_batch_reports_each_refused_file_and_opens_the_others(signed_in, files):
    batch = [{"name": "ok.txt", "size": 10}, {"name": "empty.txt", "size": 0}]
    uploads = signed_in.post("/documents/uploads/", {"files": batch}, content_type="application/json").json()["uploads"]
    assert uploads[0]["name"] == "ok.txt" and uploads[0]["offset"] == 0 and uploads[0]["chunk_size"] == 8 * 1024 * 1024
    assert uploads[1] == {"name": "empty.txt", "error": "The file is empty.", "status": 400}
    assert UploadSession.objects.count() == 1


def test_a_wrong_announced_sha256_discards_the_upload(signed_in, files):
    upload = start(signed_in, "s.txt", 5, sha256="0" * 64).json()
    put_chunk(signed_in, upload, 0, b"hello")
    response = signed_in.post(upload["complete_url"])
    assert response.status_code == 400 and "does not match the sha256" in response.json()["error"]
    assert UploadSession.objects.count() == 0 and Document.objects.count() == 0 and leftovers(files) == []


def test_file_names_are_reduced_to_their_last_part(signed_in, files):
    result = upload_bytes(signed_in, "../../etc/passwd.txt", b"root\n")
    assert result["document"]["name"] == "passwd.txt"
    assert start(signed_in, "../", 10).json()["error"] == "The file needs a name."


def test_uploads_are_rate_limited(signed_in, files, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "upload": (2, 60)}
    assert start(signed_in, "1.txt", 10).status_code == 201
    assert start(signed_in, "2.txt", 10).status_code == 201
    refused = start(signed_in, "3.txt", 10)
    assert refused.status_code == 429 and "Too many upload requests" in refused.json()["error"]


# --- permissions ----------------------------------------------------------------------------------------


def test_signed_out_requests_are_refused(client, files):
    assert client.get("/documents/").status_code == 302
    assert start(client, "a.txt", 10).status_code == 401


def test_session_requests_need_the_csrf_token(user, files):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert start(strict, "a.txt", 10).status_code == 403
    strict.get("/documents/")
    token = strict.cookies["csrftoken"].value
    assert start(strict, "a.txt", 10, headers={"X-CSRFToken": token}).status_code == 201


def test_another_users_upload_session_is_not_found(client, user, other_user, files):
    client.force_login(user)
    upload = start(client, "mine.txt", 10).json()
    client.force_login(other_user)
    assert client.get(upload["url"]).status_code == 404
    assert put_chunk(client, upload, 0, b"x" * 10).status_code == 404
    assert client.post(upload["complete_url"]).status_code == 404


def test_viewers_can_read_but_not_upload_or_delete(client, user, team, files):
    doc_id = upload_bytes(_login(client, user), "t.txt", b"team text\n")["document"]["id"]
    viewer = make_user("victor")
    Membership.objects.create(team=team, user=viewer, role=Role.VIEWER)
    client.force_login(viewer)
    client.post(f"/teams/{team.pk}/switch/")
    page = client.get("/documents/").content.decode()
    assert "t.txt" in page and 'id="dropzone"' not in page
    assert "Delete" not in page.split("document-table")[1].split("<template")[0]
    refused = start(client, "v.txt", 10)
    assert refused.status_code == 403 and "does not allow uploading" in refused.json()["error"]
    client.post(f"/documents/{doc_id}/delete/")
    assert Document.objects.filter(pk=doc_id).exists()


def _login(client, user):
    client.force_login(user)
    return client


def test_other_teams_documents_are_not_found(client, user, other_user, files):
    client.force_login(user)
    doc_id = upload_bytes(client, "secret.txt", b"secret\n")["document"]["id"]
    client.force_login(other_user)
    assert client.post(f"/documents/{doc_id}/delete/").status_code == 404
    assert client.get(f"/documents/status/?ids={doc_id}").json() == {"documents": []}
    assert "secret.txt" not in client.get("/documents/").content.decode()
    assert Document.objects.filter(pk=doc_id).exists()


# --- deletion -------------------------------------------------------------------------------------------


def test_delete_removes_the_row_the_original_and_the_text(signed_in, files, django_capture_on_commit_callbacks):
    doc_id = upload_bytes(signed_in, "gone.txt", b"to be deleted\n")["document"]["id"]
    document_extract(doc_id)
    assert len(leftovers(files)) == 2
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(f"/documents/{doc_id}/delete/", follow=True)
    assert "Deleted gone.txt." in response.content.decode()
    assert Document.objects.count() == 0 and leftovers(files) == []


def test_extraction_of_a_document_deleted_meanwhile_leaves_nothing(signed_in, files, django_capture_on_commit_callbacks):
    doc_id = upload_bytes(signed_in, "race.txt", b"text\n")["document"]["id"]
    with django_capture_on_commit_callbacks(execute=True):
        signed_in.post(f"/documents/{doc_id}/delete/")
    assert document_extract(doc_id) == "missing"
    assert leftovers(files) == []


# --- size -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_300_mb_upload_streams_in_bounded_memory_and_extracts(signed_in, files):
    """Hundreds of MB through the protocol: neither receiving nor extracting holds the file in memory."""
    import gc
    import tracemalloc

    chunk_size = 8 * 1024 * 1024
    total = 38 * chunk_size  # 304 MiB
    line = b"0123456789 the quick brown fox jumps over the lazy dog, \xc3\xa4\xc3\xb6\xc3\xbc!\n"  # 64 bytes
    block = line * (chunk_size // len(line))
    assert len(block) == chunk_size and total % chunk_size == 0
    digest = hashlib.sha256()
    upload = start(signed_in, "big.txt", total).json()
    tracemalloc.start()
    try:
        for offset in range(0, total, chunk_size):
            digest.update(block)
            assert put_chunk(signed_in, upload, offset, block).status_code == 200
            gc.collect()  # the test client's responses are reference cycles holding the request body
        done = signed_in.post(upload["complete_url"]).json()
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        assert done["document"]["sha256"] == digest.hexdigest()
        assert document_extract(done["document"]["id"]) == "ready"
        _, extract_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The test client holds the chunk it sends, and its request payload copy: a few chunks, never the file.
    assert upload_peak < 4 * chunk_size, upload_peak
    assert extract_peak < 32 * 1024 * 1024, extract_peak
    document = Document.objects.get(pk=done["document"]["id"])
    assert document.size_bytes == total and document.lines == total // len(line)
    assert document.chars == (total // len(line)) * (len(line) - 3)
