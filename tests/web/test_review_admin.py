"""The review admin and staff pages: filters, search, edits, bulk actions, queue, summary, classify service."""

import datetime as dt
from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.review.models import Feedback, Label, Rating, RunReview
from apps.review.services import review_classify
from apps.runs.models import Run, RunStatus
from tests.review.builders import make_staff, review_of, run_from
from tests.review.trajectories import Trajectory, succeeded
from tests.web.runs_factories import make_run

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def staff(db):
    return make_staff()


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def costly(cost: float) -> Trajectory:
    t = succeeded()
    t.events[-1]["data"]["totals"]["cost_usd"] = cost
    return t


def lost() -> Trajectory:
    return (Trajectory().turn("```repl\nprint(1)\n```", cost=0.0).cell(stdout="1")
            .finish("failed", "worker_lost", "lost", totals=False))


def changelist(admin_client, query: str = "") -> str:
    response = admin_client.get(f"/admin/review/runreview/?{query}")
    assert response.status_code == 200
    return response.content.decode()


# the classify service -------------------------------------------------------------------------------

def test_review_classify_is_idempotent_and_keeps_reviewer_decisions(team, staff):
    run = run_from(team, succeeded())
    review = review_of(run)
    review.state, review.notes, review.assignee = "triaged", "look again", staff
    review.save()
    review.labels.add(Label.objects.create(name="keep"))
    again = review_classify(run)
    assert again.pk == review.pk and RunReview.objects.count() == 1
    assert (again.state, again.notes, again.assignee, list(again.labels.values_list("name", flat=True))) == (
        "triaged", "look again", staff, ["keep"])


def test_unfinished_runs_are_not_classified(team):
    run = make_run(team, status=RunStatus.RUNNING)
    assert review_classify(run) is None and not RunReview.objects.exists()


def test_backfill_command(team, capsys):
    finished = run_from(team, succeeded())
    RunReview.objects.all().delete()
    make_run(team, status=RunStatus.QUEUED)
    call_command("review_classify")
    assert "Classified 1 run(s)" in capsys.readouterr().out
    assert review_of(finished).outcome == "succeeded"
    call_command("review_classify")
    assert "Classified 0 run(s)" in capsys.readouterr().out
    call_command("review_classify", "--all")
    assert "Classified 1 run(s)" in capsys.readouterr().out


# admin filters and search ---------------------------------------------------------------------------

def test_admin_filters_by_outcome_model_mode_team_cost_date_and_feedback(admin_client, team, user, other_user):
    ok = run_from(team, costly(0.002), question="cheap success", root_model="openai/gpt-4o")
    dear = run_from(team, costly(2.5), question="dear success", root_model="anthropic/claude", mode="direct")
    gone = run_from(other_user.teams.first(), lost(), question="lost on another team")
    Run.objects.filter(pk=gone.pk).update(created_at=timezone.now() - dt.timedelta(days=40))
    Feedback.objects.create(run=ok, user=user, rating=Rating.DOWN)
    Feedback.objects.create(run=dear, user=user, rating=Rating.UP)

    def shown(query):
        page = changelist(admin_client, query)
        return {r.question for r in (ok, dear, gone) if r.question in page}

    assert shown("outcome=worker_lost") == {"lost on another team"}
    assert shown("outcome=succeeded") == {"cheap success", "dear success"}
    assert shown("model=anthropic%2Fclaude") == {"dear success"}
    assert shown("run__mode__exact=direct") == {"dear success"}
    assert shown(f"run__team__id__exact={team.pk}") == {"cheap success", "dear success"}
    assert shown("cost=lt_0_01") == {"cheap success"}
    assert shown("cost=gte_1") == {"dear success"}
    assert shown("cost=free") == {"lost on another team"}
    assert shown("feedback=down") == {"cheap success"}
    assert shown("feedback=up") == {"dear success"}
    assert shown("feedback=none") == {"lost on another team"}
    since = urlencode({"run__created_at__gte": str(timezone.now() - dt.timedelta(days=7))})
    assert shown(since) == {"cheap success", "dear success"}
    assert shown("q=dear") == {"dear success"}


def test_admin_search_finds_answers_too(admin_client, team):
    run_from(team, succeeded("ZEBRA-9"), question="which animal code?")
    assert "which animal code?" in changelist(admin_client, "q=zebra-9")
    assert "which animal code?" not in changelist(admin_client, "q=giraffe")


def test_admin_rows_link_to_the_explorer_and_show_evidence(admin_client, team):
    run = run_from(team, lost(), question="lost run")
    assert f'href="/runs/{run.pk}/"' in changelist(admin_client)
    page = admin_client.get(f"/admin/review/runreview/{review_of(run).pk}/change/").content.decode()
    assert f'href="/runs/{run.pk}/"' in page and "worker_lost" in page and "cell_errors" in page


def test_admin_edits_state_labels_notes_assignee(admin_client, team, staff):
    run = run_from(team, lost())
    review = review_of(run)
    label = Label.objects.create(name="infra")
    response = admin_client.post(f"/admin/review/runreview/{review.pk}/change/", {
        "state": "resolved", "labels": [label.pk], "assignee": staff.pk, "notes": "worker OOM",
    })
    assert response.status_code == 302, response.content.decode()[-2000:]
    review.refresh_from_db()
    assert (review.state, review.notes, review.assignee) == ("resolved", "worker OOM", staff)
    assert list(review.labels.all()) == [label]


def test_admin_bulk_actions(admin_client, team, staff):
    reviews = [review_of(run_from(team, lost(), question=f"lost {i}")) for i in range(3)]
    ids = [r.pk for r in reviews[:2]]
    label = Label.objects.create(name="infra")

    def act(action):
        response = admin_client.post("/admin/review/runreview/", {"action": action, "_selected_action": ids})
        assert response.status_code == 302

    act(f"add_label_{label.pk}")
    act("assign_to_me")
    act("set_state_wontfix")
    for review in reviews:
        review.refresh_from_db()
    assert [list(r.labels.all()) for r in reviews] == [[label], [label], []]
    assert [r.assignee for r in reviews] == [staff, staff, None]
    assert [r.state for r in reviews] == ["wontfix", "wontfix", "new"]
    act(f"remove_label_{label.pk}")
    assert not reviews[0].labels.exists()


def test_admin_pattern_filter_over_the_json_list(admin_client, team):
    repeated = Trajectory().cell()
    for _ in range(3):
        repeated.subcall("same prompt")
    run_from(team, repeated.answer("ok").finish(), question="repeats itself")
    run_from(team, succeeded(), question="fine run")
    page = changelist(admin_client, "pattern=repeated_subcall_prompts")
    assert "repeats itself" in page and "fine run" not in page


def test_non_staff_cannot_open_the_review_admin(client, user):
    client.force_login(user)
    assert client.get("/admin/review/runreview/").status_code == 302


# queue page -------------------------------------------------------------------------------------------

def test_queue_is_staff_only(client, user, team):
    run_from(team, lost(), question="lost run")
    assert client.get("/review/").status_code == 302
    client.force_login(user)
    response = client.get("/review/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_queue_filters_and_links_to_the_explorer(admin_client, team):
    gone = run_from(team, lost(), question="lost run")
    run_from(team, succeeded(), question="fine run")
    page = admin_client.get("/review/?outcome=worker_lost").content.decode()
    assert "lost run" in page and "fine run" not in page and f'href="/runs/{gone.pk}/"' in page
    page = admin_client.get("/review/?q=fine").content.decode()
    assert "fine run" in page and "lost run" not in page


def test_queue_row_state_change_and_bulk_actions(admin_client, team, staff):
    reviews = [review_of(run_from(team, lost(), question=f"lost {i}")) for i in range(2)]
    response = admin_client.post(f"/review/{reviews[0].pk}/", {"state": "triaged", "next": "/review/?state=new"})
    assert response.status_code == 302 and response["Location"] == "/review/?state=new"
    reviews[0].refresh_from_db()
    assert reviews[0].state == "triaged"

    label = Label.objects.create(name="infra")
    ids = [r.pk for r in reviews]
    admin_client.post("/review/bulk/", {"action": "label", "label": label.pk, "review": ids})
    admin_client.post("/review/bulk/", {"action": "assign_me", "review": ids})
    admin_client.post("/review/bulk/", {"action": "set_state", "state": "resolved", "review": ids})
    for review in reviews:
        review.refresh_from_db()
        assert (review.state, review.assignee, list(review.labels.all())) == ("resolved", staff, [label])
    page = admin_client.get("/review/?label=infra&assignee=me").content.decode()
    assert "lost 0" in page and "lost 1" in page

    response = admin_client.post("/review/bulk/", {"action": "export", "review": ids[:1]})
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 1 and '"question":"lost 0"' in lines[0]
    assert admin_client.post("/review/bulk/", {"action": "explode", "review": ids}).status_code == 400



def test_reviews_can_be_assigned_to_any_active_reviewer_in_bulk_and_filtered_by_them(admin_client, team):
    from django.contrib.auth.models import User

    colleague = make_staff("colleague", superuser=False)
    member = User.objects.create(username="member")  # not staff: never an assignee
    reviews = [review_of(run_from(team, lost(), question=f"lost {i}")) for i in range(3)]
    ids = [r.pk for r in reviews[:2]]
    queue = admin_client.get("/review/").content.decode()
    assert f'<option value="{colleague.pk}">colleague</option>' in queue and ">member<" not in queue

    admin_client.post("/review/bulk/", {"action": "assign", "assignee": colleague.pk, "review": ids})
    assert [RunReview.objects.get(pk=r.pk).assignee for r in reviews] == [colleague, colleague, None]
    page = admin_client.get(f"/review/?assignee={colleague.pk}").content.decode()
    assert "lost 0" in page and "lost 1" in page and "lost 2" not in page

    for bad in (member.pk, "", "x", 10**9):
        response = admin_client.post("/review/bulk/", {"action": "assign", "assignee": bad, "review": ids})
        assert response.status_code == 400 and b"active staff" in response.content
    response = admin_client.post(f"/review/{reviews[2].pk}/", {"assignee": colleague.pk})
    assert response.status_code == 302 and RunReview.objects.get(pk=reviews[2].pk).assignee == colleague
    assert admin_client.post(f"/review/{reviews[2].pk}/", {"assignee": member.pk}).status_code == 400

def test_queue_import_form(admin_client, team):
    import io

    from apps.review.export import export_lines

    source = run_from(team, lost(), question="to import")
    upload = io.BytesIO("".join(export_lines([source])).encode())
    upload.name = "x.jsonl"
    response = admin_client.post("/review/import/", {"file": upload, "team": team.pk})
    assert response.status_code == 302
    assert Run.objects.filter(question="to import").count() == 2


# summary page -----------------------------------------------------------------------------------------

def test_summary_for_staff_with_plots_and_tables(admin_client, team):
    run_from(team, lost(), question="lost", root_model="openai/gpt-4o")
    expensive = Trajectory().turn("```repl\nx\n```").cell().finish("failed", "max_cost", "Stopped: cost")
    expensive.events[-1]["data"]["totals"]["cost_usd"] = 1.25
    run_from(team, expensive, root_model="openai/gpt-4o", mode="rlm-no-subcalls")
    run_from(team, succeeded())
    response = admin_client.get("/review/summary/?days=7")
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("<svg") == 7
    assert "Cost of failed runs per root model" in page and "Cost of failed runs per mode" in page
    assert "Worker lost" in page and "Budget exceeded: cost" in page
    assert "$1.25" in page  # cost of failed runs (apps/runs/formats.py: 2 decimals from $1)
    summary = response.context["summary"]
    assert (summary.runs, summary.failed) == (3, 2)
    assert {r["key"]: r["failed"] for r in summary.by_mode} == {"rlm": 1, "rlm-no-subcalls": 1}
    assert sum(summary.by_outcome["worker_lost"]) == 1


def test_summary_refused_for_non_staff(client, user):
    assert client.get("/review/summary/").status_code == 302
    client.force_login(user)
    assert client.get("/review/summary/").status_code == 302


def test_summary_escapes_model_names(admin_client, team):
    run_from(team, lost(), root_model="<script>alert(1)</script>")
    page = admin_client.get("/review/summary/").content.decode()
    assert "<script>alert(1)</script>" not in page
