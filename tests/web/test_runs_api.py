"""The runs JSON API: token auth, asking, listing, status, events, cancel, re-run, payload errors."""

import uuid

import pytest

from apps.accounts.models import ApiToken
from apps.runs.models import Run, RunStatus
from apps.runs.sink import persist_events
from apps.teams.models import Membership, Role, Team
from tests.web.runs_factories import clean_rate_limits, make_document, make_events, make_run  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_rate_limits", "data_dir")]


@pytest.fixture
def auth(user):
    return {"Authorization": f"Token {ApiToken.issue(user)[1]}"}


@pytest.fixture
def doc(team, user):
    return make_document(team, user=user)


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    from apps.runs.tasks import run_rlm

    monkeypatch.setattr(run_rlm, "apply_async", lambda **kw: None)


def post(client, url, body, headers):
    return client.post(url, body, content_type="application/json", headers=headers)


def test_ask_returns_201_with_the_run(client, auth, doc):
    response = post(client, "/api/runs/", {"question": "What is the code?", "documents": [str(doc.pk)],
                                           "mode": "rlm", "limits": {"max_iterations": 4}}, auth)
    assert response.status_code == 201, response.json()
    body = response.json()
    run = Run.objects.get()
    assert body["id"] == str(run.pk) and body["status"] == "queued" and body["limits"]["max_iterations"] == 4
    assert body["documents"] == [{"id": str(doc.pk), "name": "notes.txt", "chars": doc.chars}]
    assert body["url"] == f"/api/runs/{run.pk}/" and body["websocket_path"] == f"/ws/runs/{run.pk}/"
    assert body["root_model"] == "offline/heuristic"


@pytest.mark.parametrize(("payload", "field"), [
    ({"documents": ["x"]}, "question"),
    ({"question": 5, "documents": []}, "question"),
    ({"question": "Q"}, "documents"),
    ({"question": "Q", "documents": "abc"}, "documents"),
    ({"question": "Q", "documents": [1, 2]}, "documents"),
    ({"question": "Q", "documents": [], "mode": 3}, "mode"),
    ({"question": "Q", "documents": [], "limits": 10}, "limits"),
    ({"question": "Q", "documents": [], "colour": "red"}, "colour"),
])
def test_wrong_types_and_missing_fields_are_400_with_field_errors(client, auth, payload, field):
    response = post(client, "/api/runs/", payload, auth)
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert Run.objects.count() == 0


def test_invalid_values_are_400_with_the_services_messages(client, auth, doc, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    response = post(client, "/api/runs/", {"question": "Q", "documents": [str(doc.pk)], "root_model": "openai/gpt-5",
                                           "limits": {"max_depth": 9}}, auth)
    body = response.json()
    assert response.status_code == 400
    assert "Set OPENAI_API_KEY" in body["fields"]["root_model"][0]
    assert "between 1 and 5" in body["fields"]["limits.max_depth"][0]
    assert post(client, "/api/runs/", {"question": "Q", "documents": [str(uuid.uuid4())]}, auth).status_code == 400


def test_malformed_json_and_wrong_methods(client, auth):
    response = client.post("/api/runs/", b"{nope", content_type="application/json", headers=auth)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    assert client.delete("/api/runs/", headers=auth).status_code == 405


def test_rate_limited_asks_get_429(client, auth, doc, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "ask": (1, 60)}
    assert post(client, "/api/runs/", {"question": "Q", "documents": [str(doc.pk)]}, auth).status_code == 201
    response = post(client, "/api/runs/", {"question": "Q", "documents": [str(doc.pk)]}, auth)
    assert response.status_code == 429 and response.json()["retry_after"] > 0


def test_list_status_and_events(client, auth, team, user, doc):
    run = make_run(team, user, [doc], status=RunStatus.RUNNING)
    make_run(team, user, [doc], status=RunStatus.SUCCEEDED, question="other")
    persist_events(run.pk, make_events(1, 7))
    listed = client.get("/api/runs/?status=running", headers=auth).json()
    assert [r["id"] for r in listed["runs"]] == [str(run.pk)] and listed["count"] == 1
    detail = client.get(f"/api/runs/{run.pk}/", headers=auth).json()
    assert detail["status"] == "running" and detail["last_seq"] == 7 and "iterations" in detail["totals"]
    events = client.get(f"/api/runs/{run.pk}/events/?since=5", headers=auth).json()
    assert [e["seq"] for e in events["events"]] == [6, 7] and events["more"] is False
    bad = client.get(f"/api/runs/{run.pk}/events/?since=minus", headers=auth)
    assert bad.status_code == 400 and "since" in bad.json()["fields"]


def test_unknown_cost_is_null_not_zero(client, auth, team, user, doc):
    run = make_run(team, user, [doc], status=RunStatus.SUCCEEDED, cost_usd=0.25, cost_unknown_calls=2)
    totals = client.get(f"/api/runs/{run.pk}/", headers=auth).json()["totals"]
    assert totals["cost_usd"] is None and totals["cost_known_usd"] == 0.25 and totals["cost_unknown_calls"] == 2


def test_team_parameter_selects_another_team_where_member(client, auth, user, other_user):
    shared = Team.objects.create(name="shared")
    Membership.objects.create(team=shared, user=user, role=Role.MEMBER)
    run = make_run(shared, other_user, [make_document(shared)])
    assert [r["id"] for r in client.get(f"/api/runs/?team={shared.pk}", headers=auth).json()["runs"]] == [str(run.pk)]
    foreign = other_user.teams.first()
    assert client.get(f"/api/runs/?team={foreign.pk}", headers=auth).status_code == 404
    response = post(client, "/api/runs/", {"question": "Q", "documents": [], "team": foreign.pk}, auth)
    assert response.status_code == 404


def test_cancel_and_rerun(client, auth, team, user, doc):
    run = make_run(team, user, [doc])
    response = post(client, f"/api/runs/{run.pk}/cancel/", {}, auth)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert post(client, f"/api/runs/{run.pk}/cancel/", {}, auth).status_code == 409
    running = make_run(team, user, [doc], status=RunStatus.RUNNING)
    response = post(client, f"/api/runs/{running.pk}/cancel/", {}, auth)
    assert response.status_code == 202 and response.json()["cancel_requested"] is True
    again = post(client, f"/api/runs/{run.pk}/rerun/", {"mode": "direct"}, auth)
    assert again.status_code == 201 and again.json()["rerun_of"] == str(run.pk) and again.json()["mode"] == "direct"


def test_models_endpoint_lists_availability(client, auth, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    models = {m["model"]: m for m in client.get("/api/runs/models/", headers=auth).json()["models"]}
    assert models["offline/heuristic"]["available"] and models["offline/heuristic"]["offline"]
    assert not models["openai/gpt-5"]["available"] and "OPENAI_API_KEY" in models["openai/gpt-5"]["how_to_enable"]


def test_other_teams_runs_are_404_and_anonymous_is_401(client, other_user, team, user, doc):
    run = make_run(team, user, [doc])
    theirs = {"Authorization": f"Token {ApiToken.issue(other_user)[1]}"}
    for url in (f"/api/runs/{run.pk}/", f"/api/runs/{run.pk}/events/"):
        assert client.get(url, headers=theirs).status_code == 404
        assert client.get(url).status_code == 401
    assert post(client, f"/api/runs/{run.pk}/cancel/", {}, theirs).status_code == 404
    assert post(client, f"/api/runs/{run.pk}/rerun/", {}, theirs).status_code == 404
    assert client.get(f"/api/runs/{uuid.uuid4()}/", headers=theirs).status_code == 404
    assert client.get("/api/runs/").status_code == 401
    assert client.get("/api/runs/", headers={"Authorization": "Token wrong"}).status_code == 401
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


def test_listing_runs_costs_a_constant_number_of_queries(client, auth, team, user, doc, django_assert_max_num_queries):
    for i in range(15):
        make_run(team, user, [doc, make_document(team, f"text {i}")], status=RunStatus.SUCCEEDED)
    with django_assert_max_num_queries(12):
        runs = client.get("/api/runs/", headers=auth).json()["runs"]
    assert len(runs) == 15 and all(len(r["documents"]) == 2 for r in runs)
