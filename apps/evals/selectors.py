"""Reads of evaluations: lists, the matrix of aggregates, progress, cases. Reads never write.

Everything is computed from EvalCase rows (one query of a few columns), never from run events,
so a 1,000-case evaluation renders as fast as a small one.
"""

from collections import defaultdict

from django.contrib.auth.models import User
from django.db.models import Count, QuerySet

from apps.teams.models import Team
from apps.teams.permissions import can

from .models import CaseStatus, EvalCase, Evaluation, EvaluationShareLink
from .stats import cell_stats

CELL_FIELDS = ("model", "mode", "size", "status", "score", "cost_usd", "latency_s", "tokens", "subcalls", "outcome")


def evaluation_list_for_team(team: Team) -> QuerySet[Evaluation]:
    return Evaluation.objects.filter(team=team).order_by("-created_at")


def evaluation_get_for_user(user: User, evaluation_id) -> Evaluation | None:
    evaluation = Evaluation.objects.select_related("team").filter(pk=evaluation_id).first()
    if evaluation is None or not can(user, "view", evaluation.team):
        return None
    return evaluation


def case_counts(evaluation_ids: list) -> dict:
    """{evaluation id: {"total": n, "done": scored}} in one grouped query (the list page)."""
    counts: dict = defaultdict(lambda: {"total": 0, "done": 0})
    rows = (EvalCase.objects.filter(evaluation_id__in=evaluation_ids).order_by()
            .values("evaluation_id", "status").annotate(n=Count("id")))
    for row in rows:
        counts[row["evaluation_id"]]["total"] += row["n"]
        if row["status"] == CaseStatus.SCORED:
            counts[row["evaluation_id"]]["done"] += row["n"]
    return counts


def _rows(evaluation: Evaluation) -> list[dict]:
    return list(EvalCase.objects.filter(evaluation=evaluation).order_by("index").values(*CELL_FIELDS))


def matrix(evaluation: Evaluation, rows: list[dict] | None = None) -> list[dict]:
    """One dict per (model, mode, size) cell, in the evaluation's order: its scored cases' stats and
    how many of its cases are done."""
    rows = _rows(evaluation) if rows is None else rows
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        cells[(row["model"], row["mode"], row["size"])].append(row)
    result = []
    for (model, mode, size), cell_rows in cells.items():
        scored = [dict(r, cost_known=r["cost_usd"] is not None) for r in cell_rows if r["status"] == CaseStatus.SCORED]
        stats = cell_stats(scored)
        stats["cases"] = len(scored)
        result.append({"model": model, "mode": mode, "size": size, "total": len(cell_rows), **stats})
    return sorted(result, key=lambda c: (_position(evaluation.root_models, c["model"]),
                                         _position(evaluation.modes, c["mode"]), c["size"]))


def _position(values: list, value) -> int:
    return values.index(value) if value in values else len(values)


def progress(evaluation: Evaluation, rows: list[dict] | None = None) -> dict:
    rows = _rows(evaluation) if rows is None else rows
    counts: defaultdict[str, int] = defaultdict(int)
    for row in rows:
        counts[row["status"]] += 1
    return {
        "status": evaluation.status,
        "total": len(rows),
        "done": counts[CaseStatus.SCORED],
        "counts": {s: counts[s] for s in CaseStatus.values},
        "spent_usd": evaluation.spent_usd,
        "max_cost_usd": evaluation.max_cost_usd,
        "matrix": matrix(evaluation, rows),
    }


def case_list(evaluation: Evaluation) -> QuerySet[EvalCase]:
    return EvalCase.objects.filter(evaluation=evaluation).order_by("index")


def case_dict(case: EvalCase) -> dict:
    return {
        "case_id": case.pk, "index": case.index, "item": case.item_key, "model": case.model, "mode": case.mode,
        "size": case.size, "question": case.question, "expected": case.expected, "answer": case.answer,
        "score": case.score, "scorer": case.scorer, "reason": case.reason,
        "run_id": str(case.run_id) if case.run_id else None, "cost_usd": case.cost_usd,
        "judge_cost_usd": case.judge_cost_usd, "latency_s": case.latency_s, "tokens": case.tokens,
        "subcalls": case.subcalls, "outcome": case.outcome or None, "status": case.status,
    }


MATRIX_KEYS = ("model", "mode", "size", "cases", "accuracy", "ci95", "cost_usd_mean", "cost_usd_p95",
               "latency_s_p50", "latency_s_p95", "tokens_mean", "subcalls_mean", "cost_unknown_cases", "failures")


def evaluation_result(evaluation: Evaluation) -> dict:
    """The whole result as JSON: the CLI's --json line and the JSON export."""
    cells = [{k: c[k] for k in MATRIX_KEYS} for c in matrix(evaluation)]
    return {
        "evaluation_id": str(evaluation.pk),
        "suite": evaluation.suite,
        "status": evaluation.status,
        "seed": evaluation.seed,
        "spent_usd": evaluation.spent_usd,
        "max_cost_usd": evaluation.max_cost_usd,
        "matrix": cells,
        "cases": [case_dict(c) for c in case_list(evaluation)],
    }


def evaluation_for_token(raw: str) -> Evaluation | None:
    """The evaluation an unrevoked share token opens, or None."""
    link = (EvaluationShareLink.objects.select_related("evaluation")
            .filter(token_hash=EvaluationShareLink.hash(raw or ""), revoked_at__isnull=True).first())
    return link.evaluation if link else None


def share_links_of(evaluation: Evaluation) -> QuerySet[EvaluationShareLink]:
    return evaluation.share_links.filter(revoked_at__isnull=True)
