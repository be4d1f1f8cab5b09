"""JSON API for a run's share links (token or session with CSRF, via `api_view`).

GET  /api/sharing/runs/<run_id>/        the run's links (creator and admins only)
POST /api/sharing/runs/<run_id>/        {"expires_in_days": 7 | null, "show_document_text": false}
                                        → 201 with the link's URL, shown once
DELETE /api/sharing/links/<link_id>/    revoke
"""

from django.http import JsonResponse
from django.urls import reverse

from apps.accounts.requests import ApiRequest
from apps.runs import selectors as run_selectors
from rlmweb.web.api import api_view, json_body
from rlmweb.web.errors import Forbidden, Invalid, NotFound

from . import services
from .models import ShareLink


def link_json(link: ShareLink) -> dict:
    return {
        "id": str(link.pk),
        "run": str(link.run_id),
        "prefix": link.prefix,
        "created_at": link.created_at.isoformat(),
        "created_by": link.created_by.get_username() if link.created_by else None,
        "expires_at": link.expires_at.isoformat() if link.expires_at else None,
        "revoked_at": link.revoked_at.isoformat() if link.revoked_at else None,
        "state": link.state,
        "view_count": link.view_count,
        "show_document_text": link.show_document_text,
    }


@api_view(("GET", "POST"))
def run_links(request: ApiRequest, run_id) -> JsonResponse:
    run = run_selectors.run_get_for_user(request.user, run_id)
    if run is None:
        raise NotFound("No such run.")
    if request.method == "GET":
        if not services.can_share(request.user, run):
            raise Forbidden("Only the run's creator or the team's admins manage its share links.")
        return JsonResponse({"links": [link_json(link) for link in services.share_links_for_run(run)]})
    body = json_body(request)
    unknown = sorted(set(body) - {"expires_in_days", "show_document_text"})
    if unknown:
        raise Invalid("Invalid request.", fields={name: ["Unknown field."] for name in unknown})
    show = body.get("show_document_text", False)
    if not isinstance(show, bool):
        raise Invalid("show_document_text must be true or false.")
    link, raw = services.share_create(request.user, run, body.get("expires_in_days"), show)
    url = request.build_absolute_uri(reverse("share_page", args=[raw]))
    return JsonResponse({**link_json(link), "url": url, "token": raw}, status=201)


@api_view(("DELETE",))
def link_detail(request: ApiRequest, link_id) -> JsonResponse:
    link = services.share_link_for_user(request.user, link_id)
    if link is None:
        raise NotFound("No such share link.")
    services.share_revoke(request.user, link)
    return JsonResponse(link_json(link))
