"""Request types for the type checker: what middleware and decorators have added by the time a view
runs. No runtime behaviour; annotate a view's `request` with one only when that check has run."""

from typing import TYPE_CHECKING

from django.contrib.auth.models import User
from django.http import HttpRequest

if TYPE_CHECKING:
    from apps.teams.models import Team


class AuthenticatedRequest(HttpRequest):
    """Behind login_required (or the API's authentication): the user is a User, never AnonymousUser."""

    user: User
    team: "Team | None"  # apps.teams.middleware (lazy): the team the user works in


class ApiRequest(AuthenticatedRequest):
    """Inside an `rlmweb.web.api.api_view`."""

    authenticated_by_token: bool
