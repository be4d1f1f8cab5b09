// The sub-call tree, virtualised: the expanded tree is flattened into rows of fixed height and
// only the rows in (or near) the viewport exist in the DOM, so 10,000 nodes scroll smoothly.
// Keyboard: one tab stop (role=tree); ↑/↓/Home/End/PgUp/PgDn move, → expands, ← collapses or
// goes to the parent, Enter/Space toggles and opens the details.
import { esc, num, seconds, totalCost, usd, preview } from "./format.js";
import { isOffline } from "./model.js";

export const ROW_HEIGHT = 30;
const OVERSCAN = 8;

function keyOf(item) {
  return item.kind === "cell" ? `cell:${item.id}` : item.id;
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
    return item.depth < this.maxDepth;
  }

  hasChildren(item) {
    return item.kind === "cell" ? item.nodes.length > 0 : item.callKind === "rlm";
  }

  /** Flatten the expanded tree. O(visible items). */
  build() {
    const rows = [];
    const index = new Map();
    const model = this.model;
    const stack = [];
    const roots = model.treeRoots();
    for (let i = roots.length - 1; i >= 0; i -= 1) stack.push([roots[i], 0]);
    while (stack.length) {
      const [item, level] = stack.pop();
      index.set(keyOf(item), rows.length);
      rows.push({ item, level });
      if (this.hasChildren(item) && this.isExpanded(item)) {
        const children = model.treeChildren(item);
        for (let i = children.length - 1; i >= 0; i -= 1) stack.push([children[i], level + 1]);
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

  /** Row ids follow the deep links: `node-n17` for a sub-call, `tree-cell-c3` for a cell group. */
  rowId(item) {
    return item.kind === "cell" ? `tree-cell-${item.id}` : `node-${item.id}`;
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
    if (item.kind === "cell") {
      const running = item.nodes.reduce((n, x) => n + (x.result ? 0 : 1), 0);
      row.dataset.kind = "cell";
      row.innerHTML = `${indent}${caret}<span class="kind kind-cell">cell</span><span class="tid">${esc(item.id)}</span>` +
        `<span class="tmeta">${num(item.nodes.length)} sub-call${item.nodes.length === 1 ? "" : "s"}` +
        `${running ? ` · <span class="pill running">${num(running)} running</span>` : ""}` +
        ` · ${roll ? num(roll.tokens) : 0} tok · ${esc(roll ? totalCost(roll.cost, roll.unknown) : "")}</span>` +
        `<span class="tprev">${esc(preview(item.code, 90))}</span>`;
      return;
    }
    row.dataset.kind = item.callKind;
    const res = item.result;
    let status = '<span class="pill running">running</span>';
    let tokens = "";
    let cost = "";
    if (res) {
      status = res.error ? '<span class="pill bad">error</span>' : "";
      tokens = `${num(res.prompt_tokens + res.completion_tokens)} tok · ${seconds(res.latency_s)}`;
      cost = item.callKind === "rlm" && roll ? `Σ ${totalCost(roll.cost, roll.unknown)}` : usd(res.cost_usd);
    }
    const batch = item.batch_id ? ` <span class="muted">#${item.batch_index}</span>` : "";
    row.innerHTML = `${indent}${caret}<span class="kind kind-${item.callKind}">${item.callKind}</span>` +
      `<span class="tid">${esc(item.id)}${batch}</span>` +
      `<span class="tmodel">${esc(item.model.split("/").pop())}${isOffline(item.model) ? ' <span class="badge-offline" title="offline heuristic stand-in">heuristic</span>' : ""}</span>` +
      `<span class="tmeta">${status}${tokens}${cost ? ` · ${esc(cost)}` : ""}</span>` +
      `<span class="tprev">${esc(preview(item.prompt, 90))}</span>`;
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
    for (const a of this.model.ancestors(item)) this.overrides.set(keyOf(a), true);
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
