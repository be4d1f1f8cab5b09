"""Redis (Celery broker, channel layer and cache of the production profile) restarted, empty, in
the middle of a run. The run carries on in its worker (events go to PostgreSQL first; publishing is
best-effort) and finishes cleanly; websocket viewers whose socket drops reconnect with their last
seq, and every viewer ends with each event exactly once. A run asked after the restart runs too.
"""

import asyncio
import json

import pytest

from tests.reliability.runs import KEY_ENV, ROOT, SUB, check_recorded_whole, repl, root_turn, sim_models
from tests.reliability.stack import AppStack, RedisServer, Viewer
from worker.simulated import SimulatedProvider

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LOOP = repl('for i in range(40):\n    print(llm_query(f"part {i}"))')


def responder(request) -> str:
    if request.model == "gpt-4o-mini":
        return "ok"
    return [LOOP, "FINAL(done)"][min(root_turn(request), 1)]


def test_a_redis_restart_mid_run_loses_no_event_for_any_viewer(tmp_path):
    from tests.helpers import test_database_url

    with SimulatedProvider(responder=responder, latency_s=0.25) as provider, RedisServer(tmp_path) as redis:
        env = {"DATABASE_URL": test_database_url(), "REDIS_URL": redis.url, KEY_ENV: "sk-sim",
               "RLMWEB_MODELS_JSON": json.dumps(sim_models(provider.base_url)[1:])}
        with AppStack(tmp_path / "app", extra_env=env, production=True, worker_concurrency=2,
                      migrate=False) as app:
            alice = app.account("alice")
            doc = app.upload(alice, "notes.txt", "The secret code is PLUM-42.\n" * 50)
            run_id = app.ask(alice, question="What is the code?", documents=[doc], root_model=ROOT,
                             sub_model=SUB)["id"]
            viewers = [Viewer(app.base_url, run_id, alice) for _ in range(3)]

            async def scenario():
                tasks = [asyncio.create_task(v.follow(timeout=90, retry_s=0.3)) for v in viewers]
                while min(v.last_seq for v in viewers) < 15:
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(redis.stop)
                await asyncio.sleep(2)  # the run goes on while Redis is down
                await asyncio.to_thread(redis.start)
                await asyncio.gather(*tasks)

            asyncio.run(scenario())
            summary = app.wait_finished(alice, [run_id], timeout=60)[run_id]
            events = app.events(alice, run_id)

            after = app.ask(alice, question="After the restart?", documents=[doc], root_model=ROOT, sub_model=SUB)
            assert app.wait_finished(alice, [after["id"]], timeout=90)[after["id"]]["status"] in ("succeeded",
                                                                                                   "failed")

    assert summary["status"] == "succeeded", summary
    check_recorded_whole(summary, events)
    for viewer in viewers:
        assert viewer.seqs == list(range(1, len(events) + 1))
        assert (viewer.duplicates, viewer.gaps) == (0, 0)
    print("reconnects per viewer:", [v.reconnects for v in viewers])
