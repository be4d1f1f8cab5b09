"""The app's pages in headless chromium against pytest-django's live server: every main page fits a
390 × 844 phone without horizontal scrolling (and a desktop window), the top bar names each page
once, and the ask form warns before a direct run that cannot fit the model's window."""

import pytest
from django.test import Client
from playwright.sync_api import expect

from apps.runs.sink import persist_events
from tests.web.runs_factories import make_document, make_run
from worker.engine.events import Event

from .conftest import screenshot
from .synthetic import make_trajectory

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
SMALL_WINDOW_MODEL = {"model": "test/small-window", "label": "Small window", "context_window": 1000}


@pytest.fixture
def site(live_server, user, team, data_dir, settings):
    """Pages with content: two documents (one with a very long line), a finished run with a real
    trajectory and a queued one; a model with a 1,000-token window."""
    settings.RLMWEB_MODELS = [*settings.RLMWEB_MODELS, SMALL_WINDOW_MODEL]
    doc = make_document(team, user=user, name="annual-report-with-a-rather-long-file-name-2024.txt",
                        text="x" * 12_000 + "\n")
    make_document(team, user=user, name="notes.txt")
    data = make_trajectory(60)
    first_cell = next(e for e in data["events"] if e["type"] == "cell.started")
    first_cell["data"]["code"] += "pattern = '" + "|".join(f"keyword{i}" for i in range(80)) + "'\n"  # one long line
    finished = make_run(team, user, [doc], status="succeeded", question=data["events"][0]["data"]["question"])
    persist_events(finished.pk, [Event(e["seq"], e["type"], e["ts"], e["data"]) for e in data["events"]])
    queued = make_run(team, user, [doc], question="A queued question " + "word " * 40)
    client = Client()
    client.force_login(user)
    return {"url": live_server.url, "cookie": client.cookies["sessionid"].value, "doc": doc,
            "finished": finished, "queued": queued}


@pytest.fixture
def open_page(chromium, site):
    contexts = []

    def open_(path: str, viewport: dict):
        context = chromium.new_context(viewport=viewport)
        contexts.append(context)
        context.add_cookies([{"name": "sessionid", "value": site["cookie"], "url": site["url"]}])
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.js_errors = errors
        page.goto(site["url"] + path)
        return page

    yield open_
    for context in contexts:
        context.close()


def main_pages(site) -> list[str]:
    finished, queued = site["finished"].pk, site["queued"].pk
    return ["/", "/documents/", "/runs/", "/runs/new/", f"/runs/{finished}/", f"/runs/{queued}/",
            f"/runs/compare/?a={finished}&b={queued}", "/teams/", "/accounts/tokens/"]


def wait_for_trajectory(page):
    """The explorer mounted and every event of the finished run applied (polled from events.json)."""
    page.wait_for_selector("#explorer[data-ready='1'][data-status='succeeded']", timeout=30_000)
    page.wait_for_selector("#explorer .nb-cell")
    page.wait_for_timeout(300)  # charts redraw after the last batch


def overflow(page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_main_pages_have_no_horizontal_overflow(open_page, site, viewport):
    for path in main_pages(site):
        page = open_page(path, viewport)
        if path == f"/runs/{site['finished'].pk}/":
            wait_for_trajectory(page)
        assert overflow(page) <= 0, f"{path} is {overflow(page)} px wider than the {viewport['width']} px window"
        assert not page.js_errors, f"{path}: {page.js_errors}"


def test_explorer_screenshots_and_top_bar_names_each_page_once(open_page, site):
    for viewport, name in ((DESKTOP, "explorer-desktop"), (PHONE, "explorer-phone")):
        page = open_page(f"/runs/{site['finished'].pk}/", viewport)
        wait_for_trajectory(page)
        screenshot(page, name)
        # The run tree and a sub-call's details.
        page.evaluate("location.hash = '#node-n20'")
        expect(page.locator("#node-detail")).to_have_attribute("data-item", "n20")
        page.locator("#tree-card").scroll_into_view_if_needed()
        screenshot(page, f"{name}-tree")
    for path in ("/runs/", "/runs/new/", f"/runs/compare/?a={site['finished'].pk}&b={site['queued'].pk}"):
        page = open_page(path, DESKTOP)
        links = page.locator(".topbar a").evaluate_all("els => els.map(e => e.textContent.trim())")
        assert links.count("Runs") == 1 and links.count("Documents") == 1, (path, links)


def test_the_ask_form_warns_before_a_direct_run_too_large_for_the_window(open_page, site):
    page = open_page("/runs/new/", DESKTOP)
    warning = page.locator("#direct-warning")
    page.check(f"#doc-{site['doc'].pk}")
    page.check('input[name="mode"][value="direct"]')
    expect(warning).to_be_hidden()  # the offline model has no window to exceed
    page.select_option("#id_root_model", "test/small-window")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("about 3,001 tokens (12,001 characters), more than the 1,000-token window")
    page.fill("textarea[name='question']", "What is in it?")
    page.click("#ask-form button[type=submit]")
    expect(warning).to_contain_text("Press the button again")
    assert page.url.endswith("/runs/new/")  # stopped once
    page.check('input[name="mode"][value="rlm"]')
    expect(warning).to_be_hidden()


def test_opening_a_cells_comment_thread_focuses_its_comment_box(open_page, site):
    page = open_page(f"/runs/{site['finished'].pk}/", DESKTOP)
    wait_for_trajectory(page)
    page.locator("#cell-c1 > .comment-affordance").click()
    expect(page.locator("#cell-c1 > .comment-thread textarea")).to_be_focused()


def test_a_queued_run_shows_its_place_in_the_queue(open_page, site):
    page = open_page(f"/runs/{site['queued'].pk}/", PHONE)
    page.wait_for_selector("#explorer[data-ready='1']")
    expect(page.locator('#explorer [data-field="queue"]')).to_contain_text("Queued: next in line for a worker")
