"""Load on loopback: 20 concurrent runs on the simulated provider and 200 websocket viewers.

    python benchmarks/load.py                   # 5 minutes
    python benchmarks/load.py --duration 60     # shorter

Bounded and self-stopping: it starts the app (`manage.py serve`, embedded profile, in a temporary
data directory; or, with DATABASE_URL and REDIS_URL set, uvicorn + one `celery worker` process on a
scratch database created on DATABASE_URL's server and dropped afterwards, with a private
redis-server as broker and channel layer), keeps `--runs` runs in flight for `--duration` seconds
(each a root turn that makes sub-calls of `--latency` s in batches, then FINAL), follows every run
with `--viewers / --runs` websocket viewers, polls pages as a user would (from a process of its
own), samples the servers' memory and everyone's CPU, then stops everything. Reports per viewer
the events dropped or duplicated against the run's record (both must be 0), why any run did not
succeed, resident memory over time (must stay flat), page response p50/p95 (target p95 < 300 ms)
and each process's share of the machine's cores.
Writes benchmarks/results/load-<profile>.json (embedded or production) and prints a markdown table.
"""

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from tests.reliability.runs import KEY_ENV, ROOT, SUB, repl, root_turn, sim_models  # noqa: E402
from tests.reliability.stack import AppStack, Proc, RedisServer, Viewer, descendants, free_port  # noqa: E402
from worker.simulated import SimulatedProvider  # noqa: E402

ROUNDS = 10  # batches of sub-calls per run
BATCH = 4
PAGE_P95_TARGET_MS = 300
LIVE_P95_TARGET_MS = {"embedded": 2000, "production": 1000}  # emission → viewer, the median viewer's p95


def responder(request) -> str:
    if request.model == "gpt-4o-mini":
        return "fine"
    code = (f"for r in range({ROUNDS}):\n"
            f"    out = llm_query_batched([f'round {{r}} part {{i}}' for i in range({BATCH})])\n"
            "    print(r, out[0])")
    return [repl(code), "FINAL(done)"][min(root_turn(request), 1)]


@contextlib.contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the server of `url`, dropped afterwards.

    Each load run starts from nothing: documents recognised by content hash in an older run's
    database would point at files in that run's deleted data directory.
    """
    import psycopg

    parts = urlsplit(url)
    name = f"rlmweb_load_{os.getpid()}_{int(time.time())}"
    server = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used so far; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class Memory(threading.Thread):
    """Samples the resident memory of the server processes (not their REPL children) every few s,
    and the CPU they, the load generator and the whole machine used."""

    def __init__(self, pids: dict[str, int], cpu_pids: dict[str, int], every_s: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.pids, self.cpu_pids, self.every_s = pids, cpu_pids, every_s
        self.samples: list[dict] = []
        self.started = time.monotonic()
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            sample = {"t": round(time.monotonic() - self.started, 1)}
            sample.update({name: round(rss_mb(pid), 1) for name, pid in self.pids.items()})
            below = set().union(*(descendants(pid) for pid in self.pids.values()))
            sample["repl_processes"] = len(below - set(self.pids.values()))
            sample["cpu_s"] = {name: round(cpu_s(pid), 2) for name, pid in {**self.pids, **self.cpu_pids}.items()}
            sample["machine_busy_total"] = machine_cpu()
            self.samples.append(sample)
            self.stop_flag.wait(self.every_s)


def embedded_worker_pid(web_pid: int, wait_s: float = 5.0) -> int | None:
    """The `manage.py embedded_worker` child that `serve` spawned, if it has one."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for pid in descendants(web_pid):
            with contextlib.suppress(OSError):
                if b"embedded_worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
        time.sleep(0.2)
    return None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(app: AppStack, who, doc: str, args, deadline: float) -> tuple[list[dict], list[tuple[str, float]]]:
    """Keep `args.runs` runs in flight until the deadline; every run followed by its viewers."""
    per_run = max(1, args.viewers // args.runs)
    results: list[dict] = []
    page_ms: list[tuple[str, float]] = []
    http = httpx.AsyncClient(base_url=app.base_url, timeout=30, headers={"Cookie": who.cookie})
    api = httpx.AsyncClient(base_url=app.base_url, timeout=30, headers=who.headers)

    async def one_run(slot: int) -> None:
        while time.monotonic() < deadline:
            response = await api.post("/api/runs/", json={"question": f"load slot {slot}", "documents": [doc],
                                                          "root_model": ROOT, "sub_model": SUB})
            if response.status_code != 201:
                raise RuntimeError(f"ask refused: {response.status_code} {response.text}")
            run_id = response.json()["id"]
            viewers = [Viewer(app.base_url, run_id, who) for _ in range(per_run)]
            await asyncio.gather(*(v.follow(timeout=args.duration + 300) for v in viewers))
            events = []
            while True:
                page = (await api.get(f"/api/runs/{run_id}/events/", params={"since": len(events),
                                                                              "limit": 5000})).json()
                events += page["events"]
                if not page["more"]:
                    break
            summary = (await api.get(f"/api/runs/{run_id}/")).json()
            expected = [e["seq"] for e in events]
            for v in viewers:
                received = set(v.seqs)
                results.append({"run": run_id, "status": summary["status"], "events": len(expected),
                                "failure_reason": summary.get("failure_reason") or "",
                                "dropped": sum(1 for s in expected if s not in received),
                                "duplicated": v.duplicates + len(v.seqs) - len(received),
                                "out_of_order": v.gaps, "reconnects": v.reconnects,
                                "latency_p95_ms": round(percentile(v.latencies, 0.95) * 1000, 1)})

    # The person clicking around is timed from a process of their own: a browser does not share an
    # interpreter with 200 other viewers, and this process's event loop is busy decoding their frames.
    probe_out = Path(tempfile.mkdtemp(prefix="rlmweb-load-probe-")) / "page_ms.json"
    probe = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--probe-pages", app.base_url, str(deadline - time.monotonic()), str(probe_out),
        env={**os.environ, "LOAD_COOKIE": who.cookie, "LOAD_AUTHORIZATION": who.headers["Authorization"]})
    await asyncio.gather(*(one_run(i) for i in range(args.runs)))
    if await probe.wait() != 0:
        raise RuntimeError("the page probe failed")
    page_ms.extend(tuple(sample) for sample in json.loads(probe_out.read_text()))
    await http.aclose()
    await api.aclose()
    return results, page_ms


async def probe_pages(base_url: str, seconds: float, out: Path) -> None:
    """A person clicking around: run list, documents, the newest run's page, its events JSON and its
    API record, one request every 200 ms; each response time is recorded."""
    page_ms: list[tuple[str, float]] = []
    deadline = time.monotonic() + seconds
    async with (httpx.AsyncClient(base_url=base_url, timeout=30, headers={"Cookie": os.environ["LOAD_COOKIE"]}) as http,
                httpx.AsyncClient(base_url=base_url, timeout=30,
                                  headers={"Authorization": os.environ["LOAD_AUTHORIZATION"]}) as api):

        async def get(client: httpx.AsyncClient, url: str, kind: str) -> httpx.Response:
            started = time.perf_counter()
            response = await client.get(url)
            page_ms.append((kind, (time.perf_counter() - started) * 1000))
            if response.status_code != 200:
                raise RuntimeError(f"GET {url}: {response.status_code}")
            await asyncio.sleep(0.2)
            return response

        while time.monotonic() < deadline:
            await get(http, "/runs/", "/runs/")
            await get(http, "/documents/", "/documents/")
            runs = (await get(api, "/api/runs/?per_page=1", "/api/runs/")).json()["runs"]
            if runs:
                run_id = runs[0]["id"]
                await get(http, f"/runs/{run_id}/", "/runs/<id>/")
                await get(http, f"/runs/{run_id}/events.json", "/runs/<id>/events.json")
                await get(api, f"/api/runs/{run_id}/", "/api/runs/<id>/")
    out.write_text(json.dumps(page_ms))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=300, help="seconds of load (runs then finish)")
    parser.add_argument("--runs", type=int, default=20, help="runs in flight at once")
    parser.add_argument("--viewers", type=int, default=200, help="websocket viewers in all")
    parser.add_argument("--latency", type=float, default=0.2, help="simulated model latency, s")
    parser.add_argument("--serve-provider", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--probe-pages", nargs=3, metavar=("BASE_URL", "SECONDS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe_pages:
        base_url, seconds, out = args.probe_pages
        asyncio.run(probe_pages(base_url, float(seconds), Path(out)))
        return 0
    if args.serve_provider:
        with SimulatedProvider(responder=responder, latency_s=args.latency, port=args.serve_provider):
            print("serving", flush=True)
            threading.Event().wait()
    production = bool(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"))

    with contextlib.ExitStack() as cleanup:
        tmp = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="rlmweb-load-"))
        # The provider gets its own process: hundreds of model calls a second must not compete for
        # this process's interpreter with the viewers being measured.
        port = free_port()
        provider = Proc([sys.executable, __file__, "--serve-provider", str(port), "--latency", str(args.latency)],
                        dict(os.environ), Path(tmp) / "provider.log")
        cleanup.callback(provider.stop)
        base_url = f"http://127.0.0.1:{port}/v1"
        while "serving" not in provider.output():
            if not provider.alive():
                raise RuntimeError(provider.output())
            time.sleep(0.1)
        env = {"RLMWEB_MODELS_JSON": json.dumps(sim_models(base_url)[1:]), KEY_ENV: "sk-sim",
               "RLMWEB_MAX_CONCURRENT_RUNS_PER_TEAM": str(args.runs * 2), "RLMWEB_RATE_ASK_PER_MINUTE": "100000"}
        redis = RedisServer(Path(tmp)).start() if production else None  # a private broker and channel layer
        if redis is not None:
            cleanup.callback(redis.stop)
            env["REDIS_URL"] = redis.url
            env["DATABASE_URL"] = cleanup.enter_context(scratch_database(os.environ["DATABASE_URL"]))
        with AppStack(Path(tmp), extra_env=env, production=production, worker_concurrency=args.runs) as app:
            who = app.account("load")
            doc = app.upload(who, "load.txt", "The secret code is PLUM-42.\n" * 1000)
            pids = {"web": app.web.pid}  # resident memory (MB) and CPU of each, by these names
            if production:
                pids["worker"] = app.worker_procs[0].pid
            elif worker := embedded_worker_pid(app.web.pid):
                pids["worker"] = worker  # `serve`'s child process (absent with --worker-in-process)
            memory = Memory(pids, {"simulated provider": provider.pid, "load generator": os.getpid()})
            memory.start()
            load_before = os.getloadavg()
            started = time.monotonic()
            results, page_ms = asyncio.run(drive(app, who, doc, args, started + args.duration))
            took = time.monotonic() - started
            memory.stop_flag.set()
            memory.join()

    first = [s for s in memory.samples if s["t"] >= 30][:6] or memory.samples[:3]
    last = memory.samples[-6:]
    growth = {name: round(statistics.mean(s[name] for s in last) - statistics.mean(s[name] for s in first), 1)
              for name in pids}
    runs = {r["run"]: r for r in results}
    head, tail = memory.samples[0], memory.samples[-1]
    span = tail["t"] - head["t"]
    busy = tail["machine_busy_total"][0] - head["machine_busy_total"][0]
    total = tail["machine_busy_total"][1] - head["machine_busy_total"][1]
    cpu = {  # each process's share of the machine's cores over the run
        "machine_busy_pct": round(100 * busy / total, 1) if total else None,
        "share_of_cores_pct": {name: round(100 * (tail["cpu_s"][name] - head["cpu_s"][name]) / (span * os.cpu_count()), 1)
                               for name in tail["cpu_s"]} if span else {},
    }
    summary = {
        "profile": "production" if production else "embedded",
        "duration_s": round(took, 1),
        "runs_in_flight": args.runs,
        "viewers": args.viewers,
        "runs_finished": len(runs),
        "runs_succeeded": sum(1 for r in runs.values() if r["status"] == "succeeded"),
        "failure_reasons": dict(Counter(r["failure_reason"] or r["status"] for r in runs.values()
                                        if r["status"] != "succeeded").most_common(5)),
        "events_per_run_median": statistics.median(r["events"] for r in runs.values()) if runs else 0,
        "viewer_sessions": len(results),
        "events_delivered": sum(r["events"] - r["dropped"] for r in results),
        "dropped": sum(r["dropped"] for r in results),
        "duplicated": sum(r["duplicated"] for r in results),
        "out_of_order": sum(r["out_of_order"] for r in results),
        "reconnects": sum(r["reconnects"] for r in results),
        "viewer_latency_p95_ms_median": round(statistics.median(r["latency_p95_ms"] for r in results), 1) if results else None,
        "page_requests": len(page_ms),
        "page_p50_ms": round(percentile([ms for _, ms in page_ms], 0.50), 1),
        "page_p95_ms": round(percentile([ms for _, ms in page_ms], 0.95), 1),
        "page_p95_ms_by_page": {kind: round(percentile([ms for k, ms in page_ms if k == kind], 0.95), 1)
                                for kind in dict.fromkeys(k for k, _ in page_ms)},
        "rss_growth_mb": growth,
        "cpu": cpu,
        "memory": memory.samples,
        "model_latency_s": args.latency,
        # other work on the machine moves every figure: the 1-minute load average at start and end
        "load_average": f"{load_before[0]:.1f} → {os.getloadavg()[0]:.1f}",
    }
    summary["targets"] = {
        "every_run_succeeded": bool(runs) and summary["runs_succeeded"] == len(runs),
        "no_dropped_or_duplicated": summary["dropped"] == summary["duplicated"] == 0,
        "page_p95_under_300_ms": summary["page_p95_ms"] < PAGE_P95_TARGET_MS,
        "memory_flat_under_50_mb_growth": all(g < 50 for g in growth.values()),
        "events_to_viewers_p95_within_target": (summary["viewer_latency_p95_ms_median"] or 0)
                                               <= LIVE_P95_TARGET_MS[summary["profile"]],
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"load-{summary['profile']}.json").write_text(json.dumps(summary, indent=2))

    rss = ", ".join(f"{name} {memory.samples[0][name]:.0f}→{memory.samples[-1][name]:.0f} MB"
                    f" ({growth[name]:+.0f} MB after warm-up)" for name in pids)
    rows = [
        ("profile", summary["profile"], ""),
        ("duration", f"{took:.0f} s", ""),
        ("runs finished (in flight at once)", f"{len(runs)} ({args.runs}), {summary['runs_succeeded']} succeeded", ""),
        *([("why runs did not succeed", "; ".join(f"{n} × {why}" for why, n in summary["failure_reasons"].items()),
            "MISSED")] if summary["failure_reasons"] else []),
        ("viewer sessions (viewers at once)", f"{len(results)} ({args.viewers})", ""),
        ("events delivered to viewers", f"{summary['events_delivered']:,}", ""),
        ("dropped / duplicated / out of order", f"{summary['dropped']} / {summary['duplicated']} / "
                                                f"{summary['out_of_order']}",
         "met" if summary["targets"]["no_dropped_or_duplicated"] else "MISSED"),
        ("websocket reconnects", str(summary["reconnects"]), ""),
        ("emission → viewer p95 (median viewer)", f"{summary['viewer_latency_p95_ms_median']} ms",
         "met" if summary["targets"]["events_to_viewers_p95_within_target"] else "MISSED"),
        ("page response p50 / p95", f"{summary['page_p50_ms']} / {summary['page_p95_ms']} ms "
                                    f"({len(page_ms)} requests)",
         "met" if summary["targets"]["page_p95_under_300_ms"] else "MISSED"),
        ("page response p95 by page", ", ".join(f"{k} {v}" for k, v in summary["page_p95_ms_by_page"].items()), ""),
        ("CPU, share of the machine's cores", f"all processes {cpu['machine_busy_pct']}% busy: "
         + ", ".join(f"{name} {pct}%" for name, pct in cpu["share_of_cores_pct"].items()), ""),
        ("load average (1 min) at start → end", summary["load_average"], ""),
        ("resident memory", rss, "met" if summary["targets"]["memory_flat_under_50_mb_growth"] else "MISSED"),
    ]
    print("| load (loopback, simulated provider) | figure | target |\n|---|---|---|")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")
    return 0 if all(summary["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
