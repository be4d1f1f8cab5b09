import uuid
from pathlib import Path

from django.conf import settings
from django.db import models


class DocumentStatus(models.TextChoices):
    EXTRACTING = "extracting", "Extracting text"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Document(models.Model):
    """An uploaded file and the plain text extracted from it (what the REPL sees as `context`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="documents")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    name = models.CharField(max_length=255)
    format = models.CharField(max_length=20, blank=True, help_text="txt, md, csv, json, html, pdf, docx, code…")
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=12, choices=DocumentStatus.choices, default=DocumentStatus.EXTRACTING)
    progress = models.FloatField(default=0.0, help_text="Extraction progress, 0 to 1.")
    error = models.TextField(blank=True)
    extraction_note = models.TextField(blank=True, help_text="What extraction did, e.g. the encoding detected.")
    original_file = models.CharField(max_length=500, blank=True, help_text="Path under MEDIA_ROOT.")
    text_file = models.CharField(max_length=500, blank=True, help_text="Path under MEDIA_ROOT, UTF-8.")
    chars = models.BigIntegerField(default=0)
    lines = models.BigIntegerField(default=0)
    tokens_estimate = models.BigIntegerField(default=0)
    preview = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Identical uploads are recognised by content hash: one document per content per team.
            models.UniqueConstraint(
                fields=["team", "sha256"], condition=~models.Q(sha256=""), name="one_document_per_content_per_team"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def text_path(self) -> Path:
        return Path(settings.MEDIA_ROOT) / self.text_file

    @property
    def original_path(self) -> Path:
        return Path(settings.MEDIA_ROOT) / self.original_file


class UploadSession(models.Model):
    """A chunked upload in progress. The bytes live in `DATA_DIR/uploads/<id>.part`; the file's
    length is the received offset, so a resumed upload asks the file, not the database."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="upload_sessions")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=255)
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, blank=True, help_text="Claimed by the client; checked on completion.")
    document = models.ForeignKey(
        Document, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Set on completion, so a repeated `complete` (its first answer lost) gets the same answer.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"upload of {self.name}"

    @property
    def part_path(self) -> Path:
        return Path(settings.DATA_DIR) / "uploads" / f"{self.id}.part"

    @property
    def received_bytes(self) -> int:
        if self.document_id:
            return self.size_bytes
        try:
            return self.part_path.stat().st_size
        except FileNotFoundError:
            return 0
