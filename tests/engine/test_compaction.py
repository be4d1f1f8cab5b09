"""Root-history compaction: a long run over a model with a small window finishes because its earlier
turns are replaced by a summary the root writes; without compaction the provider refuses it."""

from collections import Counter

from worker.engine import DocumentInput, Limits, ModelOptions, RunSpec, compaction, prompts, run
from worker.engine.events import ListSink
from worker.simulated import SimulatedProvider

from .conftest import KEY_ENV, ROOT, SUB, filler, repl

WINDOW = 4000  # tokens: the system prompt and first turn take ~1,700; each turn adds ~800
CHUNK = 3000
TURNS = 6


def reading_responder(summaries: list[str]):
    """A root that reads the document one 3,000-character chunk per turn, keeping what it saw in the
    REPL, then answers from the REPL; asked to summarise, it says where it is."""
    state = {"turn": 0}

    def respond(request) -> str:
        if request.model != "gpt-4o":
            return "sub"
        if prompts.COMPACT_REQUEST in request.prompt:
            summary = f"SUMMARY: read {state['turn']} chunks so far into `seen`; keep going."
            summaries.append(summary)
            return summary
        if prompts.FORCED_NOTE in request.prompt:
            return repl("FINAL('forced after ' + str(len(seen)) + ' chunks')")
        turn = state["turn"]
        state["turn"] += 1
        if turn == 0:
            return repl("seen = []\nprint(len(context))")
        if turn <= TURNS:
            return repl(f"chunk = context[{(turn - 1) * CHUNK}:{turn * CHUNK}]\nseen.append(len(chunk))\nprint(chunk)")
        return repl("FINAL('read ' + str(len(seen)) + ' chunks, ' + str(sum(seen)) + ' characters')")

    return respond


def spec_for(sp: SimulatedProvider, doc: DocumentInput, max_iterations: int = 12) -> RunSpec:
    options = {m: ModelOptions(api_base=sp.base_url, api_key_env=KEY_ENV, timeout_s=10, max_retries=0,
                               context_window=WINDOW) for m in (ROOT, SUB)}
    return RunSpec(question="How much did you read?", documents=[doc], root_model=ROOT, sub_model=SUB,
                   limits=Limits(max_iterations=max_iterations, output_limit_chars=4000), model_options=options)


def long_run(write_doc, provider_key, monkeypatch, threshold: str, max_iterations: int = 12):
    monkeypatch.setenv("RLMWEB_COMPACTION_THRESHOLD", threshold)
    doc = write_doc("long.txt", filler(CHUNK * TURNS + 500))
    summaries: list[str] = []
    sink = ListSink()
    with SimulatedProvider(responder=reading_responder(summaries), context_window=WINDOW) as sp:
        result = run(spec_for(sp, doc, max_iterations), sink)
        requests = list(sp.requests)
    return result, sink, summaries, requests


def test_without_compaction_the_long_run_is_refused_for_length(write_doc, provider_key, monkeypatch):
    result, sink, summaries, _ = long_run(write_doc, provider_key, monkeypatch, "off")
    assert result.status == "failed" and result.stop_reason == "provider_error"
    assert "context" in result.failure_reason.lower()
    assert not sink.of_type("root.compacted") and not summaries


def test_with_compaction_the_long_run_finishes_with_the_repl_intact(write_doc, provider_key, monkeypatch):
    result, sink, summaries, requests = long_run(write_doc, provider_key, monkeypatch, "0.85")
    assert result.status == "succeeded", result.failure_reason
    # Every chunk the REPL kept survived the compactions: the answer counts all of them.
    assert result.final_answer == f"read {TURNS} chunks, {CHUNK * TURNS} characters"
    compacted = sink.of_type("root.compacted")
    assert compacted and len(compacted) == len(summaries)
    first = compacted[0].data
    assert first["tokens_after"] < first["tokens_before"] and first["tokens_before"] >= 0.85 * WINDOW
    assert first["window"] == WINDOW and first["summary"] == summaries[0] and first["depth"] == 0
    assert all(r.status == 200 for r in requests)  # nothing was ever refused for length
    # The next root turn sends the summary and the REPL's variables instead of the earlier turns.
    after = next(e for e in sink.events if e.type == "root.turn" and e.seq > compacted[0].seq)
    sent = after.data["input"][-1]["content"]
    assert summaries[0] in sent and "seen: list" in sent and prompts.COMPACTED_HEADING in sent


def test_the_summarising_call_is_in_the_run_cost(write_doc, provider_key, monkeypatch):
    result, sink, _, _ = long_run(write_doc, provider_key, monkeypatch, "0.85")
    turns = sink.of_type("root.turn")
    compacted = sink.of_type("root.compacted")
    assert compacted[0].data["cost_usd"] > 0
    calls = [e.data for e in turns + compacted]
    assert result.cost_usd == round(sum(d["cost_usd"] for d in calls), 10)
    assert result.prompt_tokens == sum(d["prompt_tokens"] for d in calls)


def test_offline_model_summarises_and_still_finishes(write_doc, monkeypatch, sink):
    monkeypatch.setenv("RLMWEB_COMPACTION_THRESHOLD", "0.5")
    fact = "The launch code is 7341."
    text = filler(6000, seed=3) + " " + fact + " " + filler(6000, seed=4)
    doc = write_doc("doc.txt", text)
    spec = RunSpec(question="What is the launch code?", documents=[doc],
                   model_options={"offline/heuristic": ModelOptions(context_window=3000)},
                   limits=Limits(output_limit_chars=4000))
    result = run(spec, sink)
    assert sink.of_type("root.compacted"), "the small window should have forced a compaction"
    assert result.status == "succeeded" and "7341" in result.final_answer


def test_the_forced_last_turn_is_compacted_and_keeps_its_instruction(write_doc, provider_key, monkeypatch):
    result, sink, summaries, _ = long_run(write_doc, provider_key, monkeypatch, "0.55", max_iterations=2)
    assert result.status == "succeeded" and result.forced_final and result.stop_reason == "max_iterations"
    assert result.final_answer == "forced after 1 chunks"
    assert [e.data["iteration"] for e in sink.of_type("root.compacted")] == [3]  # at the forced turn only
    forced_turn = sink.of_type("root.turn")[-1].data
    assert forced_turn["forced"] and prompts.FORCED_NOTE in forced_turn["input"][-1]["content"]


def test_an_overlong_summary_is_cut_so_the_history_stays_small(write_doc, provider_key, monkeypatch):
    monkeypatch.setenv("RLMWEB_COMPACTION_THRESHOLD", "0.85")
    doc = write_doc("long.txt", filler(CHUNK * TURNS + 500))
    base = reading_responder([])

    def rambling(request):
        if prompts.COMPACT_REQUEST in request.prompt:
            return "SUMMARY " + "blah " * 5000  # 25,000 characters, far more than a quarter of the window
        return base(request)

    sink = ListSink()
    with SimulatedProvider(responder=rambling, context_window=WINDOW) as sp:
        result = run(spec_for(sp, doc), sink)
    assert result.status == "succeeded", result.failure_reason
    compacted = sink.of_type("root.compacted")
    assert compacted and all(e.data["tokens_after"] < 0.85 * WINDOW for e in compacted)
    assert len(compacted[0].data["summary"]) > 25_000  # the event keeps what the root wrote


def test_the_byte_bound_is_never_below_the_token_estimate():
    """The check that skips the tokenizer must not skip a history that needs compacting."""
    texts = ["", "a", "\U0001F600" * 50, "日本語のテキスト" * 20, "x y z " * 500, "\n\n\n", "\ud800 lone surrogate",
             "".join(chr(c) for c in range(32, 3000))]
    messages = [{"role": "user", "content": t} for t in texts]
    for model in (ROOT, "anthropic/claude-3-5-sonnet-20240620", "gemini/gemini-1.5-pro"):
        assert compaction.history_tokens_bound(messages) >= compaction.history_tokens(model, messages)
        for m in messages:
            assert compaction.history_tokens_bound([m]) >= compaction.history_tokens(model, [m])


def test_a_short_history_is_not_tokenized_and_a_long_one_once_per_text(write_doc, provider_key, monkeypatch):
    """Every turn checks the history against the window: far below it, with no tokenizer run; near it,
    each message's text tokenized once over the run, not once per turn."""
    counted: list[str] = []
    real = compaction.count_tokens

    def counting(model: str, text: str) -> int:
        counted.append(text)
        return real(model, text)

    monkeypatch.setattr(compaction, "count_tokens", counting)
    # A window so large that the history stays far below it: no text is ever tokenized.
    monkeypatch.setenv("RLMWEB_COMPACTION_THRESHOLD", "0.85")
    doc = write_doc("long.txt", filler(CHUNK * TURNS + 500))
    with SimulatedProvider(responder=reading_responder([]), context_window=1_000_000) as sp:
        spec = spec_for(sp, doc)
        spec.model_options = {m: ModelOptions(api_base=sp.base_url, api_key_env=KEY_ENV, timeout_s=10, max_retries=0,
                                              context_window=1_000_000) for m in (ROOT, SUB)}
        assert run(spec, ListSink()).status == "succeeded"
    assert counted == []
    # A threshold so low that every turn counts its history (and compacts it): each text once.
    monkeypatch.setenv("RLMWEB_COMPACTION_THRESHOLD", "0.5")
    result, sink, _, _ = long_run(write_doc, provider_key, monkeypatch, "0.5")
    compactions = len(sink.of_type("root.compacted"))
    assert result.status == "succeeded" and compactions
    # The system prompt is in every turn's history: counted again only after each compaction's new
    # history, never once per turn.
    assert 1 < Counter(counted).most_common(1)[0][1] <= 1 + compactions < result.iterations
