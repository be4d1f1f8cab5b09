"""Documents' reactions to what lower apps announce (connected in DocumentsConfig.ready)."""

from django.db import transaction
from django.dispatch import receiver

from apps.teams.hooks import team_deleting
from apps.teams.models import Team

from .services import team_document_files


@receiver(team_deleting, dispatch_uid="documents.team_deleting")
def remove_team_files(sender: type, team: Team, **kwargs: object) -> None:
    """The team's documents go with the team row (cascade); their files go once that commits."""
    files = team_document_files(team)

    def unlink() -> None:
        for f in files:
            f.unlink(missing_ok=True)

    transaction.on_commit(unlink)
