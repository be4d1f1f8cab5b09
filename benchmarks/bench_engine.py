"""Engine benchmark: sub-call concurrency and the loop's overhead over the model time.

    python benchmarks/bench_engine.py

(a) 1,000 sub-calls of 200 ms each through `llm_query_batched` with the default concurrency cap,
    against the same calls made one after another (`llm_query` in a loop). The sequential figure is
    extrapolated from 50 calls (x20), which the table says.
(b) A 20-iteration run with 200 sub-calls (each root turn runs a batch of 10), root and sub models
    both 200 ms: wall time over the simulated model time on the critical path
    (20 root calls + 20 batches, each batch one 200 ms wave).

Everything goes through the real path: litellm over HTTP to the simulated OpenAI-compatible
provider, the sandboxed REPL, the event emitter. The provider runs as its own process
(`python -m worker.simulated`) so its CPU does not compete with the engine's, as a remote provider
would not. Writes benchmarks/results/engine.json.
"""

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
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.engine import DocumentInput, Limits, ModelOptions, RunSpec, run  # noqa: E402
from worker.engine.events import ListSink  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LATENCY_S = 0.2
ROOT, SUB = "openai/gpt-4o", "openai/gpt-4o-mini"
KEY_ENV = "RLMWEB_BENCH_PROVIDER_KEY"


@contextlib.contextmanager
def provider_process(root_replies: list[str] | None = None):
    """The simulated provider as a separate process; yields its base URL."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as script:
        json.dump(root_replies or [], script)
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.simulated", "--port", "0", "--latency", str(LATENCY_S),
         "--root-script", script.name],
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        yield line.strip().rsplit(" ", 1)[-1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        os.unlink(script.name)


def spec_for(base_url: str, doc: DocumentInput, script: list[str] | None, **limits) -> RunSpec:
    options = {m: ModelOptions(api_base=base_url, api_key_env=KEY_ENV, timeout_s=30) for m in (ROOT, SUB)}
    return RunSpec(question="benchmark", documents=[doc], root_model=ROOT, sub_model=SUB,
                   limits=Limits(max_subcalls=5000, max_cost_usd=None, **limits), model_options=options,
                   root_script=script)


def cell_seconds(sink: ListSink) -> float:
    started = sink.of_type("cell.started")[0].ts
    finished = sink.of_type("cell.finished")[0].ts
    return finished - started


def check(result, sink: ListSink) -> None:
    if result.status != "succeeded":
        raise SystemExit(f"benchmark run failed: {result.failure_reason}")
    errors = [e for e in sink.of_type("subcall.finished") if e.data["error"]]
    if errors:
        raise SystemExit(f"{len(errors)} sub-calls failed, e.g. {errors[0].data['error']}")


def bench_batched(doc: DocumentInput) -> dict:
    cap = Limits().subcall_concurrency
    with provider_process() as url:
        sink = ListSink()
        script = ["```repl\nr = llm_query_batched(['item ' + str(i) for i in range(1000)])\n```", 'FINAL_VAR("r")']
        check(run(spec_for(url, doc, script), sink), sink)
        batched = cell_seconds(sink)
        sink = ListSink()
        script = ["```repl\nr = [llm_query('item ' + str(i)) for i in range(50)]\n```", 'FINAL_VAR("r")']
        check(run(spec_for(url, doc, script), sink), sink)
        sequential_50 = cell_seconds(sink)
    ideal = math.ceil(1000 / cap) * LATENCY_S
    return {
        "subcalls": 1000, "latency_s": LATENCY_S, "concurrency_cap": cap,
        "batched_wall_s": round(batched, 2), "ideal_wall_s": round(ideal, 2),
        "batched_over_ideal": round(batched / ideal, 3),
        "sequential_50_wall_s": round(sequential_50, 2),
        "sequential_1000_wall_s_extrapolated": round(sequential_50 * 20, 1),
        "speedup": round(sequential_50 * 20 / batched, 1),
    }


def bench_loop(doc: DocumentInput) -> dict:
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
    }


def main() -> None:
    os.environ[KEY_ENV] = "sk-bench-not-a-real-key"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "doc.txt"
        text = "benchmark document. " * 5000
        path.write_text(text)
        doc = DocumentInput("doc.txt", str(path), len(text))
        a = bench_batched(doc)
        b = bench_loop(doc)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "engine.json").write_text(json.dumps({"batched_subcalls": a, "loop_overhead": b}, indent=2) + "\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| 1,000 sub-calls of {a['latency_s'] * 1000:.0f} ms, llm_query_batched (cap {a['concurrency_cap']}) "
          f"| {a['batched_wall_s']} s |")
    print(f"| ideal for that cap (ceil(1000/{a['concurrency_cap']}) x {a['latency_s']} s) | {a['ideal_wall_s']} s "
          f"(wall/ideal {a['batched_over_ideal']}) |")
    print(f"| same calls sequential (measured 50: {a['sequential_50_wall_s']} s, x20 extrapolated) "
          f"| {a['sequential_1000_wall_s_extrapolated']} s (batched is {a['speedup']}x faster) |")
    print(f"| 20-iteration run, 200 sub-calls: wall | {b['wall_s']} s |")
    print(f"| simulated model time on its critical path | {b['critical_path_model_s']} s "
          f"(wall/critical {b['wall_over_critical_path']}, {b['overhead_per_iteration_s']} s overhead per iteration) |")


if __name__ == "__main__":
    main()
