"""Rules that classify a finished run from its events: one outcome class, any number of patterns.

Every rule is a pure function of the run's event dicts (`{"seq", "type", "ts", "data"}`, as stored
in RunEvent and as exported) and `RunFacts` (the few run fields the events may lack, e.g. for a run
the web layer ended). No database access here, so each rule is tested on plain lists.

Outcome (exactly one, first matching rule wins, see `OUTCOME_RULES`):
    cancelled, worker_lost, provider_error, budget_exceeded_<cost|iterations|depth|subcalls|time>,
    succeeded_forced, succeeded, sandbox_errors, too_large_for_direct, engine_error, no_final_answer
Patterns (zero or more, see `PATTERN_RULES`):
    repeated_subcall_prompts, near_duplicate_subcall_prompts, verification_loop,
    answer_not_in_computed_values, subcall_fanout, many_cell_errors,
    document_never_read, all_subcalls_not_found, answer_not_in_trajectory
The last three are the explorer's answer-quality flags (static/explorer/analysis.js), same rules.

Thresholds are the named constants below; change them here and only here.
"""

import re
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.engine import events as ev
from worker.engine.vocabulary import AnswerSource, RunStatus, StopReason

# Repeated identical sub-call prompts: one normalised prompt sent this many times or more.
REPEATED_PROMPT_MIN_CALLS = 3
# Near-identical prompts: word-shingle Jaccard similarity at least this, in a group of this many calls.
SHINGLE_WORDS = 3
NEAR_DUPLICATE_JACCARD = 0.8
NEAR_DUPLICATE_MIN_CALLS = 3
# Only the start of a prompt is compared (the instruction and where the slice begins), and only this
# many distinct prompts per run, so classification stays fast on runs with thousands of sub-calls.
PROMPT_COMPARE_CHARS = 4000
MAX_PROMPTS_COMPARED = 300
# Verification loop: this many verify/confirm requests (sub-call prompts or root turns) about the same thing.
VERIFICATION_JACCARD = 0.5
VERIFICATION_MIN_CALLS = 3
VERIFICATION_WORDS = re.compile(
    r"\b(verify|verifies|verified|verifying|verification|confirm|confirms|confirmed|confirming|double[- ]check|"
    r"re-?check|check (?:that|whether|if|again)|make sure|is (?:this|that|it) (?:correct|right)|validate)\b",
    re.IGNORECASE,
)
# Final answer absent from the last computed values: look at the last cells and sub-call responses; the
# answer is "present" when at least this share of its words occur there (all of them for short answers).
LAST_CELLS_CONSIDERED = 3
LAST_SUBCALLS_CONSIDERED = 5
ANSWER_MIN_WORD_COVERAGE = 0.6
SHORT_ANSWER_WORDS = 3
# Sub-call fan-out far above what the documents need: at least this many sub-calls, and either the
# prompts re-send the documents this many times over, or there are more calls than this per 10K chars.
FANOUT_MIN_SUBCALLS = 10
FANOUT_MAX_READS = 3.0
FANOUT_MAX_CALLS_PER_10K_CHARS = 5.0
# Many failed cells: worth a look even when the run succeeded.
MANY_CELL_ERRORS = 3
# What a sub-call says when its passage holds nothing ("NOT FOUND", "None.", "The passage does not mention…"),
# after normalising; the explorer's isNotFound uses the same phrasings.
NOT_FOUND_MAX_CHARS = 120
NOT_FOUND = re.compile(
    r"(?:not found|none|n/a|no answer|unknown|nothing(?: found| relevant)?"
    r"|no (?:relevant |such )?(?:information|mention|answer|data|match(?:es)?)"
    r"(?: (?:found|in (?:this|the) (?:passage|text|context)))?"
    r"|(?:the )?(?:passage|text|context) does not (?:say|mention|contain)\b.*"
    r"|i (?:could not|couldn't|cannot|can't) find\b.*)"
)
# The engine's refusal of a direct run whose documents cannot fit the model's window (worker/engine/runner.py).
DIRECT_REFUSAL = "Direct mode refused"
# A failed run without an answer counts as sandbox_errors when its last top-level cell failed or at
# least this share of its cells did.
SANDBOX_ERRORS_MIN_SHARE = 0.5

BUDGET_STOPS = {
    StopReason.MAX_COST: "budget_exceeded_cost",
    StopReason.MAX_ITERATIONS: "budget_exceeded_iterations",
    StopReason.MAX_DEPTH: "budget_exceeded_depth",
    StopReason.MAX_SUBCALLS: "budget_exceeded_subcalls",
    StopReason.MAX_WALL_TIME: "budget_exceeded_time",
}
# Runs the workers never ran to the end: lost mid-run, never picked up, or never queued at all.
LOST_STOPS = (StopReason.WORKER_LOST, StopReason.ENQUEUE_FAILED)

OUTCOMES = (
    "succeeded", "succeeded_forced", "no_final_answer", *BUDGET_STOPS.values(), "provider_error",
    "sandbox_errors", "too_large_for_direct", "engine_error", "cancelled", "worker_lost",
)
SUCCESS_OUTCOMES = ("succeeded", "succeeded_forced")
PATTERNS = (
    "repeated_subcall_prompts", "near_duplicate_subcall_prompts", "verification_loop",
    "answer_not_in_computed_values", "subcall_fanout", "many_cell_errors",
    "document_never_read", "all_subcalls_not_found", "answer_not_in_trajectory",
)

Events = list[dict]


@dataclass(frozen=True)
class RunFacts:
    """The run's own fields, for what the event stream may not say (a run ended by the web layer)."""

    status: str = ""
    stop_reason: str = ""
    failure_reason: str = ""
    forced_final: bool = False
    final_answer: str = ""
    answer_source: str = ""


@dataclass
class Classification:
    outcome: str
    patterns: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)  # evidence per rule name, for reviewers


# helpers ----------------------------------------------------------------------------------------

def of_type(events: Events, type_: str) -> list[dict]:
    return [e["data"] for e in events if e.get("type") == type_ and isinstance(e.get("data"), dict)]


def text(data: dict, key: str) -> str:
    """A text field of an event; "" when missing or null. Events are data (hand-edited imports, older
    engines), so a field of the wrong type is read, not trusted."""
    value = data.get(key)
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def number(data: dict, key: str) -> float:
    value = data.get(key)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


def last_of_type(events: Events, type_: str) -> dict | None:
    found = of_type(events, type_)
    return found[-1] if found else None


def finish(events: Events, facts: RunFacts) -> dict:
    """status, stop_reason, forced_final, failure_reason: the run.finished event, else the run's fields."""
    data = last_of_type(events, ev.RUN_FINISHED) or {}
    return {
        "status": text(data, "status") or facts.status,
        "stop_reason": text(data, "stop_reason") or facts.stop_reason or "",
        "forced_final": bool(data.get("forced_final", facts.forced_final)),
        "failure_reason": text(data, "failure_reason") or facts.failure_reason or "",
    }


def normalise(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed: what two prompts 'say'."""
    return " ".join(re.findall(r"\w+", (text or "").lower()))


def words(text: str) -> list[str]:
    return normalise(text).split()


def shingles(text: str, size: int = SHINGLE_WORDS) -> set[int]:
    tokens = words(text[:PROMPT_COMPARE_CHARS])
    if len(tokens) < size:
        return {zlib.crc32(" ".join(tokens).encode())} if tokens else set()
    return {zlib.crc32(" ".join(tokens[i:i + size]).encode()) for i in range(len(tokens) - size + 1)}


def jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def similar_groups(texts: list[str], threshold: float) -> list[list[int]]:
    """Indices of `texts` grouped by single-link similarity (Jaccard of word shingles >= threshold)."""
    sets = [shingles(t) for t in texts]
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            if root(i) != root(j) and jaccard(sets[i], sets[j]) >= threshold:
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(texts)):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=len, reverse=True)


def subcall_prompts(events: Events) -> list[str]:
    return [text(d, "prompt") for d in of_type(events, ev.SUBCALL_STARTED)]


def error_kind(error: str, killed: bool = False) -> str:
    """'NameError' from "NameError: name 'x' is not defined" or a traceback; 'killed' for a killed cell."""
    if killed:
        return "killed"
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    for line in reversed(lines):
        match = re.match(r"([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Timeout|Warning))\b", line)
        if match:
            return match.group(1).rsplit(".", 1)[-1]
    if re.search(r"time(?:d)? ?out|timeout", error or "", re.IGNORECASE):
        return "timeout"
    return "other"


def cell_errors(events: Events) -> dict:
    """How many cells ran and failed, and the failures by kind: stored with every review."""
    finished = of_type(events, ev.CELL_FINISHED)
    failed = [d for d in finished if text(d, "error") or d.get("killed") is True]
    kinds = Counter(error_kind(text(d, "error"), d.get("killed") is True) for d in failed)
    top = [d for d in finished if number(d, "depth") == 0]
    return {
        "cells": len(finished),
        "failed": len(failed),
        "kinds": dict(kinds.most_common()),
        "last_top_cell_failed": bool(top and (text(top[-1], "error") or top[-1].get("killed") is True)),
        "examples": [(text(d, "error") or "killed")[:300] for d in failed[:3]],
    }


def clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


# outcome rules: each returns its class name, or None when it does not apply ---------------------

def outcome_cancelled(events: Events, facts: RunFacts) -> str | None:
    """A user (or the admin) cancelled the run."""
    end = finish(events, facts)
    return "cancelled" if end["status"] == RunStatus.CANCELLED or end["stop_reason"] == StopReason.CANCELLED else None


def outcome_worker_lost(events: Events, facts: RunFacts) -> str | None:
    """The workers lost the run: its worker stopped beating mid-run (killed, crashed, machine lost) or
    no worker ever picked it up, and a sweep ended it; or its message could not even be queued."""
    return "worker_lost" if finish(events, facts)["stop_reason"] in LOST_STOPS else None


def outcome_provider_error(events: Events, facts: RunFacts) -> str | None:
    """The root model's provider failed for good (after retries), so the run could not go on."""
    end = finish(events, facts)
    failed = end["status"] != RunStatus.SUCCEEDED
    return "provider_error" if failed and end["stop_reason"] == StopReason.PROVIDER_ERROR else None


def outcome_budget_exceeded(events: Events, facts: RunFacts) -> str | None:
    """The run failed because a budget stopped it: budget_exceeded_<cost|iterations|depth|subcalls|time>.

    A run that still answered at the limit is `succeeded_forced`, not this.
    """
    end = finish(events, facts)
    if end["status"] == RunStatus.SUCCEEDED:
        return None
    return BUDGET_STOPS.get(end["stop_reason"])


def outcome_succeeded_forced(events: Events, facts: RunFacts) -> str | None:
    """Succeeded, but only with the answer the root was forced to give at a limit (usually iterations)."""
    end = finish(events, facts)
    return "succeeded_forced" if end["status"] == RunStatus.SUCCEEDED and end["forced_final"] else None


def outcome_succeeded(events: Events, facts: RunFacts) -> str | None:
    """Succeeded with an answer the root chose to give."""
    return "succeeded" if finish(events, facts)["status"] == RunStatus.SUCCEEDED else None


def outcome_sandbox_errors(events: Events, facts: RunFacts) -> str | None:
    """Failed without an answer while its code kept failing: the last top-level cell failed, or at least
    SANDBOX_ERRORS_MIN_SHARE of all cells did. The counts and error kinds are in details["cell_errors"]."""
    errors = cell_errors(events)
    if not errors["failed"]:
        return None
    if errors["last_top_cell_failed"] or errors["failed"] >= SANDBOX_ERRORS_MIN_SHARE * errors["cells"]:
        return "sandbox_errors"
    return None


def outcome_too_large_for_direct(events: Events, facts: RunFacts) -> str | None:
    """A direct-mode run refused before any call: its documents cannot fit the model's window. Not an
    engine fault; the ask form warns about it, and mode rlm is the answer."""
    end = finish(events, facts)
    mode = text(last_of_type(events, "run.started") or {}, "mode")
    refused = end["failure_reason"].startswith(DIRECT_REFUSAL)
    return "too_large_for_direct" if refused and mode in ("direct", "") and not end["stop_reason"] else None


def outcome_engine_error(events: Events, facts: RunFacts) -> str | None:
    """Failed for a reason that is no budget and no missing answer: a refused direct run, an unknown
    mode, no documents, an internal crash. The failure reason says which."""
    end = finish(events, facts)
    return "engine_error" if not end["stop_reason"] and end["failure_reason"] else None


def outcome_no_final_answer(events: Events, facts: RunFacts) -> str | None:
    """Everything else that failed: the root never gave a final answer (FINAL / FINAL_VAR / plain)."""
    return "no_final_answer"


OUTCOME_RULES: list[Callable[[Events, RunFacts], str | None]] = [
    outcome_cancelled,
    outcome_worker_lost,
    outcome_provider_error,
    outcome_budget_exceeded,
    outcome_succeeded_forced,
    outcome_succeeded,
    outcome_sandbox_errors,
    outcome_too_large_for_direct,
    outcome_engine_error,
    outcome_no_final_answer,
]


# pattern rules: each returns evidence (a dict) when the pattern is present, else None --------------

def pattern_repeated_subcall_prompts(events: Events, facts: RunFacts) -> dict | None:
    """The same sub-call prompt (after normalising case, punctuation and spaces) sent
    REPEATED_PROMPT_MIN_CALLS times or more: paying again for an answer already in hand."""
    counts = Counter(normalise(p) for p in subcall_prompts(events))
    repeated = {p: n for p, n in counts.items() if n >= REPEATED_PROMPT_MIN_CALLS}
    if not repeated:
        return None
    prompt, times = max(repeated.items(), key=lambda item: item[1])
    return {"distinct_repeated": len(repeated), "max_repeats": times, "calls_wasted": sum(repeated.values()) -
            len(repeated), "example": clip(prompt)}


def pattern_near_duplicate_subcall_prompts(events: Events, facts: RunFacts) -> dict | None:
    """Sub-call prompts that differ only a little (word-shingle Jaccard >= NEAR_DUPLICATE_JACCARD), in a
    group of at least NEAR_DUPLICATE_MIN_CALLS calls with at least two different prompts: rephrasing
    the same request instead of using its answer."""
    counts = Counter(normalise(p) for p in subcall_prompts(events))
    distinct = [p for p, _ in counts.most_common(MAX_PROMPTS_COMPARED)]
    for group in similar_groups(distinct, NEAR_DUPLICATE_JACCARD):
        calls = sum(counts[distinct[i]] for i in group)
        if len(group) >= 2 and calls >= NEAR_DUPLICATE_MIN_CALLS:
            return {"calls": calls, "distinct_prompts": len(group),
                    "examples": [clip(distinct[i]) for i in group[:3]]}
    return None


def pattern_verification_loop(events: Events, facts: RunFacts) -> dict | None:
    """At least VERIFICATION_MIN_CALLS requests to verify/confirm/double-check (sub-call prompts or root
    turns) that are about the same thing (shingle Jaccard >= VERIFICATION_JACCARD): the paper's
    re-derive-the-answer-again loop."""
    texts = [p for p in subcall_prompts(events) if VERIFICATION_WORDS.search(p[:PROMPT_COMPARE_CHARS])]
    texts += [text(t, "content") for t in of_type(events, ev.ROOT_TURN)
              if VERIFICATION_WORDS.search(text(t, "content")[:PROMPT_COMPARE_CHARS])]
    if len(texts) < VERIFICATION_MIN_CALLS:
        return None
    for group in similar_groups(texts[:MAX_PROMPTS_COMPARED], VERIFICATION_JACCARD):
        if len(group) >= VERIFICATION_MIN_CALLS:
            return {"requests": len(group), "examples": [clip(normalise(texts[i])) for i in group[:3]]}
    return None


def final_came_from_code(events: Events) -> bool:
    """Whether the last top-level cell set the answer with FINAL(<expression>) or FINAL_VAR: then the
    answer is a computed value by construction. FINAL("a literal") in code is still judged."""
    cells = [d for d in of_type(events, ev.CELL_STARTED) if number(d, "depth") == 0]
    if not cells:
        return False
    code = text(cells[-1], "code")
    if "FINAL_VAR(" in code:
        return True
    return any(not arg.lstrip().startswith(("'", '"')) for arg in re.findall(r"\bFINAL\(([^)]*)", code))


def pattern_answer_not_in_computed_values(events: Events, facts: RunFacts) -> dict | None:
    """The final answer's words are mostly absent (coverage < ANSWER_MIN_WORD_COVERAGE; any missing
    word for answers of SHORT_ANSWER_WORDS words or fewer) from what the run last computed: the stdout
    and state notes of the last LAST_CELLS_CONSIDERED cells and the last LAST_SUBCALLS_CONSIDERED
    sub-call responses. Catches answering something other than what the trajectory found.

    Not judged for FINAL_VAR answers or FINAL(expression) in code (computed by construction), nor for
    runs that computed nothing (direct mode)."""
    answer_event = last_of_type(events, ev.FINAL_ANSWER)
    answer = text(answer_event or {}, "answer") or facts.final_answer
    source = text(answer_event or {}, "source") or facts.answer_source
    if not answer or source == AnswerSource.FINAL_VAR or final_came_from_code(events):
        return None
    cells = of_type(events, ev.CELL_FINISHED)[-LAST_CELLS_CONSIDERED:]
    responses = [text(d, "response") for d in of_type(events, ev.SUBCALL_FINISHED)][-LAST_SUBCALLS_CONSIDERED:]
    evidence = [text(d, "stdout") for d in cells] + [text(d, "state_note") for d in cells] + responses
    if not any(text.strip() for text in evidence):
        return None
    coverage = answer_word_coverage(answer, evidence)
    if coverage is None:
        return None
    return {"answer": clip(answer), "word_coverage": round(coverage, 3), "source": source}


def pattern_subcall_fanout(events: Events, facts: RunFacts) -> dict | None:
    """Far more sub-calls than the documents need: at least FANOUT_MIN_SUBCALLS calls, and either the
    prompts add up to more than FANOUT_MAX_READS times the documents' characters, or there are more than
    FANOUT_MAX_CALLS_PER_10K_CHARS calls per 10,000 document characters (one call per line, say)."""
    started = of_type(events, ev.SUBCALL_STARTED)
    if len(started) < FANOUT_MIN_SUBCALLS:
        return None
    run_started = last_of_type(events, ev.RUN_STARTED) or {}
    documents = run_started.get("documents")
    doc_chars = sum(number(d, "chars") for d in documents if isinstance(d, dict)) if isinstance(documents, list) else 0
    prompt_chars = sum(number(d, "prompt_chars") or len(text(d, "prompt")) for d in started)
    reads = prompt_chars / max(doc_chars, 1)
    per_10k = len(started) / max(doc_chars, 1) * 10_000
    if reads <= FANOUT_MAX_READS and per_10k <= FANOUT_MAX_CALLS_PER_10K_CHARS:
        return None
    return {"subcalls": len(started), "document_chars": doc_chars, "prompt_chars": prompt_chars,
            "reads_of_documents": round(reads, 2), "calls_per_10k_chars": round(per_10k, 2)}


def pattern_many_cell_errors(events: Events, facts: RunFacts) -> dict | None:
    """MANY_CELL_ERRORS or more cells failed, whatever the outcome: weak code, even in runs that answered."""
    errors = cell_errors(events)
    if errors["failed"] < MANY_CELL_ERRORS:
        return None
    return {"failed": errors["failed"], "cells": errors["cells"], "kinds": errors["kinds"]}


def succeeded_run(events: Events, facts: RunFacts) -> bool:
    return finish(events, facts)["status"] == "succeeded"


def is_not_found(response: str) -> bool:
    """A sub-call response that means "nothing here": short and one of the NOT_FOUND phrasings."""
    said = re.sub(r"[.!*_`\"'\u201c\u201d]+", "", " ".join((response or "").lower().split())).strip()
    return not said or (len(said) <= NOT_FOUND_MAX_CHARS and NOT_FOUND.fullmatch(said) is not None)


def pattern_document_never_read(events: Events, facts: RunFacts) -> dict | None:
    """A succeeded run made sub-calls, yet no sub-call's ranges (exact or ambiguous) touch some document:
    the answer cannot rest on what the sub-calls read of it. Not judged when no sub-call carries any
    range (text the engine could not place, e.g. a short slice): then where they read is unknown."""
    started = of_type(events, "subcall.started")
    if not started or not succeeded_run(events, facts):
        return None
    documents = (last_of_type(events, "run.started") or {}).get("documents")
    if not isinstance(documents, list) or not documents:
        return None
    read = {r.get("doc") for d in started for r in (d.get("ranges") or []) if isinstance(r, dict)}
    if not read:  # no sub-call carries a range: where they read is unknown, not "nowhere"
        return None
    unread = [text(doc, "name") if isinstance(doc, dict) else str(i) for i, doc in enumerate(documents) if i not in read]
    return {"documents": unread, "of": len(documents)} if unread else None


def pattern_all_subcalls_not_found(events: Events, facts: RunFacts) -> dict | None:
    """A succeeded run whose every finished sub-call answered NOT FOUND (or the like): nothing the
    sub-calls read supports the answer."""
    finished = [d for d in of_type(events, "subcall.finished") if not text(d, "error")]
    if not finished or not succeeded_run(events, facts):
        return None
    if not all(is_not_found(text(d, "response")) for d in finished):
        return None
    return {"subcalls": len(finished)}


def pattern_answer_not_in_trajectory(events: Events, facts: RunFacts) -> dict | None:
    """The final answer's words are mostly absent (as in answer_not_in_computed_values) from everything
    the run computed: every cell's output and state note and every sub-call response. Same exemptions."""
    answer_event = last_of_type(events, "final.answer")
    answer = text(answer_event or {}, "answer") or facts.final_answer
    source = text(answer_event or {}, "source") or facts.answer_source
    if not answer or source == "FINAL_VAR" or final_came_from_code(events):
        return None
    cells = of_type(events, "cell.finished")
    evidence = [text(d, "stdout") for d in cells] + [text(d, "state_note") for d in cells]
    evidence += [text(d, "response") for d in of_type(events, "subcall.finished")]
    if not any(value.strip() for value in evidence):
        return None
    coverage = answer_word_coverage(answer, evidence)
    if coverage is None:
        return None
    return {"answer": clip(answer), "word_coverage": round(coverage, 3)}


def answer_word_coverage(answer: str, evidence: list[str]) -> float | None:
    """None when the answer is in the evidence (verbatim after normalising, or with enough of its words:
    all of them for short answers); else the share of its words found."""
    answer_words = words(answer)
    if not answer_words:
        return None
    joined = normalise(" ".join(evidence))
    if normalise(answer) in joined:
        return None
    seen = set(joined.split())
    coverage = sum(w in seen for w in answer_words) / len(answer_words)
    needed = 1.0 if len(answer_words) <= SHORT_ANSWER_WORDS else ANSWER_MIN_WORD_COVERAGE
    return None if coverage >= needed else coverage


PATTERN_RULES: dict[str, Callable[[Events, RunFacts], dict | None]] = {
    "repeated_subcall_prompts": pattern_repeated_subcall_prompts,
    "near_duplicate_subcall_prompts": pattern_near_duplicate_subcall_prompts,
    "verification_loop": pattern_verification_loop,
    "answer_not_in_computed_values": pattern_answer_not_in_computed_values,
    "subcall_fanout": pattern_subcall_fanout,
    "many_cell_errors": pattern_many_cell_errors,
    "document_never_read": pattern_document_never_read,
    "all_subcalls_not_found": pattern_all_subcalls_not_found,
    "answer_not_in_trajectory": pattern_answer_not_in_trajectory,
}


def classify_outcome(events: Events, facts: RunFacts) -> str:
    for rule in OUTCOME_RULES:
        outcome = rule(events, facts)
        if outcome is not None:
            return outcome
    raise AssertionError("outcome_no_final_answer always applies")


def classify(events: Events, facts: RunFacts | None = None) -> Classification:
    """The outcome class, the patterns present and the evidence for each, for a finished run."""
    facts = facts or RunFacts()
    details: dict = {"cell_errors": cell_errors(events)}
    end = finish(events, facts)
    if end["stop_reason"]:
        details["stop_reason"] = end["stop_reason"]
    if end["failure_reason"]:
        details["failure_reason"] = clip(end["failure_reason"], 500)
    patterns = []
    for name, rule in PATTERN_RULES.items():
        evidence = rule(events, facts)
        if evidence is not None:
            patterns.append(name)
            details[name] = evidence
    return Classification(outcome=classify_outcome(events, facts), patterns=patterns, details=details)
