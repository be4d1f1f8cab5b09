import uuid
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models

from worker.engine import vocabulary

if TYPE_CHECKING:
    from apps.documents.models import Document


class RunStatus(models.TextChoices):
    """The engine's `vocabulary.RunStatus`, with labels."""

    QUEUED = vocabulary.RunStatus.QUEUED, "Queued"
    RUNNING = vocabulary.RunStatus.RUNNING, "Running"
    SUCCEEDED = vocabulary.RunStatus.SUCCEEDED, "Succeeded"
    FAILED = vocabulary.RunStatus.FAILED, "Failed"
    CANCELLED = vocabulary.RunStatus.CANCELLED, "Cancelled"


FINISHED_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class Mode(models.TextChoices):
    """The engine's `vocabulary.Mode`, with labels."""

    RLM = vocabulary.Mode.RLM, "RLM (REPL + sub-calls)"
    RLM_NO_SUBCALLS = vocabulary.Mode.RLM_NO_SUBCALLS, "RLM without sub-calls (REPL only)"
    DIRECT = vocabulary.Mode.DIRECT, "Direct (whole document in one call)"


class Run(models.Model):
    """One question asked of one or more documents. Its trajectory is its RunEvents."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="runs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    # A follow-up question: same documents, the conversation so far, the previous run's REPL snapshot.
    follow_up_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="follow_ups")
    conversation_id = models.UUIDField(null=True, blank=True, db_index=True,
                                       help_text="The first run of the conversation; empty on that run itself.")
    snapshot = models.CharField(max_length=300, blank=True,
                                help_text="The REPL snapshot file the run left, relative to RLMWEB_DATA_DIR.")
    helper_versions = models.JSONField(default=list, blank=True,
                                       help_text="The team helpers the run had: [{id, name, version}].")
    question = models.TextField()
    documents: "models.ManyToManyField[Document, RunDocument]" = models.ManyToManyField(
        "documents.Document", through="RunDocument", related_name="runs")
    mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.RLM)
    root_model = models.CharField(max_length=200)
    sub_model = models.CharField(max_length=200)
    limits = models.JSONField(default=dict)

    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    cancel_requested = models.BooleanField(default=False)
    final_answer = models.TextField(blank=True)
    answer_source = models.CharField(max_length=12, blank=True)
    forced_final = models.BooleanField(default=False)
    stop_reason = models.CharField(max_length=30, blank=True)
    failure_reason = models.TextField(blank=True)

    # Running totals, always written in the same transaction as the events they sum.
    last_seq = models.IntegerField(default=0)
    iterations = models.IntegerField(default=0)
    subcalls = models.IntegerField(default=0)
    max_depth_reached = models.IntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cost_usd = models.FloatField(default=0.0, help_text="Sum of the calls whose price is known.")
    cost_unknown_calls = models.IntegerField(default=0, help_text="Calls whose price litellm does not know.")

    task_id = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    imported = models.BooleanField(
        default=False, help_text="Imported from an export (review): its cost was spent elsewhere, not counted here."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.question[:60]} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or self.heartbeat_at or self.started_at
        return (end - self.started_at).total_seconds()

    @property
    def thread_id(self):
        """The conversation this run belongs to: the id of its first run."""
        return self.conversation_id or self.pk

    @property
    def cost_known(self) -> bool:
        return self.cost_unknown_calls == 0


class RunDocument(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE)
    document = models.ForeignKey("documents.Document", on_delete=models.PROTECT)
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["run", "position"], name="one_document_per_position")]

    def __str__(self) -> str:
        return f"{self.run_id} #{self.position}: {self.document_id}"


class RunEvent(models.Model):
    """One engine event, append-only. (run, seq) is contiguous from 1."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.IntegerField()
    type = models.CharField(max_length=32)
    ts = models.FloatField(help_text="Unix time the engine emitted it.")
    data = models.JSONField()

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="one_event_per_seq")]

    def __str__(self) -> str:
        return f"{self.run_id} #{self.seq} {self.type}"

    def to_dict(self) -> dict:
        return {"seq": self.seq, "type": self.type, "ts": self.ts, "data": self.data}
