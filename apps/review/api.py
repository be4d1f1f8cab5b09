"""JSON API for feedback on a run's answer (token or session via `api_view`).

GET  /api/review/runs/<id>/feedback/  -> {"run", "counts": {"up", "down"}, "mine": {"rating", "comment"} | null}
POST /api/review/runs/<id>/feedback/  {"rating": "up"|"down", "comment": "..."} -> the same, updated

A run of another team is a 404, like a run that does not exist.
"""

from django.http import JsonResponse

from apps.accounts.requests import ApiRequest
from apps.runs.models import Run
from apps.teams.permissions import can
from rlmweb.web.api import api_view, json_body
from rlmweb.web.errors import Invalid, NotFound

from . import services
from .views import feedback_payload


@api_view(("GET", "POST"))
def run_feedback(request: ApiRequest, run_id) -> JsonResponse:
    run = Run.objects.select_related("team").filter(pk=run_id).first()
    if run is None or not can(request.user, "view", run.team):
        raise NotFound("No such run.")
    if request.method == "POST":
        body = json_body(request)
        try:
            services.feedback_submit(request.user, run, body.get("rating", ""), body.get("comment") or "")
        except services.FeedbackInvalid as exc:
            raise Invalid(str(exc), fields={"rating": [str(exc)]}) from None
    return JsonResponse(feedback_payload(request.user, run))
