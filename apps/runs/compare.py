"""Two runs side by side: the answers with their differences marked, each run's cost per root
iteration, and the code of the top-level cells aligned by position and diffed line by line.

Pure functions of event dicts (as stored and exported), so the view stays thin and tests need no
database. Differences are computed with difflib; every piece of text is escaped before it is marked.
"""

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

TOKEN = re.compile(r"\s+|\w+(?:[-.]\w+)*|[^\w\s]")  # codes like PLUM-42 or 3.14 stay one word


@dataclass
class IterationCost:
    iteration: int
    cost_usd: float = 0.0
    unknown_calls: int = 0
    tokens: int = 0
    subcalls: int = 0


@dataclass
class RunShape:
    """What the comparison needs of one run, read from its events."""

    iterations: dict[int, IterationCost] = field(default_factory=dict)
    cells: list[str] = field(default_factory=list)  # top-level cell code, in order


def run_shape(events: list[dict]) -> RunShape:
    """Costs per top-level iteration (the root turn, plus every sub-call and child-RLM turn below the
    cells of that iteration) and the top-level cells' code."""
    shape = RunShape()
    cell_scope: dict[str, str | None] = {}   # cell id -> rlm node id running it (None: the root)
    cell_iteration: dict[str, int] = {}
    node_cell: dict[str, str | None] = {}    # node id -> cell that launched it
    rlm_nodes: set[str] = set()

    def top_iteration(cell_id: str | None, guard: int = 0) -> int | None:
        while cell_id is not None and guard < 100:
            scope = cell_scope.get(cell_id)
            if scope is None:
                return cell_iteration.get(cell_id)
            cell_id = node_cell.get(scope)
            guard += 1
        return None

    def bucket(iteration: int | None) -> IterationCost | None:
        if iteration is None:
            return None
        return shape.iterations.setdefault(iteration, IterationCost(iteration))

    for event in events:
        data: Any = event.get("data") or {}  # (stored event JSON)
        kind = event.get("type")
        if kind == "root.turn":
            node = data.get("node_id")
            it = data.get("iteration") if node is None else top_iteration(node_cell.get(node))
            add(bucket(it), data)
        elif kind == "cell.started":
            cell_scope[data.get("cell_id")] = data.get("node_id")
            cell_iteration[data.get("cell_id")] = data.get("iteration")
            if data.get("node_id") is None and (data.get("depth") or 0) == 0:
                shape.cells.append(data.get("code") or "")
        elif kind == "subcall.started":
            node_cell[data.get("node_id")] = data.get("cell_id")
            if data.get("kind") == "rlm":
                rlm_nodes.add(data.get("node_id"))
        elif kind == "subcall.finished":
            b = bucket(top_iteration(node_cell.get(data.get("node_id"))))
            if b is not None:
                b.subcalls += 1
                # An rlm node's figures sum its child's turns and calls, each already counted.
                if data.get("node_id") not in rlm_nodes:
                    add(b, data)
    return shape


def add(b: IterationCost | None, data: dict) -> None:
    if b is None:
        return
    cost = data.get("cost_usd")
    if cost is None:
        b.unknown_calls += 1
    else:
        b.cost_usd += float(cost)
    b.tokens += int(data.get("prompt_tokens") or 0) + int(data.get("completion_tokens") or 0)


def word_diff(a: str, b: str) -> tuple[SafeString, SafeString]:
    """Both texts as HTML, with what only one of them says marked (<del> in a, <ins> in b). When one
    is empty there is nothing to compare: both come back escaped, unmarked."""
    if not (a or "").strip() or not (b or "").strip():
        return mark_safe(escape(a or "")), mark_safe(escape(b or ""))  # noqa: S308 - escaped
    ta, tb = TOKEN.findall(a or ""), TOKEN.findall(b or "")
    out_a: list[str] = []
    out_b: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        left, right = escape("".join(ta[i1:i2])), escape("".join(tb[j1:j2]))
        if op == "equal":
            out_a.append(left)
            out_b.append(right)
            continue
        if left.strip():
            out_a.append(f"<del>{left}</del>")
        else:
            out_a.append(left)
        if right.strip():
            out_b.append(f"<ins>{right}</ins>")
        else:
            out_b.append(right)
    return mark_safe("".join(out_a)), mark_safe("".join(out_b))  # noqa: S308 - every piece escaped above


@dataclass
class DiffLine:
    kind: str  # "same", "removed", "added"
    text: str


def line_diff(a: str, b: str) -> list[DiffLine]:
    """The lines of b against a: unchanged, removed (only in a) and added (only in b)."""
    la, lb = (a or "").splitlines(), (b or "").splitlines()
    lines: list[DiffLine] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, la, lb, autojunk=False).get_opcodes():
        if op == "equal":
            lines += [DiffLine("same", t) for t in la[i1:i2]]
            continue
        lines += [DiffLine("removed", t) for t in la[i1:i2]]
        lines += [DiffLine("added", t) for t in lb[j1:j2]]
    return lines


@dataclass
class CellPair:
    index: int
    a: str | None
    b: str | None
    lines: list[DiffLine]

    @property
    def same(self) -> bool:
        return self.a == self.b


def aligned_cells(a: list[str], b: list[str]) -> list[CellPair]:
    """Top-level cells paired by position (cell 1 with cell 1, …); a cell only one run has is diffed
    against nothing."""
    return [CellPair(i + 1, a[i] if i < len(a) else None, b[i] if i < len(b) else None,
                     line_diff(a[i] if i < len(a) else "", b[i] if i < len(b) else ""))
            for i in range(max(len(a), len(b)))]


def iteration_rows(a: RunShape, b: RunShape) -> list[tuple[int, IterationCost | None, IterationCost | None]]:
    its = sorted(set(a.iterations) | set(b.iterations))
    return [(i, a.iterations.get(i), b.iterations.get(i)) for i in its]
