"""Prompt caching for the root: a byte-stable growing prefix, cached tokens recorded and priced at
the model's cache-read price, the saving shown per call and in the run's totals; Anthropic-style
cache breakpoints only for the providers that need them."""

import json

import pytest

from worker.engine import run
from worker.engine.llm import cache_usage, needs_cache_control, prices, with_cache_breakpoints
from worker.simulated import CACHE_BLOCK_TOKENS, SimulatedProvider, cached_prefix_tokens

from .conftest import ROOT, repl, sim_spec

litellm = pytest.importorskip("litellm")


@pytest.fixture
def caching_provider(provider_key):
    with SimulatedProvider(root_model="gpt-4o", prompt_caching=True) as sp:
        yield sp


def plain_price(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    p, c = litellm.cost_per_token(model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    return p + c


def caching_run(provider, write_doc, sink, turns: int = 6):
    doc = write_doc("a.txt", "The code is 42. " * 400)
    provider.root_replies = [repl(f"x{t} = context[{t * 10}:{t * 10 + 300}]\nprint(x{t})", f"Turn {t}.")
                             for t in range(turns - 1)] + ["FINAL(42)"]
    return run(sim_spec(provider, [doc], max_iterations=turns + 2), sink)


def root_requests(provider):
    return [r for r in provider.requests if r.model == "gpt-4o"]


def test_each_root_request_starts_with_the_previous_one_byte_for_byte(caching_provider, write_doc, sink):
    result = caching_run(caching_provider, write_doc, sink)
    assert result.status == "succeeded"
    sent = root_requests(caching_provider)
    assert len(sent) == 6
    for before, after in zip(sent, sent[1:], strict=False):
        assert len(after.messages) == len(before.messages) + 2
        assert json.dumps(after.messages[:len(before.messages)]) == json.dumps(before.messages)
    # the system prompt does not carry what changes per turn; the newest message ends with it
    system = sent[0].messages[0]["content"]
    assert all(r.messages[0]["content"] == system for r in sent)
    assert "spent $" not in system and "s left]" not in system
    for r in sent:
        assert r.messages[-1]["role"] == "user" and r.messages[-1]["content"].rstrip().endswith("s left]")
    # plain string contents for OpenAI: no cache_control blocks
    assert all(isinstance(m["content"], str) for r in sent for m in r.messages)


def test_cached_tokens_are_recorded_and_priced_at_the_cache_read_price(caching_provider, write_doc, sink):
    result = caching_run(caching_provider, write_doc, sink)
    assert result.status == "succeeded"
    turns = sink.of_type("root.turn")
    sent = root_requests(caching_provider)
    assert [e.data["cached_tokens"] for e in turns] == [r.cached_tokens for r in sent]
    assert turns[0].data["cached_tokens"] == 0
    assert all(e.data["cached_tokens"] > 0 and e.data["cached_tokens"] % CACHE_BLOCK_TOKENS == 0 for e in turns[1:])
    info = litellm.get_model_info(ROOT)
    discount = info["input_cost_per_token"] - info["cache_read_input_token_cost"]
    assert discount > 0
    for e in turns:
        d = e.data
        uncached = plain_price(ROOT, d["prompt_tokens"], d["completion_tokens"])
        assert d["cache_saving_usd"] == pytest.approx(d["cached_tokens"] * discount, rel=1e-9)
        assert d["cost_usd"] == pytest.approx(uncached - d["cached_tokens"] * discount, rel=1e-9)
        if d["cached_tokens"]:
            assert d["cost_usd"] < uncached
    totals = sink.events[-1].data["totals"]
    assert totals["cached_tokens"] == sum(e.data["cached_tokens"] for e in turns)
    assert totals["cache_saving_usd"] == pytest.approx(sum(e.data["cache_saving_usd"] for e in turns), rel=1e-9)
    subs = sink.of_type("subcall.finished")
    assert totals["cost_usd"] == pytest.approx(sum(e.data["cost_usd"] for e in turns + subs), rel=1e-9)


def test_sub_calls_report_cached_tokens_too(caching_provider, write_doc, sink):
    doc = write_doc("a.txt", "The code is 42. " * 400)
    caching_provider.root_replies = [repl("a = llm_query_batched(['q' + str(i) for i in range(3)])\nprint(a)"),
                                     "FINAL(42)"]
    result = run(sim_spec(caching_provider, [doc]), sink)
    assert result.status == "succeeded"
    subs = sink.of_type("subcall.finished")
    assert len(subs) == 3 and all(e.data["cached_tokens"] == 0 and e.data["cache_saving_usd"] == 0 for e in subs)


def test_without_provider_caching_nothing_is_cached(provider, write_doc, sink):
    result = caching_run(provider, write_doc, sink, turns=3)
    assert result.status == "succeeded"
    assert all(e.data["cached_tokens"] == 0 for e in sink.of_type("root.turn"))
    assert sink.events[-1].data["totals"]["cached_tokens"] == 0


def test_the_simulated_cache_counts_whole_blocks_of_the_shared_prefix():
    base = "x" * 8000
    assert cached_prefix_tokens(None, base, 5000) == 0
    assert cached_prefix_tokens(base, base + "more", 5000) == 1920  # 2000 tokens -> 15 blocks of 128
    assert cached_prefix_tokens("y" + base, base, 5000) == 0  # a changed first byte: nothing cached
    assert cached_prefix_tokens(base[:3000], base, 5000) == 0  # under 1,024 tokens: no caching


def test_cache_breakpoints_only_for_providers_that_need_them():
    assert needs_cache_control("anthropic/claude-sonnet-4-5")
    assert needs_cache_control("claude-sonnet-4-5")
    assert needs_cache_control("bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0")
    assert not needs_cache_control("openai/gpt-4o")
    assert not needs_cache_control("bedrock/amazon.nova-pro-v1:0")
    assert not needs_cache_control("offline/heuristic")


def test_breakpoints_mark_the_system_prompt_and_the_last_two_user_messages_text_unchanged():
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"},
                {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"},
                {"role": "assistant", "content": "A2"}, {"role": "user", "content": "U3"}]
    marked = with_cache_breakpoints(messages)
    blocks = [i for i, m in enumerate(marked) if isinstance(m["content"], list)]
    assert blocks == [0, 3, 5]
    for i, m in enumerate(marked):
        text = m["content"][0]["text"] if i in blocks else m["content"]
        assert text == messages[i]["content"]
        if i in blocks:
            assert m["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert messages[0]["content"] == "S"  # the caller's list is not changed


def test_anthropic_cache_usage_and_the_cache_write_price_in_the_worst_case():
    usage = litellm.Usage(prompt_tokens=10_000, completion_tokens=10, total_tokens=10_010,
                          cache_read_input_tokens=6_000, cache_creation_input_tokens=2_000)
    assert cache_usage(usage) == (6_000, 2_000)
    info = litellm.get_model_info("anthropic/claude-sonnet-4-5")
    assert info["cache_creation_input_token_cost"] > info["input_cost_per_token"]
    assert prices("anthropic/claude-sonnet-4-5")[0] >= info["cache_creation_input_token_cost"]


def test_only_the_roots_conversation_is_sent_with_breakpoints(caching_provider, write_doc, sink, monkeypatch):
    from worker.engine.llm import LLMClient
    seen = []
    complete = LLMClient.complete

    def recording(self, model, messages, *args, **kwargs):
        seen.append((model, kwargs.get("cache_prefix", False)))
        return complete(self, model, messages, *args, **kwargs)

    monkeypatch.setattr(LLMClient, "complete", recording)
    doc = write_doc("a.txt", "The code is 42. " * 400)
    caching_provider.root_replies = [repl("a = llm_query_batched(['q1', 'q2'])\nprint(a)"), "FINAL(42)"]
    assert run(sim_spec(caching_provider, [doc]), sink).status == "succeeded"
    assert sorted(seen) == sorted([(ROOT, True), (ROOT, True), ("openai/gpt-4o-mini", False),
                                   ("openai/gpt-4o-mini", False)])


def test_anthropic_calls_carry_breakpoints_only_when_asked(monkeypatch):
    from worker.engine.llm import LLMClient
    sent = []

    def fake_attempt(model, messages, timeout, kwargs, should_stop, time_left):
        sent.append(messages)
        return litellm.ModelResponse(choices=[{"message": {"role": "assistant", "content": "ok"}}],
                                     usage={"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11})

    monkeypatch.setattr(LLMClient, "_attempt", staticmethod(fake_attempt))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-not-real")
    client = LLMClient()
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    client.complete("anthropic/claude-sonnet-4-5", messages)
    client.complete("anthropic/claude-sonnet-4-5", messages, cache_prefix=True)
    client.complete("openai/gpt-4o", messages, cache_prefix=True)
    assert sent[0] == messages and sent[2] == messages
    assert [m["content"][0]["cache_control"] for m in sent[1]] == [{"type": "ephemeral"}] * 2
