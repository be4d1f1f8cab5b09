"""Downloading a document's original upload and its extracted text: the page links, the JSON API,
who may (anyone who may view the team; other teams get a 404), and that files are streamed."""

from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import FileResponse
from django.test import Client

from apps.accounts.models import ApiToken
from apps.documents.models import Document, DocumentStatus
from apps.documents.services import document_extract
from apps.teams.models import Membership, Role
from tests.browser.harness import launch_chromium
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

NOTES = b"# Notes\n\nThe harbour opens at six.\n"


@pytest.fixture
def files(data_dir):
    cache.clear()
    return data_dir


def token_client(user) -> Client:
    return Client(enforce_csrf_checks=True, headers={"Authorization": f"Token {ApiToken.issue(user)[1]}"})


@pytest.fixture
def api(user, files) -> Client:
    return token_client(user)


def upload(api: Client, name: str, data: bytes, extract: bool = True) -> dict:
    response = api.post("/api/documents/", {"file": SimpleUploadedFile(name, data)})
    assert response.status_code == 201, response.json()
    doc_id = response.json()["document"]["id"]
    if extract:
        document_extract(doc_id)
    return api.get(f"/api/documents/{doc_id}/").json()


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_the_api_json_carries_the_download_urls(api, settings):
    settings.STREAM_TEXT_EXTRACTION = False  # so the document waits for extraction
    doc = upload(api, "notes.md", NOTES, extract=False)
    assert doc["file_url"] == f"/api/documents/{doc['id']}/file"
    assert doc["text_url"] is None  # not extracted yet
    document_extract(doc["id"])
    doc = api.get(doc["url"]).json()
    assert doc["text_url"] == f"/api/documents/{doc['id']}/text"
    listed = api.get("/api/documents/").json()["documents"]
    assert listed[0]["file_url"] == doc["file_url"] and listed[0]["text_url"] == doc["text_url"]


def test_the_original_file_downloads_with_its_name(api):
    doc = upload(api, "notes.md", NOTES)
    response = api.get(doc["file_url"])
    assert response.status_code == 200
    assert isinstance(response, FileResponse) and response.streaming
    assert response["Content-Disposition"] == 'attachment; filename="notes.md"'
    assert body(response) == NOTES
    assert api.get(doc["file_url"] + "/").status_code == 200  # with or without the trailing slash


def test_the_extracted_text_downloads_as_utf8_text(api):
    latin1 = "Café crème, naïve façade.\n".encode("latin-1")
    doc = upload(api, "menu.csv", latin1)
    response = api.get(doc["text_url"])
    assert response.status_code == 200 and isinstance(response, FileResponse)
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="menu.txt"'
    assert body(response).decode("utf-8") == "Café crème, naïve façade.\n"
    original = api.get(doc["file_url"])
    assert body(original) == latin1  # the original is the bytes as uploaded, not the text


def test_a_non_ascii_file_name_is_encoded_for_the_header(api):
    doc = upload(api, "Überblick 2024.txt", b"plain text\n")
    disposition = api.get(doc["file_url"])["Content-Disposition"]
    assert disposition == "attachment; filename*=utf-8''%C3%9Cberblick%202024.txt"
    assert api.get(doc["text_url"])["Content-Disposition"] == "attachment; filename*=utf-8''%C3%9Cberblick%202024.txt"


def test_a_large_file_is_streamed_in_blocks_not_read_whole(api, monkeypatch):
    data = b"0123456789abcdef\n" * 40_000  # 680 kB
    doc = upload(api, "big.txt", data)

    def refuse(*args, **kwargs):
        raise AssertionError("the download read the whole file")

    monkeypatch.setattr("pathlib.Path.read_bytes", refuse)
    monkeypatch.setattr("pathlib.Path.read_text", refuse)
    for url in (doc["file_url"], doc["text_url"]):
        response = api.get(url)
        chunks = list(response.streaming_content)
        assert len(chunks) > 10 and max(len(c) for c in chunks) < len(data)
        assert b"".join(chunks) == data
        assert response["Content-Length"] == str(len(data))


def test_the_text_is_409_while_extracting_and_404_after_a_failed_extraction(api, settings):
    settings.STREAM_TEXT_EXTRACTION = False  # so the document waits for extraction
    doc = upload(api, "notes.md", NOTES, extract=False)
    text_url = f"/api/documents/{doc['id']}/text"
    response = api.get(text_url)
    assert response.status_code == 409 and "still being extracted" in response.json()["error"]
    assert api.get(doc["file_url"]).status_code == 200  # the original is there from the start
    broken = upload(api, "broken.pdf", b"%PDF-1.4 not really a pdf", extract=True)
    assert broken["status"] == "failed" and broken["file_url"] is None and broken["text_url"] is None
    for kind in ("file", "text"):
        response = api.get(f"/api/documents/{broken['id']}/{kind}")
        assert response.status_code == 404 and response.json()["error"]


def test_a_stored_path_outside_media_is_never_served(api, files):
    doc = upload(api, "notes.md", NOTES)
    secret = files / "secret.txt"
    secret.write_text("not for download")
    Document.objects.filter(pk=doc["id"]).update(original_file="../secret.txt", text_file=str(secret))
    assert api.get(doc["file_url"]).status_code == 404
    assert api.get(doc["text_url"]).status_code == 404


def test_viewers_may_download_other_teams_and_strangers_may_not(api, user, team, other_user, files):
    doc = upload(api, "notes.md", NOTES)
    viewer = make_user("victor")
    Membership.objects.create(team=team, user=viewer, role=Role.VIEWER)
    as_viewer = token_client(viewer)
    assert body(as_viewer.get(doc["file_url"])) == NOTES
    assert as_viewer.get(doc["text_url"]).status_code == 200
    outsider = token_client(other_user)
    for url in (doc["file_url"], doc["text_url"]):
        response = outsider.get(url)
        assert response.status_code == 404 and response.json() == {"error": "No such document."}
        assert Client().get(url).status_code == 401
    page = Client()
    page.force_login(other_user)
    for kind in ("file", "text"):
        assert page.get(f"/documents/{doc['id']}/{kind}").status_code == 404
        assert Client().get(f"/documents/{doc['id']}/{kind}").status_code == 302  # to sign in
    assert outsider.get("/api/documents/00000000-0000-0000-0000-000000000000/file").status_code == 404


def test_the_documents_page_links_both_downloads(api, user, files):
    ready = upload(api, "notes.md", NOTES)
    waiting = upload(api, "later.html", b"<h1>Later</h1>", extract=False)  # HTML is extracted after upload
    page = Client()
    page.force_login(user)
    html = page.get("/documents/").content.decode()
    assert f'href="/documents/{ready["id"]}/file"' in html and f'href="/documents/{ready["id"]}/text"' in html
    assert f'href="/documents/{waiting["id"]}/file"' in html
    text_link = html.split(f'href="/documents/{waiting["id"]}/text"')[1].split(">")[0]
    assert "hidden" in text_link  # shown by the page's script once the text is ready
    response = page.get(f"/documents/{ready['id']}/file")
    assert response.status_code == 200 and body(response) == NOTES
    assert response["Content-Disposition"] == 'attachment; filename="notes.md"'
    response = page.get(f"/documents/{ready['id']}/text")
    assert response.status_code == 200 and body(response) == NOTES
    assert page.get(f"/documents/{waiting['id']}/text").status_code == 409
    assert Document.objects.get(pk=waiting["id"]).status == DocumentStatus.EXTRACTING


# --- in a real browser: rows the upload script adds get working download links ---------------------


@pytest.fixture
def browser_page(live_server, user):
    client = Client()
    client.force_login(user)
    with launch_chromium() as browser:
        context = browser.new_context(accept_downloads=True)
        context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
        yield context.new_page()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_uploaded_row_gets_its_download_links_once_ready(browser_page, live_server, celery_worker, files, tmp_path):
    from playwright.sync_api import expect

    page = browser_page
    notes = tmp_path / "field notes.md"
    notes.write_bytes(NOTES)
    page.goto(live_server.url + "/documents/")
    page.set_input_files("#file-input", [str(notes)])
    expect(page.locator(".upload-item", has_text="field notes.md").locator(".upload-state")).to_have_text(
        "Ready", timeout=60_000)
    document = Document.objects.get()
    row = page.locator(f'tr[data-doc-id="{document.pk}"]')
    expect(row.locator("a.download-text")).to_be_visible()
    expect(row.locator("a.download-file")).to_have_attribute("href", f"/documents/{document.pk}/file")
    for link, filename in (("a.download-file", "field notes.md"), ("a.download-text", "field notes.txt")):
        with page.expect_download() as info:
            row.locator(link).click()
        download = info.value
        assert download.suggested_filename == filename
        assert Path(download.path()).read_bytes() == NOTES
