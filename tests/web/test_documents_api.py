"""The documents JSON API with token authentication: list, single-request upload, chunked upload,
status, delete; and one upload that goes through a real Celery worker."""

import time

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.accounts.models import ApiToken
from apps.documents.models import Document, UploadSession
from apps.documents.services import document_extract

pytestmark = pytest.mark.django_db


@pytest.fixture
def files(data_dir):
    cache.clear()
    return data_dir


@pytest.fixture
def api(user, files) -> Client:
    """A client that authenticates every request with the user's API token (no session, no CSRF)."""
    _, raw = ApiToken.issue(user)
    return Client(enforce_csrf_checks=True, headers={"Authorization": f"Token {raw}"})


def leftovers(data_dir):
    return sorted(str(p.relative_to(data_dir)) for d in ("uploads", "media") for p in (data_dir / d).rglob("*") if p.is_file())


def test_a_token_is_required(client, files):
    assert client.get("/api/documents/").status_code == 401
    bad = Client(headers={"Authorization": "Token nope"})
    assert bad.get("/api/documents/").json() == {"error": "Invalid API token."}


def test_single_request_upload_then_status_then_list(api, team, files):
    response = api.post("/api/documents/", {"file": SimpleUploadedFile("notes.md", b"# Notes\n\nSome text.\n")})
    assert response.status_code == 201
    body = response.json()
    assert body["created"] is True and body["document"]["status"] == "ready"  # text decoded while it arrived
    doc_id = body["document"]["id"]
    assert document_extract(doc_id) == "ready"
    detail = api.get(f"/api/documents/{doc_id}/").json()
    assert (detail["status"], detail["chars"], detail["lines"], detail["tokens_estimate"]) == ("ready", 20, 3, 5)
    assert detail["preview"] == "# Notes\n\nSome text.\n" and detail["format"] == "md"
    listed = api.get("/api/documents/").json()["documents"]
    assert [d["id"] for d in listed] == [doc_id]
    assert not list((files / "uploads").iterdir())


def test_single_request_upload_of_several_files_reports_each(api, files):
    response = api.post(
        "/api/documents/",
        {"file": [SimpleUploadedFile("a.txt", b"alpha\n"), SimpleUploadedFile("empty.txt", b""), SimpleUploadedFile("b.txt", b"alpha\n")]},
    )
    assert response.status_code == 201
    results = response.json()["results"]
    assert results[0]["created"] is True
    assert results[1] == {"name": "empty.txt", "error": "The file is empty.", "status": 400}
    assert results[2]["created"] is False and results[2]["message"] == "Already uploaded as a.txt."
    assert Document.objects.count() == 1 and len(leftovers(files)) == 2  # the original and its text


def test_single_request_upload_refuses_an_empty_file(api, files):
    response = api.post("/api/documents/", {"file": SimpleUploadedFile("e.txt", b"")})
    assert response.status_code == 400 and response.json() == {"error": "The file is empty."}
    assert Document.objects.count() == 0 and leftovers(files) == []


def test_single_request_upload_stops_receiving_past_the_size_limit(api, files, settings):
    settings.MAX_UPLOAD_BYTES = 100_000
    big = SimpleUploadedFile("big.txt", b"x" * 4_000_000)
    response = api.post("/api/documents/", {"file": big})  # the request is over 20 files × 100 kB: refused unread
    assert response.status_code == 413
    assert response.json()["error"] == "The request is larger than 2.9 MB; nothing was stored."
    settings.MAX_FILES_PER_UPLOAD = 100  # now the request is under the overall limit: the handler stops it
    response = api.post("/api/documents/", {"file": SimpleUploadedFile("big.txt", b"x" * 3_000_000)})
    assert response.status_code == 413 and response.json()["error"] == "big.txt is over the limit of 97.7 KB."
    assert Document.objects.count() == 0 and leftovers(files) == []


def test_single_request_upload_refuses_too_many_files(api, files, settings):
    settings.MAX_FILES_PER_UPLOAD = 2
    many = [SimpleUploadedFile(f"{i}.txt", f"file {i}\n".encode()) for i in range(3)]
    response = api.post("/api/documents/", {"file": many})
    assert response.status_code == 400
    assert response.json()["error"] == "Too many files in one upload: at most 2 at a time."
    assert Document.objects.count() == 0 and leftovers(files) == []


def test_single_request_upload_needs_a_file(api, files):
    assert api.post("/api/documents/", {"other": "x"}).json() == {"error": "No file was sent."}
    assert api.post("/api/documents/", {}, content_type="application/json").status_code == 400


def test_chunked_upload_through_the_api_prefix(api, files):
    data = b"chunked via the api\n" * 1000
    upload = api.post("/api/documents/uploads/", {"name": "c.txt", "size": len(data)}, content_type="application/json").json()
    assert upload["chunk_url"] == f"/api/documents/uploads/{upload['id']}/chunk"
    for offset in range(0, len(data), 7000):
        api.put(f"{upload['chunk_url']}?offset={offset}", data[offset : offset + 7000], content_type="application/octet-stream")
    assert api.get(upload["url"]).json()["offset"] == len(data)
    done = api.post(upload["complete_url"])
    assert done.status_code == 201 and done.json()["document"]["size_bytes"] == len(data)
    assert UploadSession.objects.get().document_id is not None  # kept a day, so a repeated complete is answered


@pytest.mark.parametrize("spec", [{"name": 5, "size": 3}, {"name": ["a.txt"], "size": 3},
                                  {"name": "a.txt", "size": 3, "sha256": 12}])
def test_chunked_upload_refuses_names_and_hashes_that_are_not_strings(api, files, spec):
    response = api.post("/api/documents/uploads/", spec, content_type="application/json")
    assert response.status_code == 400 and "must be" in response.json()["error"]
    batch = api.post("/api/documents/uploads/", {"files": [spec]}, content_type="application/json").json()
    assert batch["uploads"][0]["status"] == 400 and "id" not in batch["uploads"][0]
    assert not UploadSession.objects.exists()


def test_single_request_uploads_are_rate_limited(api, files, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "upload": (2, 60)}
    three = [SimpleUploadedFile(f"{i}.txt", f"file {i}\n".encode()) for i in range(3)]
    response = api.post("/api/documents/", {"file": three})
    assert response.status_code == 429 and "Too many upload requests" in response.json()["error"]
    assert Document.objects.count() == 0 and leftovers(files) == []


def test_delete_through_the_api(api, files, django_capture_on_commit_callbacks):
    doc_id = api.post("/api/documents/", {"file": SimpleUploadedFile("d.txt", b"delete me\n")}).json()["document"]["id"]
    document_extract(doc_id)
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/documents/{doc_id}/").json() == {"deleted": True}
    assert api.get(f"/api/documents/{doc_id}/").status_code == 404
    assert leftovers(files) == []


def test_other_teams_documents_are_not_found_through_the_api(api, other_user, files):
    doc_id = api.post("/api/documents/", {"file": SimpleUploadedFile("mine.txt", b"mine\n")}).json()["document"]["id"]
    _, raw = ApiToken.issue(other_user)
    stranger = Client(headers={"Authorization": f"Token {raw}"})
    assert stranger.get(f"/api/documents/{doc_id}/").json() == {"error": "No such document."}
    assert stranger.delete(f"/api/documents/{doc_id}/").status_code == 404
    assert stranger.get("/api/documents/").json() == {"documents": []}
    assert stranger.get(f"/api/documents/?team={Document.objects.get().team_id}").status_code == 404
    assert Document.objects.filter(pk=doc_id).exists()


def test_malformed_ids_are_not_found(api, files):
    assert api.get("/api/documents/12/").status_code == 404
    assert api.get("/api/documents/uploads/not-a-uuid/").status_code == 404


@pytest.mark.slow
def test_upload_is_extracted_by_a_real_celery_worker(celery_worker, user, data_dir):
    """The whole path: chunked upload, on_commit enqueue through the broker, a worker extracts."""
    cache.clear()
    _, raw = ApiToken.issue(user)
    api = Client(headers={"Authorization": f"Token {raw}"})
    data = "".join(f"row {i}, value {i * i}\n" for i in range(50_000)).encode()
    upload = api.post("/api/documents/uploads/", {"name": "rows.csv", "size": len(data)}, content_type="application/json").json()
    for offset in range(0, len(data), 256 * 1024):
        api.put(f"{upload['chunk_url']}?offset={offset}", data[offset : offset + 256 * 1024], content_type="application/octet-stream")
    doc_id = api.post(upload["complete_url"]).json()["document"]["id"]
    deadline = time.monotonic() + 60
    while (detail := api.get(f"/api/documents/{doc_id}/").json())["status"] == "extracting":
        assert time.monotonic() < deadline, "the worker did not extract the document within 60 s"
        time.sleep(0.2)
    assert detail["status"] == "ready", detail
    assert (detail["chars"], detail["lines"]) == (len(data), 50_000)
    assert Document.objects.get(pk=doc_id).text_path.read_bytes() == data
