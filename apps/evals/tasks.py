"""Celery tasks of evaluations: thin adapters taking ids."""

from celery import shared_task


@shared_task(name="evals.case", bind=True, acks_late=True)
def run_case(self, case_id: int) -> str:
    """Run one claimed case (its run executes in this task), then start the next pending ones."""
    from .models import CaseStatus, EvalCase
    from .services import case_run, evaluation_start

    case = EvalCase.objects.select_related("evaluation").filter(pk=case_id).first()
    if case is None or case.status != CaseStatus.RUNNING or case.run_id is not None:
        return "skipped"  # delivered twice, or the evaluation was deleted
    done = case_run(case, worker=self.request.hostname or "")
    evaluation_start(case.evaluation_id)
    return done.status


@shared_task(name="evals.prepare", acks_late=True)
def prepare_evaluation(evaluation_id: str) -> str:
    """Generate an evaluation's documents and cases, then start its first cases."""
    from .services import evaluation_prepare, evaluation_start

    evaluation = evaluation_prepare(evaluation_id)
    if evaluation.status == "running":
        evaluation_start(evaluation.pk)
    return evaluation.status
