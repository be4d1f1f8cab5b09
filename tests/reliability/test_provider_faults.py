"""Provider faults end to end through the web stack: the app served by `manage.py serve` (embedded
profile: SQLite file, in-process Celery worker) in its own process, asked through the JSON API,
executed against the simulated provider, read back from the run page's JSON and the API.

Every model is reached with a 2 s timeout and 2 retries (RLMWEB_MODELS `timeout_s`, `max_retries`).
What each fault must lead to (the engine's documented behaviour, docs/operations.md "Reliability"):
- 429 (with or without Retry-After), 500, 502, 503, connection reset, a reply slower than the
  timeout, malformed JSON and an empty completion are transient: retried with backoff (Retry-After
  when given); a sub-call's `attempts` and `latency_s` show it;
- still failing after the retries: a sub-call reports `error` (and the REPL cell sees the error, so
  the root can carry on); the root failing ends the run `failed` with stop_reason provider_error;
- a root that never writes FINAL: stopped at max_iterations, asked once for a final answer, then
  `failed` with no answer;
- the cost cap stops the run however the provider behaves.
All runs go at once on one worker; afterwards each run's record is checked whole.
"""

import json

import pytest

from tests.reliability.runs import (
    KEY_ENV,
    ROOT,
    SUB,
    check_recorded_whole,
    marker,
    repl,
    root_turn,
    sim_models,
)
from tests.reliability.stack import AppStack
from worker.simulated import Fault, SimulatedProvider

pytestmark = pytest.mark.slow

ONE_SUBCALL = [repl('r = llm_query("{case} sub")\nprint(r)'), "FINAL(ok)"]


def sub_of(case: str, times: int = 1, **fault) -> Fault:
    return Fault(when=lambda r, c=case: r.model == "gpt-4o-mini" and marker(r) == c, times=times, **fault)


def root_of(case: str, times: int = 1, **fault) -> Fault:
    return Fault(when=lambda r, c=case: r.model == "gpt-4o" and marker(r) == c, times=times, **fault)


# case → (faults, root replies by turn (the last repeats), limits)
CASES = {
    "CASE-429-retry-after": ([sub_of("CASE-429-retry-after", kind="429", retry_after=1.5)], ONE_SUBCALL, {}),
    "CASE-429-root": ([root_of("CASE-429-root", kind="429")], ONE_SUBCALL, {}),
    "CASE-500": ([sub_of("CASE-500", times=99, kind="500")], ONE_SUBCALL, {}),
    "CASE-503-root": ([root_of("CASE-503-root", times=99, kind="503")], ONE_SUBCALL, {}),
    "CASE-reset": ([sub_of("CASE-reset", kind="reset")], ONE_SUBCALL, {}),
    "CASE-slow": ([sub_of("CASE-slow", kind="slow", slow_s=4)], ONE_SUBCALL, {}),
    "CASE-malformed": ([root_of("CASE-malformed", kind="malformed")], ONE_SUBCALL, {}),
    "CASE-empty": ([sub_of("CASE-empty", times=99, kind="empty")], ONE_SUBCALL, {}),
    "CASE-no-final": ([], [repl('print("still looking")')], {"max_iterations": 3}),
    # (the cap must hold a root turn's worst case, ~$0.09 for gpt-4o with 8,192 output tokens)
    "CASE-cost-cap": ([], [repl('for i in range(100000):\n    llm_query("{case} " + "x" * 200000)'), "FINAL(ok)"],
                      {"max_cost_usd": 0.15}),
}


def responder(request) -> str:
    case = marker(request)
    if request.model == "gpt-4o-mini":
        return f"answer to {case}"
    replies = CASES[case][1]
    return replies[min(root_turn(request), len(replies) - 1)].format(case=case)


@pytest.fixture(scope="module")
def provider():
    faults = [f for faults, _, _ in CASES.values() for f in faults]
    with SimulatedProvider(responder=responder, faults=faults) as sp:
        yield sp


@pytest.fixture(scope="module")
def app(provider, tmp_path_factory):
    models = sim_models(provider.base_url, timeout_s=2, max_retries=2)[1:]
    env = {"RLMWEB_MODELS_JSON": json.dumps(models), KEY_ENV: "sk-sim", "RLMWEB_MAX_CONCURRENT_RUNS_PER_TEAM": "50",
           "RLMWEB_WORKER_CONCURRENCY": str(len(CASES))}
    with AppStack(tmp_path_factory.mktemp("faults"), extra_env=env, worker_concurrency=len(CASES)) as stack:
        yield stack


def requests_of(provider, case: str, model: str) -> list:
    return [r for r in provider.requests if marker(r) == case and r.model == model]


def test_each_provider_fault_is_retried_or_reported_and_the_run_page_shows_it(app, provider):
    alice = app.account("alice")
    doc = app.upload(alice, "notes.txt", "The secret code is PLUM-42.\n" * 20)
    runs = {case: app.ask(alice, question=f"{case}: what is the code?", documents=[doc], root_model=ROOT,
                          sub_model=SUB, limits=limits)["id"]
            for case, (_, _, limits) in CASES.items()}
    summaries = app.wait_finished(alice, runs.values(), timeout=150)

    pages = {}
    for case, run_id in runs.items():
        page = app.http.get(f"/runs/{run_id}/events.json", params={"limit": 5000},
                            headers={"Cookie": alice.cookie}).json()
        assert not page["more"] and page["status"] == summaries[run_id]["status"]
        assert page["events"] == app.events(alice, run_id)
        check_recorded_whole(summaries[run_id], page["events"])
        pages[case] = page

    def finished(case):
        return next(e["data"] for e in pages[case]["events"] if e["type"] == "run.finished")

    def subcalls(case):
        return [e["data"] for e in pages[case]["events"] if e["type"] == "subcall.finished"]

    def cells(case):
        return [e["data"] for e in pages[case]["events"] if e["type"] == "cell.finished"]

    # Transient faults on a sub-call: retried once, then the right answer; the event counts the attempts.
    for case in ("CASE-429-retry-after", "CASE-reset", "CASE-slow", "CASE-empty", "CASE-500"):
        assert len(subcalls(case)) == 1, case
    for case in ("CASE-429-retry-after", "CASE-reset", "CASE-slow"):
        (call,) = subcalls(case)
        assert finished(case)["status"] == "succeeded", (case, finished(case))
        assert (call["response"], call["attempts"], call["error"]) == (f"answer to {case}", 2, None), case
    first, second = requests_of(provider, "CASE-429-retry-after", "gpt-4o-mini")
    assert second.received_at - first.finished_at >= 1.4  # Retry-After: 1.5 honoured
    slow, retry = requests_of(provider, "CASE-slow", "gpt-4o-mini")
    assert 2 <= retry.received_at - slow.received_at < 4  # given up after the 2 s timeout, not the 4 s reply
    # Transient faults on the root: retried, the run goes on.
    for case in ("CASE-429-root", "CASE-malformed"):
        assert finished(case)["status"] == "succeeded", (case, finished(case))
        assert len(requests_of(provider, case, "gpt-4o")) == 3, case  # turn 1 twice, turn 2 once
    # A sub-call failing for good is reported to the REPL and on the page; the root still answers.
    for case, error in (("CASE-500", "InternalServerError"), ("CASE-empty", "empty completion")):
        (call,) = subcalls(case)
        assert call["attempts"] == 3 and "failed after 3 attempts" in call["error"] and error in call["error"], call
        assert call["cost_usd"] == 0 and call["response"] == ""
        assert "llm_query failed" in (cells(case)[0]["error"] or "") + cells(case)[0]["stdout"], cells(case)
        assert finished(case)["status"] == "succeeded"
        assert len(requests_of(provider, case, "gpt-4o-mini")) == 3
    # The root failing for good fails the run, saying why.
    done = finished("CASE-503-root")
    assert (done["status"], done["stop_reason"]) == ("failed", "provider_error")
    assert "failed after 3 attempts" in done["failure_reason"] and "ServiceUnavailable" in done["failure_reason"]
    assert len(requests_of(provider, "CASE-503-root", "gpt-4o")) == 3
    # No FINAL ever: three iterations, one forced last turn, then failed without an answer.
    done = finished("CASE-no-final")
    assert (done["status"], done["stop_reason"]) == ("failed", "max_iterations"), done
    assert done["totals"]["iterations"] == 4 and not any(e["type"] == "final.answer" for e in pages["CASE-no-final"]
                                                         ["events"])
    assert len(requests_of(provider, "CASE-no-final", "gpt-4o")) == 4
    # The cost cap holds: calls are admitted by their worst case, so the run stops under it.
    done = finished("CASE-cost-cap")
    assert len(subcalls("CASE-cost-cap")) >= 1
    assert (done["status"], done["stop_reason"]) == ("failed", "max_cost"), done
    assert 0 < done["totals"]["cost_usd"] <= 0.15
    # Every page says how its run ended; nothing is left running.
    assert {p["status"] for p in pages.values()} <= {"succeeded", "failed"}
