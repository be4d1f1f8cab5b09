from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from .forms import SignupForm
from .models import ApiToken


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


# Days a new token may live ("" is never), as offered on the tokens page.
TOKEN_EXPIRY_CHOICES = {"7": "7 days", "30": "30 days", "90": "90 days", "365": "1 year"}


@login_required
def tokens(request):
    return render(request, "accounts/tokens.html", {"tokens": request.user.api_tokens.order_by("-created_at"),
                                                    "expiry_choices": TOKEN_EXPIRY_CHOICES})


@login_required
@require_POST
def token_create(request):
    name = (request.POST.get("name") or "token").strip()[:100] or "token"
    days = request.POST.get("expires_in_days") or ""
    if days and days not in TOKEN_EXPIRY_CHOICES:
        messages.error(request, "Choose an expiry from the list.")
        return redirect("tokens")
    _, raw = ApiToken.issue(request.user, name, expires_in_days=int(days) if days else None,
                            read_only=request.POST.get("read_only") == "on")
    return render(request, "accounts/tokens.html", {"tokens": request.user.api_tokens.order_by("-created_at"),
                                                    "new_token": raw, "expiry_choices": TOKEN_EXPIRY_CHOICES})


@login_required
@require_POST
def token_delete(request, token_id: int):
    request.user.api_tokens.filter(pk=token_id).delete()
    messages.info(request, "Token revoked.")
    return redirect("tokens")
