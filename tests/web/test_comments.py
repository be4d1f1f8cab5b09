"""Comments on runs, cells and nodes: the team reads them, members and above write, authors and
admins delete; other teams and share-link holders see nothing."""

import pytest
from django.urls import reverse

from apps.comments.models import Comment
from apps.sharing import services as sharing
from apps.teams.models import Membership, Role
from tests.conftest import make_user
from tests.web.runs_factories import make_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(team, user):
    return make_run(team, user)


@pytest.fixture
def people(team):
    out = {}
    for role in (Role.ADMIN, Role.MEMBER, Role.VIEWER):
        out[role] = make_user(f"u-{role}")
        Membership.objects.create(team=team, user=out[role], role=role)
    return out


def post(client, run, **body):
    return client.post(reverse("api_run_comments", args=[run.pk]), body, content_type="application/json")


def test_member_comments_on_run_cell_and_node_and_team_reads_them(client, run, people):
    client.force_login(people[Role.MEMBER])
    assert post(client, run, body="Why this slice?", target_kind="cell", target_id="c3").status_code == 201
    assert post(client, run, body="Good call", target_kind="node", target_id="n17").status_code == 201
    assert post(client, run, body="Overall fine").status_code == 201
    client.force_login(people[Role.VIEWER])
    body = client.get(reverse("api_run_comments", args=[run.pk])).json()
    assert body["can_comment"] is False
    assert [(c["target_kind"], c["target_id"], c["author"]) for c in body["comments"]] == [
        ("cell", "c3", "u-member"), ("node", "n17", "u-member"), ("run", "", "u-member")]
    assert "email" not in str(body) and "@example.com" not in str(body)


def test_viewer_cannot_comment_and_other_team_gets_404(client, run, people, other_user):
    client.force_login(people[Role.VIEWER])
    assert post(client, run, body="hi").status_code == 403
    client.force_login(other_user)
    assert post(client, run, body="hi").status_code == 404
    assert client.get(reverse("api_run_comments", args=[run.pk])).status_code == 404
    client.logout()
    assert client.get(reverse("api_run_comments", args=[run.pk])).status_code == 401
    assert not Comment.objects.exists()


@pytest.mark.parametrize("body", [
    {"body": ""}, {"body": "x" * 5001}, {"body": "x", "target_kind": "cell"},
    {"body": "x", "target_kind": "cell", "target_id": "<script>"}, {"body": "x", "target_kind": "run", "target_id": "c1"},
    {"body": "x", "target_kind": "doc", "target_id": "d1"}, {"body": "x", "extra": 1}, {"body": 5},
])
def test_invalid_comments_are_400(client, run, user, body):
    client.force_login(user)
    assert post(client, run, **body).status_code == 400


def test_author_edits_and_deletes_admin_deletes_others_cannot(client, run, people):
    client.force_login(people[Role.MEMBER])
    first = post(client, run, body="typo").json()
    second = post(client, run, body="second").json()
    url = reverse("api_comment", args=[first["id"]])
    assert client.patch(url, {"body": "fixed"}, content_type="application/json").json()["body"] == "fixed"

    other_member = make_user("meg2")
    Membership.objects.create(team=run.team, user=other_member, role=Role.MEMBER)
    client.force_login(other_member)
    assert client.delete(url).status_code == 403
    assert client.patch(url, {"body": "mine now"}, content_type="application/json").status_code == 403

    client.force_login(people[Role.ADMIN])
    assert client.delete(url).status_code == 204
    assert client.patch(reverse("api_comment", args=[second["id"]]), {"body": "x"},
                        content_type="application/json").status_code == 403  # admins delete, not edit
    client.force_login(people[Role.MEMBER])
    assert client.delete(reverse("api_comment", args=[second["id"]])).status_code == 204
    assert client.get(reverse("api_run_comments", args=[run.pk])).json()["comments"] == []
    assert Comment.objects.filter(deleted_at__isnull=False).count() == 2  # soft


def test_session_post_needs_csrf_token_api_does_not(run, user):
    from django.test import Client

    from apps.accounts.models import ApiToken

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert post(strict, run, body="no csrf").status_code == 403
    _, raw = ApiToken.issue(user)
    response = Client(enforce_csrf_checks=True).post(
        reverse("api_run_comments", args=[run.pk]), {"body": "by token"}, content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {raw}")
    assert response.status_code == 201


def test_share_link_pages_show_no_comments(client, run, user):
    post_client = client
    post_client.force_login(user)
    post(post_client, run, body="internal remark about the run")
    _, token = sharing.share_create(user, run)
    client.logout()
    assert "internal remark" not in client.get(reverse("share_page", args=[token])).content.decode()
    assert "internal remark" not in client.get(reverse("share_events", args=[token])).content.decode()
