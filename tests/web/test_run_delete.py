"""Deleting a run: who may (the person who asked, or the team's admins and owners — `can_change`),
not while it is queued or running (409: cancel first), and what goes with it (events, document
links, comments, feedback, review, share links) and what stays (documents, other runs, re-runs)."""

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client

from apps.accounts.models import ApiToken
from apps.comments.models import Comment
from apps.documents.models import Document
from apps.review.models import Feedback, Outcome, RunReview
from apps.runs import services
from apps.runs.models import Run, RunDocument, RunEvent, RunStatus
from apps.runs.sink import persist_events
from apps.sharing import services as sharing
from apps.sharing.models import ShareLink
from apps.teams import services as teams
from apps.teams.models import Membership, Role
from tests.conftest import make_user
from tests.web.runs_factories import clean_rate_limits, make_document, make_events, make_run  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("data_dir", "clean_rate_limits", "fast_passwords")]


@pytest.fixture
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class World:
    """The team "Legal" with one user per role, a member's finished run with everything attached,
    another finished run of the owner's, and a stranger in a team of their own."""

    def __init__(self) -> None:
        self.users = {role: make_user(role) for role in ("viewer", "member", "admin", "owner", "other_member")}
        self.outsider = make_user("outsider")
        self.team = teams.team_create(self.users["owner"], "Legal")
        for role in ("viewer", "member", "admin"):
            Membership.objects.create(team=self.team, user=self.users[role], role=role)
        Membership.objects.create(team=self.team, user=self.users["other_member"], role=Role.MEMBER)
        self.doc = make_document(self.team, user=self.users["member"])
        self.run = self.finished_run(self.users["member"])
        self.owner_run = self.finished_run(self.users["owner"])
        self.rerun = self.finished_run(self.users["member"], rerun_of=self.run)

    def finished_run(self, user, **fields) -> Run:
        run = make_run(self.team, user=user, documents=[self.doc], status=RunStatus.SUCCEEDED, **fields)
        persist_events(run.pk, make_events(1, 4, final=True))
        Comment.objects.create(run=run, author=user, body="Looks right.")
        Feedback.objects.create(run=run, user=user, rating=1)
        RunReview.objects.create(run=run, outcome=Outcome.SUCCEEDED)
        sharing.share_create(user, run, show_document_text=True)
        return run

    def counts(self, run: Run) -> dict:
        return {
            "events": RunEvent.objects.filter(run_id=run.pk).count(),
            "documents": RunDocument.objects.filter(run_id=run.pk).count(),
            "comments": Comment.objects.filter(run_id=run.pk).count(),
            "feedback": Feedback.objects.filter(run_id=run.pk).count(),
            "reviews": RunReview.objects.filter(run_id=run.pk).count(),
            "share_links": ShareLink.objects.filter(run_id=run.pk).count(),
        }


@pytest.fixture
def world() -> World:
    return World()


def api_client(user) -> Client:
    return Client(enforce_csrf_checks=True, headers={"Authorization": f"Token {ApiToken.issue(user)[1]}"})


def page_client(user, team=None) -> Client:
    client = Client()
    client.force_login(user)
    if team is not None:
        session = client.session
        session["team_id"] = team.pk
        session.save()
    return client


FULL = {"events": 4, "documents": 1, "comments": 1, "feedback": 1, "reviews": 1, "share_links": 1}
NONE = dict.fromkeys(FULL, 0)


def test_deleting_removes_the_run_and_what_belongs_to_it_and_nothing_else(world):
    assert world.counts(world.run) == FULL
    response = api_client(world.users["member"]).delete(f"/api/runs/{world.run.pk}/")
    assert response.status_code == 200 and response.json() == {"deleted": True, "id": str(world.run.pk)}
    assert not Run.objects.filter(pk=world.run.pk).exists()
    assert world.counts(world.run) == NONE
    # The documents stay, and so does everything of the other runs.
    assert Document.objects.filter(pk=world.doc.pk).exists() and world.doc.text_path.is_file()
    assert world.counts(world.owner_run) == FULL and world.counts(world.rerun) == FULL
    world.rerun.refresh_from_db()
    assert world.rerun.rerun_of_id is None  # a re-run of the deleted run stays, no longer pointing at it
    assert Run.objects.count() == 2 and Comment.objects.count() == 2 and ShareLink.objects.count() == 2


@pytest.mark.parametrize(("who", "status"), [
    ("member", 200), ("admin", 200), ("owner", 200),  # the creator, and the team's admins and owners
    ("other_member", 403), ("viewer", 403), ("outsider", 404),
])
def test_who_may_delete_a_members_run_through_the_api(world, who, status):
    user = world.outsider if who == "outsider" else world.users[who]
    response = api_client(user).delete(f"/api/runs/{world.run.pk}/")
    assert response.status_code == status, response.json()
    assert Run.objects.filter(pk=world.run.pk).exists() == (status != 200)
    if status == 403:
        assert response.json() == {"error": "Only the person who asked, or a team admin, can delete this run."}
    if status == 404:
        assert response.json() == {"error": "No such run."}
    if status != 200:
        assert world.counts(world.run) == FULL


@pytest.mark.parametrize(("who", "status"), [("member", 403), ("viewer", 403), ("admin", 200), ("owner", 200)])
def test_a_member_may_not_delete_someone_elses_run(world, who, status):
    response = api_client(world.users[who]).delete(f"/api/runs/{world.owner_run.pk}/")
    assert response.status_code == status
    assert Run.objects.filter(pk=world.owner_run.pk).exists() == (status != 200)


def test_anonymous_and_unknown_runs(world):
    assert Client().delete(f"/api/runs/{world.run.pk}/").status_code == 401
    missing = api_client(world.users["owner"]).delete("/api/runs/00000000-0000-0000-0000-000000000000/")
    assert missing.status_code == 404
    assert Run.objects.count() == 3


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RUNNING])
def test_a_queued_or_running_run_is_409_cancel_first(world, status):
    Run.objects.filter(pk=world.run.pk).update(status=status, cancel_requested=status == RunStatus.RUNNING)
    response = api_client(world.users["member"]).delete(f"/api/runs/{world.run.pk}/")
    assert response.status_code == 409
    assert response.json()["error"] == (
        f"The run is {status.label.lower()}; cancel it first, and delete it once it has stopped.")
    assert world.counts(world.run) == FULL
    Run.objects.filter(pk=world.run.pk).update(status=RunStatus.CANCELLED)  # once it has stopped
    assert api_client(world.users["member"]).delete(f"/api/runs/{world.run.pk}/").status_code == 200


def test_failed_and_cancelled_runs_can_be_deleted(world):
    for status in (RunStatus.FAILED, RunStatus.CANCELLED):
        run = world.finished_run(world.users["member"])
        Run.objects.filter(pk=run.pk).update(status=status)
        services.run_delete(world.users["member"], Run.objects.get(pk=run.pk))
        assert not Run.objects.filter(pk=run.pk).exists()


def test_the_service_checks_permissions_itself(world):
    with pytest.raises(services.RunNotFound):
        services.run_delete(world.outsider, world.run)
    with pytest.raises(PermissionDenied):
        services.run_delete(world.users["viewer"], world.run)
    Run.objects.filter(pk=world.run.pk).update(status=RunStatus.RUNNING)
    with pytest.raises(services.RunConflict):
        services.run_delete(world.users["member"], world.run)  # the stale object says succeeded: the row decides
    assert world.counts(world.run) == FULL


def test_a_deleted_runs_share_link_no_longer_opens(world):
    _, raw = sharing.share_create(world.users["member"], world.run)
    assert Client().get(f"/s/{raw}/").status_code == 200
    services.run_delete(world.users["member"], world.run)
    assert Client().get(f"/s/{raw}/").status_code == 404


# --- the pages ---------------------------------------------------------------------------------------


def test_the_page_deletes_after_the_confirm_box_is_ticked(world):
    client = page_client(world.users["member"], world.team)
    url = f"/runs/{world.run.pk}/delete/"
    response = client.post(url)
    assert response.status_code == 302 and response["Location"] == f"/runs/{world.run.pk}/#delete-run"
    assert world.counts(world.run) == FULL
    follow = client.get(f"/runs/{world.run.pk}/")
    assert "Tick the box to confirm" in follow.content.decode()
    response = client.post(url, {"confirm": "yes"})
    assert response.status_code == 302 and response["Location"] == "/runs/"
    assert not Run.objects.filter(pk=world.run.pk).exists()
    assert "its documents are kept" in client.get("/runs/").content.decode()
    assert client.get(url).status_code == 405  # POST only
    assert Document.objects.filter(pk=world.doc.pk).exists()


@pytest.mark.parametrize(("who", "status"), [("viewer", 403), ("other_member", 403), ("outsider", 404)])
def test_the_page_refuses_those_who_may_not(world, who, status):
    user = world.outsider if who == "outsider" else world.users[who]
    client = page_client(user)
    assert client.post(f"/runs/{world.run.pk}/delete/", {"confirm": "yes"}).status_code == status
    assert client.post(f"/runs/{world.run.pk}/delete/").status_code == status
    assert world.counts(world.run) == FULL
    assert Client().post(f"/runs/{world.run.pk}/delete/", {"confirm": "yes"}).status_code == 302  # to sign in
    assert Run.objects.filter(pk=world.run.pk).exists()


def test_the_page_refuses_a_running_run_with_a_message(world):
    Run.objects.filter(pk=world.run.pk).update(status=RunStatus.RUNNING)
    client = page_client(world.users["member"], world.team)
    response = client.post(f"/runs/{world.run.pk}/delete/", {"confirm": "yes"}, follow=True)
    assert "cancel it first" in response.content.decode()
    assert world.counts(world.run) == FULL


def test_the_run_page_offers_delete_to_those_who_may(world):
    url = f"/runs/{world.run.pk}/"
    html = page_client(world.users["member"], world.team).get(url).content.decode()
    assert 'id="delete-run"' in html and f'action="/runs/{world.run.pk}/delete/"' in html
    assert 'name="confirm" value="yes" required' in html
    for who in ("viewer", "other_member"):
        html = page_client(world.users[who], world.team).get(url).content.decode()
        assert 'id="delete-run"' not in html
    Run.objects.filter(pk=world.run.pk).update(status=RunStatus.RUNNING)
    html = page_client(world.users["member"], world.team).get(url).content.decode()
    assert "cancel it first" in html and f'action="/runs/{world.run.pk}/delete/"' not in html


def test_a_share_link_page_has_no_delete(world):
    _, raw = sharing.share_create(world.users["member"], world.run)
    html = Client().get(f"/s/{raw}/").content.decode()
    assert "delete-run" not in html and "/delete/" not in html


def test_the_run_list_links_delete_for_runs_one_may_delete(world):
    Run.objects.filter(pk=world.rerun.pk).update(status=RunStatus.RUNNING)
    html = page_client(world.users["member"], world.team).get("/runs/").content.decode()
    assert f'href="/runs/{world.run.pk}/#delete-run"' in html
    assert f'href="/runs/{world.owner_run.pk}/#delete-run"' not in html  # the owner's
    assert f'href="/runs/{world.rerun.pk}/#delete-run"' not in html  # still running
    html = page_client(world.users["admin"], world.team).get("/runs/").content.decode()
    assert f'href="/runs/{world.owner_run.pk}/#delete-run"' in html
    html = page_client(world.users["viewer"], world.team).get("/runs/").content.decode()
    assert "#delete-run" not in html
