"""End to end in headless chromium against the real app (`manage.py serve`: uvicorn, websockets,
embedded Celery worker, SQLite in a fresh data directory): sign in, upload a generated document
through the upload page, ask (offline root; sub-calls through litellm to the simulated provider on
127.0.0.1, answering extractively after SUB_LATENCY_S, so the run lasts long enough to be watched),
see cells and sub-call nodes arrive while the run is running, reload mid-run and drop the socket,
and find every event exactly once. Screenshots go to test-artifacts/."""

import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from worker.engine.offline import extract_answer
from worker.simulated import SimulatedProvider

from .conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
USERNAME = "viewer"
PASSWORD = "a long enough test password 42"
QUESTION = "What is the launch code for project Heron?"
NEEDLE = "The launch code for project Heron is AMBER-7742."
SUB_MODEL = "openai/sim-sub"
# The offline root fans out 24 sub-calls, 16 at a time: two waves, about 8 s of sub-calls.
SUB_LATENCY_S = 4.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _manage(env, *args, timeout=120):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def sub_provider():
    with SimulatedProvider(root_model="unused", sub_reply=extract_answer, latency_s=SUB_LATENCY_S) as sp:
        yield sp


@pytest.fixture(scope="module")
def app_server(tmp_path_factory, sub_provider):
    """The real app on a free port, with a migrated database and one user."""
    data_dir = tmp_path_factory.mktemp("rlmweb-e2e")
    # Priced like a small hosted model: a model of unknown price is refused under a cost cap (#21).
    models = [{"model": SUB_MODEL, "label": "Simulated sub model", "api_base": sub_provider.base_url,
               "api_key_env": "RLMWEB_E2E_SIM_KEY", "input_cost_per_token": 1.5e-7,
               "output_cost_per_token": 6e-7}]
    env = {**os.environ, "RLMWEB_DATA_DIR": str(data_dir), "DJANGO_ALLOW_ASYNC_UNSAFE": "",
           "RLMWEB_MODELS_JSON": json.dumps(models), "RLMWEB_E2E_SIM_KEY": "sim-key"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    _manage(env, "migrate", "--noinput")
    _manage(env, "shell", "-c",
            "from django.contrib.auth.models import User; "
            f"User.objects.create_user({USERNAME!r}, 'viewer@example.com', {PASSWORD!r})")
    port = _free_port()
    log = (data_dir / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError((data_dir / "server.log").read_text()) from None
            time.sleep(0.2)
    else:
        proc.terminate()
        raise RuntimeError("the server did not start listening within 60 s")
    try:
        yield base, data_dir
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _document(path: Path, size: int = 3_000_000) -> Path:
    """A few MB of status lines that mention the launch and the project (so the offline model's
    filter finds many windows and fans out), with the answer stated once, two-thirds in."""
    rng = random.Random(3)
    teams = ["alpha", "bravo", "delta", "orion", "vega", "lyra"]
    lines, total, placed = [], 0, False
    i = 0
    while total < size:
        if not placed and total > size * 2 // 3:
            line = NEEDLE
            placed = True
        else:
            line = (f"Status {i}: the {rng.choice(teams)} team reviewed the launch checklist for project "
                    f"{rng.choice(teams).title()} and filed report {rng.randint(1000, 9999)}.")
        lines.append(line)
        total += len(line) + 1
        i += 1
    path.write_text("\n".join(lines) + "\n")
    return path


def _events(page, run_url: str) -> list[dict]:
    """Every event of the run from /events.json, page by page."""
    events, since = [], 0
    while True:
        body = page.request.get(f"{run_url}events.json?since={since}&limit=5000").json()
        events += body["events"]
        if not body["events"] or not body.get("more"):
            return events
        since = body["events"][-1]["seq"]


def _assert_dom_matches(page, events: list[dict]):
    """The page holds each event once, in order, and shows each cell and node once."""
    seqs = page.evaluate("window.RLMExplorer.current.model.seqs")
    assert seqs == [e["seq"] for e in events] == list(range(1, len(events) + 1))
    cells = page.locator(".nb-cell").evaluate_all("els => els.map(e => e.dataset.cellId)")
    assert sorted(cells) == sorted(e["data"]["cell_id"] for e in events if e["type"] == "cell.started")
    nodes = page.evaluate("[...window.RLMExplorer.current.model.nodes.keys()]")
    assert sorted(nodes) == sorted(e["data"]["node_id"] for e in events if e["type"] == "subcall.started")
    assert page.locator("#explorer").get_attribute("data-nodes") == str(len(nodes))


def test_upload_ask_watch_live_reload_and_reconnect(chromium, app_server, sub_provider, tmp_path):
    base, _ = app_server
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        # Sign in through the login page.
        page.goto(f"{base}/accounts/login/")
        page.fill("#id_username", USERNAME)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator(".account")).to_contain_text(USERNAME)

        # Upload a generated document through the upload UI and wait for extraction.
        doc = _document(tmp_path / "heron-status.txt")
        page.goto(f"{base}/documents/")
        page.set_input_files("#file-input", str(doc))
        item = page.locator(".upload-item", has_text="heron-status.txt")
        expect(item.locator(".upload-state")).to_have_text("Ready", timeout=120_000)
        screenshot(page, "e2e-1-uploaded")

        # Ask with the offline model.
        row = page.locator("tr", has_text="heron-status.txt").first
        row.locator(".pick-doc").check()
        page.click("#ask-selected")
        page.fill("#id_question", QUESTION)
        page.select_option("#id_root_model", "offline/heuristic")
        page.select_option("#id_sub_model", SUB_MODEL)
        page.click("#ask-form button[type=submit]")
        page.wait_for_url("**/runs/*-*/", timeout=30_000)
        run_url = page.url.split("#")[0]
        explorer = page.locator("#explorer")

        # Live: cells appear while the run is still going.
        expect(explorer.locator(".nb-cell").first).to_be_visible(timeout=60_000)
        assert explorer.get_attribute("data-status") == "running"
        expect(explorer.locator(".rx-settings .badge-offline").first).to_be_visible()
        screenshot(page, "e2e-2-first-cell")

        # Reload mid-run: the new page replays from the start and continues live.
        page.reload()
        expect(explorer.locator(".nb-cell").first).to_be_visible(timeout=30_000)
        assert explorer.get_attribute("data-status") == "running"
        screenshot(page, "e2e-3-after-reload")
        # Drop the socket: the client reconnects from the last seq it holds.
        page.evaluate("() => { const l = window.RLMExplorer.live; if (l.socket) l.socket.close(); }")

        # Sub-call nodes appear while their calls are in flight, then the final answer.
        expect(page.locator("#subcall-tree .tree-row").first).to_be_visible(timeout=120_000)
        assert explorer.get_attribute("data-status") == "running"
        screenshot(page, "e2e-3b-subcalls-in-flight")
        expect(explorer).to_have_attribute("data-status", "succeeded", timeout=180_000)
        expect(page.locator("#final-answer")).to_contain_text("AMBER-7742", timeout=30_000)
        page.wait_for_function(
            "() => { const m = window.RLMExplorer.current.model; return m.isFinished && m.lastSeq > 0; }")
        # Let any in-flight frames land, then compare with the server's record.
        page.wait_for_timeout(500)
        events = _events(page, run_url)
        assert events[-1]["type"] == "run.finished"
        _assert_dom_matches(page, events)
        assert page.evaluate("window.RLMExplorer.current.model.gaps") == 0
        screenshot(page, "e2e-4-finished")
        screenshot(page, "e2e-4-finished-full", full_page=True)

        # A node's details, by deep link, then a fresh load of the finished run replays it all.
        first_node = next(e["data"]["node_id"] for e in events if e["type"] == "subcall.started")
        page.goto(f"{run_url}#node-{first_node}")
        expect(page.locator("#node-detail")).to_have_attribute("data-item", first_node, timeout=30_000)
        expect(page.locator("#node-detail")).to_contain_text(SUB_MODEL)
        page.wait_for_function(f"() => window.RLMExplorer.current.model.lastSeq === {events[-1]['seq']}")
        _assert_dom_matches(page, events)
        coverage = float(page.locator(".cov-doc").first.get_attribute("data-fraction"))
        assert 0 < coverage < 1
        screenshot(page, "e2e-5-deep-link")
        assert sum(r.model == "sim-sub" for r in sub_provider.requests) == sum(
            e["type"] == "subcall.started" for e in events)  # every sub-call went over HTTP
    finally:
        context.close()
    assert not errors, errors
