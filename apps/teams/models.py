import hashlib
import secrets
import uuid
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


class Team(models.Model):
    name = models.CharField(max_length=120)
    personal = models.BooleanField(default=False, help_text="Created automatically for one user.")
    created_at = models.DateTimeField(auto_now_add=True)
    members: "models.ManyToManyField[User, Membership]" = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="teams")
    monthly_cap_usd = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True,
        help_text="New runs are refused once the known cost of this calendar month (UTC) reaches it.",
    )

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="one_membership_per_team")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class Invite(models.Model):
    """A link that adds whoever opens it (signed in) to a team with a role.

    Only the token's hash is stored; the link is shown once, to the admin who creates it.
    `max_uses` None means any number of people may use it until it expires or is revoked.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invites")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    max_uses = models.PositiveIntegerField(null=True, blank=True, default=1)
    uses = models.PositiveIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"invite {self.prefix}… to {self.team} as {self.role}"

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(32)

    @property
    def state(self) -> str:
        """"active", "revoked", "expired" or "used up"."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        if self.max_uses is not None and self.uses >= self.max_uses:
            return "used up"
        return "active"


class MemberInvitation(models.Model):
    """An admin's offer of membership to one user, by username; the user joins only by accepting it.

    Adding someone by name creates one of these (or nothing, when the name is unknown or already a
    member, and the admin is told the same either way), so a team cannot enrol people unasked and
    its admins cannot learn from the answer which usernames exist.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="member_invitations")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_invitations")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="one_invitation_per_team_and_user")]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.user} invited to {self.team} as {self.role}"


class DeletedRunSpend(models.Model):
    """What a deleted run cost, kept so that deleting runs neither erases the team's spending
    history nor brings it back under its monthly cap.

    Written by `apps.runs.services.run_delete` in the same transaction as the delete; counted by
    `team_month_spend` (the cap) and `team_spend_report` (the spending page and API) alongside
    the runs that still exist, by the run's creation time and the person who asked.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="deleted_run_spend")
    run_id = models.UUIDField(unique=True, help_text="The deleted run's id (no longer points at anything).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    run_created_at = models.DateTimeField(help_text="When the run was created: spend counts toward that month.")
    deleted_at = models.DateTimeField(auto_now_add=True)
    cost_usd = models.FloatField(default=0.0)
    cost_unknown_calls = models.IntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["team", "run_created_at"], name="teams_deleted_spend_team_at")]

    def __str__(self) -> str:
        return f"deleted run {self.run_id} of {self.team}: ${self.cost_usd:.4f}"
