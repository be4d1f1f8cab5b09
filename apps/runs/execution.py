"""Executing a Run: claim it, run the engine with the database sink, make sure it ends.

Called by the Celery task `apps.runs.tasks.run_rlm` (and by `manage.py rlm ask`). Safe to call twice
for the same run: only the first call claims a queued run.
"""

import logging
import threading
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Q
from django.utils import timezone

from apps.documents.services import extraction_active
from apps.helpers.services import helper_sources
from apps.teams.models import Team
from apps.teams.services import team_month_spend
from worker.engine import DocumentInput, Earlier, Helper, Limits, RunSpec, Session
from worker.engine import run as engine_run
from worker.engine.llm import ModelOptions
from worker.engine.vocabulary import StopReason

from .conversations import run_ancestors, snapshot_file, snapshot_relpath
from .hooks import run_finished
from .lifecycle import end_run
from .models import Mode, Run, RunStatus
from .models_config import model_choices
from .sink import DatabaseSink

logger = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
LIMIT_KEYS = ("max_iterations", "max_depth", "max_subcalls", "max_cost_usd", "max_wall_s")


def build_spec(run: Run, root_script: list[str] | None = None, allow_unpriced: bool | None = None) -> RunSpec:
    """The engine's RunSpec for `run`. Its cost cap is clipped to what is left of the team's
    monthly cap, so that one run can never spend past it."""
    documents = [
        DocumentInput(name=d.name, path=str(d.text_path), chars=d.chars)
        for d in run.documents.order_by("rundocument__position")
    ]
    limits = Limits(
        **{k: v for k, v in (run.limits or {}).items() if k in LIMIT_KEYS},
        output_limit_chars=settings.RUN_OUTPUT_LIMIT_CHARS,
        subcall_concurrency=settings.RUN_SUBCALL_CONCURRENCY,
        cell_timeout_s=settings.RUN_CELL_TIMEOUT_S,
        max_prompt_chars=settings.RLMWEB_MAX_PROMPT_CHARS,
    )
    left = team_cap_left(run.team_id)
    if left is not None:
        limits.max_cost_usd = left if limits.max_cost_usd is None else min(limits.max_cost_usd, left)
    options = {
        m.model: ModelOptions(api_base=m.api_base, api_key_env=m.api_key_env, context_window=m.context_window,
                              **_call_options(m.model))
        for m in model_choices()
    }
    return RunSpec(
        question=run.question,
        documents=documents,
        mode=run.mode,
        root_model=run.root_model,
        sub_model=run.sub_model,
        limits=limits,
        model_options=options,
        root_script=root_script,
        allowed_models=list(options),
        allow_unpriced=settings.RLMWEB_ALLOW_UNPRICED if allow_unpriced is None else allow_unpriced,
        session=run_session(run),
    )


def run_session(run: Run) -> Session:
    """What the run starts with besides its documents (a follow-up's conversation and the previous
    run's snapshot, the team's helpers) and where its own snapshot goes."""
    restore = None
    if run.follow_up_of_id and run.mode != Mode.DIRECT:
        assert run.follow_up_of is not None  # (follow_up_of_id is set)
        path = snapshot_file(run.follow_up_of.snapshot)
        restore = str(path) if path is not None else None
    return Session(
        conversation=[Earlier(r.question, r.final_answer or f"(no answer: the run {r.status})")
                      for r in run_ancestors(run)],
        restore_from=restore,
        save_to=str(Path(settings.DATA_DIR) / snapshot_relpath(run)) if run.mode != Mode.DIRECT else None,
        helpers=[Helper(h["name"], h["version"], h["source"]) for h in helper_sources(run.helper_versions)],
    )


CALL_OPTION_KEYS = ("timeout_s", "max_retries", "max_output_tokens", "input_cost_per_token", "output_cost_per_token")


def _call_options(model: str) -> dict:
    """Per-call options of a model's RLMWEB_MODELS entry, where the operator set them: timeout_s,
    max_retries, max_output_tokens, and per-token prices for models litellm has no price for."""
    entry = next((m for m in settings.RLMWEB_MODELS if m.get("model") == model), {})
    return {k: entry[k] for k in CALL_OPTION_KEYS if entry.get(k) is not None}


def team_cap_left(team_id) -> float | None:
    """USD left of the team's monthly cap (0 at least), or None when the team has no cap."""
    team = Team.objects.filter(pk=team_id).first()
    if team is None or team.monthly_cap_usd is None:
        return None
    spent, _ = team_month_spend(team)
    return max(0.0, float(team.monthly_cap_usd - spent))


_WATCHES: dict[str, "RunWatch"] = {}  # runs executing in this process, by id
_WATCHES_LOCK = threading.Lock()


def run_cancel_here(run_id) -> bool:
    """Stop a run executing in this process at once, without waiting for its watch's next look at
    the database (the CLI's Ctrl-C; call services.run_cancel too, so the cancel is recorded).
    False when the run is not executing here."""
    with _WATCHES_LOCK:
        watch = _WATCHES.get(str(run_id))
    if watch is None:
        return False
    watch.cancelled.set()
    return True


class RunWatch:
    """Beats the run's heartbeat and watches for cancellation from a side thread.

    Neither may depend on the engine polling: a cell can run for minutes without a model call.
    """

    def __init__(self, run_id) -> None:
        self.run_id = run_id
        self.cancelled = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"watch-{run_id}", daemon=True)

    def __enter__(self) -> "RunWatch":
        with _WATCHES_LOCK:
            _WATCHES[str(self.run_id)] = self
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with _WATCHES_LOCK:
            _WATCHES.pop(str(self.run_id), None)
        self._stop.set()
        self._thread.join()

    def should_stop(self) -> bool:
        return self.cancelled.is_set()

    def _loop(self) -> None:
        try:
            beat = 0.0
            while not self._stop.wait(0.5):
                beat += 0.5
                try:
                    if beat >= HEARTBEAT_S:
                        Run.objects.filter(pk=self.run_id).update(heartbeat_at=timezone.now())
                        beat = 0.0
                    if Run.objects.filter(pk=self.run_id, cancel_requested=True).exists():
                        self.cancelled.set()
                except Exception:  # a database hiccup must not end the heartbeat: the run would look lost
                    logger.warning("Heartbeat of run %s failed; retrying", self.run_id, exc_info=True)
                    connection.close()
        finally:
            close_old_connections()


def run_execute(run_id, worker: str = "", root_script: list[str] | None = None,
                allow_unpriced: bool | None = None) -> str:
    now = timezone.now()
    claimed = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=now, heartbeat_at=now, worker=worker[:200]
    )
    if not claimed:
        status = Run.objects.filter(pk=run_id).values_list("status", flat=True).first()
        logger.info("Run %s not claimed (status %s): delivered twice or gone", run_id, status)
        return status or "missing"
    run = Run.objects.get(pk=run_id)
    if run.cancel_requested:
        end_run(run.pk, RunStatus.CANCELLED, "Cancelled before it started.", StopReason.CANCELLED)
        return RunStatus.CANCELLED
    sink = DatabaseSink(run.pk)
    failure = ""
    try:
        with RunWatch(run.pk) as watch:
            spec = build_spec(run, root_script, allow_unpriced)
            engine_run(spec, sink, should_stop=lambda: watch.should_stop() or sink.failed)
    except Exception as exc:
        logger.exception("Run %s crashed", run_id)
        failure = f"Internal error: {type(exc).__name__}: {exc}"
    try:
        sink.close()
    except Exception as exc:  # the engine was stopped when the sink gave up; say why the run ended
        logger.exception("Recording the events of run %s failed", run_id)
        failure = f"Recording the run's events failed: {type(exc).__name__}: {exc}"
    if failure:  # numbered after the last event that reached the database, so seqs stay contiguous
        end_run(run.pk, RunStatus.FAILED, failure)
    if snapshot_file(snapshot_relpath(run)) is not None:
        Run.objects.filter(pk=run_id).update(snapshot=snapshot_relpath(run))
    final = Run.objects.get(pk=run_id)
    if not final.is_finished:  # the engine returned without its terminal event: never leave it running
        end_run(final.pk, RunStatus.FAILED, "The engine stopped without a final status.")
        final.refresh_from_db()
    _classify(final)
    return final.status


def _classify(run: Run) -> None:
    """File the finished run for review; a classifier bug must not fail the run itself."""
    try:
        run_finished.send(sender=Run, run=run)
    except Exception:
        logger.exception("Classifying run %s failed; the periodic sweep will retry", run.pk)


WORKER_LOST = ("Worker lost: the worker running this run stopped responding (killed or crashed). Events recorded "
               "before that are kept.")


def runs_mark_lost(stale_after: timedelta | None = None) -> int:
    """Fail running runs whose worker stopped beating (killed, crashed, machine lost) for longer
    than `stale_after` (default: settings.RUN_LOST_AFTER_S), and file each for review at once.

    A run whose worker wrote events meanwhile (it was alive after all) makes the terminal event's
    seq collide; that run is skipped (logged) and the others are still swept.
    """
    if stale_after is None:
        stale_after = timedelta(seconds=settings.RUN_LOST_AFTER_S)
    cutoff = timezone.now() - stale_after
    lost: list[Run] = []
    for run in Run.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff):
        try:  # guarded: a heartbeat that came meanwhile keeps the run
            ended = end_run(run.pk, RunStatus.FAILED, WORKER_LOST, StopReason.WORKER_LOST,
                            only_from=(RunStatus.RUNNING,), guard=Q(heartbeat_at__lt=cutoff))
        except Exception:
            logger.exception("Marking run %s lost failed; the next sweep retries", run.pk)
            continue
        if ended:
            lost.append(run)
    for run in lost:
        _classify(run)
    return len(lost)


# A worker counts as busy when a run is running, a run finished this recently (its slot is just
# being handed to the next message), or an extraction wrote text this recently.
BUSY_WITHIN = timedelta(minutes=2)


def workers_idle(now=None) -> bool:
    """Whether no worker slot is plausibly busy: nothing running, nothing just finished, no
    extraction writing. A message still in the queue would have been taken by an idle worker."""
    since = (now or timezone.now()) - BUSY_WITHIN
    if Run.objects.filter(status=RunStatus.RUNNING).exists():
        return False
    if Run.objects.filter(finished_at__gte=since).exists():
        return False
    return not extraction_active(since)


NEVER_PICKED_UP = (
    "Never picked up by a worker: the run was still queued {minutes} minutes after it was asked and no worker "
    "had claimed it (its queue message was lost, e.g. the queue was wiped or the broker lost it). Nothing ran "
    "and nothing was spent; re-run it to try again."
)


def runs_fail_unclaimed(stale_after: timedelta | None = None) -> int:
    """Fail runs queued longer than `stale_after` (default: settings.RUN_QUEUED_STALE_AFTER_S)
    that no worker will ever claim, with their terminal event, and file each for review.

    Fail, not re-enqueue. A re-enqueue would be safe against double execution (`run_execute`
    claims with `UPDATE … WHERE status = 'queued'`, so a second delivery of the same run finds it
    claimed and returns), but "once" needs a record that it was done, which the Run has no column
    for; without one every sweep would add another message. A run that starts hours after it was
    asked also spends money the user may no longer expect, and a lost run keeps counting against
    the team's concurrent-run limit until it ends. Failed, it says why, frees the slot, and the
    user re-runs it with one click.

    Lost, not just waiting: a run that went through the broker (it has a task id) is failed only
    when the workers could have taken it, i.e. a run asked after it has already been claimed by a
    worker (the queue is first in, first out), or the workers are idle (`workers_idle`). A run
    queued behind a long backlog is left alone. A run without a task id was never enqueued (the
    CLI executes those itself, at once): if it is still queued, its process is gone.

    Never touches a claimed run: the status change is the same guarded UPDATE the worker's claim
    is, in one transaction with the terminal event, so exactly one of the two wins. A queued run
    whose cancellation was requested ends cancelled instead.

    The stop reason is "worker_lost", so review files it with the other runs the workers lost;
    the failure reason says it never started.
    """
    if stale_after is None:
        stale_after = timedelta(seconds=settings.RUN_QUEUED_STALE_AFTER_S)
    now = timezone.now()
    stale = list(Run.objects.filter(status=RunStatus.QUEUED, created_at__lt=now - stale_after).order_by("created_at"))
    if not stale:
        return 0
    idle = workers_idle(now)
    reason = NEVER_PICKED_UP.format(minutes=max(1, round(stale_after.total_seconds() / 60)))
    ended: list[Run] = []
    for run in stale:
        passed_over = Run.objects.exclude(task_id="").filter(
            created_at__gt=run.created_at, started_at__isnull=False
        ).exists()
        if run.task_id and not (idle or passed_over):
            continue
        try:
            if run.cancel_requested:
                done = end_run(run.pk, RunStatus.CANCELLED, "Cancelled before it started.", StopReason.CANCELLED,
                               only_from=(RunStatus.QUEUED,))
            else:
                done = end_run(run.pk, RunStatus.FAILED, reason, StopReason.WORKER_LOST, only_from=(RunStatus.QUEUED,))
        except Exception:
            logger.exception("Failing unclaimed run %s failed; the next sweep retries", run.pk)
            continue
        if done:
            logger.warning("Run %s was never picked up by a worker; failed it", run.pk)
            ended.append(run)
    for run in ended:
        _classify(run)
    return len(ended)
