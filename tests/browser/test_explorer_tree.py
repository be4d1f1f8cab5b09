"""The run tree reads like a trace viewer, REPL-aware: root turns hold their cells, cells their
sub-calls, a batch fan-out folds into one row with its count; each row shows its status and a
preview of its response; sub-calls can be filtered and sorted; the detail pane has input, output and
metadata tabs with markdown / JSON rendering and copy buttons; Enter in the search walks the matches."""

import json

import pytest
from playwright.sync_api import expect

from .synthetic import ANSWER

pytestmark = pytest.mark.browser


def started(data):
    return [e["data"] for e in data["events"] if e["type"] == "subcall.started"]


def finished(data):
    return {e["data"]["node_id"]: e["data"] for e in data["events"] if e["type"] == "subcall.finished"}


def rows(page):
    return page.locator("#subcall-tree .tree-row:visible")


def test_one_hierarchy_from_root_turns_down_with_batches_folded(page, harness):
    data = harness.data["small"]
    harness.open(page, "small")
    tree = page.locator("#subcall-tree")
    first = rows(page).first
    expect(first).to_have_attribute("id", "tree-turn-root-1")
    expect(first).to_have_attribute("data-kind", "turn")
    expect(first.locator(".tprev")).to_contain_text("I will start by probing the context")
    # Turn 2's cell c2 launched one batch of sub-calls: one row, with its count and statuses.
    fan = [d for d in started(data) if d["cell_id"] == "c2"]
    answered = sum(1 for d in fan if finished(data)[d["node_id"]]["response"] == ANSWER)
    batch = tree.locator(f"#tree-batch-c2-{fan[0]['batch_id']}")
    expect(batch.locator(".tid")).to_have_text(f"×{len(fan)}")
    expect(batch.locator(".tmeta")).to_contain_text(f"{answered} answered")
    expect(batch.locator(".tmeta")).to_contain_text(f"{len(fan) - answered} not found")
    assert tree.locator(f"#node-{fan[0]['node_id']}").count() == 0  # folded
    before = int(tree.get_attribute("data-rows"))
    batch.locator("[data-toggle]").click()
    assert int(tree.get_attribute("data-rows")) == before + len(fan)
    row = tree.locator(f"#node-{fan[0]['node_id']}")
    expect(row.locator(".pill")).to_have_text("not found")
    expect(row.locator(".tprev")).to_have_text("→ NOT FOUND")
    # The child RLM holds its own turns, which hold their cells.
    rlm = next(d for d in started(data) if d["kind"] == "rlm")
    page.evaluate(f"location.hash = '#node-{rlm['node_id']}'")
    expect(tree.locator(f"#tree-turn-{rlm['node_id']}-1")).to_have_attribute("aria-level", "4")


def test_filters_and_sorts_give_a_flat_list_of_sub_calls(page, harness):
    data = harness.data["small"]
    done = finished(data)
    harness.open(page, "small")
    tree = page.locator("#subcall-tree")
    answered = [d for d in started(data) if not done[d["node_id"]]["response"].startswith("NOT FOUND")]
    page.select_option("#tree-status", "not-found")
    assert int(tree.get_attribute("data-rows")) == len(started(data)) - len(answered)
    page.select_option("#tree-status", "answered")
    assert int(tree.get_attribute("data-rows")) == len(answered)
    expect(page.locator("#explorer")).to_have_attribute("data-tree-view", "flat")
    page.select_option("#tree-status", "error")
    assert int(tree.get_attribute("data-rows")) == 0
    page.select_option("#tree-status", "")
    page.select_option("#tree-level", "2")
    assert int(tree.get_attribute("data-rows")) == sum(1 for d in started(data) if d["depth"] == 2)
    page.select_option("#tree-level", "")
    # Slowest first: the first row is the sub-call with the longest latency.
    page.select_option("#tree-sort", "slowest")
    slowest = max(started(data), key=lambda d: done[d["node_id"]]["latency_s"])
    expect(rows(page).first).to_have_attribute("id", f"node-{slowest['node_id']}")
    page.select_option("#tree-sort", "costliest")
    costliest = max(started(data), key=lambda d: done[d["node_id"]]["cost_usd"] or -1)
    expect(rows(page).first).to_have_attribute("id", f"node-{costliest['node_id']}")
    # A deep link to a node the filter hides brings the tree back.
    page.select_option("#tree-sort", "tree")
    page.select_option("#tree-status", "answered")
    hidden = next(d for d in started(data) if d not in answered)
    page.evaluate(f"location.hash = '#node-{hidden['node_id']}'")
    expect(tree.locator(f"#node-{hidden['node_id']}")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#tree-status")).to_have_value("")


def test_detail_tabs_render_and_copy(page, harness):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    data = harness.data["small"]
    harness.open(page, "small")
    node = next(d for d in started(data) if finished(data)[d["node_id"]]["response"] == ANSWER)
    page.evaluate(f"location.hash = '#node-{node['node_id']}'")
    detail = page.locator("#node-detail")
    expect(detail.locator('[role="tab"][aria-selected="true"]')).to_have_text("Response")
    expect(detail.locator('[data-panel="output"]')).to_contain_text(ANSWER)
    expect(detail.locator('[data-panel="input"]')).to_be_hidden()
    detail.locator('[data-tab="input"]').click()
    expect(detail.locator('[data-panel="input"] pre.prompt')).to_contain_text("Question: What is the launch code")
    detail.locator('[data-panel="input"] [data-copy]').click()
    expect(detail.locator('[data-panel="input"] [data-copy]')).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == node["prompt"]
    # Arrow keys move between tabs.
    detail.locator('[data-tab="input"]').press("ArrowRight")
    expect(detail.locator('[data-panel="metadata"]')).to_be_visible()
    expect(detail.locator('[data-panel="metadata"]')).to_contain_text("Launched by")
    detail.locator('[data-copy="json"]').click()
    copied = json.loads(page.evaluate("navigator.clipboard.readText()"))
    assert copied["id"] == node["node_id"] and copied["result"]["response"] == ANSWER

    # A root turn: its response as markdown, switchable to plain text.
    page.locator("#subcall-tree").evaluate("el => { el.scrollTop = 0; }")
    page.locator("#tree-turn-root-2").click()
    expect(detail.locator("h2")).to_contain_text("Turn 2")
    detail.locator('[data-tab="output"]').click()
    expect(detail.locator('[data-panel="output"] .md strong')).to_have_text("Chunking.")
    detail.locator('[data-panel="output"] [data-format="text"]').click()
    expect(detail.locator('[data-panel="output"] pre')).to_contain_text("**Chunking.**")


def test_json_outputs_are_pretty_printed(page, harness):
    harness.open(page, None)
    events = [
        {"seq": 1, "type": "run.started", "ts": 1.0, "data": {"question": "q", "mode": "rlm", "documents": [{"name": "d", "chars": 10}]}},
        {"seq": 2, "type": "root.turn", "ts": 2.0, "data": {"iteration": 1, "content": "go", "depth": 0}},
        {"seq": 3, "type": "cell.started", "ts": 2.1, "data": {"cell_id": "c1", "iteration": 1, "code": "x", "depth": 0}},
        {"seq": 4, "type": "subcall.started", "ts": 2.2, "data": {"node_id": "n1", "cell_id": "c1", "depth": 1, "kind": "llm", "prompt": "p", "ranges": []}},
        {"seq": 5, "type": "subcall.finished", "ts": 2.3, "data": {"node_id": "n1", "response": '{"code": "AMBER-7742", "found": true}'}},
    ]
    page.evaluate("events => window.loadTrajectory(events)", events)
    page.wait_for_selector("#explorer[data-ready='1']")
    page.evaluate("location.hash = '#node-n1'")
    body = page.locator('#node-detail [data-panel="output"] .detail-body')
    expect(body).to_have_attribute("data-format", "json")
    assert '"code": "AMBER-7742",\n  "found": true' in body.inner_text()


def test_enter_in_the_search_walks_the_matches(page, harness):
    harness.open(page, "small")
    page.fill("#search-input", "amber-7742")
    page.press("#search-input", "Enter")
    links = page.locator("#search-results a")
    first, second = links.nth(0).get_attribute("href"), links.nth(1).get_attribute("href")
    expect(links.nth(0)).to_have_attribute("aria-current", "true")
    assert page.evaluate("location.hash") == first
    expect(page.locator("#search-input")).to_be_focused()
    page.press("#search-input", "Enter")
    assert page.evaluate("location.hash") == second
    expect(links.nth(1)).to_have_attribute("aria-current", "true")


def test_timeline_zooms_and_pans(page, harness):
    harness.open(page, "small")
    timeline = page.locator("#timeline")
    bars = int(timeline.get_attribute("data-bars"))
    timeline.locator('[data-zoom="in"]').click()
    timeline.locator('[data-zoom="in"]').click()
    expect(timeline).to_have_attribute("data-view", "0.375-0.625")
    assert int(timeline.get_attribute("data-bars")) < bars  # only what is in the window is drawn
    timeline.locator('[data-zoom="left"]').click()
    expect(timeline).to_have_attribute("data-view", "0.313-0.563")
    # Drag to pan: to the right reveals earlier times.
    box = timeline.locator("canvas").bounding_box()
    page.mouse.move(box["x"] + 300, box["y"] + 100)
    page.mouse.down()
    page.mouse.move(box["x"] + 500, box["y"] + 100, steps=5)
    page.mouse.up()
    start = float(timeline.get_attribute("data-view").split("-")[0])
    assert start < 0.313
    timeline.locator("canvas").focus()
    page.keyboard.press("0")
    expect(timeline).to_have_attribute("data-view", "0.000-1.000")
    assert int(timeline.get_attribute("data-bars")) == bars
