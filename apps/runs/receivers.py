"""Runs' reactions to what lower apps announce or ask (connected in RunsConfig.ready)."""

from datetime import datetime

from django.core.exceptions import ValidationError
from django.dispatch import receiver

from apps.documents.hooks import register_workers_idle
from apps.teams.hooks import team_deleting
from apps.teams.models import Team

from . import execution
from .models import FINISHED_STATUSES, Run


@receiver(team_deleting, dispatch_uid="runs.team_deleting")
def delete_team_runs(sender: type, team: Team, **kwargs: object) -> None:
    """Refuse while a run of the team is queued or running; else delete its runs first (they
    protect the documents they read, which go with the team)."""
    if Run.objects.filter(team=team).exclude(status__in=FINISHED_STATUSES).exists():
        raise ValidationError("The team has runs still queued or running; cancel them first.", code="runs_active")
    Run.objects.filter(team=team).delete()


def _workers_idle(now: datetime) -> bool:
    return execution.workers_idle(now)  # looked up at each call (tests replace it)


register_workers_idle(_workers_idle)
