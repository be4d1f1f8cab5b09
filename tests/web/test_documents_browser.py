"""The documents page in a real browser (Debian's headless chromium): static/js/upload.js picks
files, uploads them in chunks, survives a dropped connection, and shows extraction by a real
Celery worker as it happens."""

import pytest
from django.core.cache import cache
from django.test import Client

from apps.documents.models import Document
from tests.browser.harness import launch_chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def browser_page(live_server, user):
    client = Client()
    client.force_login(user)
    with launch_chromium() as browser:
        context = browser.new_context()
        context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
        yield context.new_page()


def test_pick_files_upload_in_chunks_through_a_dropped_connection_and_watch_extraction(
    browser_page, live_server, celery_worker, data_dir, settings, tmp_path
):
    from playwright.sync_api import expect

    cache.clear()
    settings.UPLOAD_CHUNK_BYTES = 64 * 1024
    page = browser_page
    notes = tmp_path / "notes.txt"
    notes.write_text("".join(f"line {i} of the notes\n" for i in range(15_000)))  # ~330 kB: 6 chunks
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    dropped = []

    def drop_the_second_chunk_once(route):
        if "offset=65536" in route.request.url and not dropped:
            dropped.append(route.request.url)
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/chunk?offset=*", drop_the_second_chunk_once)
    page.goto(live_server.url + "/documents/")
    page.set_input_files("#file-input", [str(notes), str(empty)])

    empty_item = page.locator(".upload-item", has_text="empty.txt")
    expect(empty_item.locator(".upload-message")).to_have_text("The file is empty.")
    notes_item = page.locator(".upload-item", has_text="notes.txt")
    expect(notes_item.locator(".upload-state")).to_have_text("Ready", timeout=60_000)
    expect(notes_item.locator(".upload-message")).to_contain_text("15,000 lines")
    assert dropped, "the dropped chunk was not exercised"

    document = Document.objects.get()
    assert document.status == "ready" and document.original_path.read_bytes() == notes.read_bytes()
    row = page.locator(f'tr[data-doc-id="{document.pk}"]')
    expect(row.locator('[data-field="lines"]')).to_have_text("15,000")
    expect(row.locator('[data-field="tokens"]')).to_contain_text("≈")
    row.locator(".pick-doc").check()
    expect(page.locator("#ask-selected")).to_have_attribute("href", f"/runs/new/?documents={document.pk}")

    # Uploading the same content again is recognised.
    page.set_input_files("#file-input", [str(notes)])
    expect(page.locator(".upload-item").first.locator(".upload-message")).to_have_text("Already uploaded as notes.txt.")
    assert Document.objects.count() == 1


def test_too_many_files_are_refused_in_the_page(browser_page, live_server, data_dir, settings, tmp_path):
    from playwright.sync_api import expect

    settings.MAX_FILES_PER_UPLOAD = 2
    paths = []
    for i in range(3):
        path = tmp_path / f"f{i}.txt"
        path.write_text(f"file {i}\n")
        paths.append(str(path))
    page = browser_page
    page.goto(live_server.url + "/documents/")
    page.set_input_files("#file-input", paths)
    expect(page.locator("#upload-error")).to_have_text("3 files is too many for one upload: at most 2 at a time.")
    assert page.locator(".upload-item").count() == 0
