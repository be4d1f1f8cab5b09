import uuid

from django.contrib.auth.models import User
from django.db.models import QuerySet

from apps.teams.models import Team
from apps.teams.permissions import can

from .models import Document


def document_list_for_team(team: Team) -> QuerySet[Document]:
    return Document.objects.filter(team=team).order_by("-created_at")


def document_get_for_user(user: User, document_id: uuid.UUID | str) -> Document | None:
    """The document if the user may view its team; None otherwise, so other teams' ids reveal nothing."""
    document = Document.objects.select_related("team").filter(pk=document_id).first()
    if document is None or not can(user, "view", document.team):
        return None
    return document


def document_statuses(user: User, ids: list[str]) -> list[Document]:
    """The documents among `ids` the user may view (unknown and foreign ids are silently dropped)."""
    valid = []
    for raw in ids[:200]:
        try:
            valid.append(uuid.UUID(raw))
        except ValueError:
            continue
    documents = Document.objects.select_related("team").filter(pk__in=valid, team__memberships__user=user)
    return [d for d in documents if can(user, "view", d.team)]
