"""Engine benchmark: sub-call concurrency and the loop's overhead over the model time.

    python benchmarks/bench_engine.py [--baseline-ref REF] [--reps N]
    python benchmarks/bench_engine.py --only loop --latency 2   # (b) alone, at another latency

(a) 1,000 sub-calls of 200 ms each through `llm_query_batched` with the default concurrency cap,
    against the same calls made one after another (`llm_query` in a loop). The sequential figure is
    extrapolated from 50 calls (x20), which the table says.
(b) A 20-iteration run with 200 sub-calls (each root turn runs a batch of 10), root and sub models
    both 200 ms: wall time over the simulated model time on the critical path
    (20 root calls + 20 batches, each batch one 200 ms wave).
(c) CPU per model call: 100 calls one after another with no simulated latency, the engine
    process's CPU time over the calls (the provider's CPU is its own process's). Little affected by
    the machine's load, unlike (a) and (b).

Each of (a)-(c) is measured for this checkout and for the code before the #18 overhead work
(`--baseline-ref`, extracted with `git archive` into a temporary directory), each in its own
process, interleaved (baseline, candidate, then candidate, baseline...), so both see the same
machine load; the load average is recorded.

Everything goes through the real path: litellm over HTTP to the simulated OpenAI-compatible
provider, the sandboxed REPL, the event emitter. The provider runs as its own process
(`python -m worker.simulated`) so its CPU does not compete with the engine's, as a remote provider
would not. Writes benchmarks/results/engine.json (this checkout's figures at the top level, the
baseline's under "baseline").
"""

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
# The code before #18's overhead work (prompt caching and the per-call cuts came after it).
BASELINE_REF = "74cba8b"
LATENCY_S = 0.2
CPU_CALLS = 100
ROOT, SUB = "openai/gpt-4o", "openai/gpt-4o-mini"
KEY_ENV = "RLMWEB_BENCH_PROVIDER_KEY"


@contextlib.contextmanager
def provider_process(root_replies: list[str] | None = None, latency_s: float | None = None):
    """The simulated provider as a separate process (from the code tree under test); yields its URL."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as script:
        json.dump(root_replies or [], script)
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.simulated", "--port", "0",
         "--latency", str(LATENCY_S if latency_s is None else latency_s),
         "--root-script", script.name],
        cwd=CODE, stdout=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        yield line.strip().rsplit(" ", 1)[-1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        os.unlink(script.name)


CODE = REPO  # the code tree under test (--repo in a measuring process)


def spec_for(base_url: str, doc, script: list[str] | None, **limits):
    from worker.engine import Limits, ModelOptions, RunSpec

    options = {m: ModelOptions(api_base=base_url, api_key_env=KEY_ENV, timeout_s=30) for m in (ROOT, SUB)}
    return RunSpec(question="benchmark", documents=[doc], root_model=ROOT, sub_model=SUB,
                   limits=Limits(max_subcalls=5000, max_cost_usd=None, **limits), model_options=options,
                   root_script=script)


def cell_seconds(sink) -> float:
    started = sink.of_type("cell.started")[0].ts
    finished = sink.of_type("cell.finished")[0].ts
    return finished - started


def check(result, sink) -> None:
    if result.status != "succeeded":
        raise SystemExit(f"benchmark run failed: {result.failure_reason}")
    errors = [e for e in sink.of_type("subcall.finished") if e.data["error"]]
    if errors:
        raise SystemExit(f"{len(errors)} sub-calls failed, e.g. {errors[0].data['error']}")


def bench_batched(doc, sequential: bool = True) -> dict:
    from worker.engine import Limits, run
    from worker.engine.events import ListSink
    cap = Limits().subcall_concurrency
    with provider_process() as url:
        sink = ListSink()
        script = ["```repl\nr = llm_query_batched(['item ' + str(i) for i in range(1000)])\n```", 'FINAL_VAR("r")']
        check(run(spec_for(url, doc, script), sink), sink)
        batched = cell_seconds(sink)
        if sequential:
            sink = ListSink()
            script = ["```repl\nr = [llm_query('item ' + str(i)) for i in range(50)]\n```", 'FINAL_VAR("r")']
            check(run(spec_for(url, doc, script), sink), sink)
            sequential_50 = cell_seconds(sink)
    ideal = math.ceil(1000 / cap) * LATENCY_S
    out = {
        "subcalls": 1000, "latency_s": LATENCY_S, "concurrency_cap": cap,
        "batched_wall_s": round(batched, 2), "ideal_wall_s": round(ideal, 2),
        "batched_over_ideal": round(batched / ideal, 3),
    }
    if sequential:
        out.update({"sequential_50_wall_s": round(sequential_50, 2),
                    "sequential_1000_wall_s_extrapolated": round(sequential_50 * 20, 1),
                    "speedup": round(sequential_50 * 20 / batched, 1)})
    return out


def turn_phases(events, latency_s: float) -> dict:
    """Where a turn's time goes beyond the model's latency, from the run's event timestamps (median
    and mean over the turns, ms): the root call over its simulated latency; reply to cell start; cell start to
    the first sub-call sent (the sandbox round trip and the REPL's call into the host); the batch
    over one latency (first sub-call started to last finished); last sub-call to cell end; cell end
    to the next root request (parsing, feedback, prompt building, compaction's check). Also once per
    run: the first root call's overhead, the run's start to its first request, the end of the last
    cell to the run's end."""
    import statistics
    turns = [i for i, e in enumerate(events) if e.type == "root.turn"]
    phases: dict[str, list[float]] = {k: [] for k in (
        "root_call_over_latency", "reply_to_cell", "cell_to_first_subcall", "batch_over_latency",
        "batch_to_cell_end", "cell_end_to_next_request")}
    previous_end = None
    for n, i in enumerate(turns):
        turn = events[i]
        after = events[i + 1:turns[n + 1]] if n + 1 < len(turns) else events[i + 1:]
        cells = [e for e in after if e.type == "cell.started"]
        ends = [e for e in after if e.type == "cell.finished"]
        started = [e for e in after if e.type == "subcall.started"]
        finished = [e for e in after if e.type == "subcall.finished"]
        sent = turn.ts - turn.data["latency_s"]
        phases["root_call_over_latency"].append(turn.data["latency_s"] - latency_s)
        if previous_end is not None:
            phases["cell_end_to_next_request"].append(sent - previous_end)
        if not (cells and ends and started and finished):
            continue
        last = max(e.ts for e in finished)
        phases["reply_to_cell"].append(cells[0].ts - turn.ts)
        phases["cell_to_first_subcall"].append(started[0].ts - cells[0].ts)
        phases["batch_over_latency"].append(last - started[0].ts - latency_s)
        phases["batch_to_cell_end"].append(ends[0].ts - last)
        previous_end = ends[0].ts
    out: dict = {k: {"median": round(statistics.median(v) * 1000, 1), "mean": round(statistics.mean(v) * 1000, 1)}
                 for k, v in phases.items() if v}
    out["first_root_call_over_latency"] = round(phases["root_call_over_latency"][0] * 1000, 1)
    first_sent = events[turns[0]].ts - events[turns[0]].data["latency_s"]
    out["run_start_to_first_request"] = round((first_sent - events[0].ts) * 1000, 1)
    if previous_end is not None:
        out["last_cell_end_to_run_end"] = round((events[-1].ts - previous_end) * 1000, 1)
    return out


def bench_loop(doc) -> dict:
    from worker.engine import Limits, run
    from worker.engine.events import ListSink
    turns, batch = 20, 10
    replies = [
        f"Turn {t}.\n\n```repl\nr{t} = llm_query_batched(['t{t} p' + str(i) for i in range({batch})])\nprint(len(r{t}))\n```"
        for t in range(1, turns)
    ]
    replies.append(f"```repl\nr{turns} = llm_query_batched(['last p' + str(i) for i in range({batch})])\n"
                   f"FINAL_VAR(\"r{turns}\")\n```")
    with provider_process(replies) as url:
        sink = ListSink()
        started = time.monotonic()
        result = run(spec_for(url, doc, None, max_iterations=turns), sink)
        wall = time.monotonic() - started
        check(result, sink)
    critical = turns * LATENCY_S + turns * math.ceil(batch / Limits().subcall_concurrency) * LATENCY_S
    return {
        "iterations": result.iterations, "subcalls": result.subcalls, "latency_s": LATENCY_S,
        "wall_s": round(wall, 2), "critical_path_model_s": round(critical, 2),
        "wall_over_critical_path": round(wall / critical, 3),
        "overhead_s": round(wall - critical, 2),
        "overhead_per_iteration_s": round((wall - critical) / turns, 3),
        "events": len(sink.events), "cost_usd": result.cost_usd,
        "turn_phases_ms": turn_phases(sink.events, LATENCY_S),
    }


def bench_cpu() -> dict:
    """CPU time of this process per model call: CPU_CALLS calls in a row, no simulated latency."""
    from worker.engine import ModelOptions
    from worker.engine.llm import LLMClient
    with provider_process(latency_s=0.0) as url:
        client = LLMClient({SUB: ModelOptions(api_base=url, api_key_env=KEY_ENV, timeout_s=30)})
        client.complete(SUB, [{"role": "user", "content": "warm-up"}])  # litellm's lazy imports
        cpu, wall = time.process_time(), time.monotonic()
        for i in range(CPU_CALLS):
            client.complete(SUB, [{"role": "system", "content": "You are a sub-call."},
                                  {"role": "user", "content": f"item {i}"}])
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    return {"calls": CPU_CALLS, "cpu_ms_per_call": round(cpu / CPU_CALLS * 1000, 2),
            "wall_ms_per_call": round(wall / CPU_CALLS * 1000, 2)}


def measure(what: str, repo: str) -> None:
    """In a measuring process: import the engine from `repo`, run one measurement, print its JSON."""
    global CODE
    CODE = Path(repo).resolve()
    sys.path.insert(0, str(CODE))
    from worker.engine import DocumentInput
    os.environ[KEY_ENV] = "sk-bench-not-a-real-key"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "doc.txt"
        text = "benchmark document. " * 5000
        path.write_text(text)
        doc = DocumentInput("doc.txt", str(path), len(text))
        if what == "batched":
            result = bench_batched(doc)
        elif what == "batched-only":
            result = bench_batched(doc, sequential=False)
        elif what == "loop":
            result = bench_loop(doc)
        else:
            result = bench_cpu()
    print("RESULT " + json.dumps(result))


def run_measure(what: str, repo: Path, latency_s: float = LATENCY_S) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--measure", what, "--repo", str(repo),
                           "--latency", str(latency_s)], cwd=REPO, capture_output=True, text=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"{what} ({repo}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(line.removeprefix("RESULT "))


@contextlib.contextmanager
def baseline_tree(ref: str):
    """The code at `ref` (its tracked files), in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="rlmweb-baseline-") as tmp:
        archive = subprocess.run(["git", "archive", ref], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        yield Path(tmp)


def median_of(runs: list[dict]) -> dict:
    """The run whose headline figure is the median (the figures of one run stay together)."""
    key = next(k for k in ("wall_over_critical_path", "batched_over_ideal", "cpu_ms_per_call") if k in runs[0])
    return sorted(runs, key=lambda r: r[key])[len(runs) // 2]


def main() -> None:
    global LATENCY_S
    parser = argparse.ArgumentParser()
    parser.add_argument("--measure", choices=("batched", "batched-only", "loop", "cpu"))
    parser.add_argument("--repo", default=str(REPO))
    parser.add_argument("--baseline-ref", default=BASELINE_REF)
    parser.add_argument("--reps", type=int, default=1, help="interleaved repetitions of each measurement")
    parser.add_argument("--latency", type=float, default=LATENCY_S, help="simulated model latency (s)")
    parser.add_argument("--only", choices=("loop",), help="measure (b) alone, print its figures, write nothing")
    args = parser.parse_args()
    LATENCY_S = args.latency
    if args.measure:
        measure(args.measure, args.repo)
        return
    if args.only:
        with baseline_tree(args.baseline_ref) as base:
            for rep in range(args.reps):
                for name, tree in (("baseline", base), ("candidate", REPO))[::1 if rep % 2 == 0 else -1]:
                    print(name, json.dumps(run_measure("loop", tree, args.latency)), flush=True)
        return
    load_before = os.getloadavg()
    found: dict[str, dict[str, list[dict]]] = {"baseline": {}, "candidate": {}}
    with baseline_tree(args.baseline_ref) as base:
        trees = {"baseline": base, "candidate": REPO}
        for rep in range(args.reps):
            order = ("baseline", "candidate") if rep % 2 == 0 else ("candidate", "baseline")
            for what in ("cpu", "loop", "batched"):
                for name in order:
                    kind = "batched-only" if what == "batched" and (name == "baseline" or rep > 0) else what
                    found[name].setdefault(what, []).append(run_measure(kind, trees[name]))
    load_after = os.getloadavg()
    cand = {k: median_of(v) for k, v in found["candidate"].items()}
    base = {k: median_of(v) for k, v in found["baseline"].items()}
    seq = found["candidate"]["batched"][0]  # the sequential baseline is measured once, on this checkout
    for key in ("sequential_50_wall_s", "sequential_1000_wall_s_extrapolated"):
        cand["batched"][key] = seq[key]
    cand["batched"]["speedup"] = round(seq["sequential_1000_wall_s_extrapolated"] / cand["batched"]["batched_wall_s"], 1)
    result = {
        "batched_subcalls": cand["batched"], "loop_overhead": cand["loop"], "cpu_per_call": cand["cpu"],
        "baseline": {"ref": args.baseline_ref, "batched_subcalls": base["batched"], "loop_overhead": base["loop"],
                     "cpu_per_call": base["cpu"]},
        "reps": args.reps, "all_runs": found,
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "cores": os.cpu_count(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "engine.json").write_text(json.dumps(result, indent=2) + "\n")
    a, b, c = cand["batched"], cand["loop"], cand["cpu"]
    ba, bb, bc = base["batched"], base["loop"], base["cpu"]
    print(f"Load average {load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} cores; "
          f"baseline = the code at {args.baseline_ref}, measured interleaved in the same run"
          f"{f' (median of {args.reps})' if args.reps > 1 else ''}.")
    print()
    print("| measure | this checkout | baseline |")
    print("|---|---|---|")
    print(f"| CPU per model call ({c['calls']} calls, no latency) | {c['cpu_ms_per_call']} ms | {bc['cpu_ms_per_call']} ms |")
    print(f"| 1,000 sub-calls of {a['latency_s'] * 1000:.0f} ms, llm_query_batched (cap {a['concurrency_cap']}) "
          f"| {a['batched_wall_s']} s | {ba['batched_wall_s']} s |")
    print(f"| share of ideal (1000 x {a['latency_s']} s / {a['concurrency_cap']}) "
          f"| {1000 * a['latency_s'] / a['concurrency_cap'] / a['batched_wall_s']:.2f} "
          f"| {1000 * ba['latency_s'] / ba['concurrency_cap'] / ba['batched_wall_s']:.2f} |")
    print(f"| same calls sequential (measured 50: {a['sequential_50_wall_s']} s, x20 extrapolated) "
          f"| {a['sequential_1000_wall_s_extrapolated']} s (batched is {a['speedup']}x faster) | |")
    print(f"| 20-iteration run, 200 sub-calls: wall | {b['wall_s']} s | {bb['wall_s']} s |")
    print(f"| wall / critical-path model time ({b['critical_path_model_s']} s) | {b['wall_over_critical_path']} "
          f"({b['overhead_per_iteration_s'] * 1000:.0f} ms per iteration) | {bb['wall_over_critical_path']} "
          f"({bb['overhead_per_iteration_s'] * 1000:.0f} ms per iteration) |")


if __name__ == "__main__":
    main()
