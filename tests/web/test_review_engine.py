"""Real engine runs, through the simulated provider with scripted root turns, exhibit every outcome
class and pattern; the classifier names them and the admin's filters find them.

Each case runs the engine into a ListSink, persists the events onto a Run (as the web app's sink
does), classifies it, then asks the admin changelist for that class or pattern: the run is listed,
and a plain successful run is not.
"""

import time

import pytest

from apps.review.models import RunReview
from apps.runs.execution import runs_mark_lost
from apps.runs.models import Run, RunStatus
from tests.engine.conftest import KEY_ENV, SECRET_KEY, filler, hide, repl, sim_spec
from tests.review.builders import make_staff, review_of, run_from, run_with_events
from tests.review.trajectories import succeeded
from worker.engine import ModelOptions, run
from worker.engine.events import ListSink
from worker.simulated import Fault, SimulatedProvider

pytestmark = [pytest.mark.django_db]

SECRET = "The secret code is PLUM-42."
DOC = hide(filler(3000), SECRET, 0.5)


@pytest.fixture
def provider(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET_KEY)
    with SimulatedProvider(root_model="gpt-4o") as sp:
        yield sp


@pytest.fixture
def document(tmp_path):
    from worker.engine import DocumentInput

    def write(text: str = DOC) -> DocumentInput:
        path = tmp_path / "doc.txt"
        path.write_text(text, encoding="utf-8")
        return DocumentInput(name="doc.txt", path=str(path), chars=len(text))

    return write


@pytest.fixture
def admin_client(client, db):
    client.force_login(make_staff())
    return client


@pytest.fixture
def control(team):
    """A plain success that no failure filter may list."""
    return run_from(team, succeeded(), question="control run: all went well")


def engine_run(team, spec, should_stop=lambda: False, question: str = "") -> Run:
    sink = ListSink()
    run(spec, sink, should_stop=should_stop)
    return run_with_events(team, sink.events, question=question or spec.question, mode=spec.mode)


def listed(admin_client, query: str) -> str:
    response = admin_client.get(f"/admin/review/runreview/?{query}")
    assert response.status_code == 200
    return response.content.decode()


def assert_found_by_admin(admin_client, query: str, found: Run, control: Run) -> None:
    page = listed(admin_client, query)
    assert found.question in page, query
    assert control.question not in page, query
    assert f"/runs/{found.pk}/" in page  # the row links to the explorer


OUTCOME_CASES = {
    "succeeded": dict(script=[repl("print(context[context.find('secret'):][:40])"), "FINAL(PLUM-42)"]),
    "succeeded_forced": dict(script=[repl("print(1)"), repl("print(2)"), "FINAL(PLUM-42)"], max_iterations=2),
    "no_final_answer": dict(script=[repl("print(len(context))")]),
    "budget_exceeded_cost": dict(script=[repl("a = llm_query('hello')"), repl("b = llm_query('again')"),
                                         "FINAL(x)"], max_cost_usd=1e-9),
    "budget_exceeded_iterations": dict(script=[repl("print(1)"), repl("print(2)")], max_iterations=1),
    "budget_exceeded_depth": dict(script=[repl("r = llm_query('x')")], max_depth=0),
    "budget_exceeded_subcalls": dict(script=[repl("a = llm_query_batched(['p1', 'p2', 'p3'])")], max_subcalls=2),
    "sandbox_errors": dict(script=[repl("print(undefined_name)"), repl("1 / 0")]),
}


@pytest.mark.parametrize("expected", OUTCOME_CASES)
def test_scripted_engine_runs_get_their_outcome_class(expected, provider, document, team, admin_client, control):
    case = dict(OUTCOME_CASES[expected])
    spec = sim_spec(provider, [document()], question=f"case {expected}: what is the code?",
                    root_script=case.pop("script"), **case)
    found = engine_run(team, spec)
    assert review_of(found).outcome == expected, (found.status, found.stop_reason, found.failure_reason)
    if expected != "succeeded":
        assert_found_by_admin(admin_client, f"outcome={expected}", found, control)


def test_sandbox_errors_count_failed_cells_and_kinds(provider, document, team):
    spec = sim_spec(provider, [document()], root_script=OUTCOME_CASES["sandbox_errors"]["script"])
    review = review_of(engine_run(team, spec))
    errors = review.details["cell_errors"]
    assert (errors["cells"], errors["failed"]) == (2, 2)
    assert set(errors["kinds"]) == {"NameError", "ZeroDivisionError"}


def test_time_budget(provider, document, team, admin_client, control):
    provider.latency_s = 1.5
    script = [repl("a = llm_query('slow')"), repl("b = llm_query('slower')"), "FINAL(x)"]
    spec = sim_spec(provider, [document()], question="case time: slow", root_script=script, max_wall_s=1.0)
    found = engine_run(team, spec)
    assert review_of(found).outcome == "budget_exceeded_time"
    assert_found_by_admin(admin_client, "outcome=budget_exceeded_time", found, control)


def test_provider_error(provider, document, team, admin_client, control):
    provider.faults = [Fault("500", when=lambda r: True, times=99)]
    spec = sim_spec(provider, [document()], question="case provider: down")
    spec.model_options = {m: ModelOptions(api_base=provider.base_url, api_key_env=KEY_ENV, max_retries=0)
                          for m in spec.model_options}
    found = engine_run(team, spec)
    assert review_of(found).outcome == "provider_error"
    assert_found_by_admin(admin_client, "outcome=provider_error", found, control)


def test_cancelled(provider, document, team, admin_client, control):
    spec = sim_spec(provider, [document()], question="case cancelled", root_script=[repl("print(1)"), "FINAL(x)"])
    found = engine_run(team, spec, should_stop=lambda: True)
    assert review_of(found).outcome == "cancelled"
    assert_found_by_admin(admin_client, "outcome=cancelled", found, control)


def test_engine_error(provider, team, admin_client, control):
    spec = sim_spec(provider, [], question="case engine error: no documents", root_script=["FINAL(x)"])
    found = engine_run(team, spec)
    assert review_of(found).outcome == "engine_error"
    assert_found_by_admin(admin_client, "outcome=engine_error", found, control)


def test_worker_lost(provider, document, team, admin_client, control):
    """The engine's events up to the moment the worker died are kept; the sweep ends the run."""
    spec = sim_spec(provider, [document()], question="case worker lost",
                    root_script=[repl("print(1)"), repl("print(2)"), "FINAL(x)"])
    sink = ListSink()
    run(spec, sink)
    cut = next(i for i, e in enumerate(sink.events) if e.type == "cell.finished") + 1
    from django.utils import timezone

    lost = run_with_events(team, sink.events[:cut], question=spec.question)
    assert lost.status == RunStatus.RUNNING and not RunReview.objects.filter(run=lost).exists()
    Run.objects.filter(pk=lost.pk).update(heartbeat_at=timezone.now() - timezone.timedelta(minutes=10))
    assert runs_mark_lost() == 1
    from apps.review.services import review_classify

    review = review_classify(lost)
    assert review.outcome == "worker_lost"
    assert_found_by_admin(admin_client, "outcome=worker_lost", lost, control)


def subcalls(code: str) -> list[str]:
    return [repl(code), "FINAL(PLUM-42)"]


PATTERN_CASES = {
    "repeated_subcall_prompts": subcalls("a = [llm_query('What is the secret code?') for _ in range(3)]"),
    "near_duplicate_subcall_prompts": subcalls(
        "part = context[:1500]\n"
        "a = llm_query('List every code mentioned in this text: ' + part)\n"
        "b = llm_query('List each code mentioned in this text: ' + part)\n"
        "c = llm_query('List every code that is mentioned in this text: ' + part)"),
    "verification_loop": subcalls(
        "i = context.find('secret')\npart = context[i - 200:i + 200]\n"
        "a = llm_query('Verify that the secret code is PLUM-42 in: ' + part)\n"
        "b = llm_query('Please verify that the secret code is PLUM-42 in: ' + part)\n"
        "c = llm_query('Double-check and confirm the secret code is PLUM-42 in: ' + part)"),
    "answer_not_in_computed_values": [repl("print(context[context.find('secret'):][:40])"), "FINAL(APPLE-7)"],
    "subcall_fanout": subcalls(
        "lines = context.split('. ')\nr = llm_query_batched(['Does this mention a code? ' + s for s in lines])"),
    "many_cell_errors": [repl("print(a)"), repl("print(b)"), repl("print(c)"),
                         repl("print(context[context.find('secret'):][:40])"), "FINAL(PLUM-42)"],
}


@pytest.mark.parametrize("pattern", PATTERN_CASES)
def test_scripted_engine_runs_show_their_pattern(pattern, provider, document, team, admin_client, control):
    spec = sim_spec(provider, [document()], question=f"case {pattern}: what is the code?",
                    root_script=PATTERN_CASES[pattern])
    found = engine_run(team, spec)
    review = review_of(found)
    assert pattern in review.patterns, review.details
    assert_found_by_admin(admin_client, f"pattern={pattern}", found, control)


def test_a_clean_engine_run_shows_no_pattern(provider, document, team):
    script = [repl("i = context.find('secret')\nprint(llm_query('What is the code? ' + context[i:i + 60]))"),
              "FINAL(PLUM-42)"]
    provider.sub_reply = lambda prompt: "The code is PLUM-42."
    started = time.monotonic()
    review = review_of(engine_run(team, sim_spec(provider, [document()], root_script=script)))
    assert (review.outcome, review.patterns) == ("succeeded", [])
    assert time.monotonic() - started < 30
