"""Event pipeline: engine events through the web app's sink to a websocket client.

    python benchmarks/bench_events.py

The path measured is the production one: `apps.runs.sink.DatabaseSink` (the engine's sink in the
worker) commits events to the database and publishes them to the run's channel group; the run's
websocket consumer (`ws/runs/<id>/`, served by uvicorn) forwards them to a real websocket client.
Each configuration runs in its own process: the channel layer is the embedded (in-process) one or
channels-redis on a private redis-server; the database is SQLite (WAL) in a temporary directory.

- throughput: 20,000 events emitted as fast as the engine can, events/s until the client has all;
- latency: 5,000 events/s paced for 4 s, p50/p95/p99 from emission (event ts) to receipt;
- baseline: the naive pipeline, one database write and one group_send per event, unbatched.
Target (issue 9): ≥ 5,000 events/s with p95 ≤ 50 ms on the Redis layer.
Writes benchmarks/results/events.json and prints a markdown table.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

THROUGHPUT_EVENTS = 20_000
PACED_RATE = 5_000
PACED_SECONDS = 4
NAIVE_EVENTS = 3_000
TARGET_RATE, TARGET_P95_MS = 5_000, 50


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# --- one configuration, in its own process --------------------------------------------------------


def child(pipeline: str, data_dir: str) -> dict:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlmweb.settings")
    django.setup()
    import uvicorn
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from apps.runs.models import Run, RunStatus
    from apps.runs.sink import DatabaseSink, persist_events, publish_events
    from tests.conftest import make_user
    from tests.reliability.stack import Account, Viewer, free_port
    from worker.engine.events import Event

    call_command("migrate", verbosity=0)
    user = make_user(f"bench{os.getpid()}")
    session = SessionStore()
    session.update({SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                    HASH_SESSION_KEY: user.get_session_auth_hash()})
    session.create()
    who = Account(user.username, "", session.session_key)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config("rlmweb.asgi:application", host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)

    def measure(count: int, rate: float | None) -> dict:
        run = Run.objects.create(team=user.teams.first(), created_by=user, question="bench", status=RunStatus.RUNNING)
        viewer = Viewer(f"http://127.0.0.1:{port}", str(run.pk), who)
        stdout = "x" * 200
        emitted: dict = {}

        def emit() -> None:
            sink = DatabaseSink(run.pk) if pipeline == "batched" else None
            start = time.perf_counter()
            emitted["start"] = time.time()
            for seq in range(1, count + 1):
                if rate:
                    delay = start + seq / rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                event = Event(seq, "run.finished" if seq == count else "cell.finished", time.time(),
                              {"cell_id": f"c{seq}", "stdout": stdout, "error": None, "status": "succeeded"})
                if sink is not None:
                    sink.write(event)
                else:
                    persist_events(run.pk, [event])
                    publish_events(run.pk, [event])
            emitted["end"] = time.time()
            if sink is not None:
                sink.close()

        async def scenario() -> None:
            follow = asyncio.create_task(viewer.follow(timeout=300))
            await asyncio.sleep(0.5)  # connected and replayed before the first event
            await asyncio.to_thread(emit)
            await follow

        asyncio.run(scenario())
        done = time.time()
        assert viewer.seqs == list(range(1, count + 1)), "events lost or duplicated"
        return {"events": count, "events_per_s": round(count / (done - emitted["start"])),
                "emit_s": round(emitted["end"] - emitted["start"], 3),
                "p50_ms": round(percentile(viewer.latencies, 0.5) * 1000, 1),
                "p95_ms": round(percentile(viewer.latencies, 0.95) * 1000, 1),
                "p99_ms": round(percentile(viewer.latencies, 0.99) * 1000, 1)}

    if pipeline == "batched":
        result = {"throughput": measure(THROUGHPUT_EVENTS, None),
                  "paced": measure(PACED_RATE * PACED_SECONDS, PACED_RATE)}
    else:
        result = {"throughput": measure(NAIVE_EVENTS, None), "paced": None}
    server.should_exit = True
    return result


def run_child(layer: str, pipeline: str, redis_url: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="rlmweb-bench-events-") as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(RLMWEB_DATA_DIR=tmp, RLMWEB_EMBEDDED_WORKER="0", RLMWEB_LOG_LEVEL="WARNING",
                   RLMWEB_SECRET_KEY="bench-secret-key-for-loopback-only", RLMWEB_SSL_REDIRECT="0",
                   LITELLM_LOCAL_MODEL_COST_MAP="True")
        if redis_url:
            env["REDIS_URL"] = redis_url
        out = subprocess.run([sys.executable, __file__, "--child", pipeline, tmp], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=900)
        if out.returncode:
            raise RuntimeError(f"{layer}/{pipeline} failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    from tests.reliability.stack import RedisServer

    results = {}
    with tempfile.TemporaryDirectory(prefix="rlmweb-bench-redis-") as tmp, RedisServer(Path(tmp)) as redis:
        for layer, url in (("embedded", None), ("redis", redis.url)):
            for pipeline in ("batched", "naive"):
                results[f"{layer}/{pipeline}"] = run_child(layer, pipeline, url)
    redis_batched = results["redis/batched"]
    met = (redis_batched["throughput"]["events_per_s"] >= TARGET_RATE
           and redis_batched["paced"]["p95_ms"] <= TARGET_P95_MS)
    results["target"] = {"events_per_s": TARGET_RATE, "p95_ms": TARGET_P95_MS, "met": met}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "events.json").write_text(json.dumps(results, indent=2))

    print("| channel layer | pipeline | events/s (max) | p50 / p95 / p99 ms at 5,000 events/s |\n|---|---|---|---|")
    for key, r in results.items():
        if key == "target":
            continue
        layer, pipeline = key.split("/")
        name = "rlmweb: DatabaseSink, batched while writing" if pipeline == "batched" else "naive: 1 write + 1 send per event"
        paced = r["paced"]
        latency = f"{paced['p50_ms']} / {paced['p95_ms']} / {paced['p99_ms']}" if paced else \
            f"cannot keep up (max {r['throughput']['events_per_s']:,}/s)"
        print(f"| {layer} | {name} | {r['throughput']['events_per_s']:,} | {latency} |")
    print(f"\nTarget ≥ {TARGET_RATE:,} events/s with p95 ≤ {TARGET_P95_MS} ms on the Redis layer: "
          f"{'met' if met else 'MISSED'}.")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=2, metavar=("PIPELINE", "DATA_DIR"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        sys.exit(0)
    sys.exit(main())
