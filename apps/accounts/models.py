import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A per-user API token. Only its hash is stored; the token is shown once, when created."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, default="token")
    prefix = models.CharField(max_length=12, help_text="First characters, to tell tokens apart.")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Refused from then on; empty: never.")
    read_only = models.BooleanField(default=False, help_text="Only reads (GET, HEAD): no upload, ask or change.")

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @classmethod
    def issue(cls, user, name: str = "token", *, expires_in_days: int | None = None,
              read_only: bool = False) -> tuple["ApiToken", str]:
        raw = "rlm_" + secrets.token_urlsafe(32)
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        token = cls.objects.create(user=user, name=name, prefix=raw[:10], token_hash=hash_token(raw),
                                   expires_at=expires_at, read_only=read_only)
        return token, raw
