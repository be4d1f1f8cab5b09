"""The start page: the current team's latest documents and runs. It reads two apps, so it lives in
the project, above every app (no app imports it)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render

from apps.accounts.requests import AuthenticatedRequest
from apps.documents.selectors import document_list_for_team
from apps.runs.selectors import run_list_for_team


@login_required
def home(request: AuthenticatedRequest) -> HttpResponse:
    team = request.team  # None for a user in no team: nothing to list
    return render(
        request,
        "home.html",
        {
            "documents": document_list_for_team(team)[:10] if team is not None else [],
            "runs": run_list_for_team(team)[:10] if team is not None else [],
        },
    )
