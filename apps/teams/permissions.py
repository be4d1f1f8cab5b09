"""Who may do what: the one place where roles are turned into permissions.

| action            | viewer | member | admin | owner |
|-------------------|--------|--------|-------|-------|
| view              |   x    |   x    |   x   |   x   |
| create            |        |   x    |   x   |   x   |  upload documents, ask, comment
| change_own        |        |   x    |   x   |   x   |  cancel/delete/share own runs and documents
| change_any        |        |        |   x   |   x   |  delete others' runs and documents
| manage_members    |        |        |   x   |   x   |
| delete_team       |        |        |       |   x   |
"""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from .models import Membership, Role, Team

ACTIONS: dict[str, set[str]] = {
    "view": {Role.VIEWER, Role.MEMBER, Role.ADMIN, Role.OWNER},
    "create": {Role.MEMBER, Role.ADMIN, Role.OWNER},
    "change_own": {Role.MEMBER, Role.ADMIN, Role.OWNER},
    "change_any": {Role.ADMIN, Role.OWNER},
    "manage_members": {Role.ADMIN, Role.OWNER},
    "delete_team": {Role.OWNER},
}


def role_in(user: AbstractBaseUser | AnonymousUser, team: Team) -> str | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(team=team, user=user).values_list("role", flat=True).first()


def can(user: AbstractBaseUser | AnonymousUser, action: str, team: Team) -> bool:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    role = role_in(user, team)
    return role is not None and role in ACTIONS[action]


def can_change(user: AbstractBaseUser | AnonymousUser, team: Team, created_by_id: int | None) -> bool:
    """Change an object (cancel, delete, share): its creator with change_own, or anyone with change_any."""
    if can(user, "change_any", team):
        return True
    return user.is_authenticated and created_by_id == user.pk and can(user, "change_own", team)
