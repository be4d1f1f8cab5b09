"""The reference RLM library (`rlms` on PyPI, the paper authors' `rlm` package) on bench_engine's workloads.

    python benchmarks/reference_rlms.py --install   # once: a separate virtualenv with rlms==0.1.3
    python benchmarks/reference_rlms.py             # measure it and this checkout, same run

`rlms` is never a project dependency: `--install` creates `benchmarks/.rlms-venv` (gitignored) and
installs the pinned release there; the reference runs in that interpreter, in its own process, and
this script only reads the JSON it prints.

Workloads, the same as benchmarks/bench_engine.py, through the same simulated OpenAI-compatible
provider (`python -m worker.simulated`, its own process, 200 ms per call, scripted root replies):

(a) fan-out: one cell runs 1,000 sub-calls through `llm_query_batched`, concurrency 16 (rlmweb's
    default cap; the reference's LMHandler runs a batch with `batch_max_concurrent=16`). The figure
    is the cell's wall time (the reference: its `LocalREPL.execute_code` call, timed by the driver).
(b) a 20-turn run whose every turn runs a batch of 10 sub-calls, root and sub model both 200 ms:
    wall time of the whole run over the model time on its critical path (20 root calls + 20 waves).

The root replies are the same programs in each library's dialect: rlmweb ends with
`FINAL_VAR("r")`, the reference with `answer["content"] = ...; answer["ready"] = True` (how its
REPL signals completion). The reference drives its default `local` environment (an `exec` in the
host process, no sandbox); rlmweb's cells run in its sandboxed REPL process, so rlmweb pays
isolation costs the reference does not. Each script's answer is the number of its sub-calls that
answered (a failed one returns an "Error: ..." string in the reference), and the driver records the
first failure, so a fast figure made of failed calls shows as such.
Writes benchmarks/results/reference_rlms.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV = HERE / ".rlms-venv"
PACKAGE = "rlms==0.1.3"
LATENCY_S = 0.2
FAN_OUT, CAP = 1000, 16
TURNS, BATCH = 20, 10
ROOT, SUB = "gpt-4o", "gpt-4o-mini"  # the simulated provider's root model, and a sub model it echoes


def venv_python() -> Path:
    return VENV / "bin" / "python"


def install() -> None:
    if not venv_python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(venv_python()), "-m", "pip", "install", "--quiet", PACKAGE], check=True)
    version = subprocess.run([str(venv_python()), "-m", "pip", "show", "rlms"], capture_output=True, text=True,
                             check=True).stdout
    print(next(line for line in version.splitlines() if line.startswith("Version")), "in", VENV)


# --- the reference's scripted root replies --------------------------------------------------------------


def reference_replies(workload: str) -> list[str]:
    """The scripts, counting the sub-calls that answered (a failed one returns a string "Error: ...")."""
    ok = "sum(1 for x in {r} if not x.startswith('Error'))"
    if workload == "fan-out":
        return [f"```repl\nr = llm_query_batched(['item ' + str(i) for i in range({FAN_OUT})])\n"
                f"answer['content'] = str({ok.format(r='r')})\nanswer['ready'] = True\n```"]
    replies = [f"Turn {t}.\n\n```repl\nr{t} = llm_query_batched(['t{t} p' + str(i) for i in range({BATCH})])\n"
               f"print({ok.format(r=f'r{t}')})\n```" for t in range(1, TURNS)]
    total = " + ".join(ok.format(r=f"r{t}") for t in range(1, TURNS + 1))
    replies.append(f"```repl\nr{TURNS} = llm_query_batched(['last p' + str(i) for i in range({BATCH})])\n"
                   f"answer['content'] = str({total})\nanswer['ready'] = True\n```")
    return replies


def drive(workload: str, base_url: str) -> None:
    """In the reference's virtualenv: one scripted completion; print its figures as JSON."""
    from rlm import RLM
    from rlm.environments import local_repl

    cells: list[dict] = []
    execute = local_repl.LocalREPL.execute_code

    def timed(self, code: str):
        started = time.monotonic()
        result = execute(self, code)
        if "llm_query_batched" in code:  # the scripted cells (the environment runs set-up code too)
            cells.append({"seconds": time.monotonic() - started, "final": result.final_answer is not None})
        return result

    failures: list[str] = []
    batched = local_repl.LocalREPL._llm_query_batched

    def counted(self, prompts: list[str], model: str | None = None) -> list[str]:
        answers = batched(self, prompts, model)
        failures.extend(a for a in answers if a.startswith("Error"))
        return answers

    local_repl.LocalREPL.execute_code = timed
    local_repl.LocalREPL._llm_query_batched = counted
    # The client's own defaults (retries included); only the provider's address and a dummy key.
    kwargs = {"api_key": "sk-bench-not-a-real-key", "base_url": base_url}
    rlm = RLM(backend="openai", backend_kwargs={"model_name": ROOT, **kwargs}, environment="local",
              other_backends=["openai"], other_backend_kwargs=[{"model_name": SUB, **kwargs}],
              max_iterations=TURNS if workload == "loop" else 2, max_concurrent_subcalls=CAP)
    context = "benchmark document. " * 5000
    started = time.monotonic()
    completion = rlm.completion(context, root_prompt="benchmark")
    wall = time.monotonic() - started
    print("RESULT " + json.dumps({"answer": completion.response, "wall_s": wall, "cells": cells,
                                  "failed_subcalls": len(failures), "first_failure": failures[0] if failures else None}))


def run_reference(workload: str) -> dict:
    sys.path.insert(0, str(HERE))
    from bench_engine import provider_process

    with provider_process(reference_replies(workload), latency_s=LATENCY_S) as url:
        proc = subprocess.run([str(venv_python()), __file__, "--drive", workload, "--url", url], cwd=HERE,
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"the reference's {workload} run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return json.loads(line.removeprefix("RESULT "))


def run_ours(what: str) -> dict:
    sys.path.insert(0, str(HERE))
    from bench_engine import run_measure

    return run_measure(what, REPO)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--install", action="store_true", help=f"create {VENV.name} and install {PACKAGE} in it")
    parser.add_argument("--drive", choices=("fan-out", "loop"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args.drive, args.url)
        return 0
    if args.install:
        install()
        return 0
    if not venv_python().exists():
        print(f"The reference library is not installed: run `python {Path(__file__).name} --install` first "
              f"(it creates {VENV.relative_to(REPO)} with {PACKAGE}; nothing is added to the project).")
        return 2
    load_before = os.getloadavg()
    ref_fan, ours_fan = run_reference("fan-out"), run_ours("batched-only")
    ref_loop, ours_loop = run_reference("loop"), run_ours("loop")
    load_after = os.getloadavg()
    ideal = math.ceil(FAN_OUT / CAP) * LATENCY_S
    critical = TURNS * LATENCY_S + TURNS * math.ceil(BATCH / CAP) * LATENCY_S
    fan_cell = max(c["seconds"] for c in ref_fan["cells"])
    ref_iterations = len(ref_loop["cells"])
    if ref_iterations != TURNS or not ref_fan["cells"]:
        raise SystemExit(f"the reference did not run the script as written: {ref_fan} {ref_loop}")
    result = {
        "reference": {"package": PACKAGE, "environment": "local (exec in the host process)"},
        "latency_s": LATENCY_S,
        "fan_out": {
            "subcalls": FAN_OUT, "concurrency_cap": CAP, "ideal_wall_s": round(ideal, 2),
            "ours_cell_s": ours_fan["batched_wall_s"], "reference_cell_s": round(fan_cell, 2),
            "ours_share_of_ideal": round(ideal / ours_fan["batched_wall_s"], 3),
            "reference_share_of_ideal": round(ideal / fan_cell, 3),
            "reference_completion_s": round(ref_fan["wall_s"], 2),
            "reference_subcalls_answered": int(ref_fan["answer"]),
            "reference_first_failure": ref_fan["first_failure"],
        },
        "loop": {
            "turns": TURNS, "subcalls_per_turn": BATCH, "critical_path_model_s": round(critical, 2),
            "ours_wall_s": ours_loop["wall_s"], "reference_wall_s": round(ref_loop["wall_s"], 2),
            "ours_wall_over_critical_path": ours_loop["wall_over_critical_path"],
            "reference_wall_over_critical_path": round(ref_loop["wall_s"] / critical, 3),
            "reference_iterations": ref_iterations,
            "ours_subcalls": ours_loop["subcalls"],
            "reference_subcalls_answered": int(ref_loop["answer"]),
            "reference_first_failure": ref_loop["first_failure"],
        },
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "cores": os.cpu_count(),
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "reference_rlms.json").write_text(json.dumps(result, indent=2) + "\n")
    f, lo = result["fan_out"], result["loop"]
    print(f"rlmweb against {PACKAGE} on the same simulated provider ({LATENCY_S * 1000:.0f} ms per call), same run; "
          f"load average {load_before[0]:.1f} → {load_after[0]:.1f} on {os.cpu_count()} cores.\n")
    print("| workload | rlmweb | rlms 0.1.3 |")
    print("|---|---|---|")
    print(f"| {FAN_OUT:,} sub-calls, cap {CAP}: cell wall (ideal {f['ideal_wall_s']} s) | {f['ours_cell_s']} s "
          f"({f['ours_share_of_ideal']:.2f} of ideal) | {f['reference_cell_s']} s ({f['reference_share_of_ideal']:.2f}) |")
    print(f"| {TURNS} turns × {BATCH} sub-calls: wall / critical path ({lo['critical_path_model_s']} s) "
          f"| {lo['ours_wall_s']} s ({lo['ours_wall_over_critical_path']:.3f}) "
          f"| {lo['reference_wall_s']} s ({lo['reference_wall_over_critical_path']:.3f}) |")
    print(f"| sub-calls answered (fan-out; 20-turn run) | {FAN_OUT:,}; {lo['ours_subcalls']} "
          f"| {f['reference_subcalls_answered']:,}; {lo['reference_subcalls_answered']} |")
    for name, part in (("fan-out", f), ("20-turn run", lo)):
        if part["reference_first_failure"]:
            print(f"\nThe reference's first failed sub-call in the {name}: {part['reference_first_failure']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
