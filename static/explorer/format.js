// Small formatting helpers shared by every view. Everything that builds HTML strings escapes here.
import { isOffline } from "./model.js";

const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ESC[c]);
}

// One formatter for every count: `toLocaleString` builds a new one on each call, which shows in
// profiles when thousands of rows and cells are painted. Same output.
const NUMBER = new Intl.NumberFormat("en-US");

export function num(n) {
  const v = Number(n || 0);
  if (Number.isInteger(v) && v < 1000 && v > -1000) return String(v);
  return NUMBER.format(v);
}

const DOLLARS = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const ONE_DECIMAL = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });

/** Money, as apps/runs/formats.py writes it: "$0.0329" under $1, "$1,234.50" from $1. */
export function usd(value) {
  if (value == null) return "unknown";
  const v = Number(value);
  if (v === 0) return "$0";
  if (v < 0.0001) return "<$0.0001";
  return `$${v < 1 ? v.toFixed(4) : DOLLARS.format(v)}`;
}

/**
 * Prompt caching of a call or a run (root.turn, subcall.finished, totals): "12,345 cached tokens ·
 * saved $0.0123". "" when the fields are absent or there was nothing to tell (no cached token and no
 * saving): a run without caching shows nothing rather than zeros. A negative saving is what writing
 * to the cache cost over uncached input; a null one is a price litellm does not know.
 */
export function cacheNote(cachedTokens, savingUsd) {
  const cached = Number(cachedTokens || 0);
  const saving = savingUsd == null ? null : Number(savingUsd);
  if (!cached && !saving) return "";
  const parts = [cached ? `${num(cached)} cached token${cached === 1 ? "" : "s"}` : "no cached tokens"];
  if (saving === null) parts.push("saving unknown");
  else if (saving > 0) parts.push(`saved ${usd(saving)}`);
  else if (saving < 0) parts.push(`cache writes cost ${usd(-saving)} more`);
  return parts.join(" · ");
}

/** Sizes in decimal units (1 MB = 10^6 bytes), as apps/runs/formats.py writes them. */
export function bytes(n) {
  let value = Number(n || 0);
  if (value < 1000) return `${num(value)} bytes`;
  const units = ["KB", "MB", "GB", "TB"];
  let unit = -1;
  while (unit < units.length - 1 && (unit < 0 || value >= 999.95)) {
    value /= 1000;
    unit += 1;
  }
  return `${ONE_DECIMAL.format(value)} ${units[unit]}`;
}

/** A total: "unknown" when nothing was priced, "≥ $x (n calls unpriced)" when some were not. */
export function totalCost(cost, unknownCalls, pricedCalls = null) {
  if (unknownCalls && !cost && pricedCalls !== true) {
    return `unknown (${unknownCalls} call${unknownCalls === 1 ? "" : "s"} unpriced)`;
  }
  if (unknownCalls) return `≥ ${usd(cost)} (${unknownCalls} call${unknownCalls === 1 ? "" : "s"} unpriced)`;
  return usd(cost);
}

export function seconds(s) {
  if (s == null || Number.isNaN(s)) return "–";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  const rest = Math.floor(s % 60);
  if (m < 60) return `${m} min ${String(rest).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

export function clock(s) {
  const total = Math.max(0, Math.floor(s || 0));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  const mm = String(m).padStart(2, "0");
  const ss = String(sec).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export const OFFLINE_NOTE = "offline heuristic stand-in, not a language model";

/** A model name, with the offline heuristic clearly labelled wherever it appears. */
export function modelHtml(model) {
  if (!model) return "";
  if (isOffline(model)) {
    return `<span class="model">${esc(model)}</span> <span class="badge-offline" title="${OFFLINE_NOTE}">heuristic stand-in</span>`;
  }
  return `<span class="model">${esc(model)}</span>`;
}

export function preview(text, n = 120) {
  const flat = String(text || "").replace(/\s+/g, " ").trim();
  return flat.length > n ? `${flat.slice(0, n - 1)}…` : flat;
}

export function el(tag, attrs = {}, html = null) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  if (html !== null) node.innerHTML = html;
  return node;
}
