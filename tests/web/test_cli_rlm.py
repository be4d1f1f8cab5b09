"""`manage.py rlm ask`: documents and the run persisted like the web app's, trajectory printed live,
a final JSON line, and needles found with the offline model in multi-megabyte documents."""

import io
import json
import random

import pytest
from django.core.management import CommandError, call_command

from apps.documents.models import Document
from apps.runs.models import Run, RunDocument, RunEvent, RunStatus
from tests.web.runs_factories import clean_rate_limits  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_rate_limits", "data_dir")]

NEEDLE = "Note for the auditors: the vault access code is QX-7431-MAUVE."
JSON_KEYS = {"status", "final_answer", "mode", "iterations", "subcalls", "max_depth_reached", "cost_usd", "tokens",
             "cells", "run_id", "failure_reason"}


def haystack(path, megabytes: float, needle: str | None = NEEDLE, seed: int = 3) -> str:
    """A text of `megabytes` of plausible filler lines, with `needle` once somewhere in the middle."""
    rng = random.Random(seed)
    words = ["ledger", "river", "quarterly", "harbor", "the", "of", "and", "committee", "report", "shipment", "invoice", "north", "granite", "meeting", "minutes", "supply", "weather", "station", "orchard"]
    lines, size = [], 0
    while size < megabytes * 1_000_000:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(8, 16))) + "."
        lines.append(line)
        size += len(line) + 1
    if needle:
        lines.insert(rng.randint(len(lines) // 3, 2 * len(lines) // 3), needle)
    path.write_text("\n".join(lines), encoding="utf-8")
    return str(path)


def ask(*args: str) -> tuple[str, dict | None]:
    out = io.StringIO()
    call_command("rlm", "ask", *args, stdout=out, stderr=io.StringIO())
    text = out.getvalue()
    last = text.strip().splitlines()[-1]
    return text, json.loads(last) if last.startswith("{") else None


def test_offline_model_finds_a_needle_in_a_ten_megabyte_document(tmp_path):
    doc = haystack(tmp_path / "archive.txt", 10)
    text, result = ask("--doc", doc, "--question", "What is the vault access code?", "--json")
    assert set(result) >= JSON_KEYS
    assert result["status"] == "succeeded", result["failure_reason"]
    assert "QX-7431-MAUVE" in result["final_answer"]
    assert result["mode"] == "rlm" and result["iterations"] >= 1
    run = Run.objects.get(pk=result["run_id"])
    assert run.root_model == "offline/heuristic" and run.created_by.username == "cli"
    assert run.status == RunStatus.SUCCEEDED and run.final_answer == result["final_answer"]
    seqs = list(RunEvent.objects.filter(run=run).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and seqs[-1] == run.last_seq
    document = Document.objects.get(runs=run)
    assert document.name == "archive.txt" and document.chars > 10_000_000 and document.status == "ready"
    assert "QX-7431-MAUVE" in text.split(result["run_id"], 1)[1]  # the answer was printed before the JSON


def test_offline_model_finds_the_document_holding_the_needle_among_several(tmp_path):
    docs = [haystack(tmp_path / f"part{i}.txt", 3.5, NEEDLE if i == 2 else None, seed=i) for i in range(3)]
    _, result = ask(*sum((["--doc", d] for d in docs), []), "--question", "What is the vault access code?", "--json")
    assert result["status"] == "succeeded" and "QX-7431-MAUVE" in result["final_answer"]
    run = Run.objects.get(pk=result["run_id"])
    assert [rd.document.name for rd in RunDocument.objects.filter(run=run).order_by("position")] == [
        "part0.txt", "part1.txt", "part2.txt"]


def test_a_root_script_replays_recorded_root_turns(tmp_path):
    doc = haystack(tmp_path / "archive.txt", 2)
    script = tmp_path / "script.json"
    script.write_text(json.dumps([
        "Probe first.\n```repl\nprint(len(context))\n```",
        "Find the line.\n```repl\nstart = context.find('vault access code is')\n"
        "line = context[start:context.find('\\n', start)]\nprint(line)\n```",
        "```repl\nanswer = line.split(' is ')[1].rstrip('.')\n```",
        "FINAL_VAR(answer)",
    ]))
    text, result = ask("--doc", doc, "--question", "What is the vault access code?", "--root-script",
                       str(script), "--mode", "rlm-no-subcalls", "--max-iterations", "6", "--json")
    assert result["status"] == "succeeded", result["failure_reason"]
    assert result["final_answer"] == "QX-7431-MAUVE"
    assert result["mode"] == "rlm-no-subcalls" and result["subcalls"] == 0
    assert [c["code"].strip().splitlines()[0] for c in result["cells"]] == [
        "print(len(context))", "start = context.find('vault access code is')",
        "answer = line.split(' is ')[1].rstrip('.')"]
    assert result["cells"][1]["stdout"].strip() == "vault access code is QX-7431-MAUVE."
    assert all(c["error"] is None for c in result["cells"])
    assert "print(len(context))" in text and "turn 2" in text  # the trajectory was printed
    assert Run.objects.get(pk=result["run_id"]).limits["max_iterations"] == 6


def test_json_line_shape(tmp_path):
    doc = haystack(tmp_path / "a.txt", 0.2)
    _, result = ask("--doc", doc, "--question", "What is the vault access code?", "--json", "--max-depth", "1")
    assert isinstance(result["cells"], list) and all(set(c) == {"code", "stdout", "error"} for c in result["cells"])
    assert isinstance(result["tokens"], int) and isinstance(result["iterations"], int)
    assert result["cost_usd"] is None or isinstance(result["cost_usd"], float)
    assert result["failure_reason"] is None


def test_the_same_file_twice_reuses_its_document(tmp_path):
    doc = haystack(tmp_path / "a.txt", 0.2)
    ask("--doc", doc, "--question", "Q?")
    ask("--doc", doc, "--question", "Q again?")
    assert Document.objects.count() == 1 and Run.objects.count() == 2
    assert (tmp_path / "a.txt").exists()  # the user's own file is never moved


def test_runs_as_the_given_user_in_their_team(tmp_path, user, team):
    doc = haystack(tmp_path / "a.txt", 0.2)
    _, result = ask("--doc", doc, "--question", "Q?", "--user", user.username, "--json")
    run = Run.objects.get(pk=result["run_id"])
    assert run.created_by == user and run.team == team


@pytest.mark.parametrize(("extra", "message"), [
    (["--max-depth", "9"], "between 1 and 5"),
    (["--max-iterations", "0"], "between 1 and 200"),
    (["--max-cost", "0"], "more than 0"),
    (["--model", "acme/none"], "Unknown model 'acme/none'"),
    (["--user", "nobody"], "No user named 'nobody'"),
    (["--root-script", "/nonexistent.json"], "Cannot read the root script"),
])
def test_bad_arguments_are_refused_before_anything_runs(tmp_path, extra, message):
    doc = haystack(tmp_path / "a.txt", 0.05)
    with pytest.raises(CommandError, match=message):
        ask("--doc", doc, "--question", "Q?", *extra)
    assert Run.objects.count() == 0


def test_a_missing_file_or_bad_root_script_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        ask("--doc", str(tmp_path / "nope.txt"), "--question", "Q?")
    bad = tmp_path / "s.json"
    bad.write_text('{"not": "a list"}')
    doc = haystack(tmp_path / "a.txt", 0.05)
    with pytest.raises(CommandError, match="non-empty JSON list"):
        ask("--doc", doc, "--question", "Q?", "--root-script", str(bad))
    assert Run.objects.count() == 0
