"""Comments JSON (session with CSRF, or an API token — `api_view`).

GET  /api/comments/runs/<run_id>/   {"comments": [...], "can_comment": bool}
POST /api/comments/runs/<run_id>/   {"body", "target_kind": "run"|"cell"|"node", "target_id"} → 201
PATCH  /api/comments/<comment_id>/  {"body"}: the author
DELETE /api/comments/<comment_id>/  the author, admins, owners (soft delete)

A run (or comment) of a team the user is not in is a 404. Authors are shown by username only.
"""

from django.http import HttpResponse, JsonResponse

from apps.accounts.requests import ApiRequest
from apps.runs import selectors as run_selectors
from apps.teams.permissions import can, role_can, role_in
from rlmweb.web.api import api_view, json_body
from rlmweb.web.errors import Invalid, NotFound

from . import services
from .models import Comment

FIELDS = {"body", "target_kind", "target_id"}


def comment_json(comment: Comment, user, role: str | None) -> dict:
    return {
        "id": str(comment.pk),
        "author": comment.author.get_username() if comment.author else None,
        "body": comment.body,
        "target_kind": comment.target_kind,
        "target_id": comment.target_id,
        "created_at": comment.created_at.isoformat(),
        "edited_at": comment.edited_at.isoformat() if comment.edited_at else None,
        "can_edit": services.can_edit(user, comment, role),
        "can_delete": services.can_delete(user, comment, role),
    }


@api_view(("GET", "POST"))
def run_comments(request: ApiRequest, run_id) -> JsonResponse:
    run = run_selectors.run_get_for_user(request.user, run_id)
    if run is None:
        raise NotFound("No such run.")
    role = role_in(request.user, run.team)
    if request.method == "POST":
        body = json_body(request)
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            raise Invalid("Invalid request.", fields={name: ["Unknown field."] for name in unknown})
        comment = services.comment_create(request.user, run, body.get("body"),
                                          body.get("target_kind", "run"), body.get("target_id", ""))
        return JsonResponse(comment_json(comment, request.user, role), status=201)
    comments = services.comments_for_run(run)
    return JsonResponse({
        "run": str(run.pk),
        "can_comment": role_can(role, "create"),
        "comments": [comment_json(c, request.user, role) for c in comments],
    })


@api_view(("PATCH", "DELETE"))
def comment_detail(request: ApiRequest, comment_id) -> HttpResponse:
    comment = Comment.objects.select_related("run__team", "author").filter(pk=comment_id, deleted_at__isnull=True).first()
    if comment is None or not can(request.user, "view", comment.run.team):
        raise NotFound("No such comment.")
    if request.method == "DELETE":
        services.comment_delete(request.user, comment)
        return HttpResponse(status=204)
    body = json_body(request)
    comment = services.comment_edit(request.user, comment, body.get("body"))
    return JsonResponse(comment_json(comment, request.user, role_in(request.user, comment.run.team)))
