"""A Celery worker SIGKILLed in the middle of a run (production profile: PostgreSQL, Redis, worker
processes). The run is not resumed: it ends failed with "worker lost" when another worker's sweep
sees its heartbeat stop (RLMWEB_WORKER_LOST_AFTER_S, 8 s here), never stays running; every event
recorded before the kill is kept exactly once and the run's totals are the sum of its events; the
REPL processes (their own session, so the group kill misses them) die with their worker.
"""

import json
import signal
import time

import pytest

from apps.runs.models import Run, RunStatus
from tests.reliability.runs import KEY_ENV, ROOT, SUB, assert_recorded_whole, repl, root_turn, sim_models
from tests.reliability.stack import AppStack, RedisServer, alive, descendants
from worker.simulated import SimulatedProvider

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SLOW_LOOP = repl('for i in range(60):\n    print(llm_query(f"part {i}"))')


def responder(request) -> str:
    if request.model == "gpt-4o-mini":
        return "ok"
    return [SLOW_LOOP, "FINAL(done)"][min(root_turn(request), 1)]


def test_a_killed_worker_leaves_a_failed_run_with_its_events_and_no_repl(tmp_path):
    from tests.helpers import test_database_url

    with SimulatedProvider(responder=responder, latency_s=0.3) as provider, RedisServer(tmp_path) as redis:
        env = {"DATABASE_URL": test_database_url(), "REDIS_URL": redis.url, KEY_ENV: "sk-sim",
               "RLMWEB_MODELS_JSON": json.dumps(sim_models(provider.base_url)[1:]),
               "RLMWEB_WORKER_LOST_AFTER_S": "8"}
        with AppStack(tmp_path / "app", extra_env=env, production=True, worker_concurrency=2,
                      migrate=False) as app:
            alice = app.account("alice")
            doc = app.upload(alice, "notes.txt", "The secret code is PLUM-42.\n" * 50)
            run_id = app.ask(alice, question="What is the code?", documents=[doc], root_model=ROOT,
                             sub_model=SUB)["id"]
            victim = app.worker_procs[0]
            deadline = time.monotonic() + 60
            while Run.objects.get(pk=run_id).last_seq < 12:  # a dozen events in: sub-calls under way
                assert time.monotonic() < deadline, "the run did not get going"
                time.sleep(0.1)
            repls = descendants(victim.pid)
            assert repls, "the run's REPL should be a process below the worker"

            victim.signal_group(signal.SIGKILL)
            victim.popen.wait()
            killed_at = time.monotonic()
            recorded = Run.objects.get(pk=run_id).last_seq
            assert Run.objects.get(pk=run_id).status == RunStatus.RUNNING

            while any(alive(pid) for pid in repls):
                assert time.monotonic() - killed_at < 5, [p for p in repls if alive(p)]
                time.sleep(0.05)

            app.start_worker(1)  # a surviving worker's sweep notices the silent heartbeat
            while (run := Run.objects.get(pk=run_id)).status == RunStatus.RUNNING:
                assert time.monotonic() - killed_at < 40, "the run stayed running"
                time.sleep(0.25)

    assert run.status == RunStatus.FAILED and run.stop_reason == "worker_lost"
    assert run.failure_reason.startswith("Worker lost")
    events = assert_recorded_whole(run)
    assert len(events) >= recorded + 1 and events[-1]["type"] == "run.finished"
    assert len(events) == recorded + 1  # nothing was written after the kill but the verdict
