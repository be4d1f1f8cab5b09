"""The explorer tells the truth about what a run read: ranges the engine could not place (text that
occurs several times) stay off the coverage map and are counted apart, and a run that succeeded
without reading anything relevant is flagged."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_ambiguous_ranges_are_counted_apart_and_kept_off_the_map(page, harness):
    harness.open(page, "repeated")
    docs = page.locator(".cov-doc")
    expect(docs).to_have_count(3)
    minutes = docs.nth(0)
    # Two overlapping exact slices, 0–1000 and 500–1500, merge into one span of 1,500 characters;
    # the two reads of the thrice-repeated block add nothing to the map.
    expect(minutes.locator(".cov-pct")).to_have_text("15% covered · 1 span · 2 reads · 2 ambiguous")
    assert float(minutes.get_attribute("data-fraction")) == pytest.approx(1500 / 10_000)
    boilerplate = docs.nth(1)
    expect(boilerplate.locator(".cov-pct")).to_have_text("0% covered · 0 spans · 0 reads · 1 ambiguous")
    assert float(boilerplate.get_attribute("data-fraction")) == 0
    # The map is empty where only an ambiguous read happened.
    boilerplate.locator("canvas").click(position={"x": 3, "y": 5})
    expect(boilerplate.locator(".cov-hits")).to_contain_text("No sub-call read character")
    minutes.locator("canvas").click(position={"x": 3, "y": 5})
    expect(minutes.locator(".cov-hits a")).to_have_count(1)


def test_node_details_say_ambiguous_with_the_number_of_places(page, harness):
    data = harness.data["repeated"]
    harness.open(page, "repeated")
    started = [e["data"] for e in data["events"] if e["type"] == "subcall.started"]
    ambiguous = next(d["node_id"] for d in started if d["ranges"][0].get("places") == 3)
    exact = next(d["node_id"] for d in started if d["ranges"][0].get("start") == 500)
    page.goto(harness.url("repeated", f"#node-{ambiguous}"))
    page.wait_for_selector("#explorer[data-ready='1']")
    detail = page.locator("#node-detail")
    expect(detail).to_contain_text("Context read")
    expect(detail.locator(".range-ambiguous")).to_have_text("ambiguous (3 places)")
    expect(detail).not_to_contain_text("minutes.txt 0–")
    page.goto(harness.url("repeated", f"#node-{exact}"))
    page.wait_for_selector("#explorer[data-ready='1']")
    expect(page.locator("#node-detail")).to_contain_text("minutes.txt 500–1,500")
    expect(page.locator("#node-detail .range-ambiguous")).to_have_count(0)


def test_a_run_that_read_nothing_relevant_is_flagged(page, harness):
    harness.open(page, "repeated")
    flags = page.locator("#flags")
    expect(flags.locator('[data-flag="document-never-read"]')).to_contain_text("unread.txt")
    expect(flags.locator('[data-flag="document-never-read"]')).not_to_contain_text("boilerplate.txt")
    expect(flags.locator('[data-flag="all-not-found"]')).to_contain_text("Every sub-call answered NOT FOUND (5 of 5)")
    expect(flags.locator('[data-flag="answer-not-in-trajectory"]')).to_be_visible()


def test_a_run_that_found_its_answer_has_no_answer_quality_flags(page, harness):
    harness.open(page, "small")
    flags = page.locator("#flags")
    expect(flags.locator('[data-flag="cell-errors"]')).to_be_visible()
    for flag in ("document-never-read", "all-not-found", "answer-not-in-trajectory", "final-not-computed"):
        expect(flags.locator(f'[data-flag="{flag}"]')).to_have_count(0)


def test_sub_calls_without_any_range_leave_reading_unjudged(page, harness):
    harness.open(page, None)
    docs = [{"name": "a.txt", "chars": 100}, {"name": "b.txt", "chars": 100}]
    events = [
        {"seq": 1, "type": "run.started", "ts": 1.0, "data": {"question": "q", "mode": "rlm", "documents": docs}},
        {"seq": 2, "type": "root.turn", "ts": 2.0, "data": {"iteration": 1, "content": "go", "depth": 0}},
        {"seq": 3, "type": "cell.started", "ts": 2.1, "data": {"cell_id": "c1", "iteration": 1, "code": "x", "depth": 0}},
        {"seq": 4, "type": "subcall.started", "ts": 2.2, "data": {"node_id": "n1", "cell_id": "c1", "depth": 1, "kind": "llm", "prompt": "short slice", "ranges": []}},
        {"seq": 5, "type": "subcall.finished", "ts": 2.3, "data": {"node_id": "n1", "response": "The code is PLUM-42."}},
        {"seq": 6, "type": "cell.finished", "ts": 2.4, "data": {"cell_id": "c1", "stdout": "The code is PLUM-42."}},
        {"seq": 7, "type": "final.answer", "ts": 2.5, "data": {"answer": "PLUM-42", "source": "FINAL"}},
        {"seq": 8, "type": "run.finished", "ts": 2.6, "data": {"status": "succeeded"}},
    ]
    page.evaluate("events => window.loadTrajectory(events)", events)
    page.wait_for_selector("#explorer[data-ready='1']")
    expect(page.locator("#explorer")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#explorer")).to_have_attribute("data-flags", "")  # the flags were computed: none
    for flag in ("document-never-read", "all-not-found", "answer-not-in-trajectory"):
        expect(page.locator(f'#flags [data-flag="{flag}"]')).to_have_count(0)
