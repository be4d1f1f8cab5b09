"""Sandbox benchmark: per-cell overhead with large contexts, and guard speed on loop-heavy code.

    python benchmarks/bench_sandbox.py

(a) Per-cell round trip of the sandbox (documents loaded once per run, fork per cell) for a trivial
    cell and for ``len(context)`` with 1 KB, 10 MB and 100 MB contexts, against the naive baseline:
    a fresh REPL process per cell that is sent the context again.
(b) A loop-heavy cell (indexing, in-place adds, attribute calls over 2M items): our guards vs the
    same code as plain Python, and vs RestrictedPython's stock guard setup.

Writes benchmarks/results/sandbox.json and prints a markdown table.
"""

from __future__ import annotations

import json
import operator
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from worker.sandbox import Sandbox, SandboxLimits  # noqa: E402
from worker.sandbox.repl import Repl  # noqa: E402

SIZES = {"1 KB": 1_000, "10 MB": 10_000_000, "100 MB": 100_000_000}
CELL_REPS = 30
NAIVE_REPS = {"1 KB": 10, "10 MB": 5, "100 MB": 3}

NAIVE_REPL = """
import json, sys
sys.path.insert(0, sys.argv[1])
from worker.sandbox.repl import Repl
req = json.loads(sys.stdin.buffer.read())
repl = Repl([("doc", req["context"])], 1_000_000)
res = repl.run_cell(req["code"])
sys.stdout.write(json.dumps({"stdout": res["stdout"], "error": res["error"]}))
"""

LOOP_SETUP = "data = list(range(2_000_000))\nlimit = len(data)"
LOOP_CELL = """\
total = 0
kept = []
for i in range(limit):
    v = data[i]
    total += v
    if v % 3 == 0:
        kept.append(v)
"""


def _text(n: int) -> str:
    line = "The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs.\n"
    return (line * (n // len(line) + 1))[:n]


def bench_cells(tmp: Path) -> list[dict]:
    rows = []
    for label, size in SIZES.items():
        path = tmp / f"ctx-{size}.txt"
        path.write_text(_text(size), encoding="utf-8")
        started = time.perf_counter()
        with Sandbox([("doc", str(path))], lambda n, a: "", SandboxLimits(cell_timeout_s=60)) as sb:
            start_s = time.perf_counter() - started
            sb.run_cell("x = 0")  # warm
            timings = {}
            for name, code in (("trivial", "x = 1"), ("len(context)", "n = len(context)\nprint(n)")):
                samples = []
                for _ in range(CELL_REPS):
                    t = time.perf_counter()
                    res = sb.run_cell(code)
                    samples.append(time.perf_counter() - t)
                    assert res.error is None, res.error
                timings[name] = statistics.median(samples)
                timings[name + " min"] = min(samples)
        naive = []
        context = path.read_text(encoding="utf-8")
        payload = json.dumps({"context": context, "code": "n = len(context)\nprint(n)"}).encode()
        for _ in range(NAIVE_REPS[label]):
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-I", "-c", NAIVE_REPL, str(REPO)], input=payload,
                                  capture_output=True, check=True)
            naive.append(time.perf_counter() - t)
            assert json.loads(proc.stdout)["stdout"] == f"{size}\n"
        del context, payload
        rows.append({
            "context": label,
            "sandbox_start_s": start_s,
            "trivial_cell_ms": timings["trivial"] * 1000,
            "len_context_cell_ms": timings["len(context)"] * 1000,
            "trivial_cell_min_ms": timings["trivial min"] * 1000,
            "len_context_cell_min_ms": timings["len(context) min"] * 1000,
            "naive_len_context_cell_ms": statistics.median(naive) * 1000,
        })
        path.unlink()
    return rows


def _stock_globals() -> dict:
    """RestrictedPython's stock guards as its docs configure them."""
    from RestrictedPython import safe_builtins
    from RestrictedPython.Guards import (
        full_write_guard,
        guarded_iter_unpack_sequence,
        guarded_unpack_sequence,
        safer_getattr,
    )

    ops = {"+=": operator.iadd, "-=": operator.isub, "*=": operator.imul}
    builtins = dict(safe_builtins)
    builtins.update(len=len, list=list)
    return {
        "__builtins__": builtins,
        "_getattr_": safer_getattr,
        "_getitem_": lambda ob, index: ob[index],
        "_getiter_": iter,
        "_write_": full_write_guard,
        "_inplacevar_": lambda op, x, y: ops[op](x, y),
        "_unpack_sequence_": guarded_unpack_sequence,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    }


def bench_loop(reps: int = 7) -> dict:
    """Best of `reps`, the four variants interleaved so load from other processes hits all alike."""
    from RestrictedPython import compile_restricted_exec

    data = list(range(2_000_000))
    plain_code = compile(LOOP_CELL, "<plain>", "exec")
    stock_code = compile_restricted_exec(LOOP_CELL).code
    repl = Repl([("doc", "x")], 1000)
    repl.run_cell(LOOP_SETUP)

    def timed(fn) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    samples: dict[str, list[float]] = {"plain": [], "stock": [], "ours": [], "sandbox": []}
    with Sandbox([], lambda n, a: "", SandboxLimits(cell_timeout_s=60)) as sb:
        assert sb.run_cell(LOOP_SETUP).error is None
        for _ in range(reps):
            samples["plain"].append(timed(lambda: exec(plain_code, {"data": data, "limit": len(data)})))
            samples["stock"].append(
                timed(lambda: exec(stock_code, {**_stock_globals(), "data": data, "limit": len(data)}))
            )
            samples["ours"].append(timed(lambda: repl.run_cell(LOOP_CELL)))
            res = sb.run_cell(LOOP_CELL)
            assert res.error is None, res.error
            samples["sandbox"].append(res.duration_s)
    plain, stock, ours, sandbox = (min(samples[k]) for k in ("plain", "stock", "ours", "sandbox"))
    return {
        "plain_s": plain,
        "stock_restrictedpython_s": stock,
        "ours_in_process_s": ours,
        "ours_in_sandbox_s": sandbox,
        "stock_ratio": stock / plain,
        "ours_ratio": ours / plain,
        "ours_sandbox_ratio": sandbox / plain,
        "load_average_1min": os.getloadavg()[0],
    }


def main() -> int:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        cells = bench_cells(Path(tmp))
    loop = bench_loop()
    results = {"cells": cells, "loop": loop, "took_s": time.perf_counter() - started}
    out = HERE / "results" / "sandbox.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))

    print("### Per-cell round trip (median, min in brackets): documents loaded once per run, vs re-sent\n")
    print("| context | sandbox start | trivial cell | `len(context)` cell | naive: fresh process + re-sent context |")
    print("|---|---|---|---|---|")
    for r in cells:
        print(f"| {r['context']} | {r['sandbox_start_s'] * 1000:.0f} ms | {r['trivial_cell_ms']:.1f} ms "
              f"({r['trivial_cell_min_ms']:.1f}) | {r['len_context_cell_ms']:.1f} ms ({r['len_context_cell_min_ms']:.1f}) "
              f"| {r['naive_len_context_cell_ms']:.0f} ms |")
    print("\n### Loop-heavy cell: 2M iterations of indexing, `+=` and `list.append` (best of 7, interleaved)\n")
    print("| plain Python | stock RestrictedPython guards | our guards (in process) | our guards (in the sandbox) |")
    print("|---|---|---|---|")
    print(f"| {loop['plain_s']:.3f} s | {loop['stock_restrictedpython_s']:.3f} s ({loop['stock_ratio']:.2f}×) | "
          f"{loop['ours_in_process_s']:.3f} s ({loop['ours_ratio']:.2f}×) | "
          f"{loop['ours_in_sandbox_s']:.3f} s ({loop['ours_sandbox_ratio']:.2f}×) |")
    print(f"\n_Wrote {out.relative_to(REPO)} in {results['took_s']:.0f} s "
          f"(load average {loop['load_average_1min']:.1f} on {os.cpu_count()} cores)._")
    return 0


if __name__ == "__main__":
    sys.exit(main())
