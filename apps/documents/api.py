"""JSON endpoints for documents: the chunked upload protocol (used by the page's script and by
scripts alike), document status and stats, listing, single-request upload, downloads (the original
file and the extracted text, streamed) and deletion.

Authentication is `rlmweb.web.api.api_view`: an API token, or the browser session with CSRF.
"""

from typing import cast

from django.conf import settings
from django.http import FileResponse, JsonResponse
from django.urls import reverse

from apps.accounts.requests import ApiRequest
from apps.teams.models import Team
from apps.teams.permissions import can
from apps.teams.selectors import team_for_request
from rlmweb.ids import parse_id
from rlmweb.web.api import api_view, json_body, require_csrf
from rlmweb.web.errors import Forbidden, Invalid, NotFound, RateLimited, TooLarge

from . import selectors, services
from .models import Document, DocumentStatus, UploadSession
from .upload_handlers import ReceivedFile, UploadRequest, streams_uploads
from .views import document_download as _download


def document_json(document: Document) -> dict:
    """A document as JSON. `file_url` downloads the original upload (null once it is gone, after a
    failed extraction); `text_url` the extracted text (null until the document is ready)."""
    return {
        "id": str(document.pk),
        "name": document.name,
        "format": document.format,
        "status": document.status,
        "progress": document.progress,
        "error": document.error,
        "extraction_note": document.extraction_note,
        "size_bytes": document.size_bytes,
        "sha256": document.sha256,
        "chars": document.chars,
        "lines": document.lines,
        "tokens_estimate": document.tokens_estimate,
        "preview": document.preview,
        "created_at": document.created_at.isoformat(),
        "url": reverse("api_document_detail", args=[document.pk]),
        "file_url": reverse("api_document_file", args=[document.pk]) if document.original_file else None,
        "text_url": reverse("api_document_text", args=[document.pk])
        if document.status == DocumentStatus.READY and document.text_file else None,
    }


def upload_json(session: UploadSession, request: ApiRequest) -> dict:
    prefix = "api_" if request.path.startswith("/api/") else ""
    return {
        "id": str(session.pk),
        "name": session.name,
        "size": session.size_bytes,
        "offset": session.received_bytes,
        "chunk_size": settings.UPLOAD_CHUNK_BYTES,
        "url": reverse(prefix + "upload_detail", args=[session.pk]),
        "chunk_url": reverse(prefix + "upload_chunk", args=[session.pk]),
        "complete_url": reverse(prefix + "upload_complete", args=[session.pk]),
    }


def _outcome_response(outcome: services.UploadOutcome) -> dict:
    return {"document": document_json(outcome.document), "created": outcome.created, "message": outcome.message}


# --- chunked uploads --------------------------------------------------------------------------------


@api_view(("POST",))
def upload_create(request: ApiRequest) -> JsonResponse:
    """Start one upload ({name, size, sha256?}) or a batch ({files: [{name, size, sha256?}, …]})."""
    body = json_body(request)
    team = team_for_request(request)
    if "files" in body:
        files = body["files"]
        if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
            raise Invalid("files must be a list of {name, size, sha256} objects.")
        services.check_batch(len(files))
        uploads = []
        for spec in files:
            try:
                uploads.append(upload_json(_start(request, team, spec, len(files)), request))
            except services.DocumentError as exc:
                if isinstance(exc, Forbidden | NotFound | RateLimited):
                    raise
                uploads.append({"name": str(spec.get("name") or "")[:255], "error": exc.message, "status": exc.status})
        return JsonResponse({"uploads": uploads}, status=201)
    session = _start(request, team, body, 1)
    return JsonResponse(upload_json(session, request), status=201)


def _start(request: ApiRequest, team: Team, spec: dict, batch_size: int) -> UploadSession:
    name, sha256 = spec.get("name", ""), spec.get("sha256", "")
    if not isinstance(name, str):
        raise services.DocumentError("name must be the file's name, a string.")
    if not isinstance(sha256, str | None):
        raise services.DocumentError("sha256 must be 64 hexadecimal characters.")
    return services.upload_start(
        user=request.user,
        team=team,
        name=name,
        size=spec.get("size"),
        sha256=sha256 or "",
        batch_size=batch_size,
    )


def _session(request: ApiRequest, upload_id) -> UploadSession:
    return services.upload_get(request.user, upload_id)


@api_view(("GET", "DELETE"))
def upload_detail(request: ApiRequest, upload_id) -> JsonResponse:
    """GET: how many bytes the server has (resume from `offset`). DELETE: cancel, deleting the bytes."""
    session = _session(request, upload_id)
    if request.method == "DELETE":
        services.upload_abort(session)
        return JsonResponse({"cancelled": True})
    return JsonResponse(upload_json(session, request))


@api_view(("PUT",))
def upload_chunk(request: ApiRequest, upload_id) -> JsonResponse:
    """Append the raw request body at `?offset=N`; 409 with the server's offset on a gap or overlap."""
    session = _session(request, upload_id)
    try:
        offset = int(request.GET.get("offset", ""))
    except ValueError:
        raise Invalid("Give the chunk's position as ?offset=<bytes>.") from None
    length_header = request.META.get("CONTENT_LENGTH")
    length = parse_id(length_header)
    received = services.upload_append(session, offset, request, length)
    return JsonResponse({"offset": received, "size": session.size_bytes, "complete": received == session.size_bytes})


@api_view(("POST",))
def upload_complete(request: ApiRequest, upload_id) -> JsonResponse:
    """Verify the size (and sha256 if announced), create the document or find its duplicate."""
    session = _session(request, upload_id)
    outcome = services.upload_complete(session)
    return JsonResponse(_outcome_response(outcome), status=201 if outcome.created else 200)


# --- documents --------------------------------------------------------------------------------------


@streams_uploads
@api_view(("GET", "POST"), csrf_in_view=True)
def documents_collection(request: UploadRequest) -> JsonResponse:
    """GET: the team's documents. POST (multipart, one or more `file` fields): upload in one request.

    Everything that needs no body is checked before the body is read (and written to disk): role,
    rate limit, declared length, storage quota; then CSRF, which reads it."""
    team = team_for_request(request)
    if request.method == "GET":
        documents = selectors.document_list_for_team(team)
        return JsonResponse({"documents": [document_json(d) for d in documents]})
    if not can(request.user, "create", team):
        raise Forbidden("Your role in this team does not allow uploading documents.")
    limit = settings.MAX_UPLOAD_BYTES * settings.MAX_FILES_PER_UPLOAD + 1024 * 1024
    length = parse_id(request.META.get("CONTENT_LENGTH"))
    if length is not None and length > limit:
        raise TooLarge(f"The request is larger than {services.human_bytes(limit)}; nothing was stored.")
    if not (request.content_type or "").startswith("multipart/form-data"):
        raise Invalid("Send the file as multipart/form-data in a field named 'file'.")
    services.upload_rate_check(request.user)
    services.check_team_storage(team, length or 0)
    require_csrf(request)
    handler = request.document_upload_handler
    files = cast(list[ReceivedFile], request.FILES.getlist("file"))  # (DocumentUploadHandler's)
    if handler.rejection is not None:
        raise handler.rejection
    services.check_batch(len(files))
    services.upload_rate_limit(request.user, len(files))
    results = []
    for received in files:
        try:
            outcome = services.document_create_from_file(
                user=request.user, team=team, name=received.name, path=received.path, sha256=received.sha256,
                streamed=received.streamed,
            )
        except services.DocumentError as exc:
            if len(files) == 1:
                raise
            results.append({"name": received.name, "error": exc.message, "status": exc.status})
        else:
            results.append(_outcome_response(outcome))
    if len(files) == 1:
        return JsonResponse(results[0], status=201 if results[0]["created"] else 200)
    created = [r for r in results if r.get("created")]
    ok = [r for r in results if "error" not in r]
    return JsonResponse({"results": results}, status=201 if created else 200 if ok else 400)


@api_view(("GET", "DELETE"))
def document_detail(request: ApiRequest, document_id) -> JsonResponse:
    document = selectors.document_get_for_user(request.user, document_id)
    if document is None:
        raise NotFound("No such document.")
    if request.method == "DELETE":
        services.document_delete(user=request.user, document=document)
        return JsonResponse({"deleted": True})
    return JsonResponse(document_json(document))


@api_view(("GET",))
def document_statuses(request: ApiRequest) -> JsonResponse:
    """Status and stats of several documents at once (`?ids=<uuid>,<uuid>`), for the page to poll."""
    ids = [i for i in request.GET.get("ids", "").split(",") if i]
    return JsonResponse({"documents": [document_json(d) for d in selectors.document_statuses(request.user, ids)]})



@api_view(("GET", "HEAD"))
def document_download(request: ApiRequest, document_id, kind: str) -> FileResponse:
    """The original upload (`…/file`) or the extracted UTF-8 text (`…/text`), streamed as an attachment.

    404 for another team's or an unknown document (and for a file that is gone), 409 while the text
    is still being extracted.
    """
    document = selectors.document_get_for_user(request.user, document_id)
    if document is None:
        raise NotFound("No such document.")
    return _download(document, kind)
