"""Profile the engine's per-turn work: a 20-turn run, each turn a batch of 10 sub-calls.

    python benchmarks/profile_engine.py --label after [--repo PATH] [--latency 0.2] [--top 40]

cProfile follows one thread, and the work of a run is spread over many (the root's loop, the
sub-call pool, one thread per provider request): every thread started during the run gets its own
profiler, timed by that thread's CPU clock (waiting for the network, a lock or the GIL is not
counted, so the figures are the Python work itself), and their statistics are merged. The simulated provider runs as its own process (its
CPU is not ours, as a remote provider's would not be). `--repo` imports the engine from another
checkout (e.g. the code before a change) with this same script.

Writes benchmarks/results/profile-<label>.txt: wall time, CPU time of the process, and the top of
the merged profile by cumulative and by own time.
"""

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
HERE = Path(__file__).resolve().parent
TURNS, BATCH = 20, 10
ROOT, SUB = "openai/gpt-4o", "openai/gpt-4o-mini"
KEY_ENV = "RLMWEB_BENCH_PROVIDER_KEY"


def replies() -> list[str]:
    out = [f"Turn {t}.\n\n```repl\nr{t} = llm_query_batched(['t{t} p' + str(i) for i in range({BATCH})])\n"
           f"print(len(r{t}))\n```" for t in range(1, TURNS)]
    out.append(f"```repl\nr{TURNS} = llm_query_batched(['last p' + str(i) for i in range({BATCH})])\n"
               f"FINAL_VAR(\"r{TURNS}\")\n```")
    return out


@contextlib.contextmanager
def provider_process(repo: Path, latency: float, root_replies: list[str]):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as script:
        json.dump(root_replies, script)
    proc = subprocess.Popen([sys.executable, "-m", "worker.simulated", "--port", "0", "--latency", str(latency),
                             "--root-script", script.name], cwd=repo, stdout=subprocess.PIPE, text=True)
    try:
        yield proc.stdout.readline().strip().rsplit(" ", 1)[-1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        os.unlink(script.name)


class ThreadProfiles:
    """A cProfile.Profile for the calling thread and for every thread started while active."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()
        self._run = threading.Thread.run

    def __enter__(self):
        owner = self

        def run(thread_self):
            profile = cProfile.Profile(time.thread_time)
            with owner._lock:
                owner.profiles.append(profile)
            profile.enable()
            try:
                owner._run(thread_self)
            finally:
                profile.disable()

        threading.Thread.run = run
        self.main = cProfile.Profile(time.thread_time)
        self.profiles.append(self.main)
        self.main.enable()
        return self

    def __exit__(self, *exc) -> None:
        self.main.disable()
        threading.Thread.run = self._run

    def stats(self, stream) -> pstats.Stats:
        return pstats.Stats(*self.profiles, stream=stream)


def by_package(stats: pstats.Stats) -> str:
    """Own CPU time summed per package (litellm, openai, httpx/httpcore, pydantic, the engine...)."""
    totals: dict[str, float] = {}
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():
        if "site-packages/" in filename:
            key = filename.split("site-packages/", 1)[1].split("/", 1)[0]
        elif "/worker/" in filename:
            key = "worker/" + filename.split("/worker/", 1)[1].split("/", 1)[0]
        elif filename.startswith("~") or filename.startswith("<"):
            key = "builtins (C)"
        else:
            key = "stdlib"
        totals[key] = totals.get(key, 0.0) + tottime
    rows = sorted(totals.items(), key=lambda kv: -kv[1])
    return "own CPU time by package (s): " + ", ".join(f"{k} {v:.2f}" for k, v in rows if v >= 0.01) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--label", required=True)
    parser.add_argument("--repo", default=str(HERE.parent))
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--dump", help="also write the merged raw statistics here (for pstats)")
    args = parser.parse_args()
    repo = Path(args.repo).resolve()
    sys.path.insert(0, str(repo))
    os.environ[KEY_ENV] = "sk-bench-not-a-real-key"
    from worker.engine import DocumentInput, Limits, ModelOptions, RunSpec, run
    from worker.engine.events import ListSink

    with tempfile.TemporaryDirectory() as tmp, provider_process(repo, args.latency, replies()) as url:
        path = Path(tmp) / "doc.txt"
        text = "benchmark document. " * 5000
        path.write_text(text)
        doc = DocumentInput("doc.txt", str(path), len(text))
        options = {m: ModelOptions(api_base=url, api_key_env=KEY_ENV, timeout_s=30) for m in (ROOT, SUB)}
        spec = RunSpec(question="benchmark", documents=[doc], root_model=ROOT, sub_model=SUB,
                       limits=Limits(max_iterations=TURNS, max_subcalls=5000, max_cost_usd=None),
                       model_options=options)
        # litellm imports modules lazily on its first call: warm it up outside the profile
        from worker.engine import llm
        pool = getattr(llm, "_ATTEMPT_THREADS", None)
        if pool is not None:  # reused request threads: they end 1 s after their last call, so that every
            pool.IDLE_S = 1.0  # thread of the run is started (and profiled) inside it and its profile closes
        llm.LLMClient(options).complete(SUB, [{"role": "user", "content": "warm-up"}])
        while pool is not None and any(t.name == "llm-attempt" for t in threading.enumerate()):
            time.sleep(0.2)
        sink = ListSink()
        cpu0, wall0 = time.process_time(), time.monotonic()
        with ThreadProfiles() as profiles:
            result = run(spec, sink)
        wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
        if pool is not None:
            while any(t.name == "llm-attempt" for t in threading.enumerate()):
                time.sleep(0.2)
    if result.status != "succeeded":
        raise SystemExit(f"run failed: {result.failure_reason}")
    calls = result.iterations + result.subcalls
    out = io.StringIO()
    load = os.getloadavg()
    out.write(f"# profile-{args.label}: {TURNS} turns x {BATCH} sub-calls, {args.latency:g} s simulated latency, "
              f"code from {repo}\n")
    out.write(f"# wall {wall:.2f} s (profiled: cProfile slows Python code), process CPU {cpu:.2f} s for {calls} model "
              f"calls = {cpu / calls * 1000:.1f} ms CPU per call; load average {load[0]:.2f} {load[1]:.2f} on "
              f"{os.cpu_count()} cores\n\n")
    stats = profiles.stats(out)
    if args.dump:
        stats.dump_stats(args.dump)
    out.write(by_package(stats) + "\n")
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)
    HERE.joinpath("results").mkdir(exist_ok=True)
    target = HERE / "results" / f"profile-{args.label}.txt"
    target.write_text(out.getvalue())
    print(out.getvalue()[:400])
    print(f"Wrote {target}")


if __name__ == "__main__":
    main()
