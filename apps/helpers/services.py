"""Team REPL helpers: save (a new version), deactivate, test against a sample document, and what a
run gets (the versions it records, their sources for the engine).

A helper is one named function in RestrictedPython source, under the same policy as a cell: source
that does not compile under that policy, or that does not define a function of the helper's name
at top level, cannot be saved. Only the team's owners and admins (`change_any`) manage helpers;
everyone who can see the team sees them.
"""

import ast
import logging

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from apps.documents.models import Document, DocumentStatus
from apps.teams.models import Team
from apps.teams.permissions import can

from .models import Helper, HelperVersion

logger = logging.getLogger(__name__)

MAX_SOURCE_CHARS = 20_000
MAX_NAME_CHARS = 64
MAX_HELPERS_PER_TEAM = 50
MAX_EXPRESSION_CHARS = 2_000
TEST_SAMPLE_CHARS = 200_000
TEST_TIMEOUT_S = 10.0
RESERVED = frozenset({"llm_query", "llm_query_batched", "rlm_query", "FINAL", "FINAL_VAR", "SHOW_VARS", "context",
                      "context_names", "print", "len", "dir"})


class HelperNotFound(Exception):
    """No such helper in a team of the user's."""


def can_manage(user: User, team: Team) -> bool:
    return can(user, "change_any", team)


def _require_manage(user: User, team: Team) -> None:
    if not can(user, "view", team):
        raise HelperNotFound("No such team.")
    if not can_manage(user, team):
        raise PermissionDenied("Only the team's owners and admins can change its helpers.")


def helper_check(name: object, source: object) -> tuple[str, str, dict[str, str]]:
    """The helper's signature and docstring, and field errors (empty when it may be saved)."""
    errors: dict[str, str] = {}
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_") or len(name) > MAX_NAME_CHARS:
        errors["name"] = f"A Python name (letters, digits, _; not starting with _), at most {MAX_NAME_CHARS} characters."
    elif name in RESERVED:
        errors["name"] = f"{name} is a name the REPL reserves."
    if not isinstance(source, str) or not source.strip():
        errors["source"] = "Write the helper's source: a def of a function with the helper's name."
    elif len(source) > MAX_SOURCE_CHARS:
        errors["source"] = f"The source is {len(source):,} characters; at most {MAX_SOURCE_CHARS:,}."
    if errors:
        return "", "", errors
    assert isinstance(source, str) and isinstance(name, str)  # (no errors: both checked above)
    from worker.sandbox.policy import compile_cell

    try:
        _code, error = compile_cell(source, f"<helper {name}>")
    except (RecursionError, MemoryError, ValueError, SyntaxError) as exc:
        error = f"The source could not be compiled ({type(exc).__name__})."
    if error:
        return "", "", {"source": error}
    tree = ast.parse(source)
    function = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    if function is None:
        return "", "", {"source": f"The source must define `def {name}(...)` at top level."}
    return f"{name}({ast.unparse(function.args)})"[:300], ast.get_docstring(function) or "", {}


def helper_save(user: User, team: Team, name: str, source: str, helper: Helper | None = None) -> HelperVersion:
    """Create a helper, or save a new version of `helper` (its name is kept). ValidationError with
    field errors when the source does not compile or the name is taken."""
    _require_manage(user, team)
    if helper is not None:
        if helper.team_id != team.pk:
            raise HelperNotFound("No such helper.")
        name = helper.name
    signature, doc, errors = helper_check(name, source)
    if helper is None and not errors:
        if Helper.objects.filter(team=team, name=name).exists():
            errors["name"] = f"The team already has a helper called {name}."
        elif Helper.objects.filter(team=team, active=True).count() >= MAX_HELPERS_PER_TEAM:
            errors["__all__"] = f"A team has at most {MAX_HELPERS_PER_TEAM} helpers."
    if errors:
        raise ValidationError({k: [v] for k, v in errors.items()})
    with transaction.atomic():
        if helper is None:
            helper = Helper.objects.create(team=team, name=name)
        else:
            helper = Helper.objects.select_for_update().get(pk=helper.pk)
            if not helper.active:
                helper.active = True
                helper.save(update_fields=["active"])
        latest = helper.versions.order_by("-version").values_list("version", flat=True).first() or 0
        return HelperVersion.objects.create(helper=helper, version=latest + 1, source=source, doc=doc,
                                            signature=signature, created_by=user)


def helper_deactivate(user: User, helper: Helper) -> Helper:
    """Stop loading a helper into new runs (its versions stay: earlier runs name them)."""
    _require_manage(user, helper.team)
    helper.active = False
    helper.save(update_fields=["active"])
    return helper


def helper_get_for_user(user: User, helper_id) -> Helper | None:
    helper = Helper.objects.select_related("team").filter(pk=helper_id).first()
    if helper is None or not can(user, "view", helper.team):
        return None
    return helper


def helpers_for_team(team: Team, active_only: bool = True):
    helpers = Helper.objects.filter(team=team)
    return helpers.filter(active=True) if active_only else helpers


def helper_versions_for_run(team: Team) -> list[dict]:
    """What a run of the team records when it is created: the current version of each active helper."""
    rows = []
    for helper in helpers_for_team(team).prefetch_related("versions"):
        current = max(helper.versions.all(), key=lambda v: v.version, default=None)
        if current is not None:
            rows.append({"id": helper.pk, "name": helper.name, "version": current.version})
    return rows


def helper_sources(recorded: list) -> list[dict]:
    """The sources of the helper versions a run recorded, in that order (missing ones left out)."""
    out = []
    for item in recorded or []:
        if not isinstance(item, dict):
            continue
        version = HelperVersion.objects.filter(helper_id=item.get("id"), version=item.get("version")).first()  # type: ignore[misc]  # None (a bad record) matches nothing
        if version is not None:
            out.append({"name": version.helper.name, "version": version.version, "source": version.source})
    return out


def helper_test(user: User, team: Team, name: str, source: str, document_id, expression: str) -> dict:
    """Run (unsaved) helper source in a sandboxed REPL over a sample of a team document, then
    `expression` (default: the helper called on `context`). Sub-calls are not available.
    Returns {"stdout", "error", "stage"} (stage: "helper" or "expression")."""
    if not can(user, "view", team):
        raise HelperNotFound("No such team.")
    if not can_manage(user, team):
        raise PermissionDenied("Only the team's owners and admins can test helpers.")
    _signature, _doc, errors = helper_check(name, source)
    expression = (expression or "").strip() or f"{name}(context)"
    if len(expression) > MAX_EXPRESSION_CHARS:
        errors["expression"] = f"At most {MAX_EXPRESSION_CHARS:,} characters."
    document = Document.objects.filter(team=team, pk=document_id, status=DocumentStatus.READY).first() \
        if _is_uuid(document_id) else None
    if document is None:
        errors["document"] = "Pick a ready document of the team."
    if errors:
        raise ValidationError({k: [v] for k, v in errors.items()})
    assert document is not None  # (else errors["document"])
    return _run_test(document, source, expression)


def _is_uuid(value) -> bool:
    import uuid

    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _run_test(document: Document, source: str, expression: str) -> dict:
    import tempfile
    from pathlib import Path

    from worker.sandbox import Sandbox, SandboxCallError, SandboxLimits

    def no_subcalls(name: str, args: dict):
        raise SandboxCallError(f"{name} is not available when testing a helper")

    with open(document.text_path, encoding="utf-8", errors="replace") as handle:
        sample = handle.read(TEST_SAMPLE_CHARS)
    with tempfile.TemporaryDirectory(prefix="rlm-helper-test-") as tmp:
        path = Path(tmp) / "sample.txt"
        path.write_text(sample, encoding="utf-8")
        limits = SandboxLimits(memory_bytes=1024**3, cell_timeout_s=TEST_TIMEOUT_S, output_limit_chars=20_000)
        with Sandbox([(document.name, str(path))], no_subcalls, limits) as sandbox:
            defined = sandbox.run_cell(source)
            if defined.error:
                return {"stdout": defined.stdout, "error": defined.error, "stage": "helper"}
            result = sandbox.run_cell(expression)  # a final bare expression is shown, as in a notebook
            return {"stdout": result.stdout, "error": result.error, "stage": "expression"}
