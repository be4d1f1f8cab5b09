"""Pages of evaluations: list, new, results (progress, matrix, plots, cases), progress JSON,
export, cancel, resume, compare. An evaluation of a team the user is not in is a 404.

The results page reads EvalCase rows (one narrow query for the matrix, one page of cases), never
the runs' events. While the evaluation runs, static/evals/progress.js (a file, not an inline
script: a strict CSP is coming) updates it from the websocket `ws/evals/<id>/`; without
JavaScript a meta refresh reloads it. `progress.json` serves the same numbers to scripts and tools.
"""

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.teams.permissions import can, can_change

from . import charts, selectors, services
from .export import cases_csv
from .forms import EvaluationForm
from .models import Evaluation

CASES_PER_PAGE = 100
REFRESH_S = 5


def _evaluation_or_404(request, evaluation_id) -> Evaluation:
    try:
        uuid.UUID(str(evaluation_id))
    except ValueError:
        raise Http404("No such evaluation.") from None
    evaluation = selectors.evaluation_get_for_user(request.user, evaluation_id)
    if evaluation is None:
        raise Http404("No such evaluation.")
    return evaluation


@login_required
@require_GET
def evaluation_list(request):
    evaluations = list(selectors.evaluation_list_for_team(request.team)[:100])
    counts = selectors.case_counts([e.pk for e in evaluations])
    rows = [(e, counts[e.pk]) for e in evaluations]
    return render(request, "evals/evaluation_list.html", {
        "rows": rows, "can_create": can(request.user, "create", request.team)})


def _create(request, form: EvaluationForm) -> Evaluation | None:
    data = form.cleaned_data
    upload = data.get("question_file")
    question_file = None
    if upload is not None:
        try:
            question_file = services.QuestionFile(upload.name, upload.read().decode("utf-8"))
        except UnicodeDecodeError:
            form.add_error("question_file", "The question file must be UTF-8 text.")
            return None
    try:
        evaluation = services.evaluation_create(
            request.user, request.team, data["suite"], data["models"], data["modes"], data["sizes"], data["cases"],
            data["seed"] or 0, data["documents"], question_file, data.get("max_cost_usd"), data["concurrency"],
            data.get("judge_model") or "", data.get("scorer") or "", data.get("name") or "",
            sub_model=data.get("sub_model") or "", depths=data.get("depths") or None, prepare=False,
        )
    except ValidationError as exc:
        form.add_service_errors(exc)
        return None
    return evaluation


@login_required
def evaluation_new(request):
    if request.method == "POST":
        if not can(request.user, "create", request.team):
            raise PermissionDenied("Your role in this team does not allow running evaluations.")
        form = EvaluationForm(request.POST, request.FILES, team=request.team)
        if form.is_valid():
            evaluation = _create(request, form)
            if evaluation is not None:
                return redirect("evaluation_detail", evaluation_id=evaluation.pk)
        return render(request, "evals/evaluation_new.html", {"form": form}, status=400)
    return render(request, "evals/evaluation_new.html", {"form": EvaluationForm(team=request.team)})


def _results_context(request, evaluation: Evaluation) -> dict:
    """What the results page shows, for members and share-link holders alike."""
    progress = selectors.progress(evaluation)
    cells = progress["matrix"]
    by_cost, unpriced = charts.accuracy_by_cost(cells)
    page = Paginator(selectors.case_list(evaluation).select_related("run"), CASES_PER_PAGE).get_page(
        request.GET.get("page"))
    return {
        "evaluation": evaluation,
        "progress": progress,
        "cells": cells,
        "plot_by_size": charts.accuracy_by_size(cells),
        "plot_by_cost": by_cost,
        "unpriced_cells": unpriced,
        "page": page,
    }


@login_required
@require_GET
def evaluation_detail(request, evaluation_id):
    evaluation = _evaluation_or_404(request, evaluation_id)
    allowed = can_change(request.user, evaluation.team, evaluation.created_by_id)
    return render(request, "evals/evaluation_detail.html", {
        **_results_context(request, evaluation),
        "refresh_s": REFRESH_S if evaluation.is_active else None,
        "can_change": allowed,
        "share_links": selectors.share_links_of(evaluation) if allowed else [],
        "others": selectors.evaluation_list_for_team(evaluation.team).exclude(pk=evaluation.pk)[:50],
    })


@require_GET
def evaluation_shared(request, token):
    """The results of an evaluation for anyone holding an unrevoked share link: read-only."""
    evaluation = selectors.evaluation_for_token(token)
    if evaluation is None:
        raise Http404("This link does not open anything (revoked, or never existed).")
    response = render(request, "evals/evaluation_detail.html", {**_results_context(request, evaluation),
                                                                  "shared": True})
    response["Cache-Control"] = "private, no-store"
    response["Referrer-Policy"] = "no-referrer"  # the token is in the URL
    return response


@login_required
@require_POST
def evaluation_share(request, evaluation_id):
    evaluation = _evaluation_or_404(request, evaluation_id)
    _, raw = services.evaluation_share_create(request.user, evaluation)
    url = request.build_absolute_uri(reverse("evaluation_shared", args=[raw]))
    messages.success(request, f"Anyone with this link can read the results (shown once): {url}")
    return redirect("evaluation_detail", evaluation_id=evaluation.pk)


@login_required
@require_POST
def evaluation_share_revoke(request, evaluation_id, link_id):
    evaluation = _evaluation_or_404(request, evaluation_id)
    link = evaluation.share_links.filter(pk=link_id).first()
    if link is None:
        raise Http404("No such link.")
    services.evaluation_share_revoke(request.user, link)
    messages.info(request, "Link revoked.")
    return redirect("evaluation_detail", evaluation_id=evaluation.pk)


@login_required
@require_GET
def evaluation_progress(request, evaluation_id):
    evaluation = _evaluation_or_404(request, evaluation_id)
    return JsonResponse({"evaluation_id": str(evaluation.pk), **selectors.progress(evaluation)})


@login_required
@require_GET
def evaluation_export(request, evaluation_id, fmt):
    evaluation = _evaluation_or_404(request, evaluation_id)
    if fmt not in ("csv", "json"):
        raise Http404("Export as csv or json.")
    if fmt == "csv":
        response = HttpResponse(cases_csv(evaluation), content_type="text/csv; charset=utf-8")
    else:
        response = JsonResponse(selectors.evaluation_result(evaluation), json_dumps_params={"ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="evaluation-{evaluation.pk}.{fmt}"'
    return response


@login_required
@require_POST
def evaluation_cancel(request, evaluation_id):
    evaluation = _evaluation_or_404(request, evaluation_id)
    services.evaluation_cancel(request.user, evaluation)
    messages.info(request, "Evaluation cancelled; scored cases are kept. Resume runs the rest.")
    return redirect("evaluation_detail", evaluation_id=evaluation.pk)


@login_required
@require_POST
def evaluation_resume(request, evaluation_id):
    evaluation = _evaluation_or_404(request, evaluation_id)
    raw = request.POST.get("max_cost_usd", "").strip()
    try:
        cap = float(raw) if raw else None
    except ValueError:
        cap = None
    if cap is not None and cap <= 0:
        cap = None
    services.evaluation_resume(request.user, evaluation, cap)
    return redirect("evaluation_detail", evaluation_id=evaluation.pk)


@login_required
@require_GET
def evaluation_compare(request):
    a = _evaluation_or_404(request, request.GET.get("a", ""))
    b = _evaluation_or_404(request, request.GET.get("b", ""))
    left = {(c["model"], c["mode"], c["size"]): c for c in selectors.matrix(a)}
    right = {(c["model"], c["mode"], c["size"]): c for c in selectors.matrix(b)}
    rows = []
    for key in list(left) + [k for k in right if k not in left]:
        ca, cb = left.get(key), right.get(key)
        delta = None
        if ca and cb and ca["accuracy"] is not None and cb["accuracy"] is not None:
            delta = cb["accuracy"] - ca["accuracy"]
        rows.append({"model": key[0], "mode": key[1], "size": key[2], "a": ca, "b": cb, "delta": delta})
    return render(request, "evals/evaluation_compare.html", {"a": a, "b": b, "rows": rows})
