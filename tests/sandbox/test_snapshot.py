"""Snapshots carry a REPL's plain data into another REPL, and nothing else: exact built-in types in,
exact built-in types out, JSON only, validated on both sides, size-capped."""

from __future__ import annotations

import json
import math

import pytest

from tests.sandbox.conftest import FAST_LIMITS
from worker.sandbox import Sandbox, SandboxError, SandboxLimits
from worker.sandbox import snapshot as snapshots


def ok(sb, code: str) -> str:
    result = sb.run_cell(code)
    assert result.error is None, result.error
    return result.stdout


@pytest.fixture
def fresh(docs, recorder, os_layers):
    """A new one-document REPL per test (restores commit state)."""
    with Sandbox(docs[:1], recorder, FAST_LIMITS) as sb:
        yield sb


PLAIN = (
    "chunks = ['a', 'b' * 3, 'é✓']\n"
    "index = {'x': [1, 2], 3: (4.5, None), (1, 'k'): {True, False}, frozenset({1, 2}): 'fs'}\n"
    "counts = {'n': 10 ** 30, 'neg': -7, 'inf': float('inf'), 'nan': float('nan')}\n"
    "nested = [[[[1]]]]\n"
    "flag = True\n"
    "nothing = None\n"
)
CHECK = (
    "print(type(chunks) is list, chunks)\n"
    "print(type(index) is dict, index['x'], index[3], type(index[3]) is tuple, index[(1, 'k')] == {True, False})\n"
    "print(index[frozenset({1, 2})], type(index[(1, 'k')]) is set)\n"
    "print(counts['n'], counts['neg'], counts['inf'], counts['nan'] != counts['nan'])\n"
    "print(nested, flag, nothing)\n"
)


def test_plain_data_round_trips_into_a_new_repl(sandbox, fresh):
    ok(sandbox, PLAIN)
    before = ok(sandbox, CHECK)
    taken = sandbox.snapshot()
    assert set(taken["variables"]) >= {"chunks", "index", "counts", "nested", "flag", "nothing"}
    assert "context" not in taken["variables"] and "context_names" not in taken["variables"]
    outcome = fresh.restore(taken)
    assert set(outcome["restored"]) == set(taken["variables"]) and outcome["rejected"] == []
    assert ok(fresh, CHECK) == before
    assert "True [1, 2] (4.5, None) True True" in before


def test_functions_classes_instances_and_modules_are_listed_not_carried(fresh, docs, recorder):
    ok(fresh, "import re\ndef f(x):\n    return x\nclass Box:\n    pass\nbox = Box()\nkept = [1]\n"
              "class MyStr(str):\n    pass\nsneaky = MyStr('x')\nmixed = [1, Box()]\n")
    taken = fresh.snapshot()
    assert list(taken["variables"]) == ["kept"]
    reasons = {item["name"]: item["reason"] for item in taken["not_carried"]}
    assert set(reasons) == {"re", "f", "Box", "box", "MyStr", "sneaky", "mixed"}
    assert "function" in reasons["f"] and "class" in reasons["Box"] and "module" in reasons["re"]
    assert "not plain data" in reasons["sneaky"]  # a str subclass is not a str


def test_the_size_cap_leaves_out_what_does_not_fit_and_keeps_the_rest(fresh):
    ok(fresh, "big = 'x' * 200000\nsmall = 'y'\n")
    taken = fresh.snapshot(max_bytes=100_000)
    assert list(taken["variables"]) == ["small"]
    assert [(i["name"], "size cap" in i["reason"]) for i in taken["not_carried"]] == [("big", True)]


def test_self_referencing_and_very_deep_values_are_not_carried(fresh):
    ok(fresh, "loop = []\nloop.append(loop)\ndeep = []\ncur = deep\nfor i in range(100):\n"
              "    cur.append([])\n    cur = cur[0]\n")
    taken = fresh.snapshot()
    assert "loop" not in taken["variables"] and "deep" not in taken["variables"]
    assert {"loop", "deep"} <= {i["name"] for i in taken["not_carried"]}


def test_excluded_names_are_neither_carried_nor_listed(fresh):
    ok(fresh, "def helper():\n    return 1\nx = 1\n")
    taken = fresh.snapshot(exclude=["helper"])
    assert list(taken["variables"]) == ["x"] and taken["not_carried"] == []


def test_restored_values_are_exact_builtin_types_that_cells_can_use(sandbox, fresh):
    ok(sandbox, "rows = [('a', 1), ('b', 2)]\nlookup = {'a': {1, 2}}\n")
    fresh.restore(sandbox.snapshot())
    assert ok(fresh, "print(type(rows[0]) is tuple, sorted(lookup['a']), dict(rows)['b'])\n"
                     "rows.append(('c', 3))\nprint(len(rows))") == "True [1, 2] 2\n3\n"


def test_forged_snapshot_data_is_refused_before_it_reaches_a_repl(fresh):
    forged = {"variables": {
        "ok": [1, 2],
        "badtag": {"pickle": "cos\nsystem\n"},
        "twokeys": {"t": [], "d": []},
        "unhashable": {"set": [[1]]},
        "badpair": {"d": [[1]]},
        "deep": json.loads("[" * 40 + "]" * 40),
        "_private": 1,
        "context": "replaced",
        "FINAL": 1,
    }}
    checked = snapshots.validate(forged, 1_000_000)
    assert list(checked["variables"]) == ["ok"]
    refused = {i["name"] for i in checked["not_carried"]}
    assert refused == {"badtag", "twokeys", "unhashable", "badpair", "deep", "_private", "context", "FINAL"}
    fresh.restore(checked)
    assert ok(fresh, "print(ok, len(context) > 100)") == "[1, 2] True\n"


def test_the_repl_rechecks_what_it_restores(fresh):
    # Even when the host's check is bypassed, the committing cell process decodes with the same rules.
    outcome = fresh.restore({"variables": {"good": {"t": [1]}, "bad": {"eval": "1"}, "__builtins__": {}}})
    assert outcome["restored"] == ["good"]
    assert {r["name"] for r in outcome["rejected"]} == {"bad", "__builtins__"}
    assert ok(fresh, "print(good, len([1, 2]))") == "(1,) 2\n"


def test_snapshot_files_are_json_and_checked_on_load():
    checked = snapshots.validate({"variables": {"a": {"t": [1, {"f": "nan"}]}}, "not_carried": []}, 1000)
    raw = snapshots.dumps(checked)
    loaded = snapshots.loads(raw, 1000)
    value = snapshots.decode(loaded["variables"]["a"])
    assert value[0] == 1 and math.isnan(value[1]) and type(value) is tuple
    for bad in (b"\x80\x04pickle", b'{"format": "other", "version": 1, "variables": {}}', b"[]",
                b'{"format": "rlmweb-snapshot", "version": 1, "variables": {"a": NaN}}'):
        with pytest.raises(snapshots.SnapshotInvalid):
            snapshots.loads(bad, 1000)
    with pytest.raises(snapshots.SnapshotInvalid):
        snapshots.loads(b" " * 3_000_000, 1000)


def test_a_snapshot_does_not_change_the_repl(fresh):
    ok(fresh, "x = [1]\n")
    fresh.snapshot()
    assert ok(fresh, "x.append(2)\nprint(x)") == "[1, 2]\n"


EVIL = (
    "class Evil:\n"
    "    def __len__(self):\n        while True:\n            pass\n"
    "    def __iter__(self):\n        while True:\n            pass\n"
    "    def __eq__(self, other):\n        while True:\n            pass\n"
    "    def __repr__(self):\n        while True:\n            pass\n"
    "evil = Evil()\nnested = {'k': [1, (2, Evil())]}\nfine = [1, 2]\n"
)


def test_a_snapshot_never_runs_repl_code(docs, recorder):
    limits = SandboxLimits(memory_bytes=1024**3, cell_timeout_s=2.0, output_limit_chars=10_000)
    with Sandbox(docs[:1], recorder, limits) as sb:
        ok(sb, EVIL)
        taken = sb.snapshot()  # any of Evil's methods would loop until the cell timeout
        assert list(taken["variables"]) == ["fine"]
        assert {i["name"] for i in taken["not_carried"]} == {"Evil", "evil", "nested"}


def test_a_snapshot_that_takes_too_long_is_stopped_by_the_cell_timeout(docs, recorder):
    limits = SandboxLimits(memory_bytes=1024**3, cell_timeout_s=0.3, output_limit_chars=10_000)
    with Sandbox(docs[:1], recorder, limits) as sb:
        ok(sb, "row = ['x' * 10] * 1000\nrows = [row] * 2000\ngrid = [rows] * 30\n")  # 60M strings to encode
        with pytest.raises(SandboxError, match="snapshot failed"):
            sb.snapshot(max_bytes=10 * 1024**3)
        assert ok(sb, "print(len(grid))") == "30\n"  # the REPL is intact
