"""What runs announce to the apps above them, and what those add to runs (runs never import them).

`run_finished(run)`: sent when the web app or a worker ended a run (`execution._classify`), after
its terminal event is in the database. Receivers: apps.review.receivers (files the run for review).
A receiver's exception reaches the sender, which logs it and goes on: the periodic sweep retries.

`register_cli_subcommand(name, add_parser, handle)`: a subcommand of `manage.py rlm` besides `ask`
(apps.evals registers `eval` in EvalsConfig.ready). `add_parser(subparsers)` adds its parser,
`handle(command, options)` runs it.
"""

from collections.abc import Callable

from django.dispatch import Signal

run_finished = Signal()

CliHandler = Callable[[object, dict], None]
cli_subcommands: dict[str, tuple[Callable[[object], None], CliHandler]] = {}


def register_cli_subcommand(name: str, add_parser: Callable[[object], None], handle: CliHandler) -> None:
    cli_subcommands[name] = (add_parser, handle)
