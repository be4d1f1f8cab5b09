"""What documents ask of the apps above them, without importing them.

`workers_idle(now)`: whether every worker slot is plausibly idle (nothing running, nothing just
finished, no extraction writing), asked by `services.documents_fail_stuck`. Only the runs app knows
what is running: it registers the answer (`register_workers_idle`, in apps.runs.receivers). With
nothing registered no worker is assumed idle, so a stuck extraction is left alone.
"""

from collections.abc import Callable
from datetime import datetime

_workers_idle: list[Callable[[datetime], bool]] = []


def register_workers_idle(check: Callable[[datetime], bool]) -> None:
    _workers_idle[:] = [check]


def workers_idle(now: datetime) -> bool:
    return bool(_workers_idle) and _workers_idle[0](now)
