"""Issue #21 through `manage.py rlm ask`: hostile root scripts against a logging simulated provider.

The provider's request log is the truth: the run's recorded cost and call counts must agree with
it, the cost cap must hold, and the command must never leave a run unfinished.
"""

import contextlib
import io
import json
import time
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from apps.runs import services
from apps.runs.execution import build_spec
from apps.runs.management.commands import rlm as rlm_command
from apps.runs.models import Run, RunStatus
from tests.web.runs_factories import clean_rate_limits, make_document  # noqa: F401
from worker.simulated import SimulatedProvider

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_rate_limits", "data_dir")]

KEY_ENV = "RLMWEB_TEST_PROVIDER_KEY"
EXPENSIVE = "openai/gpt-4o"
HOUSE = "openai/house-model-without-a-price"

litellm = pytest.importorskip("litellm")


@pytest.fixture
def provider(settings, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test")
    with SimulatedProvider(root_model="no-root-model-here", responder=lambda r: "an answer") as sp:
        settings.RLMWEB_MODELS = [
            {"model": "offline/heuristic", "label": "offline", "offline": True},
            {"model": EXPENSIVE, "label": "sim 4o", "api_base": sp.base_url, "api_key_env": KEY_ENV},
            {"model": HOUSE, "label": "sim house", "api_base": sp.base_url, "api_key_env": KEY_ENV},
        ]
        yield sp


def ask(tmp_path, script: list[str], *args: str) -> tuple[str, dict]:
    doc = tmp_path / "doc.txt"
    doc.write_text("The quarterly ledger of the north harbor. " * 2000, encoding="utf-8")
    path = tmp_path / "script.json"
    path.write_text(json.dumps(script), encoding="utf-8")
    out = io.StringIO()
    with contextlib.suppress(CommandError):  # a failed run exits 1; its JSON line is printed all the same
        call_command("rlm", "ask", "--doc", str(doc), "--question", "Q?", "--root-script", str(path), "--json",
                     *args, stdout=out, stderr=io.StringIO())
    text = out.getvalue()
    return text, json.loads(text.strip().splitlines()[-1])


def billed(provider) -> float:
    total = 0.0
    for r in provider.requests:
        if r.status == 200:
            p, c = litellm.cost_per_token(model=EXPENSIVE, prompt_tokens=r.prompt_tokens,
                                          completion_tokens=r.completion_tokens)
            total += p + c
    return total


def test_a_lone_surrogate_in_a_cells_output_does_not_kill_the_command(tmp_path):
    text, result = ask(tmp_path, ['```repl\nprint("A\\ud800B")\n```', "FINAL(done)"])
    assert result["status"] == "succeeded" and result["final_answer"] == "done"
    assert result["cells"][0]["stdout"] == "A\ufffdB\n"
    assert text.strip().splitlines()[-1].isascii()  # the JSON line is ASCII whatever the output held
    assert Run.objects.get(pk=result["run_id"]).status == RunStatus.SUCCEEDED


def test_a_batch_of_expensive_calls_stays_under_max_cost(tmp_path, provider):
    provider.usage_for = lambda r: (max(1, len(r.prompt) // 4), 1_000_000)
    provider.latency_for = lambda r: 0.1
    script = [f"```repl\na = llm_query_batched(['Summarise: ' + context[i * 300:(i + 1) * 300] for i in range(200)], "
              f"model='{EXPENSIVE}')\n```", "FINAL(done)"]
    _, result = ask(tmp_path, script, "--model", "offline/heuristic", "--sub-model", EXPENSIVE, "--max-cost", "0.5")
    assert 0 < len(provider.requests) < 200 and all(r.max_tokens for r in provider.requests)
    assert result["cost_usd"] <= 0.5 and billed(provider) <= 0.5
    assert result["cost_usd"] == pytest.approx(billed(provider), rel=1e-9)
    assert result["subcalls"] == result["totals"]["model_calls"] == len(provider.requests)


def test_an_unpriced_model_is_refused_under_the_cap_unless_allowed(tmp_path, provider):
    script = [f"```repl\na = llm_query_batched(['x' * 4000] * 20, model='{HOUSE}')\nprint(a[0])\n```",
              "FINAL(done)"]
    _, result = ask(tmp_path, script, "--sub-model", EXPENSIVE, "--max-cost", "0.001")
    assert provider.requests == [] and result["subcalls"] == 0
    assert "has no known price" in result["cells"][0]["stdout"]
    _, result = ask(tmp_path, script, "--sub-model", EXPENSIVE, "--max-cost", "0.001", "--allow-unpriced")
    assert len(provider.requests) == 20 == result["cost_unknown_calls"] and result["cost_usd"] is None
    assert result["prompt_tokens"] >= 20 * 1000


def test_leaving_early_never_leaves_the_run_running_and_aborts_the_call_in_flight(tmp_path, provider, monkeypatch):
    provider.latency_for = lambda r: 60

    def interrupted_follow(self, run, thread, user):  # the user presses Ctrl-C twice, 1 s in
        time.sleep(1.0)
        raise KeyboardInterrupt

    monkeypatch.setattr(rlm_command.Command, "_follow", interrupted_follow)
    doc = tmp_path / "doc.txt"
    doc.write_text("abc", encoding="utf-8")
    script = tmp_path / "s.json"
    script.write_text(json.dumps(["```repl\nr = llm_query('slow')\n```", "FINAL(x)"]), encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        call_command("rlm", "ask", "--doc", str(doc), "--question", "Q?", "--root-script", str(script),
                     "--sub-model", EXPENSIVE, stdout=io.StringIO(), stderr=io.StringIO())
    assert time.monotonic() - started < 5  # cancel noticed and the 60 s call abandoned within ~2 s
    run = Run.objects.get()
    assert run.status == RunStatus.CANCELLED
    assert run.subcalls == len(provider.requests) == 1


def test_the_runs_cap_is_clipped_to_what_is_left_of_the_teams_monthly_cap(user, team):
    team.monthly_cap_usd = Decimal("0.20")
    team.save()
    doc = make_document(team)
    earlier = services.run_create(user, team, "Q?", [doc.pk], enqueue=False)
    Run.objects.filter(pk=earlier.pk).update(cost_usd=0.15, status=RunStatus.SUCCEEDED)
    run = services.run_create(user, team, "Q?", [doc.pk], limits={"max_cost_usd": 5}, enqueue=False)
    assert build_spec(run).limits.max_cost_usd == pytest.approx(0.05)
    team.monthly_cap_usd = None
    team.save()
    assert build_spec(run).limits.max_cost_usd == 5


@pytest.mark.django_db(transaction=False)
def test_sigterm_ends_the_command_and_the_run_is_recorded_cancelled(tmp_path):
    """A real `manage.py rlm ask` process, a 60 s sub-call in flight, then SIGTERM: the process is gone
    within seconds and its run is finished (cancelled), not left running."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys

    from django.conf import settings as django_settings

    data = tmp_path / "data"
    with SimulatedProvider(root_model="none", responder=lambda r: "late", latency_for=lambda r: 60) as sp:
        env = {**os.environ, "RLMWEB_DATA_DIR": str(data), KEY_ENV: "sk-test",
               "RLMWEB_MODELS_JSON": json.dumps([{"model": EXPENSIVE, "label": "sim", "api_base": sp.base_url,
                                                  "api_key_env": KEY_ENV}])}
        env.pop("DATABASE_URL", None)
        manage = [sys.executable, str(django_settings.BASE_DIR / "manage.py")]
        subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, capture_output=True, timeout=120)
        doc = tmp_path / "doc.txt"
        doc.write_text("abc", encoding="utf-8")
        script = tmp_path / "s.json"
        script.write_text(json.dumps(["```repl\nr = llm_query('slow')\n```", "FINAL(x)"]), encoding="utf-8")
        proc = subprocess.Popen([*manage, "rlm", "ask", "--doc", str(doc), "--question", "Q?", "--root-script",
                                 str(script), "--sub-model", EXPENSIVE], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        try:
            for line in proc.stdout:
                if "sub-call #1" in line:
                    break
            deadline = time.monotonic() + 10
            while not sp.requests and time.monotonic() < deadline:
                time.sleep(0.05)
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
            took = time.monotonic() - sent
        finally:
            proc.kill()
    assert proc.returncode != 0 and took < 8
    with sqlite3.connect(data / "rlmweb.sqlite3") as db:
        rows = db.execute("SELECT status, subcalls FROM runs_run").fetchall()
    assert rows == [("cancelled", 1)] and len(sp.requests) == 1
