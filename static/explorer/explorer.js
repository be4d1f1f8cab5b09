// The trajectory explorer. `mount(element, {events, run, documents, ...})` renders a run from its
// events alone; `explorer.ingest(events)` streams more in (the live page feeds it from the
// websocket). Views: header and counters, failure flags, search, timeline, cost chart, context
// coverage, the notebook of root turns and cells, and the virtualised sub-call tree with details.
import { coverage, flags as findFlags, isExactRange, nodesAt, search } from "./analysis.js";
import { CostChart, Timeline } from "./charts.js";
import { cacheNote, clock, el, esc, modelHtml, num, OFFLINE_NOTE, seconds, totalCost, usd } from "./format.js";
import { renderMarkdown } from "./markdown.js";
import { TrajectoryModel } from "./model.js";
import { Notebook } from "./notebook.js";
import { nodeStatus, SubcallTree } from "./tree.js";
import { CALL_KINDS, MODES, STATUSES } from "./vocabulary.js";

const DETAIL_PREVIEW_CHARS = 4000;

const LAYOUT = `
<section class="rx-header card" aria-labelledby="rx-question">
  <div class="rx-titlebar">
    <span class="status" data-field="status"></span>
    <span class="rx-conn muted" data-field="connection" aria-live="polite"></span>
    <span class="rx-actions" data-field="actions"></span>
  </div>
  <h1 id="rx-question" class="rx-question" data-field="question"></h1>
  <p class="rx-queue muted" data-field="queue" hidden></p>
  <dl class="rx-counters" aria-label="Run counters">
    <div><dt>Iterations</dt><dd data-counter="iterations">0</dd></div>
    <div><dt>Sub-calls</dt><dd data-counter="subcalls">0</dd></div>
    <div><dt>Tokens</dt><dd data-counter="tokens">0</dd></div>
    <div><dt>Cost</dt><dd data-counter="cost">$0</dd></div>
    <div data-counter-box="cache" hidden><dt>Prompt cache</dt><dd data-counter="cache"></dd></div>
    <div><dt>Elapsed</dt><dd data-counter="elapsed">00:00</dd></div>
    <div><dt>Depth</dt><dd data-counter="depth">0</dd></div>
  </dl>
  <p class="rx-settings muted" data-field="settings"></p>
  <p class="rx-documents muted" data-field="documents"></p>
  <div class="rx-failure error" data-field="failure" hidden></div>
  <div class="rx-final" data-field="final-box" hidden>
    <h2>Final answer <span class="muted rx-final-source" data-field="final-source"></span></h2>
    <div class="md" id="final-answer"></div>
  </div>
</section>
<section class="card rx-flags" id="flags" aria-labelledby="rx-flags-h" hidden>
  <h2 id="rx-flags-h">Flags</h2><ul class="plain" data-field="flags"></ul>
</section>
<section class="card rx-search" role="search">
  <label for="search-input" class="visually-hidden">Search the trajectory</label>
  <input type="search" id="search-input" placeholder="Search code, outputs, prompts, responses…  ( / )" autocomplete="off">
  <p class="muted rx-search-count" id="search-count" aria-live="polite"></p>
  <ol class="rx-search-results" id="search-results"></ol>
</section>
<div class="rx-overview">
  <section class="card rx-timeline" aria-labelledby="rx-tl-h">
    <h2 id="rx-tl-h">Timeline <span class="muted legend"><i class="sw turn"></i>turn <i class="sw cell"></i>cell <i class="sw llm"></i>llm <i class="sw rlm"></i>rlm <i class="sw error"></i>error</span></h2>
    <div id="timeline" class="chart"></div>
  </section>
  <div class="rx-overview-side">
    <section class="card" aria-labelledby="rx-cost-h">
      <h2 id="rx-cost-h">Cost and tokens over time</h2>
      <div id="cost-chart" class="chart"></div>
    </section>
    <section class="card" aria-labelledby="rx-cov-h">
      <h2 id="rx-cov-h">Context coverage <span class="muted">what the sub-calls read</span></h2>
      <div id="coverage"></div>
    </section>
  </div>
</div>
<div class="rx-main">
  <section class="card rx-notebook" aria-labelledby="rx-nb-h">
    <h2 id="rx-nb-h">Trajectory <span class="muted">(j / k move between cells)</span></h2>
    <div id="notebook"></div>
  </section>
  <aside class="rx-side">
    <section class="card rx-tree" aria-labelledby="rx-tree-h" id="tree-card">
      <h2 id="rx-tree-h">Run tree <span class="muted" data-field="tree-count"></span></h2>
      <div class="row rx-tree-controls">
        <label for="tree-depth">Expand to depth</label>
        <select id="tree-depth"><option value="all">all</option><option value="0">0 (cells only)</option><option value="1">1</option><option value="2">2</option><option value="3">3</option></select>
        <label class="check"><input type="checkbox" id="tree-batches" checked> Fold batches</label>
        <button type="button" class="small" data-action="expand-all">Expand all</button>
        <button type="button" class="small" data-action="collapse-all">Collapse all</button>
      </div>
      <div class="row rx-tree-controls" role="group" aria-label="Sort and filter sub-calls">
        <label for="tree-sort">Show</label>
        <select id="tree-sort"><option value="tree">the tree</option><option value="slowest">slowest sub-calls first</option><option value="costliest">most expensive first</option></select>
        <label for="tree-status">Status</label>
        <select id="tree-status"><option value="">any</option><option value="error">errors only</option><option value="not-found">not found</option><option value="answered">answered</option><option value="running">running</option></select>
        <label for="tree-model">Model</label>
        <select id="tree-model"><option value="">any</option></select>
        <label for="tree-level">Depth</label>
        <select id="tree-level"><option value="">any</option></select>
      </div>
      <div id="subcall-tree" class="tree-viewport"></div>
    </section>
    <section class="card rx-detail" id="node-detail" aria-live="polite" tabindex="-1">
      <p class="muted">Select a turn, cell or sub-call in the tree (or a bar in the timeline) to see its input, output and metadata.</p>
    </section>
  </aside>
</div>`;

/** One range of a sub-call's prompt: exact offsets, or "ambiguous (N places)" when the engine
 * could not tell which copy of a repeated block was sent. */
function rangeHtml(g, docs) {
  const name = esc(docs[g.doc] ? docs[g.doc].name : `doc ${g.doc}`);
  if (isExactRange(g)) return `${name} ${num(g.start)}–${num(g.end)}`;
  const places = g.places ? `${num(g.places)} places` : "place unknown";
  return `${name} <span class="pill warn range-ambiguous" title="This text occurs more than once in the document: which copy was read is not known, so it is left out of the coverage map.">ambiguous (${places})</span>${g.chars ? ` ${num(g.chars)} chars` : ""}`;
}

const STATUS_HTML = {
  answered: '<span class="pill ok">answered</span>', "not-found": '<span class="pill warn">not found</span>',
  error: '<span class="pill bad">error</span>', running: '<span class="pill running">running</span>',
};

/** The detail pane's "Prompt cache" row of a turn or a finished sub-call: none when it has nothing to tell. */
function cacheRow(call) {
  const note = call ? cacheNote(call.cached_tokens, call.cache_saving_usd) : "";
  return note ? [["Prompt cache", esc(note)]] : [];
}

function parsesAsJson(text) {
  const t = (text || "").trim();
  if (!(t.startsWith("{") || t.startsWith("["))) return false;
  try {
    JSON.parse(t);
    return true;
  } catch {
    return false;
  }
}

/** A text as plain text, rendered markdown or pretty JSON; long texts cut unless `full`. */
function renderText(t, format, full) {
  const text = full || t.text.length <= DETAIL_PREVIEW_CHARS ? t.text : t.text.slice(0, DETAIL_PREVIEW_CHARS);
  if (format === "markdown") return `<div class="md detail-text ${t.cls}">${renderMarkdown(text)}</div>`;
  if (format === "json" && parsesAsJson(t.text)) return `<pre class="detail-text ${t.cls}">${esc(JSON.stringify(JSON.parse(t.text), null, 2))}</pre>`;
  return `<pre class="detail-text ${t.cls}">${esc(text)}</pre>`;
}

/** One tab's text with its format switch (text / markdown / JSON when it parses) and copy button. */
function textBlock(t) {
  const json = parsesAsJson(t.text);
  const format = json ? "json" : t.format;
  const formats = [["text", "Text"], ["markdown", "Markdown"], ...(json ? [["json", "JSON"]] : [])];
  const capped = t.full > t.text.length ? `<p class="muted">The event holds the first ${num(t.text.length)} of ${num(t.full)} characters.</p>` : "";
  const more = t.text.length > DETAIL_PREVIEW_CHARS && format !== "json"
    ? `<button type="button" class="small" data-expand="${t.cls}" aria-expanded="false">Show all ${num(t.text.length)} characters</button>` : "";
  return `<div class="detail-toolbar"><span class="muted">${num(t.full)} characters</span>` +
    `<span class="detail-formats" role="group" aria-label="Show as">${formats.map(([f, label]) =>
      `<button type="button" class="small" data-format="${f}" aria-pressed="${f === format}">${label}</button>`).join("")}</span>` +
    `<button type="button" class="small" data-copy="${t.cls === "prompt" || t.cls.endsWith("input") ? "input" : "output"}">Copy</button></div>` +
    `<div class="detail-body" data-format="${format}">${renderText(t, format, false)}</div>${more}${capped}`;
}

/** The item's own fields (no links to other objects), for "Copy as JSON". */
function plainItem(item) {
  const out = {};
  for (const [k, v] of Object.entries(item)) {
    if (v === null || ["string", "number", "boolean"].includes(typeof v)) out[k] = v;
    else if (k === "result" || k === "ranges" || k === "input") out[k] = v;
  }
  if (item.kind === "batch") out.nodes = item.nodes.map((n) => n.id);
  return out;
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    let ok;
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

function throttle(lastKey, ms, obj) {
  const now = performance.now();
  if (obj[lastKey] && now - obj[lastKey] < ms) return false;
  obj[lastKey] = now;
  return true;
}

export class Explorer {
  constructor(root, options = {}) {
    this.root = root;
    this.options = options;
    this.model = new TrajectoryModel({ run: options.run || {}, documents: options.documents || [] });
    this.connection = "";
    root.classList.add("rx");
    root.innerHTML = LAYOUT;
    this.q = (sel) => root.querySelector(sel);
    this.notebook = new Notebook(this.q("#notebook"), this.model);
    this.tree = new SubcallTree(this.q("#subcall-tree"), this.model, { onSelect: (item) => this.showDetail(item) });
    this.timeline = new Timeline(this.q("#timeline"), this.model, { onPick: (item) => this.pick(item) });
    this.costChart = new CostChart(this.q("#cost-chart"), this.model);
    this.detailItem = null;
    this.pendingHash = null;
    this.bindControls();
    this.renderStaticHeader();
    this.rendered = false;
    this.readyPromise = new Promise((resolve) => { this.resolveReady = resolve; });
    if (options.events && options.events.length) this.model.ingest(options.events);
    this.flush(true);
    this.tick = setInterval(() => this.onTick(), 1000);
    if (typeof ResizeObserver !== "undefined") {
      let width = root.clientWidth;
      new ResizeObserver(() => {
        if (Math.abs(root.clientWidth - width) > 4) {
          width = root.clientWidth;
          this.drawCharts(true);
        }
      }).observe(root);
    }
  }

  get ready() {
    return this.readyPromise;
  }

  // --- input -----------------------------------------------------------------------------------

  ingest(events) {
    const n = this.model.ingest(events);
    if (n) this.schedule();
    return n;
  }

  setConnection(text) {
    this.connection = text;
    const f = this.q('[data-field="connection"]');
    if (f) f.textContent = text;
  }

  setStatus(status) {
    if (status && !this.model.isFinished && status !== this.model.run.status) {
      this.model.run.status = status;
      this.schedule();
    }
  }

  // --- rendering -------------------------------------------------------------------------------

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    const run = () => {
      if (!this.scheduled) return;
      this.scheduled = false;
      this.flush(false);
    };
    requestAnimationFrame(run);
    setTimeout(run, 250); // rAF pauses in background tabs; keep the page current anyway
  }

  flush(initial) {
    const m = this.model;
    const changes = m.drainChanges();
    this.notebook.apply(changes);
    this.renderHeader();
    const live = !m.isFinished;
    const big = m.nodeOrder.length > 2000;
    if (initial || !live || !big || throttle("_tree", 300, this)) this.tree.refresh();
    else this.scheduleLater();
    this.q('[data-field="tree-count"]').textContent = m.nodeOrder.length ? `${num(m.nodeOrder.length)} sub-calls` : "no sub-calls yet";
    this.fillFilterOptions();
    if (this.detailItem) this.refreshDetail();
    this.root.dataset.lastSeq = m.lastSeq;
    this.root.dataset.events = m.seqs.length;
    this.root.dataset.status = m.run.status;
    this.root.dataset.nodes = m.nodeOrder.length;
    this.root.dataset.cells = m.cellOrder.length;
    if (initial) {
      // Charts, coverage and flags after the first paint: they are not needed to start reading.
      setTimeout(() => {
        this.drawCharts(true);
        this.renderCoverage();
        this.renderFlags();
        this.rendered = true;
        this.root.dataset.ready = "1";
        this.resolveReady(this);
        if (this.pendingHash || location.hash) this.navigate(this.pendingHash || location.hash);
      }, 0);
    } else if (this.rendered) {
      this.drawCharts(!live || !big);
      if (!live || throttle("_cov", big ? 2000 : 500, this)) this.renderCoverage();
      if (!live || throttle("_flags", big ? 5000 : 1500, this)) this.renderFlags();
      else this.scheduleLater();
      if (this.pendingHash) this.navigate(this.pendingHash);
    }
  }

  /** The model and depth filters offer what the run has: rescanned only when the node count changed. */
  fillFilterOptions() {
    const m = this.model;
    if (this._filterNodes === m.nodeOrder.length) return;
    this._filterNodes = m.nodeOrder.length;
    const models = new Set();
    const depths = new Set();
    for (const n of m.nodeOrder) {
      models.add(n.model);
      depths.add(n.depth);
    }
    const fill = (select, values, label) => {
      const keep = select.value;
      const have = [...select.options].slice(1).map((o) => o.value);
      const want = [...values].map(String);
      if (have.join("|") === want.join("|")) return;
      select.innerHTML = `<option value="">any</option>${want.map((v) => `<option value="${esc(v)}">${esc(label(v))}</option>`).join("")}`;
      select.value = want.includes(keep) ? keep : "";
    };
    fill(this.q("#tree-model"), [...models].sort(), (v) => v);
    fill(this.q("#tree-level"), [...depths].sort((a, b) => a - b), (v) => v);
  }

  /** A throttled view skipped this frame: make sure a later flush catches it up. */
  scheduleLater() {
    clearTimeout(this._later);
    this._later = setTimeout(() => this.flush(false), 600);
  }

  drawCharts(force) {
    if (!force && !throttle("_charts", 700, this)) return;
    const now = Date.now() / 1000;
    this.timeline.draw(now);
    this.costChart.draw(now);
  }

  onTick() {
    const m = this.model;
    this.renderCounters();
    if (!m.isFinished && m.run.startedTs && this.rendered) this.drawCharts(false);
    if (m.isFinished && this.rendered && !this.finalTick) {
      this.finalTick = true;
      this.renderCounters();
    }
  }

  renderStaticHeader() {
    const actions = this.q('[data-field="actions"]');
    const o = this.options;
    let html = "";
    if (o.trajectoryUrl) html += `<a class="button small" href="${esc(o.trajectoryUrl)}" download id="download-trajectory">Download trajectory JSON</a>`;
    if (o.cancelUrl && o.canCancel) {
      html += `<form method="post" action="${esc(o.cancelUrl)}" class="inline" id="cancel-form">` +
        `<input type="hidden" name="csrfmiddlewaretoken" value="${esc(o.csrfToken || "")}">` +
        `<button type="submit" class="small danger" id="cancel-run">Cancel run</button></form>`;
    }
    actions.innerHTML = html;
    const form = this.q("#cancel-form");
    if (form) form.addEventListener("submit", (e) => this.cancel(e));
  }

  async cancel(e) {
    e.preventDefault();
    const button = this.q("#cancel-run");
    button.disabled = true;
    button.textContent = "Cancelling…";
    try {
      const resp = await fetch(this.options.cancelUrl, {
        method: "POST", credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": this.options.csrfToken || "" },
        body: new URLSearchParams({ csrfmiddlewaretoken: this.options.csrfToken || "" }),
      });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      const body = await resp.json();
      button.textContent = body.status === STATUSES.CANCELLED ? "Cancelled" : "Cancel requested";
      this.setStatus(body.status);
    } catch (err) {
      button.disabled = false;
      button.textContent = "Cancel run";
      this.setConnection(`Cancel failed: ${err.message}`);
    }
  }

  renderHeader() {
    const m = this.model;
    const r = m.run;
    const status = this.q('[data-field="status"]');
    status.className = `status status-${r.status}`;
    status.textContent = r.status;
    this.q('[data-field="question"]').textContent = r.question || "(question not known yet)";
    const queue = this.q('[data-field="queue"]');
    queue.hidden = !(r.status === STATUSES.QUEUED && this.options.queueNote);
    queue.textContent = queue.hidden ? "" : this.options.queueNote;
    const limits = r.limits || {};
    this.q('[data-field="settings"]').innerHTML =
      `Mode <strong>${esc(r.mode || "–")}</strong> · root ${modelHtml(r.root_model)}` +
      `${r.mode !== MODES.DIRECT && r.sub_model ? ` · sub-calls ${modelHtml(r.sub_model)}` : ""}` +
      `${limits.max_cost_usd != null ? ` · budget ${usd(limits.max_cost_usd)}` : ""}` +
      `${r.offline ? ` <span class="rx-offline-note">The offline model is a heuristic stand-in (${OFFLINE_NOTE}): its answers are extractive guesses.</span>` : ""}`;
    this.q('[data-field="documents"]').textContent = m.documents.length
      ? `Documents: ${m.documents.map((d) => `${d.name} (${num(d.chars)} chars)`).join(", ")}`
      : "";
    const failure = this.q('[data-field="failure"]');
    const why = r.failure_reason || (r.stop_reason ? `Stopped: ${r.stop_reason}` : "");
    failure.hidden = !why;
    failure.textContent = why || "";
    const box = this.q('[data-field="final-box"]');
    if (m.final && m.final.answer !== undefined) {
      box.hidden = false;
      if (this._finalShown !== m.final.answer) {
        this.q("#final-answer").innerHTML = renderMarkdown(m.final.answer);
        this._finalShown = m.final.answer;
      }
      this.q('[data-field="final-source"]').textContent = m.final.source ? `(${m.final.source}${r.forced_final ? ", forced at a limit" : ""})` : "";
    }
    const cancel = this.q("#cancel-form");
    if (cancel && m.isFinished) cancel.remove(); // form.inline's display rule would beat [hidden]
    this.renderCounters();
  }

  renderCounters() {
    const m = this.model;
    const t = m.totals;
    const set = (k, v) => {
      const node = this.q(`[data-counter="${k}"]`);
      if (node && node.textContent !== v) node.textContent = v;
    };
    const maxIt = m.run.limits && m.run.limits.max_iterations;
    set("iterations", `${num(t.iterations)}${maxIt ? ` / ${maxIt}` : ""}`);
    const running = m.runningNodes();
    set("subcalls", `${num(Math.max(t.subcalls, m.nodeOrder.length))}${running ? ` (${num(running)} running)` : ""}`);
    set("tokens", `${num(t.prompt_tokens + t.completion_tokens)}`);
    set("cost", totalCost(t.cost_usd, t.cost_unknown_calls));
    const cache = cacheNote(t.cached_tokens, t.cache_saving_usd);
    set("cache", cache);
    const cacheBox = this.q('[data-counter-box="cache"]');
    if (cacheBox && cacheBox.hidden !== !cache) cacheBox.hidden = !cache;
    set("depth", String(t.max_depth_reached || 0));
    let elapsed = t.elapsed_s || 0;
    if (!m.isFinished && m.run.startedTs) elapsed = Math.max(elapsed, Date.now() / 1000 - m.run.startedTs);
    else if (m.isFinished && m.run.startedTs && m.run.finishedTs) elapsed = Math.max(elapsed, m.run.finishedTs - m.run.startedTs);
    set("elapsed", clock(elapsed));
  }

  renderCoverage() {
    const box = this.q("#coverage");
    const cov = coverage(this.model);
    if (!cov.length) {
      box.innerHTML = '<p class="empty">No documents.</p>';
      return;
    }
    if (!this._covRows || this._covRows.length !== cov.length) {
      box.innerHTML = "";
      this._covRows = cov.map((doc, i) => {
        const row = el("div", { class: "cov-doc", "data-doc": i });
        row.innerHTML = `<div class="cov-head"><span class="cov-name"></span><span class="cov-pct"></span></div>` +
          `<canvas class="cov-bar" tabindex="0" role="img"></canvas><div class="cov-hits"></div>`;
        const canvas = row.querySelector("canvas");
        canvas.addEventListener("click", (e) => {
          const rect = canvas.getBoundingClientRect();
          this.coverageHits(i, Math.floor(((e.clientX - rect.left) / rect.width) * (this.model.documents[i].chars || 1)));
        });
        canvas.addEventListener("keydown", (e) => {
          if (e.key === "Enter" || e.key === " ") {
            e.preventDefault();
            const first = coverage(this.model)[i].spans[0];
            if (first) this.coverageHits(i, first[0]);
          }
        });
        box.append(row);
        return row;
      });
    }
    cov.forEach((doc, i) => {
      const row = this._covRows[i];
      row.querySelector(".cov-name").textContent = `${doc.name} · ${num(doc.chars)} chars`;
      const pct = doc.chars ? (100 * doc.fraction) : 0;
      row.querySelector(".cov-pct").textContent =
        `${pct === 0 ? "0" : pct < 0.1 ? "<0.1" : pct.toFixed(pct < 10 ? 1 : 0)}% covered · ${num(doc.spans.length)} span${doc.spans.length === 1 ? "" : "s"} · ${num(doc.reads)} read${doc.reads === 1 ? "" : "s"} · ${num(doc.ambiguous)} ambiguous`;
      row.querySelector(".cov-pct").title = doc.ambiguous
        ? `${num(doc.ambiguous)} read${doc.ambiguous === 1 ? "" : "s"} (${num(doc.ambiguousChars)} chars) of text that occurs several times: not on the map, since which copy was read is unknown.`
        : "";
      row.dataset.ambiguous = doc.ambiguous;
      row.dataset.reads = doc.reads;
      row.dataset.spans = doc.spans.length;
      row.dataset.fraction = doc.fraction.toFixed(4);
      const canvas = row.querySelector("canvas");
      canvas.setAttribute("aria-label", `${doc.name}: ${pct.toFixed(1)}% of characters sent to sub-calls`);
      const dpr = window.devicePixelRatio || 1;
      const w = Math.max(100, row.clientWidth || 300);
      const h = 18;
      canvas.style.width = `${w}px`;
      canvas.style.height = `${h}px`;
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
      const ctx = canvas.getContext("2d");
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.fillStyle = "#eceff4";
      ctx.fillRect(0, 0, w, h);
      // Read counts per pixel column, so overlapping reads show darker.
      const cols = new Float32Array(Math.ceil(w));
      const scale = w / Math.max(1, doc.chars);
      for (const [s, e] of doc.ranges) {
        const a = Math.max(0, Math.floor(s * scale));
        const b = Math.min(cols.length - 1, Math.max(a, Math.ceil(e * scale) - 1));
        for (let x = a; x <= b; x += 1) cols[x] += 1;
      }
      let peak = 0;
      for (const c of cols) if (c > peak) peak = c;
      for (let x = 0; x < cols.length; x += 1) {
        if (!cols[x]) continue;
        const strength = 0.45 + 0.55 * (cols[x] / (peak || 1));
        ctx.fillStyle = `rgba(36,87,214,${strength.toFixed(2)})`;
        ctx.fillRect(x, 0, 1, h);
      }
    });
  }

  coverageHits(docIndex, offset) {
    const row = this._covRows[docIndex];
    const hits = nodesAt(this.model, docIndex, offset, 20);
    const box = row.querySelector(".cov-hits");
    box.innerHTML = hits.length
      ? `<span class="muted">Character ${num(offset)} went into:</span> ${hits.map((n) => `<a href="#node-${esc(n.id)}">${esc(n.id)}</a>`).join(", ")}${hits.length === 20 ? " …" : ""}`
      : `<span class="muted">No sub-call read character ${num(offset)}.</span>`;
  }

  renderFlags() {
    const list = findFlags(this.model);
    const section = this.q("#flags");
    section.hidden = !list.length;
    const key = JSON.stringify(list.map((f) => [f.id, f.title]));
    if (key === this._flagsKey) return;
    this._flagsKey = key;
    const link = (id) => {
      const isCell = this.model.cells.has(id);
      return `<a href="#${isCell ? "cell" : "node"}-${esc(id)}">${esc(id)}</a>`;
    };
    this.q('[data-field="flags"]').innerHTML = list.map((f) => {
      const groups = f.groups.filter((g) => g.length).map((g) =>
        `<li>${g.slice(0, 12).map(link).join(", ")}${g.length > 12 ? ` and ${num(g.length - 12)} more` : ""}</li>`).join("");
      return `<li class="flag flag-${f.severity}" data-flag="${esc(f.id)}"><details><summary><strong>${esc(f.title)}</strong></summary>` +
        `${f.detail ? `<p>${esc(f.detail)}</p>` : ""}${groups ? `<ul>${groups}</ul>` : ""}</details></li>`;
    }).join("");
    this.root.dataset.flags = list.map((f) => f.id).join(" ");
  }

  // --- details ---------------------------------------------------------------------------------

  showDetail(item) {
    this.detailItem = item;
    this._detailStamp = null;
    this.refreshDetail();
  }

  /** What the detail pane shows for an item: title, metadata rows, input and output texts. */
  describe(item) {
    const m = this.model;
    const docs = m.documents;
    if (item.kind === "turn") {
      const roll = m.rollups().get(item.id);
      return {
        title: `Turn ${item.iteration} <span class="muted">${item.node_id ? `of child RLM ${esc(item.node_id)}` : "root"}${item.forced ? " · forced" : ""}</span>`,
        meta: [
          ["Model", modelHtml(item.model)],
          ["Tokens", `${num(item.prompt_tokens)} prompt + ${num(item.completion_tokens)} completion`],
          ["Latency", `${seconds(item.latency_s)}${item.attempts > 1 ? ` (${item.attempts} attempts)` : ""}`],
          ["Cost", esc(usd(item.cost_usd))],
          ...cacheRow(item),
          ["Cells", `${num(item.cells.length)}${roll && item.cells.length ? ` · with them: ${num(roll.count)} sub-calls · ${num(roll.tokens)} tokens · ${esc(totalCost(roll.cost, roll.unknown))}` : ""}`],
          ["In the trajectory", `<a href="#${esc(item.id)}">show this turn</a>`],
        ],
        input: { label: "Sent", text: item.input.map((msg) => `[${msg.role}]\n${msg.content}`).join("\n\n"), full: item.input.reduce((n, msg) => n + (msg.chars || 0), 0), cls: "turn-input", format: "text" },
        output: { label: "Response", text: item.content, full: item.content.length, cls: "turn-output", format: "markdown" },
      };
    }
    if (item.kind === "batch") {
      return {
        title: `Batch ${esc(item.id)} <span class="muted">${num(item.nodes.length)} sub-calls</span>`,
        meta: [["Launched by", `cell <a href="#cell-${esc(item.cell.id)}">${esc(item.cell.id)}</a>`],
          ["Sub-calls", item.nodes.slice(0, 12).map((n) => `<a href="#node-${esc(n.id)}">${esc(n.id)}</a>`).join(", ") + (item.nodes.length > 12 ? ` and ${num(item.nodes.length - 12)} more` : "")]],
        input: { label: "First prompt", text: item.nodes[0].prompt, full: item.nodes[0].prompt_chars, cls: "prompt", format: "text" },
        output: null,
      };
    }
    if (item.kind === "cell") {
      const roll = m.rollups().get(`cell:${item.id}`);
      const r = item.result;
      return {
        title: `Cell ${esc(item.id)}`,
        meta: [
          ["Status", r ? (r.error || r.killed ? '<span class="pill bad">error</span>' : '<span class="pill ok">done</span>') : '<span class="pill running">running</span>'],
          ["Duration", r ? seconds(r.duration_s) : "running"],
          ["Sub-calls", `${num(item.nodes.length)} · ${roll ? num(roll.tokens) : 0} tokens · ${esc(roll ? totalCost(roll.cost, roll.unknown) : "")}`],
          ["In the trajectory", `<a href="#cell-${esc(item.id)}">Show in the trajectory</a>`],
        ],
        input: { label: "Code", text: item.code, full: item.code.length, cls: "code-input", format: "text" },
        output: r ? { label: r.error ? "Error" : "Output", text: r.error || r.stdout, full: r.error ? r.error.length : r.stdout_chars, cls: "cell-output", format: "text" } : null,
      };
    }
    const n = item;
    const r = n.result;
    const roll = m.rollups().get(n.id);
    const ranges = n.ranges.slice(0, 8).map((g) => rangeHtml(g, docs)).join("; ") +
      (n.ranges.length > 8 ? `; and ${n.ranges.length - 8} more` : "");
    const meta = [
      ["Model", modelHtml(n.model)],
      ["Status", r ? (r.error ? `<span class="pill bad">error</span> ${esc(r.error)}` : STATUS_HTML[nodeStatus(n)]) : '<span class="pill running">running</span>'],
      ["Launched by", `${n.cell_id ? `cell <a href="#cell-${esc(n.cell_id)}">${esc(n.cell_id)}</a>` : "–"}${n.parent_id ? ` of child RLM <a href="#node-${esc(n.parent_id)}">${esc(n.parent_id)}</a>` : ""}`],
      ["Batch", n.batch_id ? `${esc(n.batch_id)} #${n.batch_index}` : "single call"],
      ["Tokens", r ? `${num(r.prompt_tokens)} prompt + ${num(r.completion_tokens)} completion` : "–"],
      ["Latency", r ? `${seconds(r.latency_s)}${r.attempts > 1 ? (n.callKind === CALL_KINDS.RLM ? ` (${r.attempts} provider requests in its subtree)` : ` (${r.attempts} attempts)`) : ""}` : "running"],
      ["Cost", r ? esc(usd(r.cost_usd)) : "–"],
      ...cacheRow(r),
    ];
    if (n.callKind === CALL_KINDS.RLM && roll) meta.push(["Subtree", `${num(roll.count)} sub-calls · ${num(roll.tokens)} tokens · ${esc(totalCost(roll.cost, roll.unknown))} · <a href="#rlm-${esc(n.id)}">turns in the trajectory</a>`]);
    if (n.ranges.length) meta.push(["Context read", ranges]);
    return {
      title: `${n.callKind === CALL_KINDS.RLM ? "Child RLM" : "Sub-call"} ${esc(n.id)} <span class="muted">depth ${n.depth}</span>`,
      meta,
      input: { label: "Prompt", text: n.prompt, full: n.prompt_chars, cls: "prompt", format: "text" },
      output: r ? { label: "Response", text: r.response || "", full: r.response_chars, cls: "response", format: "markdown" } : null,
    };
  }

  refreshDetail() {
    const item = this.detailItem;
    let stamp = `${item.kind}|${item.id}|${this.model.version}`;
    if (item.kind === "node") {
      const roll = item.callKind === CALL_KINDS.RLM ? this.model.rollups().get(item.id) : null;
      stamp = `node|${item.id}|${item.result ? 1 : 0}|${roll ? `${roll.count}|${roll.tokens}` : ""}`;
    } else if (item.kind === "cell") {
      stamp = `cell|${item.id}|${item.result ? 1 : 0}|${item.nodes.length}|${item.nodes.filter((n) => !n.result).length}`;
    } else if (item.kind === "turn") {
      stamp = `turn|${item.id}|${item.cells.length}`;
    }
    if (stamp === this._detailStamp) return;
    this._detailStamp = stamp;
    const box = this.q("#node-detail");
    box.dataset.item = item.id;
    box.dataset.kind = item.kind;
    const d = this.describe(item);
    const tabs = [["output", d.output ? d.output.label : "Output"], ["input", d.input.label], ["metadata", "Metadata"]];
    const want = this._detailTab && (this._detailTab !== "output" || d.output) ? this._detailTab : (d.output ? "output" : "input");
    const panel = (name, body) =>
      `<div class="detail-panel" role="tabpanel" id="detail-panel-${name}" aria-labelledby="detail-tab-${name}" data-panel="${name}"${name === want ? "" : " hidden"}>${body}</div>`;
    const waiting = item.kind === "node" ? '<p class="muted">Waiting for the response…</p>' : '<p class="muted">Nothing yet.</p>';
    box.innerHTML = `<h2>${d.title}</h2>` +
      `<div class="detail-tabs" role="tablist" aria-label="Details">${tabs.map(([name, label]) =>
        `<button type="button" role="tab" id="detail-tab-${name}" aria-controls="detail-panel-${name}" aria-selected="${name === want}" tabindex="${name === want ? 0 : -1}" data-tab="${name}">${esc(label)}</button>`).join("")}</div>` +
      panel("output", d.output ? textBlock(d.output) : waiting) +
      panel("input", textBlock(d.input)) +
      panel("metadata", `<dl class="detail-grid">${d.meta.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("")}</dl>` +
        `<p><button type="button" class="small" data-copy="json">Copy as JSON</button></p>`);
    const texts = { input: d.input, output: d.output };
    box.querySelectorAll("[data-tab]").forEach((button) => {
      button.addEventListener("click", () => this.selectDetailTab(box, button.dataset.tab));
      button.addEventListener("keydown", (e) => {
        const order = tabs.map(([name]) => name);
        const i = order.indexOf(button.dataset.tab);
        const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
        if (!step) return;
        e.preventDefault();
        const next = order[(i + step + order.length) % order.length];
        this.selectDetailTab(box, next);
        box.querySelector(`[data-tab="${next}"]`).focus();
      });
    });
    box.querySelectorAll("[data-format]").forEach((button) => {
      button.addEventListener("click", () => {
        const which = button.closest("[data-panel]").dataset.panel;
        const t = texts[which];
        const body = button.closest("[data-panel]").querySelector(".detail-body");
        body.innerHTML = renderText(t, button.dataset.format, false);
        body.closest("[data-panel]").querySelectorAll("[data-format]").forEach((b) => b.setAttribute("aria-pressed", b === button ? "true" : "false"));
      });
    });
    box.querySelectorAll("[data-copy]").forEach((button) => {
      button.addEventListener("click", () => {
        const which = button.dataset.copy;
        const text = which === "json" ? JSON.stringify(plainItem(item), null, 2) : texts[which].text;
        copyText(text).then((ok) => {
          button.textContent = ok ? "Copied" : "Copy failed";
          button.dataset.copied = ok ? "1" : "0";
        });
      });
    });
    box.querySelectorAll("[data-expand]").forEach((button) => {
      button.addEventListener("click", () => {
        const which = button.closest("[data-panel]").dataset.panel;
        const t = texts[which];
        const body = button.closest("[data-panel]").querySelector(".detail-body");
        const open = button.getAttribute("aria-expanded") === "true";
        const format = body.dataset.format;
        body.innerHTML = renderText(t, format, open);
        button.setAttribute("aria-expanded", open ? "false" : "true");
        button.textContent = open ? `Show all ${num(t.text.length)} characters` : "Show less";
      });
    });
  }

  selectDetailTab(box, name) {
    this._detailTab = name;
    box.querySelectorAll("[data-tab]").forEach((b) => {
      const on = b.dataset.tab === name;
      b.setAttribute("aria-selected", on ? "true" : "false");
      b.tabIndex = on ? 0 : -1;
    });
    box.querySelectorAll("[data-panel]").forEach((p) => { p.hidden = p.dataset.panel !== name; });
  }

  // --- navigation ------------------------------------------------------------------------------

  pick(item) {
    if (item.kind === "node") this.go(`#node-${item.id}`);
    else if (item.kind === "cell") this.go(`#cell-${item.id}`);
    else this.go(`#${item.id}`);
  }

  go(hash) {
    if (location.hash !== hash) history.pushState(null, "", hash);
    this.navigate(hash);
  }

  /** Open and scroll to the item a hash names: #cell-c3, #node-n17, #turn-root-2, #rlm-n17. */
  navigate(hash) {
    const id = decodeURIComponent(String(hash || "").replace(/^#/, ""));
    if (!id) return false;
    if (!this.rendered) {
      this.pendingHash = hash;
      return false;
    }
    let found = false;
    if (id.startsWith("node-")) {
      const node = this.model.nodes.get(id.slice(5));
      if (node) {
        found = this.tree.reveal(node);
        const card = this.q("#tree-card");
        card.scrollIntoView({ block: "start" });
        this.tree.viewport.focus({ preventScroll: true });
        this.flash(card);
      }
    } else {
      const target = this.root.querySelector(`[id="${CSS.escape(id)}"]`);
      if (target) {
        Notebook.reveal(target);
        if (target.tagName === "DETAILS") target.open = true;
        target.scrollIntoView({ block: "start" });
        if (target.tabIndex >= -1) target.focus({ preventScroll: true });
        this.flash(target);
        found = true;
        if (id.startsWith("cell-")) this.currentCell = id.slice(5);
      }
    }
    // Not there yet (a live run): try again as events arrive.
    this.pendingHash = found ? null : hash;
    return found;
  }

  flash(target) {
    target.classList.remove("flash");
    void target.offsetWidth; // restart the animation
    target.classList.add("flash");
  }

  moveCell(step) {
    const cells = [...this.root.querySelectorAll(".nb-cell")].filter((c) => c.offsetParent !== null);
    if (!cells.length) return;
    let i = cells.findIndex((c) => c.dataset.cellId === this.currentCell);
    if (i < 0) {
      // Start from the first cell below the top of the viewport.
      i = cells.findIndex((c) => c.getBoundingClientRect().top >= 0);
      i = i < 0 ? cells.length - 1 : i - (step > 0 ? 1 : 0);
    }
    const next = cells[Math.max(0, Math.min(cells.length - 1, i + step))];
    this.currentCell = next.dataset.cellId;
    next.scrollIntoView({ block: "start" });
    next.focus({ preventScroll: true });
    history.replaceState(null, "", `#cell-${next.dataset.cellId}`);
  }

  bindControls() {
    this.root.addEventListener("click", (e) => {
      const a = e.target.closest('a[href^="#"]');
      if (!a || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
      e.preventDefault();
      this.go(a.getAttribute("href"));
    });
    window.addEventListener("hashchange", () => this.navigate(location.hash));
    window.addEventListener("popstate", () => this.navigate(location.hash));
    const view = () => {
      this.tree.setView({
        sort: this.q("#tree-sort").value, groupBatches: this.q("#tree-batches").checked,
        filter: { status: this.q("#tree-status").value, model: this.q("#tree-model").value, depth: this.q("#tree-level").value },
      });
      this.root.dataset.treeView = this.tree.flat ? "flat" : "tree";
    };
    for (const id of ["#tree-sort", "#tree-status", "#tree-model", "#tree-level", "#tree-batches"]) this.q(id).addEventListener("change", view);
    this.tree.onViewReset = () => {
      this.q("#tree-sort").value = "tree";
      for (const id of ["#tree-status", "#tree-model", "#tree-level"]) this.q(id).value = "";
      this.root.dataset.treeView = "tree";
    };
    const depth = this.q("#tree-depth");
    depth.addEventListener("change", () => this.tree.setMaxDepth(depth.value === "all" ? Infinity : Number(depth.value)));
    this.q('[data-action="expand-all"]').addEventListener("click", () => {
      depth.value = "all";
      this.tree.setMaxDepth(Infinity);
    });
    this.q('[data-action="collapse-all"]').addEventListener("click", () => {
      depth.value = "0";
      this.tree.setMaxDepth(0);
    });
    const input = this.q("#search-input");
    let timer = null;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.runSearch(input.value), 200);
    });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        // Enter goes to the first match, and on to the next one each time it is pressed again.
        e.preventDefault();
        clearTimeout(timer);
        if (this._searched !== input.value) this.runSearch(input.value);
        this.nextSearchResult(e.shiftKey ? -1 : 1);
        input.focus({ preventScroll: true });
      } else if (e.key === "Escape") {
        input.value = "";
        this.runSearch("");
      }
    });
    document.addEventListener("keydown", (e) => {
      const t = e.target;
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      if (t && (t.closest("input, textarea, select, [contenteditable]") || t.closest('[role="tree"]'))) return;
      if (e.key === "j") {
        e.preventDefault();
        this.moveCell(1);
      } else if (e.key === "k") {
        e.preventDefault();
        this.moveCell(-1);
      } else if (e.key === "/") {
        e.preventDefault();
        input.focus();
      }
    });
  }

  nextSearchResult(step) {
    const links = [...this.q("#search-results").querySelectorAll("a")];
    if (!links.length) return;
    const current = links.findIndex((a) => a.getAttribute("aria-current") === "true");
    const next = current < 0 ? (step > 0 ? 0 : links.length - 1) : (current + step + links.length) % links.length;
    links.forEach((a, i) => (i === next ? a.setAttribute("aria-current", "true") : a.removeAttribute("aria-current")));
    links[next].scrollIntoView({ block: "nearest" });
    this.go(links[next].getAttribute("href"));
  }

  runSearch(query) {
    this._searched = query;
    const { results, total } = search(this.model, query);
    const count = this.q("#search-count");
    const list = this.q("#search-results");
    if (query.trim().length < 2) {
      count.textContent = "";
      list.innerHTML = "";
      return;
    }
    count.textContent = total
      ? `${num(total)} match${total === 1 ? "" : "es"}${total > results.length ? `, showing the first ${results.length}` : ""}`
      : "No matches.";
    list.innerHTML = results.map((r) => {
      const t = r.target;
      const href = t.kind === "node" ? `#node-${t.id}` : t.kind === "cell" ? `#cell-${t.id}` : t.kind === "turn" ? `#${t.id}` : "#final-answer";
      const label = t.kind === "turn" ? t.id.replace(/^turn-/, "turn ") : t.kind === "final" ? "final answer" : `${t.kind} ${t.id}`;
      return `<li><a href="${esc(href)}"><strong>${esc(label)}</strong> <span class="muted">${esc(r.field)}</span></a> ` +
        `<span class="snippet">${esc(r.before.replace(/\s+/g, " "))}<mark>${esc(r.match)}</mark>${esc(r.after.replace(/\s+/g, " "))}</span></li>`;
    }).join("");
  }

  destroy() {
    clearInterval(this.tick);
  }
}

export function mount(element, options = {}) {
  return new Explorer(element, options);
}
