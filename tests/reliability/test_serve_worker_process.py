"""`manage.py serve` on the embedded default runs the Celery worker in a child process it supervises.

End to end on loopback: the worker is a separate process below `serve`; a run's events reach a
websocket viewer live through the relay (not only through the consumer's idle catch-up from the
database, every 3 s); a cancel reaches the worker; a killed worker is restarted and the next run
succeeds; and the worker goes when `serve` goes.
"""

import asyncio
import json
import os
import signal
import statistics
import time
from pathlib import Path

import pytest

from tests.reliability.runs import KEY_ENV, ROOT, SUB, marker, repl, root_turn, sim_models
from tests.reliability.stack import AppStack, Viewer, alive, descendants
from worker.simulated import SimulatedProvider

pytestmark = pytest.mark.slow

ROUNDS = 12


def responder(request) -> str:
    if request.model == "gpt-4o-mini":
        return "fine"
    if marker(request) == "CASE-slow":
        return repl("for r in range(200):\n    llm_query(f'slow {r}')")
    code = f"for r in range({ROUNDS}):\n    print(r, llm_query(f'round {{r}}'))"
    return [repl(code), "FINAL(done)"][min(root_turn(request), 1)]


def worker_pids(web_pid: int) -> list[int]:
    found = []
    for pid in descendants(web_pid):
        try:
            if b"embedded_worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            pass
    return found


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return value


def test_the_worker_runs_in_a_supervised_child_process_and_events_stream_live(tmp_path):
    with SimulatedProvider(responder=responder, latency_s=0.3) as provider:
        env = {"RLMWEB_MODELS_JSON": json.dumps(sim_models(provider.base_url)[1:]), KEY_ENV: "sk-sim"}
        with AppStack(tmp_path / "app", extra_env=env, worker_concurrency=2) as app:
            worker = wait_for(lambda: worker_pids(app.web.pid), 30, "serve spawned no worker process")
            assert len(worker) == 1 and worker[0] != app.web.pid
            who = app.account("live")
            doc = app.upload(who, "doc.txt", "The secret code is PLUM-42.\n" * 100)

            run = app.ask(who, question="CASE-live", documents=[doc], root_model=ROOT, sub_model=SUB)
            viewer = asyncio.run(Viewer(app.base_url, run["id"], who).follow(timeout=60))
            recorded = [e["seq"] for e in app.events(who, run["id"])]
            assert app.run(who, run["id"])["status"] == "succeeded"
            assert viewer.seqs == recorded and viewer.duplicates == viewer.gaps == 0
            # Sub-calls of 0.3 s for ~4 s: through the relay each event arrives within moments; the
            # database catch-up alone (every 3 s) would put the median near 1.5 s.
            assert statistics.median(viewer.latencies) < 1.0, statistics.median(viewer.latencies)

            # A cancel is a database flag the worker process polls.
            slow = app.ask(who, question="CASE-slow", documents=[doc], root_model=ROOT, sub_model=SUB)
            wait_for(lambda: app.run(who, slow["id"])["status"] == "running", 30, "the run never started")
            cancelled = app.http.post(f"/api/runs/{slow['id']}/cancel/", headers=who.headers)
            assert cancelled.status_code in (200, 202), cancelled.text
            assert app.wait_finished(who, [slow["id"]], timeout=60)[slow["id"]]["status"] == "cancelled"

            # A worker that dies is restarted; the next run succeeds.
            os.kill(worker[0], signal.SIGKILL)
            restarted = wait_for(lambda: [p for p in worker_pids(app.web.pid) if p != worker[0]], 30,
                                 "the worker process was not restarted")
            again = app.ask(who, question="CASE-again", documents=[doc], root_model=ROOT, sub_model=SUB)
            assert app.wait_finished(who, [again["id"]], timeout=90)[again["id"]]["status"] == "succeeded"

            # Stopped as a terminal or a service manager stops it (SIGTERM to the process group; serve
            # then signals its child again, and its supervising thread's exit a third time): both go.
            app.web.signal_group(signal.SIGTERM)
            wait_for(lambda: not alive(restarted[0]) and not app.web.alive(), 40, "serve or its worker did not stop")


def test_a_worker_whose_serve_died_while_it_started_exits_instead_of_working_on(tmp_path):
    """The child learns its parent from `serve` (not from getppid() once started, which for an
    orphan is pid 1): spawned with a parent that is not its parent, it exits without starting any
    worker, so no orphan keeps taking runs from the queue."""
    import socket
    import subprocess
    import sys

    from rlmweb.event_relay import PARENT_PID_ENV, RELAY_FD_ENV

    root = Path(__file__).resolve().parents[2]
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # alive, not its parent
    mine, theirs = socket.socketpair()
    try:
        env = {**os.environ, "RLMWEB_DATA_DIR": str(tmp_path / "data"), RELAY_FD_ENV: str(theirs.fileno()),
               PARENT_PID_ENV: str(stand_in.pid)}
        done = subprocess.run([sys.executable, str(root / "manage.py"), "embedded_worker"], env=env, cwd=root,
                              pass_fds=(theirs.fileno(),), capture_output=True, text=True, timeout=120)
    finally:
        stand_in.kill()
        stand_in.wait()
        mine.close()
        theirs.close()
    assert done.returncode == 0, done.stderr
    assert "Embedded Celery workers running" not in done.stdout
    assert "Embedded Celery worker" not in done.stderr
