"""The sandboxed REPL of an RLM run: RestrictedPython in an isolated, resource-capped process tree.

Host-side interface (see ``host.py``)::

    with Sandbox([("report.txt", "/path/report.txt")], handler, SandboxLimits()) as sb:
        result = sb.run_cell("print(len(context))")

``REPL_RULES`` is the short text the engine puts in the root model's system prompt.
"""

from worker.sandbox.host import (
    CellResult,
    FinalAnswer,
    Sandbox,
    SandboxCallError,
    SandboxError,
    SandboxLimits,
    degraded_allowed,
    missing_layers,
    probe_protections,
)
from worker.sandbox.rules import ALLOWED_MODULES, REPL_RULES

__all__ = [
    "ALLOWED_MODULES",
    "REPL_RULES",
    "CellResult",
    "FinalAnswer",
    "Sandbox",
    "SandboxCallError",
    "SandboxError",
    "SandboxLimits",
    "degraded_allowed",
    "missing_layers",
    "probe_protections",
]
