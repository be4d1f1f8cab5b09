"""A run websocket re-checks its reader's access while it is open, not only at connect.

A member connected to a run's stream who then loses access (removed from the team, leaves it, is
deactivated, or the run is deleted) is closed with 4404 — the code an outsider gets for a run they
cannot read and for one that does not exist — at the next check, and gets no event after it. The
check interval (`ACCESS_RECHECK_S`, 10 s) is shortened here; the stream goes through the real ASGI
stack (origin check, session cookie, AuthMiddlewareStack). The outsider's codes at connect are in
test_consumer_runs.test_refusals_have_clear_close_codes and the permission matrix.
"""

import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from apps.runs import consumers
from apps.runs.models import Run, RunStatus
from apps.teams import services as teams
from apps.teams.models import Membership, Role
from tests.web.runs_factories import make_document, make_events, make_run
from tests.web.test_consumer_runs import TIMEOUT, Client, close_code, session_communicator, write

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("data_dir")]

RECHECK_S = 0.3


@pytest.fixture
def run(team, user):
    return make_run(team, user, [make_document(team)], status=RunStatus.RUNNING)


@pytest.fixture(autouse=True)
def short_recheck(monkeypatch):
    monkeypatch.setattr(consumers, "ACCESS_RECHECK_S", RECHECK_S)


def revoke(how: str, run_: Run, owner, reader, membership) -> None:
    if how == "removed":
        teams.member_remove(owner, membership)
    elif how == "left":
        teams.member_remove(reader, membership)
    elif how == "deactivated":
        User.objects.filter(pk=reader.pk).update(is_active=False)
    else:
        Run.objects.filter(pk=run_.pk).delete()


@pytest.mark.parametrize("how", ["removed", "left", "deactivated", "run_deleted"])
def test_a_reader_who_loses_access_is_closed_at_the_next_check(client, run, user, other_user, how):
    membership = Membership.objects.create(team=run.team, user=other_user, role=Role.MEMBER)
    client.force_login(other_user)

    async def scenario():
        reader = Client(session_communicator(client, run.pk))
        await reader.connect()
        await reader.read_until_replayed()
        await write(run.pk, make_events(1, 2))
        await reader.read_until_seq(2)
        # Several checks pass while the reader is still a member: the socket stays open.
        assert await reader.comm.receive_nothing(RECHECK_S * 3)

        await database_sync_to_async(revoke)(how, run, user, other_user, membership)
        revoked_at = time.monotonic()
        closed = await reader.comm.receive_output(TIMEOUT)
        elapsed = time.monotonic() - revoked_at
        assert closed == {"type": "websocket.close", "code": 4404}
        assert elapsed < RECHECK_S + 2.0, elapsed  # the next check, not the default 10 s

        if how != "run_deleted":  # the run still streams to others; nothing more reaches this socket
            await write(run.pk, make_events(3, 4))
            await reader.comm.send_json_to({"type": "resume", "since": 0})
            assert await reader.comm.receive_nothing(RECHECK_S * 2)
        assert reader.seqs == [1, 2]
        await reader.comm.disconnect()

    async_to_sync(scenario)()
    if how in ("removed", "left"):  # reconnecting: the code an outsider gets
        assert close_code(session_communicator(client, run.pk)) == 4404


def test_a_member_whose_role_changes_but_may_still_read_stays_connected(client, run, user, other_user):
    membership = Membership.objects.create(team=run.team, user=other_user, role=Role.MEMBER)
    client.force_login(other_user)

    async def scenario():
        reader = Client(session_communicator(client, run.pk))
        await reader.connect()
        await reader.read_until_replayed()
        await database_sync_to_async(teams.member_set_role)(user, membership, Role.VIEWER)
        assert await reader.comm.receive_nothing(RECHECK_S * 3)
        await write(run.pk, make_events(1, 3))
        await reader.read_until_seq(3)
        assert reader.seqs == [1, 2, 3]
        await reader.comm.disconnect()

    async_to_sync(scenario)()

