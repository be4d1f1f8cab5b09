"""The language layer holds on its own: classes of attack, not single exploits.

Every test here also runs with Landlock and seccomp switched off (see conftest.py): what is
asserted is what RestrictedPython and our guards alone refuse. The reachability audit walks the
object graph a cell can reach through the guarded access paths and is the specification: nothing
forbidden anywhere in it.
"""

from __future__ import annotations

import collections
import contextlib
import os
import time
import types

import pytest

from worker.sandbox import Sandbox, SandboxError, SandboxLimits, guards
from worker.sandbox.host import ALLOW_DEGRADED_ENV, TEST_HOOKS_ENV, TEST_NO_OS_LAYERS_ENV, missing_layers
from worker.sandbox.repl import Repl
from worker.sandbox.text import FINAL_MAX_CHARS


def run(sb, code: str):
    result = sb.run_cell(code)
    alive = sb.run_cell("print('alive', 40 + 2)")
    assert alive.error is None and alive.stdout == "alive 42\n", alive
    return result


def refused(result, *fragments: str) -> None:
    assert result.error is not None, result
    for fragment in fragments:
        assert fragment in result.error, (fragment, result.error)
    for leak in ("'__name__': 'worker", "<module", "__builtins__", "frame at 0x", "<code object"):
        assert leak not in result.stdout, result.stdout


# ---------------------------------------------------------------------------------------------
# 1. Decisions by isinstance on the receiver: forwarders of attribute access
# ---------------------------------------------------------------------------------------------
FORWARDERS = {
    "super, two arguments": "class S(str):\n    pass\nsuper(S, S('{0.__globals__}')).format(llm_query)",
    "super, zero arguments": (
        "class S(str):\n    def go(self, f):\n        return super().format(f)\nS('{0.__globals__}').go(llm_query)"
    ),
    "UserString subclass": (
        "import collections\nclass U(collections.UserString):\n    pass\nU('{0.__globals__}').format(llm_query)"
    ),
    "UserString subclass, unbound": (
        "import collections\nclass U(collections.UserString):\n    pass\n"
        "U.format(U('{0.__globals__}'), llm_query)"
    ),
    "UserString.format_map unbound": (
        "import collections\ncollections.UserString.format_map(collections.UserString('{f.__globals__}'), "
        "{'f': llm_query})"
    ),
    "bound method kept in a variable": "m = '{0.__globals__}'.format\nm(llm_query)",
    "bound method of a str subclass in a list": (
        "class S(str):\n    pass\nms = [S('{0.__globals__}').format]\nms[0](llm_query)"
    ),
    "method of the str type in a dict": "d = {'f': str.format}\nd['f']('{0.__globals__}', llm_query)",
    "getattr with a computed name": "getattr('{0.__globals__}', 'for' + 'mat')(llm_query)",
    "format through a class attribute": (
        "class K:\n    fmt = str.format_map\nK.fmt('{f.__globals__}', {'f': llm_query})"
    ),
    "GenericAlias": "list[int].format",
    "format field reaching obj": (
        "try:\n    import re\n    re.nothing\nexcept AttributeError as e:\n    err = e\n'{0.obj}'.format(err)"
    ),
    "obj of an AttributeError subclass": (
        "class E(AttributeError):\n    pass\ntry:\n    raise E('x')\nexcept E as e:\n    e.obj"
    ),
}


@pytest.mark.parametrize("case", list(FORWARDERS), ids=list(FORWARDERS))
def test_no_forwarder_reaches_native_formatting_or_exception_internals(sandbox, case):
    result = run(sandbox, FORWARDERS[case])
    assert result.error is not None, (case, result)
    assert "worker.sandbox" not in result.error and "__builtins__" not in result.stdout


def test_format_still_works_for_ordinary_code(sandbox):
    result = run(sandbox, (
        "import collections\nclass S(str):\n    pass\nm = 'a{0}b{x}'.format\n"
        "print(m(1, x=2), S('{0.real}').format(3), collections.UserString('{n}').format_map({'n': 4}), "
        "str.format('{}', 5))"
    ))
    assert result.error is None, result.error
    assert result.stdout == "a1b2 3 4 5\n"


# ---------------------------------------------------------------------------------------------
# 2. Constructors of interpreter-internal types
# ---------------------------------------------------------------------------------------------
INTERNAL = {
    "GenericAlias": "list[int]",
    "bound method": "'x'.upper",
    "builtin function": "len",
    "function": "(lambda: 1)",
    "generator": "(i for i in [])",
    "class": "int",
    "module proxy": "re",
    "list method": "context_names.copy",
}


@pytest.mark.parametrize("case", list(INTERNAL), ids=list(INTERNAL))
def test_type_of_internal_objects_is_a_view_that_cannot_build_anything(sandbox, case):
    expr = INTERNAL[case]
    shown = run(sandbox, f"import re\nt = type({expr})\nprint(t)")
    assert shown.error is None, shown.error
    assert "class" in shown.stdout
    refused(run(sandbox, f"import re\ntype({expr})(str, int)"), "not callable")
    refused(run(sandbox, f"import re\nclass X(type({expr})):\n    pass"), "TypeError")


def test_type_of_ordinary_values_is_the_class(sandbox):
    result = run(sandbox, (
        "import re, collections\nclass C:\n    pass\n"
        "print(type(1) is int, type('s') is str, type(C()) is C, type(re.compile('x')) is re.Pattern,"
        " type(collections.Counter()) is collections.Counter, isinstance(3, type(4)))"
    ))
    assert result.stdout == "True True True True True True\n", result


def test_super_is_not_available_and_says_what_to_do(sandbox):
    result = run(sandbox, "class A:\n    def f(self):\n        return 1\nclass B(A):\n"
                          "    def f(self):\n        return super().f() + 1\nB().f()")
    refused(result, "super() is not available", "Base.method(self")
    ok = run(sandbox, "class A:\n    def f(self):\n        return 1\nclass B(A):\n"
                      "    def f(self):\n        return A.f(self) + 1\nprint(B().f())")
    assert ok.stdout == "2\n", ok


# ---------------------------------------------------------------------------------------------
# 3. The write guard decides on exact types (ABC register() cannot widen it)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("abc", ["UserDict", "UserList", "ChainMap"])
def test_abc_register_does_not_make_library_objects_writable(sandbox, abc):
    result = run(sandbox, (
        f"import collections, difflib\ncollections.{abc}.register(difflib.SequenceMatcher)\n"
        "m = difflib.SequenceMatcher()\nm.ratio = 'hijacked'"
    ))
    refused(result, "cannot modify SequenceMatcher")
    result = run(sandbox, (
        f"import collections, textwrap\ncollections.{abc}.register(textwrap.TextWrapper)\n"
        "textwrap.TextWrapper().width = 3\n"
    ))
    refused(result, "cannot modify TextWrapper")


def test_own_containers_and_classes_stay_writable(sandbox):
    result = run(sandbox, (
        "import collections\nclass C(dict):\n    pass\nc = C()\nc['a'] = 1\nc.x = 2\n"
        "d = collections.defaultdict(int)\nd['k'] += 1\nu = collections.UserDict()\nu['z'] = 3\n"
        "print(c['a'], c.x, d['k'], u['z'])"
    ))
    assert result.stdout == "1 2 1 3\n", result


# ---------------------------------------------------------------------------------------------
# 4. REPL-defined code runs only in a cell's process, under the cell timeout
# ---------------------------------------------------------------------------------------------
LOOPING = (
    "class L(str):\n"
    "    def __len__(self):\n        while True:\n            pass\n"
    "    def __str__(self):\n        while True:\n            pass\n"
    "    def __hash__(self):\n        while True:\n            pass\n"
    "    def __eq__(self, other):\n        while True:\n            pass\n"
    "looping = L('abc')\nholder = [looping]\n"
)


def test_variable_summary_never_runs_repl_code_in_the_holder(docs, recorder):
    limits = SandboxLimits(memory_bytes=1024**3, cell_timeout_s=2.0, output_limit_chars=100_000)
    with Sandbox(docs[:1], recorder, limits) as sb:
        assert sb.run_cell(LOOPING).error is None
        started = time.monotonic()
        summary = sb.variable_summary()
        assert time.monotonic() - started < limits.cell_timeout_s + 1
        assert "looping: L" in summary and "holder: list, 1 items" in summary
        assert sb.run_cell("print(len(holder))").stdout == "1\n"  # the REPL is intact


def test_final_var_and_reads_of_a_looping_str_are_stopped_by_the_cell_timeout(docs, recorder):
    limits = SandboxLimits(memory_bytes=1024**3, cell_timeout_s=2.0, output_limit_chars=100_000)
    with Sandbox(docs[:1], recorder, limits) as sb:
        assert sb.run_cell(LOOPING).error is None
        started = time.monotonic()
        result = sb.run_cell("FINAL_VAR('looping')")
        assert result.killed and "TimeoutError" in result.error
        with pytest.raises(SandboxError):
            sb.read_variable("looping")
        assert time.monotonic() - started < 2 * (limits.cell_timeout_s + 1)
        assert sb.run_cell("print(type(looping) is L)").stdout == "True\n"


# ---------------------------------------------------------------------------------------------
# 5. Sizes are measured on exact strs, never by asking the object
# ---------------------------------------------------------------------------------------------
def test_a_str_subclass_lying_about_its_length_cannot_pass_the_output_cap(sandbox):
    result = run(sandbox, (
        "class Z(str):\n    def __len__(self):\n        return 0\n"
        "big = Z('x' * 3_000_000)\nprint(big)\nprint(Z('y' * 10), big)"
    ))
    assert len(result.stdout) <= 100_000 and result.output_truncated


def test_a_final_answer_is_cut_at_a_million_characters_with_a_note(sandbox):
    result = run(sandbox, "FINAL('z' * 200_000_000)")
    assert result.error is None, result.error
    assert len(result.final.value) <= FINAL_MAX_CHARS
    assert result.final.value.startswith("zzzz") and "answer cut: it had 200,000,000 characters" in result.final.value
    result = run(sandbox, "class Z(str):\n    def __len__(self):\n        return 1\nlong = Z('q' * 3_000_000)\n"
                          "FINAL_VAR('long')")
    assert len(result.final.value) <= FINAL_MAX_CHARS and "3,000,000 characters" in result.final.value
    assert len(sandbox.read_variable("long")) <= FINAL_MAX_CHARS


# ---------------------------------------------------------------------------------------------
# 6. A cell's processes die with it
# ---------------------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().split(b") ")[1][:1] != b"Z"
    except OSError:
        return False


@pytest.fixture
def hooked(docs, recorder, monkeypatch):
    monkeypatch.setenv(TEST_HOOKS_ENV, "1")
    limits = SandboxLimits(memory_bytes=1024**3, cell_timeout_s=3.0, output_limit_chars=100_000)
    with Sandbox(docs[:1], recorder, limits) as sb:
        yield sb


def test_a_grandchild_holding_the_pipe_cannot_delay_a_timeout(hooked):
    started = time.monotonic()
    result = hooked.run_cell("pid = TEST_SPAWN_STRAY(60)\nprint(pid)\nwhile True:\n    pass")
    took = time.monotonic() - started
    assert result.killed and "TimeoutError" in result.error
    assert took < hooked.limits.cell_timeout_s + 1, took
    stray = int(result.stdout) if result.stdout else None
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:  # SIGKILL was sent; give the kernel a moment to deliver it
        strays = [p for p in guards_group(hooked) if p not in (hooked._proc.pid, hooked._holder_pid)]
        if not strays:
            break
        time.sleep(0.02)
    assert strays == [], strays
    assert stray is None or not _alive(stray)


def test_processes_left_by_a_finished_cell_are_killed(hooked):
    result = hooked.run_cell("pid = TEST_SPAWN_STRAY(60)\nprint(pid)")
    assert result.error is None, result.error
    stray = int(result.stdout)
    deadline = time.monotonic() + 2
    while _alive(stray) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(stray)
    assert hooked.run_cell("print(pid)").stdout == f"{stray}\n"  # the state was committed


def guards_group(sb) -> list[int]:
    from worker.sandbox.host import group_members

    return group_members(sb._proc.pid)


def test_the_test_hook_does_not_exist_without_its_switch(sandbox):
    assert os.environ.get(TEST_HOOKS_ENV) != "1"
    refused(run(sandbox, "TEST_SPAWN_STRAY(1)"), "NameError")


# ---------------------------------------------------------------------------------------------
# Fail closed
# ---------------------------------------------------------------------------------------------
def test_missing_layers_are_named():
    prot = {"landlock": "unavailable: the kernel does not support Landlock", "seccomp": "68 syscalls refused",
            "rlimits": "AS=..."}
    assert missing_layers(prot) == {"landlock": "unavailable: the kernel does not support Landlock"}
    assert missing_layers({"landlock": "ABI 7", "seccomp": "off: switched off for a test"}) == {}
    assert set(missing_layers({})) == {"landlock", "seccomp"}


def test_the_worker_refuses_cells_when_a_layer_is_missing(docs, recorder, monkeypatch):
    """A host without Landlock and seccomp (simulated by the child): the host refuses to run cells."""
    monkeypatch.setenv(TEST_NO_OS_LAYERS_ENV, "unavailable")
    monkeypatch.delenv(ALLOW_DEGRADED_ENV, raising=False)
    sb = Sandbox(docs[:1], recorder, SandboxLimits(cell_timeout_s=3.0))
    with pytest.raises(SandboxError) as err:
        sb.start()
    message = str(err.value)
    assert "landlock" in message and "seccomp" in message and "RLMWEB_SANDBOX_ALLOW_DEGRADED=1" in message
    assert sb._proc is None  # nothing left running
    monkeypatch.setenv(ALLOW_DEGRADED_ENV, "1")
    with Sandbox(docs[:1], recorder, SandboxLimits(cell_timeout_s=3.0)) as sb:
        assert sb.protections["seccomp"].startswith("unavailable")
        assert sb.run_cell("print(1)").stdout == "1\n"


# ---------------------------------------------------------------------------------------------
# The reachability audit
# ---------------------------------------------------------------------------------------------
BUILT_VALUES = """\
import re, json, collections, functools, itertools, datetime, csv, difflib, textwrap, string, random
import statistics, heapq, bisect, math, operator, unicodedata
class Plain:
    def method(self):
        return 1
class Sub(str):
    pass
class Err(ValueError):
    pass
def gen():
    yield 1
def fn(a, b=2):
    return a
try:
    re.nothing
except AttributeError as e:
    attr_error = e
try:
    context.nothing
except AttributeError as e:
    attr_error2 = e
try:
    undefined_name
except NameError as e:
    name_error = e
try:
    json.loads('{')
except ValueError as e:
    json_error = e
try:
    raise Err('x')
except Err as e:
    own_error = e
values = [
    Plain(), Plain, Plain().method, Sub('s'), Sub, gen(), gen, fn, lambda: 0, list[int], dict[str, int],
    int | str, re.compile('(?P<g>a)'), re.match('a', 'a'), json.JSONDecoder(), json.JSONEncoder(),
    collections.Counter('abc'), collections.defaultdict(list), collections.OrderedDict(a=1),
    collections.deque([1]), collections.ChainMap({}), collections.UserDict(), collections.UserList(),
    collections.UserString('u'), collections.namedtuple('P', 'x y')(1, 2), functools.partial(fn, 1),
    functools.lru_cache(fn), functools.cmp_to_key(lambda a, b: 0)(1), itertools.count(),
    itertools.chain([1]), datetime.datetime(2024, 1, 1), datetime.timezone.utc, datetime.timedelta(1),
    csv.reader(['a,b']), csv.excel, difflib.SequenceMatcher(None, 'a', 'b'), difflib.Differ(),
    textwrap.TextWrapper(), string.Template('$x'), random.Random(1), statistics.NormalDist(),
    map(str, []), filter(None, []), zip([], []), enumerate([]), reversed([]), iter([]), range(3),
    {}.keys(), {}.values(), {}.items(), frozenset(), slice(1), property(fn), staticmethod(fn),
    classmethod(fn), attr_error, attr_error2, name_error, json_error, own_error, type(len), type(gen()),
    object(), NotImplemented, Ellipsis, bytes(1), bytearray(1), complex(1, 2), 1.5, True, None,
    context, context_names, dir(), SHOW_VARS, FINAL, FINAL_VAR, llm_query, llm_query_batched, rlm_query,
]
"""


def _forbidden_reason(ob: object, repl: Repl, namespaces: set[int]) -> str | None:
    t = type(ob)
    if isinstance(ob, (types.ModuleType, types.FrameType, types.CodeType, types.TracebackType,
                       types.CellType, super, types.SimpleNamespace)):
        return t.__name__
    if id(ob) in namespaces:
        return "a module's namespace or the REPL's globals/builtins"
    if isinstance(ob, type) and issubclass(ob, tuple(guards.INTERNAL_TYPES)):
        return f"internal type {ob.__name__}"
    if isinstance(ob, type) and guards._is_machinery(ob):
        return f"sandbox class {ob.__name__}"
    if isinstance(ob, (Repl, guards._ReadOnly, guards._GuardedFormatter)):
        return "sandbox internals"
    if ob is str.__dict__["format"] or ob is str.__dict__["format_map"]:
        return "native str.format"
    if ob is collections.UserString.format or ob is collections.UserString.format_map:
        return "native UserString.format"
    if isinstance(ob, types.BuiltinFunctionType) and ob.__name__ in ("format", "format_map") and isinstance(ob.__self__, str):
        return "native bound str.format"
    if t is types.MethodType and ob.__func__ in (collections.UserString.format, collections.UserString.format_map):
        return "native bound UserString.format"
    return None


def _edges(ob: object, path: str) -> list[tuple[str, object]]:
    """Where a cell can go from ``ob``. Items are read raw, not through ``_getitem_``: REPL code
    can read any container without that guard (``d.get(k)``, ``operator.getitem``, iteration,
    ``random.choice``), so no container it can reach may hold anything forbidden."""
    from RestrictedPython.transformer import INSPECT_ATTRIBUTES

    edges: list[tuple[str, object]] = []
    for attempt in (
        lambda: [(f"type({path})", guards.safe_type(ob))],
        lambda: [(f"{path}[{k!r}]", v) for k, v in list(ob.items())[:100]]
        + [(f"{path}.key", k) for k in list(ob)[:100]]
        if isinstance(ob, (dict, types.MappingProxyType, collections.abc.Mapping)) else [],
        lambda: [(f"{path}[{i}]", v) for i, v in enumerate(list(ob)[:100])]
        if isinstance(ob, (list, tuple, set, frozenset, collections.deque, collections.UserList)) else [],
        lambda: [(f"{path}.mro()[{i}]", c) for i, c in enumerate(ob.mro())]
        if isinstance(ob, type) and ob is not type else [],
    ):
        with contextlib.suppress(Exception):
            edges += attempt()
    try:
        names = [n for n in dir(ob) if not n.startswith("_") and n not in INSPECT_ATTRIBUTES]
    except Exception:
        names = []
    for name in names:
        with contextlib.suppress(Exception):  # the guarded path: getattr(), x.name, format fields
            edges.append((f"{path}.{name}", guards.guarded_getattr(ob, name)))
    return edges


def test_reachability_audit_finds_nothing_forbidden_at_depth_5():
    import builtins
    import sys

    repl = Repl([("doc", "some text"), ("other", "more text")], 1000)
    built = repl.run_cell(BUILT_VALUES)
    assert built["error"] is None, built["error"]
    roots: dict[str, object] = {f"builtins[{k!r}]": v for k, v in repl.builtins.items() if not k.startswith("_")}
    roots.update({f"globals[{k!r}]": v for k, v in repl.globals.items() if not k.startswith("_")})
    roots.update({f"values[{i}]": v for i, v in enumerate(repl.globals["values"])})
    roots.update({f"import {name}": proxy for name, proxy in guards.PROXIES.items()})
    keep = [m.__dict__ for m in list(sys.modules.values()) if m is not None]  # alive: ids stay theirs
    keep += [repl.globals, repl.builtins, builtins.__dict__]
    namespaces = {id(d) for d in keep}
    seen: dict[int, object] = {}
    frontier = list(roots.items())
    bad = []
    depth = 0
    while frontier and depth <= 5:
        next_frontier = []
        for path, ob in frontier:
            if id(ob) in seen:
                continue
            seen[id(ob)] = ob
            reason = _forbidden_reason(ob, repl, namespaces)
            if reason:
                bad.append((path, reason))
                continue
            next_frontier += _edges(ob, path)
        frontier = next_frontier
        depth += 1
    assert depth > 5 or not frontier, "the walk stopped early"
    assert len(seen) > 5000, len(seen)  # it really went somewhere
    assert not bad, bad[:20]


def test_the_audit_would_see_what_the_old_guards_let_through():
    """The audit's own check: the objects last release's attack reached are all flagged."""
    import builtins
    import sys

    repl = Repl([("doc", "x")], 1000)
    namespaces = {id(sys.modules["worker.sandbox.repl"].__dict__), id(builtins.__dict__)}
    leaks = [sys, sys.modules["worker.sandbox.repl"].__dict__, sys._getframe(), type(list[int]), super,
             "{0}".format, str.format, collections.UserString("x").format, types.MethodType]
    assert all(_forbidden_reason(ob, repl, namespaces) for ob in leaks)


def test_what_a_cell_can_print_of_its_builtins_names_nothing_of_the_sandbox(sandbox):
    result = run(sandbox, (
        "import functools\n"
        "things = [llm_query, llm_query_batched, rlm_query, FINAL, FINAL_VAR, SHOW_VARS, dir, getattr, setattr,\n"
        "          hasattr, type, functools.partial(print).func, open, vars, super, '{0}'.format, str.format]\n"
        "print([repr(t) for t in things])"
    ))
    assert result.error is None, result.error
    for leak in ("worker.", "sandbox.repl", "guards", "Repl.", "<locals>", "_call_print", "Output"):
        assert leak not in result.stdout, (leak, result.stdout)
