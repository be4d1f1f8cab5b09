"""The apps depend on each other in one direction only (docs/architecture.md, "App dependencies").

Every module under apps/ is parsed with `ast` (nothing is imported or run). A module fails the
check when it
(a) imports another app inside a function body (a function-local import that hides a cycle), or
(b) imports an app that is not in a lower layer than its own (LAYERS, lowest first; apps of one
    layer do not import each other either).
Imports under `if TYPE_CHECKING:` are names for the type checker, never run, and not counted.
The shared web plumbing in rlmweb/web/ (errors, api, ratelimit) sits below every app and may only
read the lowest layer (accounts' token model); `rlmweb/web/home.py`, the start page, sits above
them all, like the rest of rlmweb/. Reactions that go up use hooks: a Django signal or a registry
in the lower app, connected by the upper one (apps/*/hooks.py, apps/*/receivers.py).
"""

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The layering, declared once: an app may import the apps of lower layers only.
LAYERS: list[set[str]] = [
    {"accounts"},  # identity, API tokens
    {"teams"},  # membership, roles and permissions, spending caps
    {"documents"},  # uploads, extraction
    {"helpers"},  # team helper functions (read from documents)
    {"runs"},  # asking, execution, the event stream
    {"review", "sharing", "comments"},  # readers of runs
    {"evals"},  # runs many runs, reads their reviews
]
LAYER_OF: dict[str, int] = {app: level for level, apps in enumerate(LAYERS) for app in apps}
# rlmweb/web/ (but home.py) is plumbing every app imports: it may read the lowest layer only.
PLUMBING_MAY_IMPORT = LAYERS[0]


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    imported: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: imports apps.{self.imported}: {self.why}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module an ImportFrom names (relative imports resolved against `module`)."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imported_apps(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> set[str]:
    """The apps (the `x` of `apps.x`) an import statement reads."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        base = _absolute(node, module, is_package)
        # `from apps import runs` names the app in the imported names
        targets = [f"{base}.{alias.name}" for alias in node.names] if base == "apps" else [base]
    return {t.split(".")[1] for t in targets if t.startswith("apps.") and len(t.split(".")) > 1}


def _typing_only(node: ast.AST) -> bool:
    """An `if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`) block without an else."""
    if not isinstance(node, ast.If) or node.orelse:
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def check_source(source: str, module: str, *, own_app: str | None, may_import: set[str] | None = None,
                 is_package: bool = False, path: str = "<source>") -> list[Violation]:
    """The violations of one module's source. `own_app`: the app the module belongs to (None for
    plumbing); `may_import`: the apps it may import (default: the layers below `own_app`'s)."""
    if may_import is None:
        level = LAYER_OF[own_app]
        may_import = {app for app, other in LAYER_OF.items() if other < level}
    violations: list[Violation] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                for app in sorted(_imported_apps(child, module, is_package) - {own_app}):
                    if in_function:
                        violations.append(Violation(path, child.lineno, app, "inside a function body; import it "
                                                    "at module level (if the layering allows it)"))
                    if app not in may_import:
                        violations.append(Violation(path, child.lineno, app, f"against the layering ({own_app or module} "
                                                    "may import " + (", ".join(sorted(may_import)) or "no app") + ")"))
            if _typing_only(child):  # `if TYPE_CHECKING:` imports never run: names for the type checker
                continue
            visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

    visit(ast.parse(source), False)
    return violations


def _app_modules() -> list[tuple[Path, str]]:
    return [(p, p.relative_to(ROOT / "apps").parts[0]) for p in sorted((ROOT / "apps").glob("*/**/*.py"))]


def test_every_app_is_in_one_layer():
    apps = {p.name for p in (ROOT / "apps").iterdir() if (p / "apps.py").exists()}
    assert apps == set(LAYER_OF), "add the app to LAYERS (and to the diagram in docs/architecture.md)"


def test_apps_import_only_lower_layers_and_only_at_module_level():
    modules = _app_modules()
    assert len(modules) > 100  # the walk finds the apps' modules
    violations = [
        v for path, app in modules
        for v in check_source(path.read_text(), _module_name(path), own_app=app,
                              is_package=path.name == "__init__.py", path=str(path.relative_to(ROOT)))
    ]
    assert not violations, "\n".join(map(str, violations))


def test_the_shared_plumbing_reads_no_app_above_the_lowest():
    plumbing = [p for p in sorted((ROOT / "rlmweb" / "web").glob("*.py")) if p.name != "home.py"]
    assert {p.name for p in plumbing} >= {"errors.py", "api.py", "ratelimit.py"}
    violations = [
        v for path in plumbing
        for v in check_source(path.read_text(), _module_name(path), own_app=None, may_import=PLUMBING_MAY_IMPORT,
                              is_package=path.name == "__init__.py", path=str(path.relative_to(ROOT)))
    ]
    assert not violations, "\n".join(map(str, violations))


# --- the checker itself, on synthetic sources -------------------------------------------------------

DOWNWARD = """
from apps.teams.models import Team
from apps.documents import services
import apps.accounts.models
from . import selectors
"""


def test_the_checker_accepts_downward_module_level_imports():
    assert check_source(DOWNWARD, "apps.runs.views", own_app="runs") == []


@pytest.mark.parametrize(("source", "imported"), [
    ("from apps.evals.cli import eval_command\n", "evals"),
    ("import apps.review.services\n", "review"),
    ("from apps import sharing\n", "sharing"),
    ("from ...review import services\n", "review"),  # relative, from apps/runs/management/x.py
])
def test_the_checker_refuses_a_back_import(source, imported):
    violations = check_source(source, "apps.runs.management.x", own_app="runs")
    assert [(v.imported, "against the layering" in v.why) for v in violations] == [(imported, True)]


def test_the_checker_refuses_a_sideways_import_within_a_layer():
    [violation] = check_source("from apps.comments.models import Comment\n", "apps.sharing.views", own_app="sharing")
    assert violation.imported == "comments"


def test_typing_only_imports_are_not_dependencies_but_an_else_branch_is():
    """Names imported under `if TYPE_CHECKING:` exist only for the type checker (they never run);
    an `else:` beside it does run, so that block still counts."""
    typing_only = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from apps.teams.models import Team\n"
    assert check_source(typing_only, "apps.accounts.requests", own_app="accounts") == []
    with_else = typing_only + "else:\n    from apps.teams.models import Team\n"
    assert {v.imported for v in check_source(with_else, "apps.accounts.requests", own_app="accounts")} == {"teams"}
    runtime = "import typing\nif typing.TYPE_CHECKING or True:\n    from apps.teams.models import Team\n"
    assert [v.imported for v in check_source(runtime, "apps.accounts.requests", own_app="accounts")] == ["teams"]


def test_the_checker_refuses_a_function_local_import_even_downward():
    source = "def f():\n    from apps.teams.services import team_month_spend\n    return team_month_spend\n"
    [violation] = check_source(source, "apps.runs.execution", own_app="runs")
    assert (violation.imported, violation.line) == ("teams", 2) and "inside a function body" in violation.why


def test_the_checker_reports_a_hidden_back_import_twice():
    source = "class A:\n    def m(self):\n        from apps.review.services import review_classify\n"
    whys = sorted(v.why.split(" ")[0] for v in check_source(source, "apps.runs.execution", own_app="runs"))
    assert whys == ["against", "inside"]


def test_the_checker_ignores_the_own_app_and_non_app_imports():
    source = "def f():\n    from apps.runs import tasks\n    import json\n    from django.db import models\n"
    assert check_source(source, "apps.runs.services", own_app="runs") == []


def test_a_back_import_added_to_a_real_module_is_caught():
    path = ROOT / "apps" / "documents" / "services.py"
    source = path.read_text() + "\n\ndef later():\n    from apps.runs.execution import workers_idle\n"
    violations = check_source(source, "apps.documents.services", own_app="documents")
    assert {v.imported for v in violations} == {"runs"} and len(violations) == 2
