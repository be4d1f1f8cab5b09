"""Celery tasks of evaluations: thin adapters taking ids."""

from celery import shared_task


@shared_task(name="evals.case", bind=True, acks_late=True)
def run_case(self, case_id: int) -> str:
    """Run one claimed case (its run executes in this task), then start the next pending ones."""
    from .models import CaseStatus, EvalCase
    from .services import BUSY_RETRY_S, TeamBusy, case_run, evaluation_start

    case = EvalCase.objects.filter(pk=case_id).first()
    if case is None or case.status != CaseStatus.RUNNING or case.run_id is not None:
        return "skipped"  # delivered twice, or the evaluation was deleted
    try:
        done = case_run(case, worker=self.request.hostname or "")
    except TeamBusy:  # the team's other runs hold every slot: try again later, not at once
        start_evaluation.apply_async(args=[str(case.evaluation_id)], countdown=BUSY_RETRY_S * 2)
        return "busy"
    evaluation_start(case.evaluation_id)
    return done.status


@shared_task(name="evals.start")
def start_evaluation(evaluation_id: str) -> int:
    """Start an evaluation's next cases, up to its concurrency."""
    from .services import evaluation_start

    return evaluation_start(evaluation_id)


@shared_task(name="evals.prepare", acks_late=True)
def prepare_evaluation(evaluation_id: str) -> str:
    """Generate an evaluation's documents and cases, then start its first cases."""
    from .services import evaluation_prepare, evaluation_start

    evaluation = evaluation_prepare(evaluation_id)
    if evaluation.status == "running":
        evaluation_start(evaluation.pk)
    return evaluation.status
