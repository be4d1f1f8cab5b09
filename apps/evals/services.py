"""Services that change evaluations: create (expand the matrix), schedule, run and score a case,
cancel, resume.

An evaluation's cases are ordinary Runs created by `apps.runs.services.run_create` (same
validation, team roles and team spending cap) and executed by `apps.runs.execution.run_execute`,
so each has its explorer and lands in the review queue like any run. The Celery path runs one
`evals.case` task per case, at most `concurrency` at once; the CLI runs the same `case_run` in
its own process, one case after another.
"""

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.documents.models import Document, DocumentStatus
from apps.documents.services import DocumentError, document_create_from_file, document_extract, uploads_dir
from apps.review.models import RunReview
from apps.runs import services as run_services
from apps.runs.execution import run_execute
from apps.runs.models import Mode, Run, RunStatus
from apps.runs.models_config import model_choice
from apps.teams.models import Team
from apps.teams.permissions import can, can_change
from worker.engine.vocabulary import StopReason

from . import generators, scorers
from .models import CaseStatus, EvalCase, Evaluation, EvaluationShareLink, EvaluationStatus
from .progress import publish_progress

logger = logging.getLogger(__name__)

MAX_CASES = 10_000
MAX_CASES_PER_SIZE = 1_000
DEFAULT_SIZES = (100_000,)
UNFINISHED = (CaseStatus.PENDING, CaseStatus.RUNNING)
BUSY_RETRY_S = 5.0


class EvaluationNotFound(Exception):
    """No such evaluation for this user (other teams' evaluations are reported the same way)."""


class TeamBusy(Exception):
    """The team has as many runs queued or running as it may: the case went back to pending."""


@dataclass(frozen=True)
class QuestionFile:
    """A user's question set: its file name (.jsonl or .csv) and text."""

    name: str
    text: str


def _require(user: User, team: Team, action: str = "create") -> None:
    if not can(user, "view", team):
        raise EvaluationNotFound("No such team.")
    if not can(user, action, team):
        raise PermissionDenied("Your role in this team does not allow running evaluations.")


def _model_error(model: str) -> str | None:
    choice = model_choice(model)
    if choice is None:
        return f"Unknown model {model!r}."
    if not choice.available:
        return f"{choice.label} is not available on this server: {choice.how_to_enable}"
    return None


def _validate(suite: str, models: list[str], modes: list[str], sizes: list[int], cases: int,
              max_cost_usd: float | None, concurrency: int, judge_model: str, question_file) -> dict[str, str]:
    errors: dict[str, str] = {}
    if suite != "file" and suite not in generators.SUITES:
        errors["suite"] = f"Unknown suite {suite!r}; choose one of {', '.join(generators.SUITES)} or file."
    if suite == "file" and question_file is None:
        errors["suite"] = "The file suite needs a question file (JSONL or CSV)."
    if not models:
        errors["models"] = "Choose at least one model."
    for model in models:
        if message := _model_error(model):
            errors["models"] = message
    if not modes or any(m not in Mode.values for m in modes):
        errors["modes"] = f"Choose modes among {', '.join(Mode.values)}."
    if suite != "file" and (not sizes or any(not generators.SIZE_MIN <= s <= generators.SIZE_MAX for s in sizes)):
        errors["sizes"] = f"Sizes are between {generators.SIZE_MIN:,} and {generators.SIZE_MAX:,} characters."
    if not 1 <= cases <= MAX_CASES_PER_SIZE:
        errors["cases"] = f"Between 1 and {MAX_CASES_PER_SIZE:,} cases per size."
    if max_cost_usd is not None and not 0 < max_cost_usd <= 100_000:
        errors["max_cost_usd"] = "The cost cap must be more than 0."
    if not 1 <= concurrency <= settings.MAX_CONCURRENT_RUNS_PER_TEAM:
        errors["concurrency"] = f"Between 1 and {settings.MAX_CONCURRENT_RUNS_PER_TEAM} cases at once."
    if judge_model and (message := _model_error(judge_model)):
        errors["judge_model"] = message
    return errors


def _ready_documents(team: Team, document_ids: Iterable) -> list[Document]:
    ids = [str(i) for i in document_ids]
    found = {str(d.pk): d for d in Document.objects.filter(team=team, pk__in=ids, status=DocumentStatus.READY)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationError({"documents": [f"No ready document {missing[0]} in this team."]})
    return [found[i] for i in ids]


def _sources(documents: list[Document]) -> list[generators.SourceDocument]:
    return [generators.SourceDocument(d.name, d.text_path.read_text(encoding="utf-8")) for d in documents]


def document_from_text(user: User, team: Team, name: str, text: str) -> Document:
    """A generated text as a ready Document of the team (identical text reuses its document)."""
    part = uploads_dir() / f"eval-{uuid.uuid4().hex}.part"
    part.write_text(text, encoding="utf-8")
    try:
        outcome = document_create_from_file(user=user, team=team, name=name, path=part)
    finally:
        part.unlink(missing_ok=True)
    document = outcome.document
    if document.status == DocumentStatus.EXTRACTING:
        document_extract(str(document.pk))  # idempotent: the queued extraction finds it ready
        document.refresh_from_db()
    if document.status != DocumentStatus.READY:
        raise DocumentError(f"{name}: {document.error or 'text extraction failed'}")
    return document


def _expand(user, team, suite: str, items_by_size: list[tuple[int, list[generators.Item]]],
            user_documents: list[Document], models: list[str], modes: list[str],
            scorer_override: str) -> list[EvalCase]:
    by_name = {d.name: d for d in user_documents}
    made: dict[str, Document] = {}
    cases: list[EvalCase] = []
    for size, items in items_by_size:
        for item in items:
            if item.documents:
                docs = []
                for generated in item.documents:
                    if generated.name not in made:
                        made[generated.name] = document_from_text(user, team, generated.name, generated.text)
                    docs.append(made[generated.name])
            else:
                docs = [by_name[n] for n in item.document_names] or user_documents
            # A question file's cases form one cell per model × mode: its size is all the documents'.
            context = size if suite != "file" else sum(d.chars for d in user_documents)
            for model in models:
                for mode in modes:
                    cases.append(EvalCase(
                        index=len(cases), item_key=item.key, model=model, mode=mode, size=context,
                        question=item.question, expected=item.expected,
                        scorer=scorer_override or item.scorer, scorer_params=item.params,
                        document_ids=[str(d.pk) for d in docs], meta=item.meta,
                    ))
    return cases


def evaluation_create(
    user: User,
    team: Team,
    suite: str,
    models: list[str],
    modes: list[str],
    sizes: list[int] | None = None,
    cases: int = 5,
    seed: int = 0,
    document_ids: Iterable = (),
    question_file: QuestionFile | None = None,
    max_cost_usd: float | None = None,
    concurrency: int = 2,
    judge_model: str = "",
    scorer: str = "",
    name: str = "",
    sub_model: str = "",
    depths: list[float] | None = None,
    *,
    prepare: bool = True,
) -> Evaluation:
    """Validate and create the evaluation, then prepare its cases (`evaluation_prepare`): here when
    `prepare` (the CLI), else in the `evals.prepare` task after the commit (the web form: generating
    large documents must not hold a request). Nothing runs yet: `evaluation_start` (Celery) or
    `evaluation_run_here` (CLI) does."""
    _require(user, team)
    sizes = list(sizes or DEFAULT_SIZES)
    errors = _validate(suite, models, modes, sizes, cases, max_cost_usd, concurrency, judge_model, question_file)
    if sub_model and (message := _model_error(sub_model)):
        errors["sub_model"] = message
    if depths and any(not 0 <= d <= 1 for d in depths):
        errors["depths"] = "Depths are between 0 (start) and 1 (end)."
    if scorer and scorer not in scorers.SCORERS:
        errors["scorer"] = f"Unknown scorer {scorer!r}; one of {', '.join(scorers.SCORERS)}."
    if errors:
        raise ValidationError({k: [v] for k, v in errors.items()})
    user_documents = _ready_documents(team, document_ids)
    questions = _questions(suite, question_file, user_documents)
    judged = scorer == "judge" or any(i.scorer == "judge" for i in questions)
    if judged and not judge_model:
        raise ValidationError({"judge_model": ["Cases scored by a judge need a judge model."]})
    per_model_mode = len(questions) if suite == "file" else cases * len(sizes)
    total = per_model_mode * len(models) * len(modes)
    if total > MAX_CASES:
        raise ValidationError({"cases": [f"{total:,} cases; at most {MAX_CASES:,} per evaluation."]})
    with transaction.atomic():
        evaluation = Evaluation.objects.create(
            team=team, created_by=user if user.is_authenticated else None,
            name=name or _default_name(suite, question_file, models, modes),
            suite=f"file:{question_file.name}" if suite == "file" and question_file else suite,
            root_models=models, sub_model=sub_model, modes=modes, sizes=sizes if suite != "file" else [], seed=seed,
            depths=list(depths or []) if suite == "niah" else [], cases_per_size=cases, max_cost_usd=max_cost_usd,
            concurrency=concurrency, judge_model=judge_model, scorer=scorer,
            questions_name=question_file.name if question_file else "",
            questions_text=question_file.text if question_file else "",
        )
        evaluation.documents.set(user_documents)
        if not prepare:
            from .tasks import prepare_evaluation

            transaction.on_commit(lambda: prepare_evaluation.delay(str(evaluation.pk)))
    if prepare:
        evaluation = evaluation_prepare(evaluation.pk)
        if evaluation.status == EvaluationStatus.FAILED:
            evaluation.delete()
            raise ValidationError({"documents": [evaluation.error]})
    return evaluation


def _questions(suite: str, question_file: QuestionFile | None, user_documents: list[Document]) -> list:
    """The question file's items (checked now, so its errors reach the form); [] for built-in suites."""
    if suite != "file":
        return []
    assert question_file is not None  # (_validate requires one for the file suite)
    if not user_documents:
        raise ValidationError({"documents": ["The file suite needs the documents its questions are about."]})
    try:
        return generators.parse_question_file(question_file.text, question_file.name, [d.name for d in user_documents])
    except generators.QuestionFileError as exc:
        raise ValidationError({"question_file": [str(exc)]}) from None


def evaluation_prepare(evaluation_id) -> Evaluation:
    """Generate the suite's items and expand models × modes × sizes × items into pending cases;
    the evaluation then runs. Idempotent: only a preparing evaluation is prepared. A failure (a
    document the team cannot store) leaves it failed with the reason."""
    evaluation = Evaluation.objects.select_related("team", "created_by").get(pk=evaluation_id)
    if evaluation.status != EvaluationStatus.PREPARING:
        return evaluation
    user_documents = list(evaluation.documents.order_by("name", "pk"))
    try:
        if evaluation.suite.startswith("file:"):
            names = [d.name for d in user_documents]
            items_by_size = [(0, generators.parse_question_file(evaluation.questions_text, evaluation.questions_name,
                                                                names))]
        else:
            sources = _sources(user_documents) if evaluation.suite == "niah" else []
            items_by_size = [(s, generators.generate(evaluation.suite, evaluation.seed, s, evaluation.cases_per_size,
                                                     sources, evaluation.depths or None)) for s in evaluation.sizes]
        expanded = _expand(evaluation.created_by, evaluation.team, evaluation.suite.split(":")[0], items_by_size,
                           user_documents, evaluation.root_models, evaluation.modes,
                           evaluation.scorer)
    except (DocumentError, ValueError, OSError, PermissionDenied) as exc:
        logger.warning("Preparing evaluation %s failed: %s", evaluation.pk, exc)
        message = exc.message if isinstance(exc, DocumentError) else str(exc)
        Evaluation.objects.filter(pk=evaluation.pk).update(status=EvaluationStatus.FAILED, error=message[:2000],
                                                           finished_at=timezone.now())
        evaluation.refresh_from_db()
        return evaluation
    with transaction.atomic():
        for case in expanded:
            case.evaluation = evaluation
        EvalCase.objects.bulk_create(expanded, batch_size=500)
        Evaluation.objects.filter(pk=evaluation.pk, status=EvaluationStatus.PREPARING).update(
            status=EvaluationStatus.RUNNING)
    publish_progress(evaluation.pk)
    evaluation.refresh_from_db()
    return evaluation


def _default_name(suite: str, question_file: QuestionFile | None, models: list[str], modes: list[str]) -> str:
    label = f"file:{question_file.name}" if question_file else suite
    return f"{label} · {', '.join(models)} · {', '.join(modes)}"[:200]


# --- running cases -------------------------------------------------------------------------------


def _case_limits(evaluation: Evaluation) -> dict | None:
    """The run's cost limit: never more than what is left of the evaluation's cap. None: nothing left."""
    if evaluation.max_cost_usd is None:
        return {}
    left = evaluation.max_cost_usd - evaluation.spent_usd
    if left <= 0:
        return None
    return {"max_cost_usd": min(run_services.LIMITS["max_cost_usd"][3], round(left, 6)) or 1e-6}


def _skip_rest(evaluation: Evaluation, reason: str) -> int:
    return EvalCase.objects.filter(evaluation=evaluation, status=CaseStatus.PENDING).update(
        status=CaseStatus.SKIPPED, reason=reason, scored_at=timezone.now())


def case_claim_next(evaluation_id) -> EvalCase | None:
    """Mark the next pending case running, if the evaluation runs and a concurrency slot is free."""
    with transaction.atomic():
        evaluation = Evaluation.objects.select_for_update().get(pk=evaluation_id)
        if evaluation.status != EvaluationStatus.RUNNING:
            return None
        if evaluation.max_cost_usd is not None and evaluation.spent_usd >= evaluation.max_cost_usd:
            _skip_rest(evaluation, f"Not run: the evaluation's cost cap of ${evaluation.max_cost_usd:g} was reached.")
            return None
        running = EvalCase.objects.filter(evaluation=evaluation, status=CaseStatus.RUNNING).count()
        if running >= evaluation.concurrency:
            return None
        case = EvalCase.objects.filter(evaluation=evaluation, status=CaseStatus.PENDING).order_by("index").first()
        if case is None:
            return None
        EvalCase.objects.filter(pk=case.pk).update(status=CaseStatus.RUNNING, claimed_at=timezone.now())
        case.status = CaseStatus.RUNNING
        return case


def case_start(case: EvalCase) -> Run | None:
    """Create the case's run (not enqueued: the caller executes it). None when it may not start:
    the case is then skipped with the reason (cost cap, team spending cap). When the team's
    concurrent-run limit is reached the case goes back to pending and TeamBusy is raised."""
    evaluation = Evaluation.objects.select_related("team", "created_by").get(pk=case.evaluation_id)
    limits = _case_limits(evaluation)
    if limits is None:
        _case_end(case, CaseStatus.SKIPPED, f"Not run: the evaluation's cost cap of ${evaluation.max_cost_usd:g} "
                  "was reached.")
        return None
    user = evaluation.created_by
    if user is None:  # its account was deleted (created_by is SET_NULL): nobody to run it as
        _case_end(case, CaseStatus.SKIPPED, "Not run: the account that started the evaluation no longer exists.")
        return None
    try:
        run = run_services.run_create(
            user, evaluation.team, case.question, case.document_ids, case.mode, case.model,
            evaluation.sub_model or case.model, limits,
            enqueue=False, rate_limit=False,
        )
    except ValidationError as exc:
        if getattr(exc, "code", None) == "busy":
            EvalCase.objects.filter(pk=case.pk).update(status=CaseStatus.PENDING, claimed_at=None)
            raise TeamBusy(" ".join(exc.messages)) from None
        _case_end(case, CaseStatus.SKIPPED, "Not run: " + " ".join(exc.messages))
        return None
    except (PermissionDenied, run_services.RunNotFound) as exc:
        _case_end(case, CaseStatus.SKIPPED, f"Not run: {exc}")
        return None
    EvalCase.objects.filter(pk=case.pk).update(run=run)
    case.run = run
    return run


def _case_end(case: EvalCase, status: str, reason: str) -> None:
    EvalCase.objects.filter(pk=case.pk).update(status=status, reason=reason, scored_at=timezone.now())


def case_run(case: EvalCase, root_script: list[str] | None = None, worker: str = "evals",
             execute: Callable | None = None) -> EvalCase:
    """Create, execute and score one claimed case. `execute(run_id)` defaults to run_execute.
    Raises TeamBusy (the case is pending again) when the team may not start another run now."""
    run = case_start(case)
    if run is not None:
        if execute is None:
            run_execute(run.pk, worker=worker, root_script=root_script)
        else:
            execute(run.pk)
        case_score(case.pk)
    evaluation_settle(case.evaluation_id)
    return EvalCase.objects.get(pk=case.pk)


def _outcome(run: Run) -> str:
    return RunReview.objects.filter(run=run).values_list("outcome", flat=True).first() or ""


def case_score(case_id) -> EvalCase:
    """Score a case whose run finished; copy the run's numbers; add its cost to the evaluation's spend.

    A run cancelled by the evaluation's cancellation leaves the case cancelled (resume re-runs it).
    Idempotent: a case already scored is returned as it is."""
    from .judge import judge_verdict

    case = EvalCase.objects.select_related("run", "evaluation").get(pk=case_id)
    run = case.run
    if case.status != CaseStatus.RUNNING or run is None or not run.is_finished:
        return case
    if run.status == RunStatus.CANCELLED and case.evaluation.status == EvaluationStatus.CANCELLED:
        _case_end(case, CaseStatus.CANCELLED, "Cancelled with the evaluation.")
        return EvalCase.objects.get(pk=case_id)
    answer = run.final_answer or ""
    judge_cost = None
    if not answer.strip():
        why = run.failure_reason or run.stop_reason
        verdict = scorers.Verdict(0.0, f"no answer: run {run.status}{': ' + why if why else ''}"[:500])
    elif case.scorer == "judge":
        verdict, judge_cost = judge_verdict(case.evaluation.judge_model, case.question, case.expected, answer)
    else:
        verdict = scorers.score(case.scorer, answer, case.expected, case.scorer_params)
    cost = None if run.cost_unknown_calls else run.cost_usd
    with transaction.atomic():
        updated = EvalCase.objects.filter(pk=case.pk, status=CaseStatus.RUNNING).update(
            status=CaseStatus.SCORED, answer=answer, score=verdict.score, reason=verdict.reason[:2000],
            outcome=_outcome(run), cost_usd=cost, judge_cost_usd=judge_cost, latency_s=run.duration_s,
            tokens=run.tokens, subcalls=run.subcalls, scored_at=timezone.now(),
        )
        if updated:
            spent = (run.cost_usd or 0.0) + (judge_cost or 0.0)
            Evaluation.objects.filter(pk=case.evaluation_id).update(spent_usd=F("spent_usd") + spent)
            evaluation = case.evaluation
            if evaluation.max_cost_usd is not None and run.stop_reason == StopReason.MAX_COST:
                # The engine refuses a call whose worst case does not fit what is left, so the
                # spend may stay under the cap: what is left cannot pay for a case either way.
                _skip_rest(evaluation, f"Not run: the evaluation's cost cap of ${evaluation.max_cost_usd:g} "
                                       "cannot cover another case.")
    publish_progress(case.evaluation_id)
    return EvalCase.objects.get(pk=case_id)


def evaluation_settle(evaluation_id) -> Evaluation:
    """Finish a running evaluation once no case is pending or running."""
    with transaction.atomic():
        evaluation = Evaluation.objects.select_for_update().get(pk=evaluation_id)
        if evaluation.max_cost_usd is not None and evaluation.spent_usd >= evaluation.max_cost_usd:
            _skip_rest(evaluation, f"Not run: the evaluation's cost cap of ${evaluation.max_cost_usd:g} was reached.")
        unfinished = EvalCase.objects.filter(evaluation=evaluation, status__in=UNFINISHED).exists()
        if evaluation.status == EvaluationStatus.RUNNING and not unfinished:
            evaluation.status = EvaluationStatus.FINISHED
            evaluation.finished_at = timezone.now()
            evaluation.save(update_fields=["status", "finished_at"])
            transaction.on_commit(lambda: publish_progress(evaluation_id))
    return evaluation


def evaluation_run_here(evaluation: Evaluation, on_case: Callable[[EvalCase], None] = lambda c: None,
                        execute: Callable | None = None) -> Evaluation:
    """Run every pending case in this process, one after another (the CLI). While the team has
    as many runs going as it may (runs started elsewhere), wait and try again."""
    while (case := case_claim_next(evaluation.pk)) is not None:
        try:
            on_case(case_run(case, worker="cli", execute=execute))
        except TeamBusy:
            time.sleep(BUSY_RETRY_S)
    return evaluation_settle(evaluation.pk)


def evaluation_start(evaluation_id) -> int:
    """Enqueue cases up to the evaluation's concurrency; each finished case calls this again."""
    from .tasks import run_case

    started = 0
    while (case := case_claim_next(evaluation_id)) is not None:
        transaction.on_commit(lambda case_id=case.pk: run_case.delay(case_id))  # type: ignore[misc]  # (binds this case's id)
        started += 1
    if not started:
        evaluation_settle(evaluation_id)
    return started


def evaluations_recover(stale_after: timedelta = timedelta(minutes=10)) -> int:
    """The sweep's part for evaluations: a case whose task was lost (worker killed) must not hold
    its evaluation's slot for ever. Score running cases whose run has finished (the run was failed
    by the runs' own sweep), put back cases claimed long ago that never got a run, then schedule
    again. Returns the number of cases recovered."""
    recovered = 0
    for case in EvalCase.objects.filter(status=CaseStatus.RUNNING, run__isnull=False,
                                        run__status__in=(RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)):
        case_score(case.pk)
        recovered += 1
    stale = EvalCase.objects.filter(status=CaseStatus.RUNNING, run__isnull=True,
                                    claimed_at__lt=timezone.now() - stale_after)
    recovered += stale.update(status=CaseStatus.PENDING, claimed_at=None)
    if recovered:
        for evaluation_id in Evaluation.objects.filter(status=EvaluationStatus.RUNNING).values_list("pk", flat=True):
            evaluation_start(evaluation_id)
    return recovered


# --- cancel and resume ---------------------------------------------------------------------------


def _require_change(user: User, evaluation: Evaluation) -> None:
    _require(user, evaluation.team, "view")
    if not can_change(user, evaluation.team, evaluation.created_by_id):
        raise PermissionDenied("Your role in this team does not allow changing this evaluation.")


def evaluation_cancel(user: User, evaluation: Evaluation) -> Evaluation:
    """Stop scheduling cases and cancel the running ones; scored cases are kept."""
    _require_change(user, evaluation)
    Evaluation.objects.filter(pk=evaluation.pk, status__in=(EvaluationStatus.PREPARING, EvaluationStatus.RUNNING)).update(
        status=EvaluationStatus.CANCELLED, finished_at=timezone.now())
    for case in EvalCase.objects.filter(evaluation=evaluation, status=CaseStatus.RUNNING).select_related("run"):
        if case.run is None:
            _case_end(case, CaseStatus.CANCELLED, "Cancelled with the evaluation.")
            continue
        try:
            run_services.run_cancel(user, case.run)
        except run_services.RunConflict:  # finished meanwhile: it is scored as it is
            case_score(case.pk)
    EvalCase.objects.filter(evaluation=evaluation, status=CaseStatus.PENDING).update(
        status=CaseStatus.CANCELLED, reason="Cancelled with the evaluation.")
    publish_progress(evaluation.pk)
    evaluation.refresh_from_db()
    return evaluation


def evaluation_resume(user: User, evaluation: Evaluation, max_cost_usd: float | None = None,
                      *, enqueue: bool = True) -> Evaluation:
    """Run again the cases that were cancelled or skipped (scored cases are kept), with a new cost
    cap when given. Their old runs stay in the team's history."""
    _require_change(user, evaluation)
    if evaluation.status == EvaluationStatus.FAILED or not evaluation.cases.exists():
        return evaluation  # nothing was prepared: there is nothing to resume
    with transaction.atomic():
        updates: dict[str, Any] = {"status": EvaluationStatus.RUNNING, "finished_at": None}
        if max_cost_usd is not None:
            updates["max_cost_usd"] = max_cost_usd
        Evaluation.objects.filter(pk=evaluation.pk).update(**updates)
        EvalCase.objects.filter(evaluation=evaluation, status__in=(CaseStatus.CANCELLED, CaseStatus.SKIPPED)).update(
            status=CaseStatus.PENDING, run=None, reason="", scored_at=None)
    if enqueue:
        evaluation_start(evaluation.pk)
    publish_progress(evaluation.pk)
    evaluation.refresh_from_db()
    return evaluation


def evaluation_delete(user: User, evaluation: Evaluation) -> None:
    """Delete the evaluation and its cases; its runs stay (they are the team's runs)."""
    _require_change(user, evaluation)
    evaluation.delete()


def question_file_read(path: Path) -> QuestionFile:
    return QuestionFile(path.name, path.read_text(encoding="utf-8"))



# --- share links ---------------------------------------------------------------------------------


def evaluation_share_create(user: User, evaluation: Evaluation) -> tuple[EvaluationShareLink, str]:
    """A new read-only link to the evaluation's results, and its token (shown once, never stored)."""
    _require_change(user, evaluation)
    raw = EvaluationShareLink.new_token()
    link = EvaluationShareLink.objects.create(evaluation=evaluation, token_hash=EvaluationShareLink.hash(raw),
                                              prefix=raw[:8], created_by=user)
    return link, raw


def evaluation_share_revoke(user: User, link: EvaluationShareLink) -> None:
    _require_change(user, link.evaluation)
    EvaluationShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
