import hashlib
import secrets
import uuid

from django.conf import settings
from django.db import models


class EvaluationStatus(models.TextChoices):
    PREPARING = "preparing", "Preparing"
    FAILED = "failed", "Failed"
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"
    CANCELLED = "cancelled", "Cancelled"


class CaseStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SCORED = "scored", "Scored"
    SKIPPED = "skipped", "Skipped (cost cap)"
    CANCELLED = "cancelled", "Cancelled"


class Evaluation(models.Model):
    """A suite asked of a matrix of models × modes × sizes; each case is one ordinary Run."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="evaluations")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    name = models.CharField(max_length=200)
    suite = models.CharField(max_length=300)
    root_models = models.JSONField(default=list, help_text="Root models; each run's sub-model is the same model.")
    modes = models.JSONField(default=list)
    sizes = models.JSONField(default=list)
    sub_model = models.CharField(max_length=200, blank=True, help_text="Sub-calls' model; blank: the root model.")
    seed = models.IntegerField(default=0)
    depths = models.JSONField(default=list, blank=True, help_text="niah: the needle depths in turn (0 start, 1 end).")
    cases_per_size = models.IntegerField(default=5)
    documents = models.ManyToManyField("documents.Document", blank=True, related_name="+",
                                       help_text="The user's documents the suite was built from.")
    max_cost_usd = models.FloatField(null=True, blank=True, help_text="No case starts once this is spent.")
    concurrency = models.PositiveIntegerField(default=2, help_text="Cases running at once.")
    judge_model = models.CharField(max_length=200, blank=True)
    scorer = models.CharField(max_length=20, blank=True, help_text="Scores every case; blank: each case's own.")
    questions_name = models.CharField(max_length=300, blank=True, help_text="The file suite's question file.")
    questions_text = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=EvaluationStatus.choices, default=EvaluationStatus.PREPARING)
    error = models.TextField(blank=True, help_text="Why preparing the cases failed.")
    spent_usd = models.FloatField(default=0.0, help_text="Known cost of the runs and judge calls so far.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status in (EvaluationStatus.PREPARING, EvaluationStatus.RUNNING)


class EvalCase(models.Model):
    """One question of the suite for one (model, mode, size) cell, its run, and its score.

    The run's numbers (cost, latency, tokens, outcome) are copied here when it is scored, so the
    results page and the aggregates read these rows and never the runs' events."""

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="cases")
    index = models.PositiveIntegerField()
    item_key = models.CharField(max_length=100, help_text="The same question in every cell shares its key.")
    model = models.CharField(max_length=200)
    mode = models.CharField(max_length=20)
    size = models.BigIntegerField(help_text="Characters of context.")
    question = models.TextField()
    expected = models.JSONField()
    scorer = models.CharField(max_length=20)
    scorer_params = models.JSONField(default=dict)
    document_ids = models.JSONField(default=list)
    meta = models.JSONField(default=dict)

    run = models.OneToOneField("runs.Run", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="evaluation_case")
    status = models.CharField(max_length=10, choices=CaseStatus.choices, default=CaseStatus.PENDING, db_index=True)
    answer = models.TextField(blank=True)
    score = models.FloatField(null=True, blank=True)
    reason = models.TextField(blank=True)
    outcome = models.CharField(max_length=32, blank=True, help_text="The review classifier's outcome class.")
    cost_usd = models.FloatField(null=True, blank=True, help_text="The run's cost; None when any call was unpriced.")
    judge_cost_usd = models.FloatField(null=True, blank=True)
    latency_s = models.FloatField(null=True, blank=True)
    tokens = models.BigIntegerField(default=0)
    subcalls = models.IntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When a worker slot was given to it.")
    scored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["evaluation", "index"], name="one_case_per_index")]
        indexes = [models.Index(fields=["evaluation", "status"])]

    def __str__(self) -> str:
        return f"{self.evaluation_id} #{self.index} {self.model}/{self.mode}/{self.size}"

    @property
    def verdict(self) -> str:
        if self.score is None:
            return ""
        return "correct" if self.score >= 1 else "incorrect" if self.score <= 0 else "partial"


class EvaluationShareLink(models.Model):
    """A read-only link to one evaluation's results: `/evals/shared/<token>/`.

    As for runs' share links, only the token's SHA-256 is stored and the link is shown once. The
    shared page shows the matrix, the plots and every case's question, expected answer, answer and
    score; not the runs' explorers (share a run on its own page for that) nor any document."""

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="share_links")
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"share {self.prefix}… of evaluation {self.evaluation_id}"

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(32)

    @staticmethod
    def hash(raw: str) -> str:
        return hashlib.sha256(raw.encode()).hexdigest()
