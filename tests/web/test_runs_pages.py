"""The runs pages: ask form, list, run page context, cancel, re-run, compare, events and trajectory JSON."""

import json
import re
import uuid

import pytest

from apps.runs.models import Run, RunStatus
from apps.runs.sink import persist_events
from apps.teams.models import Membership, Role
from tests.web.runs_factories import clean_rate_limits, make_document, make_events, make_run  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_rate_limits", "data_dir")]


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def doc(team, user):
    return make_document(team, user=user)


def test_ask_form_lists_ready_documents_preselects_and_labels_models(signed_in, team, doc, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    make_document(team, name="pending.pdf", status="extracting")
    page = signed_in.get(f"/runs/new/?documents={doc.pk}")
    html = page.content.decode()
    assert page.status_code == 200
    assert f'value="{doc.pk}" id="doc-{doc.pk}" checked' in html
    assert "pending.pdf" not in html
    assert "offline heuristic stand-in" in html
    assert '<option value="openai/gpt-5" disabled' in html
    assert "Set OPENAI_API_KEY in the environment" in html
    for mode in ("rlm", "rlm-no-subcalls", "direct"):
        assert f'value="{mode}"' in html
    assert 'name="max_iterations" value="20"' in html


def test_asking_in_the_browser_creates_the_run_and_lands_on_its_page(signed_in, user, doc, monkeypatch):
    from apps.runs.tasks import run_rlm

    monkeypatch.setattr(run_rlm, "apply_async", lambda **kw: None)
    response = signed_in.post("/runs/new/", {
        "documents": [str(doc.pk)], "question": "What is the code?", "mode": "rlm-no-subcalls",
        "root_model": "offline/heuristic", "sub_model": "offline/heuristic", "max_iterations": 8,
        "max_depth": 1, "max_subcalls": 50, "max_cost_usd": 0.5, "max_wall_s": 600,
    })
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert (run.mode, run.limits["max_iterations"], run.limits["max_cost_usd"]) == ("rlm-no-subcalls", 8, 0.5)
    assert run.created_by == user


def test_a_bad_ask_shows_the_services_message_on_the_field(signed_in, doc, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    response = signed_in.post("/runs/new/", {
        "documents": [str(doc.pk)], "question": "Q?", "mode": "rlm", "root_model": "openai/gpt-5",
        "sub_model": "offline/heuristic", "max_iterations": 500, "max_depth": 1, "max_subcalls": 50,
        "max_cost_usd": 1, "max_wall_s": 600,
    })
    assert response.status_code == 400 and Run.objects.count() == 0
    assert "Ensure this value is less than or equal to 200" in response.content.decode()
    response = signed_in.post("/runs/new/", {
        "documents": [str(doc.pk)], "question": "Q?", "mode": "rlm", "root_model": "openai/gpt-5",
        "sub_model": "offline/heuristic", "max_iterations": 5, "max_depth": 1, "max_subcalls": 50,
        "max_cost_usd": 1, "max_wall_s": 600,
    })
    assert response.status_code == 400 and "Set OPENAI_API_KEY" in response.content.decode()
    assert Run.objects.count() == 0


def test_run_list_shows_filters_searches_and_paginates(signed_in, team, user, doc):
    make_run(team, user, [doc], status=RunStatus.SUCCEEDED, question="Where is the needle?",
             final_answer="In the haystack at line 7", cost_usd=0.0123)
    make_run(team, user, [doc], status=RunStatus.FAILED, question="Unknown price", cost_unknown_calls=2)
    make_run(team, user, [doc], status=RunStatus.SUCCEEDED, question="Partly priced", cost_usd=0.5,
             cost_unknown_calls=1, mode="direct")
    html = signed_in.get("/runs/").content.decode()
    assert "Where is the needle?" in html and "In the haystack at line 7" in html and "notes.txt" in html
    assert "$0.0123" in html and ">unknown<" in html and "≥ $0.5000" in html
    html = signed_in.get("/runs/?status=failed").content.decode()
    assert "Unknown price" in html and "Where is the needle?" not in html
    html = signed_in.get("/runs/?q=haystack").content.decode()
    assert "Where is the needle?" in html and "Partly priced" not in html
    html = signed_in.get("/runs/?mode=direct").content.decode()
    assert "Partly priced" in html and "Unknown price" not in html
    for i in range(30):
        make_run(team, user, [doc], status=RunStatus.SUCCEEDED, question=f"Bulk {i}")
    page2 = signed_in.get("/runs/?page=2").content.decode()
    assert "Page 2 of 2" in page2


def test_run_page_gives_the_explorer_its_context(signed_in, team, user, doc):
    run = make_run(team, user, [doc])
    response = signed_in.get(f"/runs/{run.pk}/")
    assert response.status_code == 200
    ctx = response.context
    assert ctx["run"] == run and [d.name for d in ctx["documents"]] == ["notes.txt"]
    assert ctx["documents"][0].chars == doc.chars
    assert ctx["ws_path"] == f"/ws/runs/{run.pk}/"
    assert ctx["events_url"] == f"/runs/{run.pk}/events.json"
    assert ctx["trajectory_url"] == f"/runs/{run.pk}/trajectory.json"
    assert ctx["can_cancel"] is True


def test_events_json_pages_by_sequence(signed_in, team, user, doc):
    run = make_run(team, user, [doc], status=RunStatus.RUNNING)
    persist_events(run.pk, make_events(1, 12))
    body = signed_in.get(f"/runs/{run.pk}/events.json?since=3&limit=5").json()
    assert [e["seq"] for e in body["events"]] == [4, 5, 6, 7, 8]
    assert body["more"] is True and body["last_seq"] == 12 and body["status"] == "running"
    body = signed_in.get(f"/runs/{run.pk}/events.json?since=8").json()
    assert [e["seq"] for e in body["events"]] == [9, 10, 11, 12] and body["more"] is False


def test_trajectory_downloads_metadata_and_every_event(signed_in, team, user, doc):
    run = make_run(team, user, [doc], status=RunStatus.RUNNING)
    persist_events(run.pk, make_events(1, 1203, final=True))
    response = signed_in.get(f"/runs/{run.pk}/trajectory.json")
    assert response["Content-Disposition"] == f'attachment; filename="rlmweb-run-{run.pk}.json"'
    body = json.loads(b"".join(response.streaming_content))
    assert body["run"]["id"] == str(run.pk) and body["run"]["status"] == "succeeded"
    assert body["run"]["documents"][0]["name"] == "notes.txt"
    assert [e["seq"] for e in body["events"]] == list(range(1, 1204))


def test_cancel_from_the_page(signed_in, team, user, doc):
    queued = make_run(team, user, [doc])
    response = signed_in.post(f"/runs/{queued.pk}/cancel/", {"next": "/runs/"})
    assert response.status_code == 302 and response["Location"] == "/runs/"
    queued.refresh_from_db()
    assert queued.status == RunStatus.CANCELLED
    running = make_run(team, user, [doc], status=RunStatus.RUNNING)
    signed_in.post(f"/runs/{running.pk}/cancel/")
    running.refresh_from_db()
    assert running.cancel_requested and running.status == RunStatus.RUNNING
    assert signed_in.get(f"/runs/{running.pk}/cancel/").status_code == 405


def test_rerun_form_is_prefilled_and_creates_a_linked_run(signed_in, team, user, doc, monkeypatch):
    from apps.runs.tasks import run_rlm

    monkeypatch.setattr(run_rlm, "apply_async", lambda **kw: None)
    original = make_run(team, user, [doc], status=RunStatus.SUCCEEDED, question="Who wrote it?", mode="direct",
                        limits={"max_iterations": 3, "max_depth": 2})
    html = signed_in.get(f"/runs/{original.pk}/rerun/").content.decode()
    assert "Who wrote it?" in html and 'name="max_iterations" value="3"' in html
    assert re.search(r'<input type="radio" name="mode" value="direct"[^>]*checked', html)
    response = signed_in.post(f"/runs/{original.pk}/rerun/", {
        "documents": [str(doc.pk)], "question": "Who wrote it?", "mode": "rlm", "root_model": "offline/heuristic",
        "sub_model": "offline/heuristic", "max_iterations": 3, "max_depth": 2, "max_subcalls": 10,
        "max_cost_usd": 1, "max_wall_s": 600,
    })
    new = Run.objects.exclude(pk=original.pk).get()
    assert response["Location"] == f"/runs/{new.pk}/" and new.rerun_of == original and new.mode == "rlm"


def test_compare_shows_two_runs_side_by_side(signed_in, team, user, doc):
    a = make_run(team, user, [doc], status=RunStatus.SUCCEEDED, final_answer="PLUM-42", iterations=3, subcalls=12,
                 cost_usd=0.02, prompt_tokens=900, completion_tokens=100)
    b = make_run(team, user, [doc], status=RunStatus.SUCCEEDED, final_answer="PEAR-7", mode="rlm-no-subcalls",
                 iterations=5, subcalls=0, cost_unknown_calls=3)
    html = signed_in.get(f"/runs/compare/?a={a.pk}&b={b.pk}").content.decode()
    for text in ("PLUM-42", "PEAR-7", "$0.0200", "unknown", ">12<", ">1,000 <", "RLM without sub-calls"):
        assert text in html, text
    assert signed_in.get(f"/runs/compare/?a={a.pk}&b={uuid.uuid4()}").status_code == 404


def test_other_teams_runs_are_404_everywhere(client, other_user, team, user, doc):
    run = make_run(team, user, [doc])
    client.force_login(other_user)
    for url in (f"/runs/{run.pk}/", f"/runs/{run.pk}/events.json", f"/runs/{run.pk}/trajectory.json",
                f"/runs/{run.pk}/rerun/", f"/runs/compare/?a={run.pk}&b={run.pk}"):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/runs/{run.pk}/cancel/").status_code == 404
    assert "What is the secret code?" not in client.get("/runs/").content.decode()
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


def test_viewers_see_runs_but_cannot_ask_or_cancel(client, other_user, team, user, doc):
    Membership.objects.create(team=team, user=other_user, role=Role.VIEWER)
    run = make_run(team, user, [doc])
    client.force_login(other_user)
    client.post(f"/teams/{team.pk}/switch/")
    assert client.get(f"/runs/{run.pk}/").context["can_cancel"] is False
    assert client.post(f"/runs/{run.pk}/cancel/").status_code == 403
    response = client.post("/runs/new/", {"documents": [str(doc.pk)], "question": "Q?"})
    assert response.status_code == 403 and Run.objects.count() == 1
    runs_page = client.get("/runs/").content.decode()  # and no button the server would refuse
    assert f"/runs/{run.pk}/cancel/" not in runs_page and f"/runs/{run.pk}/rerun/" not in runs_page
    client.force_login(user)
    client.post(f"/teams/{team.pk}/switch/")
    runs_page = client.get("/runs/").content.decode()
    assert f"/runs/{run.pk}/cancel/" in runs_page and f"/runs/{run.pk}/rerun/" in runs_page


def test_anonymous_visitors_are_sent_to_sign_in(client, team, user, doc):
    run = make_run(team, user, [doc])
    for url in ("/runs/", "/runs/new/", f"/runs/{run.pk}/", f"/runs/{run.pk}/events.json",
                f"/runs/{run.pk}/trajectory.json", f"/runs/compare/?a={run.pk}&b={run.pk}"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url
