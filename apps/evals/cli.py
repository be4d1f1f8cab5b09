"""`manage.py rlm eval`: build an evaluation, run every case in this process, print the matrix.

    python manage.py rlm eval --suite niah|multi|aggregate|pairs|file:PATH [--doc PATH ...]
        --model M [--model M2] [--sub-model M] [--mode rlm,rlm-no-subcalls,direct] [--sizes 100000,1000000]
        [--depths 0,0.5,1] [--cases N] [--seed S] [--max-cost USD] [--scorer NAME] [--judge-model M] [--json] [--user U]

Like `rlm ask`: the --doc files become Documents of the user's personal team, every case is an
ordinary Run executed here (no web server or worker needed), and the evaluation shows in the web
app afterwards. Exit status 0 when every case ran, whatever its score; 1 when some did not (cost
cap, team cap, Ctrl-C). Ctrl-C cancels the evaluation; `resume` on its page runs the rest.
"""

import json
import threading
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import connection

from apps.runs.hooks import register_cli_subcommand
from apps.runs.management.commands.rlm import celery_eager
from apps.runs.models import Mode
from apps.teams.services import team_create_personal, teams_for_user

from . import scorers, selectors, services
from .models import CaseStatus, EvalCase


def add_eval_parser(subparsers) -> None:
    ev = subparsers.add_parser("eval", help="Evaluate models and modes on a suite; prints the results matrix.")
    ev.add_argument("--suite", required=True, help="niah, multi, aggregate, pairs, or file:PATH (JSONL or CSV).")
    ev.add_argument("--doc", action="append", default=[], metavar="PATH", help="A document (repeatable).")
    ev.add_argument("--model", action="append", metavar="M", help="Root model (repeatable; default: the default model).")
    ev.add_argument("--mode", default=Mode.RLM, help="Comma-separated modes (default: rlm).")
    ev.add_argument("--sub-model", default="", metavar="M", help="Sub-calls' model (default: each root model).")
    ev.add_argument("--sizes", default=None, help="Comma-separated context sizes in characters (default: 100000).")
    ev.add_argument("--depths", default=None, help="niah: comma-separated needle depths, 0 (start) to 1 (end).")
    ev.add_argument("--cases", type=int, default=5, help="Questions per size (default 5).")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--max-cost", type=float, metavar="USD", help="No case starts once the evaluation spent this.")
    ev.add_argument("--scorer", default="", choices=("", *scorers.SCORERS), help="Score every case with this scorer.")
    ev.add_argument("--judge-model", default="", metavar="M", help="The model of the judge scorer.")
    ev.add_argument("--json", action="store_true", help="End with one JSON line: the evaluation's matrix and cases.")
    ev.add_argument("--user", default=None, help="Run as this user (default: 'cli', created if missing).")


def _split(value: str | None, kind=str) -> list:
    try:
        return [kind(v.strip().replace("_", "")) for v in (value or "").split(",") if v.strip()]
    except ValueError:
        raise CommandError(f"Not a comma-separated list of numbers: {value!r}") from None


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def case_line(case: EvalCase) -> str:
    if case.status != CaseStatus.SCORED:
        return f"  case {case.index} {case.model} {case.mode} {case.size:,}: {case.status} ({case.reason})"
    return (f"  case {case.index} {case.model} {case.mode} {case.size:,}: {case.score:.2f} · {case.reason[:100]}"
            f" · {_money(case.cost_usd)} · run {case.run_id}")


def matrix_lines(cells: list[dict]) -> list[str]:
    lines = [f"{'model':<24} {'mode':<16} {'size':>11} {'n':>4} {'accuracy':>9} {'95% CI':>13} "
             f"{'$/query':>10} {'p50 s':>7}  failures"]
    for c in cells:
        ci = "—" if not c["ci95"] else f"{_percent(c['ci95'][0])}–{_percent(c['ci95'][1])}"
        failures = ", ".join(f"{k} {v}" for k, v in c["failures"].items()) or "—"
        latency = "—" if c["latency_s_p50"] is None else f"{c['latency_s_p50']:.1f}"
        lines.append(f"{c['model']:<24} {c['mode']:<16} {c['size']:>11,} {c['cases']:>4} {_percent(c['accuracy']):>9} "
                     f"{ci:>13} {_money(c['cost_usd_mean']):>10} {latency:>7}  {failures}")
    return lines


def eval_command(command, options: dict) -> None:
    """The `rlm eval` action; `command` is the `rlm` management command (its user and document helpers)."""
    suite = options["suite"]
    question_file = None
    if suite.startswith("file:"):
        path = Path(suite[5:]).expanduser()
        if not path.is_file():
            raise CommandError(f"No such question file: {path}")
        question_file = services.question_file_read(path)
        suite = "file"
    paths = [Path(p).expanduser() for p in options["doc"]]
    for path in paths:
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
    user = command._user(options.get("user"))
    team = teams_for_user(user).first() or team_create_personal(user)
    documents = [command._document(user, team, path) for path in paths]
    try:
        with celery_eager():
            evaluation = services.evaluation_create(
                user, team, suite, options.get("model") or [settings.DEFAULT_ROOT_MODEL], _split(options["mode"]),
                _split(options.get("sizes"), int) or None, options["cases"], options["seed"],
                [d.pk for d in documents], question_file, options.get("max_cost"), 1,
                options.get("judge_model") or "", options.get("scorer") or "",
                sub_model=options.get("sub_model") or "", depths=_split(options.get("depths"), float) or None,
            )
    except ValidationError as exc:
        raise CommandError(command._messages(exc)) from None
    total = evaluation.cases.count()
    command.stdout.write(f"evaluation {evaluation.pk}: {total} cases")
    _run(command, evaluation, user)
    evaluation.refresh_from_db()
    for line in matrix_lines(selectors.matrix(evaluation)):
        command.stdout.write(line)
    command.stdout.write(f"spent {_money(evaluation.spent_usd)}"
                         f"{'' if evaluation.max_cost_usd is None else f' of a ${evaluation.max_cost_usd:g} cap'}")
    if options["json"]:
        command.stdout.write(json.dumps(selectors.evaluation_result(evaluation), ensure_ascii=False))
    not_run = evaluation.cases.exclude(status=CaseStatus.SCORED).count()
    if not_run:
        raise CommandError(f"{not_run} of {total} cases did not run (see their reasons).", returncode=1)


def _run(command, evaluation, user) -> None:
    """Run the cases on a thread; Ctrl-C on the main thread cancels the evaluation."""
    crashed: list[BaseException] = []

    def target() -> None:
        try:
            services.evaluation_run_here(evaluation, on_case=lambda c: command.stdout.write(case_line(c)))
        except BaseException as exc:  # reported by the main thread
            crashed.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=target, name=f"cli-eval-{evaluation.pk}", daemon=True)
    thread.start()
    cancelled = False
    while thread.is_alive():
        try:
            thread.join(0.2)
        except KeyboardInterrupt:
            if cancelled:
                raise
            cancelled = True
            command.stderr.write("Cancelling the evaluation… (Ctrl-C again to quit without waiting)")
            services.evaluation_cancel(user, evaluation)
    if crashed:
        raise CommandError(f"The evaluation crashed: {type(crashed[0]).__name__}: {crashed[0]}")


register_cli_subcommand("eval", add_eval_parser, eval_command)  # `manage.py rlm eval` (apps.runs.hooks)
