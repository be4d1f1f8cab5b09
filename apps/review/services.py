"""Changing review state: classify runs, record feedback, triage reviews.

`review_classify(run)` is what the runs app calls when a run finishes; it is idempotent, so calling
it again (the backfill command, a re-delivered task) only refreshes what the classifier found and
never touches what reviewers decided.
"""

import logging
from collections.abc import Iterable

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.runs.models import FINISHED_STATUSES, Run
from apps.teams.permissions import can
from rlmweb.web.errors import Invalid, NotFound

from .classify import RunFacts, classify
from .models import Feedback, Label, Rating, ReviewState, RunReview

logger = logging.getLogger(__name__)


class FeedbackInvalid(Invalid):
    """A rating or comment that cannot be saved."""


class RunNotVisible(NotFound):
    """The user may not see the run (or it does not exist): callers answer 404 either way."""


def run_facts(run: Run) -> RunFacts:
    return RunFacts(
        status=run.status, stop_reason=run.stop_reason, failure_reason=run.failure_reason,
        forced_final=run.forced_final, final_answer=run.final_answer, answer_source=run.answer_source,
    )


def review_classify(run: Run) -> RunReview | None:
    """Classify a finished run from its events into its RunReview (created on first call).

    Returns None for a run that has not finished: there is nothing to classify yet.
    """
    run.refresh_from_db()
    if not run.is_finished:
        return None
    events = [e.to_dict() for e in run.events.order_by("seq")]
    result = classify(events, run_facts(run))
    review, _ = RunReview.objects.update_or_create(
        run=run,
        defaults={"outcome": result.outcome, "patterns": result.patterns, "details": result.details,
                  "classified_at": timezone.now()},
    )
    return review


def reviews_classify_pending(everything: bool = False) -> int:
    """Classify finished runs that have no review yet (or, with `everything`, all finished runs again)."""
    runs = Run.objects.filter(status__in=FINISHED_STATUSES)
    if not everything:
        runs = runs.filter(review__isnull=True)
    done = 0
    for run in runs.iterator():
        try:
            review = review_classify(run)
        except Exception:  # one run whose events break a rule must not keep the others unreviewed
            logger.exception("Classifying run %s failed", run.pk)
            continue
        if review is not None:
            done += 1
    return done


def parse_rating(value) -> int:
    """'up' / 'down' / 1 / -1 (as sent by the form, the script and API clients) as a Rating."""
    text = str(value).strip().lower()
    if text in ("up", "1", "+1", "true", "thumbs_up"):
        return Rating.UP
    if text in ("down", "-1", "false", "thumbs_down"):
        return Rating.DOWN
    raise FeedbackInvalid("rating must be 'up' or 'down'.")


def feedback_submit(user: User | AnonymousUser, run: Run, rating, comment: str = "") -> Feedback:
    """Record (or update) the user's thumbs up/down and comment on a run's answer."""
    if not can(user, "view", run.team):
        raise RunNotVisible("No such run.")
    value = parse_rating(rating)
    comment = (comment or "").strip()
    if len(comment) > 5000:
        raise FeedbackInvalid("comment is limited to 5000 characters.")
    feedback, _ = Feedback.objects.update_or_create(
        run=run, user=user, defaults={"rating": value, "comment": comment}
    )
    return feedback


def reviews_set_state(reviews: QuerySet[RunReview], state: str) -> int:
    if state not in ReviewState.values:
        raise ValueError(f"unknown review state {state!r}")
    return reviews.update(state=state, updated_at=timezone.now())


def reviews_assign(reviews: QuerySet[RunReview], assignee: User | None) -> int:
    if assignee is not None and not assignee.is_staff:
        raise ValueError("reviews can only be assigned to staff")
    return reviews.update(assignee=assignee, updated_at=timezone.now())


def reviews_add_label(reviews: Iterable[RunReview], label: Label) -> int:
    with transaction.atomic():
        reviews = list(reviews)
        for review in reviews:
            review.labels.add(label)
    return len(reviews)


def reviews_remove_label(reviews: Iterable[RunReview], label: Label) -> int:
    with transaction.atomic():
        reviews = list(reviews)
        for review in reviews:
            review.labels.remove(label)
    return len(reviews)
