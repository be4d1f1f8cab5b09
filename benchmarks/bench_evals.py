"""Evaluations: time to expand, run and score N cases with the offline model, and the results
page's latency with 1,000 scored cases.

    python benchmarks/bench_evals.py [--cases 1000] [--page-cases 1000] [--requests 30]

Runs in-process on a fresh embedded install (SQLite in a temporary data directory): the same
services the CLI uses. Phases:
- expand: `evaluation_create` for a niah suite at 2,000 characters, 3 modes, cases/3 questions
  (generation, generated documents, one EvalCase row per case);
- run: `evaluation_run_here`, every case an ordinary run of the offline model, scored; reported
  per case (this is dominated by starting each run's sandbox process, not by evaluation code);
- score: re-scoring every stored answer with its scorer (the scoring code alone);
- page: GET /evals/<id>/ (matrix, plots, first page of cases) on an evaluation of `--page-cases`
  scored cases, `--requests` times: p50 and p95; and progress.json likewise.
Writes benchmarks/results/evals.json and prints it.
"""

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
os.environ["RLMWEB_DATA_DIR"] = tempfile.mkdtemp(prefix="rlmweb-bench-evals-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlmweb.settings")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

MODES = ["rlm", "rlm-no-subcalls", "direct"]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def setup_user():
    from django.contrib.auth.models import User

    user = User.objects.create_user("bench", password="bench-password-123")
    return user, user.teams.first()


def run_phase(user, team, cases: int) -> dict:
    from apps.evals import scorers, services
    from apps.evals.models import CaseStatus
    from apps.runs.management.commands.rlm import celery_eager

    per_mode = max(1, math.ceil(cases / len(MODES)))
    started = time.perf_counter()
    with celery_eager():
        evaluation = services.evaluation_create(user, team, "niah", [settings.OFFLINE_MODEL], MODES, [2_000],
                                                per_mode, seed=1)
    expand_s = time.perf_counter() - started
    total = evaluation.cases.count()
    started = time.perf_counter()
    services.evaluation_run_here(evaluation)
    run_s = time.perf_counter() - started
    rows = list(evaluation.cases.filter(status=CaseStatus.SCORED).values("answer", "expected", "scorer",
                                                                         "scorer_params", "score"))
    started = time.perf_counter()
    rescored = [scorers.score(r["scorer"], r["answer"], r["expected"], r["scorer_params"]).score for r in rows]
    score_s = time.perf_counter() - started
    assert rescored == [r["score"] for r in rows], "re-scoring must reproduce the stored scores"
    return {
        "cases": total, "scored": len(rows), "expand_s": round(expand_s, 3), "run_s": round(run_s, 2),
        "run_s_per_case": round(run_s / total, 4), "score_s": round(score_s, 4),
        "score_ms_per_case": round(1000 * score_s / max(1, len(rows)), 4),
        "accuracy": round(sum(r["score"] for r in rows) / max(1, len(rows)), 4),
    }


def scored_evaluation(user, team, cases: int):
    """An evaluation of `cases` scored cases over 3 modes × 4 sizes, each with its own run row."""
    from apps.evals.models import CaseStatus, EvalCase, Evaluation, EvaluationStatus
    from apps.runs.models import Run

    sizes = [10_000, 100_000, 1_000_000, 10_000_000]
    evaluation = Evaluation.objects.create(team=team, created_by=user, name="page bench", suite="niah",
                                           root_models=[settings.OFFLINE_MODEL], modes=MODES, sizes=sizes,
                                           status=EvaluationStatus.FINISHED)
    runs = Run.objects.bulk_create([Run(team=team, created_by=user, question=f"Q{i}?", root_model="m", sub_model="m",
                                        status="succeeded", final_answer=f"A{i}") for i in range(cases)])
    EvalCase.objects.bulk_create([
        EvalCase(evaluation=evaluation, index=i, item_key=f"k{i // 12}", model=settings.OFFLINE_MODEL,
                 mode=MODES[i % 3], size=sizes[(i // 3) % 4], question=f"Q{i}?", expected="x", scorer="contains",
                 run=runs[i], status=CaseStatus.SCORED, answer=f"A{i}", score=float(i % 2), reason="r",
                 outcome="succeeded", cost_usd=0.001 * (i % 7), latency_s=1.0 + i % 5, tokens=1000, subcalls=3,
                 scored_at=timezone.now()) for i in range(cases)], batch_size=500)
    return evaluation


def page_phase(user, team, cases: int, requests: int) -> dict:
    evaluation = scored_evaluation(user, team, cases)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    result = {"cases": cases, "requests": requests}
    for name, url in (("results_page", f"/evals/{evaluation.pk}/"),
                      ("progress_json", f"/evals/{evaluation.pk}/progress.json")):
        client.get(url)  # warm up
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200
        result[name] = {"p50_ms": round(1000 * statistics.median(times), 1),
                        "p95_ms": round(1000 * percentile(times, 95), 1)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=1000, help="Cases to expand, run and score.")
    parser.add_argument("--page-cases", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    user, team = setup_user()
    result = {
        "benchmark": "evals",
        "when": timezone.now().isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],  # the machine may be shared
        "run": run_phase(user, team, args.cases),
        "page": page_phase(user, team, args.page_cases, args.requests),
    }
    out = HERE / "results" / "evals.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
