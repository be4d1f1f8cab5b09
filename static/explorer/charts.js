// Canvas charts: the waterfall of root turns, cells and sub-calls (how much ran at once), and
// cost and tokens over time. Canvas keeps 10,000 bars cheap; hit-testing maps clicks to items.
import { num, seconds, usd } from "./format.js";

const COLORS = {
  turn: "#7a4cc2", cell: "#2457d6", llm: "#138a7e", rlm: "#c26a00", error: "#b42318", running: "#a45d00",
};

function setupCanvas(canvas, cssHeight) {
  const dpr = window.devicePixelRatio || 1;
  const width = Math.max(200, canvas.parentElement.clientWidth || 600);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${cssHeight}px`;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(cssHeight * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { ctx, width, height: cssHeight };
}

function niceStep(range, target) {
  const raw = range / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  for (const m of [1, 2, 5, 10]) if (raw <= m * mag) return m * mag;
  return 10 * mag;
}

/** Pack intervals into lanes: first lane free at the start time (items sorted by start). */
function packLanes(items) {
  const ends = [];
  for (const it of items) {
    let lane = ends.findIndex((end) => end <= it.start);
    if (lane < 0) {
      lane = ends.length;
      ends.push(0);
    }
    ends[lane] = it.end;
    it.lane = lane;
  }
  return ends.length;
}

export class Timeline {
  constructor(container, model, { onPick = () => {} } = {}) {
    this.container = container;
    this.model = model;
    this.onPick = onPick;
    this.canvas = document.createElement("canvas");
    this.canvas.setAttribute("role", "img");
    this.canvas.setAttribute("aria-label", "Waterfall of root turns, cells and sub-calls over time");
    this.tip = document.createElement("div");
    this.tip.className = "chart-tip";
    this.tip.hidden = true;
    container.append(this.canvas, this.tip);
    this.hits = [];
    this.canvas.addEventListener("mousemove", (e) => this.hover(e));
    this.canvas.addEventListener("mouseleave", () => { this.tip.hidden = true; });
    this.canvas.addEventListener("click", (e) => {
      if (this.dragged) return;
      const hit = this.hitAt(e);
      if (hit) this.onPick(hit.item);
    });
    // Zoom and pan: the visible window as fractions [v0, v1] of the run's time span. Buttons and keys
    // (+ / - / ← / → / 0 on the focused chart), Ctrl+wheel around the pointer, drag to pan.
    this.view = [0, 1];
    this.canvas.tabIndex = 0;
    this.controls = document.createElement("div");
    this.controls.className = "chart-controls";
    this.controls.innerHTML = '<button type="button" class="small" data-zoom="in" aria-label="Zoom in">+</button>' +
      '<button type="button" class="small" data-zoom="out" aria-label="Zoom out">−</button>' +
      '<button type="button" class="small" data-zoom="left" aria-label="Pan left">←</button>' +
      '<button type="button" class="small" data-zoom="right" aria-label="Pan right">→</button>' +
      '<button type="button" class="small" data-zoom="reset">Whole run</button>';
    container.prepend(this.controls);
    this.controls.addEventListener("click", (e) => {
      const b = e.target.closest("[data-zoom]");
      if (b) this.zoomAction(b.dataset.zoom);
    });
    this.canvas.addEventListener("keydown", (e) => {
      const action = { "+": "in", "=": "in", "-": "out", ArrowLeft: "left", ArrowRight: "right", 0: "reset" }[e.key];
      if (!action) return;
      e.preventDefault();
      this.zoomAction(action);
    });
    this.canvas.addEventListener("wheel", (e) => {
      if (!e.ctrlKey && !e.metaKey) return; // plain wheel scrolls the page
      e.preventDefault();
      const rect = this.canvas.getBoundingClientRect();
      this.zoom(e.deltaY < 0 ? 0.5 : 2, this.fractionAt(e.clientX - rect.left));
    }, { passive: false });
    this.canvas.addEventListener("pointerdown", (e) => {
      if (this.view[1] - this.view[0] >= 1) return;
      this.drag = { x: e.clientX, view: [...this.view] };
      this.dragged = false;
    });
    window.addEventListener("pointermove", (e) => {
      if (!this.drag) return;
      const dx = e.clientX - this.drag.x;
      if (Math.abs(dx) > 3) this.dragged = true;
      const plot = Math.max(1, (this.plotWidth || 500));
      const shift = (-dx / plot) * (this.drag.view[1] - this.drag.view[0]);
      this.setView(this.drag.view[0] + shift, this.drag.view[1] + shift);
    });
    window.addEventListener("pointerup", () => {
      this.drag = null;
      setTimeout(() => { this.dragged = false; }, 0);
    });
  }

  /** The fraction of the run's span under a pixel of the plot, in the current view. */
  fractionAt(px) {
    const rel = Math.min(1, Math.max(0, (px - (this.plotLeft || 46)) / Math.max(1, this.plotWidth || 500)));
    return this.view[0] + rel * (this.view[1] - this.view[0]);
  }

  zoomAction(action) {
    const [v0, v1] = this.view;
    const w = v1 - v0;
    if (action === "in") this.zoom(0.5, (v0 + v1) / 2);
    else if (action === "out") this.zoom(2, (v0 + v1) / 2);
    else if (action === "left") this.setView(v0 - w / 4, v1 - w / 4);
    else if (action === "right") this.setView(v0 + w / 4, v1 + w / 4);
    else this.setView(0, 1);
  }

  /** Scale the visible window by `factor` (0.5 = twice the detail) keeping `at` where it is. */
  zoom(factor, at) {
    const [v0, v1] = this.view;
    const w = Math.min(1, Math.max(0.001, (v1 - v0) * factor));
    const rel = (at - v0) / Math.max(1e-9, v1 - v0);
    this.setView(at - rel * w, at - rel * w + w);
  }

  setView(v0, v1) {
    const w = Math.min(1, v1 - v0);
    const start = Math.min(1 - w, Math.max(0, v0));
    this.view = [start, start + w];
    this.container.dataset.view = `${this.view[0].toFixed(3)}-${this.view[1].toFixed(3)}`;
    this.draw(this.lastNow);
  }

  draw(now = null) {
    this.lastNow = now;
    const m = this.model;
    const runStart = m.run.startedTs ?? m.firstTs;
    const height = 230;
    const { ctx, width } = setupCanvas(this.canvas, height);
    ctx.clearRect(0, 0, width, height);
    if (runStart == null) {
      ctx.fillStyle = "#5d6677";
      ctx.font = "13px system-ui, sans-serif";
      ctx.fillText("Nothing has run yet.", 12, 24);
      this.hits = [];
      return;
    }
    const tEnd = Math.max(m.lastTs ?? runStart, m.run.finishedTs ?? 0, m.isFinished ? 0 : (now ?? 0)) || runStart + 1;
    const fullSpan = Math.max(0.001, tEnd - runStart);
    // The visible window (zoom and pan): times outside it are drawn off the plot and clipped.
    const t0 = runStart + this.view[0] * fullSpan;
    const span = Math.max(0.0001, (this.view[1] - this.view[0]) * fullSpan);
    const left = 46;
    const right = width - 8;
    this.plotLeft = left;
    this.plotWidth = right - left;
    const x = (t) => left + ((t - t0) / span) * (right - left);
    // Root lane: depth-0 turns and cells. Other lanes: sub-calls and child RLM turns/cells, packed.
    const rootItems = [];
    const others = [];
    // One record shape for every bar (it is also the bar's hit box, filled in by `bar`).
    const rec = (item, kind, start, end, running, error) => ({
      item, kind, start, end, running, error, lane: 0, x0: 0, x1: 0, y0: 0, y1: 0,
    });
    for (const t of m.turns) (t.depth === 0 ? rootItems : others).push(rec(t, "turn", t.start, t.end, false, null));
    for (const c of m.cellOrder) (c.depth === 0 ? rootItems : others).push(rec(c, "cell", c.start, c.end ?? tEnd, false, null));
    for (const n of m.nodeOrder) others.push(rec(n, n.callKind, n.start, n.end ?? tEnd, !n.result, n.result && n.result.error));
    others.sort((a, b) => a.start - b.start);
    const lanes = packLanes(others);
    const axisH = 18;
    const concH = 40;
    const top = 4;
    const rootH = 14;
    const laneArea = height - axisH - concH - top - rootH - 10;
    const laneH = Math.max(1, Math.min(12, laneArea / Math.max(1, lanes)));
    const hits = [];
    // Fill colour and alpha are only set when they change (thousands of bars share a few).
    let fill = null;
    let alpha = null;
    const bar = (it, y, h) => {
      const x0 = Math.max(left - 2, x(it.start));
      const xEnd = Math.min(right + 2, x(it.end));
      if (xEnd < left || x0 > right) return; // outside the zoomed window
      const w = Math.max(1, xEnd - x0);
      const f = it.error ? COLORS.error : COLORS[it.kind];
      const a = it.running ? 0.55 : 0.9;
      if (f !== fill) ctx.fillStyle = fill = f;
      if (a !== alpha) ctx.globalAlpha = alpha = a;
      ctx.fillRect(x0, y, w, h);
      if (it.running && h > 3) {
        ctx.globalAlpha = alpha = 1;
        ctx.strokeStyle = COLORS.running;
        ctx.strokeRect(x0 + 0.5, y + 0.5, w - 1, h - 1);
      }
      // The bar's own record (built for this draw) doubles as its hit box: no copy per bar.
      it.x0 = x0;
      it.x1 = x0 + Math.max(w, 3);
      it.y0 = y;
      it.y1 = y + Math.max(h, 2);
      hits.push(it);
    };
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#5d6677";
    ctx.globalAlpha = 1;
    ctx.fillText("root", 4, top + 11);
    for (const it of rootItems) bar(it, top, rootH);
    const lanesTop = top + rootH + 6;
    ctx.globalAlpha = 1;
    ctx.fillStyle = "#5d6677";
    if (lanes) ctx.fillText("calls", 4, lanesTop + 10);
    fill = null;
    alpha = null;
    for (const it of others) bar(it, lanesTop + it.lane * laneH, Math.max(1, laneH - (laneH > 4 ? 1 : 0)));
    // Concurrency: running sub-calls over time, as a step area.
    const concTop = height - axisH - concH;
    const edges = [];
    for (const n of m.nodeOrder) {
      edges.push([n.start, 1]);
      edges.push([n.end ?? tEnd, -1]);
    }
    edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let cur = 0;
    let peak = 0;
    const steps = [];
    for (const [t, d] of edges) {
      cur += d;
      steps.push([t, cur]);
      if (cur > peak) peak = cur;
    }
    ctx.globalAlpha = 1;
    ctx.fillStyle = "#5d6677";
    ctx.fillText("at once", 4, concTop + 12);
    if (peak) {
      ctx.save();
      ctx.beginPath();
      ctx.rect(left, concTop, right - left, concH);
      ctx.clip();
      ctx.fillStyle = "rgba(19,138,126,0.35)";
      ctx.strokeStyle = COLORS.llm;
      ctx.beginPath();
      ctx.moveTo(left, concTop + concH);
      let prevY = concTop + concH;
      for (const [t, c] of steps) {
        const px = x(t);
        ctx.lineTo(px, prevY);
        prevY = concTop + concH - (c / peak) * (concH - 4);
        ctx.lineTo(px, prevY);
      }
      ctx.lineTo(right, prevY);
      ctx.lineTo(right, concTop + concH);
      ctx.closePath();
      ctx.fill();
      ctx.restore();
      ctx.fillStyle = "#1d2330";
      ctx.fillText(`peak ${peak}`, right - 52, concTop + 10);
    }
    this.peak = peak;
    this.lanes = lanes;
    // Axis.
    ctx.strokeStyle = "#dde1e8";
    ctx.fillStyle = "#5d6677";
    const step = niceStep(span, 8);
    const from = t0 - runStart;
    for (let s = Math.ceil(from / step - 1e-9) * step; s <= from + span + 1e-9; s += step) {
      const px = x(runStart + s);
      ctx.beginPath();
      ctx.moveTo(px, top);
      ctx.lineTo(px, height - axisH);
      ctx.stroke();
      ctx.fillText(seconds(s).replace(" ", ""), Math.min(px + 2, right - 30), height - 5);
    }
    this.hits = hits;
    this.container.dataset.bars = hits.length;
    this.container.dataset.peak = peak;
  }

  hitAt(e) {
    const rect = this.canvas.getBoundingClientRect();
    const px = e.clientX - rect.left;
    const py = e.clientY - rect.top;
    for (let i = this.hits.length - 1; i >= 0; i -= 1) {
      const h = this.hits[i];
      if (px >= h.x0 && px <= h.x1 && py >= h.y0 - 1 && py <= h.y1 + 1) return h;
    }
    return null;
  }

  hover(e) {
    const hit = this.hitAt(e);
    this.canvas.style.cursor = hit ? "pointer" : "default";
    if (!hit) {
      this.tip.hidden = true;
      return;
    }
    const it = hit.item;
    const name = hit.kind === "turn" ? `turn ${it.iteration}${it.depth ? ` (${it.scope})` : ""}` : `${hit.kind} ${it.id}`;
    const dur = (it.end ?? hit.end) - it.start;
    this.tip.textContent = `${name} · ${hit.running ? "running" : seconds(dur)}`;
    const rect = this.canvas.getBoundingClientRect();
    this.tip.style.left = `${Math.min(e.clientX - rect.left + 12, rect.width - 180)}px`;
    this.tip.style.top = `${e.clientY - rect.top + 12}px`;
    this.tip.hidden = false;
  }
}

export class CostChart {
  constructor(container, model) {
    this.container = container;
    this.model = model;
    this.canvas = document.createElement("canvas");
    this.canvas.setAttribute("role", "img");
    this.canvas.setAttribute("aria-label", "Cost and tokens over time");
    container.append(this.canvas);
  }

  draw(now = null) {
    const m = this.model;
    const height = 150;
    const { ctx, width } = setupCanvas(this.canvas, height);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "11px system-ui, sans-serif";
    const series = m.costSeries;
    const t0 = m.run.startedTs ?? m.firstTs;
    if (!series.length || t0 == null) {
      ctx.fillStyle = "#5d6677";
      ctx.fillText("No cost figures yet.", 12, 24);
      return;
    }
    const tEnd = Math.max(series[series.length - 1].t, m.run.finishedTs ?? 0, m.isFinished ? 0 : (now ?? 0));
    const span = Math.max(0.001, tEnd - t0);
    const left = 56;
    const right = width - 64;
    const top = 18;
    const bottom = height - 18;
    let topCost = 0;
    let maxTok = 1;
    for (const p of series) {
      if (p.cost > topCost) topCost = p.cost;
      if (p.tokens > maxTok) maxTok = p.tokens;
    }
    const maxCost = Math.max(topCost, 1e-9);
    const x = (t) => left + ((t - t0) / span) * (right - left);
    const line = (key, max, color, dash) => {
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.setLineDash(dash);
      ctx.beginPath();
      ctx.moveTo(left, bottom);
      let y = bottom;
      for (const p of series) {
        ctx.lineTo(x(p.t), y);
        y = bottom - (p[key] / max) * (bottom - top);
        ctx.lineTo(x(p.t), y);
      }
      ctx.lineTo(x(tEnd), y);
      ctx.stroke();
      ctx.lineWidth = 1;
      ctx.setLineDash([]);
    };
    ctx.strokeStyle = "#dde1e8";
    ctx.strokeRect(left, top, right - left, bottom - top);
    line("tokens", maxTok, "#7a4cc2", [5, 4]);
    line("cost", maxCost, "#1c7c47", []);
    const last = series[series.length - 1];
    ctx.fillStyle = "#1c7c47";
    ctx.fillText(usd(topCost), 4, top + 8);
    ctx.fillText("cost", 4, top + 22);
    ctx.fillStyle = "#7a4cc2";
    ctx.fillText(num(maxTok), right + 6, top + 8);
    ctx.fillText("tokens", right + 6, top + 22);
    ctx.fillStyle = "#5d6677";
    ctx.fillText("0", left - 12, bottom);
    ctx.fillText(seconds(span), right - 40, height - 4);
    if (last.unknown) {
      ctx.fillStyle = "#a45d00";
      ctx.fillText(`${last.unknown} call${last.unknown === 1 ? "" : "s"} unpriced: cost is a lower bound`, left + 4, top - 5);
    }
    this.container.dataset.points = series.length;
  }
}
