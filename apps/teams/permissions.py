"""Who may do what: the one place where roles are turned into permissions.

| action          | viewer | member | admin | owner | what it covers                                        |
|-----------------|--------|--------|-------|-------|-------------------------------------------------------|
| view            |   x    |   x    |   x   |   x   | read runs, events, trajectories, documents, comments, |
|                 |        |        |       |       | members, spending; download documents and exports     |
| create          |        |   x    |   x   |   x   | upload documents, ask (runs, re-runs), comment        |
| change_own      |        |   x    |   x   |   x   | cancel/delete/share one's own runs and documents,     |
|                 |        |        |       |       | edit/delete one's own comments                        |
| change_any      |        |        |   x   |   x   | the same on anyone's runs, documents, share links and |
|                 |        |        |       |       | comments                                              |
| manage_members  |        |        |   x   |   x   | invite, add, remove members, change roles (owners     |
|                 |        |        |       |       | only grant, change or remove the owner role)          |
| manage_spending |        |        |   x   |   x   | set or clear the team's monthly spending cap          |
| delete_team     |        |        |       |   x   | delete the team (never a personal team)               |

Everyone else gets nothing: anonymous users and users of other teams see a 404 for the team's
objects (the same as an object that does not exist). A share-link holder reads exactly one run
through `/s/<token>/` (see apps.sharing), nothing else. Any member may leave a team; the last
owner can neither leave, be removed nor be demoted.
"""

from django.contrib.auth.models import AnonymousUser, User

from .models import Membership, Role, Team

ACTIONS: dict[str, set[str]] = {
    "view": {Role.VIEWER, Role.MEMBER, Role.ADMIN, Role.OWNER},
    "create": {Role.MEMBER, Role.ADMIN, Role.OWNER},
    "change_own": {Role.MEMBER, Role.ADMIN, Role.OWNER},
    "change_any": {Role.ADMIN, Role.OWNER},
    "manage_members": {Role.ADMIN, Role.OWNER},
    "manage_spending": {Role.ADMIN, Role.OWNER},
    "delete_team": {Role.OWNER},
}


def role_in(user: User | AnonymousUser, team: Team) -> str | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(team=team, user=user).values_list("role", flat=True).first()


def can(user: User | AnonymousUser, action: str, team: Team) -> bool:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    role = role_in(user, team)
    return role is not None and role in ACTIONS[action]


def can_change(user: User | AnonymousUser, team: Team, created_by_id: int | None) -> bool:
    """Change an object (cancel, delete, share): its creator with change_own, or anyone with change_any."""
    role = role_in(user, team)
    if role is None:
        return False
    if role in ACTIONS["change_any"]:
        return True
    return created_by_id is not None and created_by_id == user.pk and role in ACTIONS["change_own"]


def role_can(role: str | None, action: str) -> bool:
    """The table for a role already looked up (templates and lists, to avoid one query per check)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    return role is not None and role in ACTIONS[action]
