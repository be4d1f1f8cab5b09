import uuid

from django.conf import settings
from django.db import models


class TargetKind(models.TextChoices):
    RUN = "run", "The run"
    CELL = "cell", "A REPL cell"
    NODE = "node", "A sub-call node"


class Comment(models.Model):
    """A remark on a run, or on one of its cells or sub-call nodes (by the engine's ids, e.g. c3, n17).

    Deleting is soft (`deleted_at`): the row stays for the record, its body is no longer served.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    body = models.TextField()
    target_kind = models.CharField(max_length=4, choices=TargetKind.choices, default=TargetKind.RUN)
    target_id = models.CharField(max_length=64, blank=True, help_text="cell_id or node_id; empty for the run.")
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["run", "created_at"])]

    def __str__(self) -> str:
        target = self.target_kind if not self.target_id else f"{self.target_kind} {self.target_id}"
        return f"comment on {target} of run {self.run_id}"
