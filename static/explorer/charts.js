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
      const hit = this.hitAt(e);
      if (hit) this.onPick(hit.item);
    });
  }

  draw(now = null) {
    const m = this.model;
    const t0 = m.run.startedTs ?? m.firstTs;
    const height = 230;
    const { ctx, width } = setupCanvas(this.canvas, height);
    ctx.clearRect(0, 0, width, height);
    if (t0 == null) {
      ctx.fillStyle = "#5d6677";
      ctx.font = "13px system-ui, sans-serif";
      ctx.fillText("Nothing has run yet.", 12, 24);
      this.hits = [];
      return;
    }
    const tEnd = Math.max(m.lastTs ?? t0, m.run.finishedTs ?? 0, m.isFinished ? 0 : (now ?? 0)) || t0 + 1;
    const span = Math.max(0.001, tEnd - t0);
    const left = 46;
    const right = width - 8;
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
      const x0 = x(it.start);
      const w = Math.max(1, x(it.end) - x0);
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
      ctx.fillStyle = "#1d2330";
      ctx.fillText(`peak ${peak}`, right - 52, concTop + 10);
    }
    this.peak = peak;
    this.lanes = lanes;
    // Axis.
    ctx.strokeStyle = "#dde1e8";
    ctx.fillStyle = "#5d6677";
    const step = niceStep(span, 8);
    for (let s = 0; s <= span + 1e-9; s += step) {
      const px = x(t0 + s);
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
