"""Pages about runs: ask, list, the live run page, cancel, re-run, delete, compare, JSON for the explorer.

A run of a team the user does not belong to is a 404, the same as a run that does not exist.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.teams.permissions import can, can_change, role_can, role_in
from rlmweb.web.errors import ServiceError
from worker.engine.llm import ModelOptions, context_window

from . import compare, selectors, services
from .conversations import run_follow_up as run_follow_up_service
from .conversations import run_thread, run_thread_rows
from .forms import RunForm
from .models import Mode, Run, RunStatus
from .services import LIMITS

RUNS_PER_PAGE = 25


def _run_or_404(request, run_id) -> Run:
    run = selectors.run_get_for_user(request.user, run_id)
    if run is None:
        raise Http404("No such run.")
    return run


def _ask(request, form: RunForm, team, rerun_of: Run | None):
    """Create the run from a valid form, or put the service's errors on the form."""
    try:
        if rerun_of is not None:
            run = services.run_rerun(request.user, rerun_of, **form.ask_arguments())
        else:
            run = services.run_create(request.user, team, **form.ask_arguments())
    except (ValidationError, ServiceError) as exc:
        form.add_service_errors(exc)
        return None
    return run


def _model_windows(form: RunForm) -> list[tuple]:
    """(model choice, its input window in tokens or None): what the engine's direct mode checks against."""
    return [(m, context_window(m.model, ModelOptions(context_window=m.context_window))) for m in form.models]


def _ask_page(request, form: RunForm, rerun_of: Run | None = None, status: int = 200):
    return render(
        request,
        "runs/run_new.html",
        {
            "form": form,
            "rerun_of": rerun_of,
            "can_create": can(request.user, "create", request.team),
            "selected": form.selected_documents(),
            "model_windows": _model_windows(form),
        },
        status=status,
    )


@login_required
def run_new(request):
    team = request.team
    if request.method == "POST":
        if not can(request.user, "create", team):
            raise PermissionDenied("Your role in this team does not allow asking questions.")
        form = RunForm(request.POST, team=team)
        if form.is_valid():
            run = _ask(request, form, team, None)
            if run is not None:
                return redirect("run_detail", run_id=run.pk)
        return _ask_page(request, form, status=400)
    preselected = [d for d in request.GET.get("documents", "").split(",") if d]
    form = RunForm(team=team, initial={"documents": preselected, "question": request.GET.get("question", "")})
    return _ask_page(request, form)


@login_required
def run_rerun(request, run_id):
    """The ask form prefilled from a run; submitting it creates a run that records `rerun_of`."""
    run = _run_or_404(request, run_id)
    if request.method == "POST":
        if not can(request.user, "create", run.team):
            raise PermissionDenied("Your role in this team does not allow asking questions.")
        form = RunForm(request.POST, team=run.team)
        if form.is_valid():
            new = _ask(request, form, run.team, run)
            if new is not None:
                return redirect("run_detail", run_id=new.pk)
        return _ask_page(request, form, rerun_of=run, status=400)
    initial = {
        "documents": [str(d.pk) for d in selectors.run_documents(run)],
        "question": run.question,
        "mode": run.mode,
        "root_model": run.root_model,
        "sub_model": run.sub_model,
        **{name: value for name, value in (run.limits or {}).items() if name in LIMITS},
    }
    return _ask_page(request, RunForm(team=run.team, initial=initial), rerun_of=run)


SORT_COLUMNS = [("question", "Question"), ("status", "Status"), ("model", "Model"), ("tokens", "Tokens"),
                ("subcalls", "Sub-calls"), ("cost", "Cost"), ("duration", "Duration"), ("created", "Asked")]
DESCENDING_FIRST = {"created", "tokens", "subcalls", "cost", "duration"}  # biggest / newest first on a click


def _sort_columns(sort: str, query: str) -> list[dict]:
    """Each sortable header: its link (the other direction when it is the current sort) and aria-sort."""
    current, descending = sort.removeprefix("-"), sort.startswith("-")
    prefix = f"?{query}&sort=" if query else "?sort="
    columns = []
    for name, label in SORT_COLUMNS:
        if name == current:
            target = name if descending else f"-{name}"
            aria = "descending" if descending else "ascending"
        else:
            target = f"-{name}" if name in DESCENDING_FIRST else name
            aria = "none"
        columns.append({"name": name, "label": label, "url": prefix + target, "aria_sort": aria})
    return columns


@login_required
@require_GET
def run_list(request):
    status = request.GET.get("status", "")
    mode = request.GET.get("mode", "")
    search = request.GET.get("q", "")
    model = request.GET.get("model", "")
    user = request.GET.get("user", "")
    sort = request.GET.get("sort", "-created")
    runs = selectors.run_list_filtered(request.team, status=status, mode=mode, search=search, model=model,
                                       user=user, sort=sort)
    page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    role = role_in(request.user, request.team)
    for run in page.object_list:  # the same rule as can_change, with the role looked up once
        changeable = role_can(role, "change_any") or (
            run.created_by_id == request.user.pk and role_can(role, "change_own"))
        run.deletable = run.is_finished and changeable
        run.cancellable = not run.is_finished and changeable
    query = request.GET.copy()
    query.pop("page", None)
    unsorted = query.copy()
    unsorted.pop("sort", None)
    choices = selectors.run_list_choices(request.team)
    return render(
        request,
        "runs/run_list.html",
        {
            "page": page,
            "runs": [(run, selectors.cost_display(run)) for run in page.object_list],
            "status": status,
            "mode": mode,
            "q": search,
            "model": model,
            "user_filter": user,
            "models": choices["models"],
            "users": choices["users"],
            "columns": _sort_columns(sort, unsorted.urlencode()),
            "filtered": bool(status or mode or search or model or user),
            "statuses": RunStatus.choices,
            "modes": Mode.choices,
            "query": query.urlencode(),
            "compare_url": reverse("run_compare"),
            "can_ask": role_can(role, "create"),
        },
    )


@login_required
@require_GET
def run_detail(request, run_id):
    run = _run_or_404(request, run_id)
    may_change = can_change(request.user, run.team, run.created_by_id)
    return render(
        request,
        "runs/run_detail.html",
        {
            "run": run,
            "documents": selectors.run_documents(run),
            "ws_path": f"/ws/runs/{run.pk}/",
            "events_url": reverse("run_events", args=[run.pk]),
            "trajectory_url": reverse("run_trajectory", args=[run.pk]),
            "cancel_url": reverse("run_cancel", args=[run.pk]),
            "rerun_url": reverse("run_rerun", args=[run.pk]),
            "cost_display": selectors.cost_display(run),
            "queue_note": selectors.run_queue_note(run),
            "can_cancel": not run.is_finished and may_change,
            "can_delete": may_change,
            "delete_url": reverse("run_delete", args=[run.pk]),
            "thread": run_thread_rows(run),
            "conversation_url": reverse("run_conversation", args=[run.pk]),
            "can_follow_up": run.is_finished and can(request.user, "create", run.team),
            "follow_up_url": reverse("run_follow_up", args=[run.pk]),
        },
    )


@login_required
@require_POST
def run_follow_up(request, run_id):
    """Ask a follow-up of a finished run; back to its page with the error when it cannot be asked."""
    run = _run_or_404(request, run_id)
    try:
        new = run_follow_up_service(request.user, run, request.POST.get("question", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(reverse("run_detail", args=[run.pk]) + "#conversation")
    except services.RunConflict as exc:
        messages.error(request, str(exc))
        return redirect(reverse("run_detail", args=[run.pk]) + "#conversation")
    return redirect("run_detail", run_id=new.pk)


@login_required
@require_GET
def run_conversation(request, run_id):
    """The runs of a conversation, oldest first: question, answer, cost, a link to each explorer."""
    run = _run_or_404(request, run_id)
    thread = run_thread_rows(run)
    last = run_thread(run)[-1]
    return render(request, "runs/run_conversation.html", {
        "run": run, "thread": thread, "last": last,
        "can_follow_up": last.is_finished and can(request.user, "create", run.team),
        "follow_up_url": reverse("run_follow_up", args=[last.pk]),
    })


@login_required
@require_POST
def run_cancel(request, run_id):
    run = _run_or_404(request, run_id)
    level = messages.SUCCESS
    try:
        run = services.run_cancel(request.user, run)
    except services.RunConflict as exc:
        level, note = messages.INFO, str(exc)
    else:
        note = ("Run cancelled." if run.status == RunStatus.CANCELLED
                else "Cancelling: the worker stops the run within a few seconds.")
    if request.headers.get("Accept", "").startswith("application/json"):
        # The page that asked shows the outcome itself: a flash message would only surface later, on
        # whatever page comes next, long after it stopped being true.
        return JsonResponse({"status": run.status, "cancel_requested": run.cancel_requested, "message": note})
    messages.add_message(request, level, note)
    target = request.POST.get("next", "")
    if target in (reverse("run_list"), reverse("run_detail", args=[run.pk])):
        return redirect(target)
    return redirect("run_detail", run_id=run.pk)


@login_required
@require_POST
def run_delete(request, run_id):
    """Delete a finished run (its events, comments, links…; not its documents) once confirmed."""
    run = _run_or_404(request, run_id)
    if request.POST.get("confirm") != "yes":
        if not can_change(request.user, run.team, run.created_by_id):
            raise PermissionDenied("Only the person who asked, or a team admin, can delete this run.")
        messages.error(request, "Tick the box to confirm that the run and its trajectory should be deleted.")
        return redirect(reverse("run_detail", args=[run.pk]) + "#delete-run")
    try:
        services.run_delete(request.user, run)
    except services.RunConflict as exc:
        messages.error(request, str(exc))
        return redirect("run_detail", run_id=run.pk)
    except services.RunNotFound:
        raise Http404("No such run.") from None
    messages.success(request, f"Deleted the run “{run.question[:80]}”; its documents are kept.")
    return redirect("run_list")


@login_required
@require_GET
def run_compare(request):
    if not request.GET.get("a") or not request.GET.get("b"):  # a bookmark or a bare link: pick them here
        messages.info(request, "Tick two runs in the list to compare them.")
        return redirect("run_list")
    a = selectors.run_get_for_user(request.user, request.GET.get("a", ""))
    b = selectors.run_get_for_user(request.user, request.GET.get("b", ""))
    if a is None or b is None:
        raise Http404("Pick two runs you can see to compare.")
    columns = [
        {"run": run, "documents": selectors.run_documents(run), "cost": selectors.cost_display(run)}
        for run in (a, b)
    ]
    shape_a, shape_b = (compare.run_shape(selectors.run_events_all(run.pk)) for run in (a, b))
    answer_a, answer_b = compare.word_diff(a.final_answer, b.final_answer)
    columns[0]["answer_html"], columns[1]["answer_html"] = answer_a, answer_b
    return render(
        request,
        "runs/run_compare.html",
        {
            "columns": columns,
            "same_question": a.question.strip() == b.question.strip(),
            "same_answer": a.final_answer.strip() == b.final_answer.strip(),
            "iterations": compare.iteration_rows(shape_a, shape_b),
            "cells": compare.aligned_cells(shape_a.cells, shape_b.cells),
        },
    )


@login_required
@require_GET
def run_trajectory(request, run_id):
    """The whole trajectory (run metadata and every event) as a JSON download."""
    run = _run_or_404(request, run_id)
    response = StreamingHttpResponse(selectors.run_trajectory_chunks(run), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="rlmweb-run-{run.pk}.json"'
    return response
