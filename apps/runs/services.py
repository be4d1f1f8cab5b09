"""Services that change runs: ask (create and enqueue), cancel, re-run, delete.

Views, the JSON API, the CLI and the admin call these; every rule about asking lives here once.
Validation failures raise `django.core.exceptions.ValidationError` with a dict of field errors
(`question`, `documents`, `mode`, `root_model`, `sub_model`, `limits.<name>`, `__all__`) and
create nothing. Permission failures raise `RunNotFound` (the team is not one of the user's: reveal
nothing) or `PermissionDenied` (a member whose role does not allow it).
"""

import logging
import uuid
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from apps.documents.models import Document, DocumentStatus
from apps.helpers.services import helper_versions_for_run
from apps.teams.models import Team
from apps.teams.permissions import can, can_change
from apps.teams.services import spend_record_deleted_run, team_spend_guard
from rlmweb.web.errors import Conflict, NotFound
from rlmweb.web.ratelimit import rate_limit_hit
from worker.engine.vocabulary import StopReason

from .lifecycle import end_run
from .models import Mode, Run, RunDocument, RunStatus
from .models_config import model_choice, model_choices

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 20_000
MAX_DOCUMENTS = 100

# Each limit: (type, minimum, maximum, default). `max_depth` counts levels of model calls below
# the root: 1 is the paper's setting (llm_query / rlm_query are plain sub-calls), 2..5 let
# `rlm_query` start child RLMs with their own REPL. "No sub-calls at all" is the
# `rlm-no-subcalls` mode, not a depth.
LIMITS: dict[str, tuple[type, float, float, float]] = {
    "max_iterations": (int, 1, 200, 20),
    "max_depth": (int, 1, 5, 1),
    "max_subcalls": (int, 1, 100_000, 1_000),
    "max_cost_usd": (float, 0.0, 1000.0, 5.0),
    "max_wall_s": (int, 10, 24 * 3600, 3600),
}


class RunNotFound(NotFound):
    """No such run or team for this user (other teams' objects are reported the same way)."""


class RunConflict(Conflict):
    """The run is in a state that does not allow the action (e.g. cancelling a finished run)."""


def default_limits() -> dict:
    return {name: spec[3] for name, spec in LIMITS.items()}


def limits_clean(limits: dict | None) -> tuple[dict, dict[str, str]]:
    """Validated limits (defaults filled in) and field errors keyed `limits.<name>`."""
    cleaned = default_limits()
    errors: dict[str, str] = {}
    if limits is None:
        return cleaned, errors
    if not isinstance(limits, dict):
        return cleaned, {"limits": "Limits must be an object of name → number."}
    for name, value in limits.items():
        if name not in LIMITS:
            errors[f"limits.{name}"] = f"Unknown limit; the limits are {', '.join(LIMITS)}."
            continue
        if value is None:
            continue
        kind, low, high, _ = LIMITS[name]
        ok_type = isinstance(value, int) if kind is int else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type or value != value:  # bool is an int; NaN ≠ NaN
            errors[f"limits.{name}"] = "Must be a whole number." if kind is int else "Must be a number."
            continue
        if kind is float and low == 0.0 and not 0 < value <= high:  # a cost cap of 0 would stop at once
            errors[f"limits.{name}"] = f"Must be more than 0 and at most {high:g}."
        elif not low <= value <= high:
            errors[f"limits.{name}"] = f"Must be between {low:g} and {high:g}."
        else:
            cleaned[name] = kind(value)
    return cleaned, errors


def _model_error(model: object) -> str | None:
    if not isinstance(model, str) or not model:
        return "Choose a model."
    choice = model_choice(model)
    if choice is None:
        offered = ", ".join(m.model for m in model_choices())
        return f"Unknown model {model!r}; the models offered here are: {offered}."
    if not choice.available:
        return f"{choice.label} is not available on this server: {choice.how_to_enable}"
    return None


def _documents_clean(team: Team, document_ids: object) -> tuple[list[Document], str | None]:
    if not isinstance(document_ids, list | tuple) or not document_ids:
        return [], "Pick at least one document."
    if len(document_ids) > MAX_DOCUMENTS:
        return [], f"At most {MAX_DOCUMENTS} documents per run."
    ids: list[uuid.UUID] = []
    for raw in document_ids:
        try:
            ids.append(raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw)))
        except ValueError:
            return [], f"{str(raw)[:60]!r} is not a document id."
    if len(set(ids)) != len(ids):
        return [], "A document is listed twice."
    found = {d.pk: d for d in Document.objects.filter(team=team, pk__in=ids)}
    missing = [i for i in ids if i not in found]
    if missing:
        return [], f"No such document in this team: {missing[0]}."
    not_ready = [found[i] for i in ids if found[i].status != DocumentStatus.READY]
    if not_ready:
        d = not_ready[0]
        state = "still being extracted" if d.status == DocumentStatus.EXTRACTING else f"{d.status}"
        return [], f"{d.name} is not ready ({state}); only ready documents can be asked about."
    return [found[i] for i in ids], None


def _require(user: User, team: Team) -> None:
    if not can(user, "view", team):
        raise RunNotFound("No such team.")
    if not can(user, "create", team):
        raise PermissionDenied("Your role in this team does not allow asking questions.")


def run_create(
    user: User,
    team: Team,
    question: str,
    document_ids: Iterable,
    mode: str = Mode.RLM,
    root_model: str | None = None,
    sub_model: str | None = None,
    limits: dict | None = None,
    rerun_of: Run | None = None,
    *,
    enqueue: bool = True,
    rate_limit: bool = True,
    follow_up_of: Run | None = None,
) -> Run:
    """Validate an ask, create the Run with its documents, and enqueue it after the commit.

    `enqueue=False` is for callers that execute the run themselves (the CLI). `rate_limit=False`
    is for the runs of an evaluation: one ask of the user, paced by its own concurrency limit.
    `follow_up_of`: see `apps.runs.conversations.run_follow_up`, which checks it.
    """
    _require(user, team)
    errors: dict[str, str] = {}
    if not isinstance(question, str) or not question.strip():
        errors["question"] = "Write a question."
    elif len(question) > MAX_QUESTION_CHARS:
        errors["question"] = f"The question is {len(question):,} characters; at most {MAX_QUESTION_CHARS:,}."
    documents: list[Document] = []
    doc_error: str | None
    if document_ids is not None and (isinstance(document_ids, str | bytes) or not isinstance(document_ids, Iterable)):
        doc_error = "Must be a list of document ids (strings)."  # e.g. a rerun's JSON `false`
    else:
        documents, doc_error = _documents_clean(team, list(document_ids) if document_ids is not None else None)
    if doc_error:
        errors["documents"] = doc_error
    if mode not in Mode.values:
        errors["mode"] = f"Unknown mode {mode!r}; choose one of {', '.join(Mode.values)}."
    root_model = settings.DEFAULT_ROOT_MODEL if root_model is None else root_model
    sub_model = settings.DEFAULT_SUB_MODEL if sub_model is None else sub_model
    for field, model in (("root_model", root_model), ("sub_model", sub_model)):
        message = _model_error(model)
        if message:
            errors[field] = message
    cleaned_limits, limit_errors = limits_clean(limits)
    errors.update(limit_errors)
    if errors:
        raise ValidationError({k: [v] for k, v in errors.items()})

    task_id = str(uuid.uuid4())
    with transaction.atomic():
        # The cap is counted and the run created under one lock of the team's row, so concurrent
        # asks take turns: PostgreSQL locks the row; SQLite's IMMEDIATE transactions (settings)
        # already hold the database's write lock from BEGIN, where select_for_update is a no-op.
        Team.objects.select_for_update().filter(pk=team.pk).first()
        _check_capacity(user, team, rate_limit)
        run = Run.objects.create(
            team=team,
            created_by=user if user.is_authenticated else None,
            rerun_of=rerun_of,
            follow_up_of=follow_up_of,
            conversation_id=follow_up_of.thread_id if follow_up_of is not None else None,
            helper_versions=_helper_versions(team),
            question=question.strip(),
            mode=mode,
            root_model=root_model,
            sub_model=sub_model,
            limits=cleaned_limits,
            task_id=task_id if enqueue else "",
        )
        RunDocument.objects.bulk_create(
            [RunDocument(run=run, document=d, position=i) for i, d in enumerate(documents)]
        )
        if enqueue:
            transaction.on_commit(lambda: _enqueue(run.pk, task_id))
    return run


def _helper_versions(team: Team) -> list[dict]:
    return helper_versions_for_run(team)


def _check_capacity(user: User, team: Team, rate_limit: bool = True) -> None:
    team_spend_guard(team)
    active = Run.objects.filter(team=team, status__in=(RunStatus.QUEUED, RunStatus.RUNNING)).count()
    if active >= settings.MAX_CONCURRENT_RUNS_PER_TEAM:
        raise ValidationError(
            f"This team already has {active} runs queued or running (the limit is "
            f"{settings.MAX_CONCURRENT_RUNS_PER_TEAM}). Wait for one to finish or cancel one.",
            code="busy",
        )
    if rate_limit:
        rate_limit_hit(user.pk, "ask")  # raises RateLimited (429, carrying retry_after)


def _enqueue(run_id: uuid.UUID, task_id: str) -> None:
    from .tasks import run_rlm

    try:
        run_rlm.apply_async(args=[str(run_id)], task_id=task_id)
    except Exception as exc:  # a run nobody will execute must not look queued forever
        logger.exception("Enqueueing run %s failed", run_id)
        end_run(run_id, RunStatus.FAILED, f"Could not queue the run: {type(exc).__name__}: {exc}",
                StopReason.ENQUEUE_FAILED, only_from=(RunStatus.QUEUED,))


def run_cancel(user: User, run: Run) -> Run:
    """Cancel a queued run at once, or ask a running one to stop (its worker stops within seconds).

    Idempotent for runs already cancelling; raises RunConflict for finished runs.
    """
    if not can(user, "view", run.team):
        raise RunNotFound("No such run.")
    if not can_change(user, run.team, run.created_by_id):
        raise PermissionDenied("Only the person who asked, or a team admin, can cancel this run.")
    if run.is_finished:
        raise RunConflict(f"The run has already finished ({run.status}).")
    Run.objects.filter(pk=run.pk).update(cancel_requested=True)
    # A queued run ends at once; a worker that claimed it first sees cancel_requested and ends it.
    end_run(run.pk, RunStatus.CANCELLED, "Cancelled before it started.", StopReason.CANCELLED,
            only_from=(RunStatus.QUEUED,))
    run.refresh_from_db()
    return run


def run_rerun(user: User, run: Run, **overrides) -> Run:
    """Ask the same question of the same documents again, with some settings changed.

    `overrides` may set question, document_ids, mode, root_model, sub_model, limits (merged over the
    original limits).
    """
    if not can(user, "view", run.team):
        raise RunNotFound("No such run.")
    unknown = set(overrides) - {"question", "document_ids", "mode", "root_model", "sub_model", "limits"}
    if unknown:
        raise ValidationError({name: ["Not a setting of a run."] for name in sorted(unknown)})
    limits = dict(run.limits or {})
    if isinstance(overrides.get("limits"), dict):
        limits.update(overrides["limits"])
    elif overrides.get("limits") is not None:
        limits = overrides["limits"]
    document_ids = overrides.get("document_ids")
    if document_ids is None:
        document_ids = list(
            RunDocument.objects.filter(run=run).order_by("position").values_list("document_id", flat=True)
        )
    return run_create(
        user,
        run.team,
        overrides.get("question", run.question),
        document_ids,
        overrides.get("mode", run.mode),
        overrides.get("root_model", run.root_model),
        overrides.get("sub_model", run.sub_model),
        limits,
        rerun_of=run,
    )


def run_delete(user: User, run: Run) -> None:
    """Delete a finished run with everything that belongs to it, but not its documents.

    Who may: the person who asked, or the team's admins and owners (`can_change`, the same rule as
    cancelling and as deleting documents). A queued or running run is a RunConflict: cancel it
    first. Its events, document links, comments, feedback, review and share links go with it
    (their foreign keys cascade); re-runs of it stay, no longer pointing at it; the documents stay.
    Its cost stays too (`DeletedRunSpend`), in the team's spending and toward its monthly cap.
    """
    if not can(user, "view", run.team):
        raise RunNotFound("No such run.")
    if not can_change(user, run.team, run.created_by_id):
        raise PermissionDenied("Only the person who asked, or a team admin, can delete this run.")
    with transaction.atomic():
        locked = Run.objects.select_for_update().filter(pk=run.pk).first()
        if locked is None:
            raise RunNotFound("No such run.")
        if not locked.is_finished:
            raise RunConflict(
                f"The run is {locked.get_status_display().lower()}; cancel it first, and delete it once it has stopped."
            )
        # Its cost keeps counting toward the team's spending and monthly cap.
        spend_record_deleted_run(locked)
        locked.delete()  # its REPL snapshot file goes too (apps.runs.conversations)
    logger.info("Run %s deleted by user %s", run.pk, user.pk)
