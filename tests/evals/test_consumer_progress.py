"""The live progress socket `ws/evals/<id>/`: a snapshot at connect, a fresh one when a case is
scored, 4401/4404 for strangers; through the real ASGI stack (origin, session cookie)."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from apps.evals import services
from tests.conftest import make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("data_dir")]

TIMEOUT = 10


def communicator(client, evaluation_id) -> WebsocketCommunicator:
    from rlmweb.asgi import application

    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    cookie = client.cookies.get(settings.SESSION_COOKIE_NAME)
    if cookie is not None:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie.value}".encode()))
    return WebsocketCommunicator(application, f"/ws/evals/{evaluation_id}/", headers=headers)


@pytest.fixture
def evaluation(user, team):
    return services.evaluation_create(user, team, "niah", ["offline/heuristic"], ["rlm"], [10_000], 2)


def run_one_case(evaluation_id) -> None:
    services.case_run(services.case_claim_next(evaluation_id))


def test_a_member_sees_progress_as_cases_are_scored(client, user, evaluation):
    client.force_login(user)

    async def scenario():
        comm = communicator(client, evaluation.pk)
        connected, _ = await comm.connect(timeout=TIMEOUT)
        assert connected
        first = await comm.receive_json_from(TIMEOUT)
        assert first["type"] == "progress" and (first["done"], first["total"]) == (0, 2)
        assert first["status"] == "running" and first["matrix"][0]["accuracy"] is None
        await database_sync_to_async(run_one_case)(evaluation.pk)
        while (frame := await comm.receive_json_from(TIMEOUT))["done"] == 0:
            pass
        assert frame["done"] == 1 and frame["matrix"][0]["accuracy"] == 1.0 and frame["matrix"][0]["cases"] == 1
        await comm.send_to(text_data='{"type": "resume"}')
        while (frame := await comm.receive_json_from(TIMEOUT))["type"] == "progress":
            pass  # snapshots already on their way
        assert frame["type"] == "error"
        assert (await comm.receive_output(TIMEOUT)) == {"type": "websocket.close", "code": 4400}

    async_to_sync(scenario)()


@pytest.mark.parametrize(("who", "code"), [("anonymous", 4401), ("outsider", 4404)])
def test_strangers_get_nothing(client, evaluation, who, code):
    if who == "outsider":
        client.force_login(make_user("mallory"))

    async def scenario():
        comm = communicator(client, evaluation.pk)
        connected, _ = await comm.connect(timeout=TIMEOUT)
        assert connected  # accepted first, so the browser sees the code
        assert await comm.receive_output(TIMEOUT) == {"type": "websocket.close", "code": code}

    async_to_sync(scenario)()


def test_results_page_loads_the_live_script_only_while_running(client, user, evaluation):
    client.force_login(user)
    page = client.get(f"/evals/{evaluation.pk}/").content.decode()
    assert 'src="/static/evals/progress.js"' in page and f'data-ws="/ws/evals/{evaluation.pk}/"' in page
    assert "<noscript><meta http-equiv=\"refresh\"" in page
    services.evaluation_cancel(user, evaluation)
    page = client.get(f"/evals/{evaluation.pk}/").content.decode()
    assert "evals/progress.js" not in page and "data-ws" not in page
