"""`manage.py rlm ask`: ask a question of files from the command line, persisted like a web run.

    python manage.py rlm ask --doc PATH [--doc PATH ...] --question TEXT [--mode rlm|rlm-no-subcalls|direct]
        [--model M] [--sub-model M] [--max-iterations N] [--max-depth N] [--max-cost USD]
        [--max-subcalls N] [--max-wall-s S] [--allow-unpriced] [--root-script FILE] [--json] [--user USERNAME]
    python manage.py rlm ask --follow-up RUN_ID --question TEXT [same options, no --doc]

`--follow-up` asks of a finished run's documents, with its conversation and its REPL variables
(`apps.runs.conversations.run_follow_up`); settings not given are the previous run's.

The files become Documents of the user's personal team through the documents app's services
(extracted in this process, no worker needed; identical content reuses the existing document),
the run is created by `services.run_create` with the same validation as the web form, and it is
executed here by `execution.run_execute` on a thread while the main thread prints its events from
the database as they are committed. The run then shows in the web app like any other. Ctrl-C
cancels the run (recorded as cancelled). Exit status 0 when the run succeeded, 1 otherwise.

Whatever happens to this process's main thread (a second Ctrl-C, an error), the run is never
left "running": it is cancelled and, if the engine has not ended it within a few seconds, finished
as cancelled here. Output is always valid text: lone surrogates a cell printed become U+FFFD, and
the --json line is ASCII (non-ASCII escaped).
"""

import contextlib
import json
import re
import shutil
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections, connection

from apps.documents.models import DocumentStatus
from apps.documents.services import DocumentError, document_create_from_file, document_extract, uploads_dir
from apps.runs import services
from apps.runs.hooks import cli_subcommands
from apps.runs.models import Mode, Run, RunEvent, RunStatus
from apps.teams.services import team_create_personal, teams_for_user
from worker.engine import events as ev
from worker.engine.text import sanitize
from worker.engine.vocabulary import StopReason

POLL_S = 0.2
# After the main thread leaves early, how long the engine gets to end the cancelled run itself.
FINISH_GRACE_S = 8.0
CODE_FENCE = re.compile(r"```[a-zA-Z]*\n.*?(```|$)", re.DOTALL)
CLI_USERNAME = "cli"
CODE_LINES = 8
OUTPUT_CHARS = 400


def abbreviate(text: str | None, chars: int = OUTPUT_CHARS, lines: int | None = None) -> str:
    text = (text or "").rstrip()
    if lines is not None:
        parts = text.splitlines()
        if len(parts) > lines:
            text = "\n".join(parts[:lines]) + f"\n… ({len(parts) - lines} more lines)"
    if len(text) > chars:
        text = text[:chars] + f"… ({len(text) - chars:,} more chars)"
    return text


def indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines()) if text else ""


def money(cost) -> str:
    return "unknown" if cost is None else f"${cost:.4f}"


@contextlib.contextmanager
def celery_eager():
    """Run tasks enqueued meanwhile (document extraction) in this process, then restore."""
    from rlmweb.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = before


class TrajectoryPrinter:
    """Turns events into short human lines: root turns, cells, sub-calls with counters, cost."""

    def __init__(self, write) -> None:
        self.write = write
        self.subcalls_started = 0
        self.subcalls_finished = 0
        self.cells: dict[str | None, dict] = {}

    def __call__(self, event: RunEvent) -> None:
        data = event.data or {}
        handler = getattr(self, "on_" + event.type.replace(".", "_"), None)
        if handler is not None:
            handler(data)

    def on_run_started(self, d: dict) -> None:
        docs = ", ".join(f"{x.get('name')} ({x.get('chars', 0):,} chars)" for x in d.get("documents") or [])
        self.write(f"▶ {d.get('mode')} · root {d.get('root_model')} · sub {d.get('sub_model')}"
                   f"{' · offline heuristic stand-in' if d.get('offline') else ''}")
        self.write(f"  documents: {docs}")

    def on_root_turn(self, d: dict) -> None:
        pad = "  " * (d.get("depth") or 0)
        forced = " (forced final)" if d.get("forced") else ""
        self.write(f"{pad}── turn {d.get('iteration')}{forced} · {d.get('model')} · "
                   f"{d.get('prompt_tokens') or 0}+{d.get('completion_tokens') or 0} tokens · "
                   f"{money(d.get('cost_usd'))} · {d.get('latency_s') or 0:.1f} s")
        # The code blocks are printed as cells; the turn shows only the reasoning around them.
        content = abbreviate(CODE_FENCE.sub("", d.get("content") or "").strip(), 300, 4)
        if content:
            self.write(indent(content, pad + "   "))

    def on_cell_started(self, d: dict) -> None:
        self.cells[d.get("cell_id")] = d
        pad = "  " * (d.get("depth") or 0)
        self.write(f"{pad}  [cell {d.get('iteration', '?')}.{(d.get('index') or 0) + 1}]")
        self.write(indent(abbreviate(d.get("code"), 1200, CODE_LINES), pad + "  │ "))

    def on_cell_finished(self, d: dict) -> None:
        pad = "  " * (d.get("depth") or 0)
        out = abbreviate(d.get("stdout"), OUTPUT_CHARS, 6)
        if out:
            self.write(indent(out, pad + "  → "))
        if d.get("error"):
            self.write(indent(abbreviate(d.get("error"), OUTPUT_CHARS, 4), pad + "  ✗ "))
        self.write(f"{pad}  ({d.get('duration_s') or 0:.2f} s{', killed' if d.get('killed') else ''})")

    def on_subcall_started(self, d: dict) -> None:
        self.subcalls_started += 1
        if self.subcalls_started <= 20 or self.subcalls_started % 50 == 0:
            pad = "  " * (d.get("depth") or 0)
            self.write(f"{pad}  ↳ sub-call #{self.subcalls_started} ({d.get('kind')}, depth {d.get('depth')}, "
                       f"{d.get('model')}, {d.get('prompt_chars') or 0:,} chars) "
                       f"[{self.subcalls_finished}/{self.subcalls_started} done]")

    def on_subcall_finished(self, d: dict) -> None:
        self.subcalls_finished += 1
        if d.get("error"):
            self.write(f"    ✗ sub-call {d.get('node_id')} failed: {abbreviate(d.get('error'), 200)}")
        elif self.subcalls_finished == self.subcalls_started or self.subcalls_finished % 50 == 0:
            self.write(f"    ✓ {self.subcalls_finished}/{self.subcalls_started} sub-calls done")

    def on_root_compacted(self, d: dict) -> None:
        pad = "  " * (d.get("depth") or 0)
        self.write(f"{pad}── history compacted: {d.get('tokens_before', 0):,} → {d.get('tokens_after', 0):,} tokens "
                   f"(window {d.get('window', 0):,}) · {money(d.get('cost_usd'))}")

    def on_snapshot_restored(self, d: dict) -> None:
        names = ", ".join(v.get("name", "") for v in d.get("variables") or []) or "none"
        self.write(f"  variables carried over: {names}" + (f" (error: {d['error']})" if d.get("error") else ""))
        for item in (d.get("not_carried") or [])[:20]:
            self.write(f"    not carried: {item.get('name')} ({item.get('type')}): {item.get('reason')}")

    def on_helpers_loaded(self, d: dict) -> None:
        for h in d.get("helpers") or []:
            state = f"failed: {abbreviate(h.get('error'), 200)}" if h.get("error") else "loaded"
            self.write(f"  helper {h.get('name')} v{h.get('version')} {state}")

    def on_final_answer(self, d: dict) -> None:
        self.write(f"■ final answer ({d.get('source')}):")
        self.write(indent(abbreviate(d.get("answer"), 4000, 40)))

    def on_run_finished(self, d: dict) -> None:
        totals = d.get("totals") or {}
        reason = d.get("failure_reason") or d.get("stop_reason") or ""
        self.write(f"■ {d.get('status')}{': ' + reason if reason else ''}")
        if totals:
            cost = None if totals.get("cost_unknown_calls") else totals.get("cost_usd")
            self.write(f"  {totals.get('iterations', 0)} iterations · {totals.get('subcalls', 0)} sub-calls · "
                       f"{(totals.get('prompt_tokens') or 0) + (totals.get('completion_tokens') or 0):,} tokens · "
                       f"cost {money(cost)}")
            if "model_calls" in totals:
                self.write(f"  model calls: {totals['model_calls']} (root {totals.get('root_calls', 0)} · sub "
                           f"{totals.get('llm_subcalls', 0)} · child roots {totals.get('child_root_calls', 0)}) · "
                           f"{totals.get('attempts', 0)} provider requests")
            if totals.get("incomplete_calls"):
                self.write(f"  {totals['incomplete_calls']} calls ended without an answer (timed out or cancelled): "
                           "their prompt tokens are counted, their completion is unknown")


def result_json(run: Run) -> dict:
    """The --json line: the run's outcome and its root cells, from the run row and its events."""
    codes: dict[str, str] = {}
    cells = []
    finished = RunEvent.objects.filter(run=run, type=ev.RUN_FINISHED).order_by("-seq").first()
    totals = ((finished.data or {}).get("totals") or {}) if finished else {}
    for event in RunEvent.objects.filter(run=run, type__in=(ev.CELL_STARTED, ev.CELL_FINISHED)).order_by("seq"):
        data: Any = event.data or {}  # (stored event JSON)
        if (data.get("depth") or 0) != 0:
            continue
        if event.type == ev.CELL_STARTED:
            codes[data.get("cell_id")] = data.get("code") or ""
        else:
            cells.append({"code": codes.get(data.get("cell_id"), data.get("code") or ""),
                          "stdout": data.get("stdout") or "", "error": data.get("error") or None})
    return {
        "status": run.status,
        "final_answer": run.final_answer if run.final_answer or run.status == RunStatus.SUCCEEDED else None,
        "answer_source": run.answer_source or None,
        "forced_final": run.forced_final,
        "mode": run.mode,
        "root_model": run.root_model,
        "sub_model": run.sub_model,
        "iterations": run.iterations,
        "subcalls": run.subcalls,
        "max_depth_reached": run.max_depth_reached,
        "cost_usd": None if run.cost_unknown_calls else run.cost_usd,
        "cost_unknown_calls": run.cost_unknown_calls,
        "tokens": run.tokens,
        "prompt_tokens": run.prompt_tokens,
        "completion_tokens": run.completion_tokens,
        "cells": cells,
        "totals": totals,
        "run_id": str(run.pk),
        "stop_reason": run.stop_reason or None,
        "failure_reason": run.failure_reason or None,
    }


class Command(BaseCommand):
    help = "Recursive Language Model runs from the command line."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, parser_class=CommandParser)
        ask = sub.add_parser("ask", help="Ask a question of one or more files; prints the trajectory live.")
        ask.add_argument("--doc", action="append", metavar="PATH", help="A file (repeatable).")
        ask.add_argument("--follow-up", metavar="RUN_ID", default=None,
                         help="Ask a follow-up of this finished run (its documents, conversation and REPL variables).")
        ask.add_argument("--question", required=True)
        ask.add_argument("--mode", default=None, choices=Mode.values, help=f"Default: {Mode.RLM} (a follow-up: "
                         "the previous run's).")
        ask.add_argument("--model", default=None, help="Root model (default: settings.DEFAULT_ROOT_MODEL).")
        ask.add_argument("--sub-model", default=None, help="Sub-call model (default: settings.DEFAULT_SUB_MODEL).")
        ask.add_argument("--max-iterations", type=int)
        ask.add_argument("--max-depth", type=int)
        ask.add_argument("--max-cost", type=float, metavar="USD")
        ask.add_argument("--max-subcalls", type=int,
                         help="Model calls made for REPL code: llm sub-calls and child RLMs' root turns.")
        ask.add_argument("--max-wall-s", "--max-wall", dest="max_wall_s", type=int, metavar="SECONDS")
        ask.add_argument("--allow-unpriced", action="store_true",
                         help="Allow models of unknown price under the cost cap (their spend shows as unknown).")
        ask.add_argument("--root-script", metavar="FILE",
                         help="JSON list of root replies to replay instead of calling the root model.")
        ask.add_argument("--json", action="store_true", help="End with one JSON line describing the outcome.")
        ask.add_argument("--user", default=None, help=f"Run as this user (default: '{CLI_USERNAME}', created if missing).")
        for add_parser, _ in cli_subcommands.values():  # `eval`, from apps.evals (apps.runs.hooks)
            add_parser(sub)

    def handle(self, *args, **options) -> None:
        if options["action"] == "ask":
            self.ask(options)
        else:
            cli_subcommands[options["action"]][1](self, options)

    # --- ask ---------------------------------------------------------------------------------------

    def ask(self, options: dict) -> None:
        root_script = self._root_script(options.get("root_script"))
        if options.get("follow_up") is not None:
            if options.get("doc"):
                raise CommandError("--follow-up asks of the previous run's documents: leave out --doc.")
            run = self._follow_up(options)
        else:
            if not options.get("doc"):
                raise CommandError("Give at least one --doc PATH (or --follow-up RUN_ID).")
            run = self._create(options)
        self.stdout.write(f"run {run.pk}")
        self._execute(run, root_script, run.created_by, allow_unpriced=options.get("allow_unpriced") or None)
        run.refresh_from_db()
        if options["json"]:
            self.stdout.write(json.dumps(result_json(run), ensure_ascii=True))
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"Run {run.status}: {run.failure_reason or run.stop_reason}", returncode=1)

    @staticmethod
    def _limits(options: dict) -> dict:
        return {
            name: options[key]
            for name, key in (("max_iterations", "max_iterations"), ("max_depth", "max_depth"),
                              ("max_cost_usd", "max_cost"), ("max_subcalls", "max_subcalls"),
                              ("max_wall_s", "max_wall_s"))
            if options.get(key) is not None
        }

    def _follow_up(self, options: dict) -> Run:
        from apps.runs.conversations import run_follow_up
        from apps.runs.selectors import run_get_for_user

        user = self._user(options.get("user"))
        try:
            previous = run_get_for_user(user, uuid.UUID(str(options["follow_up"])))
        except ValueError:
            previous = None
        if previous is None:
            raise CommandError(f"No run {options['follow_up']} that {user.get_username()} can see.")
        try:
            return run_follow_up(user, previous, options["question"], options.get("mode"), options.get("model"),
                                 options.get("sub_model"), self._limits(options), enqueue=False)
        except ValidationError as exc:
            raise CommandError(self._messages(exc)) from None
        except services.RunConflict as exc:
            raise CommandError(str(exc)) from None

    def _create(self, options: dict) -> Run:
        paths = [Path(p).expanduser() for p in options["doc"]]
        for path in paths:
            if not path.is_file():
                raise CommandError(f"No such file: {path}")
        user = self._user(options.get("user"))
        team = teams_for_user(user).first() or team_create_personal(user)
        documents = [self._document(user, team, path) for path in paths]
        try:
            return services.run_create(
                user, team, options["question"], [d.pk for d in documents], options["mode"] or Mode.RLM,
                options.get("model"), options.get("sub_model"), self._limits(options), enqueue=False,
            )
        except ValidationError as exc:
            raise CommandError(self._messages(exc)) from None

    def _write(self, text: str) -> None:
        """One line of the trajectory, always writable: surrogates replaced, and characters the
        terminal's encoding cannot show escaped rather than raising."""
        text = sanitize(text)
        try:
            self.stdout.write(text)
        except UnicodeEncodeError:
            self.stdout.write(text.encode("ascii", "backslashreplace").decode("ascii"))

    def _execute(self, run: Run, root_script: list[str] | None, user, allow_unpriced: bool | None = None) -> None:
        from apps.runs.execution import run_execute

        crashed: list[BaseException] = []

        def target() -> None:
            try:
                run_execute(run.pk, worker="cli", root_script=root_script, allow_unpriced=allow_unpriced)
            except BaseException as exc:  # reported by the main thread
                crashed.append(exc)
            finally:
                connection.close()

        thread = threading.Thread(target=target, name=f"cli-run-{run.pk}", daemon=True)
        thread.start()
        previous = self._install_signal_handlers()
        try:
            self._follow(run, thread, user)
        finally:
            try:
                self._ensure_finished(run, thread, user)
            finally:
                self._restore_signal_handlers(previous)
        close_old_connections()
        if crashed:
            raise CommandError(f"The run crashed: {type(crashed[0]).__name__}: {crashed[0]}")

    def _follow(self, run: Run, thread: threading.Thread, user) -> None:
        printer = TrajectoryPrinter(self._write)
        last = 0
        cancelled = False
        while True:
            try:
                alive = thread.is_alive()
                events = list(RunEvent.objects.filter(run=run, seq__gt=last).order_by("seq")[:1000])
                for event in events:
                    printer(event)
                    last = event.seq
                if not events and not alive:
                    break
                if not events:
                    time.sleep(POLL_S)
            except KeyboardInterrupt:
                if cancelled:
                    raise
                cancelled = True
                self.stderr.write("Cancelling… (Ctrl-C again to quit without waiting)")
                self._cancel(run, user)

    @staticmethod
    def _cancel(run: Run, user) -> None:
        """Record the cancel, and stop the engine in this process at once (not at its next poll)."""
        from apps.runs.execution import run_cancel_here

        run_cancel_here(run.pk)
        with contextlib.suppress(services.RunConflict):
            services.run_cancel(user, Run.objects.get(pk=run.pk))

    @staticmethod
    def _install_signal_handlers() -> dict:
        """Ctrl-C cancels even when the shell started us with SIGINT ignored (a background job of a
        script); SIGTERM and SIGHUP end the command through the same path that finishes the run."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def terminate(signum, frame):
            raise SystemExit(128 + signum)

        previous = {}
        for signum, handler in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, terminate),
                                (signal.SIGHUP, terminate)):
            with contextlib.suppress(ValueError, OSError):
                previous[signum] = signal.signal(signum, handler)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict) -> None:
        for signum, handler in previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signum, handler)

    def _ensure_finished(self, run: Run, thread: threading.Thread, user) -> None:
        """Never leave the run "running" when this command ends: ask it to cancel, give the engine a
        few seconds to end it, and otherwise end it here as cancelled (the run thread is a daemon and
        dies with the process)."""
        from apps.runs.lifecycle import end_run

        try:
            current = Run.objects.get(pk=run.pk)
            if current.is_finished:
                return
            with contextlib.suppress(Exception):
                self._cancel(current, user)
            thread.join(FINISH_GRACE_S)
            current.refresh_from_db()
            if not current.is_finished:
                end_run(current.pk, RunStatus.CANCELLED, "The command line exited before the run finished.",
                        StopReason.CANCELLED)
        except Exception as exc:  # the process is ending anyway: say what could not be done
            self.stderr.write(f"Could not finish run {run.pk}: {type(exc).__name__}: {exc}")

    # --- helpers -----------------------------------------------------------------------------------

    def _root_script(self, path: str | None) -> list[str] | None:
        if not path:
            return None
        try:
            script = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise CommandError(f"Cannot read the root script: {exc}") from None
        except ValueError as exc:
            raise CommandError(f"The root script is not valid JSON: {exc}") from None
        if not isinstance(script, list) or not script or not all(isinstance(m, str) for m in script):
            raise CommandError("The root script must be a non-empty JSON list of assistant message strings.")
        return script

    def _user(self, username: str | None):
        model = get_user_model()
        if username:
            user = model.objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"No user named {username!r}.")
            return user
        user, created = model.objects.get_or_create(username=CLI_USERNAME)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        return user

    def _document(self, user, team, path: Path):
        """The file as a ready Document of the team, through the documents app's upload services."""
        # document_create_from_file adopts (moves) its file: give it a copy, never the user's file.
        copy = uploads_dir() / f"cli-{uuid.uuid4().hex}.part"
        shutil.copyfile(path, copy)
        try:
            with celery_eager():
                outcome = document_create_from_file(user=user, team=team, name=path.name, path=copy)
        except DocumentError as exc:
            raise CommandError(f"{path}: {exc.message}") from None
        finally:
            copy.unlink(missing_ok=True)
        document = outcome.document
        if document.status == DocumentStatus.EXTRACTING:
            document_extract(str(document.pk))
        document.refresh_from_db()
        if document.status != DocumentStatus.READY:
            raise CommandError(f"{path}: {document.error or 'text extraction failed'}")
        verb = "added" if outcome.created else "already known"
        self.stdout.write(f"document {document.name}: {document.chars:,} chars ({verb}, {document.pk})")
        return document

    @staticmethod
    def _messages(exc: ValidationError) -> str:
        if hasattr(exc, "error_dict"):
            return "\n".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
        return " ".join(exc.messages)

