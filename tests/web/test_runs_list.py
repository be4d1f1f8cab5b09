"""The runs list: sortable columns (with model, tokens and sub-calls), and filters by status, mode,
model and who asked, which keep the sort."""

import re

import pytest

from apps.runs.models import RunStatus
from tests.conftest import make_user
from tests.web.runs_factories import clean_rate_limits, make_run  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_rate_limits", "data_dir")]


@pytest.fixture
def runs(team, user):
    bob = make_user("bob")
    team.memberships.create(user=bob, role="member")
    return {
        "cheap": make_run(team, user, status=RunStatus.SUCCEEDED, question="cheap one", cost_usd=0.001,
                          prompt_tokens=100, subcalls=2, root_model="openai/gpt-5-mini"),
        "dear": make_run(team, user, status=RunStatus.SUCCEEDED, question="dear one", cost_usd=2.5,
                         prompt_tokens=90_000, completion_tokens=5_000, subcalls=300, root_model="openai/gpt-5"),
        "bobs": make_run(team, bob, status=RunStatus.FAILED, question="bob asked", cost_usd=0.2,
                         prompt_tokens=5_000, subcalls=40, mode="direct"),
    }


def questions(html: str) -> list[str]:
    return re.findall(r'<td class="run-question"><a href="[^"]+">([^<]+)</a>', html)


def test_sortable_columns(client, user, runs):
    client.force_login(user)
    assert questions(client.get("/runs/").content.decode()) == ["bob asked", "dear one", "cheap one"]
    html = client.get("/runs/?sort=-cost").content.decode()
    assert questions(html) == ["dear one", "bob asked", "cheap one"]
    assert '<th aria-sort="descending" data-sort="cost"><a href="?sort=cost">' in html
    assert questions(client.get("/runs/?sort=cost").content.decode()) == ["cheap one", "bob asked", "dear one"]
    assert questions(client.get("/runs/?sort=-tokens").content.decode())[0] == "dear one"
    assert questions(client.get("/runs/?sort=subcalls").content.decode())[0] == "cheap one"
    assert questions(client.get("/runs/?sort=nonsense").content.decode()) == ["bob asked", "dear one", "cheap one"]
    # Model, tokens and sub-calls are columns.
    assert '<td class="num">95,000</td>' in html and '<td class="num">300</td>' in html and "openai/gpt-5" in html


def test_filters_by_model_and_who_asked_keep_the_sort(client, user, runs):
    client.force_login(user)
    html = client.get("/runs/?user=bob").content.decode()
    assert questions(html) == ["bob asked"]
    assert '<option value="bob" selected>bob</option>' in html
    assert questions(client.get("/runs/?model=openai/gpt-5").content.decode()) == ["dear one"]
    assert questions(client.get("/runs/?mode=direct").content.decode()) == ["bob asked"]
    html = client.get("/runs/?status=succeeded&sort=cost").content.decode()
    assert questions(html) == ["cheap one", "dear one"]
    assert '<input type="hidden" name="sort" value="cost">' in html
    assert 'href="?status=succeeded&amp;sort=-tokens"' in html
    assert "No runs match these filters." in client.get("/runs/?user=nobody").content.decode()
