from django.db.models import QuerySet

from apps.teams.models import Team

from .models import Run, RunEvent


def run_list_for_team(team: Team) -> QuerySet[Run]:
    return Run.objects.filter(team=team).prefetch_related("documents").order_by("-created_at")


def run_events_since(run_id, since: int, limit: int = 1000) -> list[dict]:
    """Events of a run with seq > since, in order, at most `limit` of them."""
    rows = RunEvent.objects.filter(run_id=run_id, seq__gt=since).order_by("seq")[:limit]
    return [row.to_dict() for row in rows]
