"""Feedback on a run's answer: the run page's form (with and without script), the JSON API."""

import pytest
from django.contrib.messages import get_messages
from django.template import engines
from django.test import Client, RequestFactory

from apps.accounts.models import ApiToken
from apps.review.models import Feedback, Rating
from apps.teams.models import Membership, Role
from tests.review.builders import run_from
from tests.review.trajectories import succeeded

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def run(team, user):
    return run_from(team, succeeded(), user=user, question="What is the secret code?")


@pytest.fixture
def auth(user):
    return {"Authorization": f"Token {ApiToken.issue(user)[1]}"}


def page_url(run):
    return f"/review/runs/{run.pk}/feedback/"


def api_url(run):
    return f"/api/review/runs/{run.pk}/feedback/"


# the run page's form ------------------------------------------------------------------------------

def test_form_thumbs_down_with_a_comment_redirects_back_to_the_run(client, user, run):
    client.force_login(user)
    response = client.post(page_url(run), {"rating": "down", "comment": "  Wrong code.  "})
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    feedback = Feedback.objects.get()
    assert (feedback.user, feedback.run, feedback.rating, feedback.comment) == (user, run, Rating.DOWN, "Wrong code.")


def test_sending_again_updates_the_one_feedback_of_a_user(client, user, run):
    client.force_login(user)
    client.post(page_url(run), {"rating": "down", "comment": "bad"})
    client.post(page_url(run), {"rating": "up", "comment": ""})
    assert list(Feedback.objects.values_list("rating", "comment")) == [(Rating.UP, "")]


def test_form_redirects_to_a_local_next_only(client, user, run):
    client.force_login(user)
    assert client.post(page_url(run), {"rating": "up", "next": "/runs/?x=1"})["Location"] == "/runs/?x=1"
    assert client.post(page_url(run), {"rating": "up", "next": "https://evil.example/"})["Location"] == \
        f"/runs/{run.pk}/"


def test_form_with_a_bad_rating_saves_nothing(client, user, run):
    client.force_login(user)
    response = client.post(page_url(run), {"rating": "meh"})
    assert response.status_code == 302 and not Feedback.objects.exists()
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Feedback not saved: rating must be 'up' or "
                                                                      "'down'."]


def test_json_from_the_page_script_answers_counts(client, user, run):
    client.force_login(user)
    response = client.post(page_url(run), {"rating": "up", "comment": "spot on"}, content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"run": str(run.pk), "counts": {"up": 1, "down": 0},
                               "mine": {"rating": "up", "comment": "spot on"}}


def test_anonymous_is_sent_to_login(client, run):
    response = client.post(page_url(run), {"rating": "up"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not Feedback.objects.exists()


def test_other_team_gets_404(client, other_user, run):
    client.force_login(other_user)
    assert client.post(page_url(run), {"rating": "down"}).status_code == 404
    assert client.post(page_url(run), {"rating": "down"}, content_type="application/json").status_code == 404
    assert not Feedback.objects.exists()


def test_a_viewer_of_the_team_may_give_feedback(client, other_user, run):
    Membership.objects.create(team=run.team, user=other_user, role=Role.VIEWER)
    client.force_login(other_user)
    assert client.post(page_url(run), {"rating": "down"}).status_code == 302
    assert Feedback.objects.get().user == other_user


def test_csrf_is_enforced_for_the_session_form(user, run):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(page_url(run), {"rating": "up"}).status_code == 403


def test_get_is_not_allowed(client, user, run):
    client.force_login(user)
    assert client.get(page_url(run)).status_code == 405


# the include template -------------------------------------------------------------------------------

def test_feedback_include_renders_counts_and_the_viewers_choice(user, other_user, run):
    Membership.objects.create(team=run.team, user=other_user, role=Role.MEMBER)
    Feedback.objects.create(run=run, user=other_user, rating=Rating.DOWN)
    Feedback.objects.create(run=run, user=user, rating=Rating.UP, comment="good <b>")
    request = RequestFactory().get(f"/runs/{run.pk}/")
    request.user, request.team = user, run.team
    html = engines["django"].from_string('{% include "review/_feedback.html" %}').render({"run": run, "user": user},
                                                                                          request)
    assert f'action="/review/runs/{run.pk}/feedback/"' in html
    assert 'data-count="up">1<' in html and 'data-count="down">1<' in html
    assert "good &lt;b&gt;" in html  # the comment is escaped
    assert 'value="up" class="review-thumb is-mine"' in html
    assert "csrfmiddlewaretoken" in html and "review/feedback.js" in html


# the API ------------------------------------------------------------------------------------------

def test_api_post_with_a_token(client, auth, user, run):
    response = client.post(api_url(run), {"rating": "down", "comment": "hallucinated"},
                           content_type="application/json", headers=auth)
    assert response.status_code == 200
    assert response.json()["mine"] == {"rating": "down", "comment": "hallucinated"}
    assert Feedback.objects.get().user == user


def test_api_get_counts(client, auth, run, other_user):
    Membership.objects.create(team=run.team, user=other_user, role=Role.MEMBER)
    Feedback.objects.create(run=run, user=other_user, rating=Rating.DOWN)
    body = client.get(api_url(run), headers=auth).json()
    assert body["counts"] == {"up": 0, "down": 1} and body["mine"] is None


def test_api_accepts_numeric_ratings(client, auth, run):
    client.post(api_url(run), {"rating": -1}, content_type="application/json", headers=auth)
    assert Feedback.objects.get().rating == Rating.DOWN


def test_api_bad_rating_is_400(client, auth, run):
    response = client.post(api_url(run), {"rating": "sideways"}, content_type="application/json", headers=auth)
    assert response.status_code == 400 and "rating" in response.json()["fields"]
    response = client.post(api_url(run), "[1]", content_type="application/json", headers=auth)
    assert response.status_code == 400


def test_api_anonymous_is_401(client, run):
    assert client.post(api_url(run), {"rating": "up"}, content_type="application/json").status_code == 401


def test_api_other_team_and_unknown_run_are_404(client, other_user, run):
    headers = {"Authorization": f"Token {ApiToken.issue(other_user)[1]}"}
    assert client.post(api_url(run), {"rating": "up"}, content_type="application/json",
                       headers=headers).status_code == 404
    assert client.get("/api/review/runs/00000000-0000-0000-0000-000000000000/feedback/",
                      headers=headers).status_code == 404
    assert not Feedback.objects.exists()
