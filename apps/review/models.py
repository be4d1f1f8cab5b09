from django.conf import settings
from django.db import models

from . import classify


class Outcome(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    SUCCEEDED_FORCED = "succeeded_forced", "Succeeded at a limit (forced answer)"
    NO_FINAL_ANSWER = "no_final_answer", "No final answer"
    BUDGET_COST = "budget_exceeded_cost", "Budget exceeded: cost"
    BUDGET_ITERATIONS = "budget_exceeded_iterations", "Budget exceeded: iterations"
    BUDGET_DEPTH = "budget_exceeded_depth", "Budget exceeded: depth"
    BUDGET_SUBCALLS = "budget_exceeded_subcalls", "Budget exceeded: sub-calls"
    BUDGET_TIME = "budget_exceeded_time", "Budget exceeded: time"
    PROVIDER_ERROR = "provider_error", "Provider error"
    SANDBOX_ERRORS = "sandbox_errors", "Sandbox errors"
    TOO_LARGE_FOR_DIRECT = "too_large_for_direct", "Too large for direct mode"
    ENGINE_ERROR = "engine_error", "Engine error"
    CANCELLED = "cancelled", "Cancelled"
    WORKER_LOST = "worker_lost", "Worker lost"


assert set(Outcome.values) == set(classify.OUTCOMES), "Outcome choices and classify.OUTCOMES must agree"

PATTERN_LABELS = {
    "repeated_subcall_prompts": "Repeated identical sub-call prompts",
    "near_duplicate_subcall_prompts": "Near-identical sub-call prompts",
    "verification_loop": "Verification loop",
    "answer_not_in_computed_values": "Answer absent from last computed values",
    "subcall_fanout": "Sub-call fan-out above document size",
    "many_cell_errors": "Many failed cells",
    "document_never_read": "A document never read by a sub-call",
    "all_subcalls_not_found": "Every sub-call answered NOT FOUND",
    "answer_not_in_trajectory": "Answer found in no computed value",
}
assert set(PATTERN_LABELS) == set(classify.PATTERNS)


class ReviewState(models.TextChoices):
    NEW = "new", "New"
    TRIAGED = "triaged", "Triaged"
    RESOLVED = "resolved", "Resolved"
    WONTFIX = "wontfix", "Won't fix"


class Label(models.Model):
    """A reviewer's tag from the editable taxonomy (e.g. 'bad chunking', 'prompt bug', 'regression set')."""

    name = models.CharField(max_length=80, unique=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RunReview(models.Model):
    """The review record of one finished run: what the classifier found and what reviewers decided."""

    run = models.OneToOneField("runs.Run", on_delete=models.CASCADE, related_name="review")
    outcome = models.CharField(max_length=32, choices=Outcome.choices, db_index=True)
    patterns = models.JSONField(default=list, blank=True, help_text="Names of the patterns detected.")
    details = models.JSONField(default=dict, blank=True, help_text="The classifier's evidence, per rule.")
    classified_at = models.DateTimeField(null=True, blank=True)

    state = models.CharField(max_length=10, choices=ReviewState.choices, default=ReviewState.NEW, db_index=True)
    labels = models.ManyToManyField(Label, blank=True, related_name="reviews")
    notes = models.TextField(blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_reviews",
        limit_choices_to={"is_staff": True},
    )
    imported_from = models.JSONField(
        null=True, blank=True,
        help_text="Set on runs created by an import: the file, the original run id and its feedback.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-run__created_at"]

    def __str__(self) -> str:
        return f"{self.get_outcome_display()}: {self.run}"

    @property
    def is_failure(self) -> bool:
        return self.outcome not in classify.SUCCESS_OUTCOMES

    @property
    def pattern_labels(self) -> list[str]:
        return [PATTERN_LABELS.get(p, p) for p in self.patterns]


class Rating(models.IntegerChoices):
    UP = 1, "Thumbs up"
    DOWN = -1, "Thumbs down"


class Feedback(models.Model):
    """One user's verdict on a run's answer; sending again updates it."""

    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="run_feedback")
    rating = models.SmallIntegerField(choices=Rating.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [models.UniqueConstraint(fields=["run", "user"], name="one_feedback_per_user_per_run")]

    def __str__(self) -> str:
        return f"{self.get_rating_display()} by {self.user} on {self.run_id}"
