"""The explorer shows a compaction, the team's helpers and the variables carried into a follow-up as
notes in the notebook (headless chromium against the static harness)."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

EVENTS = [
    {"seq": 1, "type": "run.started", "ts": 1.0, "data": {"question": "And 2019?", "documents": [], "mode": "rlm",
                                                           "root_model": "openai/gpt-4o", "sub_model": "openai/gpt-4o"}},
    {"seq": 2, "type": "snapshot.restored", "ts": 1.1, "data": {
        "variables": [{"name": "years", "type": "dict"}],
        "not_carried": [{"name": "twice", "type": "function", "reason": "a function (define it again)"}],
        "error": None}},
    {"seq": 3, "type": "helpers.loaded", "ts": 1.2, "data": {"helpers": [
        {"name": "word_count", "version": 3, "signature": "word_count(text)", "doc": "How many <b>words</b>.",
         "error": None, "stdout": ""},
        {"name": "broken", "version": 1, "signature": "broken()", "doc": "", "error": "NameError: x", "stdout": ""}]}},
    {"seq": 4, "type": "root.turn", "ts": 2.0, "data": {"node_id": None, "depth": 0, "iteration": 1, "content": "hi",
                                                         "prompt_tokens": 10, "completion_tokens": 2, "cost_usd": 0.01,
                                                         "latency_s": 0.5, "model": "openai/gpt-4o", "attempts": 1,
                                                         "input": []}},
    {"seq": 5, "type": "root.compacted", "ts": 3.0, "data": {
        "node_id": None, "depth": 0, "iteration": 2, "tokens_before": 3400, "tokens_after": 900, "window": 4000,
        "turns_compacted": 1, "summary": "SUMMARY: read one chunk", "model": "openai/gpt-4o", "prompt_tokens": 3400,
        "completion_tokens": 40, "cost_usd": 0.02, "latency_s": 0.4, "attempts": 1}},
]


def test_compaction_helpers_and_carried_variables_are_notes(page, harness):
    harness.open(page, None)
    page.evaluate("(ev) => window.loadTrajectory(ev)", EVENTS)
    root = page.locator("#explorer")
    restored = root.locator("#note-2")
    expect(restored).to_contain_text("Carried over from the previous run")
    expect(restored).to_contain_text("years")
    restored.locator("summary").click()
    expect(restored).to_contain_text("twice (function): a function (define it again)")
    helpers = root.locator("#note-3")
    expect(helpers).to_contain_text("word_count(text) v3")
    expect(helpers.locator(".pill.bad")).to_have_text("failed to load")
    assert helpers.locator("b").count() == 0  # docstrings are text, not markup
    compacted = root.locator("#note-5")
    expect(compacted).to_contain_text("History compacted")
    expect(compacted).to_contain_text("3,400 → 900 tokens")
    compacted.locator("summary").click()
    expect(compacted.locator("pre")).to_have_text("SUMMARY: read one chunk")
