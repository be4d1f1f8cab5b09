// The run tree, virtualised: run → root turn → cell → sub-call / child RLM → its turns → cells …
// The expanded tree is flattened into rows of fixed height and only the rows in (or near) the
// viewport exist in the DOM, so 50,000 nodes scroll smoothly. A batch fan-out folds into one row
// with its count. With a filter (errors, model, depth) or a sort (slowest, most expensive) the rows
// are the matching sub-calls as a flat list.
// Keyboard: one tab stop (role=tree); ↑/↓/Home/End/PgUp/PgDn move, → expands, ← collapses or
// goes to the parent, Enter/Space toggles and opens the details.
import { isNotFound } from "./analysis.js";
import { esc, num, preview, seconds, totalCost, usd } from "./format.js";
import { isOffline, TrajectoryModel } from "./model.js";
import { CALL_KINDS } from "./vocabulary.js";

export const ROW_HEIGHT = 30;
const OVERSCAN = 8;

function keyOf(item) {
  return item.kind === "batch" ? item.key : TrajectoryModel.keyOf(item);
}

/** answered / not found / error / running, for a sub-call row and the filters. */
export function nodeStatus(node) {
  const r = node.result;
  if (!r) return "running";
  if (r.error) return "error";
  // Kept on the node while its result is the same object: batch rows and filters ask for thousands.
  if (node._statusOf !== r) {
    node._statusOf = r;
    node._status = isNotFound(r.response) ? "not-found" : "answered";
  }
  return node._status;
}

const STATUS_PILL = {
  running: '<span class="pill running">running</span>',
  error: '<span class="pill bad">error</span>',
  "not-found": '<span class="pill warn">not found</span>',
  answered: '<span class="pill ok">answered</span>',
};

function nodeCost(node) {
  return node.result ? node.result.cost_usd ?? -1 : -1;
}

function latencyOf(node) {
  return node.result ? node.result.latency_s ?? 0 : -1;
}

export class SubcallTree {
  constructor(viewport, model, { onSelect = () => {} } = {}) {
    this.viewport = viewport;
    this.model = model;
    this.onSelect = onSelect;
    this.maxDepth = Infinity;   // items at depth < maxDepth start expanded
    this.overrides = new Map(); // key -> expanded
    this.rows = [];
    this.index = new Map();     // key -> row index
    this.active = -1;
    this.selectedKey = null;
    this.builtVersion = -1;
    this.groupBatches = true;
    this.filter = { status: "", model: "", depth: "" };
    this.sort = "tree";           // or "slowest", "costliest"
    this.batches = new Map();     // batch key -> batch item, rebuilt with the rows
    viewport.setAttribute("role", "tree");
    viewport.setAttribute("tabindex", "0");
    viewport.setAttribute("aria-label", "Sub-call tree");
    this.spacer = document.createElement("div");
    this.spacer.className = "tree-spacer";
    viewport.append(this.spacer);
    this.pool = [];
    viewport.addEventListener("scroll", () => this.schedule(), { passive: true });
    viewport.addEventListener("click", (e) => this.onClick(e));
    viewport.addEventListener("keydown", (e) => this.onKey(e));
    if (typeof ResizeObserver !== "undefined") new ResizeObserver(() => this.schedule()).observe(viewport);
  }

  isExpanded(item) {
    const key = keyOf(item);
    if (this.overrides.has(key)) return this.overrides.get(key);
    if (item.kind === "batch") return false; // a fan-out stays one row until asked
    // A turn shows its cells down to "0 (cells only)"; cells and rlm nodes open above maxDepth.
    return item.kind === "turn" ? item.depth <= this.maxDepth : item.depth < this.maxDepth;
  }

  hasChildren(item) {
    if (item.kind === "turn") return item.cells.length > 0;
    if (item.kind === "cell") return item.nodes.length > 0;
    if (item.kind === "batch") return true;
    return item.callKind === CALL_KINDS.RLM;
  }

  get flat() {
    return this.sort !== "tree" || Boolean(this.filter.status || this.filter.model || this.filter.depth);
  }

  /** A cell's children with each batch of two or more sub-calls folded into one batch item. */
  childrenOf(item) {
    if (item.kind === "batch") return item.nodes;
    const children = this.model.treeChildren(item);
    if (item.kind !== "cell" || !this.groupBatches) return children;
    const out = [];
    const seen = new Map();
    for (const n of children) {
      if (!n.batch_id) {
        out.push(n);
        continue;
      }
      let batch = seen.get(n.batch_id);
      if (!batch) {
        const key = `batch:${item.id}:${n.batch_id}`;
        batch = { kind: "batch", key, id: n.batch_id, cell: item, depth: n.depth, nodes: [] };
        seen.set(n.batch_id, batch);
        out.push(batch);
      }
      batch.nodes.push(n);
    }
    // A "batch" of one is just a call.
    return out.map((x) => {
      if (x.kind !== "batch") return x;
      if (x.nodes.length === 1) return x.nodes[0];
      this.batches.set(x.key, x);
      return x;
    });
  }

  /** The sub-calls that pass the filters, in the chosen order: the flat view. */
  flatRows() {
    const f = this.filter;
    const depth = f.depth === "" ? null : Number(f.depth);
    let nodes = this.model.nodeOrder.filter((n) =>
      (!f.status || nodeStatus(n) === f.status) && (!f.model || n.model === f.model) && (depth === null || n.depth === depth));
    if (this.sort === "slowest") nodes = nodes.slice().sort((a, b) => latencyOf(b) - latencyOf(a));
    else if (this.sort === "costliest") nodes = nodes.slice().sort((a, b) => nodeCost(b) - nodeCost(a));
    return nodes.map((item) => ({ item, level: 0 }));
  }

  setView({ sort, filter, groupBatches } = {}) {
    if (sort !== undefined) this.sort = sort;
    if (filter !== undefined) this.filter = { ...this.filter, ...filter };
    if (groupBatches !== undefined) this.groupBatches = groupBatches;
    this.viewport.scrollTop = 0;
    this.build();
  }

  /** Flatten the expanded tree. O(visible items). */
  build() {
    let rows = [];
    const index = new Map();
    const model = this.model;
    this.batches = new Map();
    if (this.flat) {
      rows = this.flatRows();
      rows.forEach((row, i) => index.set(keyOf(row.item), i));
    } else {
      const stack = [];
      const roots = model.treeRoots();
      for (let i = roots.length - 1; i >= 0; i -= 1) stack.push([roots[i], 0]);
      while (stack.length) {
        const [item, level] = stack.pop();
        index.set(keyOf(item), rows.length);
        rows.push({ item, level });
        if (this.hasChildren(item) && this.isExpanded(item)) {
          const children = this.childrenOf(item);
          for (let i = children.length - 1; i >= 0; i -= 1) stack.push([children[i], level + 1]);
        }
      }
    }
    const activeKey = this.active >= 0 && this.rows[this.active] ? keyOf(this.rows[this.active].item) : null;
    this.rows = rows;
    this.index = index;
    this.active = activeKey && index.has(activeKey) ? index.get(activeKey) : Math.min(this.active, rows.length - 1);
    this.spacer.style.height = `${rows.length * ROW_HEIGHT}px`;
    this.builtVersion = model.version;
    this.viewport.dataset.rows = rows.length;
    this.render();
  }

  refresh() {
    if (this.builtVersion !== this.model.version) this.build();
    else this.render();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  render() {
    const vp = this.viewport;
    const height = vp.clientHeight || 480;
    const first = Math.max(0, Math.floor(vp.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(this.rows.length, Math.ceil((vp.scrollTop + height) / ROW_HEIGHT) + OVERSCAN);
    const needed = last - first;
    while (this.pool.length < needed) {
      const row = document.createElement("div");
      row.className = "tree-row";
      row.setAttribute("role", "treeitem");
      vp.append(row);
      this.pool.push(row);
    }
    const rollups = this.model.rollups();
    for (let i = 0; i < this.pool.length; i += 1) {
      const row = this.pool[i];
      const r = first + i;
      if (i >= needed) {
        if (row.style.display !== "none") row.style.display = "none";
        row.removeAttribute("id");
        continue;
      }
      row.style.display = "";
      this.paintRow(row, r, rollups);
    }
    // Rows are recycled: anything that decorates them listens for this and decorates again.
    vp.dispatchEvent(new CustomEvent("rlm:rows-rendered", { detail: { first, last } }));
    if (this.active >= 0 && this.rows[this.active]) {
      vp.setAttribute("aria-activedescendant", this.rowId(this.rows[this.active].item));
    }
  }

  /** Row ids follow the deep links: `node-n17` for a sub-call, `tree-cell-c3` for a cell group,
   * `tree-turn-root-2` for a turn, `tree-batch-c3-b7` for a folded batch. */
  rowId(item) {
    if (item.kind === "cell") return `tree-cell-${item.id}`;
    if (item.kind === "turn") return `tree-${item.id}`;
    if (item.kind === "batch") return `tree-batch-${item.cell.id}-${item.id}`;
    return `node-${item.id}`;
  }

  paintRow(row, r, rollups) {
    const { item, level } = this.rows[r];
    const key = keyOf(item);
    const stamp = `${key}|${r}|${this.model.version}|${this.active === r}|${this.selectedKey === key}|${this.isExpanded(item)}`;
    if (row._stamp === stamp) return;
    row._stamp = stamp;
    row.style.transform = `translateY(${r * ROW_HEIGHT}px)`;
    row.id = this.rowId(item);
    row.dataset.key = key;
    row.dataset.index = r;
    row.setAttribute("aria-level", level + 1);
    row.setAttribute("aria-selected", this.selectedKey === key ? "true" : "false");
    const expandable = this.hasChildren(item);
    if (expandable) row.setAttribute("aria-expanded", this.isExpanded(item) ? "true" : "false");
    else row.removeAttribute("aria-expanded");
    row.classList.toggle("active", this.active === r);
    row.classList.toggle("selected", this.selectedKey === key);
    const caret = expandable ? `<span class="caret" data-toggle="1" aria-hidden="true">${this.isExpanded(item) ? "▾" : "▸"}</span>` : '<span class="caret"></span>';
    const indent = `<span class="indent" style="width:${level * 14}px"></span>`;
    const roll = rollups.get(key);
    row.dataset.kind = item.kind === "node" ? item.callKind : item.kind;
    if (item.kind === "turn") {
      row.innerHTML = `${indent}${caret}<span class="kind kind-turn">turn</span><span class="tid">${item.node_id ? `${esc(item.node_id)} ` : ""}#${item.iteration}</span>` +
        `<span class="tmeta">${num(item.prompt_tokens + item.completion_tokens)} tok · ${seconds(item.latency_s)} · ${esc(usd(item.cost_usd))}` +
        `${item.cells.length ? ` · Σ ${esc(roll ? totalCost(roll.cost, roll.unknown) : "")}` : ""}</span>` +
        `<span class="tprev">${esc(preview(item.content, 120))}</span>`;
      return;
    }
    if (item.kind === "cell") {
      const running = item.nodes.reduce((n, x) => n + (x.result ? 0 : 1), 0);
      const failed = item.result && (item.result.error || item.result.killed);
      row.innerHTML = `${indent}${caret}<span class="kind kind-cell">cell</span><span class="tid">${esc(item.id)}</span>` +
        `<span class="tmeta">${failed ? STATUS_PILL.error + " " : ""}${num(item.nodes.length)} sub-call${item.nodes.length === 1 ? "" : "s"}` +
        `${running ? ` · <span class="pill running">${num(running)} running</span>` : ""}` +
        ` · ${roll ? num(roll.tokens) : 0} tok · ${esc(roll ? totalCost(roll.cost, roll.unknown) : "")}</span>` +
        `<span class="tprev">${esc(preview(item.result ? item.result.error || item.result.stdout || item.code : item.code, 90))}</span>`;
      return;
    }
    if (item.kind === "batch") {
      // Summed once per build (batch items are rebuilt with the rows), not on every repaint.
      if (!item.summary) {
        const sum = { counts: { answered: 0, "not-found": 0, error: 0, running: 0 }, tokens: 0, cost: 0, unknown: 0 };
        for (const n of item.nodes) {
          sum.counts[nodeStatus(n)] += 1;
          const nr = rollups.get(n.id);
          if (nr) {
            sum.tokens += nr.tokens;
            sum.cost += nr.cost;
            sum.unknown += nr.unknown;
          }
        }
        item.summary = sum;
      }
      const { counts, tokens, cost, unknown } = item.summary;
      const parts = [["answered", "ok"], ["not-found", "warn"], ["error", "bad"], ["running", "running"]]
        .filter(([k]) => counts[k]).map(([k, cls]) => `<span class="pill ${cls}">${num(counts[k])} ${k.replace("-", " ")}</span>`);
      row.innerHTML = `${indent}${caret}<span class="kind kind-batch">batch</span><span class="tid">×${num(item.nodes.length)}</span>` +
        `<span class="tmeta">${parts.join(" ")} · ${num(tokens)} tok · ${esc(totalCost(cost, unknown))}</span>` +
        `<span class="tprev">${esc(preview(item.nodes[0].prompt, 90))}</span>`;
      return;
    }
    const res = item.result;
    const status = item.callKind === CALL_KINDS.RLM && res && !res.error ? STATUS_PILL.answered : STATUS_PILL[nodeStatus(item)];
    let tokens = "";
    let cost = "";
    if (res) {
      tokens = ` ${num(res.prompt_tokens + res.completion_tokens)} tok · ${seconds(res.latency_s)}`;
      cost = item.callKind === CALL_KINDS.RLM && roll ? `Σ ${totalCost(roll.cost, roll.unknown)}` : usd(res.cost_usd);
    }
    const batch = item.batch_id ? ` <span class="muted">#${item.batch_index}</span>` : "";
    const shown = res ? res.error || res.response : item.prompt;
    row.innerHTML = `${indent}${caret}<span class="kind kind-${item.callKind}">${item.callKind}</span>` +
      `<span class="tid">${esc(item.id)}${batch}</span>` +
      `<span class="tmodel">${esc(item.model.split("/").pop())}${isOffline(item.model) ? ' <span class="badge-offline" title="offline heuristic stand-in">heuristic</span>' : ""}</span>` +
      `<span class="tmeta">${status}${tokens}${cost ? ` · ${esc(cost)}` : ""}</span>` +
      `<span class="tprev">${res ? "→ " : ""}${esc(preview(shown, 90))}</span>`;
  }

  toggle(r, value = null) {
    const row = this.rows[r];
    if (!row || !this.hasChildren(row.item)) return;
    const next = value === null ? !this.isExpanded(row.item) : value;
    this.overrides.set(keyOf(row.item), next);
    this.build();
  }

  setActive(r, { scroll = true } = {}) {
    if (!this.rows.length) return;
    this.active = Math.max(0, Math.min(this.rows.length - 1, r));
    if (scroll) this.scrollToRow(this.active);
    this.render();
  }

  scrollToRow(r, center = false) {
    const vp = this.viewport;
    const top = r * ROW_HEIGHT;
    const h = vp.clientHeight || 480;
    if (center) vp.scrollTop = Math.max(0, top - h / 2 + ROW_HEIGHT / 2);
    else if (top < vp.scrollTop) vp.scrollTop = top;
    else if (top + ROW_HEIGHT > vp.scrollTop + h) vp.scrollTop = top + ROW_HEIGHT - h;
  }

  select(r) {
    const row = this.rows[r];
    if (!row) return;
    this.selectedKey = keyOf(row.item);
    this.active = r;
    this.render();
    this.onSelect(row.item);
  }

  /** Expand the ancestors of an item, scroll it to the middle and select it. */
  reveal(item) {
    if (this.flat && !this.index.has(keyOf(item))) {
      this.setView({ sort: "tree", filter: { status: "", model: "", depth: "" } });
      if (this.onViewReset) this.onViewReset();
    }
    for (const a of this.model.ancestors(item)) this.overrides.set(keyOf(a), true);
    if (item.kind === "node" && item.batch_id && item.cell_id) this.overrides.set(`batch:${item.cell_id}:${item.batch_id}`, true);
    this.build();
    const r = this.index.get(keyOf(item));
    if (r === undefined) return false;
    this.scrollToRow(r, true);
    this.select(r);
    return true;
  }

  setMaxDepth(depth) {
    this.maxDepth = depth;
    this.overrides.clear();
    this.build();
  }

  onClick(e) {
    const row = e.target.closest(".tree-row");
    if (!row) return;
    const r = Number(row.dataset.index);
    if (e.target.closest("[data-toggle]")) this.toggle(r);
    else this.select(r);
    this.viewport.focus({ preventScroll: true });
  }

  onKey(e) {
    const page = Math.max(1, Math.floor((this.viewport.clientHeight || 480) / ROW_HEIGHT) - 1);
    const a = this.active < 0 ? 0 : this.active;
    const row = this.rows[a];
    let handled = true;
    switch (e.key) {
      case "ArrowDown": this.setActive(this.active < 0 ? 0 : a + 1); break;
      case "ArrowUp": this.setActive(a - 1); break;
      case "Home": this.setActive(0); break;
      case "End": this.setActive(this.rows.length - 1); break;
      case "PageDown": this.setActive(a + page); break;
      case "PageUp": this.setActive(a - page); break;
      case "ArrowRight":
        if (row && this.hasChildren(row.item) && !this.isExpanded(row.item)) this.toggle(a, true);
        else this.setActive(a + 1);
        break;
      case "ArrowLeft":
        if (row && this.hasChildren(row.item) && this.isExpanded(row.item)) this.toggle(a, false);
        else if (row) {
          for (let p = a - 1; p >= 0; p -= 1) {
            if (this.rows[p].level < row.level) {
              this.setActive(p);
              break;
            }
          }
        }
        break;
      case "Enter":
      case " ":
        if (row) {
          if (this.hasChildren(row.item)) this.toggle(a);
          this.select(this.active);
        }
        break;
      default: handled = false;
    }
    if (handled) e.preventDefault();
  }
}
