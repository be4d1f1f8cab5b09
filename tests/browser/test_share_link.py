"""Share a finished run by link through the UI, then open the link in a fresh signed-out browser.

The real app runs as `manage.py serve` on its own data directory; a user, a finished run (events
persisted the way the worker's sink does), a second private run and an unrelated document are
made with `manage.py shell`. The signed-out browser sees the trajectory and nothing else; after
the link is revoked it sees a "no longer works" page.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .harness import launch_chromium

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
PASSWORD = "correct horse battery staple"

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SETUP = r"""
import json, time
from django.contrib.auth.models import User
from apps.runs.models import RunStatus
from apps.runs.sink import persist_events
from worker.engine.events import Event
from tests.web.runs_factories import make_document, make_run

alice = User.objects.create_user("alice", "alice@example.com", "correct horse battery staple")
team = alice.teams.get()
doc = make_document(team, text="Clause 7: the fee is 42 euros.\n" * 20, name="contract.txt", user=alice)
secret_doc = make_document(team, text="Unrelated and private.\n", name="private-notes.txt", user=alice)
run = make_run(team, alice, [doc], status=RunStatus.RUNNING, question="What is the fee in clause 7?")
other = make_run(team, alice, [secret_doc], status=RunStatus.SUCCEEDED, question="Private question nobody else sees?")
t = time.time()
totals = {"cost_usd": 0.0012, "cost_unknown_calls": 0, "prompt_tokens": 900, "completion_tokens": 60,
          "iterations": 2, "subcalls": 1, "max_depth_reached": 1, "elapsed_s": 3.2}
events = [
    ("run.started", {"question": run.question, "mode": "rlm", "root_model": "offline/heuristic",
                     "sub_model": "offline/heuristic", "limits": {}, "documents": [{"name": "contract.txt", "chars": doc.chars}],
                     "offline": True}),
    ("root.turn", {"node_id": None, "depth": 0, "iteration": 1, "content": "Let me look.\n```repl\nprint(context[:40])\n```",
                   "prompt_tokens": 400, "completion_tokens": 20, "cost_usd": 0.0004, "latency_s": 0.5,
                   "model": "offline/heuristic", "forced": False}),
    ("cell.started", {"cell_id": "c1", "node_id": None, "depth": 0, "iteration": 1, "index": 0,
                      "code": "print(context[:40])\nanswer = llm_query('fee?')"}),
    ("subcall.started", {"node_id": "n1", "parent_id": None, "cell_id": "c1", "depth": 1, "kind": "llm",
                         "model": "offline/heuristic", "prompt": "fee?", "prompt_chars": 4,
                         "ranges": [{"doc": 0, "start": 0, "end": 40}], "batch_id": None, "batch_index": None}),
    ("subcall.finished", {"node_id": "n1", "response": "42 euros", "response_chars": 8, "prompt_tokens": 100,
                          "completion_tokens": 10, "cost_usd": 0.0002, "latency_s": 0.2, "error": None, "attempts": 1}),
    ("cell.finished", {"cell_id": "c1", "node_id": None, "depth": 0, "stdout": "Clause 7: the fee is 42 euros.",
                       "stdout_chars": 30, "truncated": False, "error": None, "duration_s": 0.1, "killed": False,
                       "state_note": None}),
    ("root.turn", {"node_id": None, "depth": 0, "iteration": 2, "content": "FINAL(42 euros)", "prompt_tokens": 400,
                   "completion_tokens": 30, "cost_usd": 0.0006, "latency_s": 0.4, "model": "offline/heuristic",
                   "forced": False}),
    ("cost.updated", {"totals": totals}),
    ("final.answer", {"answer": "The fee is 42 euros.", "source": "FINAL", "node_id": None}),
    ("run.finished", {"status": "succeeded", "failure_reason": None, "stop_reason": "final", "totals": totals,
                      "forced_final": False}),
]
persist_events(run.pk, [Event(i + 1, kind, t + i, data) for i, (kind, data) in enumerate(events)])
print("IDS=" + json.dumps({"run": str(run.pk), "other": str(other.pk), "doc": str(doc.pk), "secret_doc": str(secret_doc.pk)}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The real app on a free port with its own data directory, and the ids made for the test."""
    data = tmp_path_factory.mktemp("share-app")
    env = {**os.environ, "RLMWEB_DATA_DIR": str(data), "RLMWEB_EMBEDDED_WORKER": "0", "RLMWEB_DEBUG": "1"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"],
                   cwd=REPO, env=env, check=True, timeout=300)
    out = subprocess.run([*manage, "shell", "-c", SETUP], cwd=REPO, env=env, check=True, timeout=300,
                         capture_output=True, text=True).stdout
    ids = json.loads(next(line for line in out.splitlines() if line.startswith("IDS="))[4:])
    port = free_port()
    log = (data / "serve.log").open("wb")
    server = subprocess.Popen([*manage, "serve", "--port", str(port), "--no-worker"], cwd=REPO, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/accounts/login/", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("the app did not start: " + (data / "serve.log").read_text()) from None
            time.sleep(0.3)
    try:
        yield base, ids
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    with launch_chromium() as browser:
        yield browser


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_share_by_link_and_open_signed_out(app, browser):
    base, ids = app
    owner = browser.new_context(viewport={"width": 1280, "height": 900})
    page = owner.new_page()
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")

    # Share through the UI: the run's share page, a 7-day link without document text.
    page.goto(f"{base}/s/runs/{ids['run']}/")
    page.select_option("#share-expiry", "7")
    page.click("#share-create-button")
    url = page.text_content("#share-url").strip()
    assert url.startswith(f"{base}/s/") and len(url.rstrip("/").rsplit("/", 1)[1]) == 43
    shot(page, "share-link-created")

    # A fresh, signed-out browser context opens the link.
    stranger = browser.new_context(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    public = stranger.new_page()
    public.on("pageerror", lambda exc: errors.append(str(exc)))
    response = public.goto(url)
    assert response.status == 200
    public.wait_for_selector("#explorer[data-ready='1']", timeout=60_000)
    public.wait_for_selector("#cell-c1", timeout=30_000)
    text = public.inner_text("body")
    assert "What is the fee in clause 7?" in text and "42 euros" in text
    assert "Private question" not in text and "private-notes.txt" not in text and "alice@example.com" not in text
    assert "Sign out" not in text  # nobody is signed in
    shot(public, "share-link-signed-out")
    assert not errors, errors

    # Nothing else is reachable from the link holder's browser.
    request = stranger.request
    token = url.rstrip("/").rsplit("/", 1)[1]
    assert request.get(f"{base}/runs/{ids['other']}/", max_redirects=0).status == 302
    assert request.get(f"{base}/runs/{ids['run']}/", max_redirects=0).status == 302
    assert request.get(f"{base}/api/runs/{ids['other']}/").status == 401
    assert request.get(f"{base}/api/documents/{ids['secret_doc']}/").status == 401
    assert request.get(f"{base}/api/comments/runs/{ids['run']}/").status == 401
    assert request.get(f"{base}/s/{token}/documents/0/text").status == 404  # the link does not show text
    events = request.get(f"{base}/s/{token}/events.json").json()
    assert events["status"] == "succeeded" and len(events["events"]) == 10
    assert ids["other"] not in json.dumps(events) and ids["doc"] not in json.dumps(events)

    # Revoked: the link stops working.
    page.goto(f"{base}/s/runs/{ids['run']}/")
    page.click("#share-links button.danger")
    page.wait_for_selector(".share-state:text('revoked')")
    gone = public.goto(url)
    assert gone.status == 410
    assert "no longer works" in public.inner_text("body")
    shot(public, "share-link-revoked")
    owner.close()
    stranger.close()


def test_comments_script_on_the_run_page(app, browser):
    """static/js/comments.js on the signed-in run page: the panel, a comment on a cell through its
    affordance (added to explorer elements rendered after load), and nothing on a share page."""
    base, ids = app
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/runs/{ids['run']}/")
    assert page.query_selector("script[src$='js/comments.js']")
    assert page.query_selector("#feedback") and page.query_selector("#share-panel")
    page.wait_for_selector("#explorer[data-ready='1']", timeout=60_000)
    page.wait_for_selector("#comments h2")
    page.click("#cell-c1 > .comment-affordance")
    page.fill("#cell-c1 .comment-thread textarea", "Here it reads the clause.")
    page.click("#cell-c1 .comment-thread button[type=submit]")
    page.wait_for_selector("#cell-c1 > .comment-affordance:text('1 comment')")
    page.wait_for_selector("#comments .comment-body:text('Here it reads the clause.')")
    # A sub-call: its row in the tree has the affordance; it opens the thread in the detail pane.
    page.click("[role=treeitem]#node-n1 > .comment-affordance")
    page.wait_for_selector("#node-detail[data-item='n1'] > .comment-thread textarea", timeout=30_000)
    page.fill("#node-detail .comment-thread textarea", "The sub-call got it right.")
    page.click("#node-detail .comment-thread button[type=submit]")
    page.wait_for_selector("#node-detail > .comment-affordance:text('1 comment')")
    page.wait_for_selector("#comments a[href='#node-n1']")
    shot(page, "comments-on-run-page")
    assert not errors, errors

    page.goto(f"{base}/s/runs/{ids['run']}/")
    page.click("#share-create-button")
    url = page.text_content("#share-url").strip()
    page.goto(url)
    page.add_script_tag(url=f"{base}/static/js/comments.js", type="module")
    page.wait_for_selector("#explorer[data-ready='1']", timeout=60_000)
    assert page.query_selector("#comments") is None and page.query_selector(".comment-affordance") is None
    assert "Here it reads the clause." not in page.inner_text("body")
    context.close()
