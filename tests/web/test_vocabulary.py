"""The apps and the JavaScript use the engine's vocabulary: same values, generated files current."""

import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from apps.runs.management.commands import rlm_vocabulary as gen
from apps.runs.models import Mode, RunStatus
from apps.sharing.services import SHARED_FIELDS
from tests.review.trajectories import Trajectory, succeeded
from worker.engine import events as ev
from worker.engine import vocabulary

BASE = Path(django_settings.BASE_DIR)


def test_the_generated_javascript_and_docs_table_are_current():
    for path, content in gen.generated_files(BASE).items():
        assert path.read_text(encoding="utf-8") == content, f"{path} is stale: run `python manage.py rlm_vocabulary`"


def test_the_javascript_names_are_the_engine_constants():
    js = gen.render_js()
    events = dict(re.findall(r'  (\w+): "([\w.]+)",', js.split("export const STOP_REASONS")[0]))
    assert events == {name: getattr(ev, name) for name in events}
    assert set(events.values()) == set(ev.EVENT_TYPES)
    for name, enum in gen.JS_ENUMS.items():
        block = js.split(f"export const {name} = ")[1].split("});")[0]
        assert dict(re.findall(r'  (\w+): "([^"]+)",', block)) == {m.name: m.value for m in enum}


def test_check_fails_on_a_stale_file_and_the_command_rewrites_it(settings, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "static/explorer").mkdir(parents=True)
    (tmp_path / gen.DOCS_PATH).write_text(f"# Doc\n{gen.TABLE_START}\nold table\n{gen.TABLE_END}\nmore\n")
    (tmp_path / gen.JS_PATH).write_text('export const EVENT = Object.freeze({ RUN_STARTED: "run.begun" });\n')
    settings.BASE_DIR = tmp_path
    with pytest.raises(CommandError, match="vocabulary.js is stale"):
        call_command("rlm_vocabulary", "--check")
    call_command("rlm_vocabulary")
    call_command("rlm_vocabulary", "--check")
    docs = (tmp_path / gen.DOCS_PATH).read_text()
    assert "old table" not in docs and docs.endswith(f"{gen.TABLE_END}\nmore\n")
    assert "| `run.finished` | `RunFinished`" in docs
    assert 'RUN_STARTED: "run.started",' in (tmp_path / gen.JS_PATH).read_text()


def test_the_database_choices_hold_the_engine_values():
    assert RunStatus.values == [s.value for s in vocabulary.RunStatus]
    assert Mode.values == [m.value for m in vocabulary.Mode]


def test_share_links_show_only_fields_the_schema_defines():
    for type_, fields in SHARED_FIELDS.items():
        schema = ev.SCHEMAS.get(type_)
        assert schema is not None, f"{type_} is shared by links but has no dataclass in worker/engine/events.py"
        assert fields <= schema.required | schema.optional, type_


def test_the_review_tests_synthetic_trajectories_are_shaped_like_the_engines_events():
    built = [succeeded(), Trajectory(mode="direct").turn("It is 4.").answer("4", "plain").finish(),
             Trajectory().turn("```repl\nx = llm_query('p')\n```").cell().subcall("p", kind="rlm")
             .finish("failed", "max_cost", "Stopped.", totals=False)]
    for trajectory in built:
        for event in trajectory.events:
            assert ev.problems(event["type"], event["data"]) == [], event


def test_the_static_javascript_takes_the_vocabulary_from_vocabulary_js():
    """No script under static/ spells an event type or stop reason as a bare string, nor compares
    with a bare status, mode, answer source or call kind: they import them from vocabulary.js."""
    anywhere = set(ev.EVENT_TYPES) | {r.value for r in vocabulary.StopReason}
    compared = {m.value for enum in gen.JS_ENUMS.values() for m in enum}
    literal = r"""(["'`])([\w.\-]+)\1"""
    found = []
    for path in sorted((BASE / "static").rglob("*.js")):
        if path == BASE / gen.JS_PATH:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in re.finditer(literal, line):
                before = line[:match.start()].rstrip()
                if match.group(2) in anywhere or (match.group(2) in compared and before.endswith(("===", "!==", "case"))):
                    found.append(f"{path.relative_to(BASE)}:{number}: {match.group(0)}")
    assert not found, "import these from static/explorer/vocabulary.js:\n" + "\n".join(found)
