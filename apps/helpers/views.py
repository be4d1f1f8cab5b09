"""Pages for the team's REPL helpers: list, create or edit (a new version), deactivate, test."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.documents.models import Document, DocumentStatus
from apps.teams.permissions import can

from . import services


def _documents(team):
    return Document.objects.filter(team=team, status=DocumentStatus.READY).order_by("-created_at")[:100]


@login_required
@require_GET
def helper_list(request):
    team = request.team
    if not can(request.user, "view", team):
        raise Http404("No such team.")
    helpers = services.helpers_for_team(team, active_only=False).prefetch_related("versions")
    return render(request, "helpers/helper_list.html", {
        "helpers": helpers, "can_manage": services.can_manage(request.user, team)})


@login_required
def helper_edit(request, helper_id=None):
    team = request.team
    helper = None
    if helper_id is not None:
        helper = services.helper_get_for_user(request.user, helper_id)
        if helper is None or helper.team_id != team.pk:
            raise Http404("No such helper.")
    elif not can(request.user, "view", team):
        raise Http404("No such team.")
    current = helper.current if helper else None
    name = helper.name if helper else request.POST.get("name", "")
    source = request.POST.get("source", current.source if current else "")
    errors: dict = {}
    status = 200
    if request.method == "POST":
        try:
            version = services.helper_save(request.user, team, name, source, helper)
        except ValidationError as exc:
            errors, status = exc.message_dict, 400
        except services.HelperNotFound:
            raise Http404("No such helper.") from None
        else:
            messages.success(request, f"Saved {version.helper.name} version {version.version}.")
            return redirect("helper_edit", helper_id=version.helper.pk)
    elif request.method != "GET":
        return render(request, "helpers/helper_edit.html", {}, status=405)
    return render(request, "helpers/helper_edit.html", {
        "helper": helper, "name": name, "source": source, "errors": errors,
        "general_error": (errors.get("__all__") or [""])[0],
        "versions": helper.versions.all() if helper else [], "documents": _documents(team),
        "can_manage": services.can_manage(request.user, team),
    }, status=status)


@login_required
@require_POST
def helper_deactivate(request, helper_id):
    helper = services.helper_get_for_user(request.user, helper_id)
    if helper is None:
        raise Http404("No such helper.")
    services.helper_deactivate(request.user, helper)
    messages.success(request, f"{helper.name} is no longer loaded into new runs.")
    return redirect("helper_list")


@login_required
@require_POST
def helper_test(request):
    team = request.team
    name, source = request.POST.get("name", ""), request.POST.get("source", "")
    try:
        result = services.helper_test(request.user, team, name, source, request.POST.get("document", ""),
                                      request.POST.get("expression", ""))
        errors, status = {}, 200
    except ValidationError as exc:
        result, errors, status = None, exc.message_dict, 400
    except services.HelperNotFound:
        raise Http404("No such team.") from None
    except PermissionDenied:
        raise
    return render(request, "helpers/helper_test.html", {
        "name": name, "source": source, "result": result, "errors": errors,
        "expression": request.POST.get("expression", ""), "documents": _documents(team),
        "document": request.POST.get("document", "")}, status=status)
