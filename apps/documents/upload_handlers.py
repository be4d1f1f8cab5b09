"""A Django upload handler that streams multipart files straight into `DATA_DIR/uploads`.

Used by the single-request API upload (`POST /api/documents/` with `file` fields). Each file is
written in 1 MiB pieces while its sha256 is computed; the upload stops as soon as a file passes
MAX_UPLOAD_BYTES or the request carries more than MAX_FILES_PER_UPLOAD files, and every byte written
so far is deleted. A text file is decoded as it arrives (`apps.documents.streaming`), so its
document is ready when the request ends. Whatever a request received but did not turn into a document is deleted by
`discard_unclaimed()`, which the view calls however the request ends.
"""

import functools
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

from apps.accounts.requests import ApiRequest

from . import streaming
from .services import DocumentError, TooLarge, human_bytes, uploads_dir


@dataclass
class ReceivedFile:
    name: str
    path: Path
    size: int
    sha256: str
    streamed: streaming.StreamedText | None = None


class DocumentUploadHandler(FileUploadHandler):
    chunk_size = 1024 * 1024

    def __init__(self, request=None) -> None:
        super().__init__(request)
        self.received: list[ReceivedFile] = []
        self.rejection: DocumentError | None = None
        self._paths: list[Path] = []
        self._out: IO[bytes] | None = None
        self._digest: Any = None  # a hashlib sha256 while a file is received
        self._size = 0
        self._stream: streaming.TextStream | None = None

    def new_file(self, field_name, file_name, *args, **kwargs) -> None:
        super().new_file(field_name, file_name, *args, **kwargs)
        if len(self._paths) >= settings.MAX_FILES_PER_UPLOAD:
            self._reject(
                DocumentError(
                    f"Too many files in one upload: at most {settings.MAX_FILES_PER_UPLOAD} at a time.",
                )
            )
        path = uploads_dir() / f"{uuid.uuid4()}.part"
        self._paths.append(path)
        self._out = path.open("wb")
        self._digest = hashlib.sha256()
        self._size = 0
        wanted = streaming.enabled() and streaming.streams(file_name or "")
        self._stream = streaming.TextStream(path) if wanted else None

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self._size += len(raw_data)
        if self._size > settings.MAX_UPLOAD_BYTES:
            self._reject(
                TooLarge(
                    f"{self.file_name} is over the limit of {human_bytes(settings.MAX_UPLOAD_BYTES)}."
                )
            )
        assert self._out is not None  # (opened by new_file)
        self._out.write(raw_data)
        self._digest.update(raw_data)
        if self._stream is not None:
            self._stream.feed(raw_data)
        return None

    # Django keeps whatever this returns in request.FILES: a ReceivedFile, not an UploadedFile.
    def file_complete(self, file_size: int) -> ReceivedFile:  # type: ignore[override]
        assert self._out is not None and self.file_name is not None  # (set by new_file)
        self._out.close()
        self._out = None
        streamed = self._stream.finish() if self._stream is not None else None
        self._stream = None
        received = ReceivedFile(self.file_name, self._paths[-1], self._size, self._digest.hexdigest(), streamed)
        self.received.append(received)
        return received

    def upload_interrupted(self) -> None:
        self.discard_unclaimed()

    def _reject(self, error: DocumentError) -> None:
        self.rejection = error
        self.discard_unclaimed()
        raise StopUpload(connection_reset=True)

    def discard_unclaimed(self) -> None:
        """Delete every file this request received that was not moved into a document."""
        if self._out is not None:
            self._out.close()
            self._out = None
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        for path in self._paths:
            path.unlink(missing_ok=True)
            streaming.remove_files(path)


class UploadRequest(ApiRequest):
    """A request behind `streams_uploads`: its files are ReceivedFiles."""

    document_upload_handler: DocumentUploadHandler


def streams_uploads(view: Callable) -> Callable:
    """Install DocumentUploadHandler before anything reads the body, and clean up after the view.

    Outermost decorator: the API decorator's CSRF check may parse the body already.
    """

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        handler = DocumentUploadHandler(request)
        request.upload_handlers = [handler]
        request.document_upload_handler = handler
        try:
            return view(request, *args, **kwargs)
        finally:
            handler.discard_unclaimed()

    wrapper.csrf_exempt = getattr(view, "csrf_exempt", False)  # type: ignore[attr-defined]  # read by CsrfViewMiddleware
    return wrapper
