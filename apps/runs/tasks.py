"""The runs app's Celery tasks: thin adapters that take ids and call the app's services."""

from celery import shared_task


@shared_task(name="runs.execute", bind=True, acks_late=True)
def run_rlm(self, run_id: str) -> str:
    from .execution import run_execute  # (execution -> services -> this module: import at call time)

    return run_execute(run_id, worker=self.request.hostname or "")


@shared_task(name="runs.mark_lost")
def mark_lost_runs() -> int:
    from .execution import runs_mark_lost

    return runs_mark_lost()
