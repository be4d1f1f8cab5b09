"""Conversations: follow-up questions on a finished run, the thread of runs, and the REPL snapshots
that carry one run's work into the next.

A follow-up is an ordinary run with `follow_up_of` set: the same documents, the same settings unless
changed, `conversation_id` = the first run's id. When it executes, the engine gets the earlier
questions and answers of its line (the first run down to the one it follows, not the trajectories)
and the snapshot file the previous run left (`Run.snapshot`, under RLMWEB_DATA_DIR/snapshots).
"""

import logging
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.db.models.signals import post_delete
from django.dispatch import receiver

from apps.teams.permissions import can

from .models import Run, RunDocument
from .services import RunConflict, RunNotFound, run_create

logger = logging.getLogger(__name__)

SNAPSHOT_DIR = "snapshots"
MAX_EARLIER = 20
THREAD_MAX = 200


def run_follow_up(user: User, previous: Run, question: str, mode: str | None = None,
                  root_model: str | None = None, sub_model: str | None = None, limits: dict | None = None,
                  *, enqueue: bool = True) -> Run:
    """Ask `question` as a follow-up of the finished run `previous` (same team, same documents).

    The settings default to the previous run's; `limits` is merged over its limits. Raises
    RunNotFound (not the user's team), RunConflict (not finished yet), ValidationError, as run_create.
    """
    if not can(user, "view", previous.team):
        raise RunNotFound("No such run.")
    if not previous.is_finished:
        raise RunConflict("A follow-up can be asked once the run has finished.")
    merged = dict(previous.limits or {})
    if isinstance(limits, dict):
        merged.update(limits)
    elif limits is not None:
        merged = limits
    document_ids = list(RunDocument.objects.filter(run=previous).order_by("position")
                        .values_list("document_id", flat=True))
    return run_create(user, previous.team, question, document_ids, mode or previous.mode,
                      root_model or previous.root_model, sub_model or previous.sub_model, merged,
                      enqueue=enqueue, follow_up_of=previous)


def run_thread(run: Run) -> list[Run]:
    """Every run of `run`'s conversation, oldest first (the first run and all its follow-ups)."""
    root = run.thread_id
    return list(Run.objects.filter(Q(pk=root) | Q(conversation_id=root), team_id=run.team_id)
                .order_by("created_at")[:THREAD_MAX])


def run_ancestors(run: Run) -> list[Run]:
    """The runs `run` follows, oldest first: what its root is told about the conversation."""
    chain: list[Run] = []
    current = run.follow_up_of
    while current is not None and len(chain) < MAX_EARLIER:
        chain.append(current)
        current = current.follow_up_of
    return chain[::-1]


def thread_json(run: Run) -> list[dict]:
    """The conversation of `run` for exports, share links and the API: question, answer, cost."""
    return [{"id": str(r.pk), "follow_up_of": str(r.follow_up_of_id) if r.follow_up_of_id else None,
             "question": r.question, "status": r.status, "final_answer": r.final_answer,
             "cost_usd": None if r.cost_unknown_calls else r.cost_usd, "created_at": r.created_at.isoformat(),
             "current": r.pk == run.pk}
            for r in run_thread(run)]


def run_thread_rows(run: Run, links: bool = True) -> list[dict]:
    """The conversation for a page: each run's question, answer, status and cost, the current one
    marked; `links` (the team's pages, not a share link's) adds each run's explorer URL."""
    from django.urls import reverse

    from .selectors import cost_display

    return [{"question": r.question, "final_answer": r.final_answer, "status": r.status,
             "status_display": r.get_status_display(), "cost": cost_display(r), "current": r.pk == run.pk,
             "url": reverse("run_detail", args=[r.pk]) if links else ""}
            for r in run_thread(run)]


# ---------------------------------------------------------------------------------------------
# snapshot files
# ---------------------------------------------------------------------------------------------
def snapshot_relpath(run: Run) -> str:
    return f"{SNAPSHOT_DIR}/{run.pk}.json"


def snapshot_file(relpath: str) -> Path | None:
    """The absolute path of a stored snapshot, or None if it is not a file under the snapshot dir."""
    if not relpath:
        return None
    base = (Path(settings.DATA_DIR) / SNAPSHOT_DIR).resolve()
    path = (Path(settings.DATA_DIR) / relpath).resolve()
    if path.parent != base or not path.is_file():
        return None
    return path


def snapshot_delete(relpath: str) -> None:
    path = snapshot_file(relpath)
    if path is not None:
        try:
            path.unlink()
        except OSError:
            logger.warning("Deleting snapshot %s failed", path, exc_info=True)


@receiver(post_delete, sender=Run, dispatch_uid="runs.snapshot_delete")
def _delete_snapshot_with_run(sender, instance: Run, **kwargs) -> None:
    """However a run goes (run_delete, its team deleted, the admin), its snapshot file goes once the
    deletion is committed."""
    if instance.snapshot:
        relpath = instance.snapshot
        transaction.on_commit(lambda: snapshot_delete(relpath))
