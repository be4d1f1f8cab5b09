"""Pages for documents: the list with its upload area, and deletion. The upload itself is JSON
(`apps.documents.api`), driven by static/js/upload.js."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.teams.permissions import can, can_change

from . import selectors, services


@login_required
def document_list(request):
    team = request.team
    if not can(request.user, "view", team):
        raise Http404("No such team.")
    documents = list(selectors.document_list_for_team(team).select_related("created_by"))
    for document in documents:
        document.deletable = can_change(request.user, team, document.created_by_id)
    return render(
        request,
        "documents/document_list.html",
        {
            "documents": documents,
            "can_upload": can(request.user, "create", team),
            "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
            "max_upload_human": services.human_bytes(settings.MAX_UPLOAD_BYTES),
            "max_files": settings.MAX_FILES_PER_UPLOAD,
            "chunk_bytes": settings.UPLOAD_CHUNK_BYTES,
        },
    )


@login_required
@require_POST
def document_delete(request, document_id):
    document = selectors.document_get_for_user(request.user, document_id)
    if document is None:
        raise Http404("No such document.")
    try:
        services.document_delete(user=request.user, document=document)
    except services.DocumentError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Deleted {document.name}.")
    return redirect("document_list")
