import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import F, Prefetch, Q, QuerySet
from django.utils import timezone

from apps.teams.models import Team
from apps.teams.permissions import can

from . import formats
from .models import Mode, Run, RunDocument, RunEvent, RunStatus

EVENT_PAGE = 500


def run_list_for_team(team: Team) -> QuerySet[Run]:
    ordered = RunDocument.objects.select_related("document").order_by("position")
    return (
        Run.objects.filter(team=team)
        .select_related("created_by")
        .prefetch_related(Prefetch("rundocument_set", queryset=ordered))  # the documents, in order
        .order_by("-created_at")
    )


# The runs list's sortable columns: name in the URL -> fields to order by (the newest first on ties).
RUN_SORTS = {
    "created": ("created_at",),
    "question": ("question",),
    "status": ("status",),
    "model": ("root_model",),
    "tokens": ("tokens_total",),
    "subcalls": ("subcalls",),
    "cost": ("cost_usd",),
    "duration": ("duration",),
}


def run_list_filtered(team: Team, status: str = "", mode: str = "", search: str = "", model: str = "",
                      user: str = "", sort: str = "-created") -> QuerySet[Run]:
    """The team's runs narrowed by status, mode, root model, who asked and a search of question and
    answer, ordered by one of RUN_SORTS (`-name` for descending; newest first by default)."""
    runs = run_list_for_team(team)
    if status in RunStatus.values:
        runs = runs.filter(status=status)
    if mode in Mode.values:
        runs = runs.filter(mode=mode)
    if model:
        runs = runs.filter(root_model=model)
    if user:
        runs = runs.filter(created_by__username=user)
    search = search.strip()
    if search:
        runs = runs.filter(Q(question__icontains=search) | Q(final_answer__icontains=search))
    name = sort.removeprefix("-")
    fields = RUN_SORTS.get(name, RUN_SORTS["created"])
    descending = sort.startswith("-") or name not in RUN_SORTS
    runs = runs.annotate(tokens_total=F("prompt_tokens") + F("completion_tokens"),
                         duration=F("finished_at") - F("started_at"))
    order = [f"-{f}" if descending else f for f in fields]
    return runs.order_by(*order, "-created_at")


def run_list_choices(team: Team) -> dict:
    """What the runs list can be filtered by: the root models and the people who asked in this team."""
    runs = Run.objects.filter(team=team)
    return {
        "models": sorted(set(runs.values_list("root_model", flat=True))),
        "users": sorted(set(runs.exclude(created_by=None).values_list("created_by__username", flat=True))),
    }


def run_get_for_user(user: User, run_id: uuid.UUID | str) -> Run | None:
    """The run if the user may view its team; None otherwise, so other teams' ids reveal nothing."""
    try:
        run_id = uuid.UUID(str(run_id))
    except ValueError:
        return None
    run = Run.objects.select_related("team", "created_by", "rerun_of").filter(pk=run_id).first()
    if run is None or not can(user, "view", run.team):
        return None
    return run


def run_documents(run: Run) -> list:
    """The run's documents in the order they were given to the engine (prefetched by run_list_for_team)."""
    if "rundocument_set" in getattr(run, "_prefetched_objects_cache", {}):
        rows = run.rundocument_set.all()
    else:
        rows = run.rundocument_set.select_related("document").order_by("position")
    return [rd.document for rd in rows]


def run_events_since(run_id, since: int, limit: int = 1000) -> list[dict]:
    """Events of a run with seq > since, in order, at most `limit` of them."""
    rows = RunEvent.objects.filter(run_id=run_id, seq__gt=since).order_by("seq")[:limit]
    return [row.to_dict() for row in rows]


MAX_EVENTS_PER_REQUEST = 5000


def run_events_page(run_id, since: int, limit: int, shown: Callable[[dict], dict] | None = None) -> dict:
    """One page of the events endpoint (the run page's, the API's, a share link's): events with
    seq > since in order (each through `shown`, if given); `more` says whether to ask again from
    the last seq."""
    events = run_events_since(run_id, since, limit)
    if shown is not None:
        events = [shown(event) for event in events]
    status, last_seq = Run.objects.filter(pk=run_id).values_list("status", "last_seq").get()
    return {
        "run": str(run_id),
        "status": status,
        "last_seq": last_seq,
        "events": events,
        "more": bool(events) and events[-1]["seq"] < last_seq,
    }


def run_events_between(run_id, since: int, upto: int | None = None, page: int = EVENT_PAGE) -> Iterator[list[dict]]:
    """Pages of events with since < seq ≤ upto (no upper bound when None), in order."""
    while True:
        rows = RunEvent.objects.filter(run_id=run_id, seq__gt=since)
        if upto is not None:
            rows = rows.filter(seq__lte=upto)
        batch = [row.to_dict() for row in rows.order_by("seq")[:page]]
        if not batch:
            return
        yield batch
        since = batch[-1]["seq"]
        if len(batch) < page:
            return


def run_queue_note(run: Run) -> str:
    """Why a queued run waits, and where it stands: "" once it is no longer queued. Counts only (runs of
    every team share the workers), so nothing about other teams' runs is revealed but their number."""
    if run.status != RunStatus.QUEUED:
        return ""
    ahead = Run.objects.filter(status=RunStatus.QUEUED, created_at__lt=run.created_at).count()
    running = Run.objects.filter(status=RunStatus.RUNNING).count()
    busy = f"{running:,} run{'' if running == 1 else 's'} running now" if running else "no run is running"
    if not ahead:
        return f"Queued: next in line for a worker ({busy}); it starts as soon as one is free."
    return (f"Queued: position {ahead + 1:,} in line for a worker, {ahead:,} run{'' if ahead == 1 else 's'} "
            f"ahead ({busy}).")


def run_events_all(run_id) -> list[dict]:
    """Every event of a run, in order (for whole-run views such as compare)."""
    return [event for page in run_events_between(run_id, 0) for event in page]


def cost_display(run: Run) -> str:
    """Cost for people: "unknown" when no call had a known price, "≥ $x" when some had none."""
    if run.cost_unknown_calls and not run.cost_usd:
        return "unknown"
    prefix = "≥ " if run.cost_unknown_calls else ""
    return prefix + formats.usd(run.cost_usd)


def run_seems_lost(run: Run, now: datetime | None = None) -> bool:
    """Whether a running run's worker has been silent long enough (RUN_LOST_AFTER_S) for the sweep
    to fail it as "worker lost" (`execution.runs_mark_lost`). Reads only: pages and the API say so
    before the sweep comes, and never end the run themselves."""
    heartbeat = getattr(run, "heartbeat_at", None)  # a share link's page shows a SharedRun, which has none
    if run.status != RunStatus.RUNNING or heartbeat is None:
        return False
    return heartbeat < (now or timezone.now()) - timedelta(seconds=settings.RUN_LOST_AFTER_S)


def run_summary(run: Run, documents: list | None = None) -> dict:
    """A run as JSON: settings, status, totals and answer. Cost is null when any call's price is unknown."""
    documents = run_documents(run) if documents is None else documents
    return {
        "id": str(run.pk),
        "team": run.team_id,
        "created_by": run.created_by.get_username() if run.created_by else None,
        "rerun_of": str(run.rerun_of_id) if run.rerun_of_id else None,
        "follow_up_of": str(run.follow_up_of_id) if run.follow_up_of_id else None,
        "conversation_id": str(run.thread_id),
        "helpers": run.helper_versions,
        "question": run.question,
        "documents": [{"id": str(d.pk), "name": d.name, "chars": d.chars} for d in documents],
        "mode": run.mode,
        "root_model": run.root_model,
        "sub_model": run.sub_model,
        "limits": run.limits,
        "status": run.status,
        "cancel_requested": run.cancel_requested,
        "worker_lost": run_seems_lost(run),
        "final_answer": run.final_answer,
        "answer_source": run.answer_source,
        "forced_final": run.forced_final,
        "stop_reason": run.stop_reason,
        "failure_reason": run.failure_reason,
        "last_seq": run.last_seq,
        "totals": {
            "iterations": run.iterations,
            "subcalls": run.subcalls,
            "max_depth_reached": run.max_depth_reached,
            "prompt_tokens": run.prompt_tokens,
            "completion_tokens": run.completion_tokens,
            "tokens": run.tokens,
            "cost_usd": None if run.cost_unknown_calls else run.cost_usd,
            "cost_known_usd": run.cost_usd,
            "cost_unknown_calls": run.cost_unknown_calls,
        },
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_s": run.duration_s,
    }


def run_trajectory_chunks(run: Run) -> Iterator[str]:
    """The whole trajectory as one JSON document {"run": …, "events": […]}, streamed in pieces."""
    from .conversations import thread_json

    head = json.dumps({"format": "rlmweb.trajectory/1", "run": {**run_summary(run), "conversation": thread_json(run)}})
    yield head[:-1] + ', "events": ['
    first = True
    for page in run_events_between(run.pk, 0):
        for event in page:
            yield ("" if first else ",\n") + json.dumps(event)
            first = False
    yield "]}\n"
