from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.documents.selectors import document_list_for_team
from apps.runs.selectors import run_list_for_team

from .forms import SignupForm
from .models import ApiToken


@login_required
def home(request):
    team = request.team
    return render(
        request,
        "home.html",
        {
            "documents": document_list_for_team(team)[:10],
            "runs": run_list_for_team(team)[:10],
        },
    )


def signup(request):
    if not settings.SIGNUP_ENABLED:
        raise Http404("Sign-up is switched off on this server; ask an administrator for an account.")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="apps.accounts.throttle.ThrottledModelBackend")
        messages.success(request, "Welcome to rlmweb.")
        return redirect("home")
    return render(request, "registration/signup.html", {"form": form})


@login_required
def tokens(request):
    return render(request, "accounts/tokens.html", {"tokens": request.user.api_tokens.order_by("-created_at")})


@login_required
@require_POST
def token_create(request):
    name = (request.POST.get("name") or "token").strip()[:100] or "token"
    _, raw = ApiToken.issue(request.user, name)
    return render(request, "accounts/tokens.html", {"tokens": request.user.api_tokens.order_by("-created_at"), "new_token": raw})


@login_required
@require_POST
def token_delete(request, token_id: int):
    request.user.api_tokens.filter(pk=token_id).delete()
    messages.info(request, "Token revoked.")
    return redirect("tokens")
