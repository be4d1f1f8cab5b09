"""Concurrent runs: 20 runs at once on one worker against one run alone.

    python benchmarks/bench_concurrent.py

The app runs as deployed on one machine (`manage.py serve`: web + embedded worker with 20 threads,
SQLite; or uvicorn + one `celery worker` process with DATABASE_URL/REDIS_URL set). Every run is the
same scripted RLM on the simulated provider with a fixed latency: a root turn whose REPL cell makes
10 sequential sub-calls, then FINAL; so its critical path is 12 model calls × latency, and the rest
of its duration is rlmweb's overhead (sandbox start, cells, events, database). Reported: the
duration of one run alone, the durations of 20 started together (p50/max), throughput in runs per
minute, and overhead per run over the critical-path model time.
Writes benchmarks/results/concurrent.json and prints a markdown table.
"""

import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from tests.reliability.runs import KEY_ENV, ROOT, SUB, repl, root_turn, sim_models  # noqa: E402
from tests.reliability.stack import AppStack  # noqa: E402
from worker.simulated import SimulatedProvider  # noqa: E402

RUNS = 20
SUBCALLS = 10
LATENCY_S = 0.2
CRITICAL_PATH_S = (SUBCALLS + 2) * LATENCY_S


def responder(request) -> str:
    if request.model == "gpt-4o-mini":
        return "fine"
    code = f"for i in range({SUBCALLS}):\n    print(llm_query(f'part {{i}}'))"
    return [repl(code), "FINAL(done)"][min(root_turn(request), 1)]


def duration(summary: dict) -> float:
    started = datetime.fromisoformat(summary["started_at"])
    return (datetime.fromisoformat(summary["finished_at"]) - started).total_seconds()


def batch(app: AppStack, who, doc: str, count: int) -> dict:
    asked = time.monotonic()
    ids = [app.ask(who, question=f"concurrent {i}", documents=[doc], root_model=ROOT, sub_model=SUB)["id"]
           for i in range(count)]
    summaries = app.wait_finished(who, ids, timeout=600)
    wall = time.monotonic() - asked
    assert all(s["status"] == "succeeded" for s in summaries.values()), summaries
    durations = [duration(s) for s in summaries.values()]
    created = [datetime.fromisoformat(s["created_at"]) for s in summaries.values()]
    queued = [(datetime.fromisoformat(s["started_at"]) - c).total_seconds() for s, c in zip(summaries.values(), created,
                                                                                          strict=True)]
    return {"runs": count, "wall_s": round(wall, 2), "runs_per_min": round(count / wall * 60, 1),
            "duration_p50_s": round(statistics.median(durations), 2), "duration_max_s": round(max(durations), 2),
            "overhead_p50_s": round(statistics.median(durations) - CRITICAL_PATH_S, 2),
            "overhead_max_s": round(max(durations) - CRITICAL_PATH_S, 2),
            "queue_wait_max_s": round(max(queued), 2)}


def main() -> int:
    production = bool(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"))
    with SimulatedProvider(responder=responder, latency_s=LATENCY_S) as provider, \
            tempfile.TemporaryDirectory(prefix="rlmweb-bench-concurrent-") as tmp:
        env = {"RLMWEB_MODELS_JSON": json.dumps(sim_models(provider.base_url)[1:]), KEY_ENV: "sk-sim",
               "RLMWEB_MAX_CONCURRENT_RUNS_PER_TEAM": str(RUNS), "RLMWEB_RATE_ASK_PER_MINUTE": "10000"}
        with AppStack(Path(tmp), extra_env=env, production=production, worker_concurrency=RUNS) as app:
            who = app.account("bench")
            doc = app.upload(who, "notes.txt", "The secret code is PLUM-42.\n" * 2000)
            batch(app, who, doc, 1)  # warm-up: imports, first sandbox
            alone = batch(app, who, doc, 1)
            together = batch(app, who, doc, RUNS)
    results = {"profile": "production" if production else "embedded", "latency_s": LATENCY_S,
               "critical_path_s": CRITICAL_PATH_S, "alone": alone, "together": together}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "concurrent.json").write_text(json.dumps(results, indent=2))
    print(f"| {results['profile']} profile, {SUBCALLS + 2} model calls × {LATENCY_S} s per run "
          f"(critical path {CRITICAL_PATH_S:.1f} s) | 1 run alone | {RUNS} runs at once |\n|---|---|---|")
    rows = [("wall time", "wall_s", " s"), ("throughput (runs/min)", "runs_per_min", ""),
            ("run duration p50", "duration_p50_s", " s"), ("run duration max", "duration_max_s", " s"),
            ("overhead per run p50 (duration − critical path)", "overhead_p50_s", " s"),
            ("overhead per run max", "overhead_max_s", " s"), ("longest wait in the queue", "queue_wait_max_s", " s")]
    for name, key, unit in rows:
        print(f"| {name} | {alone[key]}{unit} | {together[key]}{unit} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
