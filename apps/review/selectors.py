"""Reading reviews: the queue's filters (shared by the admin, the queue page and the export command),
feedback counts, and the staff summary."""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.runs.models import Mode, Run
from rlmweb.ids import parse_id

from .classify import PATTERNS, SUCCESS_OUTCOMES
from .models import PATTERN_LABELS, Feedback, Outcome, Rating, RunReview

# (key, label, lowest cost included, highest cost excluded); None means open.
COST_BUCKETS = (
    ("free", "$0 (or unknown)", None, 1e-12),
    ("lt_0_01", "under $0.01", 1e-12, 0.01),
    ("0_01_0_1", "$0.01 – $0.10", 0.01, 0.1),
    ("0_1_1", "$0.10 – $1", 0.1, 1.0),
    ("gte_1", "$1 or more", 1.0, None),
)
FEEDBACK_FILTERS = (("down", "Has thumbs down"), ("up", "Has thumbs up"), ("none", "No feedback"))
FILTER_KEYS = ("outcome", "pattern", "model", "mode", "team", "cost", "feedback", "state", "label", "since",
               "until", "q", "assignee")


def cost_q(bucket: str) -> Q | None:
    for key, _, low, high in COST_BUCKETS:
        if key == bucket:
            q = Q()
            if low is not None:
                q &= Q(run__cost_usd__gte=low)
            if high is not None:
                q &= Q(run__cost_usd__lt=high)
            return q
    return None


def pattern_q(pattern: str) -> Q:
    # Patterns are stored as a JSON list of names; JSON `contains` is not available on SQLite, but the
    # quoted name is a unique substring of the list's JSON text on every backend.
    return Q(patterns__icontains=f'"{pattern}"')


def feedback_q(kind: str) -> Q | None:
    if kind == "down":
        return Q(Exists(Feedback.objects.filter(run=OuterRef("run"), rating=Rating.DOWN)))
    if kind == "up":
        return Q(Exists(Feedback.objects.filter(run=OuterRef("run"), rating=Rating.UP)))
    if kind == "none":
        return ~Q(Exists(Feedback.objects.filter(run=OuterRef("run"))))
    return None


def review_list() -> QuerySet[RunReview]:
    """Every review with what the queue shows, newest run first, thumbs counted."""
    return (
        RunReview.objects.select_related("run", "run__team", "assignee")
        .prefetch_related("labels")
        .annotate(
            thumbs_up=Count("run__feedback", filter=Q(run__feedback__rating=Rating.UP), distinct=True),
            thumbs_down=Count("run__feedback", filter=Q(run__feedback__rating=Rating.DOWN), distinct=True),
        )
        .order_by("-run__created_at")
    )


def _date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def review_filter(reviews: QuerySet[RunReview], params, user=None) -> QuerySet[RunReview]:
    """Narrow reviews by the queue's filters; unknown or empty values are ignored.

    params: a mapping (request.GET, command options) with any of FILTER_KEYS; `user` is who
    "assignee=me" means.
    """
    get = params.get
    if get("outcome") in Outcome.values:
        reviews = reviews.filter(outcome=get("outcome"))
    if get("pattern") in PATTERNS:
        reviews = reviews.filter(pattern_q(get("pattern")))
    if get("model"):
        reviews = reviews.filter(Q(run__root_model=get("model")) | Q(run__sub_model=get("model")))
    if get("mode") in Mode.values:
        reviews = reviews.filter(run__mode=get("mode"))
    if (team_id := parse_id(get("team"))) is not None:
        reviews = reviews.filter(run__team_id=team_id)
    if get("cost") and (q := cost_q(get("cost"))) is not None:
        reviews = reviews.filter(q)
    if get("feedback") and (q := feedback_q(get("feedback"))) is not None:
        reviews = reviews.filter(q)
    if get("state"):
        reviews = reviews.filter(state=get("state"))
    if get("label"):
        reviews = reviews.filter(labels__name=get("label")).distinct()
    if get("assignee") == "me" and user is not None:
        reviews = reviews.filter(assignee=user)
    elif (assignee_id := parse_id(get("assignee"))) is not None:
        reviews = reviews.filter(assignee_id=assignee_id)
    if since := _date(get("since")):
        reviews = reviews.filter(run__created_at__date__gte=since)
    if until := _date(get("until")):
        reviews = reviews.filter(run__created_at__date__lte=until)
    if text := (get("q") or "").strip():
        reviews = reviews.filter(Q(run__question__icontains=text) | Q(run__final_answer__icontains=text))
    return reviews


def feedback_counts(run: Run) -> dict:
    counts = dict(Feedback.objects.filter(run=run).values_list("rating").annotate(n=Count("id")))
    return {"up": counts.get(Rating.UP, 0), "down": counts.get(Rating.DOWN, 0)}


def feedback_of(user, run: Run) -> Feedback | None:
    if not user.is_authenticated:
        return None
    return Feedback.objects.filter(run=run, user=user).first()


def model_choices() -> list[str]:
    return sorted(set(RunReview.objects.values_list("run__root_model", flat=True)))


@dataclass
class Summary:
    days: list[dt.date]
    by_outcome: dict[str, list[int]]      # failure class -> count per day
    by_pattern: dict[str, list[int]]      # pattern -> count per day
    failed_cost: list[float]              # cost of failed runs per day
    by_model: list[dict]                  # rows: model, runs, failed, failure_rate, failed_cost, cost
    by_mode: list[dict]
    by_outcome_total: list[dict]          # rows: outcome, label, count, cost
    by_pattern_total: list[dict]
    runs: int
    failed: int
    failed_cost_total: float


def _rows(reviews: QuerySet[RunReview], field: str) -> list[dict]:
    failed = ~Q(outcome__in=SUCCESS_OUTCOMES)
    rows = (
        reviews.values(field)
        .annotate(runs=Count("id"), failed=Count("id", filter=failed),
                  cost=Sum("run__cost_usd"), failed_cost=Sum("run__cost_usd", filter=failed))
        .order_by(field)
    )
    return [
        {"key": r[field], "runs": r["runs"], "failed": r["failed"], "cost": r["cost"] or 0.0,
         "failed_cost": r["failed_cost"] or 0.0, "failure_rate": r["failed"] / r["runs"] if r["runs"] else 0.0}
        for r in rows
    ]


def review_summary(days: int = 30, today: dt.date | None = None) -> Summary:
    """The last `days` days: per day, runs of every class but plain success (so forced answers show too)
    and of every pattern, and the cost of failed runs (every class but the two successes); totals per
    class, pattern, root model and mode."""
    today = today or timezone.localdate()
    start = today - dt.timedelta(days=days - 1)
    day_list = [start + dt.timedelta(days=i) for i in range(days)]
    index = {d: i for i, d in enumerate(day_list)}
    reviews = RunReview.objects.filter(run__created_at__date__gte=start, run__created_at__date__lte=today)
    non_success = reviews.exclude(outcome="succeeded")

    by_outcome: dict[str, list[int]] = defaultdict(lambda: [0] * days)
    for row in non_success.annotate(day=TruncDate("run__created_at")).values("day", "outcome").annotate(n=Count("id")):
        if row["day"] in index:
            by_outcome[row["outcome"]][index[row["day"]]] += row["n"]

    by_pattern: dict[str, list[int]] = defaultdict(lambda: [0] * days)
    failed_cost = [0.0] * days
    for day, patterns, outcome, cost in (
        reviews.annotate(day=TruncDate("run__created_at")).values_list("day", "patterns", "outcome", "run__cost_usd")
    ):
        if day not in index:
            continue
        for pattern in patterns or []:
            by_pattern[pattern][index[day]] += 1
        if outcome not in SUCCESS_OUTCOMES:
            failed_cost[index[day]] += cost or 0.0

    labels = dict(Outcome.choices)
    outcome_totals: list[dict[str, Any]] = [
        {"key": o, "label": labels.get(o, o), "count": sum(counts)} for o, counts in by_outcome.items()
    ]
    outcome_totals.sort(key=lambda r: -r["count"])
    pattern_totals: list[dict[str, Any]] = [
        {"key": p, "label": PATTERN_LABELS.get(p, p), "count": sum(counts)} for p, counts in by_pattern.items()
    ]
    pattern_totals.sort(key=lambda r: -r["count"])
    failed_total = reviews.exclude(outcome__in=SUCCESS_OUTCOMES)
    return Summary(
        days=day_list,
        by_outcome=dict(by_outcome),
        by_pattern=dict(by_pattern),
        failed_cost=[round(c, 6) for c in failed_cost],
        by_model=_rows(reviews, "run__root_model"),
        by_mode=_rows(reviews, "run__mode"),
        by_outcome_total=outcome_totals,
        by_pattern_total=pattern_totals,
        runs=reviews.count(),
        failed=failed_total.count(),
        failed_cost_total=failed_total.aggregate(c=Sum("run__cost_usd"))["c"] or 0.0,
    )


def reviewers() -> QuerySet:
    """Who reviews can be assigned to: active staff."""
    return get_user_model().objects.filter(is_staff=True, is_active=True).order_by("username")


def reviewer(raw_id: object):
    """The active staff user with this id (from a form), or None."""
    user_id = parse_id(raw_id)
    return None if user_id is None else reviewers().filter(pk=user_id).first()
