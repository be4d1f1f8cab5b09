import hashlib
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ShareLink(models.Model):
    """A public, read-only link to one run: `/s/<token>/`.

    Only the token's SHA-256 is stored (like API tokens): a copy of the database does not open
    any run, and the link is shown once, to the person who creates it. `prefix` tells links apart.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="share_links")
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    view_count = models.PositiveIntegerField(default=0)
    show_document_text = models.BooleanField(
        default=False, help_text="Let link holders read the documents' extracted text (never the original files)."
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"share {self.prefix}… of run {self.run_id}"

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(32)

    @property
    def state(self) -> str:
        """"active", "revoked" or "expired"."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"

    @property
    def is_active(self) -> bool:
        return self.state == "active"
