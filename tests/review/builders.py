"""Runs for the review tests: from a synthetic trajectory, or from a real engine run.

Both end the same way as a live run: the events go through `persist_events` onto a Run row (so its
status, answer and totals come out of the events) and the run is classified by `review_classify`.
"""

from django.contrib.auth.models import User

from apps.review.models import RunReview
from apps.review.services import review_classify
from apps.runs.models import Run, RunStatus
from apps.runs.sink import persist_events
from tests.review.trajectories import Trajectory


def run_with_events(team, events, user=None, question: str = "What is the code?", mode: str = "rlm",
                    root_model: str = "openai/gpt-4o", sub_model: str = "openai/gpt-4o-mini", **fields) -> Run:
    """A Run row carrying `events` (engine Events) and its review."""
    run = Run.objects.create(team=team, created_by=user, question=question, mode=mode, root_model=root_model,
                             sub_model=sub_model, status=RunStatus.RUNNING, **fields)
    persist_events(run.pk, events)
    review_classify(run)
    run.refresh_from_db()
    return run


def run_from(team, trajectory: Trajectory, **fields) -> Run:
    return run_with_events(team, trajectory.as_events(), **fields)


def review_of(run: Run) -> RunReview:
    return RunReview.objects.get(run=run)


def make_staff(username: str = "reviewer", superuser: bool = True) -> User:
    """A staff user for force_login: no password, so no slow hashing."""
    return User.objects.create(username=username, email=f"{username}@example.com", is_staff=True,
                               is_superuser=superuser)
