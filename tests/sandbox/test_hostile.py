"""Hostile input: every case is contained with a readable error, leaks nothing, and the REPL lives on.

The sandbox is shared by the whole module on purpose: after every hostile cell, ``run`` checks that
the same REPL still runs the next cell.
"""

from __future__ import annotations

import os

import pytest


def run(sb, code: str):
    result = sb.run_cell(code)
    alive = sb.run_cell("print('alive', 40 + 2)")
    assert alive.error is None and alive.stdout == "alive 42\n", alive
    return result


def refused(result, *fragments: str) -> None:
    assert result.error is not None, result
    for fragment in fragments:
        assert fragment in result.error, (fragment, result.error)


# --------------------------------------------------------------------------------------------
# Language-level escapes: (code, fragment the error must contain)
# --------------------------------------------------------------------------------------------
REFUSALS = {
    # attribute and dunder walks
    "dunder walk": ("().__class__.__bases__[0].__subclasses__()", '"__class__" is an invalid attribute name'),
    "getattr dunder": ("getattr((), '__class__')", '"__class__" is an invalid attribute name'),
    "getattr computed name": ("n = '_' * 2 + 'class' + '_' * 2\ngetattr(1, n)", "invalid attribute name"),
    "hasattr does not leak": ("print(hasattr(1, '__class__'))\nraise ValueError('done')", "ValueError: done"),
    "mro walk": ("int.mro()[1].__subclasses__()", '"__subclasses__" is an invalid attribute name'),
    "underscore variable": ("_secret = 1", '"_secret" is an invalid variable name'),
    # format / f-string attribute access
    "str.format traversal": ("'{0.__class__.__mro__}'.format(1)", '"__class__" is an invalid attribute name'),
    "str.format item then dunder": ("'{0[0].__class__}'.format([1])", '"__class__" is an invalid attribute name'),
    "str.format_map": ("'{x.__class__}'.format_map({'x': 1})", '"__class__" is an invalid attribute name'),
    "format via getattr": ("getattr('{0.__class__}', 'format')(1)", '"__class__" is an invalid attribute name'),
    "format on str subclass": ("class S(str):\n    pass\nS('{0.__class__}').format(1)", "invalid attribute name"),
    "format on the str type": ("str.format('{0.__class__}', 1)", '"__class__" is an invalid attribute name'),
    "format in a nested spec": ("'{0:{1.__class__}}'.format(1, 2)", '"__class__" is an invalid attribute name'),
    "format reaches a frame": ("def g():\n    yield 1\n'{0.gi_frame}'.format(g())", '"gi_frame" is a restricted name'),
    "format_map on a namespace view": (
        "import re\n'{_a}'.format_map(re.compile('(?P<_a>x)').groupindex)", "keys starting with '_'"
    ),
    "UserString.format": (
        "import collections\ncollections.UserString('{0.__globals__}').format(llm_query)", "invalid attribute name"
    ),
    "UserString.format_map": (
        "import collections\ncollections.UserString('{f.__globals__}').format_map({'f': llm_query})",
        "invalid attribute name",
    ),
    "UserString.format unbound": (
        "import collections\ncollections.UserString.format(collections.UserString('{0.__class__}'), 1)",
        "invalid attribute name",
    ),
    "f-string dunder": ("x = 1\nf'{x.__class__}'", '"__class__" is an invalid attribute name'),
    "format spec is no traversal": ("format(1, '{0.__class__}')", "ValueError"),
    # generator / coroutine frames
    "gi_frame": ("def g():\n    yield 1\ng().gi_frame", '"gi_frame" is a restricted name'),
    "gi_frame by getattr": ("def g():\n    yield 1\ngetattr(g(), 'gi_frame')", '"gi_frame" is a restricted name'),
    "gi_code by getattr": ("def g():\n    yield 1\ngetattr(g(), 'gi_code')", '"gi_code" is a restricted name'),
    "gi_yieldfrom": ("def g():\n    yield 1\ngetattr(g(), 'gi_yieldfrom')", "restricted name"),
    "f_back": ("def g():\n    yield 1\ng().gi_frame.f_back.f_globals", "restricted name"),
    "coroutine": ("async def c():\n    pass\nc().cr_frame", "AsyncFunctionDef statements are not allowed"),
    "generator expression frame": ("getattr((x for x in []), 'gi_frame')", "restricted name"),
    # tracebacks
    "__traceback__": ("try:\n    1/0\nexcept Exception as e:\n    e.__traceback__", "invalid attribute name"),
    "traceback by getattr": ("try:\n    1/0\nexcept Exception as e:\n    getattr(e, '__traceback__')", "invalid attribute name"),
    "tb_frame": ("try:\n    1/0\nexcept Exception as e:\n    getattr(getattr(e, '__traceback__'), 'tb_frame')", "invalid attribute name"),
    "AttributeError.obj": ("try:\n    llm_query.nothing\nexcept AttributeError as e:\n    e.obj", "'obj' attribute of exceptions"),
    "AttributeError.obj by getattr": ("try:\n    (1).nope\nexcept AttributeError as e:\n    getattr(e, 'obj')", "'obj' attribute of exceptions"),
    "try/except*": ("try:\n    pass\nexcept* ValueError:\n    pass", "TryStar statements are not allowed"),
    # builtins through function globals and closures
    "function globals": ("def f():\n    pass\nf.__globals__", "invalid attribute name"),
    "host function globals": ("getattr(llm_query, '__globals__')", "invalid attribute name"),
    "host function closure": ("getattr(FINAL, '__closure__')", "invalid attribute name"),
    "builtin __self__": ("getattr(len, '__self__')", "invalid attribute name"),
    "__builtins__ name": ("__builtins__['open']", '"__builtins__" is an invalid variable name'),
    "proxy class dict": ("import json\ntype(json).__dict__", "invalid attribute name"),
    # imports
    "__import__": ("__import__('os')", '"__import__" is an invalid variable name'),
    "from json import decoder (sys.modules fallback)": ("from json import decoder", "cannot import name 'decoder' from 'json'"),
    "from re import enum": ("from re import enum", "cannot import name 'enum'"),
    "from collections import abc": ("from collections import abc", "cannot import name 'abc'"),
    "dotted import": ("import json.decoder", "import of 'json.decoder' is not allowed"),
    "sys.modules": ("sys.modules['os']", "name 'sys' is not defined"),
    "operator.attrgetter": ("import operator\noperator.attrgetter('__class__')", "has no attribute 'attrgetter'"),
    "from operator import methodcaller": ("from operator import methodcaller", "cannot import name 'methodcaller'"),
    "string.Formatter": ("import string\nstring.Formatter().format('{0.__class__}', 1)", "has no attribute 'Formatter'"),
    "functools.update_wrapper": ("import functools\nfunctools.update_wrapper", "has no attribute 'update_wrapper'"),
    "functools.singledispatch": ("from functools import singledispatch", "cannot import name 'singledispatch'"),
    "wraps onto a module proxy": ("import functools, json\nfunctools.wraps(len)(json)", "can only decorate a function defined in the REPL"),
    # type() and metaclasses
    "type() class building": ("type('X', (), {'a': 1})", "type() with 3 arguments"),
    "type of a class": ("type(int)('X', (), {})", "'TypeView' object is not callable"),
    "metaclass keyword": ("class A(metaclass=list):\n    pass", 'The keyword argument "metaclass" is not allowed'),
    "dunder method": ("class A:\n    def __getattribute__(self, n):\n        return 1", "invalid variable name"),
    "__getattr__ hook": ("class A:\n    def __getattr__(self, n):\n        return 1", "invalid variable name"),
    "__init_subclass__ hook": ("class A:\n    def __init_subclass__(cls):\n        pass", "invalid variable name"),
    "__del__ finaliser": ("class A:\n    def __del__(self):\n        pass", "invalid variable name"),
    "__reduce__": ("class A:\n    def __reduce__(self):\n        return 1", "invalid variable name"),
    "module-level special name": ("def __len__():\n    return 1", "invalid variable name"),
    "private nonlocal": ("def f():\n    def g():\n        nonlocal _x", "invalid variable name"),
    "private annotated name": ("_x: int = 1", "invalid variable name"),
    # positional-only parameter named like a guard (CVE-2026-55830)
    "posonly guard name": ("def f(_getattr_, /):\n    return _getattr_\nf(1)", '"_getattr_" is an invalid variable name'),
    "lambda guard name": ("g = lambda _getiter_: _getiter_", '"_getiter_" is an invalid variable name'),
    "kwonly guard name": ("def f(*, _write_=None):\n    pass", '"_write_" is an invalid variable name'),
    # exec / eval / open / environment
    "exec": ("exec('import os')", "Exec calls are not allowed"),
    "eval": ("eval('1')", "Eval calls are not allowed"),
    "open /etc/passwd": ("open('/etc/passwd').read()", "open() is not available in the sandbox"),
    "globals()": ("globals()['__builtins__']", "globals() is not available"),
    "vars()": ("vars(len)", "vars() is not available"),
    "os.environ": ("os.environ", "name 'os' is not defined"),
    "os.system": ("import os\nos.system('id')", "import of 'os' is not allowed"),
    "sockets": ("import socket\nsocket.create_connection(('example.com', 80))", "import of 'socket' is not allowed"),
    "fork": ("import os\nos.fork()", "import of 'os' is not allowed"),
    # corrupting what the REPL got from the host
    "write to a module proxy": ("import json\njson.loads = print", "cannot modify"),
    "setattr on a module proxy": ("import math\nsetattr(math, 'pi', 3)", "cannot modify"),
    "write to a library class": ("import textwrap\ntextwrap.TextWrapper.width = 1", "cannot modify"),
    "write to a host function": ("llm_query.cache = {}", "cannot modify"),
    "delete a host function": ("del FINAL", "NameError"),
    "augmented write to a module proxy": ("import math\nmath.pi += 1", "cannot modify"),
    "augmented write to a library object": ("import re\nm = re.compile('a')\nm.flags |= 2", "cannot modify"),
    "augmented write into a tuple": ("t = (1, 2)\nt[0] += 1", "cannot modify"),
    "augmented private attribute": ("class A:\n    pass\na = A()\na._n += 1", '"_n" is an invalid attribute name'),
    "augmented restricted attribute": ("def g():\n    yield 1\ng().gi_frame += 1", '"gi_frame" is a restricted name'),
    "augmented item of a mappingproxy": ("import re\nre.compile('(?P<a>x)').groupindex['_a'] += 1", "keys starting with '_'"),
}


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
def test_refused(sandbox, case):
    code, fragment = REFUSALS[case]
    result = run(sandbox, code)
    refused(result, fragment)
    assert not result.killed


def test_there_are_at_least_forty_cases():
    hostile_tests = [name for name in globals() if name.startswith("test_") and name != "test_refused"]
    assert len(REFUSALS) + len(hostile_tests) >= 40


@pytest.mark.parametrize("module", ["os", "sys", "subprocess", "socket", "ctypes", "importlib", "marshal", "io", "pickle", "gc", "inspect", "signal", "time"])
def test_import_outside_allowlist_names_the_allowlist(sandbox, module):
    result = run(sandbox, f"import {module}")
    refused(result, f"import of {module!r} is not allowed", "allowed modules: bisect, collections")


# --------------------------------------------------------------------------------------------
# Cases that need more than a refusal check
# --------------------------------------------------------------------------------------------
def test_reassigning_host_functions_is_undone(sandbox, recorder):
    result = run(sandbox, "llm_query = lambda p: 'forged'\nFINAL = print\nprint('set')")
    assert result.error is None
    assert "reserved REPL function name(s); the assignment was undone" in result.stdout
    before = len(recorder.calls)
    check = run(sandbox, "print(llm_query('real call'))\nFINAL('done')")
    assert check.stdout == "answer(9)\n"
    assert len(recorder.calls) == before + 1
    assert check.final is not None and check.final.value == "done"


def test_host_functions_show_no_internals(sandbox):
    result = run(sandbox, "print(dir(llm_query), dir(FINAL))\nimport json\nprint(dir(json))")
    assert result.error is None
    assert "[] []" in result.stdout
    assert "'loads'" in result.stdout and "decoder" not in result.stdout and "_" not in result.stdout.replace("_proxy", "")


def test_memory_bomb_string(sandbox):
    run(sandbox, "kept = 7")
    result = run(sandbox, "kept = 8\ns = 'a' * 10**10")
    refused(result, "MemoryError", "line 2")
    assert result.killed and "out of memory" in result.state_note
    assert run(sandbox, "print(kept)").stdout == "7\n"  # the cell had no effect


def test_memory_bomb_growing_list_leaves_no_garbage(sandbox):
    # 10**8 per step reaches the 1 GiB limit in a few steps, long before the 3 s cell timeout even
    # on a loaded machine.
    result = run(sandbox, "chunks = []\nwhile True:\n    chunks.append('x' * 10**8)")
    assert result.killed and "MemoryError" in result.error
    refused(run(sandbox, "chunks"), "NameError")
    # the memory is back: a 300 MB string fits again under the 1 GiB limit
    assert run(sandbox, "print(len('y' * 300_000_000))").stdout == "300000000\n"


def test_memory_bomb_huge_list(sandbox):
    refused(run(sandbox, "big = [0] * 10**10"), "MemoryError")


def test_cpu_bomb_infinite_loop_is_killed_and_state_restored(sandbox):
    run(sandbox, "counter = 1")
    result = run(sandbox, "counter = 2\nwhile True:\n    pass")
    assert result.killed
    refused(result, "TimeoutError")
    assert "before this cell" in result.state_note
    assert run(sandbox, "print(counter)").stdout == "1\n"


def test_cpu_bomb_in_c_code(sandbox):
    result = run(sandbox, "x = 10**10**10")
    assert result.killed and "TimeoutError" in result.error


def test_except_baseexception_does_not_stop_the_timeout(sandbox):
    result = run(sandbox, "try:\n    while True:\n        pass\nexcept BaseException:\n    pass")
    assert result.killed


@pytest.mark.parametrize("exc", ["SystemExit", "KeyboardInterrupt", "BaseException", "GeneratorExit"])
def test_base_exceptions_are_caught(sandbox, exc):
    refused(run(sandbox, f"raise {exc}('bye')"), f"{exc}: bye")


def test_deep_recursion(sandbox):
    refused(run(sandbox, "def f(n):\n    return f(n + 1)\nf(0)"), "RecursionError", "in f: return f(n + 1)")


def test_deeply_nested_data(sandbox):
    refused(run(sandbox, "a = []\nfor i in range(200000):\n    a = [a]\nstr(a)"), "RecursionError")


@pytest.mark.parametrize(
    "source",
    [
        "x = " + "+".join(["1"] * 30000),
        "x = " + "(" * 300 + ")" * 300,
        "x = " + "[" * 100000,
        "x = " + "-" * 200000 + "1",
        "def f():\n" + "".join("    " * (i + 1) + "if x:\n" for i in range(150)) + "    " * 151 + "pass",
    ],
    ids=["20k-plus", "deep-parens", "deep-brackets", "unary-chain", "deep-blocks"],
)
def test_source_bombs(sandbox, source):
    result = run(sandbox, source)
    assert result.error is not None
    assert not result.killed or "stopped" in result.error


def test_printing_gigabytes_is_cut_off(sandbox):
    result = run(sandbox, "s = 'x' * 10**8\nfor i in range(20):\n    print(s)\nprint('end')")
    assert result.error is None
    assert result.output_truncated
    assert len(result.stdout) <= 100_000 + 200
    assert result.duration_s < 10


def test_print_to_a_file_is_refused(sandbox):
    refused(run(sandbox, "print('x', file=context)"), "print(file=...) is not available")


def test_final_var_cannot_read_internals(sandbox):
    refused(run(sandbox, "FINAL_VAR('__builtins__')"), "there is no variable named '__builtins__'")
    with pytest.raises(KeyError):
        sandbox.read_variable("__builtins__")


def test_mappingproxy_private_keys(sandbox):
    ok = run(sandbox, "import re\nprint(re.compile('(?P<word>x)').groupindex['word'])")
    assert ok.stdout == "1\n"
    refused(run(sandbox, "import re\nre.compile('(?P<word>x)').groupindex['__dict__']"), "KeyError")


def test_lone_surrogates_become_replacement_characters_at_the_boundary(sandbox, recorder):
    result = run(sandbox, "print('A\\ud800B')\nx = llm_query('q\\udfff')\nFINAL('\\ud83d!')")
    assert result.stdout == "A\ufffdB\n"
    assert recorder.calls[-1] == ("llm_query", {"prompt": "q\ufffd", "model": None, "ranges": []})
    assert result.final.value == "\ufffd!"
    for text in (result.stdout, result.final.value, recorder.calls[-1][1]["prompt"]):
        text.encode("utf-8")  # strict: raises on a surrogate


def test_repl_process_environment_is_empty(sandbox):
    pid = sandbox._holder_pid
    with open(f"/proc/{pid}/environ", "rb") as fh:
        environ = fh.read().split(b"\0")
    names = {e.split(b"=")[0] for e in environ if e}
    assert names <= {b"LC_CTYPE"}, names
    assert not any(b"KEY" in e or b"SECRET" in e or b"DJANGO" in e for e in environ)


def test_repl_process_has_only_its_socket(sandbox):
    sandbox.variable_summary()  # answered only once the holder has settled after the last cell
    pid = sandbox._holder_pid
    fds = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    non_std = {fd: target for fd, target in fds.items() if fd > 2}
    assert all(t.startswith("socket:") for t in non_std.values()), non_std
    assert len(non_std) == 1, non_std
    assert all(fds[fd] == "/dev/null" for fd in (0, 1, 2) if fd in fds)


# --------------------------------------------------------------------------------------------
# The reachable object graph
# --------------------------------------------------------------------------------------------


# The reachability audit lives in test_language_layer.py.
