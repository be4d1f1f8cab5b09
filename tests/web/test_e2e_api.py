"""End to end through the JSON API only, with a real Celery worker (not eager): upload a document
by the chunked upload protocol, wait for its text to be extracted on the worker, ask a needle
question of it with the offline model, poll the run until it finishes, and read the answer and the
whole trajectory back."""

import hashlib
import json
import time

import pytest
from django.test import Client

from apps.accounts.models import ApiToken
from tests.web.runs_factories import clean_rate_limits  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_rate_limits", "data_dir"),
              pytest.mark.slow]

NEEDLE = "OSPREY-7731"
# About 1.6 MB, the needle stated exactly once, about two thirds of the way in.
HAYSTACK = "".join(
    f"Line {i}: the quarterly audit of warehouse {i % 97} found nothing unusual in the ledgers.\n"
    if i != 11_000 else f"The combination of the archive vault is {NEEDLE}.\n"
    for i in range(18_000)
).encode("utf-8")
CHUNK = 256 * 1024  # smaller than the server's chunk size, so the upload takes several requests
FINISHED = ("succeeded", "failed", "cancelled")


def wait_for(predicate, timeout: float = 120.0, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s")


class Api:
    """A script's view of the server: JSON over HTTP with an API token, nothing else."""

    def __init__(self, token: str) -> None:
        self.client = Client(enforce_csrf_checks=True, headers={"Authorization": f"Token {token}"})

    def call(self, method: str, url: str, body=None, expect: tuple = (200,), **kwargs):
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body)
            kwargs.setdefault("content_type", "application/json")
        response = self.client.generic(method, url, body if body is not None else b"", **kwargs)
        assert response.status_code in expect, (method, url, response.status_code, response.content[:500])
        return response.json()


def upload_chunked(api: Api, name: str, data: bytes) -> dict:
    upload = api.call("POST", "/api/documents/uploads/",
                      {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}, expect=(201,))
    assert upload["offset"] == 0 and upload["chunk_url"].startswith("/api/documents/uploads/")
    offset, requests = 0, 0
    while offset < len(data):
        piece = data[offset : offset + min(CHUNK, upload["chunk_size"])]
        answer = api.call("PUT", f"{upload['chunk_url']}?offset={offset}", piece,
                          content_type="application/octet-stream")
        offset, requests = answer["offset"], requests + 1
    assert answer["complete"] is True and requests > 1
    done = api.call("POST", upload["complete_url"], expect=(201,))
    assert done["created"] is True
    return done["document"]


def all_events(api: Api, events_url: str) -> list[dict]:
    events, since = [], 0
    while True:
        page = api.call("GET", f"{events_url}?since={since}&limit=500")
        events += page["events"]
        if not page["more"]:
            return events
        since = page["events"][-1]["seq"]


def test_upload_extract_ask_and_read_back_through_the_api(user, celery_worker):
    api = Api(ApiToken.issue(user)[1])

    document = upload_chunked(api, "audit-log.txt", HAYSTACK)
    # Plain text is decoded while it arrives: ready when the upload completes, no extraction task.
    assert document["status"] == "ready" and document["size_bytes"] == len(HAYSTACK)
    ready = api.call("GET", document["url"])
    assert ready["status"] == "ready", ready["error"]
    assert ready["lines"] == 18_000 and ready["chars"] == len(HAYSTACK)
    assert b"".join(api.client.get(ready["text_url"]).streaming_content) == HAYSTACK

    models = api.call("GET", "/api/runs/models/")["models"]
    assert any(m["model"] == "offline/heuristic" and m["available"] for m in models)
    run = api.call("POST", "/api/runs/", {
        "question": "What is the combination of the archive vault?",
        "documents": [document["id"]],
        "mode": "rlm",
        "root_model": "offline/heuristic",
        "sub_model": "offline/heuristic",
        "limits": {"max_iterations": 10},
    }, expect=(201,))
    assert run["status"] == "queued" and run["documents"] == [
        {"id": document["id"], "name": "audit-log.txt", "chars": len(HAYSTACK)}]

    finished = wait_for(lambda: (r := api.call("GET", run["url"]))["status"] in FINISHED and r)
    assert finished["status"] == "succeeded", (finished["failure_reason"], finished["stop_reason"])
    assert NEEDLE in finished["final_answer"]

    events = all_events(api, run["events_url"])
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(events) + 1)) and len(events) == finished["last_seq"]
    assert events[0]["type"] == "run.started"
    assert events[-1]["type"] == "run.finished" and events[-1]["data"]["status"] == "succeeded"
    assert [e["type"] for e in events].count("run.finished") == 1
    # The run is listed with its answer.
    listed = api.call("GET", "/api/runs/")["runs"]
    assert [r["id"] for r in listed] == [run["id"]] and NEEDLE in listed[0]["final_answer"]
    # And the run page a signed-in member opens shows the same answer.
    browser = Client()
    browser.force_login(user)
    page = browser.get(f"/runs/{run['id']}/")
    assert page.status_code == 200
    assert NEEDLE in page.content.decode() and "Succeeded" in page.content.decode()
