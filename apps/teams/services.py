from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from .models import Membership, Role, Team


@transaction.atomic
def team_create_personal(user: AbstractBaseUser) -> Team:
    team = Team.objects.create(name=f"{user.get_username()}'s team", personal=True)
    Membership.objects.create(team=team, user=user, role=Role.OWNER)
    return team


def teams_for_user(user: AbstractBaseUser):
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
