"""Changing teams: create, delete, members, roles, invites, the spending cap.

Every function that acts for a user checks the permission table (`apps.teams.permissions`) and
raises PermissionDenied when the role does not allow it, ValidationError when a rule refuses it
(the last owner, a personal team, an expired invite). Views and the API turn those into messages
and status codes.
"""

import datetime as dt
import os
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from .hooks import team_deleting
from .models import DeletedRunSpend, Invite, MemberInvitation, Membership, Role, Team, hash_token
from .permissions import ACTIONS, role_in

MAX_TEAM_NAME = 120
INVITE_DAYS_DEFAULT = 7
INVITE_DAYS_MAX = 90


def default_monthly_cap() -> Decimal | None:
    """The cap a new personal team starts with: RLMWEB_DEFAULT_MONTHLY_CAP_USD when a hosted model
    can be used (its key is set), so that each new account does not bring fresh unlimited spend;
    none when only the offline model runs (it costs nothing) or the setting is empty."""
    hosted = any(
        not m.get("offline") and (not m.get("api_key_env") or os.environ.get(m["api_key_env"]))
        for m in settings.RLMWEB_MODELS
    )
    value = (settings.DEFAULT_MONTHLY_CAP_USD or "").strip()
    if not hosted or not value:
        return None
    return Decimal(value).quantize(Decimal("0.01"))


@transaction.atomic
def team_create_personal(user: User) -> Team:
    team = Team.objects.create(
        name=f"{user.get_username()}'s team", personal=True, monthly_cap_usd=default_monthly_cap()
    )
    Membership.objects.create(team=team, user=user, role=Role.OWNER)
    return team


def teams_for_user(user: User):
    return Team.objects.filter(memberships__user=user).order_by("-personal", "name")


def team_current(request) -> Team | None:
    """The team chosen in the switcher, falling back to the user's first team."""
    user = request.user
    if not user.is_authenticated:
        return None
    teams = teams_for_user(user)
    chosen = request.session.get("team_id")
    team = teams.filter(pk=chosen).first() if chosen else None
    if team is None:
        team = teams.first()
    if team is None:
        team = team_create_personal(user)
    return team


def _clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError("Give the team a name.", code="name")
    if len(name) > MAX_TEAM_NAME:
        raise ValidationError(f"A team name has at most {MAX_TEAM_NAME} characters.", code="name")
    return name


def _clean_role(role: str) -> str:
    if role not in Role.values:
        raise ValidationError(f"Unknown role {role!r}; the roles are {', '.join(Role.values)}.", code="role")
    return role


def require(user: User, action: str, team: Team, message: str) -> str:
    role = role_in(user, team)
    if role is None or role not in ACTIONS[action]:
        raise PermissionDenied(message)
    return role


@transaction.atomic
def team_create(user: User, name: str) -> Team:
    """A shared team with `user` as its owner."""
    team = Team.objects.create(name=_clean_name(name), personal=False)
    Membership.objects.create(team=team, user=user, role=Role.OWNER)
    return team


@transaction.atomic
def team_delete(user: User, team: Team) -> None:
    """Delete a team with everything in it (runs, share links, comments, documents and their files).

    Owners only; never a personal team. The apps above teams keep things for a team: each one's
    receiver of `team_deleting` (apps.teams.hooks) refuses (runs: not while a run is still queued or
    running, its worker would write events for a run that no longer exists) or removes what it
    keeps before the team row goes, in this transaction.
    """
    require(user, "delete_team", team, "Only an owner can delete the team.")
    if team.personal:
        raise ValidationError("A personal team cannot be deleted.", code="personal")
    team_deleting.send(sender=Team, team=team, user=user)
    team.delete()


def _owners_left_after(team: Team, membership: Membership) -> int:
    owners = Membership.objects.select_for_update().filter(team=team, role=Role.OWNER)
    return owners.exclude(pk=membership.pk).count()


def _check_role_change(actor_role: str, target_role: str | None, new_role: str | None) -> None:
    """Admins manage admins, members and viewers; only owners touch the owner role."""
    if Role.OWNER in (target_role, new_role) and actor_role != Role.OWNER:
        raise PermissionDenied("Only an owner can grant, change or remove the owner role.")


def member_invited_message(username: str, role: str) -> str:
    """What the admin is told after adding a name, whether or not it exists (or is a member already)."""
    return (f"If {username.strip()!r} is a user of this server and not yet a member, they have been invited "
            f"as {Role(role).label}; they join once they accept, from their Teams page.")


def member_add(user: User, team: Team, username: str, role: str = Role.MEMBER) -> str:
    """Invite the user named `username` to join with `role`; return the message for the admin.

    Nothing tells the admin whether the name exists: an unknown name, an inactive account or a
    member already get the same answer as a new invitation (see MemberInvitation).
    """
    actor_role = require(user, "manage_members", team, "Only owners and admins can add members.")
    role = _clean_role(role)
    _check_role_change(actor_role, None, role)
    if team.personal:
        raise ValidationError("A personal team has one member; create a team to work with others.", code="personal")
    if not isinstance(username, str) or not username.strip():
        raise ValidationError("Give the username of the person to invite.", code="no_user")
    User = get_user_model()
    invitee = User.objects.filter(**{User.USERNAME_FIELD: username.strip(), "is_active": True}).first()
    if invitee is not None and not Membership.objects.filter(team=team, user=invitee).exists():
        MemberInvitation.objects.update_or_create(team=team, user=invitee,
                                                  defaults={"role": role, "invited_by": user})
    return member_invited_message(username, role)


def invitations_for_user(user: User):
    return MemberInvitation.objects.filter(user=user).select_related("team", "invited_by")


def invitation_accept(user: User, invitation_id: int) -> Membership:
    """Join the team of the user's own invitation; PermissionDenied for anyone else's (or none)."""
    with transaction.atomic():
        invitation = MemberInvitation.objects.select_for_update().filter(pk=invitation_id, user=user).first()
        if invitation is None:
            raise PermissionDenied("No such invitation.")
        membership, _ = Membership.objects.get_or_create(team=invitation.team, user=user,
                                                         defaults={"role": invitation.role})
        invitation.delete()
    return membership


def invitation_decline(user: User, invitation_id: int) -> None:
    if not MemberInvitation.objects.filter(pk=invitation_id, user=user).delete()[0]:
        raise PermissionDenied("No such invitation.")


@transaction.atomic
def member_set_role(user: User, membership: Membership, role: str) -> Membership:
    team = membership.team
    actor_role = require(user, "manage_members", team, "Only owners and admins can change roles.")
    role = _clean_role(role)
    _check_role_change(actor_role, membership.role, role)
    if membership.role == Role.OWNER and role != Role.OWNER and _owners_left_after(team, membership) == 0:
        raise ValidationError("The last owner cannot be demoted; make someone else owner first.", code="last_owner")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def member_remove(user: User, membership: Membership) -> None:
    """Remove a member; anyone may remove themselves (leave). The last owner stays."""
    team = membership.team
    if membership.user_id != user.pk:
        actor_role = require(user, "manage_members", team, "Only owners and admins can remove members.")
        _check_role_change(actor_role, membership.role, None)
    if membership.role == Role.OWNER and _owners_left_after(team, membership) == 0:
        raise ValidationError("The last owner cannot leave or be removed; make someone else owner first.",
                              code="last_owner")
    membership.delete()


# --- invites --------------------------------------------------------------------------------------

def invite_create(user: User, team: Team, role: str = Role.MEMBER, days: int | None = INVITE_DAYS_DEFAULT,
                  max_uses: int | None = 1) -> tuple[Invite, str]:
    """A new invite link; returns the invite and its token, which is not stored (only its hash)."""
    actor_role = require(user, "manage_members", team, "Only owners and admins can invite.")
    role = _clean_role(role)
    _check_role_change(actor_role, None, role)
    if team.personal:
        raise ValidationError("A personal team has one member; create a team to work with others.", code="personal")
    if not isinstance(days, int) or not 1 <= days <= INVITE_DAYS_MAX:
        raise ValidationError(f"An invite lasts 1 to {INVITE_DAYS_MAX} days.", code="days")
    if max_uses is not None and (not isinstance(max_uses, int) or not 1 <= max_uses <= 1000):
        raise ValidationError("Uses must be between 1 and 1000, or unlimited.", code="max_uses")
    raw = Invite.new_token()
    invite = Invite.objects.create(
        team=team, role=role, token_hash=hash_token(raw), prefix=raw[:6], created_by=user,
        expires_at=timezone.now() + dt.timedelta(days=days), max_uses=max_uses,
    )
    return invite, raw


def invite_revoke(user: User, invite: Invite) -> Invite:
    require(user, "manage_members", invite.team, "Only owners and admins can revoke invites.")
    if invite.revoked_at is None:
        invite.revoked_at = timezone.now()
        invite.save(update_fields=["revoked_at"])
    return invite


def invite_for_token(raw: str) -> Invite | None:
    if not raw or len(raw) > 100:
        return None
    return Invite.objects.select_related("team").filter(token_hash=hash_token(raw)).first()


@transaction.atomic
def invite_accept(user: User, raw: str) -> Membership:
    """Join the invite's team. Already a member: the membership is returned unchanged, no use spent."""
    invite = invite_for_token(raw)
    if invite is None:
        raise ValidationError("This invite link is not valid.", code="invalid")
    invite = Invite.objects.select_for_update().select_related("team").get(pk=invite.pk)
    existing = Membership.objects.filter(team=invite.team, user=user).first()
    if existing is not None:
        return existing
    if invite.state != "active":
        raise ValidationError(f"This invite link is {invite.state}.", code=invite.state.replace(" ", "_"))
    Invite.objects.filter(pk=invite.pk).update(uses=F("uses") + 1)
    return Membership.objects.create(team=invite.team, user=user, role=invite.role)


# --- spending -------------------------------------------------------------------------------------

def month_start(now: dt.datetime | None = None) -> dt.datetime:
    now = now or timezone.now()
    return now.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def team_month_spend(team: Team) -> tuple[Decimal, int]:
    """(known cost in USD, calls of unknown price) of the team's runs created this calendar month (UTC),
    deleted runs included (`DeletedRunSpend`): deleting runs does not bring a team back under its cap.
    Imported runs are left out: what they cost was spent elsewhere."""
    start = month_start()
    live = team.runs.filter(created_at__gte=start, imported=False).aggregate(
        cost=Sum("cost_usd"), unknown=Sum("cost_unknown_calls")
    )
    deleted = DeletedRunSpend.objects.filter(team=team, run_created_at__gte=start).aggregate(
        cost=Sum("cost_usd"), unknown=Sum("cost_unknown_calls")
    )
    cost = (live["cost"] or 0) + (deleted["cost"] or 0)
    unknown = (live["unknown"] or 0) + (deleted["unknown"] or 0)
    return Decimal(str(cost)).quantize(Decimal("0.0001")), unknown


def spend_record_deleted_run(run) -> DeletedRunSpend | None:
    """Keep what `run` cost before it is deleted; call it in the transaction that deletes the run.
    An imported run cost this team nothing: nothing is kept."""
    if run.imported:
        return None
    return DeletedRunSpend.objects.create(
        team_id=run.team_id, run_id=run.pk, created_by_id=run.created_by_id, run_created_at=run.created_at,
        cost_usd=run.cost_usd, cost_unknown_calls=run.cost_unknown_calls,
    )


def team_set_cap(user: User, team: Team, cap: Decimal | None) -> Team:
    require(user, "manage_spending", team, "Only owners and admins can set the spending cap.")
    if cap is not None:
        if not isinstance(cap, Decimal) or not cap.is_finite() or cap < 0 or cap >= Decimal("1e10"):
            raise ValidationError("The cap is an amount in USD, 0 or more.", code="cap")
        cap = cap.quantize(Decimal("0.01"))
    team.monthly_cap_usd = cap
    team.save(update_fields=["monthly_cap_usd"])
    return team


def team_spend_guard(team: Team) -> None:
    """Refuse a new run once the team's known cost this month has reached its cap.

    Calls whose price is unknown add nothing to the known cost; they are shown as "unknown" on the
    spending page, never as $0, but they cannot trip the cap.
    """
    cap = Team.objects.filter(pk=team.pk).values_list("monthly_cap_usd", flat=True).first()
    if cap is None:
        return
    spent, _ = team_month_spend(team)
    if spent >= cap:
        raise ValidationError(
            f"This team reached its monthly spending cap of ${cap:,.2f} (spent ${spent:,.2f} since "
            f"{month_start():%B 1}). An owner or admin can raise it on the team's spending page.",
            code="spending_cap",
        )
