"""REPL_RULES: what the root model must know about the sandboxed REPL (for its system prompt).

Kept free of heavy imports so the host can import it; ``tests/sandbox`` checks that the module list
matches ``guards.ALLOWED_MODULES`` and that every refusal listed here is real.
"""

ALLOWED_MODULES = (
    "bisect", "collections", "csv", "datetime", "difflib", "functools", "heapq", "itertools", "json",
    "math", "operator", "random", "re", "statistics", "string", "textwrap", "unicodedata",
)

REPL_RULES = f"""\
The REPL runs restricted Python 3.11 in an isolated process: no files, network or OS access.
- Variables, functions and classes persist between cells. `context` holds the document text (a str,
  or a list of str when there are several documents; `context_names` lists their names). A bare
  expression on the last line of a cell is shown, as in a notebook; otherwise print().
- Names and attributes may not start with "_" (no `__class__`, `__dict__`, `_private`...). In a
  class you may define `__init__`, the comparisons, `__contains__`, `__repr__`, `__str__`,
  `__len__`, `__bool__`, `__hash__`, `__iter__`, `__next__`, `__getitem__`/`__setitem__`/
  `__delitem__`, `__call__`, `__add__`/`__sub__`/`__mul__` (and `__radd__`...), `__truediv__`,
  `__neg__` and `__abs__`; other special methods may not be.
- Refused by the compiler: augmented assignment to a slice (`x[1:2] += y`; `d[k] += 1` and
  `obj.n += 1` are fine), `match`, `async`/`await`, `try/except*`, `exec`/`eval`. Annotations
  (`x: int = 1`) are accepted and ignored; `nonlocal` works.
- `str.format`/`format_map` work, but their fields may not reach names starting with "_"
  (`'{{0.__class__}}'` is refused, `'{{0.real}}'` and `'{{0[key]}}'` are fine).
- Not available: `open`, `globals`/`locals`/`vars`, `compile`, `super` (call the base class
  directly: `Base.method(self, ...)`), `type()` with three arguments, `metaclass=`,
  `print(file=...)`. `type(x)` of functions, methods, modules and classes gives a printable view
  that cannot be called.
- You can set attributes on instances of your own classes and items of your own lists, dicts and
  sets; library objects and modules are read-only.
- `import` works only for: {", ".join(ALLOWED_MODULES)}
  (also `from X import name`; `operator` lacks attrgetter/methodcaller, `string` lacks Formatter).
- Each cell has a time limit for its own computation (waiting for llm_query/rlm_query does not
  count) and a memory limit. A cell stopped for exceeding them has no effect: the variables are as
  they were before it. A cell that raises an exception keeps what it assigned before the error.
- Finish with FINAL(answer) or FINAL_VAR("variable_name") (the variable's name as a string). The
  cell still runs to its end; the last FINAL/FINAL_VAR call wins.
- llm_query(prompt, model=None) -> str; llm_query_batched(prompts, model=None) -> list[str]
  (concurrent: batch as much as possible); rlm_query(prompt, context=None) -> str (a sub-RLM with
  its own REPL over `context`); SHOW_VARS() lists your variables. A failed sub-call raises
  RuntimeError with the reason.
"""
