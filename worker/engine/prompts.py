"""What the models are told: the root's system prompt, its first turn, and the sub-call preamble.

Written for this project. The root is told where it stands (depth, spend, budget left) because it
changes how much a model spends; it is asked to orchestrate (plan, probe, filter, chunk, batch)
rather than read, since its own window is assumed small.
"""

from dataclasses import dataclass

ROOT_ROLE = "You are the root of a Recursive Language Model (RLM)"
NO_SUBCALLS_NOTE = "Sub-calls are disabled in this run"
FORCED_NOTE = "You have reached the iteration limit"
QUESTION_HEADING = "## Question"
CONTEXT_HEADING = "## Context (metadata only)"
PREVIEW_CHARS = 300


@dataclass(frozen=True)
class Standing:
    """Where a call stands in the run, told to every model call."""

    depth: int
    max_depth: int
    iteration: int
    max_iterations: int
    spent_usd: float
    unknown_cost_calls: int
    max_cost_usd: float | None
    subcalls: int
    max_subcalls: int
    seconds_left: float

    def line(self) -> str:
        spent = f"${self.spent_usd:.4f}"
        if self.unknown_cost_calls:
            spent += f" (+{self.unknown_cost_calls} calls of unknown price)"
        budget = f" of ${self.max_cost_usd:.2f}" if self.max_cost_usd is not None else " (no cost cap)"
        return (
            f"[depth {self.depth} of max {self.max_depth} · iteration {self.iteration}/{self.max_iterations} · "
            f"spent {spent}{budget} · sub-calls {self.subcalls}/{self.max_subcalls} · "
            f"{max(0, int(self.seconds_left))} s left]"
        )


def root_system_prompt(repl_rules: str, subcalls: bool, output_limit_chars: int) -> str:
    """The root's system prompt. It is the same for every turn of a run (and for every run with the
    same settings), so a provider's prompt cache can serve it: where the root stands changes every
    turn, so it goes at the end of the newest user message instead (`Standing.line()`)."""
    if subcalls:
        functions = """\
- `llm_query(prompt, model=None) -> str`: one call to a sub-model, which sees only `prompt`. Put
  the slice of the context it needs into the prompt yourself (`context[a:b]`, a regex hit's
  neighbourhood, a chapter). Sub-models read large slices well: give each ~50,000-100,000
  characters rather than a line at a time.
- `llm_query_batched(prompts, model=None) -> list[str]`: many sub-calls at once, run
  concurrently; the answers come back in order. Prefer one batch of ~10-30 large prompts to many
  single calls: each call costs money and time. A prompt that failed comes back as a string
  starting with "ERROR:".
- `rlm_query(prompt, context=None) -> str`: hand a sub-problem to a child RLM with its own REPL,
  whose `context` is the string or list of strings you pass (the prompt itself when None). Use it
  for a part that is itself too large to read in one sub-call; beyond the depth limit it is a
  plain `llm_query`."""
    else:
        functions = f"""\
- {NO_SUBCALLS_NOTE}: `llm_query`, `llm_query_batched` and `rlm_query` raise an error. Answer
  with Python alone: search, slice, count and compare the text in code."""
    return f"""\
{ROOT_ROLE}. You answer a question about documents that are far too large to read: they are
loaded into a persistent Python REPL, never into this conversation. Assume your own window is
small; work through code, and let the REPL hold the text.

## The REPL
- `context`: the document text, a `str` for one document, or a `list[str]` for several, with
  the matching names in `context_names`.
{functions}
- `SHOW_VARS()`: list the variables you have made.
- `print(...)`: the only way to see anything. Output is cut at {output_limit_chars:,} characters,
  so print lengths, counts and short excerpts, and keep large strings in variables.
- `FINAL(answer)`: finish with this answer. `FINAL_VAR("name")`: finish with the contents of the
  REPL variable `name`, which may be far longer than anything you could write yourself.

Variables persist between cells. To run code, write it in a fenced block that starts with
```repl (```python also works); blocks run in order, and their output comes back to you in the
next message.

## How to work
1. Plan how to break the question down before reading anything.
2. Probe: `len(context)`, the first few hundred characters, the structure (headings, records).
3. Filter with code: regex and keywords from what you expect the answer to look like.
4. Chunk what remains (by section, or by a fixed number of characters) and fan out sub-calls
   over the chunks in batches; collect the answers in variables, then combine them.
5. Check an answer once if it matters, but do not verify the same thing again and again.
6. Never answer on your first turn: look at the context first. Finish by calling `FINAL(...)` or
   `FINAL_VAR(...)` inside a ```repl block once the output has shown you the answer, or by writing
   `FINAL(...)` alone on a line in a message without code. A message that contains code cannot
   also give the final answer in its text: you have not seen that code's output yet.

## Python rules of this REPL
{repl_rules}

## Where you stand
The last line of each message you get says where you stand: recursion depth, iteration, money
spent against the budget, sub-calls used, and seconds left.
"""


def root_first_turn(question: str, names: list[str], texts_preview: list[str], lengths: list[int]) -> str:
    total = sum(lengths)
    if len(names) == 1:
        shape = f"`context` is a str of {total:,} characters (document {names[0]!r})."
    else:
        shape = (
            f"`context` is a list of {len(names)} str ({total:,} characters in all); `context_names` "
            "holds their names:"
        )
    lines = [QUESTION_HEADING, question.strip(), "", CONTEXT_HEADING, shape]
    if len(names) > 1:
        for i, (name, length) in enumerate(zip(names, lengths, strict=True)):
            lines.append(f"- [{i}] {name!r}: {length:,} characters")
    lines.append("")
    for name, preview in zip(names, texts_preview, strict=True):
        lines.append(f"Preview of {name!r} (first {len(preview)} characters): {preview!r}")
    lines += ["", "Start by exploring the context in the REPL. Do not answer yet."]
    return "\n".join(lines)


def cell_output(index: int, stdout: str, error: str | None, truncated: bool, total_chars: int,
                state_note: str | None) -> str:
    parts = [f"Output of block {index + 1}:"]
    parts.append(stdout if stdout else "(no output)")
    if truncated:
        parts.append(
            f"[output truncated: showing {len(stdout):,} of {total_chars:,} characters; print less, or keep it in a variable]"
        )
    if error:
        parts.append(f"Error: {error}")
    if state_note:
        parts.append(f"[{state_note}]")
    return "\n".join(parts)


def forced_final_turn() -> str:
    return (
        f"{FORCED_NOTE}. Give your best final answer now, from what you have found: call "
        "`FINAL(answer)` or `FINAL_VAR(\"name\")` (in a ```repl block or alone on a line), or write the answer "
        "as plain text."
    )


def subcall_system(depth: int, standing: Standing) -> str:
    return (
        f"You are a sub-call at depth {depth} of a Recursive Language Model run: answer the request "
        f"below from the text it contains, concisely. {standing.line()}"
    )


def direct_system() -> str:
    return "Answer the question from the documents below. Quote the passage you rely on."


def direct_user(question: str, names: list[str], texts: list[str]) -> str:
    docs = "\n\n".join(f"=== {name} ===\n{text}" for name, text in zip(names, texts, strict=True))
    return f"{QUESTION_HEADING}\n{question.strip()}\n\n## Documents\n{docs}"


COMPACT_REQUEST = "Your conversation history is nearly as long as your window allows"
COMPACTED_HEADING = "## Summary of your earlier turns"


def compaction_request() -> str:
    return (
        f"{COMPACT_REQUEST}, so your earlier turns will be replaced by a summary you write now. Do not run "
        "code. Write the summary in plain text: what you tried, what you found (numbers, names, partial "
        "answers), which REPL variables hold what, and what you planned to do next. The REPL itself, and "
        "every variable in it, stays as it is."
    )


COMPACTED_TURNS_RE = r"\(Turns 1-(\d+) were compacted into this summary"


def compacted_turn(first_turn: str, summary: str, turns: int, variables: str, standing: str) -> str:
    """The user turn that replaces a compacted history: the question and context metadata again,
    the summary the root wrote (after seeing its last output), and the REPL's variables."""
    return "\n".join([
        first_turn, "", COMPACTED_HEADING,
        f"(Turns 1-{turns} were compacted into this summary, written by you; the REPL is unchanged.)",
        summary.strip(), "", variables, "", f"Continue from here. {standing}",
    ])
