"""JSON API for runs: ask, list, status, events, cancel, re-run, delete, and the models offered.

Authentication is `rlmweb.web.api.api_view` (an API token, or the browser session with CSRF).
Errors are `{"error": message}`, with `"fields": {name: [messages]}` for invalid asks. A run of
another team is a 404, like a run that does not exist.
"""

import uuid

from django.core.paginator import Paginator
from django.http import JsonResponse
from django.urls import reverse

from apps.accounts.requests import ApiRequest
from apps.teams.selectors import team_for_request
from rlmweb.web.api import api_view, int_param, json_body
from rlmweb.web.errors import Invalid, NotFound

from . import selectors, services
from .conversations import run_follow_up, thread_json
from .models import Run
from .models_config import model_choices

ASK_FIELDS = {"question", "documents", "mode", "root_model", "sub_model", "limits", "team", "follow_up"}


def _run(request: ApiRequest, run_id) -> Run:
    run = selectors.run_get_for_user(request.user, run_id)
    if run is None:
        raise NotFound("No such run.")
    return run


def run_json(run: Run) -> dict:
    return {
        **selectors.run_summary(run),
        "url": reverse("api_run_detail", args=[run.pk]),
        "events_url": reverse("api_run_events", args=[run.pk]),
        "page_url": reverse("run_detail", args=[run.pk]),
        "websocket_path": f"/ws/runs/{run.pk}/",
    }


def _ask_arguments(body: dict) -> dict:
    """Check the JSON types of an ask; the service checks the values."""
    fields: dict[str, list[str]] = {}
    unknown = sorted(set(body) - ASK_FIELDS)
    for name in unknown:
        fields[name] = [f"Unknown field; the fields are {', '.join(sorted(ASK_FIELDS))}."]
    if "question" not in body:
        fields["question"] = ["This field is required."]
    elif not isinstance(body["question"], str):
        fields["question"] = ["Must be a string."]
    documents = body.get("documents")
    follow_up = body.get("follow_up")
    if follow_up is not None:
        if not isinstance(follow_up, str) or not _is_uuid(follow_up):
            fields["follow_up"] = ["Must be the id of a finished run (a string)."]
        if documents is not None:
            fields["documents"] = ["A follow-up uses the documents of the run it follows: leave this out."]
        if body.get("team") is not None:
            fields["team"] = ["A follow-up belongs to the team of the run it follows: leave this out."]
    elif documents is None:
        fields["documents"] = ["This field is required: a list of document ids."]
    elif not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
        fields["documents"] = ["Must be a list of document ids (strings)."]
    for name in ("mode", "root_model", "sub_model"):
        if name in body and not isinstance(body[name], str):
            fields[name] = ["Must be a string."]
    if "limits" in body and not isinstance(body["limits"], dict):
        fields["limits"] = ["Must be an object, e.g. {\"max_iterations\": 10}."]
    if fields:
        raise Invalid("Invalid request.", fields=fields)
    arguments = {"question": body["question"], "limits": body.get("limits")}
    if follow_up is None:
        arguments["document_ids"] = documents
    for name in ("mode", "root_model", "sub_model"):
        if name in body:
            arguments[name] = body[name]
    return arguments


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _ask_follow_up(request: ApiRequest, arguments: dict, previous_id: str) -> Run:
    previous = selectors.run_get_for_user(request.user, previous_id)
    if previous is None:
        raise Invalid("Invalid request.", fields={"follow_up": ["No such run."]})
    return run_follow_up(request.user, previous, **arguments)


@api_view(("GET", "POST"))
def runs_collection(request: ApiRequest) -> JsonResponse:
    """GET: the team's runs, newest first (?status=, ?mode=, ?q=, ?page=). POST: ask."""
    if request.method == "POST":
        body = json_body(request)
        if body.get("follow_up") is not None:
            arguments = _ask_arguments(body)
            return JsonResponse(run_json(_ask_follow_up(request, arguments, body["follow_up"])), status=201)
        team = team_for_request(request, body.get("team"))
        arguments = _ask_arguments(body)
        run = services.run_create(request.user, team, **arguments)
        return JsonResponse(run_json(run), status=201)
    team = team_for_request(request)
    runs = selectors.run_list_filtered(
        team, request.GET.get("status", ""), request.GET.get("mode", ""), request.GET.get("q", "")
    )
    per_page = int_param(request, "per_page", 50, 1, 200)
    page = Paginator(runs, per_page).get_page(request.GET.get("page"))
    return JsonResponse(
        {
            "team": team.pk,
            "page": page.number,
            "pages": page.paginator.num_pages,
            "count": page.paginator.count,
            "runs": [run_json(run) for run in page.object_list],
        }
    )


@api_view(("GET",))
def models_list(request: ApiRequest) -> JsonResponse:
    return JsonResponse(
        {
            "models": [
                {
                    "model": m.model,
                    "label": m.label,
                    "offline": m.offline,
                    "available": m.available,
                    "how_to_enable": m.how_to_enable,
                }
                for m in model_choices()
            ],
            "modes": [{"mode": value, "label": label} for value, label in Run._meta.get_field("mode").choices],  # type: ignore[union-attr]  # (it has choices)
            "limits": {
                name: {"type": kind.__name__, "min": low, "max": high, "default": default}
                for name, (kind, low, high, default) in services.LIMITS.items()
            },
        }
    )


@api_view(("GET", "DELETE"))
def run_detail(request: ApiRequest, run_id) -> JsonResponse:
    """GET: the run. DELETE: delete a finished run (409 while it is queued or running: cancel first)."""
    run = _run(request, run_id)
    if request.method == "DELETE":
        services.run_delete(request.user, run)
        return JsonResponse({"deleted": True, "id": str(run.pk)})
    return JsonResponse({**run_json(run), "conversation": thread_json(run)})


@api_view(("GET",))
def run_events(request: ApiRequest, run_id) -> JsonResponse:
    """Events with seq > since, in order; `more` says whether to ask again from the last seq."""
    run = _run(request, run_id)
    since = int_param(request, "since", 0, 0, 2**31 - 1)
    limit = int_param(request, "limit", 1000, 1, selectors.MAX_EVENTS_PER_REQUEST)
    return JsonResponse(selectors.run_events_page(run.pk, since, limit))


@api_view(("POST",))
def run_cancel(request: ApiRequest, run_id) -> JsonResponse:
    run = _run(request, run_id)
    run = services.run_cancel(request.user, run)
    return JsonResponse(run_json(run), status=202 if not run.is_finished else 200)


@api_view(("POST",))
def run_rerun(request: ApiRequest, run_id) -> JsonResponse:
    """Ask again with some settings changed: any ask field may be given (limits merge)."""
    run = _run(request, run_id)
    body = json_body(request)
    unknown = sorted(set(body) - (ASK_FIELDS - {"team"}))
    if unknown:
        raise Invalid("Invalid request.", fields={n: ["Unknown field."] for n in unknown})
    overrides = {}
    for name, target in (("question", "question"), ("documents", "document_ids"), ("mode", "mode"),
                         ("root_model", "root_model"), ("sub_model", "sub_model"), ("limits", "limits")):
        if name in body:
            overrides[target] = body[name]
    if "limits" in body and not isinstance(body["limits"], dict):
        raise Invalid("Invalid request.", fields={"limits": ["Must be an object."]})
    new = services.run_rerun(request.user, run, **overrides)
    return JsonResponse(run_json(new), status=201)
