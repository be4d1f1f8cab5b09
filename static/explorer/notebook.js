// The root trajectory as a notebook: each root turn's reasoning, then the cells it ran with their
// output. Child RLMs (rlm_query) nest under the cell that started them. Rendering is incremental:
// events append or patch elements by id, nothing is rebuilt.
import { cacheNote, el, esc, modelHtml, num, seconds, totalCost, usd, preview } from "./format.js";
import { highlightPython } from "./highlight.js";
import { renderMarkdown } from "./markdown.js";
import { CALL_KINDS, EVENT } from "./vocabulary.js";

const OUTPUT_PREVIEW_LINES = 40;
const OUTPUT_PREVIEW_CHARS = 4000;

/** The messages a root turn sent that the previous turn did not, folded away under the turn's head. */
function inputHtml(messages) {
  if (!messages || !messages.length) return "";
  const chars = messages.reduce((n, m) => n + (m.chars ?? (m.content || "").length), 0);
  const parts = messages.map((m) => {
    const full = m.chars ?? (m.content || "").length;
    const cut = full > (m.content || "").length ? `\n… (${num(full - m.content.length)} more characters not recorded)` : "";
    return `<h4>${esc(m.role)} <span class="muted">${num(full)} characters</span></h4>` +
      `<pre class="nb-input-text">${esc(m.content || "")}${esc(cut)}</pre>`;
  });
  return `<details class="nb-input"><summary class="muted">Sent to the model: ${num(messages.length)} ` +
    `message${messages.length === 1 ? "" : "s"}, ${num(chars)} characters</summary>${parts.join("")}</details>`;
}

export class Notebook {
  constructor(root, model) {
    this.root = root;
    this.model = model;
    this.scopeEls = new Map([["root", root]]);
    this.turnEls = new Map();
    this.cellEls = new Map();
    this.childEls = new Map();
    this.dirtyCells = new Set();
    this.empty = el("p", { class: "empty nb-empty" }, "No root turns yet.");
    root.append(this.empty);
  }

  apply(changes) {
    for (const change of changes) {
      switch (change.kind) {
        case "turn": this.addTurn(change.item); break;
        case "cell": this.addCell(change.item); break;
        case "cell-finished": this.finishCell(change.item); break;
        case "note": this.addNote(change.item); break;
        case "node":
          if (change.item.callKind === CALL_KINDS.RLM) this.childScope(change.item.id);
          if (change.item.cell_id) this.dirtyCells.add(change.item.cell_id);
          break;
        case "node-finished":
          if (change.item.callKind === CALL_KINDS.RLM) this.updateChildSummary(change.item);
          if (change.item.cell_id) this.dirtyCells.add(change.item.cell_id);
          break;
        default: break;
      }
    }
    for (const id of this.dirtyCells) this.updateCellCounts(id);
    this.dirtyCells.clear();
    if (this.empty && this.model.turns.length) {
      this.empty.remove();
      this.empty = null;
    }
  }

  /** The element that holds a scope's turns: the page root, or a child RLM's <details>. */
  childScope(scope) {
    if (this.scopeEls.has(scope)) return this.scopeEls.get(scope);
    const node = this.model.nodes.get(scope);
    const details = el("details", { class: "nb-child", id: `rlm-${scope}`, open: true, "data-node-id": scope });
    const summary = el("summary", {});
    details.append(summary);
    const body = el("div", { class: "nb-child-body" });
    details.append(body);
    this.childEls.set(scope, details);
    this.scopeEls.set(scope, body);
    const cellEl = node && node.cell_id ? this.cellEls.get(node.cell_id) : null;
    (cellEl ? cellEl.querySelector(".nb-children") : this.root).append(details);
    if (node) this.updateChildSummary(node);
    return body;
  }

  updateChildSummary(node) {
    const details = this.childEls.get(node.id);
    if (!details) return;
    const r = node.result;
    let status = '<span class="pill running">running</span>';
    if (r) status = r.error ? `<span class="pill bad">failed</span>` : `<span class="pill ok">answered</span>`;
    const roll = this.model.rollups().get(node.id);
    const cost = roll ? totalCost(roll.cost, roll.unknown) : "–";
    details.querySelector("summary").innerHTML =
      `<strong>Child RLM <a href="#node-${esc(node.id)}">${esc(node.id)}</a></strong> · depth ${node.depth} · ` +
      `${modelHtml(node.model)} · ${status}${r ? ` · ${seconds(r.latency_s)} · ${esc(cost)}` : ""}` +
      `<div class="muted nb-child-prompt">${esc(preview(node.prompt, 160))}</div>`;
  }

  addTurn(turn) {
    const container = this.childScope(turn.scope);
    const art = el("section", { class: `nb-turn depth-${turn.depth}`, id: turn.id, "data-seq": turn.seq });
    let block = 0;
    const body = renderMarkdown(turn.content, {
      codeBlock: (lang, code) => {
        if (lang !== "repl") return null;
        block += 1;
        return `<p class="nb-blockref muted">▸ code block ${block} (${num(code.split("\n").length)} lines) runs as a cell below</p>`;
      },
    });
    const tokens = `${num(turn.prompt_tokens)}+${num(turn.completion_tokens)} tokens`;
    const cache = cacheNote(turn.cached_tokens, turn.cache_saving_usd);
    art.innerHTML =
      `<header class="nb-turn-head"><span class="nb-label">Turn ${turn.iteration}</span>` +
      `${turn.depth ? `<span class="muted">depth ${turn.depth}</span>` : ""}` +
      `${modelHtml(turn.model)}<span class="muted">${tokens} · ${usd(turn.cost_usd)}${cache ? ` <span class="nb-cache">(${esc(cache)})</span>` : ""} · ${seconds(turn.latency_s)}${turn.attempts > 1 ? ` (${turn.attempts} attempts)` : ""}</span>` +
      `${turn.forced ? '<span class="pill warn" title="Asked for a final answer at a limit">forced</span>' : ""}` +
      `</header>${inputHtml(turn.input)}<div class="nb-reasoning md">${body}</div><div class="nb-cells"></div>`;
    container.append(art);
    this.turnEls.set(turn.id, art);
  }

  /** Compactions, team helpers and carried variables: a line in the scope's flow, details folded. */
  addNote(note) {
    const container = this.childScope(note.scope);
    const d = note.data || {};
    const art = el("section", { class: `nb-session nb-${note.type.replace(".", "-")}`, id: note.id, "data-seq": note.seq });
    const names = (items) => (items || []).map((v) => `${esc(v.name)} <span class="muted">(${esc(v.type)})</span>`).join(", ");
    const skipped = (items) => (items && items.length
      ? `<details><summary class="muted">Not carried: ${num(items.length)}</summary><ul>${items.map((v) =>
        `<li><code>${esc(v.name)}</code> (${esc(v.type)}): ${esc(v.reason)}</li>`).join("")}</ul></details>` : "");
    let html;
    if (note.type === EVENT.ROOT_COMPACTED) {
      html = `<header class="nb-turn-head"><span class="nb-label">History compacted</span>` +
        `<span class="muted">before turn ${esc(d.iteration)} · ${num(d.tokens_before)} → ${num(d.tokens_after)} tokens ` +
        `(window ${num(d.window)}) · ${num(d.turns_compacted)} turns · ${usd(d.cost_usd)} · ${seconds(d.latency_s)}</span></header>` +
        `<details><summary class="muted">The summary the root wrote</summary><pre class="nb-input-text">${esc(d.summary || "")}</pre></details>`;
    } else if (note.type === EVENT.HELPERS_LOADED) {
      html = `<header class="nb-turn-head"><span class="nb-label">Team helpers</span></header><ul>${(d.helpers || []).map((h) =>
        `<li><code>${esc(h.signature || h.name)}</code> v${esc(h.version)}${h.error
          ? ` <span class="pill bad">failed to load</span><pre class="stderr">${esc(h.error)}</pre>`
          : (h.doc ? ` <span class="muted">${esc(preview(h.doc, 200))}</span>` : "")}</li>`).join("")}</ul>`;
    } else if (note.type === EVENT.SNAPSHOT_RESTORED) {
      html = `<header class="nb-turn-head"><span class="nb-label">Carried over from the previous run</span></header>` +
        (d.error ? `<p class="stderr">${esc(d.error)}</p>` : `<p>${names(d.variables) || '<span class="muted">no variables</span>'}</p>`) +
        skipped(d.not_carried);
    } else {
      html = `<header class="nb-turn-head"><span class="nb-label">REPL snapshot saved</span>` +
        `<span class="muted">${num((d.variables || []).length)} variables · ${num(d.bytes)} bytes</span></header>` +
        (d.error ? `<p class="stderr">${esc(d.error)}</p>` : `<p>${names(d.variables)}</p>`) + skipped(d.not_carried);
    }
    art.innerHTML = html;
    container.append(art);
  }

  addCell(cell) {
    const turnEl = cell.turn ? this.turnEls.get(cell.turn.id) : null;
    const container = turnEl ? turnEl.querySelector(".nb-cells") : this.childScope(cell.scope);
    const art = el("article", {
      class: "nb-cell running", id: `cell-${cell.id}`, "data-cell-id": cell.id, "data-seq": cell.seq, tabindex: "-1",
      "aria-label": `Cell ${cell.id}`,
    });
    art.innerHTML =
      `<header class="nb-cell-head"><a class="nb-label" href="#cell-${esc(cell.id)}">In [${esc(cell.id)}]</a>` +
      `<span class="muted">iteration ${cell.iteration} · block ${cell.index + 1}</span>` +
      `<span class="nb-status"><span class="pill running">running</span></span>` +
      `<span class="nb-subcalls"></span></header>` +
      `<pre class="code"><code>${highlightPython(cell.code)}</code></pre>` +
      `<div class="nb-output"></div><div class="nb-children"></div>`;
    container.append(art);
    this.cellEls.set(cell.id, art);
    if (cell.result) this.finishCell(cell);
  }

  finishCell(cell) {
    const art = this.cellEls.get(cell.id);
    if (!art || !cell.result) return;
    const r = cell.result;
    art.classList.remove("running");
    art.classList.toggle("failed", Boolean(r.error || r.killed));
    art.dataset.finishedSeq = cell.finishedSeq;
    let status = `<span class="pill ok">${seconds(r.duration_s)}</span>`;
    if (r.killed) status = `<span class="pill bad">killed after ${seconds(r.duration_s)}</span>`;
    else if (r.error) status = `<span class="pill bad">error · ${seconds(r.duration_s)}</span>`;
    art.querySelector(".nb-status").innerHTML = status;
    const out = art.querySelector(".nb-output");
    let html = "";
    if (r.stdout) {
      const lines = r.stdout.split("\n");
      if (lines.length > OUTPUT_PREVIEW_LINES || r.stdout.length > OUTPUT_PREVIEW_CHARS) {
        let head = lines.slice(0, OUTPUT_PREVIEW_LINES).join("\n");
        if (head.length > OUTPUT_PREVIEW_CHARS) head = head.slice(0, OUTPUT_PREVIEW_CHARS);
        html += `<pre class="stdout">${esc(head)}</pre><details class="nb-more"><summary>Show all output (${num(lines.length)} lines, ${num(r.stdout.length)} characters)</summary><pre class="stdout">${esc(r.stdout)}</pre></details>`;
      } else {
        html += `<pre class="stdout">${esc(r.stdout)}</pre>`;
      }
    } else if (!r.error) {
      html += '<p class="muted nb-nooutput">(no output)</p>';
    }
    if (r.truncated) {
      html += `<p class="nb-truncated" role="note">Output truncated: the root saw ${num(r.stdout.length)} of ${num(r.stdout_chars)} characters.</p>`;
    }
    if (r.error) html += `<pre class="stderr">${esc(r.error)}</pre>`;
    if (r.state_note) html += `<p class="muted nb-note">${esc(r.state_note)}</p>`;
    out.innerHTML = html;
  }

  updateCellCounts(cellId) {
    const cell = this.model.cells.get(cellId);
    const art = this.cellEls.get(cellId);
    if (!cell || !art || !cell.nodes.length) return;
    let running = 0;
    for (const n of cell.nodes) if (!n.result) running += 1;
    const roll = this.model.rollups().get(`cell:${cellId}`);
    const cost = roll ? totalCost(roll.cost, roll.unknown) : "";
    art.querySelector(".nb-subcalls").innerHTML =
      `<a href="#node-${esc(cell.nodes[0].id)}" data-tree-cell="${esc(cellId)}">${num(cell.nodes.length)} sub-call${cell.nodes.length === 1 ? "" : "s"}</a>` +
      `${running ? ` <span class="pill running">${num(running)} running</span>` : ""} <span class="muted">${esc(cost)}</span>`;
  }

  /** Open every collapsed ancestor of an element so a deep link can show it. */
  static reveal(target) {
    for (let p = target.parentElement; p; p = p.parentElement) if (p.tagName === "DETAILS") p.open = true;
  }
}
