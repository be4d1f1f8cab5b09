"""Services that change documents: chunked uploads, creation, extraction, deletion.

Views, API views and the Celery task all call these; the rules live here once.

Files:
- an upload in progress: `DATA_DIR/uploads/<session id>.part` (its length is the received offset);
- a document's original: `MEDIA_ROOT/documents/<team id>/<document id>.original<ext>`;
- its text, UTF-8: `MEDIA_ROOT/documents/<team id>/<document id>.txt`, written as `<...>.<random>.part`
  and renamed when complete, so a reader never sees half a text.

A failed extraction keeps the Document row (status failed, with the reason: the user started the
upload and left, the row is how they learn why) and deletes both its files.
"""

import fcntl
import hashlib
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, Sum
from django.utils import timezone

from apps.teams.models import Team
from apps.teams.permissions import can, can_change
from rlmweb.web import errors
from rlmweb.web.errors import ServiceError
from rlmweb.web.ratelimit import rate_limit_check, rate_limit_hit

from . import streaming
from .bounded import extract_bounded
from .extraction import ExtractionError, format_for
from .hooks import workers_idle
from .models import Document, DocumentStatus, UploadSession

logger = logging.getLogger(__name__)

STALE_UPLOAD_AFTER = timedelta(hours=24)
HASH_READ_BYTES = 4 * 1024 * 1024
STREAM_READ_BYTES = 1024 * 1024
PROGRESS_EVERY_S = 0.5


class DocumentError(ServiceError):
    """A request about documents that cannot be honoured (invalid unless a subclass says otherwise);
    `message` is for the user. Its kind, not a status, is raised: rlmweb.web.errors translates."""


class NotFound(DocumentError, errors.NotFound):
    pass


class Forbidden(DocumentError, errors.Forbidden):
    pass


class TooLarge(DocumentError, errors.TooLarge):
    pass


class Conflict(DocumentError, errors.Conflict):
    pass


class RateLimited(DocumentError, errors.RateLimited):
    pass


# --- helpers ----------------------------------------------------------------------------------------


def human_bytes(n: int) -> str:
    """Exact bytes below 10,000, else binary units labelled as Django's filesizeformat does."""
    if n < 10_000:
        return f"{n:,} bytes"
    value = float(n)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1024
        if value < 1024 or unit == "TB":
            break
    return f"{value:.1f} {unit}"


def clean_name(name: str) -> str:
    """A display name from a client-supplied file name: last path part, printable, ≤ 255 chars."""
    name = re.split(r"[\\/]", name or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if name in {"", ".", ".."}:
        raise DocumentError("The file needs a name.")
    if len(name) > 255:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 250 - len(ext)] + dot + ext) if dot and len(ext) < 16 else name[:255]
    return name


def uploads_dir() -> Path:
    folder = Path(settings.DATA_DIR) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def documents_dir(team_id: int) -> Path:
    folder = Path(settings.MEDIA_ROOT) / "documents" / str(team_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _check_size(size: int) -> None:
    if size == 0:
        raise DocumentError("The file is empty.")
    if size > settings.MAX_UPLOAD_BYTES:
        raise TooLarge(
            f"The file is {human_bytes(size)}, over the limit of {human_bytes(settings.MAX_UPLOAD_BYTES)}."
        )


def check_batch(count: int) -> None:
    if count > settings.MAX_FILES_PER_UPLOAD:
        raise DocumentError(
            f"{count} files is too many for one upload: at most {settings.MAX_FILES_PER_UPLOAD} at a time."
        )
    if count == 0:
        raise DocumentError("No file was sent.")


def team_storage_used(team: Team, exclude_upload: UploadSession | None = None) -> int:
    """Bytes the team's documents take (failed ones keep no file), plus what its unfinished uploads
    have announced: an upload reserves its size when it starts."""
    documents = Document.objects.filter(team=team).exclude(status=DocumentStatus.FAILED)
    uploads = UploadSession.objects.filter(team=team, document__isnull=True)
    if exclude_upload is not None:
        uploads = uploads.exclude(pk=exclude_upload.pk)
    total = 0
    for rows in (documents, uploads):
        total += rows.aggregate(total=Sum("size_bytes"))["total"] or 0
    return total


def check_team_storage(team: Team, incoming: int, exclude_upload: UploadSession | None = None) -> None:
    """Refuse (413) `incoming` more bytes when they would take the team past its storage quota."""
    quota = settings.TEAM_STORAGE_BYTES
    used = team_storage_used(team, exclude_upload)
    if used + incoming > quota:
        raise TooLarge(
            f"The team's documents and uploads take {human_bytes(used)} of its {human_bytes(quota)} storage "
            f"quota; {human_bytes(incoming)} more does not fit. Delete documents you no longer need, or ask "
            "the administrator to raise RLMWEB_TEAM_STORAGE_GB.",
        )


def _require(user: User, action: str, team: Team) -> None:
    if not can(user, "view", team):
        raise NotFound("No such team.")
    if not can(user, action, team):
        raise Forbidden("Your role in this team does not allow uploading documents.")


def _rate_limit(user: User, count: int = 1) -> None:
    try:
        for _ in range(count):
            rate_limit_hit(user.pk, "upload")
    except errors.RateLimited as exc:
        raise RateLimited(exc.message, **exc.extra) from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(HASH_READ_BYTES):
            digest.update(block)
    return digest.hexdigest()


# --- chunked uploads --------------------------------------------------------------------------------


def upload_sessions_clean_stale(now=None) -> int:
    """Delete upload sessions (and their bytes) untouched for STALE_UPLOAD_AFTER; return how many."""
    cutoff = (now or timezone.now()) - STALE_UPLOAD_AFTER
    removed = 0
    for session in UploadSession.objects.filter(created_at__lt=cutoff):
        part = session.part_path
        try:
            touched = datetime.fromtimestamp(part.stat().st_mtime, tz=UTC)
        except FileNotFoundError:
            touched = session.created_at
        if touched < cutoff:
            upload_abort(session)
            removed += 1
    # Part files whose session row is gone (a crash between the two deletions).
    known = {str(pk) for pk in UploadSession.objects.values_list("id", flat=True)}
    for part in uploads_dir().glob("*.part"):
        if part.stem not in known and (_mtime(part) or cutoff) < cutoff:  # gone meanwhile: nothing to do
            part.unlink(missing_ok=True)
    return removed


def upload_start(
    *, user: User, team: Team, name: str, size: object, sha256: str = "", batch_size: int = 1
) -> UploadSession:
    """Open a chunked upload of `size` bytes; refuse empty and oversized files before any byte moves."""
    _require(user, "create", team)
    check_batch(batch_size)
    name = clean_name(name)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise DocumentError("size must be the file's length in bytes.")
    _check_size(size)
    sha256 = (sha256 or "").strip().lower()
    if sha256 and not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise DocumentError("sha256 must be 64 hexadecimal characters.")
    _rate_limit(user)
    upload_sessions_clean_stale()
    check_team_storage(team, size)
    session = UploadSession.objects.create(team=team, created_by=user, name=name, size_bytes=size, sha256=sha256)
    uploads_dir()
    session.part_path.touch()
    return session


def upload_get(user: User, upload_id: uuid.UUID | str) -> UploadSession:
    """The user's own upload session, or NotFound."""
    session = (
        UploadSession.objects.select_related("team", "document").filter(pk=upload_id, created_by=user).first()
    )
    if session is None or not can(user, "create", session.team):
        raise NotFound("No such upload (it may have expired: unfinished uploads are kept 24 hours).")
    return session


def upload_append(session: UploadSession, offset: int, body, length: int | None) -> int:
    """Write the bytes of `body` (a file-like read in pieces) at exactly `offset`; return the new offset.

    A gap or an overlap is refused with status 409 and the offset the server has, so the client can
    resume from it. Bytes past the declared size abort the whole upload (the temp file is deleted).
    The part file is locked while appending, so two requests for one upload cannot interleave.
    """
    part = session.part_path
    if session.document_id:
        raise Conflict("This upload is already complete.", offset=session.size_bytes)
    if length is not None and length > settings.UPLOAD_CHUNK_BYTES:
        raise TooLarge(
            f"A chunk may be at most {settings.UPLOAD_CHUNK_BYTES} bytes.",
            chunk_size=settings.UPLOAD_CHUNK_BYTES,
        )
    # Checked again on every chunk: the quota may have been lowered, or other uploads finished.
    check_team_storage(session.team, session.size_bytes, exclude_upload=session)
    try:
        handle = part.open("r+b")
    except FileNotFoundError:
        raise NotFound("No such upload (it expired or was cancelled).") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        received = os.fstat(handle.fileno()).st_size
        if offset != received:
            raise Conflict(
                f"The server has {received} bytes of this upload; send the chunk at offset {received}.", offset=received,
            )
        if length is not None and received + length > session.size_bytes:
            upload_abort(session)
            raise TooLarge(
                f"More bytes were sent than the declared size of {session.size_bytes}; the upload was cancelled.",
            )
        handle.seek(received)
        written = 0
        stream = streaming.for_chunk(part, session.name, received)  # text is decoded as it arrives
        try:
            # Bytes are written as they arrive: if the connection breaks mid-chunk, what arrived is a
            # prefix of the chunk, so the client asks for the offset and resumes from there.
            while piece := body.read(min(STREAM_READ_BYTES, settings.UPLOAD_CHUNK_BYTES - written + 1)):
                written += len(piece)
                if written > settings.UPLOAD_CHUNK_BYTES:
                    handle.truncate(received)
                    raise TooLarge(
                        f"A chunk may be at most {settings.UPLOAD_CHUNK_BYTES} bytes.",
                        chunk_size=settings.UPLOAD_CHUNK_BYTES,
                    )
                if received + written > session.size_bytes:
                    handle.close()
                    upload_abort(session)
                    raise TooLarge(
                        f"More bytes were sent than the declared size of {session.size_bytes}; "
                        "the upload was cancelled.",
                    )
                handle.write(piece)
                if stream is not None:
                    stream.feed(piece)
            if stream is not None:
                stream.save()
        finally:
            if stream is not None:
                stream.close()  # after a broken connection: the next chunk resumes it from the files
        return received + written


def upload_abort(session: UploadSession) -> None:
    session.part_path.unlink(missing_ok=True)
    streaming.remove_files(session.part_path)
    UploadSession.objects.filter(pk=session.pk).delete()


@dataclass
class UploadOutcome:
    document: Document
    created: bool

    @property
    def message(self) -> str:
        if self.created and self.document.status == DocumentStatus.READY:  # text decoded while it arrived
            return f"Uploaded {self.document.name}; its text is ready."
        if self.created:
            return f"Uploaded {self.document.name}; extracting text."
        return f"Already uploaded as {self.document.name}."


def upload_complete(session: UploadSession) -> UploadOutcome:
    """Check the size (and the claimed hash), then turn the received bytes into a Document.

    Idempotent: completing again (a client whose first answer was lost) returns the same document.
    """
    if session.document_id:
        assert session.document is not None
        return UploadOutcome(session.document, created=False)
    try:
        handle = session.part_path.open("rb")
    except FileNotFoundError:
        raise NotFound("No such upload (it expired or was cancelled).") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # one completion at a time; appends wait too
        session.refresh_from_db()
        if session.document_id:
            assert session.document is not None
            return UploadOutcome(session.document, created=False)
        received = os.fstat(handle.fileno()).st_size
        if received != session.size_bytes:
            raise Conflict(
                f"The upload is incomplete: {received} of {session.size_bytes} bytes received.", offset=received,
            )
        digest = sha256_of(session.part_path)
        if session.sha256 and digest != session.sha256:
            upload_abort(session)
            raise DocumentError(
                "The received file does not match the sha256 the client announced; the upload was discarded. "
                "Upload it again."
            )
        streamed = streaming.finish_chunked(session.part_path, session.name, received)
        outcome = document_create_from_file(
            user=session.created_by, team=session.team, name=session.name, path=session.part_path, sha256=digest,
            reserved_by=session, streamed=streamed,
        )
        UploadSession.objects.filter(pk=session.pk).update(document=outcome.document)
    return outcome


def upload_rate_check(user: User) -> None:
    """Refuse (429) a user already at the upload rate limit, without counting: checked before a
    single-request upload's body is read."""
    try:
        rate_limit_check(user.pk, "upload")
    except errors.RateLimited as exc:
        raise RateLimited(exc.message, **exc.extra) from None


def upload_rate_limit(user: User, files: int) -> None:
    """Count `files` uploads against the user's rate limit (the single-request API upload)."""
    _rate_limit(user, files)


# --- documents --------------------------------------------------------------------------------------


def _duplicate_of(team: Team, sha256: str) -> Document | None:
    return Document.objects.filter(team=team, sha256=sha256).exclude(status=DocumentStatus.FAILED).first()


def document_create_from_file(
    *, user: User, team: Team, name: str, path: Path, sha256: str | None = None,
    reserved_by: UploadSession | None = None, streamed: streaming.StreamedText | None = None,
) -> UploadOutcome:
    """Adopt a complete file at `path` (it is moved, or deleted when a duplicate) as a Document.

    Identical content already in the team (same sha256) returns the existing document instead;
    a failed document with that content is replaced, which is how a failed extraction is retried.
    Extraction is queued after the transaction commits. The file must fit the team's storage quota
    (`reserved_by`: the upload whose reservation the file is, not counted twice).
    `streamed`: the text decoded while the file arrived (`apps.documents.streaming`); the document
    is then created ready, with no extraction task. It is moved, or deleted, like the file.
    """
    _require(user, "create", team)
    size = path.stat().st_size
    try:
        _check_size(size)
        name = clean_name(name)
        digest = sha256 or sha256_of(path)
        if _duplicate_of(team, digest) is None:
            check_team_storage(team, size, exclude_upload=reserved_by)
    except DocumentError:
        path.unlink(missing_ok=True)
        streaming.discard(streamed)
        raise
    existing = _duplicate_of(team, digest)
    if existing is not None:
        path.unlink(missing_ok=True)
        streaming.discard(streamed)
        return UploadOutcome(existing, created=False)
    document_id = uuid.uuid4()
    folder = documents_dir(team.pk)
    suffix = Path(name).suffix.lower()[:16]
    original = folder / f"{document_id}.original{suffix}"
    shutil.move(path, original)
    text = folder / f"{document_id}.txt"
    ready = streamed.place(text) if streamed is not None else {}
    try:
        with transaction.atomic():
            for failed in Document.objects.filter(team=team, sha256=digest, status=DocumentStatus.FAILED):
                _document_remove(failed)
            document = Document.objects.create(
                id=document_id,
                team=team,
                created_by=user if user.is_authenticated else None,
                name=name,
                format=format_for(name),
                size_bytes=size,
                sha256=digest,
                status=DocumentStatus.READY if ready else DocumentStatus.EXTRACTING,
                original_file=str(original.relative_to(settings.MEDIA_ROOT)),
                **ready,
            )
            if not ready:
                transaction.on_commit(lambda: _enqueue_extraction(document.pk))
    except IntegrityError:
        # The same content completed concurrently in another request: that document wins.
        original.unlink(missing_ok=True)
        text.unlink(missing_ok=True)
        existing = _duplicate_of(team, digest)
        if existing is None:
            raise
        return UploadOutcome(existing, created=False)
    except BaseException:
        original.unlink(missing_ok=True)
        text.unlink(missing_ok=True)
        raise
    return UploadOutcome(document, created=True)


def _enqueue_extraction(document_id: uuid.UUID) -> None:
    from .tasks import extract_document

    extract_document.delay(str(document_id))


def _text_file_for(document: Document) -> Path:
    return Path(settings.MEDIA_ROOT) / "documents" / str(document.team_id) / f"{document.pk}.txt"


class _Deleted(Exception):
    """The document was deleted while its text was being extracted."""


def document_extract(document_id: str) -> str:
    """Extract the text of a document that is still `extracting`; return its final status.

    Idempotent: a document already ready or failed is left alone, so a re-delivered task is harmless;
    two deliveries running at once each write their own part file and the last rename wins.
    """
    document = Document.objects.filter(pk=document_id).first()
    if document is None:
        return "missing"
    if document.status != DocumentStatus.EXTRACTING:
        return document.status
    dest = _text_file_for(document)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f"{dest.name}.{uuid.uuid4().hex[:8]}.part")
    last_report = [0.0]

    def progress(fraction: float) -> None:
        now = time.monotonic()
        if now - last_report[0] < PROGRESS_EVERY_S and fraction < 1.0:
            return
        last_report[0] = now
        if not Document.objects.filter(pk=document.pk).update(progress=round(fraction, 4)):
            raise _Deleted

    try:
        result = extract_bounded(
            document.original_path, part, document.name, progress,
            timeout_s=settings.EXTRACTION_TIMEOUT_S, memory_mb=settings.EXTRACTION_MEMORY_MB,
        )
    except _Deleted:
        part.unlink(missing_ok=True)
        return "deleted"
    except ExtractionError as exc:
        part.unlink(missing_ok=True)
        return _extraction_failed(document, str(exc))
    except Exception as exc:
        part.unlink(missing_ok=True)
        logger.exception("Extracting document %s failed", document.pk)
        return _extraction_failed(document, f"Text extraction failed unexpectedly ({type(exc).__name__}).")
    try:
        os.replace(part, dest)
    except FileNotFoundError:  # the document was deleted, and its files with it, while we extracted
        return "deleted"
    updated = Document.objects.filter(pk=document.pk, status=DocumentStatus.EXTRACTING).update(
        status=DocumentStatus.READY,
        progress=1.0,
        error="",
        extraction_note=result.note,
        text_file=str(dest.relative_to(settings.MEDIA_ROOT)),
        chars=result.chars,
        lines=result.lines,
        tokens_estimate=result.tokens_estimate,
        preview=result.preview,
    )
    if not updated and not Document.objects.filter(pk=document.pk).exists():
        dest.unlink(missing_ok=True)  # deleted at the last moment: leave nothing behind
        return "deleted"
    return DocumentStatus.READY


def _extraction_failed(document: Document, message: str) -> str:
    document.original_path.unlink(missing_ok=True)
    _text_file_for(document).unlink(missing_ok=True)
    Document.objects.filter(pk=document.pk).update(
        status=DocumentStatus.FAILED, error=message, progress=0.0, original_file="", text_file="",
        chars=0, lines=0, tokens_estimate=0, preview="",
    )
    return DocumentStatus.FAILED


def _document_files(document: Document) -> Iterable[Path]:
    folder = Path(settings.MEDIA_ROOT) / "documents" / str(document.team_id)
    yield from folder.glob(f"{document.pk}.*")


def team_document_files(team: Team) -> list[Path]:
    """Every file of every document of `team` (originals, texts, texts still being written)."""
    return [path for document in Document.objects.filter(team=team) for path in _document_files(document)]


def _document_remove(document: Document) -> None:
    files = list(_document_files(document))
    document.delete()

    def remove_files() -> None:
        for f in files:
            f.unlink(missing_ok=True)

    transaction.on_commit(remove_files)


def document_delete(*, user: User, document: Document) -> None:
    """Delete a document and its files (original, text, and any text still being written)."""
    if not can_change(user, document.team, document.created_by_id):
        raise Forbidden("Only the person who uploaded this document, or a team admin, can delete it.")
    try:
        with transaction.atomic():
            _document_remove(document)
    except ProtectedError as exc:
        runs = len(exc.protected_objects)
        raise Conflict(
            f"{document.name} is used by {runs} run(s); it is kept so their answers stay reproducible.",
        ) from None


# --- sweeps (run by every worker's periodic sweep, see rlmweb.sweeps.sweep_once) ---------------------


def _mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    except FileNotFoundError:
        return None


def _text_parts(document: Document) -> list[Path]:
    """The partial text files extraction is writing (or left behind) for `document`."""
    folder = Path(settings.MEDIA_ROOT) / "documents" / str(document.team_id)
    return list(folder.glob(f"{document.pk}.txt.*.part"))


def _last_written(parts: list[Path]) -> datetime | None:
    times = [t for t in map(_mtime, parts) if t is not None]
    return max(times) if times else None


def extraction_active(since: datetime) -> bool:
    """Whether an extraction wrote text after `since` (a worker is busy extracting)."""
    for document in Document.objects.filter(status=DocumentStatus.EXTRACTING).only("pk", "team_id"):
        written = _last_written(_text_parts(document))
        if written is not None and written >= since:
            return True
    return False


EXTRACTION_DIED = (
    "Text extraction did not finish: the worker extracting this file stopped (killed, crashed or restarted) "
    "and wrote nothing for {minutes} minutes. Upload the file again to retry."
)
EXTRACTION_NEVER_STARTED = (
    "Text extraction never started: no worker picked up this file within {minutes} minutes of the upload "
    "(the queued task was lost). Upload the file again to retry."
)


def documents_fail_stuck(stale_after: timedelta | None = None) -> int:
    """Fail documents stuck `extracting` and remove their files; return how many were failed.

    Stuck means: older than `stale_after` (default: settings.EXTRACTION_STALE_AFTER_S) and
    - extraction started (its partial text file exists) but wrote nothing for `stale_after`: the
      worker died mid-extraction (a killed worker's task is not redelivered:
      CELERY_TASK_REJECT_ON_WORKER_LOST is off, so a file that kills its worker cannot kill the next);
    - or extraction never started while the workers could have taken it: a document uploaded later
      got past `extracting` (the queue is first in, first out), or the workers are idle
      (`hooks.workers_idle`, answered by the runs app). One waiting behind a backlog is left alone.

    Failed, not re-enqueued: a re-delivery cannot tell a lost task from a file that crashes its
    worker, and there is no record of a retry to make it happen only once. Failing is what a
    failed extraction already does (the row stays with the reason, its files go), and uploading
    the same file again replaces the failed document, which is the retry.

    The status change is guarded (`WHERE status = 'extracting'`), so an extraction that finished
    meanwhile is left alone; a slow one still running finds its partial file gone and gives up
    without writing (see document_extract). Also removes partial text files older than
    `stale_after` of documents that are no longer extracting (or no longer exist).
    """
    if stale_after is None:
        stale_after = timedelta(seconds=settings.EXTRACTION_STALE_AFTER_S)
    now = timezone.now()
    cutoff = now - stale_after
    minutes = max(1, round(stale_after.total_seconds() / 60))
    idle: bool | None = None
    failed = 0
    for document in Document.objects.filter(status=DocumentStatus.EXTRACTING, created_at__lt=cutoff):
        parts = _text_parts(document)
        written = _last_written(parts)
        if written is not None:
            if written >= cutoff:
                continue  # still writing
            message = EXTRACTION_DIED.format(minutes=minutes)
        else:
            passed_over = Document.objects.filter(created_at__gt=document.created_at).exclude(
                status=DocumentStatus.EXTRACTING
            ).exists()
            if not passed_over:
                if idle is None:
                    idle = workers_idle(now)
                if not idle:
                    continue
            message = EXTRACTION_NEVER_STARTED.format(minutes=minutes)
        if _extraction_give_up(document, message):
            logger.warning("Document %s was stuck extracting; failed it", document.pk)
            failed += 1
    _remove_stray_text_parts(cutoff)
    return failed


def _extraction_give_up(document: Document, message: str) -> bool:
    updated = Document.objects.filter(pk=document.pk, status=DocumentStatus.EXTRACTING).update(
        status=DocumentStatus.FAILED, error=message, progress=0.0, original_file="", text_file="",
        chars=0, lines=0, tokens_estimate=0, preview="",
    )
    if not updated:
        return False
    for path in _document_files(document):  # original, text, partial text
        path.unlink(missing_ok=True)
    return True


def _remove_stray_text_parts(cutoff: datetime) -> int:
    """Delete `<document>.txt.<random>.part` files older than `cutoff` whose document is not extracting."""
    root = Path(settings.MEDIA_ROOT) / "documents"
    old: dict[uuid.UUID, list[Path]] = {}
    for part in root.glob("*/*.txt.*.part"):
        try:
            document_id = uuid.UUID(part.name.split(".", 1)[0])
        except ValueError:
            continue  # not a name extraction writes
        written = _mtime(part)
        if written is not None and written < cutoff:
            old.setdefault(document_id, []).append(part)
    extracting = set(
        Document.objects.filter(pk__in=list(old), status=DocumentStatus.EXTRACTING).values_list("pk", flat=True)
    )
    removed = 0
    for document_id, parts in old.items():
        if document_id in extracting:
            continue
        for part in parts:
            part.unlink(missing_ok=True)
            removed += 1
    return removed
