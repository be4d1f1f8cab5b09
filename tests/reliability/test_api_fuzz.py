"""Property-based tests: arbitrary JSON (and bytes) at every JSON API endpoint that takes a body
(runs, uploads, teams, members, invites, share links, comments, feedback) never cause a 5xx, and a 4xx
never changes a row. A 201 from an ask creates exactly one run, with limits inside their bounds.
"""

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.runs.models import Run, RunStatus
from apps.runs.services import LIMITS
from tests.reliability.conftest import table_counts
from tests.web.runs_factories import make_run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache", "no_broker", "data_dir")]

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
DOC = "<the ready document's id>"  # replaced by the real id, so some asks are valid

scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2**70, 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
limit_values = st.integers(-10, 10**6) | st.floats(allow_nan=True) | json_values
ask_payloads = st.fixed_dictionaries({}, optional={
    "question": st.text(max_size=50) | json_values,
    "documents": st.lists(st.sampled_from([DOC, str(uuid.uuid4()), "x", ""]) | json_values, max_size=3)
    | json_values,
    "mode": st.sampled_from(["rlm", "rlm-no-subcalls", "direct", "RLM"]) | json_values,
    "root_model": st.sampled_from(["offline/heuristic", "openai/gpt-5", "nope"]) | json_values,
    "sub_model": st.sampled_from(["offline/heuristic", "nope"]) | json_values,
    "limits": st.dictionaries(st.sampled_from([*LIMITS, "max_tokens"]), limit_values, max_size=5) | json_values,
    "team": st.integers(-3, 10**20) | json_values,
    "extra": json_values,
}) | json_values
upload_payloads = st.fixed_dictionaries({}, optional={
    "name": st.text(max_size=40) | json_values,
    "size": st.integers(-10, 2**64) | json_values,
    "sha256": st.text(alphabet="0123456789abcdefXYZ", max_size=70) | json_values,
    "files": st.lists(st.fixed_dictionaries({}, optional={"name": json_values, "size": st.integers(-1, 10**4)})
                      | json_values, max_size=3) | json_values,
}) | json_values
query_values = st.text(st.characters(), max_size=12) | st.sampled_from(["\u00b2", "1\u00b3", "\u0663"]) | st.integers(
    -5, 10**20).map(str)
queries = st.dictionaries(st.sampled_from(["since", "limit", "team", "page", "per_page", "status", "mode", "q", "ids"]),
                          query_values, max_size=4)


def with_doc(value, doc_id: str):
    """The payload with the document placeholder replaced by a real id."""
    return json.loads(json.dumps(value, allow_nan=True).replace(json.dumps(DOC), json.dumps(doc_id)))


def encode(payload) -> bytes:
    return json.dumps(payload, allow_nan=True).encode()


@pytest.fixture
def roomy(settings):
    """No rate limit or concurrency cap gets in the way of hundreds of examples."""
    settings.RATE_LIMITS = {"ask": (10**6, 60), "upload": (10**6, 60)}
    settings.MAX_CONCURRENT_RUNS_PER_TEAM = 10**6


def check(response, before: dict) -> None:
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        assert response.json()["error"]
        assert table_counts() == before


@FUZZ
@given(payload=ask_payloads)
def test_asks_with_arbitrary_json(client, auth, doc, roomy, payload):
    before = table_counts()
    response = client.post("/api/runs/", encode(with_doc(payload, str(doc.pk))), content_type="application/json",
                           headers=auth)
    check(response, before)
    if response.status_code == 201:
        run = Run.objects.get(pk=response.json()["id"])
        assert Run.objects.count() == before["runs.Run"] + 1 and run.status == RunStatus.QUEUED
        for name, value in run.limits.items():
            kind, low, high, _ = LIMITS[name]
            assert isinstance(value, kind) and low <= value <= high


@FUZZ
@given(payload=ask_payloads)
def test_reruns_with_arbitrary_json(client, auth, doc, team, user, roomy, payload):
    run = make_run(team, user, [doc], status=RunStatus.SUCCEEDED)
    before = table_counts()
    response = client.post(f"/api/runs/{run.pk}/rerun/", encode(with_doc(payload, str(doc.pk))),
                           content_type="application/json", headers=auth)
    check(response, before)


@pytest.mark.parametrize("documents", [False, 0, 1.5, "abc", {"a": 1}])
def test_a_rerun_with_documents_that_are_not_a_list_is_a_400(client, auth, doc, team, user, roomy, documents):
    """Found by the fuzz test above: `{"documents": false}` reached `list(False)` (a 500)."""
    run = make_run(team, user, [doc], status=RunStatus.SUCCEEDED)
    before = table_counts()
    response = client.post(f"/api/runs/{run.pk}/rerun/", encode({"documents": documents}),
                           content_type="application/json", headers=auth)
    assert response.status_code == 400, response.content
    assert "documents" in response.json().get("fields", {})
    assert table_counts() == before


@FUZZ
@given(payload=upload_payloads)
def test_upload_starts_with_arbitrary_json(client, auth, roomy, payload):
    before = table_counts()
    check(client.post("/api/documents/uploads/", encode(payload), content_type="application/json", headers=auth),
          before)


@FUZZ
@given(body=st.binary(max_size=200))
def test_arbitrary_bytes_as_a_json_body(client, auth, roomy, body):
    before = table_counts()
    for url in ("/api/runs/", "/api/documents/uploads/"):
        check(client.post(url, body, content_type="application/json", headers=auth), before)


@FUZZ
@given(query=queries)
def test_arbitrary_query_parameters(client, auth, doc, team, user, query):
    run = make_run(team, user, [doc], status=RunStatus.SUCCEEDED)
    before = table_counts()
    for url in ("/api/runs/", f"/api/runs/{run.pk}/events/", "/api/documents/", "/api/runs/models/"):
        check(client.get(url, query, headers=auth), before)


@FUZZ
@given(offset=query_values, body=st.binary(max_size=64))
def test_upload_chunks_at_arbitrary_offsets(client, auth, roomy, offset, body):
    start = client.post("/api/documents/uploads/", {"name": "a.txt", "size": 32}, content_type="application/json",
                        headers=auth)
    assert start.status_code == 201
    upload = start.json()
    response = client.put(f"{upload['chunk_url']}?offset={offset}", body, content_type="application/octet-stream",
                          headers=auth)
    assert response.status_code < 500, response.content[:300]
    state = client.get(upload["url"], headers=auth).json()
    assert 0 <= state["offset"] <= 32
    if response.status_code >= 400:
        assert state["offset"] == 0


# The rest of the JSON API: teams, members, invites, share links, comments, feedback. Each example
# sends one arbitrary payload to one endpoint, as the owner of a shared team.
OTHER_ENDPOINTS = [
    ("POST", "/api/teams/"),
    ("PATCH", "/api/teams/{team}/"),
    ("POST", "/api/teams/{team}/members/"),
    ("PATCH", "/api/teams/{team}/members/{membership}/"),
    ("POST", "/api/teams/{team}/invites/"),
    ("POST", "/api/teams/join/"),
    ("POST", "/api/sharing/runs/{run}/"),
    ("POST", "/api/comments/runs/{run}/"),
    ("PATCH", "/api/comments/{comment}/"),
    ("POST", "/api/review/runs/{run}/feedback/"),
]
other_payloads = st.fixed_dictionaries({}, optional={
    "name": st.text(max_size=30) | json_values,
    "username": st.sampled_from(["mallory", "alice", "nobody"]) | json_values,
    "role": st.sampled_from(["viewer", "member", "admin", "owner", "king"]) | json_values,
    "monthly_cap_usd": st.sampled_from(["5", "-1", "1e400", "NaN", ""]) | limit_values,
    "days": st.integers(-5, 10**6) | json_values,
    "max_uses": st.integers(-5, 10**20) | json_values,
    "token": st.text(max_size=40) | json_values,
    "expires_in_days": st.integers(-5, 10**6) | json_values,
    "show_document_text": json_values,
    "body": st.text(max_size=60) | json_values,
    "target_kind": st.sampled_from(["run", "cell", "node", "x"]) | json_values,
    "target_id": st.text(max_size=10) | json_values,
    "rating": st.sampled_from(["up", "down", "sideways"]) | json_values,
    "comment": st.text(max_size=60) | json_values,
}) | json_values


@pytest.fixture
def shared_team(user, other_user, doc, team):
    from apps.comments.models import Comment
    from apps.teams.models import Membership, Role

    membership = Membership.objects.create(team=team, user=other_user, role=Role.MEMBER)
    run = make_run(team, user, [doc], status=RunStatus.SUCCEEDED)
    comment = Comment.objects.create(run=run, author=user, body="first", target_kind="run", target_id="")
    return {"team": team.pk, "membership": membership.pk, "run": run.pk, "comment": comment.pk}


@FUZZ
@given(endpoint=st.sampled_from(OTHER_ENDPOINTS), payload=other_payloads)
def test_the_rest_of_the_api_with_arbitrary_json(client, auth, shared_team, roomy, endpoint, payload):
    method, url = endpoint
    before = table_counts()
    response = client.generic(method, url.format(**shared_team), encode(payload), content_type="application/json",
                              headers=auth)
    check(response, before)


# Deep nesting, oversized and malformed bodies: a 400 with a JSON error at every endpoint that reads a
# body, never a RecursionError and Django's technical page.
ALL_JSON_ENDPOINTS = [("POST", "/api/runs/"), ("POST", "/api/runs/{run}/rerun/"), ("POST", "/api/documents/uploads/"),
                      *OTHER_ENDPOINTS, ("POST", "/review/runs/{run}/feedback/")]
HOSTILE_BODIES = {
    "deep list": b"[" * 100_000,
    "deep object": b'{"a":' * 50_000,
    "closed deep list": b"[" * 200 + b"]" * 200,  # valid JSON, deeper than any request needs
    "too large": b'{"question": "' + b"x" * (2 * 1024 * 1024) + b'"}',
    "not JSON": b"{'single': quotes}",
}


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_deep_large_and_malformed_json_is_a_400_at_every_endpoint(client, user, auth, shared_team, roomy, body):
    client.force_login(user)
    before = table_counts()
    for method, url in ALL_JSON_ENDPOINTS:
        session = url.startswith("/review/")  # the run page's feedback form posts with the session
        response = client.generic(method, url.format(**shared_team), body, content_type="application/json",
                                  headers={} if session else auth)
        assert response.status_code == 400, (url, response.status_code, response.content[:200])
        assert response.json()["error"], url
    assert table_counts() == before
