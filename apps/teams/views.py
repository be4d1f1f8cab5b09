from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from .services import teams_for_user


@login_required
@require_POST
def switch(request, team_id: int):
    if not teams_for_user(request.user).filter(pk=team_id).exists():
        raise Http404("No such team")
    request.session["team_id"] = team_id
    return redirect(request.POST.get("next") or "home")
