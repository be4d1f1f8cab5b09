"""Run every benchmark and write benchmarks/results/summary.md.

    python benchmarks/run_all.py            # all of them
    python benchmarks/run_all.py sandbox    # the ones whose name contains "sandbox"

Each benchmark is a script `benchmarks/bench_<name>.py` that measures against its naive baseline
in the same run, writes `benchmarks/results/<name>.json` and prints a markdown table. This runner
starts each in its own process (so one's memory and threads never skew another's), then gathers
the tables, with the machine they ran on, into one summary, headed by the verdict on every
target (`targets.py`, which can also be run alone to re-judge the results files).
"""

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import targets

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, Python {platform.python_version()}"


def main(argv: list[str]) -> int:
    RESULTS.mkdir(exist_ok=True)
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(a in s.stem for a in argv)]
    sections, failures = [], []
    for script in scripts:
        name = script.stem.removeprefix("bench_")
        print(f"==> {name}", flush=True)
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True)
        took = time.monotonic() - started
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            failures.append(name)
            sys.stderr.write(proc.stderr[-4000:])
            sections.append(f"## {name}\n\nFAILED (exit {proc.returncode}) after {took:.0f} s.\n")
            continue
        sections.append(f"## {name}\n\n{proc.stdout.strip()}\n\n_took {took:.0f} s_\n")
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    summary = f"# rlmweb benchmarks\n\n{stamp} on {machine()}.\n\n" + "\n".join(sections)
    (RESULTS / "summary.md").write_text(summary)
    (RESULTS / "summary.json").write_text(json.dumps({"when": stamp, "machine": machine(), "failed": failures}))
    found = targets.verdicts()
    targets.write_summary(found)
    print("\n" + targets.markdown(found))
    print(f"Wrote {RESULTS / 'summary.md'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
