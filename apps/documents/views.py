"""Pages for documents: the list with its upload area, downloads, and deletion. The upload itself
is JSON (`apps.documents.api`), driven by static/js/upload.js.

Downloads (`/documents/<id>/file`, `/documents/<id>/text`, and the same under `/api/documents/`)
are for anyone who may view the document's team; other teams get a 404. Files are streamed from
disk by `FileResponse`, never read whole into memory.
"""

from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.teams.permissions import can, can_change

from . import selectors, services
from .models import Document, DocumentStatus

DOWNLOAD_KINDS = ("file", "text")


def _inside_media(relative: str) -> Path | None:
    """The file at `relative` under MEDIA_ROOT, if it is a regular file there (never outside it)."""
    if not relative:
        return None
    root = Path(settings.MEDIA_ROOT).resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def text_download_name(name: str) -> str:
    """`report.pdf` → `report.txt`: the extracted text is named after the original."""
    stem = Path(name).stem or name or "document"
    return f"{stem}.txt"


def document_download(document: Document, kind: str) -> FileResponse:
    """A streamed download of the document's original upload (`file`) or its extracted text (`text`).

    Raises services.Conflict while the text is still being extracted, services.NotFound when the file
    is gone (a failed extraction keeps neither file).
    """
    if kind == "text":
        if document.status == DocumentStatus.EXTRACTING:
            raise services.Conflict(f"The text of {document.name} is still being extracted; try again shortly.")
        path = _inside_media(document.text_file) if document.status == DocumentStatus.READY else None
        if path is None:
            raise services.NotFound(f"{document.name} has no extracted text.")
        response = FileResponse(
            path.open("rb"), as_attachment=True, filename=text_download_name(document.name),
            content_type="text/plain; charset=utf-8",
        )
    elif kind == "file":
        path = _inside_media(document.original_file)
        if path is None:
            raise services.NotFound(f"The uploaded file of {document.name} is no longer stored.")
        response = FileResponse(path.open("rb"), as_attachment=True, filename=document.name)
    else:
        raise ValueError(f"unknown download {kind!r}")
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
def document_list(request):
    team = request.team
    if not can(request.user, "view", team):
        raise Http404("No such team.")
    documents = list(selectors.document_list_for_team(team).select_related("created_by"))
    for document in documents:
        document.deletable = can_change(request.user, team, document.created_by_id)  # type: ignore[attr-defined]  # for the template
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


@login_required
@require_GET
def document_file(request, document_id, kind: str):
    """The original upload (`kind="file"`) or the extracted text (`kind="text"`), as a download."""
    document = selectors.document_get_for_user(request.user, document_id)
    if document is None:
        raise Http404("No such document.")
    return document_download(document, kind)  # a file not there (yet) is translated by rlmweb.web.errors
