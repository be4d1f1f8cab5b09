"""What a top-level RLM starts with beyond its documents, and what it leaves behind.

- A follow-up run starts with the earlier questions and answers of its conversation (a short
  preamble in the root's first turn, never the earlier trajectories) and the REPL variables the
  previous run left: a snapshot of plain data (``worker.sandbox.snapshot``) restored before the
  first cell. What was not carried is told to the root and recorded in an event.
- The team's helpers (named functions, RestrictedPython source under the cells' policy) run as
  cells hidden from the root but recorded (``helpers.loaded``), before its first turn, and are
  listed to it with their docstrings.
- When the run ends, its REPL's plain data is written to ``save_to`` for a later follow-up.

Only the top-level RLM (depth 0) does any of this; child RLMs start empty.
"""

import ast
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.engine import events as ev
from worker.sandbox import snapshot as snapshots

if TYPE_CHECKING:
    from worker.engine.runner import RLM  # (runner imports this module)

logger = logging.getLogger(__name__)

SNAPSHOT_MAX_MB_ENV = "RLMWEB_SNAPSHOT_MAX_MB"
DEFAULT_SNAPSHOT_MAX_MB = 64
MAX_SNAPSHOT_MB = 64 * 1024  # the cell channel caps a frame far below this; host.snapshot clamps
ANSWER_PREVIEW_CHARS = 2000
MAX_EARLIER = 20


@dataclass(frozen=True)
class Helper:
    name: str
    version: int
    source: str


@dataclass(frozen=True)
class Earlier:
    """One earlier exchange of the conversation."""

    question: str
    answer: str


@dataclass
class Session:
    conversation: list[Earlier] = field(default_factory=list)
    restore_from: str | None = None  # the snapshot file of the run this one follows up
    save_to: str | None = None  # where this run's snapshot is written when it ends
    helpers: list[Helper] = field(default_factory=list)


def snapshot_max_bytes() -> int:
    raw = os.environ.get(SNAPSHOT_MAX_MB_ENV, "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_SNAPSHOT_MAX_MB
    except ValueError:
        mb = DEFAULT_SNAPSHOT_MAX_MB
    return int(min(max(mb, 0.001), MAX_SNAPSHOT_MB) * 1024**2)


# ---------------------------------------------------------------------------------------------
# helpers' source, read (never run) on the host
# ---------------------------------------------------------------------------------------------
def helper_signature(helper: Helper) -> tuple[str, str]:
    """``name(args)`` and the docstring of the helper's function, read from its source with ast."""
    try:
        tree = ast.parse(helper.source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return f"{helper.name}(...)", ""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == helper.name:
            return f"{helper.name}({ast.unparse(node.args)})", ast.get_docstring(node) or ""
    return f"{helper.name}(...)", ""


def defined_names(source: str) -> set[str]:
    """The top-level names a helper's source binds (functions, classes, assignments)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


# ---------------------------------------------------------------------------------------------
# start and end of the top-level RLM
# ---------------------------------------------------------------------------------------------
def begin(rlm: "RLM") -> str:
    """Restore the snapshot, load the helpers; returns what the root's first turn adds."""
    session: Session = rlm.state.spec.session
    if rlm.depth != 0:
        return ""
    parts = [_conversation_text(session.conversation)]
    if session.restore_from:
        parts.append(_restore(rlm, session.restore_from))
    if session.helpers:
        parts.append(_load_helpers(rlm, session.helpers))
    text = "\n\n".join(p for p in parts if p)
    return f"\n\n{text}" if text else ""


def end(rlm: "RLM") -> None:
    """Write the REPL's plain data to ``save_to`` (top-level RLM with a running sandbox only)."""
    session: Session = rlm.state.spec.session
    if rlm.depth != 0 or not session.save_to or rlm.sandbox is None:
        return
    exclude = set().union(*(defined_names(h.source) for h in session.helpers)) if session.helpers else set()
    data = {"variables": [], "not_carried": [], "bytes": 0, "error": None}
    try:
        checked = rlm.sandbox.snapshot(snapshot_max_bytes(), sorted(exclude))
        raw = snapshots.dumps(checked)
        target = Path(session.save_to)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(raw)
        partial.replace(target)
        data.update(variables=[{"name": n, "type": t} for n, t in checked["types"].items()],
                    not_carried=checked["not_carried"], bytes=len(raw))
    except Exception as exc:  # a run's answer must not be lost because its snapshot was
        logger.warning("Saving the REPL snapshot failed", exc_info=True)
        data["error"] = f"{type(exc).__name__}: {exc}"[:500]
    rlm.state.emit(ev.SNAPSHOT_SAVED, **data)


def _restore(rlm: "RLM", path: str) -> str:
    max_bytes = snapshot_max_bytes()
    restored: list[dict[str, Any]] = []
    not_carried: list[dict[str, Any]] = []
    error = None
    try:
        size = os.path.getsize(path)
        if size > max_bytes + 1024**2:
            raise snapshots.SnapshotInvalid(f"the snapshot is {size:,} bytes, over the cap of {max_bytes:,}")
        checked = snapshots.loads(Path(path).read_bytes(), max_bytes)
        assert rlm.sandbox is not None  # (set by RLM.run)
        outcome = rlm.sandbox.restore(checked)
        restored = [{"name": n, "type": checked["types"].get(n, "?")} for n in outcome["restored"]]
        not_carried = checked["not_carried"] + [
            {"name": str(r.get("name", ""))[:200], "type": "?", "reason": str(r.get("reason", ""))[:300]}
            for r in outcome["rejected"]]
    except Exception as exc:
        logger.warning("Restoring the REPL snapshot %s failed", path, exc_info=True)
        error = f"{type(exc).__name__}: {exc}"[:500]
    rlm.state.emit(ev.SNAPSHOT_RESTORED, variables=restored, not_carried=not_carried, error=error)
    lines = ["## Variables carried over from the previous run"]
    if error:
        lines.append(f"None: the previous run's variables could not be restored ({error}).")
    elif restored:
        lines.append("Already in the REPL, as the previous run left them: "
                     + ", ".join(f"`{v['name']}` ({v['type']})" for v in restored) + ".")
    else:
        lines.append("None (the previous run left no plain-data variables).")
    if not_carried:
        lines.append("Not carried (recompute them if you need them): "
                     + "; ".join(f"`{v['name']}` ({v['type']}): {v['reason']}" for v in not_carried[:50]))
    return "\n".join(lines)


def _load_helpers(rlm: "RLM", helpers: list[Helper]) -> str:
    """Each helper's source runs as its own cell (so one broken helper leaves the others defined)."""
    loaded: list[dict[str, Any]] = []
    assert rlm.sandbox is not None  # (set by RLM.run)
    for helper in helpers:
        result = rlm.sandbox.run_cell(helper.source)
        signature, doc = helper_signature(helper)
        loaded.append({"name": helper.name, "version": helper.version, "signature": signature, "doc": doc,
                       "error": result.error, "stdout": result.stdout[:2000]})
    rlm.state.emit(ev.HELPERS_LOADED, helpers=loaded)
    lines = ["## Team helpers (already defined in the REPL; call them like any function)"]
    for h in loaded:
        if h["error"]:
            lines.append(f"- `{h['signature']}`: failed to load ({h['error'].splitlines()[-1][:200]})")
        else:
            doc = " ".join(h["doc"].split())[:400]
            lines.append(f"- `{h['signature']}`" + (f": {doc}" if doc else ""))
    return "\n".join(lines)


def _conversation_text(conversation: list[Earlier]) -> str:
    if not conversation:
        return ""
    earlier = conversation[-MAX_EARLIER:]
    lines = ["## Earlier in this conversation (same documents; your REPL may still hold its work)"]
    if len(conversation) > len(earlier):
        lines.append(f"({len(conversation) - len(earlier)} earlier exchanges left out.)")
    for i, item in enumerate(earlier, 1):
        answer = item.answer.strip() or "(no answer)"
        if len(answer) > ANSWER_PREVIEW_CHARS:
            answer = answer[:ANSWER_PREVIEW_CHARS] + f" [... {len(answer) - ANSWER_PREVIEW_CHARS:,} more characters]"
        lines.append(f"{i}. Question: {item.question.strip()[:ANSWER_PREVIEW_CHARS]}\n   Answer: {answer}")
    return "\n".join(lines)
