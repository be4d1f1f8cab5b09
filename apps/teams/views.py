"""Team pages: list and create, members and roles, invite links, delete, spending.

A team the user does not belong to is a 404, the same as one that does not exist. An action the
user's role does not allow is a 403 (the permission table is in `permissions.py`).
"""

from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import selectors, services
from .models import Invite, Membership, Role, Team
from .permissions import role_can, role_in
from .services import teams_for_user


def _team_or_404(request, team_id: int) -> tuple[Team, str]:
    team = Team.objects.filter(pk=team_id).first()
    role = role_in(request.user, team) if team is not None else None
    if team is None or role is None:
        raise Http404("No such team.")
    return team, role


def _error(request, exc: ValidationError) -> None:
    messages.error(request, " ".join(exc.messages))


def _positive_int(raw: str | None, default: int | None) -> int | None:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(f"{raw!r} is not a whole number.") from None


@login_required
@require_POST
def switch(request, team_id: int):
    if not teams_for_user(request.user).filter(pk=team_id).exists():
        raise Http404("No such team")
    request.session["team_id"] = team_id
    target = request.POST.get("next") or ""
    return redirect(target if target.startswith("/") and not target.startswith("//") else "home")


def _created_message(request, team: Team, previous: Team | None) -> str:
    """Creating a team makes it the current one: say so, with a button back to the team before."""
    text = format_html("Team “{}” created; you are its owner, and it is now your current team.", team.name)
    if previous is None or previous.pk == team.pk:
        return text
    return format_html(
        '{} <form method="post" action="{}" class="inline">'
        '<input type="hidden" name="csrfmiddlewaretoken" value="{}"><input type="hidden" name="next" value="{}">'
        '<button type="submit" class="linklike" id="switch-back">Switch back to “{}”</button></form>',
        text, reverse("team_switch", args=[previous.pk]), get_token(request),
        reverse("team_list"), previous.name)


@login_required
def team_list(request):
    if request.method == "POST":
        previous = services.team_current(request)  # the current team before this one exists
        try:
            team = services.team_create(request.user, request.POST.get("name", ""))
        except ValidationError as exc:
            _error(request, exc)
        else:
            request.session["team_id"] = team.pk
            messages.success(request, _created_message(request, team, previous))
            return redirect("team_detail", team_id=team.pk)
    memberships = (
        Membership.objects.filter(user=request.user)
        .select_related("team")
        .annotate(member_count=Count("team__memberships"))
        .order_by("-team__personal", "team__name")
    )
    invitations = services.invitations_for_user(request.user)
    return render(request, "teams/team_list.html", {"memberships": memberships, "invitations": invitations},
                  status=400 if request.method == "POST" else 200)


@login_required
@require_GET
def team_detail(request, team_id: int):
    team, role = _team_or_404(request, team_id)
    return _detail_page(request, team, role)


def _detail_page(request, team: Team, role: str, new_invite_url: str = "", status: int = 200):
    manage = role_can(role, "manage_members")
    return render(
        request,
        "teams/team_detail.html",
        {
            "team": team,
            "role": role,
            "members": selectors.team_members(team),
            "invites": selectors.team_invites(team) if manage else [],
            "can_manage": manage,
            "is_owner": role == Role.OWNER,
            "can_delete": role_can(role, "delete_team") and not team.personal,
            "roles": Role.choices,
            "assignable_roles": Role.choices if role == Role.OWNER else [r for r in Role.choices if r[0] != Role.OWNER],
            "new_invite_url": new_invite_url,
            "me": request.user,
        },
        status=status,
    )


@login_required
@require_POST
def member_add(request, team_id: int):
    team, _ = _team_or_404(request, team_id)
    try:
        message = services.member_add(
            request.user, team, request.POST.get("username", ""), request.POST.get("role", Role.MEMBER)
        )
    except ValidationError as exc:
        _error(request, exc)
    else:
        messages.success(request, message)
    return redirect("team_detail", team_id=team.pk)


@login_required
@require_POST
def invitation_accept(request, invitation_id: int):
    try:
        membership = services.invitation_accept(request.user, invitation_id)
    except PermissionDenied:
        raise Http404("No such invitation.") from None
    request.session["team_id"] = membership.team_id
    messages.success(request, f"You joined “{membership.team.name}” as {membership.get_role_display()}.")
    return redirect("team_detail", team_id=membership.team_id)


@login_required
@require_POST
def invitation_decline(request, invitation_id: int):
    try:
        services.invitation_decline(request.user, invitation_id)
    except PermissionDenied:
        raise Http404("No such invitation.") from None
    messages.info(request, "Invitation declined.")
    return redirect("team_list")


def _membership_or_404(team: Team, membership_id: int) -> Membership:
    return get_object_or_404(Membership.objects.select_related("user", "team"), pk=membership_id, team=team)


@login_required
@require_POST
def member_role(request, team_id: int, membership_id: int):
    team, _ = _team_or_404(request, team_id)
    membership = _membership_or_404(team, membership_id)
    try:
        services.member_set_role(request.user, membership, request.POST.get("role", ""))
    except ValidationError as exc:
        _error(request, exc)
    else:
        messages.success(request, f"{membership.user.get_username()} is now {membership.get_role_display()}.")
    return redirect("team_detail", team_id=team.pk)


@login_required
@require_POST
def member_remove(request, team_id: int, membership_id: int):
    team, _ = _team_or_404(request, team_id)
    membership = _membership_or_404(team, membership_id)
    leaving = membership.user_id == request.user.pk
    try:
        services.member_remove(request.user, membership)
    except ValidationError as exc:
        _error(request, exc)
        return redirect("team_detail", team_id=team.pk)
    if leaving:
        request.session.pop("team_id", None)
        messages.success(request, f"You left “{team.name}”.")
        return redirect("team_list")
    messages.success(request, f"{membership.user.get_username()} removed.")
    return redirect("team_detail", team_id=team.pk)


@login_required
@require_http_methods(["GET", "POST"])
def invite_create(request, team_id: int):
    if request.method == "GET":  # reloading the page that showed a new invite link
        return redirect("team_detail", team_id=team_id)
    team, role = _team_or_404(request, team_id)
    try:
        uses = request.POST.get("max_uses", "1")
        invite, raw = services.invite_create(
            request.user, team, request.POST.get("role", Role.MEMBER),
            days=_positive_int(request.POST.get("days"), services.INVITE_DAYS_DEFAULT),
            max_uses=None if uses == "unlimited" else _positive_int(uses, 1),
        )
    except ValidationError as exc:
        _error(request, exc)
        return redirect("team_detail", team_id=team.pk)
    url = request.build_absolute_uri(reverse("invite_accept", args=[raw]))
    return _detail_page(request, team, role, new_invite_url=url, status=201)


@login_required
@require_POST
def invite_revoke(request, team_id: int, invite_id):
    team, _ = _team_or_404(request, team_id)
    invite = get_object_or_404(Invite, pk=invite_id, team=team)
    services.invite_revoke(request.user, invite)
    messages.success(request, "Invite revoked.")
    return redirect("team_detail", team_id=team.pk)


@login_required
def invite_accept(request, token: str):
    """The invite link: GET shows what joining means, POST joins."""
    invite = services.invite_for_token(token)
    if invite is None:
        return render(request, "teams/invite.html", {"invite": None}, status=404)
    member = Membership.objects.filter(team=invite.team, user=request.user).exists()
    if request.method == "POST":
        try:
            services.invite_accept(request.user, token)
        except ValidationError as exc:
            return render(request, "teams/invite.html", {"invite": invite, "error": " ".join(exc.messages)},
                          status=410)
        request.session["team_id"] = invite.team_id
        messages.success(request, f"You joined “{invite.team.name}”.")
        return redirect("team_detail", team_id=invite.team_id)
    status = 200 if member or invite.state == "active" else 410
    return render(request, "teams/invite.html", {"invite": invite, "member": member}, status=status)


@login_required
@require_POST
def team_delete(request, team_id: int):
    team, role = _team_or_404(request, team_id)
    if not role_can(role, "delete_team"):
        raise PermissionDenied("Only an owner can delete the team.")
    if request.POST.get("confirm", "").strip() != team.name:
        messages.error(request, "Type the team's name to confirm deleting it.")
        return redirect("team_detail", team_id=team.pk)
    name = team.name
    try:
        services.team_delete(request.user, team)
    except ValidationError as exc:
        _error(request, exc)
        return redirect("team_detail", team_id=team.pk)
    request.session.pop("team_id", None)
    messages.success(request, f"Team “{name}” deleted.")
    return redirect("team_list")


@login_required
@require_GET
def team_spend(request, team_id: int):
    team, role = _team_or_404(request, team_id)
    try:
        days = int(request.GET.get("days", selectors.SPEND_PERIODS[0]))
    except ValueError:
        days = selectors.SPEND_PERIODS[0]
    if days not in selectors.SPEND_PERIODS:
        days = selectors.SPEND_PERIODS[0]
    report = selectors.team_spend_report(team, days)
    month_cost, month_unknown = services.team_month_spend(team)
    peak = max((row.cost_usd for _, row, _ in report.per_day), default=0.0)
    return render(
        request,
        "teams/spend.html",
        {
            "team": team,
            "report": report,
            "periods": selectors.SPEND_PERIODS,
            "bars": _bars(report, peak),
            "legend": [(name, PALETTE[i % len(PALETTE)]) for i, name in enumerate(report.users)],
            "chart_w": CHART_W,
            "chart_h": CHART_H,
            "peak": peak,
            "month_cost": month_cost,
            "month_unknown": month_unknown,
            "can_set_cap": role_can(role, "manage_spending"),
        },
    )


PALETTE = ["#3b6fd8", "#e08a1e", "#2e9e5b", "#b6449a", "#6a5acd", "#c0392b", "#16a0a0", "#7f8c8d"]
CHART_W, CHART_H = 720, 160


def _bars(report, peak: float) -> list[dict]:
    """SVG rectangles for the per-day chart: one stacked bar per day, one colour per user."""
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(report.users)}
    step = CHART_W / max(len(report.per_day), 1)
    bars = []
    for i, (day, row, by_user) in enumerate(report.per_day):
        y = CHART_H
        segments = []
        for name in report.users:
            cost = by_user.get(name, 0.0)
            if cost <= 0 or peak <= 0:
                continue
            height = cost / peak * (CHART_H - 10)
            y -= height
            segments.append({"y": round(y, 2), "h": round(height, 2), "colour": colours[name], "user": name,
                             "cost": cost})
        bars.append({"x": round(i * step + 1, 2), "w": round(max(step - 2, 1), 2), "day": day, "row": row,
                     "segments": segments})
    return bars


@login_required
@require_POST
def team_cap(request, team_id: int):
    team, _ = _team_or_404(request, team_id)
    raw = request.POST.get("monthly_cap_usd", "").strip().lstrip("$").replace(",", "")
    try:
        cap = Decimal(raw) if raw else None
    except InvalidOperation:
        messages.error(request, f"{raw!r} is not an amount in USD.")
        return redirect("team_spend", team_id=team.pk)
    try:
        services.team_set_cap(request.user, team, cap)
    except ValidationError as exc:
        _error(request, exc)
    else:
        messages.success(request, f"Monthly cap set to ${cap:,.2f}." if cap is not None else "Monthly cap removed.")
    return redirect("team_spend", team_id=team.pk)
