"""One error model and one translator to HTTP (rlmweb.web.errors), and the lookups deduplicated
with it: one team lookup, one int_param, one events view (docs/architecture.md)."""

import json

import pytest
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.cache import SessionStore
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.test import RequestFactory
from django.urls import resolve

from apps.accounts.models import ApiToken
from apps.documents import services as documents
from apps.runs import api as runs_api
from apps.runs.models import RunStatus
from apps.runs.services import RunConflict, RunNotFound
from apps.sharing.services import share_create
from rlmweb.web import errors
from rlmweb.web.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    ServiceError,
    ServiceErrorMiddleware,
    as_service_error,
    json_error,
)
from tests.web.runs_factories import clean_rate_limits, make_document, make_run  # noqa: F401

pytestmark = [pytest.mark.usefixtures("clean_rate_limits")]


@pytest.mark.parametrize(("exc", "kind", "status"), [
    (documents.TooLarge("big"), errors.TooLarge, 413),
    (documents.Conflict("gap", offset=3), errors.Conflict, 409),
    (documents.DocumentError("bad"), ServiceError, 400),
    (RunNotFound("No such run."), NotFound, 404),
    (RunConflict("finished"), Conflict, 409),
    (ValidationError("Give the team a name.", code="name"), Invalid, 400),
    (ValidationError("too many at once", code="busy"), RateLimited, 429),
    (PermissionDenied("not your role"), Forbidden, 403),
    (Http404("gone"), NotFound, 404),
])
def test_every_error_is_one_kind_with_one_status(exc, kind, status):
    translated = as_service_error(exc)
    assert isinstance(translated, kind) and translated.status == status


def test_an_unknown_exception_is_not_translated():
    assert as_service_error(ValueError("a bug")) is None


def test_json_errors_keep_their_extra_fields_and_say_when_to_retry():
    response = json_error(documents.Conflict("send the chunk at offset 3", offset=3))
    assert response.status_code == 409
    assert json.loads(response.content) == {"error": "send the chunk at offset 3", "offset": 3}
    limited = json_error(RateLimited("Too many ask requests.", retry_after=12))
    assert limited.status_code == 429 and limited["Retry-After"] == "12"
    assert json.loads(limited.content) == {"error": "Too many ask requests.", "retry_after": 12}
    fields = json_error(as_service_error(ValidationError({"question": ["This field is required."]})))
    assert json.loads(fields.content) == {"error": "Invalid request.", "fields": {"question": ["This field is required."]}}


def _page_request(method: str = "GET", referer: str = ""):
    factory = RequestFactory()
    headers = {"referer": referer} if referer else {}
    request = factory.post("/runs/x/cancel/", headers=headers) if method == "POST" else factory.get("/x/", headers=headers)
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    return request


@pytest.mark.django_db
def test_pages_show_a_not_found_and_a_refusal_as_the_404_and_403_pages():
    middleware = ServiceErrorMiddleware(lambda r: HttpResponse())
    assert middleware.process_exception(_page_request(), NotFound("No such run.")).status_code == 404
    assert middleware.process_exception(_page_request(), Forbidden("Not your role.")).status_code == 403
    assert middleware.process_exception(_page_request(), ValueError("a bug")) is None  # bugs stay 500s


@pytest.mark.django_db
def test_a_page_form_refused_goes_back_to_its_page_with_the_message():
    request = _page_request("POST", referer="http://testserver/runs/")
    response = ServiceErrorMiddleware(lambda r: HttpResponse()).process_exception(
        request, Conflict("The run has already finished."))
    assert response.status_code == 302 and response["Location"] == "http://testserver/runs/"
    assert [str(m) for m in get_messages(request)] == ["The run has already finished."]


@pytest.mark.django_db
def test_a_refusal_from_elsewhere_is_the_error_page_with_its_status(user, team):
    request = _page_request("POST", referer="https://elsewhere.example/")
    request.user, request.team = user, team
    refusal = documents.TooLarge("The file is over the limit of 1.0 GiB.")
    response = ServiceErrorMiddleware(lambda r: HttpResponse()).process_exception(request, refusal)
    assert response.status_code == 413 and "over the limit of 1.0 GiB" in response.content.decode()


# --- one team lookup, one int_param, one events view ----------------------------------------------


@pytest.fixture
def auth(user):
    return {"Authorization": f"Token {ApiToken.issue(user)[1]}"}


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/runs/", "/api/documents/"])
def test_every_api_names_teams_the_same_way(client, auth, team, url):
    assert client.get(f"{url}?team=abc", headers=auth).status_code == 400
    assert client.get(f"{url}?team=abc", headers=auth).json()["fields"] == {"team": ["Must be an integer."]}
    assert client.get(f"{url}?team=999999", headers=auth).json() == {"error": "No such team."}
    assert client.get(f"{url}?team={team.pk}", headers=auth).status_code == 200


@pytest.mark.django_db
def test_the_page_and_the_api_share_one_events_view(client, auth, team, user, data_dir):
    assert resolve("/runs/00000000-0000-0000-0000-000000000000/events.json").func.__wrapped__ is runs_api.run_events
    run = make_run(team, user, [make_document(team, user=user)], status=RunStatus.SUCCEEDED)
    client.force_login(user)
    page = client.get(f"/runs/{run.pk}/events.json?since=0")
    api = client.get(f"/api/runs/{run.pk}/events/?since=0", headers=auth)
    assert page.status_code == api.status_code == 200 and page.json() == api.json()


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["since=-1", "since=abc", "limit=0", "limit=100000"])
def test_out_of_range_event_parameters_are_refused_everywhere(client, team, user, data_dir, query):
    run = make_run(team, user, [make_document(team, user=user)], status=RunStatus.SUCCEEDED)
    _, token = share_create(user, run, None, False)
    client.force_login(user)
    name = query.split("=")[0]
    for url in (f"/runs/{run.pk}/events.json?{query}", f"/s/{token}/events.json?{query}"):
        response = client.get(url)
        assert response.status_code == 400, url
        assert list(response.json()["fields"]) == [name]
