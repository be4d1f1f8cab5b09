from django.db.models import QuerySet

from apps.teams.models import Team

from .models import Document


def document_list_for_team(team: Team) -> QuerySet[Document]:
    return Document.objects.filter(team=team).order_by("-created_at")
