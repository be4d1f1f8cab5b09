from django.utils.functional import SimpleLazyObject

from .services import team_current


class CurrentTeamMiddleware:
    """Sets `request.team`: the team the user works in (lazy, so anonymous pages pay nothing)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.team = SimpleLazyObject(lambda: team_current(request))
        return self.get_response(request)
