"""The trajectory explorer in headless chromium against its static harness (no Django server):
rendering, virtualisation of 10,000 nodes, search, deep links, coverage, flags, partial state,
streaming with duplicates, sanitised markdown and keyboard use."""

import json

import pytest
from playwright.sync_api import expect

from .conftest import screenshot

pytestmark = pytest.mark.browser


def events_of(data, type_):
    return [e for e in data["events"] if e["type"] == type_]


def test_renders_a_recorded_trajectory(page, harness):
    data = harness.data["small"]
    harness.open(page, "small")
    root = page.locator("#explorer")
    totals = events_of(data, "run.finished")[0]["data"]["totals"]

    expect(root.locator('[data-field="status"]')).to_have_text("succeeded")
    expect(root.locator("#rx-question")).to_have_text("What is the launch code for project Heron?")
    expect(root.locator('[data-counter="subcalls"]')).to_have_text(f"{totals['subcalls']:,}")
    expect(root.locator('[data-counter="tokens"]')).to_have_text(f"{totals['prompt_tokens'] + totals['completion_tokens']:,}")
    expect(root.locator('[data-counter="iterations"]')).to_have_text(f"{totals['iterations']} / 30")
    cost = root.locator('[data-counter="cost"]').inner_text()
    assert cost.startswith("$") and cost != "$0"
    # The offline model is labelled as a heuristic stand-in wherever it appears.
    expect(root.locator(".rx-settings .badge-offline")).to_have_count(2)
    expect(root.locator(".rx-offline-note")).to_contain_text("heuristic stand-in")
    assert root.locator(".nb-turn-head .badge-offline").count() == len(events_of(data, "root.turn"))
    # What each turn sent the model, folded under its head; text cut in the event says so.
    assert root.locator(".nb-input").count() == len(events_of(data, "root.turn"))
    first_input = root.locator(".nb-turn .nb-input").first
    expect(first_input.locator("summary")).to_contain_text("Sent to the model: 2 messages")
    first_input.locator("summary").click()
    expect(first_input.locator("h4").first).to_contain_text("system")
    expect(first_input.locator(".nb-input-text").nth(1)).to_contain_text("more characters not recorded")
    # Final answer as rendered markdown.
    expect(root.locator("#final-answer strong")).to_have_text("The launch code for project Heron is AMBER-7742.")
    expect(root.locator("#final-answer li")).to_have_count(2)

    # Notebook: every cell once, with highlighted code, output, truncation and errors.
    cell_ids = [e["data"]["cell_id"] for e in events_of(data, "cell.started")]
    rendered = root.locator(".nb-cell").evaluate_all("els => els.map(e => e.dataset.cellId)")
    assert sorted(rendered) == sorted(cell_ids) and len(set(rendered)) == len(rendered)
    expect(root.locator("#cell-c1 .hl-b").first).to_have_text("print")
    expect(root.locator("#cell-c2 .nb-truncated")).to_contain_text("the root saw 2,000 of")
    expect(root.locator("#cell-c2 .nb-more summary")).to_contain_text("Show all output")
    expect(root.locator("#cell-c6 .stderr")).to_contain_text("NameError")
    expect(root.locator("#cell-c6 .nb-status")).to_contain_text("error")
    # The child RLM's turns and cell nest under the cell that called rlm_query.
    child = root.locator("#cell-c3 .nb-child")
    expect(child).to_have_count(1)
    expect(child.locator(".nb-turn")).to_have_count(2)
    expect(child.locator("#cell-c4")).to_have_count(1)
    expect(child.locator("> summary")).to_contain_text("answered")

    # Tree, timeline and cost chart.
    expect(root.locator('[data-field="tree-count"]')).to_have_text(f"{len(events_of(data, 'subcall.started'))} sub-calls")
    assert int(root.locator("#timeline").get_attribute("data-bars")) >= len(cell_ids) + totals["subcalls"]
    assert root.locator("#timeline").get_attribute("data-peak") == "16"
    assert int(root.locator("#cost-chart").get_attribute("data-points")) == len(events_of(data, "cost.updated"))
    screenshot(page, "explorer-harness-top")
    screenshot(page, "explorer-harness-full", full_page=True)


def test_ten_thousand_nodes_stay_virtualised(page, harness):
    data = harness.data["big"]
    n_nodes = len(events_of(data, "subcall.started"))
    assert n_nodes >= 10_000
    harness.open(page, "big")
    tree = page.locator("#subcall-tree")
    page.uncheck("#tree-batches")  # every sub-call its own row
    n_rows = int(tree.get_attribute("data-rows"))
    assert n_rows >= n_nodes  # every node is a row of the flattened tree...
    assert tree.locator(".tree-row").count() < 100  # ...but only those near the viewport exist

    # Scroll to the end: still a handful of rows, and the last rows are the ones shown.
    tree.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    page.wait_for_timeout(100)
    visible = tree.locator(".tree-row:visible")
    assert visible.count() < 100
    last_index = max(int(i) for i in visible.evaluate_all("els => els.map(e => e.dataset.index)"))
    assert last_index == n_rows - 1

    # Keyboard: Home (the first root turn), then down past its cell, the second turn and its cell
    # to the first sub-call; Enter opens its details.
    tree.focus()
    page.keyboard.press("Home")
    for _ in range(4):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page.locator("#node-detail h2")).to_contain_text("Sub-call n")
    # Collapse all: the root turns with their cells, nothing below.
    page.click('[data-action="collapse-all"]')
    top = [e for e in data["events"] if e["type"] in ("root.turn", "cell.started") and e["data"]["depth"] == 0]
    assert int(tree.get_attribute("data-rows")) == len(top)
    page.select_option("#tree-depth", "all")
    assert int(tree.get_attribute("data-rows")) == n_rows
    screenshot(page, "explorer-10000-nodes")


def test_search_links_to_the_matching_items(page, harness):
    harness.open(page, "small")
    page.fill("#search-input", "amber-7742")
    page.press("#search-input", "Enter")
    expect(page.locator("#search-count")).to_contain_text("match")
    results = page.locator("#search-results li")
    assert results.count() >= 3
    fields = results.locator(".muted").all_inner_texts()
    assert {"response", "output", "reasoning"} <= set(fields)
    node_link = page.locator('#search-results a[href^="#node-"]').first
    target = node_link.get_attribute("href")
    node_link.click()
    assert page.evaluate("location.hash") == target
    expect(page.locator("#node-detail")).to_have_attribute("data-item", target.removeprefix("#node-"))
    expect(page.locator(target)).to_have_attribute("aria-selected", "true")
    # A cell result scrolls to the cell.
    page.fill("#search-input", "hitz")
    page.press("#search-input", "Enter")
    page.locator('#search-results a[href="#cell-c6"]').first.click()
    expect(page.locator("#cell-c6")).to_be_in_viewport()
    page.fill("#search-input", "no such text anywhere")
    page.press("#search-input", "Enter")
    expect(page.locator("#search-count")).to_have_text("No matches.")


def test_deep_links_open_and_scroll_to_the_item(page, harness):
    harness.open(page, "big", "#node-n9000")
    expect(page.locator("#node-detail")).to_have_attribute("data-item", "n9000")
    row = page.locator("#node-n9000")
    expect(row).to_have_attribute("aria-selected", "true")
    expect(row).to_be_in_viewport()
    # A depth-2 node inside the child RLM: its ancestors are expanded even when collapsed before.
    page.click('[data-action="collapse-all"]')
    child_node = next(e["data"]["node_id"] for e in events_of(harness.data["big"], "subcall.started") if e["data"]["depth"] == 2)
    page.evaluate(f"location.hash = '#node-{child_node}'")
    expect(page.locator(f"#node-{child_node}")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#node-detail")).to_contain_text("of child RLM")

    # A cell inside a collapsed child RLM is opened and scrolled into view.
    harness.open(page, "small")
    page.evaluate("document.querySelector('.nb-child').open = false")
    page.evaluate("location.hash = '#cell-c4'")
    expect(page.locator("#cell-c4")).to_be_in_viewport()
    assert page.evaluate("document.querySelector('.nb-child').open")
    assert page.evaluate("document.activeElement.id") == "cell-c4"


def test_coverage_map_per_document(page, harness):
    data = harness.data["small"]
    harness.open(page, "small")
    docs = page.locator(".cov-doc")
    expect(docs).to_have_count(2)
    # Expected coverage from the events, computed independently here.
    spans = {0: [], 1: []}
    for e in events_of(data, "subcall.started"):
        for r in e["data"]["ranges"]:
            spans[r["doc"]].append((r["start"], r["end"]))
    for i, doc in enumerate(data["documents"]):
        covered, end = 0, -1
        for s, e in sorted(spans[i]):
            if e > end:
                covered += e - max(s, end)
                end = e
        assert float(docs.nth(i).get_attribute("data-fraction")) == pytest.approx(covered / doc["chars"], abs=1e-4)
    expect(docs.nth(1).locator(".cov-pct")).to_contain_text("100% covered")
    expect(docs.nth(0).locator(".cov-pct")).to_contain_text(f"{len(spans[0])} reads")
    # Clicking the bar lists the sub-calls that read that point.
    docs.nth(1).locator("canvas").click(position={"x": 5, "y": 5})
    expect(docs.nth(1).locator(".cov-hits a")).not_to_have_count(0)


def test_flags_for_the_papers_failure_patterns(page, harness):
    harness.open(page, "small")
    flags = page.locator("#flags")
    expect(flags.locator('[data-flag="duplicate-prompts"]')).to_contain_text("2 repeats in 1 group")
    expect(flags.locator('[data-flag="near-duplicate-prompts"]')).to_contain_text("7 calls in 1 group")
    expect(flags.locator('[data-flag="cell-errors"]')).to_be_visible()
    expect(flags.locator('[data-flag="final-not-computed"]')).to_have_count(0)
    flags.locator('[data-flag="duplicate-prompts"] summary').click()
    flags.locator('[data-flag="duplicate-prompts"] a').first.click()
    expect(page.locator("#node-detail h2")).to_contain_text("Sub-call")

    # An answer that occurs in no output at all gets the stronger flag (and not both).
    harness.open(page, "mismatch")
    expect(page.locator('#flags [data-flag="answer-not-in-trajectory"]')).to_contain_text("Final answer found in no computed value")
    expect(page.locator('#flags [data-flag="final-not-computed"]')).to_have_count(0)


def test_partial_state_shows_running_items(page, harness):
    data = harness.data["partial"]
    harness.open(page, "partial")
    root = page.locator("#explorer")
    expect(root.locator('[data-field="status"]')).to_have_text("running")
    expect(root.locator("#final-answer")).to_be_hidden()
    expect(root.locator(".nb-cell.running")).to_have_count(1)
    started = {e["data"]["node_id"] for e in events_of(data, "subcall.started")}
    finished = {e["data"]["node_id"] for e in events_of(data, "subcall.finished")}
    (running,) = started - finished
    page.evaluate(f"location.hash = '#node-{running}'")
    expect(page.locator(f"#node-{running} .pill.running")).to_have_text("running")
    expect(page.locator("#node-detail")).to_contain_text("Waiting for the response")
    expect(root.locator('[data-counter="subcalls"]')).to_contain_text("(1 running)")
    screenshot(page, "explorer-partial")


def test_streamed_events_in_overlapping_batches_are_applied_once(page, harness):
    data = harness.data["small"]
    events = data["events"]
    harness.open(page, None)
    page.evaluate("(docs) => { window.ex = window.loadTrajectory({events: [], documents: docs}); }", data["documents"])
    # Batches that overlap (a reconnect replaying what we hold) and one out of order duplicate.
    batches = [events[0:40], events[30:90], events[85:150], events[10:20], events[150:]]
    for batch in batches:
        page.evaluate("(b) => window.ex.ingest(b)", json.dumps(batch) and batch)
    page.wait_for_function(f"document.getElementById('explorer').dataset.lastSeq === '{len(events)}'")
    seqs = page.evaluate("window.ex.model.seqs")
    assert seqs == list(range(1, len(events) + 1))
    assert page.evaluate("window.ex.model.gaps") == 0
    assert page.locator(".nb-cell").count() == len(events_of(data, "cell.started"))
    assert page.locator("#explorer").get_attribute("data-nodes") == str(len(events_of(data, "subcall.started")))
    expect(page.locator("#explorer [data-field='status']")).to_have_text("succeeded")


def test_markdown_is_sanitised(page, harness):
    harness.open(page, None)
    hostile = (
        "Hello <img src=x onerror=\"window.pwned=1\"> <script>window.pwned=2</script>\n\n"
        "[click](javascript:window.pwned=3) [ok](https://example.com/a?b=1&c=2) **bold** `code <b>`\n\n"
        "```html\n<iframe src=x></iframe>\n```"
    )
    events = [
        {"seq": 1, "type": "run.started", "ts": 1.0, "data": {"question": "<b>q</b>", "mode": "rlm", "root_model": "m",
                                                            "sub_model": "m", "limits": {}, "documents": [], "offline": False}},
        {"seq": 2, "type": "final.answer", "ts": 2.0, "data": {"answer": hostile, "source": "FINAL"}},
        {"seq": 3, "type": "run.finished", "ts": 3.0, "data": {"status": "succeeded", "totals": None}},
    ]
    page.evaluate("(ev) => window.loadTrajectory(ev)", events)
    answer = page.locator("#final-answer")
    expect(answer).to_contain_text("Hello")
    assert answer.locator("img, script, iframe").count() == 0
    assert page.evaluate("window.pwned") is None
    hrefs = answer.locator("a").evaluate_all("els => els.map(a => a.getAttribute('href'))")
    assert hrefs == ["https://example.com/a?b=1&c=2"]
    expect(answer.locator("strong")).to_have_text("bold")
    expect(answer.locator("code").first).to_have_text("code <b>")
    expect(page.locator("#rx-question")).to_have_text("<b>q</b>")


def test_unknown_costs_are_never_shown_as_zero(page, harness):
    harness.open(page, None)
    events = [
        {"seq": 1, "type": "run.started", "ts": 1.0, "data": {"question": "q", "mode": "rlm", "root_model": "x/y",
                                                            "sub_model": "x/y", "limits": {}, "documents": [], "offline": False}},
        {"seq": 2, "type": "cell.started", "ts": 1.5, "data": {"cell_id": "c1", "node_id": None, "depth": 0, "iteration": 1, "index": 0, "code": "llm_query('a')"}},
        {"seq": 3, "type": "subcall.started", "ts": 2.0, "data": {"node_id": "n1", "parent_id": None, "cell_id": "c1", "depth": 1, "kind": "llm", "model": "x/y", "prompt": "a", "prompt_chars": 1, "ranges": [], "batch_id": None, "batch_index": None}},
        {"seq": 4, "type": "subcall.finished", "ts": 3.0, "data": {"node_id": "n1", "response": "b", "response_chars": 1, "prompt_tokens": 5, "completion_tokens": 1, "cost_usd": None, "latency_s": 1.0, "error": None, "attempts": 1}},
        {"seq": 5, "type": "cost.updated", "ts": 3.0, "data": {"totals": {"cost_usd": 0.0, "cost_unknown_calls": 1, "prompt_tokens": 5, "completion_tokens": 1, "iterations": 1, "subcalls": 1, "max_depth_reached": 1, "elapsed_s": 2.0}}},
    ]
    page.evaluate("(ev) => window.loadTrajectory(ev)", events)
    expect(page.locator('[data-counter="cost"]')).to_have_text("unknown (1 call unpriced)")
    page.evaluate("location.hash = '#node-n1'")
    expect(page.locator("#node-detail")).to_contain_text("unknown")
    page.evaluate("""() => window.RLMExplorer.current.ingest([{seq: 6, type: "cost.updated", ts: 4.0, data: {totals: {
        cost_usd: 0.25, cost_unknown_calls: 1, prompt_tokens: 9, completion_tokens: 2, iterations: 2, subcalls: 1,
        max_depth_reached: 1, elapsed_s: 3.0}}}])""")
    expect(page.locator('[data-counter="cost"]')).to_have_text("≥ $0.2500 (1 call unpriced)")


def test_prompt_cache_is_shown_where_there_was_one_and_nowhere_else(page, harness):
    """cached_tokens / cache_saving_usd (root.turn, subcall.finished, totals): in the run's counters,
    the turn's head and the detail pane, formatted like the costs; absent or zero shows nothing."""
    harness.open(page, None)
    turn = {"node_id": None, "depth": 0, "iteration": 1, "content": "x", "prompt_tokens": 20000,
            "completion_tokens": 50, "cost_usd": 0.05, "latency_s": 1.0, "model": "x/y", "forced": False,
            "attempts": 1, "input": []}
    finished = {"response": "b", "response_chars": 1, "prompt_tokens": 3000, "completion_tokens": 1,
                "cost_usd": 0.001, "latency_s": 1.0, "error": None, "attempts": 1}
    totals = {"cost_usd": 0.052, "cost_unknown_calls": 0, "prompt_tokens": 26000, "completion_tokens": 52,
              "iterations": 1, "subcalls": 2, "max_depth_reached": 1, "elapsed_s": 3.0}
    started = {"parent_id": None, "cell_id": "c1", "depth": 1, "kind": "llm", "model": "x/y", "prompt": "a",
               "prompt_chars": 1, "ranges": [], "batch_id": None, "batch_index": None}
    events = [
        {"seq": 1, "type": "run.started", "ts": 1.0, "data": {"question": "q", "mode": "rlm", "root_model": "x/y",
                                                            "sub_model": "x/y", "limits": {}, "documents": [], "offline": False}},
        {"seq": 2, "type": "root.turn", "ts": 2.0, "data": {**turn, "cached_tokens": 12288, "cache_saving_usd": 0.0276}},
        {"seq": 3, "type": "cell.started", "ts": 2.1, "data": {"cell_id": "c1", "node_id": None, "depth": 0, "iteration": 1, "index": 0, "code": "llm_query('a')"}},
        {"seq": 4, "type": "subcall.started", "ts": 2.2, "data": {**started, "node_id": "n1"}},
        {"seq": 5, "type": "subcall.finished", "ts": 2.5, "data": {**finished, "node_id": "n1", "cached_tokens": 0, "cache_saving_usd": 0.0}},
        {"seq": 6, "type": "subcall.started", "ts": 2.6, "data": {**started, "node_id": "n2"}},
        {"seq": 7, "type": "subcall.finished", "ts": 2.9, "data": {**finished, "node_id": "n2", "cached_tokens": 2048, "cache_saving_usd": None}},
        {"seq": 8, "type": "subcall.started", "ts": 3.0, "data": {**started, "node_id": "n3"}},
        {"seq": 9, "type": "subcall.finished", "ts": 3.1, "data": {**finished, "node_id": "n3"}},
        {"seq": 10, "type": "cost.updated", "ts": 3.1, "data": {"totals": totals}},
    ]
    page.evaluate("(ev) => window.loadTrajectory(ev)", events)
    cache_box = page.locator('[data-counter-box="cache"]')
    # Totals without the fields (an older run): no counter at all, not "0".
    expect(page.locator('[data-counter="cost"]')).to_have_text("$0.0520")
    expect(cache_box).to_be_hidden()
    expect(page.locator("#turn-root-1 .nb-turn-head")).to_contain_text("$0.0500 (12,288 cached tokens · saved $0.0276)")

    page.evaluate("location.hash = '#node-n2'")
    expect(page.locator("#node-detail")).to_contain_text("Prompt cache2,048 cached tokens · saving unknown")
    for quiet in ("n1", "n3"):  # zero cached tokens and no saving; the fields absent
        page.evaluate(f"location.hash = '#node-{quiet}'")
        expect(page.locator(f"#node-detail[data-item='{quiet}']")).to_contain_text("Cost$0.0010")
        expect(page.locator("#node-detail")).not_to_contain_text("Prompt cache")
    page.evaluate("() => window.RLMExplorer.current.showDetail(window.RLMExplorer.current.model.turns[0])")
    expect(page.locator("#node-detail")).to_contain_text("Prompt cache12,288 cached tokens · saved $0.0276")

    page.evaluate("""(t) => window.RLMExplorer.current.ingest([{seq: 11, type: "cost.updated", ts: 3.2,
        data: {totals: {...t, cached_tokens: 14336, cache_saving_usd: 0.0276}}}])""", totals)
    expect(cache_box).to_be_visible()
    expect(page.locator('[data-counter="cache"]')).to_have_text("14,336 cached tokens · saved $0.0276")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "explorer-prompt-cache")
    page.evaluate("""(t) => window.RLMExplorer.current.ingest([{seq: 12, type: "cost.updated", ts: 3.3,
        data: {totals: {...t, cached_tokens: 0, cache_saving_usd: 0.0}}}])""", totals)
    expect(cache_box).to_be_hidden()


def test_keyboard_moves_between_cells(page, harness):
    harness.open(page, "small")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.evaluate("window.scrollTo(0, 0)")
    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.dataset.cellId") == "c1"
    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.dataset.cellId") == "c2"
    page.keyboard.press("k")
    assert page.evaluate("document.activeElement.dataset.cellId") == "c1"
    assert page.evaluate("location.hash") == "#cell-c1"
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "search-input"
    # Enter on a <summary> toggles it: the output expander.
    page.locator("#cell-c2 .nb-more summary").focus()
    page.keyboard.press("Enter")
    assert page.evaluate("document.querySelector('#cell-c2 .nb-more').open")
