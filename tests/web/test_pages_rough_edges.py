"""The rough edges a newcomer hit: one money and size format, pages a user can land on (a reload, a
bookmark) never answer a blank 405, a cancel from the run page leaves no stale message behind, a
queued run says where it stands, and creating a team says it became the current one."""

import pytest
from django.template import Context, Template
from django.utils.html import escape

from apps.runs import formats
from apps.runs.models import RunStatus
from tests.conftest import make_user
from tests.web.runs_factories import clean_rate_limits, make_document, make_run  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_rate_limits", "data_dir")]


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


@pytest.mark.parametrize(("value", "shown"), [
    (None, "unknown"), (0, "$0"), (0.00004, "<$0.0001"), (0.03291, "$0.0329"), (0.5, "$0.5000"),
    (1, "$1.00"), (1234.567, "$1,234.57"),
])
def test_money_reads_the_same_everywhere(value, shown):
    assert formats.usd(value) == shown
    assert Template("{% load formats %}{{ v|usd }}").render(Context({"v": value})) == escape(shown)


@pytest.mark.parametrize(("n", "shown"), [
    (0, "0 bytes"), (999, "999 bytes"), (1000, "1.0 KB"), (1_500_000, "1.5 MB"), (999_999, "1.0 MB"),
    (2_000_000_000, "2.0 GB"),
])
def test_sizes_are_decimal_units(n, shown):
    assert formats.size(n) == shown


def test_the_runs_pages_use_thousands_separators_and_the_money_format(signed_in, team, user):
    doc = make_document(team, user=user, text="word " * 3000)
    run = make_run(team, user, [doc], status=RunStatus.SUCCEEDED, cost_usd=1234.5, prompt_tokens=12_000,
                   completion_tokens=345, iterations=3, subcalls=1200)
    html = signed_in.get(f"/runs/{run.pk}/").content.decode()
    assert "1,200 sub-calls · 12,345 tokens · $1,234.50" in html
    assert "(15,000 chars)" in html
    assert "$1,234.50" in signed_in.get("/runs/").content.decode()
    assert "<td>15,000</td>" in signed_in.get("/runs/new/").content.decode()
    assert "15.0 KB" in signed_in.get("/documents/").content.decode()


def test_cancelling_from_the_run_page_leaves_no_message_for_the_next_page(signed_in, team, user):
    running = make_run(team, user, status=RunStatus.RUNNING)
    response = signed_in.post(f"/runs/{running.pk}/cancel/", HTTP_ACCEPT="application/json")
    assert response.json()["message"].startswith("Cancelling")
    runs_page = signed_in.get("/runs/").content.decode()
    assert "Cancelling: the worker stops" not in runs_page
    # The plain form (no script) still reports through the message on the page it lands on.
    other = make_run(team, user, status=RunStatus.RUNNING)
    followed = signed_in.post(f"/runs/{other.pk}/cancel/", {"next": "/runs/"}, follow=True)
    assert "Cancelling: the worker stops" in followed.content.decode()


def test_a_queued_run_says_where_it_stands_in_the_queue(signed_in, team, user):
    first = make_run(team, user)
    second = make_run(team, user)
    make_run(team, user, status=RunStatus.RUNNING)
    assert "next in line for a worker (1 run running now)" in signed_in.get(f"/runs/{first.pk}/").content.decode()
    page = signed_in.get(f"/runs/{second.pk}/").content.decode()
    assert "position 2 in line for a worker, 1 run ahead (1 run running now)" in page
    finished = make_run(team, user, status=RunStatus.SUCCEEDED)
    assert 'data-queue-note=""' in signed_in.get(f"/runs/{finished.pk}/").content.decode()


def test_reloading_post_only_pages_redirects_instead_of_a_blank_405(client, team, user):
    staff = make_user("staff", is_staff=True)
    client.force_login(staff)
    response = client.get("/review/import/")
    assert response.status_code == 302 and response["Location"] == "/review/"
    client.force_login(user)
    response = client.get(f"/teams/{team.pk}/invites/")
    assert response.status_code == 302 and response["Location"] == f"/teams/{team.pk}/"


def test_creating_a_team_says_it_is_now_current_with_a_way_back(signed_in, team):
    response = signed_in.post("/teams/", {"name": "Research"}, follow=True)
    html = response.content.decode()
    assert "Team “Research” created; you are its owner, and it is now your current team." in html
    assert f'action="/teams/{team.pk}/switch/"' in html and f"Switch back to “{escape(team.name)}”" in html
    token = response.context["csrf_token"]
    back = signed_in.post(f"/teams/{team.pk}/switch/", {"next": "/teams/", "csrfmiddlewaretoken": token})
    assert back.status_code == 302
    assert signed_in.session["team_id"] == team.pk
