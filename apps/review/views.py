"""Pages of the review app: feedback on a run (any member), the review queue and summary (staff).

Feedback on a run of a team the user does not belong to is a 404, like a run that does not exist.
"""


from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseBadRequest, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.runs.models import Mode, Run
from apps.teams.models import Team
from rlmweb.ids import parse_id
from rlmweb.web.api import json_body
from rlmweb.web.errors import NotFound, ServiceError, json_error

from . import charts, selectors, services
from .classify import PATTERNS
from .export import ImportFailed, export_lines, import_lines
from .forms import ImportForm
from .models import PATTERN_LABELS, Label, Outcome, ReviewState, RunReview

REVIEWS_PER_PAGE = 50
BULK_ACTIONS = ("set_state", "assign_me", "assign", "unassign", "label", "unlabel", "export")


def feedback_payload(user, run: Run) -> dict:
    mine = selectors.feedback_of(user, run)
    return {
        "run": str(run.pk),
        "counts": selectors.feedback_counts(run),
        "mine": {"rating": "up" if mine.rating > 0 else "down", "comment": mine.comment} if mine else None,
    }


@login_required
@require_POST
def run_feedback(request, run_id):
    """Thumbs up/down and a comment from the run page: a plain form (redirects back) or JSON (answers JSON)."""
    wants_json = request.content_type == "application/json"
    run = Run.objects.select_related("team").filter(pk=run_id).first()
    try:
        body = json_body(request) if wants_json else request.POST
        if run is None:
            raise services.RunNotVisible("No such run.")
        services.feedback_submit(request.user, run, body.get("rating", ""), body.get("comment", ""))
    except ServiceError as exc:
        if wants_json:
            return json_error(exc)
        if isinstance(exc, NotFound):
            raise Http404(exc.message) from None
        messages.error(request, f"Feedback not saved: {exc}")
    else:
        if wants_json:
            return JsonResponse(feedback_payload(request.user, run))
        messages.success(request, "Thanks for the feedback.")
    target = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = ""
    assert run is not None  # (else RunNotVisible above)
    return redirect(target or reverse("run_detail", args=[run.pk]))


def _queue_context(request) -> dict:
    return {
        "outcomes": Outcome.choices,
        "patterns": [(p, PATTERN_LABELS[p]) for p in PATTERNS],
        "modes": Mode.choices,
        "states": ReviewState.choices,
        "cost_buckets": [(key, label) for key, label, _, _ in selectors.COST_BUCKETS],
        "feedback_filters": selectors.FEEDBACK_FILTERS,
        "models": selectors.model_choices(),
        "teams": Team.objects.order_by("name"),
        "labels": Label.objects.all(),
        "reviewers": selectors.reviewers(),
        "params": {k: request.GET.get(k, "") for k in selectors.FILTER_KEYS},
    }


@staff_member_required
@require_GET
def queue(request):
    """Staff review queue: the admin's filters, links to the explorer, state changes and bulk actions."""
    reviews = selectors.review_filter(selectors.review_list(), request.GET, user=request.user)
    page = Paginator(reviews, REVIEWS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "review/queue.html", {
        **_queue_context(request), "page": page, "query": query.urlencode(), "import_form": ImportForm(),
    })


def _back_to_queue(request):
    target = request.POST.get("next") or ""
    if not target.startswith("/review/"):
        target = reverse("review_queue")
    return redirect(target)


def _unknown_reviewer() -> HttpResponseBadRequest:
    return HttpResponseBadRequest("Unknown reviewer: reviews can be assigned to active staff only.")


@staff_member_required
@require_POST
def review_update(request, review_id):
    """One row's state and assignee from the queue."""
    review = get_object_or_404(RunReview, pk=review_id)
    reviews = RunReview.objects.filter(pk=review.pk)
    if request.POST.get("state") in ReviewState.values:
        services.reviews_set_state(reviews, request.POST["state"])
    assignee = request.POST.get("assignee")
    if assignee == "me":
        services.reviews_assign(reviews, request.user)
    elif assignee == "none":
        services.reviews_assign(reviews, None)
    elif assignee:
        reviewer = selectors.reviewer(assignee)
        if reviewer is None:
            return _unknown_reviewer()
        services.reviews_assign(reviews, reviewer)
    messages.success(request, "Review updated.")
    return _back_to_queue(request)


@staff_member_required
@require_POST
def bulk(request):
    """A bulk action over the reviews ticked in the queue."""
    action = request.POST.get("action", "")
    ids = [i for i in map(parse_id, request.POST.getlist("review")) if i is not None]
    if action not in BULK_ACTIONS:
        return HttpResponseBadRequest("Unknown action.")
    if not ids:
        messages.info(request, "Select at least one run first.")
        return _back_to_queue(request)
    reviews = RunReview.objects.filter(pk__in=ids)
    if action == "export":
        return jsonl_response(run for run in Run.objects.filter(review__in=reviews).order_by("created_at"))
    if action == "set_state":
        if request.POST.get("state") not in ReviewState.values:
            return HttpResponseBadRequest("Unknown state.")
        done = services.reviews_set_state(reviews, request.POST["state"])
    elif action in ("assign_me", "unassign"):
        done = services.reviews_assign(reviews, request.user if action == "assign_me" else None)
    elif action == "assign":
        reviewer = selectors.reviewer(request.POST.get("assignee"))
        if reviewer is None:
            return _unknown_reviewer()
        done = services.reviews_assign(reviews, reviewer)
    else:
        label = Label.objects.filter(pk=request.POST.get("label") or 0).first()
        if label is None:
            return HttpResponseBadRequest("Unknown label.")
        change = services.reviews_add_label if action == "label" else services.reviews_remove_label
        done = change(reviews, label)
    messages.success(request, f"Updated {done} review(s).")
    return _back_to_queue(request)


def jsonl_response(runs) -> StreamingHttpResponse:
    response = StreamingHttpResponse(export_lines(runs), content_type="application/jsonl; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="rlmweb-runs-{stamp}.jsonl"'
    return response


@staff_member_required
@require_http_methods(["GET", "POST"])
def import_runs(request):
    """Upload a JSONL export; its runs join the chosen team and open in the explorer. A GET (a reload
    after a failed import, a bookmark) goes to the queue, where the import form is."""
    if request.method == "GET":
        return redirect("review_queue")
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Import failed: " + "; ".join(str(e) for errors in form.errors.values() for e in errors))
        return _back_to_queue(request)
    upload = form.cleaned_data["file"]
    try:
        runs = import_lines(upload, form.cleaned_data["team"], request.user, source=upload.name)
    except ImportFailed as exc:
        messages.error(request, f"Import failed: {exc}")
        return _back_to_queue(request)
    messages.success(request, f"Imported {len(runs)} run(s) into {form.cleaned_data['team'].name}.")
    return redirect(reverse("review_queue") + f"?team={form.cleaned_data['team'].pk}")


@staff_member_required
@require_GET
def summary(request):
    """Failure counts by class and pattern per day, cost of failed runs, per model and mode."""
    try:
        days = max(1, min(365, int(request.GET.get("days", 30))))
    except ValueError:
        days = 30
    data = selectors.review_summary(days)
    outcome_labels = dict(Outcome.choices)
    return render(request, "review/summary.html", {
        "days": days,
        "summary": data,
        "outcome_chart": charts.stacked_bars(data.days, data.by_outcome, outcome_labels,
                                             "Runs per day by outcome class (all but plain success)"),
        "pattern_chart": charts.stacked_bars(data.days, data.by_pattern, PATTERN_LABELS, "Runs per day by pattern"),
        "cost_chart": charts.stacked_bars(data.days, {"failed": data.failed_cost}, {"failed": "Cost of failed runs"},
                                          "Cost of failed runs per day", money=True),
        "model_chart": charts.horizontal_bars([(r["key"], r["failed"]) for r in data.by_model],
                                              "Failed runs per root model"),
        "mode_chart": charts.horizontal_bars([(r["key"], r["failed"]) for r in data.by_mode], "Failed runs per mode"),
        "model_cost_chart": charts.horizontal_bars([(r["key"], r["failed_cost"] or 0) for r in data.by_model],
                                                   "Cost of failed runs per root model", money=True),
        "mode_cost_chart": charts.horizontal_bars([(r["key"], r["failed_cost"] or 0) for r in data.by_mode],
                                                  "Cost of failed runs per mode", money=True),
    })
