"""System checks: the sandbox's isolation layers on this host (``manage.py check``)."""

from __future__ import annotations

import sys

from django.core import checks

from worker.sandbox import degraded_allowed, missing_layers, probe_protections
from worker.sandbox.host import ALLOW_DEGRADED_ENV


@checks.register("sandbox")
def sandbox_layers(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    # Only `manage.py check` probes: it starts a sandbox process, which every other command (and
    # its output) should not pay for. Runs refuse to start on a host without the layers anyway.
    if sys.argv[1:2] != ["check"]:
        return []
    try:
        protections = probe_protections()
    except Exception as exc:  # the sandbox cannot even start: no run can work
        return [checks.Error(f"The REPL sandbox could not start: {exc}", id="rlmweb.E010")]
    missing = missing_layers(protections)
    # Each active layer is listed by a plain `check`; `check --deploy` reports only problems.
    listing = "--deploy" not in sys.argv
    found: list[checks.CheckMessage] = [
        checks.Info(f"sandbox layer {name}: {state}", id="rlmweb.I010")
        for name, state in protections.items() if name not in missing and listing
    ]
    for name, state in missing.items():
        if degraded_allowed():
            found.append(checks.Warning(
                f"sandbox layer {name} is missing ({state}); REPL cells run anyway because "
                f"{ALLOW_DEGRADED_ENV}=1", id="rlmweb.W010"))
        else:
            found.append(checks.Error(
                f"sandbox layer {name} is missing ({state}): runs will fail at their first cell",
                hint=f"Use a host with Landlock and seccomp, or set {ALLOW_DEGRADED_ENV}=1 to run on the "
                     "language layer alone.", id="rlmweb.E011"))
    return found
