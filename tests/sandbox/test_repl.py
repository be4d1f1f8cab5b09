"""Useful Python stays useful: what ordinary RLM code does works in the sandboxed REPL."""

from __future__ import annotations

import threading
import time

import pytest

from tests.sandbox.conftest import DOC_A, DOC_B, FAST_LIMITS
from worker.sandbox import REPL_RULES, Sandbox, SandboxError, SandboxLimits, guards
from worker.sandbox.policy import compile_cell
from worker.sandbox.rules import ALLOWED_MODULES


def ok(sb, code: str) -> str:
    result = sb.run_cell(code)
    assert result.error is None, result.error
    assert not result.killed
    return result.stdout


def test_context_is_the_document(sandbox):
    assert ok(sandbox, "print(type(context), len(context), context_names)") == (
        f"<class 'str'> {len(DOC_A)} ['a.txt']\n"
    )


def test_several_documents_give_a_list(multi_sandbox):
    out = ok(multi_sandbox, "print(type(context), [len(c) for c in context], context_names)")
    assert out == f"<class 'list'> {[len(DOC_A), len(DOC_B)]} ['a.txt', 'b.txt']\n"


def test_variables_functions_and_classes_persist(sandbox):
    ok(sandbox, "total = 0\ndef add(n):\n    return n + 1\nclass Box:\n    def __init__(self, v):\n"
                "        self.v = v\n        self.items = []\n    def put(self, x):\n        self.items.append(x)\n"
                "        self.last = x\n        return self")
    out = ok(sandbox, "b = Box(3).put('a').put('b')\ntotal += add(41)\nb.v = b.v * 2\nprint(total, b.v, b.items, b.last)")
    assert out == "42 6 ['a', 'b'] b\n"


def test_functions_from_earlier_cells_print_into_the_current_cell(sandbox):
    ok(sandbox, "def shout(x):\n    print('>>', x)")
    assert ok(sandbox, "shout(1)\nshout('two')") == ">> 1\n>> two\n"


def test_last_expression_is_shown(sandbox):
    assert ok(sandbox, "x = 5\nx * 2") == "10\n"
    assert ok(sandbox, "None") == ""


def test_comprehensions_fstrings_unpacking_lambdas(sandbox):
    code = (
        "pairs = [(w, len(w)) for w in context.split()[:6]]\n"
        "lens = {w: n for w, n in pairs}\n"
        "first, *rest = sorted(lens, key=lambda w: -lens[w])\n"
        "evens = {n for w, n in pairs if n % 2 == 0}\n"
        "gen = sum(n for w, n in pairs)\n"
        "print(f'{first!r:>8}|{gen:05d}|{len(rest)}|{sorted(evens)}')\n"
    )
    plain: dict = {"context": DOC_A}
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(code, plain)  # the same code as plain Python
    assert ok(sandbox, code) == buf.getvalue() == " 'quick'|00022|5|[2, 4]\n"


def test_exceptions_have_line_numbers(sandbox):
    ok(sandbox, "def inner(d):\n    return d['missing']")
    result = sandbox.run_cell("x = 1\ny = inner({})\n")
    assert result.error is not None
    assert "line 2, in <module>: y = inner({})" in result.error
    assert "line 2 of cell" in result.error and "in inner: return d['missing']" in result.error
    assert result.error.endswith("KeyError: 'missing'")
    assert ok(sandbox, "print(x)") == "1\n"  # a failing cell keeps what it did before the error


def test_compile_errors_are_verbatim(sandbox):
    result = sandbox.run_cell("x = (1,\n")
    assert result.error.startswith("Line ") and "SyntaxError" in result.error
    result = sandbox.run_cell("x = [1]\nx[0:1] += [2]")
    assert result.error == "Line 2: Augmented assignment of object items and slices is not allowed."
    result = sandbox.run_cell("d = {}\nd['a'] += 1")  # compiles now, and fails as Python would
    assert result.error.endswith("line 2, in <module>: d['a'] += 1\nKeyError: 'a'")


def test_missing_attribute_gives_the_real_error(sandbox):
    result = sandbox.run_cell("'abc'.uppre()")
    assert "AttributeError: 'str' object has no attribute 'uppre'" in result.error


def test_builtins_that_stock_restrictedpython_lacks(sandbox):
    out = ok(sandbox, "print(sorted([3, 1, 2]), tuple('ab'), list(zip('ab', 'cd')), bytes(2), "
                      "list(enumerate('x')), min(3, 1), max([4, 9]), sum(range(5)), any([0, 1]), all([]), "
                      "list(map(str, [1])), list(filter(None, [0, 2])), list(reversed('ab')), dict(a=1), set('aa'), "
                      "isinstance(1, int), len('abc'), type(1.5))")
    assert out.startswith("[1, 2, 3] ('a', 'b') [('a', 'c'), ('b', 'd')] b'\\x00\\x00' [(0, 'x')] 1 9 10 True True ")
    assert out.endswith("<class 'float'>\n")


def test_range_is_not_capped(sandbox):
    assert ok(sandbox, "n = 0\nfor i in range(10_000_000):\n    n += 1\nprint(n, len(range(10**12)))") == (
        "10000000 1000000000000\n"
    )


def test_getattr_and_setattr_on_own_objects(sandbox):
    out = ok(sandbox, "class P:\n    pass\np = P()\nsetattr(p, 'name', 'x')\nprint(getattr(p, 'name'), "
                      "getattr(p, 'nope', 'default'), hasattr(p, 'name'))")
    assert out == "x default True\n"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import re\nprint(re.findall(r'Line (\\d+):', context)[:3], bool(re.search('FOX', 'a fox', re.I)))",
         "['0', '1', '2'] True"),
        ("import json\nprint(json.loads(json.dumps({'a': [1, 2]}))['a'])", "[1, 2]"),
        ("import math\nprint(math.sqrt(16), math.pi > 3)", "4.0 True"),
        ("import statistics\nprint(statistics.mean([1, 2, 3]), statistics.median([5, 1, 3]))", "2 3"),
        ("from collections import Counter, defaultdict, deque, namedtuple, OrderedDict\n"
         "c = Counter('abca')\nd = defaultdict(list)\nd['k'].append(1)\nP = namedtuple('P', 'x y')\n"
         "q = deque([1])\nq.appendleft(0)\nprint(c.most_common(1), dict(d), P(1, 2).y, list(q), list(OrderedDict(a=1)))",
         "[('a', 2)] {'k': [1]} 2 [0, 1] ['a']"),
        ("import itertools\nprint(list(itertools.islice(itertools.count(), 3)), list(itertools.chain('a', 'b')))",
         "[0, 1, 2] ['a', 'b']"),
        ("import functools\n@functools.lru_cache(maxsize=None)\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
         "print(fib(50), functools.reduce(lambda a, b: a * b, [1, 2, 3, 4]), functools.partial(int, base=2)('101'))",
         "12586269025 24 5"),
        ("import functools\ndef deco(f):\n    @functools.wraps(f)\n    def w(*a):\n        return f(*a)\n    return w\n"
         "@deco\ndef named():\n    return 1\nprint(named())", "1"),
        ("import heapq\nh = [5, 1, 3]\nheapq.heapify(h)\nprint(heapq.heappop(h), heapq.nlargest(1, [4, 9]))", "1 [9]"),
        ("import bisect\nprint(bisect.bisect_left([1, 3, 5], 4))", "2"),
        ("import string\nprint(string.ascii_lowercase[:3], string.Template('$x!').substitute(x='hi'))", "abc hi!"),
        ("import textwrap\nprint(textwrap.shorten('a b c d e f g', width=9), textwrap.dedent('  x'))", "a b [...] x"),
        ("import difflib\nprint(difflib.get_close_matches('appel', ['apple', 'pear']), "
         "round(difflib.SequenceMatcher(None, 'abc', 'abd').ratio(), 2))", "['apple'] 0.67"),
        ("import datetime\nd = datetime.datetime.strptime('2024-03-05', '%Y-%m-%d')\n"
         "print(d.date(), (d + datetime.timedelta(days=1)).strftime('%d %b'), d.isoformat())",
         "2024-03-05 06 Mar 2024-03-05T00:00:00"),
        ("import random\nrandom.seed(7)\na = random.random()\nrandom.seed(7)\nprint(a == random.random(), "
         "len(random.sample(range(100), 5)))", "True 5"),
        ("import operator\nprint(operator.itemgetter(1)('ab'), operator.add(2, 3), sorted([(1, 'b'), (0, 'a')], "
         "key=operator.itemgetter(0)))", "b 5 [(0, 'a'), (1, 'b')]"),
        ("import unicodedata\nprint(unicodedata.name('é'), unicodedata.normalize('NFD', 'é') != 'é')",
         "LATIN SMALL LETTER E WITH ACUTE True"),
        ("import csv\nrows = list(csv.reader('a,b\\n\"c,d\",e'.splitlines()))\n"
         "dicts = list(csv.DictReader(['x,y', '1,2']))\nprint(rows, dicts[0]['y'])", "[['a', 'b'], ['c,d', 'e']] 2"),
        ("from re import findall, IGNORECASE\nprint(findall('a', 'AaA', IGNORECASE))", "['A', 'a', 'A']"),
        ("import json\ntry:\n    json.loads('{bad')\nexcept json.JSONDecodeError as e:\n    print('bad json', e.pos)",
         "bad json 1"),
        ("print('é'.encode('utf-16')[:2], 'x'.encode('cp1252'), b'\\xe9'.decode('latin-1'))",
         "b'\\xff\\xfe' b'x' é"),
    ],
    ids=["re", "json", "math", "statistics", "collections", "itertools", "functools", "functools.wraps",
         "heapq", "bisect", "string", "textwrap", "difflib", "datetime", "random", "operator", "unicodedata",
         "csv", "from-import", "json-error", "codecs"],
)
def test_allowed_modules(sandbox, code, expected):
    assert ok(sandbox, code) == expected + "\n"


def test_str_format_works_with_guarded_fields(sandbox):
    out = ok(
        sandbox,
        "import collections, datetime\n"
        "print('{} of {}'.format(3, 10), '{0:>5}|{name!r}'.format(7, name='a'))\n"
        "print('{0.real}+{0.imag}j {1[k]} {2[1]}'.format(2+3j, {'k': 'v'}, [0, 9]))\n"
        "print('{d:%Y-%m-%d} {x:.{p}f}'.format(d=datetime.date(2026, 1, 2), x=3.14159, p=2))\n"
        "print('{a}/{b}'.format_map({'a': 1, 'b': 2}), str.format('{}!', 'hi'))\n"
        "print(collections.UserString('<{}>').format('u'), list(map('[{}]'.format, 'ab')))",
    )
    assert out.splitlines() == [
        "3 of 10     7|'a'",
        "2.0+3.0j v 9",
        "2026-01-02 3.14",
        "1/2 hi!",
        "<u> ['[a]', '[b]']",
    ]


def test_augmented_assignment_to_items_and_attributes(sandbox):
    out = ok(
        sandbox,
        "import collections\n"
        "counts = {}\n"
        "for w in 'a b a c a'.split():\n"
        "    counts[w] = counts.get(w, 0)\n"
        "    counts[w] += 1\n"
        "dd = collections.defaultdict(list)\n"
        "dd['x'] += [1, 2]\n"
        "grid = [[0, 0], [0, 0]]\n"
        "grid[1][0] -= 5\n"
        "class Acc:\n"
        "    def __init__(self):\n"
        "        self.n = 1\n"
        "acc = Acc()\n"
        "acc.n *= 7\n"
        "calls = []\n"
        "def key():\n"
        "    calls.append(1)\n"
        "    return 'a'\n"
        "counts[key()] += 10\n"
        "print(counts, dict(dd), grid, acc.n, len(calls))",
    )
    assert out.strip() == "{'a': 13, 'b': 1, 'c': 1} {'x': [1, 2]} [[0, 0], [-5, 0]] 7 1"


def test_annotations_nonlocal_and_ordinary_special_methods(sandbox):
    out = ok(
        sandbox,
        "total: int = 0\n"
        "pending: list\n"
        "class Bag:\n"
        "    size: int = 0\n"
        "    def __init__(self, items):\n"
        "        self.items: list = list(items)\n"
        "    def __len__(self):\n"
        "        return len(self.items)\n"
        "    def __iter__(self):\n"
        "        return iter(self.items)\n"
        "    def __getitem__(self, i):\n"
        "        return self.items[i]\n"
        "    def __repr__(self):\n"
        "        return f'Bag({len(self)})'\n"
        "def counter():\n"
        "    n = 0\n"
        "    def bump():\n"
        "        nonlocal n\n"
        "        n += 1\n"
        "        return n\n"
        "    return bump\n"
        "bump = counter()\n"
        "bump(); bump()\n"
        "b = Bag('xyz')\n"
        "print(total, len(b), list(b), b[1], repr(b), f'{b}', [b], bump())",
    )
    assert out.strip() == "0 3 ['x', 'y', 'z'] y Bag(3) Bag(3) [Bag(3)] 3"


def test_rules_list_matches_the_proxies():
    assert tuple(ALLOWED_MODULES) == guards.ALLOWED_MODULES
    for module in ALLOWED_MODULES:
        assert module in REPL_RULES


@pytest.mark.parametrize(
    "snippet",
    ["x[1:2] += y", "match x:\n    case 1:\n        pass", "async def f():\n    pass",
     "try:\n    pass\nexcept* ValueError:\n    pass",
     "exec('1')", "eval('1')"],
)
def test_every_refusal_listed_in_the_rules_is_real(snippet):
    code, error = compile_cell(snippet, "<cell 1>")
    assert code is None and error


def test_final_and_final_var(sandbox):
    result = sandbox.run_cell("FINAL('first')\nanswer = 'x' * 5\nFINAL_VAR('answer')\nprint('after')")
    assert result.stdout == "after\n"  # the cell runs to its end
    assert (result.final.value, result.final.source, result.final.var_name) == ("xxxxx", "FINAL_VAR", "answer")
    result = sandbox.run_cell("FINAL(42)")
    assert (result.final.value, result.final.source, result.final.var_name) == ("42", "FINAL", None)
    result = sandbox.run_cell("FINAL_VAR(['an', 'object'])")
    assert (result.final.value, result.final.var_name) == ("['an', 'object']", None)
    result = sandbox.run_cell("FINAL_VAR('no such variable')")
    assert result.final is None and "there is no variable named 'no such variable'" in result.error
    assert sandbox.run_cell("x = 1").final is None


def test_show_vars_read_variable_and_summary(sandbox):
    ok(sandbox, "notes = ['a', 'b']\nsummary = 'done'")
    out = ok(sandbox, "SHOW_VARS()")
    assert "  notes: list, 2 items" in out and "  summary: str, 4 chars" in out and "  context: str" in out
    assert "llm_query" not in out
    assert sandbox.variable_summary() + "\n" == out
    assert sandbox.read_variable("notes") == "['a', 'b']"
    with pytest.raises(KeyError):
        sandbox.read_variable("never_defined")


def test_query_functions_round_trip(sandbox, recorder):
    recorder.calls.clear()
    out = ok(sandbox, "a = llm_query('hi')\nb = llm_query_batched(['x', 'yy'], model='cheap')\n"
                      "c = rlm_query('sub?', context=['d1', 'd2'])\nprint(a, b, c, llm_query_batched([]))")
    assert out == "answer(2) ['answer(1)', 'answer(2)'] sub-rlm(sub?) []\n"
    assert recorder.calls == [
        ("llm_query", {"prompt": "hi", "model": None, "ranges": []}),
        ("llm_query_batched", {"prompts": ["x", "yy"], "model": "cheap", "ranges": [[], []]}),
        ("rlm_query", {"prompt": "sub?", "context": ["d1", "d2"], "context_ranges": [None, None]}),
    ]


def test_ranges_are_computed_in_the_repl(sandbox, recorder):
    recorder.calls.clear()
    ok(sandbox, "r = llm_query('Summarise:\\n' + context[1000:5000] + '\\nThanks')")
    (name, args), = recorder.calls
    assert args["ranges"] == [{"doc": 0, "start": 1000, "end": 5000}]


def test_handler_errors_become_catchable_runtime_errors(sandbox):
    out = ok(sandbox, "try:\n    llm_query('fail please')\nexcept RuntimeError as e:\n    print('caught', e)")
    assert out == "caught budget exhausted\n"


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("llm_query(['a'])", "prompt must be a str, got list; for many prompts use llm_query_batched"),
        ("llm_query('a', model=3)", "model must be a str or None, got int"),
        ("llm_query_batched('abc')", "prompts must be a list of str, got str"),
        ("llm_query_batched(['a', 1])", "prompts[1] must be a str, got int"),
        ("rlm_query('q', context=5)", "context must be a str, a list of str, or None"),
    ],
)
def test_query_argument_errors_are_readable(sandbox, recorder, code, fragment):
    recorder.calls.clear()
    result = sandbox.run_cell(code)
    assert "TypeError" in result.error and fragment in result.error
    assert recorder.calls == []


def test_large_prompts_cross_the_channel(sandbox, recorder):
    recorder.calls.clear()
    out = ok(sandbox, "big = 'z' * 30_000_000\nprint(llm_query(big))")
    assert out == "answer(30000000)\n"
    assert len(recorder.calls[0][1]["prompt"]) == 30_000_000


def test_engine_exception_in_handler_stops_the_cell_and_propagates(docs):
    def handler(name, args):
        raise KeyboardInterrupt("engine cancelled")

    with Sandbox(docs[:1], handler, FAST_LIMITS) as sb:
        sb.run_cell("x = 1")
        with pytest.raises(KeyboardInterrupt):
            sb.run_cell("x = 2\nllm_query('q')")
        assert sb.run_cell("print(x)").stdout == "1\n"


def test_timeout_restores_the_state_from_before_the_cell(docs, recorder):
    with Sandbox(docs[:1], recorder, SandboxLimits(cell_timeout_s=1.0, memory_bytes=1024**3)) as sb:
        ok(sb, "kept = [1, 2]\ndef f():\n    return 'f'")
        started = time.monotonic()
        result = sb.run_cell("kept.append(3)\nnew_var = 1\nprint('partial')\nwhile True:\n    pass")
        assert time.monotonic() - started < 5
        assert result.killed and result.error.startswith("TimeoutError")
        assert result.state_note == (
            "The cell was killed after 1 s; variables are as they were before this cell (anything it computed is lost)."
        )
        assert ok(sb, "print(kept, f(), 'new_var' in dir())") == "[1, 2] f False\n"


def test_time_waiting_for_the_handler_does_not_count(docs):
    def slow(name, args):
        time.sleep(0.6)
        return "slow answer"

    with Sandbox(docs[:1], slow, SandboxLimits(cell_timeout_s=1.0, memory_bytes=1024**3)) as sb:
        result = sb.run_cell("print([llm_query('q') for i in range(3)])")
        assert result.error is None and result.duration_s > 1.5


def test_interrupt_from_another_thread(docs, recorder):
    with Sandbox(docs[:1], recorder, SandboxLimits(cell_timeout_s=60, memory_bytes=1024**3)) as sb:
        ok(sb, "v = 'before'")
        threading.Timer(0.5, sb.interrupt).start()
        started = time.monotonic()
        result = sb.run_cell("v = 'during'\nwhile True:\n    pass")
        assert time.monotonic() - started < 5
        assert result.killed and result.error.startswith("Interrupted")
        assert ok(sb, "print(v)") == "before\n"


def test_cpu_limit(docs, recorder):
    limits = SandboxLimits(cell_timeout_s=30, memory_bytes=1024**3, cpu_seconds_per_cell=1)
    with Sandbox(docs[:1], recorder, limits) as sb:
        result = sb.run_cell("while True:\n    pass")
        assert result.killed and "CPU time limit" in result.error
        assert ok(sb, "print('fine')") == "fine\n"


def test_protections_are_reported(sandbox):
    assert set(sandbox.protections) >= {"rlimits", "landlock", "seccomp", "no_new_privs", "pdeathsig"}


def test_every_sandbox_has_a_cpu_limit_behind_its_wall_clock_timeout(docs, recorder):
    assert SandboxLimits(cell_timeout_s=120).cpu_limit_s() == 250
    assert SandboxLimits(cell_timeout_s=120, cpu_seconds_per_cell=7).cpu_limit_s() == 7
    with Sandbox(docs[:1], recorder, SandboxLimits(cell_timeout_s=3, memory_bytes=1024**3)) as sb:
        assert "CPU=16s per cell" in sb.protections["rlimits"]


def test_closed_sandbox_refuses_work(docs, recorder):
    sb = Sandbox(docs[:1], recorder, FAST_LIMITS)
    sb.start()
    sb.close()
    with pytest.raises(SandboxError):
        sb.run_cell("1")


def test_missing_document_fails_fast(tmp_path, recorder):
    with pytest.raises(FileNotFoundError):
        Sandbox([("x", str(tmp_path / "nope.txt"))], recorder).start()


def _thp_available() -> bool:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as fh:
            return "[never]" not in fh.read()
    except OSError:
        return False


@pytest.mark.skipif(not _thp_available(), reason="transparent huge pages are switched off on this machine")
def test_large_documents_sit_in_huge_pages_so_the_per_cell_fork_stays_cheap(tmp_path, recorder):
    path = tmp_path / "big.txt"
    path.write_text("forty-two characters of plain text, again\n" * 500_000)  # 21 MB
    with Sandbox([("big.txt", str(path))], recorder, FAST_LIMITS) as sb:
        assert sb.run_cell("print(len(context))").stdout == "21000000\n"
        with open(f"/proc/{sb._holder_pid}/smaps_rollup") as fh:
            huge_kb = next(int(line.split()[1]) for line in fh if line.startswith("AnonHugePages:"))
        assert huge_kb >= 16 * 1024  # most of the 21 MB of text, in 2 MiB pages
