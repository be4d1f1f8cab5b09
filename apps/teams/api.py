"""JSON API for teams: list/create, members and roles, invites, spending and the cap.

Authentication is `rlmweb.web.api.api_view`. A team the user does not belong to is a 404; an
action the role does not allow is a 403; a refused rule (last owner, personal team) is a 400.
Members are shown by username and role only, never by email.
"""

from decimal import Decimal, InvalidOperation

from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, JsonResponse
from django.urls import reverse

from apps.accounts.requests import ApiRequest
from rlmweb.web.api import api_view, json_body
from rlmweb.web.errors import Invalid, NotFound

from . import selectors, services
from .models import Invite, Membership, Role, Team
from .permissions import role_in


def team_json(team: Team, role: str | None) -> dict:
    return {
        "id": team.pk,
        "name": team.name,
        "personal": team.personal,
        "role": role,
        "monthly_cap_usd": str(team.monthly_cap_usd) if team.monthly_cap_usd is not None else None,
        "url": reverse("api_team_detail", args=[team.pk]),
    }


def member_json(m: Membership) -> dict:
    return {"id": m.pk, "username": m.user.get_username(), "role": m.role, "since": m.created_at.isoformat()}


def invite_json(i: Invite) -> dict:
    return {"id": str(i.pk), "prefix": i.prefix, "role": i.role, "uses": i.uses, "max_uses": i.max_uses,
            "expires_at": i.expires_at.isoformat(), "state": i.state}


@api_view(("GET", "POST"))
def teams_collection(request: ApiRequest) -> JsonResponse:
    if request.method == "POST":
        body = json_body(request)
        if not isinstance(body.get("name"), str):
            raise Invalid("name (a string) is required.")
        team = services.team_create(request.user, body["name"])
        return JsonResponse(team_json(team, Role.OWNER), status=201)
    memberships = Membership.objects.filter(user=request.user).select_related("team").order_by("team__name")
    return JsonResponse({"teams": [team_json(m.team, m.role) for m in memberships]})


@api_view(("GET", "PATCH", "DELETE"))
def team_detail(request: ApiRequest, team_id: int) -> HttpResponse:
    """GET: the team and its members. PATCH: {"monthly_cap_usd": "12.50" | null}. DELETE: owners."""
    team = selectors.team_for_request(request, team_id)
    if request.method == "DELETE":
        services.team_delete(request.user, team)
        return HttpResponse(status=204)
    if request.method == "PATCH":
        body = json_body(request)
        if set(body) != {"monthly_cap_usd"}:
            raise Invalid("Send {\"monthly_cap_usd\": \"<amount>\" or null}.")
        raw = body["monthly_cap_usd"]
        try:
            cap = None if raw is None else Decimal(str(raw))
        except InvalidOperation:
            raise Invalid("monthly_cap_usd must be an amount in USD or null.") from None
        services.team_set_cap(request.user, team, cap)
    role = role_in(request.user, team)
    return JsonResponse({**team_json(team, role), "members": [member_json(m) for m in selectors.team_members(team)]})


@api_view(("POST",))
def members_collection(request: ApiRequest, team_id: int) -> JsonResponse:
    """Invite a user by name: {"username": "…", "role": "member"}. 202 whether or not the name exists:
    the user joins by accepting (`POST /api/teams/invitations/<id>/accept/`)."""
    team = selectors.team_for_request(request, team_id)
    body = json_body(request)
    if not isinstance(body.get("username"), str) or not isinstance(body.get("role", Role.MEMBER), str):
        raise Invalid("username (a string) is required; role is one of " + ", ".join(Role.values) + ".")
    message = services.member_add(request.user, team, body["username"], body.get("role", Role.MEMBER))
    return JsonResponse({"invited": True, "message": message}, status=202)


def invitation_json(invitation) -> dict:
    return {"id": invitation.pk, "team": {"id": invitation.team_id, "name": invitation.team.name},
            "role": invitation.role, "created_at": invitation.created_at.isoformat(),
            "invited_by": invitation.invited_by.get_username() if invitation.invited_by else None}


@api_view(("GET",))
def invitations_collection(request: ApiRequest) -> JsonResponse:
    """The invitations waiting for the signed-in user."""
    return JsonResponse({"invitations": [invitation_json(i) for i in services.invitations_for_user(request.user)]})


@api_view(("POST", "DELETE"))
def invitation_detail(request: ApiRequest, invitation_id: int) -> HttpResponse:
    """POST: accept (join the team); DELETE: decline."""
    if request.method == "DELETE":
        _not_found_if_denied(services.invitation_decline, request.user, invitation_id)
        return HttpResponse(status=204)
    membership = _not_found_if_denied(services.invitation_accept, request.user, invitation_id)
    return JsonResponse(member_json(membership), status=201)


def _not_found_if_denied(fn, *args):
    try:
        return fn(*args)
    except PermissionDenied:
        raise NotFound("No such invitation.") from None


@api_view(("PATCH", "DELETE"))
def member_detail(request: ApiRequest, team_id: int, membership_id: int) -> HttpResponse:
    team = selectors.team_for_request(request, team_id)
    membership = Membership.objects.select_related("user", "team").filter(pk=membership_id, team=team).first()
    if membership is None:
        raise NotFound("No such member.")
    if request.method == "DELETE":
        services.member_remove(request.user, membership)
        return HttpResponse(status=204)
    body = json_body(request)
    if not isinstance(body.get("role"), str):
        raise Invalid("role (a string) is required.")
    return JsonResponse(member_json(services.member_set_role(request.user, membership, body["role"])))


@api_view(("GET", "POST"))
def invites_collection(request: ApiRequest, team_id: int) -> JsonResponse:
    """GET: the team's invites. POST {"role", "days", "max_uses" (null: unlimited)}: a new link, shown once."""
    team = selectors.team_for_request(request, team_id)
    if request.method == "GET":
        services.require(request.user, "manage_members", team, "Only owners and admins see invites.")
        return JsonResponse({"invites": [invite_json(i) for i in selectors.team_invites(team)]})
    body = json_body(request)
    invite, raw = services.invite_create(
        request.user, team, body.get("role", Role.MEMBER),
        days=body.get("days", services.INVITE_DAYS_DEFAULT), max_uses=body.get("max_uses", 1),
    )
    url = request.build_absolute_uri(reverse("invite_accept", args=[raw]))
    return JsonResponse({**invite_json(invite), "url": url, "token": raw}, status=201)


@api_view(("DELETE",))
def invite_detail(request: ApiRequest, team_id: int, invite_id) -> JsonResponse:
    team = selectors.team_for_request(request, team_id)
    invite = Invite.objects.filter(pk=invite_id, team=team).first()
    if invite is None:
        raise NotFound("No such invite.")
    return JsonResponse(invite_json(services.invite_revoke(request.user, invite)))


@api_view(("POST",))
def invite_accept(request: ApiRequest) -> JsonResponse:
    """Join a team: {"token": "<the invite token>"}."""
    body = json_body(request)
    if not isinstance(body.get("token"), str):
        raise Invalid("token (a string) is required.")
    membership = services.invite_accept(request.user, body["token"])
    return JsonResponse(team_json(membership.team, membership.role), status=201)


@api_view(("GET",))
def team_spend(request: ApiRequest, team_id: int) -> JsonResponse:
    """Cost per day and per user over ?days=30|90. Costs of unknown price are counted, never zero;
    deleted runs are counted too (in `runs` and the costs)."""
    team = selectors.team_for_request(request, team_id)
    try:
        days = int(request.GET.get("days", selectors.SPEND_PERIODS[0]))
    except ValueError:
        days = 0
    if days not in selectors.SPEND_PERIODS:
        raise Invalid(f"days must be one of {', '.join(map(str, selectors.SPEND_PERIODS))}.")
    report = selectors.team_spend_report(team, days)
    month_cost, month_unknown = services.team_month_spend(team)

    def row(r: selectors.SpendRow) -> dict:
        return {"cost_usd": None if r.unknown_calls and not r.cost_usd else round(r.cost_usd, 6),
                "cost_known_usd": round(r.cost_usd, 6), "cost_unknown_calls": r.unknown_calls, "runs": r.runs}

    return JsonResponse({
        "team": team.pk,
        "days": days,
        "total": row(report.total),
        "per_day": [{"day": day.isoformat(), **row(r)} for day, r, _ in report.per_day],
        "per_user": [{"username": name, **row(r)} for name, r in report.per_user],
        "month": {"cost_known_usd": str(month_cost), "cost_unknown_calls": month_unknown,
                  "cap_usd": str(team.monthly_cap_usd) if team.monthly_cap_usd is not None else None},
    })
