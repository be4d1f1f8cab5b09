"""Review's reactions to what runs announce (connected in ReviewConfig.ready)."""

from django.dispatch import receiver

from apps.runs.hooks import run_finished
from apps.runs.models import Run

from . import services


@receiver(run_finished, dispatch_uid="review.run_finished")
def classify_finished_run(sender: type, run: Run, **kwargs: object) -> None:
    services.review_classify(run)  # looked up at each call (tests replace it)
