from .services import teams_for_user


def current_team(request) -> dict:
    if not request.user.is_authenticated:
        return {}
    return {"current_team": request.team, "user_teams": teams_for_user(request.user)}
