"""Helpers for reliability tests that execute runs: the simulated provider as the models offered,
waiting for a run to end, and the invariants every recorded run must satisfy.

Importable without Django set up (the load script uses it); the ORM helpers import models lazily.
"""

import re
import time

FINISHED_STATUSES = ("succeeded", "failed", "cancelled")

ROOT = "openai/gpt-4o"
SUB = "openai/gpt-4o-mini"
KEY_ENV = "RLMWEB_SIM_KEY"


def sim_models(base_url: str, **call_options) -> list[dict]:
    """RLMWEB_MODELS entries that reach the simulated provider (real litellm names and prices)."""
    return [
        {"model": "offline/heuristic", "label": "Offline", "offline": True},
        *({"model": m, "label": m, "api_base": base_url, "api_key_env": KEY_ENV, **call_options} for m in (ROOT, SUB)),
    ]


def repl(code: str) -> str:
    return f"```repl\n{code.strip()}\n```"


def marker(request, pattern: str = r"CASE-[\w-]+") -> str | None:
    """The case marker in any message of a simulated request (questions and sub-call prompts carry one)."""
    for message in request.messages:
        found = re.search(pattern, str(message.get("content")))
        if found:
            return found.group(0)
    return None


def root_turn(request) -> int:
    """0 for the root's first turn, 1 for the second, …"""
    return sum(1 for m in request.messages if m.get("role") == "assistant")


def wait_finished(run_ids, timeout: float = 60.0) -> list:
    from apps.runs.models import Run

    deadline = time.monotonic() + timeout
    while True:
        runs = list(Run.objects.filter(pk__in=list(run_ids)))
        if all(r.status in FINISHED_STATUSES for r in runs):
            return runs
        if time.monotonic() > deadline:
            raise AssertionError("runs still unfinished: " + ", ".join(f"{r.pk} {r.status}" for r in runs
                                                                      if r.status not in FINISHED_STATUSES))
        time.sleep(0.2)


def assert_recorded_whole(run) -> list[dict]:
    """`check_recorded_whole` for a run in this process's database; returns its events."""
    from apps.runs.models import RunEvent
    from apps.runs.selectors import run_summary

    run.refresh_from_db()
    events = [e.to_dict() for e in RunEvent.objects.filter(run=run).order_by("seq")]
    check_recorded_whole(run_summary(run), events)
    return events


def check_recorded_whole(run: dict, events: list[dict]) -> None:
    """A run (as the JSON API gives it) and its events: events 1..last_seq each once; a finished run
    ends with exactly one run.finished; the run's status, answer and totals are what its events say
    (its cost and tokens the sum of its model calls)."""
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(events) + 1)) and run["last_seq"] == len(events), (
        run["id"], seqs[-5:], run["last_seq"])
    finished = [e for e in events if e["type"] == "run.finished"]
    if run["status"] not in FINISHED_STATUSES:
        assert not finished
        return
    assert len(finished) == 1 and events[-1]["type"] == "run.finished", [e["type"] for e in events[-3:]]
    data = finished[0]["data"]
    assert (run["status"], run["failure_reason"], run["stop_reason"]) == (
        data["status"], data["failure_reason"] or "", data["stop_reason"] or "")
    answers = [e["data"]["answer"] for e in events if e["type"] == "final.answer"]
    assert run["final_answer"] == (answers[-1] if answers else "")
    kinds = {e["data"]["node_id"]: e["data"]["kind"] for e in events if e["type"] == "subcall.started"}
    calls = [e["data"] for e in events if e["type"] == "root.turn"] + [
        e["data"] for e in events if e["type"] == "subcall.finished" and kinds[e["data"]["node_id"]] == "llm"]
    known = [c["cost_usd"] for c in calls if c["cost_usd"] is not None]
    totals = run["totals"]
    assert abs(totals["cost_known_usd"] - sum(known)) < 1e-9, (totals, sum(known))
    assert totals["cost_unknown_calls"] == len(calls) - len(known)
    assert totals["prompt_tokens"] == sum(c["prompt_tokens"] for c in calls)
    assert totals["completion_tokens"] == sum(c["completion_tokens"] for c in calls)
    assert totals["subcalls"] == len(kinds)
    turns = sum(1 for e in events if e["type"] == "root.turn" and e["data"]["depth"] == 0)
    # The engine counts an iteration when it starts the root's call, so a root call that failed for
    # good counts one without a root.turn event.
    assert turns <= totals["iterations"] <= turns + 1, (totals["iterations"], turns)
