"""Follow-up questions in the web app: the service, the API's `follow_up`, the CLI's --follow-up, the
run page's place in its conversation, the conversation page, share links and exports."""

import io
import json
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from apps.accounts.models import ApiToken
from apps.runs import services
from apps.runs.conversations import run_follow_up, run_thread
from apps.runs.execution import run_execute
from apps.runs.models import Run, RunEvent, RunStatus
from apps.sharing import services as sharing
from tests.conftest import make_user
from tests.web.runs_factories import clean_rate_limits, make_document, make_run  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_rate_limits", "data_dir")]

BUILD = ["```repl\nyears = {2018: context.count('2018'), 'seen': ['2018']}\ndef f():\n    return 1\nprint(years)\n```",
         "```repl\nFINAL('2018 appears ' + str(years[2018]) + ' times')\n```"]
REUSE = ["```repl\nyears[2019] = context.count('2019')\nyears['seen'].append('2019')\nprint(years)\n```",
         "```repl\nFINAL('2019 appears ' + str(years[2019]) + ' times; seen ' + ', '.join(years['seen']))\n```"]
TEXT = "Revenue 2018: 10. Revenue 2019: 12. Costs 2019: 3.\n"


@pytest.fixture
def first(user, team):
    doc = make_document(team, TEXT, user=user)
    run = services.run_create(user, team, "How often is 2018 mentioned?", [doc.pk], enqueue=False)
    run_execute(run.pk, "test", BUILD)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    return run


def events(run, type_):
    return [e.data for e in RunEvent.objects.filter(run=run, type=type_).order_by("seq")]


def test_a_follow_up_reuses_the_documents_the_answers_and_the_repl_variables(user, first, data_dir):
    assert first.snapshot == f"snapshots/{first.pk}.json" and (data_dir / first.snapshot).is_file()
    follow = run_follow_up(user, first, "Now do the same for 2019.", enqueue=False)
    assert (follow.follow_up_of, follow.conversation_id, follow.mode) == (first, first.pk, first.mode)
    assert list(follow.documents.all()) == list(first.documents.all())
    run_execute(follow.pk, "test", REUSE)
    follow.refresh_from_db()
    assert follow.status == RunStatus.SUCCEEDED, follow.failure_reason
    assert follow.final_answer == "2019 appears 2 times; seen 2018, 2019"
    restored = events(follow, "snapshot.restored")[0]
    assert [v["name"] for v in restored["variables"]] == ["years"]
    assert [i["name"] for i in restored["not_carried"]] == ["f"]
    first_turn = events(follow, "root.turn")[0]["input"][-1]["content"]
    assert "Question: How often is 2018 mentioned?" in first_turn and "Answer: 2018 appears 1 times" in first_turn
    assert [r.pk for r in run_thread(follow)] == [first.pk, follow.pk]


def test_a_follow_up_needs_a_finished_run_and_a_question(user, team):
    doc = make_document(team, TEXT, user=user)
    running = make_run(team, user, [doc], status=RunStatus.RUNNING)
    with pytest.raises(services.RunConflict):
        run_follow_up(user, running, "Next?", enqueue=False)
    done = make_run(team, user, [doc], status=RunStatus.SUCCEEDED)
    with pytest.raises(ValidationError) as caught:
        run_follow_up(user, done, "   ", enqueue=False)
    assert "question" in caught.value.message_dict
    with pytest.raises(services.RunNotFound):
        run_follow_up(make_user("eve"), done, "Next?", enqueue=False)


def test_the_api_asks_a_follow_up_and_validates_it(client, user, team, first, enqueued):
    auth = {"Authorization": f"Token {ApiToken.issue(user)[1]}"}

    def post(body):
        return client.post("/api/runs/", body, content_type="application/json", headers=auth)

    response = post({"question": "And 2019?", "follow_up": str(first.pk)})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["follow_up_of"] == str(first.pk) and body["conversation_id"] == str(first.pk)
    assert [d["id"] for d in body["documents"]] == [str(d.pk) for d in first.documents.all()]
    assert len(enqueued) == 1
    detail = client.get(f"/api/runs/{body['id']}/", headers=auth).json()
    assert [c["question"] for c in detail["conversation"]] == [first.question, "And 2019?"]
    bad = post({"question": "x", "follow_up": str(first.pk), "documents": [str(uuid.uuid4())]})
    assert bad.status_code == 400 and "documents" in bad.json()["fields"]
    assert post({"question": "x", "follow_up": 7}).json()["fields"]["follow_up"]
    missing = post({"question": "x", "follow_up": str(uuid.uuid4())})
    assert missing.status_code == 400 and missing.json()["fields"]["follow_up"] == ["No such run."]
    queued = Run.objects.get(pk=body["id"])
    assert post({"question": "x", "follow_up": str(queued.pk)}).status_code == 409


def test_another_teams_run_cannot_be_followed_up(client, first):
    outsider = make_user("eve")
    auth = {"Authorization": f"Token {ApiToken.issue(outsider)[1]}"}
    response = client.post("/api/runs/", {"question": "x", "follow_up": str(first.pk)},
                           content_type="application/json", headers=auth)
    assert response.status_code == 400 and response.json()["fields"]["follow_up"] == ["No such run."]


def test_the_run_page_asks_a_follow_up_and_shows_the_conversation(client, user, first, enqueued):
    client.force_login(user)
    page = client.get(reverse("run_detail", args=[first.pk])).content.decode()
    assert 'id="follow-up-form"' in page
    response = client.post(reverse("run_follow_up", args=[first.pk]), {"question": "Now 2019?"})
    follow = Run.objects.get(follow_up_of=first)
    assert response.status_code == 302 and response["Location"] == reverse("run_detail", args=[follow.pk])
    page = client.get(reverse("run_detail", args=[follow.pk])).content.decode()
    assert "Question 2 of 2 in this conversation" in page and reverse("run_detail", args=[first.pk]) in page
    assert 'id="follow-up-form"' not in page  # queued: no follow-up yet
    conversation = client.get(reverse("run_conversation", args=[follow.pk])).content.decode()
    assert first.question in conversation and "Now 2019?" in conversation and first.final_answer in conversation
    empty = client.post(reverse("run_follow_up", args=[first.pk]), {"question": ""})
    assert empty.status_code == 302 and Run.objects.filter(follow_up_of=first).count() == 1


def test_share_links_and_exports_include_the_thread(client, user, first):
    follow = run_follow_up(user, first, "Now 2019?", enqueue=False)
    run_execute(follow.pk, "test", REUSE)
    token = sharing.share_create(user, follow)[1]
    page = client.get(f"/s/{token}/").content.decode()
    assert "Question 2 of 2" in page and first.question in page
    assert reverse("run_detail", args=[first.pk]) not in page  # a link holder gets no links to other runs
    shared = json.loads(b"".join(client.get(f"/s/{token}/trajectory.json").streaming_content))
    assert [c["question"] for c in shared["run"]["conversation"]] == [first.question, "Now 2019?"]
    assert all("id" not in c for c in shared["run"]["conversation"])
    assert any(e["type"] == "snapshot.restored" and e["data"]["variables"] for e in shared["events"])
    client.force_login(user)
    export = json.loads(b"".join(client.get(reverse("run_trajectory", args=[follow.pk])).streaming_content))
    assert export["run"]["follow_up_of"] == str(first.pk) and len(export["run"]["conversation"]) == 2


def test_the_cli_asks_a_follow_up(user, first, tmp_path):
    out = io.StringIO()
    path = tmp_path / "script.json"
    path.write_text(json.dumps(REUSE))
    call_command("rlm", "ask", "--follow-up", str(first.pk), "--question", "Now 2019?", "--root-script", str(path),
                 "--user", user.username, "--json", stdout=out, stderr=io.StringIO())
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert result["status"] == "succeeded" and result["final_answer"].startswith("2019 appears 2 times")
    assert "variables carried over: years" in out.getvalue()
    assert Run.objects.get(pk=result["run_id"]).follow_up_of_id == first.pk


def test_deleting_a_run_deletes_its_snapshot(user, first, data_dir):
    path = data_dir / first.snapshot
    services.run_delete(user, first)
    assert not path.exists()


def test_runs_deleted_in_bulk_take_their_snapshots(user, first, data_dir):
    path = data_dir / first.snapshot
    Run.objects.filter(team=first.team).delete()  # as apps.teams.services.team_delete does
    assert not path.exists()


def test_a_snapshot_path_outside_the_snapshot_dir_is_never_used_or_deleted(user, first, data_dir):
    outside = data_dir / "keep.json"
    outside.write_text("{}")
    Run.objects.filter(pk=first.pk).update(snapshot="../keep.json")
    first.refresh_from_db()
    follow = run_follow_up(user, first, "Next?", enqueue=False)
    from apps.runs.execution import run_session

    assert run_session(follow).restore_from is None
    Run.objects.filter(pk=first.pk).delete()
    assert outside.exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--follow-up", "not-a-uuid"], "No run not-a-uuid"),
    (["--follow-up", str(uuid.UUID(int=7))], "No run"),
    (["--doc", "/etc/hostname", "--follow-up", str(uuid.UUID(int=7))], "leave out --doc"),
    ([], "at least one --doc"),
])
def test_the_cli_refuses_bad_follow_up_arguments(user, extra, message):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match=message):
        call_command("rlm", "ask", "--question", "Q?", "--user", user.username, *extra,
                     stdout=io.StringIO(), stderr=io.StringIO())
    assert Run.objects.count() == 0
