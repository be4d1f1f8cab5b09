"""Root-history compaction: when a root's conversation nears its model's window, the root summarises
its earlier turns and the history is replaced by that summary.

Only the conversation is compacted, never the REPL: variables keep every chunk, index and partial
result in full, and the compacted turn lists them. The summarising call is an ordinary root-model
call (budgets checked, cost recorded, a `root.compacted` event). A run whose root script replays
fixed replies is never compacted (there is no model to summarise).

`RLMWEB_COMPACTION_THRESHOLD`: the fraction of the window (default 0.85) at which a root's history
is compacted; "off" (or 0) switches compaction off.
"""

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from worker.engine import events as ev
from worker.engine import prompts
from worker.engine.llm import Completion, LLMError, count_tokens

if TYPE_CHECKING:
    from worker.engine.runner import RLM, Ticket  # (runner imports this module)

logger = logging.getLogger(__name__)

THRESHOLD_ENV = "RLMWEB_COMPACTION_THRESHOLD"
DEFAULT_THRESHOLD = 0.85
# The summarising request must itself fit: long messages are cut (middle first) to this share.
REQUEST_SHARE = 0.95
MIN_CUT_CHARS = 500
# A summary longer than this share of the window (at ~4 characters per token) is cut: a compacted
# history must leave room for the turns after it, or every turn would compact again.
SUMMARY_SHARE = 0.25


def threshold() -> float | None:
    """The configured fraction of the window, or None when compaction is off."""
    raw = os.environ.get(THRESHOLD_ENV, "").strip().lower()
    if not raw:
        return DEFAULT_THRESHOLD
    if raw == "off":
        return None
    try:
        value = float(raw)
    except ValueError:
        logger.warning("%s=%r is not a number; using %g", THRESHOLD_ENV, raw, DEFAULT_THRESHOLD)
        return DEFAULT_THRESHOLD
    if value <= 0:
        return None
    return min(value, 1.0)


def history_tokens(model: str, messages: list[dict[str, Any]], counts: dict[str, int] | None = None) -> int:
    """A cautious estimate: litellm's tokenizer guess, or ~4 characters per token where that is more
    (the provider's own tokenizer may count more than the guess; compacting a little early costs one
    call, being refused for length ends the run). ~4 tokens of framing per message.

    `counts`: a memo of each message text's count (a root's history only grows and its texts never
    change, so each is tokenized once, not once per turn)."""
    total = 0
    for m in messages:
        text = m["content"]
        tokens = counts.get(text) if counts is not None else None
        if tokens is None:
            tokens = max(count_tokens(model, text), len(text) // 4)
            if counts is not None:
                counts[text] = tokens
        total += tokens + 4
    return total


def history_tokens_bound(messages: list[dict[str, Any]]) -> int:
    """An upper bound on `history_tokens` with no tokenizer run: a token is at least one UTF-8 byte
    (byte-level BPE; litellm's fallback counts ~4 characters per token), plus framing and a margin for
    the special tokens some tokenizers add. Microseconds for a long history, where tokenizing it took
    milliseconds a turn and loading the tokenizer ~1 s on a process's first turn."""
    return sum(len(m["content"].encode("utf-8", "surrogatepass")) + 8 for m in messages)


def maybe_compact(rlm: "RLM", messages: list[dict[str, Any]], iteration: int) -> None:
    """Compact `messages` (in place) before a root turn when they near the root model's window."""
    state = rlm.state
    model = state.spec.root_model
    fraction = threshold()
    window = state.client.context_window(model)
    if rlm.script is not None or fraction is None or window is None or len(messages) < 4:
        return
    if history_tokens_bound(messages) < fraction * window:  # far from the window: no tokenizer run
        return
    counts = rlm.token_counts
    before = history_tokens(model, messages, counts)
    if before < fraction * window:
        return
    forced = prompts.FORCED_NOTE in messages[-1]["content"]  # the last turn after a soft stop
    summarised = _summarise(rlm, messages, model, window, forced, counts)
    if summarised is None:
        return
    reply, ticket = summarised
    from worker.engine.runner import _call_cost  # (runner imports this module)

    first = messages[1]["content"].split("\n\n" + prompts.COMPACTED_HEADING, 1)[0]
    turns = iteration - 1
    summary = reply.content
    if len(summary) > (limit := int(SUMMARY_SHARE * window * 4)):
        summary = summary[:limit] + f"\n[summary cut at {limit:,} of {len(reply.content):,} characters]"
    assert rlm.sandbox is not None  # (set by RLM.run)
    content = prompts.compacted_turn(first, summary, turns, rlm.sandbox.variable_summary(),
                                     state.standing(rlm.depth, iteration).line())
    if forced:  # the forced last turn keeps its instruction
        content += "\n\n" + prompts.forced_final_turn()
    messages[:] = [messages[0], {"role": "user", "content": content}]
    counts.clear()  # the texts counted are gone from the history
    after = history_tokens(model, messages, counts)
    compacted = dict(node_id=rlm.node_id, depth=rlm.depth, iteration=iteration,
                     tokens_before=before, tokens_after=after, window=window, turns_compacted=turns,
                     summary=reply.content, model=model,
                     prompt_tokens=reply.prompt_tokens + reply.incomplete_prompt_tokens,
                     completion_tokens=reply.completion_tokens, cost_usd=_call_cost(state, ticket, reply),
                     latency_s=round(reply.latency_s, 4), attempts=reply.attempts)
    state.settle(ticket, rlm._lineage(), reply=reply, record=(ev.ROOT_COMPACTED, compacted))


def _summarise(rlm: "RLM", messages: list[dict[str, Any]], model: str, window: int, forced: bool,
               counts: dict[str, int] | None = None) -> tuple[Completion, "Ticket"] | None:
    """Ask the root for the summary: admitted and reserved under the budgets like any root call.
    None when the call was refused or failed but the run goes on (the next turn is then tried with
    the full history); RunStopped propagates."""
    from worker.engine.runner import CallRefused, RunStopped

    state = rlm.state
    request = [dict(m) for m in messages]
    request[-1]["content"] = f"{request[-1]['content']}\n\n{prompts.compaction_request()}"
    _fit(request, model, int(REQUEST_SHARE * window), counts)
    try:
        ticket = state.admit_call("root" if rlm.depth == 0 else "child_root", rlm.depth, model, request,
                                  last_turn=forced)
    except CallRefused as exc:
        logger.warning("Compacting the root's history was refused: %s", exc)
        return None
    started = time.monotonic()
    try:
        reply = state.client.complete(model, request, should_stop=state.halted, time_left=state.time_left,
                                      before_retry=state.retry_hook(ticket))
    except LLMError as exc:
        state.settle(ticket, rlm._lineage(), error=exc)
        if state.halted():
            raise RunStopped(state.stop_message) from exc
        logger.warning("Compacting the root's history failed after %.1f s: %s", time.monotonic() - started, exc)
        return None
    return reply, ticket


def _fit(request: list[dict[str, Any]], model: str, budget: int, counts: dict[str, int] | None = None) -> None:
    """Cut the longest messages between the first turn and the last until the request fits `budget`."""
    middle = range(2, len(request) - 1)
    while history_tokens(model, request, counts) > budget:
        longest = max(middle, key=lambda i: len(request[i]["content"]), default=None)
        if longest is None:
            return
        text = request[longest]["content"]
        if len(text) <= MIN_CUT_CHARS:
            return
        keep = len(text) // 4
        request[longest]["content"] = (f"{text[:keep]}\n[... {len(text) - 2 * keep:,} characters cut so that "
                                       f"the summary request fits ...]\n{text[-keep:]}")
