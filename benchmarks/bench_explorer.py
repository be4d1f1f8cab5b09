"""The trajectory explorer on recorded 10,000- and 50,000-node trajectories, in headless chromium.

Generates the trajectory (tests/browser/synthetic.py), serves static/ and it from 127.0.0.1, loads
the explorer's harness page and reports, as the median of a few fresh page loads:
- first paint / first contentful paint (the browser's paint timing entries);
- data loaded (fetch and JSON parse done), first rows rendered (all events folded into the model,
  header, notebook and the first virtualised tree rows in the DOM), ready (timeline, cost chart,
  coverage and flags drawn too), interactive (ready, then a click on a tree row has opened its
  details and the next frame painted);
- scrolling the tree: time per frame over 30 jumps, and how many rows the DOM holds;
- the tree's views: unfolding every batch (one row per sub-call) and sorting all sub-calls slowest
  first, each until painted.
Baseline in the same run (10,000 nodes only): the same rows rendered without virtualisation (every
row a DOM element), its build-to-paint time, scroll frame time and DOM size.
`--nodes 10000` runs one size only.

Writes benchmarks/results/explorer.json and prints a markdown table.
"""

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.browser.harness import launch_chromium, serve_static  # noqa: E402
from tests.browser.synthetic import make_trajectory  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "explorer.json"
SIZES = {10_000: 3, 50_000: 2}  # nodes: fresh page loads measured (the median is reported)
NAIVE_UP_TO = 10_000

READY = """() => document.querySelector("#explorer[data-ready='1']") !== null"""

MEASURE_LOAD = """async () => {
  const ex = window.RLMExplorer.current;
  const mark = (name) => performance.getEntriesByName(name)[0].startTime;
  const paints = Object.fromEntries(performance.getEntriesByType("paint").map((p) => [p.name, p.startTime]));
  // A click on a tree row, until its details are shown and the next frame has painted.
  const row = document.querySelectorAll("#subcall-tree .tree-row")[5];
  const clickStart = performance.now();
  row.click();
  const shown = ex.tree.selectedKey === row.dataset.key && document.getElementById("node-detail").dataset.item !== undefined;
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const interactive = performance.now();
  return {
    first_paint_ms: paints["first-paint"], first_contentful_paint_ms: paints["first-contentful-paint"],
    data_loaded_ms: mark("explorer-data"), first_rows_ms: mark("explorer-mounted"),
    ready_ms: mark("explorer-ready"), click_response_ms: interactive - clickStart,
    interactive_ms: interactive, click_opened_details: shown,
    events: ex.model.seqs.length, nodes: ex.model.nodeOrder.length, tree_rows: ex.tree.rows.length,
    dom_rows: document.querySelectorAll("#subcall-tree .tree-row").length,
    dom_elements: document.getElementsByTagName("*").length,
    js_heap_mb: performance.memory ? performance.memory.usedJSHeapSize / 1048576 : null,
  };
}"""

VIEWS = """async () => {
  // The tree's heavier views on every sub-call, each until the next frame has painted.
  const ex = window.RLMExplorer.current;
  const paint = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const timed = async (fn) => { const t = performance.now(); fn(); await paint(); return performance.now() - t; };
  const unfold_ms = await timed(() => ex.tree.setView({ groupBatches: false }));
  const unfolded_rows = ex.tree.rows.length;
  const sort_ms = await timed(() => ex.tree.setView({ sort: "slowest" }));
  const filter_ms = await timed(() => ex.tree.setView({ sort: "tree", filter: { status: "answered" } }));
  ex.tree.setView({ filter: { status: "" }, groupBatches: true });
  return { unfold_ms, unfolded_rows, sort_ms, filter_ms };
}"""

SCROLL = """async (selector) => {
  const vp = document.querySelector(selector);
  const frames = [];
  for (let i = 1; i <= 30; i += 1) {
    const t = performance.now();
    vp.scrollTop = (vp.scrollHeight - vp.clientHeight) * (i / 30);
    vp.dispatchEvent(new Event("scroll"));
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    frames.push(performance.now() - t);
  }
  frames.sort((a, b) => a - b);
  return { median_ms: frames[15], worst_ms: frames[frames.length - 1],
           dom_rows: vp.querySelectorAll(".tree-row").length };
}"""

NAIVE = """async () => {
  // Baseline: the same rows, painted by the same code, but all 10,000 in the DOM at once.
  const ex = window.RLMExplorer.current;
  const tree = ex.tree;
  const box = document.createElement("div");
  box.id = "naive-tree";
  box.className = "tree-viewport";
  box.style.contain = "none";
  document.querySelector("#subcall-tree").after(box);
  const start = performance.now();
  const rollups = ex.model.rollups();
  for (let r = 0; r < tree.rows.length; r += 1) {
    const row = document.createElement("div");
    row.className = "tree-row";
    tree.paintRow(row, r, rollups);
    row.removeAttribute("id");
    row.style.position = "relative";
    row.style.transform = "";
    box.append(row);
  }
  void box.offsetHeight;
  const built = performance.now();
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  return { build_ms: built - start, to_paint_ms: performance.now() - start,
           dom_rows: box.children.length, dom_elements: document.getElementsByTagName("*").length };
}"""


def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 1) if values else None


def measure(nodes: int, loads_wanted: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-explorer-") as tmp:
        data_dir = Path(tmp)
        started = time.monotonic()
        trajectory = make_trajectory(nodes + 1, prompt_words=60 if nodes <= 10_000 else 30)
        path = data_dir / "trajectory.json"
        path.write_text(json.dumps(trajectory))
        generate_s = time.monotonic() - started
        loads, scrolls, views, naive = [], [], [], []
        with serve_static(data_dir) as base, launch_chromium() as browser:
            for i in range(loads_wanted):
                context = browser.new_context(viewport={"width": 1440, "height": 900})
                page = context.new_page()
                page.goto(f"{base}/explorer/harness.html?src=/_data/trajectory.json")
                # Checked in the page on every frame: wait_for_selector polls from the driver with a
                # backoff of up to 500 ms, which used to add 0-500 ms of waiting to "interactive".
                page.wait_for_function(READY, polling="raf", timeout=300_000)
                loads.append(page.evaluate(MEASURE_LOAD))
                scrolls.append(page.evaluate(SCROLL, "#subcall-tree"))
                views.append(page.evaluate(VIEWS))
                if i == 0 and nodes <= NAIVE_UP_TO:
                    page.evaluate("() => window.RLMExplorer.current.tree.setView({ groupBatches: false })")
                    naive.append(page.evaluate(NAIVE))
                    naive[-1]["scroll"] = page.evaluate(SCROLL, "#naive-tree")
                context.close()

    first = loads[0]
    result = {
        "trajectory": {"nodes": first["nodes"], "events": first["events"], "tree_rows": first["tree_rows"],
                       "json_mb": round(path_size_mb(trajectory), 1), "generate_s": round(generate_s, 2)},
        "loads": loads_wanted,
        "explorer": {
            key: median([load[key] for load in loads])
            for key in ("first_paint_ms", "first_contentful_paint_ms", "data_loaded_ms", "first_rows_ms",
                        "ready_ms", "interactive_ms", "click_response_ms", "dom_rows", "dom_elements", "js_heap_mb")
        },
        "click_opened_details": all(load["click_opened_details"] for load in loads),
        "scroll": {"median_frame_ms": median([s["median_ms"] for s in scrolls]),
                   "worst_frame_ms": round(max(s["worst_ms"] for s in scrolls), 1),
                   "dom_rows": max(s["dom_rows"] for s in scrolls)},
        "views": {key: median([v[key] for v in views]) for key in ("unfold_ms", "unfolded_rows", "sort_ms", "filter_ms")},
        "raw_loads": loads,
    }
    if naive:
        result["naive_all_rows_in_dom"] = {
            "build_ms": round(naive[0]["build_ms"], 1), "to_paint_ms": round(naive[0]["to_paint_ms"], 1),
            "dom_rows": naive[0]["dom_rows"], "dom_elements": naive[0]["dom_elements"],
            "scroll_median_frame_ms": round(naive[0]["scroll"]["median_ms"], 1),
            "scroll_worst_frame_ms": round(naive[0]["scroll"]["worst_ms"], 1),
        }
    return result


def report(result: dict) -> None:
    e, s, v = result["explorer"], result["scroll"], result["views"]
    n = result.get("naive_all_rows_in_dom") or {}
    t = result["trajectory"]
    print(f"\nRecorded trajectory: {t['nodes']:,} sub-call nodes, {t['events']:,} events, {t['json_mb']} MB of JSON; "
          f"headless chromium, median of {result['loads']} fresh loads (ms from navigation start).\n")
    print("| measure | explorer (virtualised) | baseline: all rows in the DOM |")
    print("|---|---:|---:|")
    print(f"| first paint | {e['first_paint_ms']} | |")
    print(f"| data fetched and parsed | {e['data_loaded_ms']} | |")
    print(f"| all events processed + first tree rows rendered | {e['first_rows_ms']} | |")
    print(f"| charts, coverage, flags drawn | {e['ready_ms']} | |")
    print(f"| fully interactive (a row click opened its details, painted) | {e['interactive_ms']} | |")
    print(f"| click → details painted | {e['click_response_ms']} | |")
    print(f"| tree rows (batches folded) / in the DOM | {t['tree_rows']:,} / {e['dom_rows']} (max {s['dom_rows']} while scrolling) | "
          f"{n.get('dom_rows', '–')} |")
    print(f"| scroll jump → painted (2 frames), median / worst | {s['median_frame_ms']} / {s['worst_frame_ms']} | "
          f"{n.get('scroll_median_frame_ms', '–')} / {n.get('scroll_worst_frame_ms', '–')} |")
    print(f"| unfold every batch ({v['unfolded_rows']:,} rows) → painted | {v['unfold_ms']} | {n.get('to_paint_ms', '–')} |")
    print(f"| sort all sub-calls slowest first → painted | {v['sort_ms']} | |")
    print(f"| filter: answered only → painted | {v['filter_ms']} | |")
    print(f"| DOM elements on the page | {e['dom_elements']:,} | {n.get('dom_elements', '–')} |")
    print(f"| JS heap (MB) | {e['js_heap_mb']} | |")


def main() -> int:
    sizes = SIZES
    if "--nodes" in sys.argv:
        wanted = int(sys.argv[sys.argv.index("--nodes") + 1])
        sizes = {wanted: SIZES.get(wanted, 1)}
    results = {str(nodes): measure(nodes, loads) for nodes, loads in sizes.items()}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"sizes": results}, indent=2) + "\n")
    for result in results.values():
        report(result)
    return 0


def path_size_mb(trajectory) -> float:
    return len(json.dumps(trajectory)) / 1e6


if __name__ == "__main__":
    sys.exit(main())
