"""Export to JSONL and re-import: the same trajectory, event for event, viewable as a run again."""

import io
import json

import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.review.export import FORMAT, ImportFailed, export_lines, import_lines, run_record
from apps.review.models import Feedback, Label, Rating, RunReview
from apps.runs.models import Run, RunDocument, RunEvent
from apps.teams.services import team_create
from tests.engine.conftest import KEY_ENV, SECRET_KEY, repl, sim_spec
from tests.review.builders import make_staff, review_of, run_from, run_with_events
from tests.review.trajectories import Trajectory, succeeded
from tests.web.runs_factories import make_document
from worker.engine import DocumentInput, run
from worker.engine.events import ListSink
from worker.simulated import SimulatedProvider

pytestmark = [pytest.mark.django_db]


def events_of(run: Run) -> list[dict]:
    return [e.to_dict() for e in RunEvent.objects.filter(run=run).order_by("seq")]


@pytest.fixture
def engine_run(team, user, tmp_path, monkeypatch, data_dir):
    """A real engine run (sub-calls, a verification loop, an answer at odds with its output) with a
    document, labels, notes and feedback."""
    monkeypatch.setenv(KEY_ENV, SECRET_KEY)
    text = "Intro. The secret code is PLUM-42. Outro."
    document = make_document(team, text=text, user=user)
    path = tmp_path / "doc.txt"
    path.write_text(text, encoding="utf-8")
    script = [repl("a = [llm_query('Verify that the secret code is PLUM-42: ' + context) for _ in range(3)]\n"
                   "print(a[0])"), "FINAL(APPLE-7)"]
    with SimulatedProvider(root_model="gpt-4o") as provider:
        sink = ListSink()
        run(sim_spec(provider, [DocumentInput("doc.txt", str(path), len(text))], root_script=script), sink)
    source = run_with_events(team, sink.events, user=user, question="What is the secret code? (ünïcode ✓)",
                             limits={"max_iterations": 20})
    RunDocument.objects.create(run=source, document=document, position=0)
    review = review_of(source)
    review.notes = "answered APPLE-7 after verifying PLUM-42"
    review.state = "triaged"
    review.save()
    review.labels.add(Label.objects.create(name="wrong answer"), Label.objects.create(name="regression set"))
    Feedback.objects.create(run=source, user=user, rating=Rating.DOWN, comment="wrong")
    return source


def test_round_trip_reproduces_the_trajectory(engine_run, team, user):
    lines = list(export_lines([engine_run]))
    assert len(lines) == 1 and lines[0].endswith("\n")
    record = json.loads(lines[0])
    assert record["format"] == FORMAT and record["question"] == engine_run.question
    assert record["settings"] == {"mode": "rlm", "root_model": "openai/gpt-4o", "sub_model": "openai/gpt-4o-mini",
                                  "limits": {"max_iterations": 20}}
    [document] = record["documents"]
    assert {k: document[k] for k in ("name", "chars", "position")} == {"name": "notes.txt", "chars": 41,
                                                                      "position": 0}
    assert len(document["sha256"]) == 64 and document["size_bytes"] == 41
    assert record["outcome"] == "succeeded"
    assert {"verification_loop", "answer_not_in_computed_values", "repeated_subcall_prompts"} <= set(
        record["patterns"])
    assert record["labels"] == ["regression set", "wrong answer"] and record["state"] == "triaged"
    assert record["feedback"][0]["rating"] == "down" and record["feedback"][0]["user"] == "alice"

    other = team_create(user, "Regression lab")
    [imported] = import_lines(lines, other, user, source="failures.jsonl")
    assert imported.pk != engine_run.pk and imported.team == other
    assert events_of(imported) == events_of(engine_run)
    for field in ("status", "final_answer", "answer_source", "iterations", "subcalls", "cost_usd", "last_seq",
                  "prompt_tokens", "completion_tokens", "question", "mode", "root_model", "limits", "created_at"):
        assert getattr(imported, field) == getattr(engine_run, field), field
    review = review_of(imported)
    assert (review.outcome, review.patterns) == (review_of(engine_run).outcome, review_of(engine_run).patterns)
    assert sorted(review.labels.values_list("name", flat=True)) == ["regression set", "wrong answer"]
    assert review.notes == "answered APPLE-7 after verifying PLUM-42" and review.state == "triaged"
    assert review.imported_from["run_id"] == str(engine_run.pk)
    assert review.imported_from["source"] == "failures.jsonl"
    assert review.imported_from["feedback"][0]["comment"] == "wrong"
    assert not RunDocument.objects.filter(run=imported).exists()  # that team never had the document

    again = json.loads(next(export_lines([imported])))
    assert again["events"] == record["events"]


def test_import_links_documents_the_team_already_has(engine_run, team, user):
    line = next(export_lines([engine_run]))
    [imported] = import_lines([line], team, user)
    assert list(imported.documents.all()) == list(engine_run.documents.all())


def test_imported_run_opens_in_the_runs_json_the_explorer_reads(client, engine_run, team, user):
    [imported] = import_lines(list(export_lines([engine_run])), team, user)
    client.force_login(user)
    body = client.get(f"/api/runs/{imported.pk}/events/").json()
    assert [e["seq"] for e in body["events"]] == [e["seq"] for e in events_of(engine_run)]


def test_commands_export_and_import(engine_run, team, user, tmp_path, capsys):
    out = tmp_path / "runs.jsonl"
    run_from(team, succeeded(), question="a success, filtered out")
    call_command("review_export", "--out", str(out), "--pattern", "verification_loop")
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["run_id"] for line in lines] == [str(engine_run.pk)]
    call_command("review_import", str(out), "--team", str(team.pk), "--user", "alice")
    imported = Run.objects.exclude(pk=engine_run.pk).exclude(question="a success, filtered out").get()
    assert events_of(imported) == events_of(engine_run) and imported.created_by == user
    assert "Imported 1 run(s)" in capsys.readouterr().err


def test_export_command_filters(team, tmp_path):
    run_from(team, succeeded(), question="fine")
    lost = Trajectory().turn("```repl\nprint(1)\n```").cell(stdout="1").finish("failed", "worker_lost", "lost",
                                                                                 totals=False)
    run_from(team, lost, question="lost one")
    out = tmp_path / "x.jsonl"
    call_command("review_export", "--out", str(out), "--outcome", "worker_lost")
    assert [json.loads(line)["question"] for line in out.read_text().splitlines()] == ["lost one"]
    call_command("review_export", "--out", str(out), "--team", str(team.pk))
    assert len(out.read_text().splitlines()) == 2


def test_import_command_errors(tmp_path, team):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{}\n")
    with pytest.raises(CommandError, match="not an rlmweb run export"):
        call_command("review_import", str(bad), "--team", str(team.pk))
    with pytest.raises(CommandError, match="No team"):
        call_command("review_import", str(bad), "--team", "999999")


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda r: r.update(version=99), "unsupported version"),
    (lambda r: r["events"].pop(1), "numbered"),
    (lambda r: r["events"][0].update(type="made.up"), "unknown type"),
    (lambda r: r["events"].pop(), "run.finished"),
    (lambda r: r.update(events=[]), "non-empty"),
    (lambda r: r.pop("question"), "question"),
])
def test_invalid_records_import_nothing(team, mutate, message):
    record = run_record(run_from(team, succeeded()))
    mutate(record)
    before = Run.objects.count()
    with pytest.raises(ImportFailed, match=message):
        import_lines([json.dumps(record)], team)
    assert Run.objects.count() == before


def test_one_bad_line_imports_no_line(team):
    good = next(export_lines([run_from(team, succeeded())]))
    before = Run.objects.count()
    with pytest.raises(ImportFailed, match="line 2: not JSON"):
        import_lines([good, "{oops", good], team)
    assert Run.objects.count() == before


def test_admin_export_action_and_import_form(client, team):
    source = run_from(team, succeeded(), question="exported by the admin")
    client.force_login(make_staff())
    response = client.post("/admin/review/runreview/", {"action": "export_jsonl",
                                                        "_selected_action": [review_of(source).pk]})
    assert response.status_code == 200 and response["Content-Type"].startswith("application/jsonl")
    body = b"".join(response.streaming_content)
    upload = io.BytesIO(body)
    upload.name = "from-admin.jsonl"
    response = client.post("/admin/review/runreview/import/", {"file": upload, "team": team.pk})
    assert response.status_code == 302
    imported = RunReview.objects.exclude(run=source).get()
    assert events_of(imported.run) == events_of(source)
    assert imported.imported_from["source"] == "from-admin.jsonl"


def test_admin_import_form_shows_errors(client, team):
    client.force_login(make_staff())
    upload = io.BytesIO(b"not json\n")
    upload.name = "bad.jsonl"
    response = client.post("/admin/review/runreview/import/", {"file": upload, "team": team.pk})
    assert response.status_code == 200 and b"not JSON" in response.content


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=4), max_size=6),
       question=st.text(min_size=1, max_size=50).filter(lambda q: "\x00" not in q))
def test_any_event_payload_round_trips(team, payloads, question):
    t = Trajectory(question=question)
    for data in payloads:
        t.emit("cell.finished", **data)
    source = run_from(team, t.finish("failed", "no_final_answer", "none"), question=question)
    [imported] = import_lines(export_lines([source]), team)
    assert events_of(imported) == events_of(source)
    assert imported.question == question


# --- imported costs: validated, and never the team's spending ---------------------------------------------


def exported(team, trajectory: Trajectory | None = None) -> dict:
    return json.loads(next(export_lines([run_from(team, trajectory or succeeded())])))


def with_final_cost(record: dict, cost) -> dict:
    record["events"][-1]["data"]["totals"]["cost_usd"] = cost
    record["result"]["cost_usd"] = cost
    return record


@pytest.mark.parametrize("cost", [-1e6, float("inf"), float("nan"), "12", True])
def test_an_import_with_an_impossible_cost_is_refused(team, cost):
    record = with_final_cost(exported(team), cost)
    before = Run.objects.count()
    with pytest.raises(ImportFailed, match="a cost is a finite number of USD, 0 or more"):
        import_lines([json.dumps(record)], team)
    assert Run.objects.count() == before


def test_an_import_whose_totals_are_not_the_sum_of_its_calls_is_refused(team):
    record = exported(team)
    assert record["result"]["cost_usd"] == pytest.approx(0.002)  # two root turns of $0.001
    with pytest.raises(ImportFailed, match="is not the sum of the calls' costs"):
        import_lines([json.dumps(with_final_cost(record, 1000.0))], team)
    turn = next(e for e in record["events"] if e["type"] == "root.turn")
    turn["data"]["cost_usd"] = -0.001  # a negative call cannot balance a larger total either
    with pytest.raises(ImportFailed, match="a cost is a finite number"):
        import_lines([json.dumps(record)], team)


def test_imported_runs_are_marked_and_left_out_of_the_teams_spending_and_cap(team, user):
    from apps.runs.services import run_delete
    from apps.teams.models import DeletedRunSpend
    from apps.teams.selectors import team_spend_report
    from apps.teams.services import team_month_spend

    record = exported(team)  # its source run is the team's own: $0.002 spent here
    spend_before = team_month_spend(team)
    assert spend_before[0] > 0
    [imported] = import_lines([json.dumps(record)], team, user)
    assert imported.imported and imported.cost_usd == pytest.approx(0.002)
    assert not Run.objects.get(pk=record["run_id"]).imported
    assert team_month_spend(team) == spend_before
    assert team_spend_report(team, 30).total.runs == 1
    run_delete(user, imported)
    assert not DeletedRunSpend.objects.filter(run_id=imported.pk).exists()
    assert team_month_spend(team) == spend_before


def test_a_deeply_nested_line_is_refused_as_not_json(team):
    with pytest.raises(ImportFailed, match="line 1: not JSON .*nested too deeply"):
        import_lines(["[" * 100_000], team)
