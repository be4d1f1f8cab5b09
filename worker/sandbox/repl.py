"""The REPL state and cell execution, inside the sandboxed process (trusted code).

One ``Repl`` per process tree: it holds the documents, the REPL's globals and the per-cell output
collector. ``call_host`` is set by the process that runs a cell (the channel to the host); the
query functions go through it and nothing else reaches the host.
"""

from __future__ import annotations

import time
import types
from collections.abc import Callable
from typing import Any, cast

from worker.sandbox import guards
from worker.sandbox.policy import compile_cell
from worker.sandbox.ranges import MIN_SPAN, DocumentIndex, SliceLog, locate, pin
from worker.sandbox.text import cap_final

RESERVED = ("llm_query", "llm_query_batched", "rlm_query", "FINAL", "FINAL_VAR", "SHOW_VARS")
_MAX_ERROR_CHARS = 4000
_MAX_TRACE_FRAMES = 8
MAX_CALL_CHARS = 32_000_000  # prompts (and rlm_query contexts) sent to the host by one call


def _text(value: object) -> str:
    """``str(value)`` as an exact str (a str subclass's own methods are never trusted)."""
    return guards.exact_str(str(value))


def _check_call_size(fn: str, texts: list[str]) -> None:
    total = sum(len(t) for t in texts)
    if total > MAX_CALL_CHARS:
        raise ValueError(
            f"{fn}(): {total:,} characters in one call is more than the {MAX_CALL_CHARS:,} allowed; "
            "split the work into smaller calls"
        )


class Output:
    """The one print collector of a cell; functions defined in earlier cells print here too."""

    __slots__ = ("parts", "size", "limit", "truncated")

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit
        self.truncated = False

    def write(self, text: str) -> None:
        if self.truncated:
            return
        text = guards.exact_str(text)  # len() of a str subclass could lie
        room = self.limit - self.size
        if len(text) > room:
            if room > 0:
                self.parts.append(text[:room])
                self.size = self.limit
            self.truncated = True
            return
        self.parts.append(text)
        self.size += len(text)

    def __repr__(self) -> str:
        return "<the REPL's output>"

    def __call__(self) -> str:  # `printed`
        return "".join(self.parts)

    def _call_print(self, *objects: Any, sep: str | None = " ", end: str | None = "\n",
                    file: object = None, flush: bool = False) -> None:
        if file is not None:
            raise TypeError("print(file=...) is not available in the sandbox")
        if sep is None:
            sep = " "
        if end is None:
            end = "\n"
        if type(sep) is not str or type(end) is not str:
            raise TypeError("print(): sep and end must be str or None")
        if self.truncated:
            return
        self.write(guards.exact_str(sep).join([o if type(o) is str else _text(o) for o in objects]) + end)


Output._call_print.__qualname__ = "print"  # how `print` shows to REPL code


class Repl:
    def __init__(self, documents: list[tuple[str, str]], output_limit: int, test_hooks: bool = False) -> None:
        self.names = [name for name, _ in documents]
        self.documents = tuple(text for _, text in documents)  # private: ranges use these
        self.output_limit = output_limit
        self.index = DocumentIndex(self.documents)
        self.slices = SliceLog(len(self.documents))
        self.cell_no = 0
        self.sources: dict[str, list[str]] = {}
        self.output = Output(output_limit)
        self.final: dict[str, Any] | None = None
        self.call_host: Callable[[str, dict[str, Any]], Any] | None = None
        self.builtins = self._make_builtins()
        if test_hooks:
            self.builtins["TEST_SPAWN_STRAY"] = _spawn_stray
        context: Any = self.documents[0] if len(self.documents) == 1 else list(self.documents)
        self.globals: dict[str, Any] = {
            "__builtins__": self.builtins,
            "__name__": "repl",
            "context": context,
            "context_names": list(self.names),
        }

    # -- builtins bound to this REPL ---------------------------------------------------------
    def _make_builtins(self) -> dict[str, Any]:
        repl = self
        b = guards.base_builtins()

        doc_numbers = {id(doc): n for n, doc in enumerate(repl.documents)}

        def getslice(ob: Any, index: Any, _get: Callable[[Any, Any], Any] = guards.guarded_getitem) -> Any:
            value = _get(ob, index)
            n = doc_numbers.get(id(ob))
            if n is not None and type(index) is slice:
                start, stop, step = index.indices(len(ob))
                if step == 1 and stop - start >= MIN_SPAN:
                    repl.slices.record(n, start, stop)
            return value

        def print_collector(_getattr_: object = None) -> Output:
            return repl.output

        def display(value: Any) -> None:
            if value is not None:
                repl.output.write(guards.exact_str(repr(value)) + "\n")

        def safe_dir(*args: Any) -> list[str]:
            if not args:
                return sorted(k for k in repl.globals if not k.startswith("_"))
            if len(args) != 1:
                raise TypeError("dir() takes at most 1 argument")
            return [n for n in dir(args[0]) if not n.startswith("_")]

        def FINAL(answer: Any) -> None:  # noqa: N802 - the name the model uses
            """Finish the run with this answer (converted with str())."""
            repl.final = {"value": cap_final(_text(answer)), "source": "FINAL", "var_name": None}

        def FINAL_VAR(name: Any) -> None:  # noqa: N802
            """Finish the run with the value of the REPL variable called `name` (a str)."""
            if isinstance(name, str):
                name = guards.exact_str(name)
                if name in repl.globals and not name.startswith("_") and name not in RESERVED:
                    value = cap_final(_text(repl.globals[name]))
                    repl.final = {"value": value, "source": "FINAL_VAR", "var_name": name}
                    return
                raise NameError(
                    f"FINAL_VAR: there is no variable named {name!r}. Pass the variable's name as a "
                    'string, e.g. FINAL_VAR("answer"), or use FINAL(text) for a literal answer.'
                )
            repl.final = {"value": cap_final(_text(name)), "source": "FINAL_VAR", "var_name": None}

        def SHOW_VARS() -> None:  # noqa: N802
            """Print the REPL's variables with their types and sizes."""
            repl.output.write(repl.variable_summary() + "\n")

        def llm_query(prompt: str, model: str | None = None) -> str:
            """One sub-call to a language model; returns its text."""
            if not isinstance(prompt, str):
                raise TypeError(
                    f"llm_query(prompt): prompt must be a str, got {type(prompt).__name__}"
                    + ("; for many prompts use llm_query_batched(prompts)" if isinstance(prompt, (list, tuple)) else "")
                )
            model = _check_model("llm_query", model)
            prompt = guards.exact_str(prompt)
            _check_call_size("llm_query", [prompt])
            return cast(str, repl.call("llm_query", {"prompt": prompt, "model": model, "ranges": repl.locate(prompt)}))

        def llm_query_batched(prompts: list[str], model: str | None = None) -> list[str]:
            """Many sub-calls at once (run concurrently by the host); returns one text per prompt."""
            if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)):
                raise TypeError(
                    f"llm_query_batched(prompts): prompts must be a list of str, got {type(prompts).__name__}"
                )
            for i, p in enumerate(prompts):
                if not isinstance(p, str):
                    raise TypeError(f"llm_query_batched(prompts): prompts[{i}] must be a str, got {type(p).__name__}")
            model = _check_model("llm_query_batched", model)
            if not prompts:
                return []
            prompts = [guards.exact_str(p) for p in prompts]
            _check_call_size("llm_query_batched", prompts)
            return cast(list[str], repl.call(
                "llm_query_batched",
                {"prompts": prompts, "model": model, "ranges": [repl.locate(p) for p in prompts]},
            ))

        def rlm_query(prompt: str, context: Any = None) -> str:
            """A recursive call: a sub-RLM with its own REPL whose context is `context`."""
            if not isinstance(prompt, str):
                raise TypeError(f"rlm_query(prompt, context=None): prompt must be a str, got {type(prompt).__name__}")
            if context is not None and not isinstance(context, str):
                if not isinstance(context, (list, tuple)) or not all(isinstance(c, str) for c in context):
                    raise TypeError("rlm_query(prompt, context=None): context must be a str, a list of str, or None")
                context = [guards.exact_str(c) for c in context]
            elif isinstance(context, str):
                context = guards.exact_str(context)
            args: dict[str, Any] = {"prompt": guards.exact_str(prompt), "context": context}
            _check_call_size("rlm_query", [args["prompt"]] + ([] if context is None else
                                                             [context] if type(context) is str else context))
            if context is not None:
                args["context_ranges"] = repl.locate_exact([context] if type(context) is str else context)
            return cast(str, repl.call("rlm_query", args))

        b.update(
            _getslice_=getslice,
            _print_=print_collector,
            _display_=display,
            dir=safe_dir,
            FINAL=FINAL,
            FINAL_VAR=FINAL_VAR,
            SHOW_VARS=SHOW_VARS,
            llm_query=llm_query,
            llm_query_batched=llm_query_batched,
            rlm_query=rlm_query,
        )
        for name, value in b.items():
            # What REPL code can print of its builtins names no module or class of the sandbox.
            if type(value) is types.FunctionType and not name.startswith("_"):
                value.__qualname__ = value.__name__ = name
                value.__module__ = "builtins"
        return b

    def call(self, name: str, args: dict[str, Any]) -> Any:
        if self.call_host is None:
            raise RuntimeError(f"{name}() is not available here")
        return self.call_host(name, args)

    # -- running cells -----------------------------------------------------------------------
    def run_cell(self, source: str) -> dict[str, Any]:
        self.cell_no += 1
        filename = f"<cell {self.cell_no}>"
        self.sources[filename] = source.splitlines()
        self.output = Output(self.output_limit)
        self.final = None
        started = time.perf_counter()
        error: str | None = None
        memory_error = False
        code, error = compile_cell(source, filename)
        if code is not None:
            try:
                exec(code, self.globals)
            except BaseException as exc:  # SystemExit, KeyboardInterrupt and all: the cell just fails
                memory_error = isinstance(exc, MemoryError)
                error = self.format_error(exc, filename)
        notes = self._restore_reserved()
        if notes:
            self.output.write(notes)
        return {
            "stdout": self.output(),
            "error": error,
            "truncated": self.output.truncated,
            "final": self.final,
            "duration_s": time.perf_counter() - started,
            "memory_error": memory_error,
        }

    def _restore_reserved(self) -> str:
        shadowed = [n for n in RESERVED if n in self.globals]
        for n in shadowed:
            del self.globals[n]
        if "__builtins__" not in self.globals or self.globals["__builtins__"] is not self.builtins:
            self.globals["__builtins__"] = self.builtins
        if not shadowed:
            return ""
        return (
            f"[note: {', '.join(shadowed)} {'is a' if len(shadowed) == 1 else 'are'} reserved REPL "
            "function name(s); the assignment was undone]\n"
        )

    def format_error(self, exc: BaseException, current: str) -> str:
        try:
            frames: list[tuple[str, int, str] | None] = []
            tb = exc.__traceback__
            while tb is not None:
                code = tb.tb_frame.f_code
                if code.co_filename in self.sources:
                    frames.append((code.co_filename, tb.tb_lineno, code.co_name))
                tb = tb.tb_next
            try:
                message = str(exc)
            except BaseException:
                message = "<the exception's message could not be shown>"
            head = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
            if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                head += f" ({type(exc).__name__} does not stop the REPL; finish with FINAL(answer))"
            lines = []
            if len(frames) > _MAX_TRACE_FRAMES:
                skipped = len(frames) - _MAX_TRACE_FRAMES
                frames = frames[:2] + [None] + frames[-(_MAX_TRACE_FRAMES - 2):]
            else:
                skipped = 0
            for frame in frames:
                if frame is None:
                    lines.append(f"  ... {skipped} more ...")
                    continue
                filename, lineno, func = frame
                where = f"line {lineno}" if filename == current else f"line {lineno} of {filename[1:-1]}"
                src = self.sources[filename]
                text = src[lineno - 1].strip() if 0 < lineno <= len(src) else ""
                lines.append(f"  {where}, in {func}: {text[:200]}")
            out = head
            if lines:
                out = "Traceback (most recent call last):\n" + "\n".join(lines) + "\n" + head
            if len(out) > _MAX_ERROR_CHARS:
                out = out[: _MAX_ERROR_CHARS // 2] + "\n...\n" + out[-_MAX_ERROR_CHARS // 2 :]
            return out
        except BaseException:
            return f"{type(exc).__name__} (details unavailable)"

    # -- inspection --------------------------------------------------------------------------
    def variable_summary(self) -> str:
        """One line per variable. Runs REPL-defined code (a class's ``__len__``...) never: sizes are
        taken for exact built-in types only. Still, only a cell process calls it."""
        rows = []
        for name, value in list(self.globals.items()):
            if type(name) is not str or name.startswith("_") or name in RESERVED:
                continue
            t = type(value)
            kind = "module" if isinstance(value, guards.ModuleProxy) else t.__name__
            size = ""
            if t is str:
                size = f", {len(value):,} chars"
            elif t is bytes or t is bytearray:
                size = f", {len(value):,} bytes"
            elif t in (list, tuple, dict, set, frozenset):
                size = f", {len(value):,} items"
            rows.append(f"  {name}: {kind}{size}")
        if not rows:
            return "No variables."
        return "Variables:\n" + "\n".join(rows)

    def read_variable(self, name: str) -> str:
        if name.startswith("_") or name in RESERVED or name not in self.globals:
            raise KeyError(name)
        return cap_final(_text(self.globals[name]))

    def locate(self, prompt: str) -> list[dict[str, int]]:
        """The document ranges a prompt carries (see ranges.locate: ambiguous text says so)."""
        return locate(self.index, self.slices, prompt)

    def locate_exact(self, texts: list[str], budget_chars: int = 200_000_000) -> list[dict[str, int] | None]:
        """Where each text sits in the documents, verbatim: ``{"doc", "start", "end"}`` when it
        occurs once, or once within what the code sliced; else None (absent or ambiguous).

        Runs in the cell process (under the cell's time limit, killed on cancel); the total work
        is bounded by ``budget_chars`` of documents scanned, after which the rest is None.
        """
        out: list[dict[str, int] | None] = []
        spent = 0
        total = sum(len(d) for d in self.documents)
        for text in texts:
            where = None
            if len(text) >= 16 and spent < budget_chars:
                spent += total
                found = pin(self.documents, text, self.slices)
                if isinstance(found, tuple):
                    where = {"doc": found[0], "start": found[1], "end": found[1] + len(text)}
            out.append(where)
        return out


def _spawn_stray(seconds: float = 60.0) -> int:
    """Test hook (only with RLMWEB_SANDBOX_TEST_HOOKS=1): what escaped code could do, fork a
    process that outlives the cell and holds its descriptors. Returns its pid."""
    import os

    pid = os.fork()
    if pid == 0:
        time.sleep(float(seconds))
        os._exit(0)
    return pid


def _check_model(fn: str, model: object) -> str | None:
    if model is not None and not isinstance(model, str):
        raise TypeError(f"{fn}(..., model=None): model must be a str or None, got {type(model).__name__}")
    return None if model is None else guards.exact_str(model)
