"""The start page: the current team's latest documents and runs. It reads two apps, so it lives in
the project, above every app (no app imports it)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.documents.selectors import document_list_for_team
from apps.runs.selectors import run_list_for_team


@login_required
def home(request: HttpRequest) -> HttpResponse:
    team = request.team
    return render(
        request,
        "home.html",
        {
            "documents": document_list_for_team(team)[:10],
            "runs": run_list_for_team(team)[:10],
        },
    )
