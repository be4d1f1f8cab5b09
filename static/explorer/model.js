// The trajectory model: folds the run's event stream into turns, cells and sub-call nodes.
// No DOM here, so the same code serves the live page, the static harness and the benchmark.
// Events are applied in seq order exactly once; anything at or below the last applied seq is
// dropped (the server promises no duplicates, but a reconnect race must never double a node).

import { CALL_KINDS, EVENT, STATUSES } from "./vocabulary.js";

const FINISHED = [STATUSES.SUCCEEDED, STATUSES.FAILED, STATUSES.CANCELLED];

export const OFFLINE_MODEL = "offline/heuristic";

export function isOffline(model) {
  return typeof model === "string" && model.startsWith("offline/");
}

function emptyTotals() {
  return {
    cost_usd: 0, cost_unknown_calls: 0, prompt_tokens: 0, completion_tokens: 0,
    iterations: 0, subcalls: 0, max_depth_reached: 0, elapsed_s: 0,
  };
}

export class TrajectoryModel {
  constructor({ run = {}, documents = [] } = {}) {
    this.run = {
      question: run.question || "", mode: run.mode || "", root_model: run.root_model || "",
      sub_model: run.sub_model || "", limits: run.limits || {}, offline: isOffline(run.root_model) || isOffline(run.sub_model),
      status: run.status || STATUSES.QUEUED, failure_reason: run.failure_reason || null,
      stop_reason: run.stop_reason || null, forced_final: false,
      startedTs: null, finishedTs: null,
    };
    this.documents = documents.map((d) => ({ name: d.name, chars: d.chars }));
    this.totals = emptyTotals();
    if (run.totals) Object.assign(this.totals, run.totals);
    this.final = run.final_answer ? { answer: run.final_answer, source: run.answer_source || "", node_id: null } : null;
    this.turns = [];            // in seq order
    this.turnByKey = new Map(); // `${scope}|${iteration}` -> turn
    this.cells = new Map();     // cell_id -> cell
    this.cellOrder = [];
    this.nodes = new Map();     // node_id -> sub-call node
    this.nodeOrder = [];
    this.scopes = new Map();    // scope ("root" or rlm node id) -> {turns: [], cells: []}
    this.costSeries = [];       // [{t, cost, unknown, tokens}]
    this.notes = [];            // compactions, helpers, carried variables: {kind: "note", type, seq, ts, scope, data}
    this.seqs = [];
    this.lastSeq = 0;
    this.dropped = 0;           // events at or below lastSeq, ignored
    this.gaps = 0;              // seq jumps seen (should stay 0)
    this.firstTs = null;
    this.lastTs = null;
    this.version = 0;           // bumps on every applied event
    this.changes = [];          // [{kind, id}] for incremental renderers; consumers drain it
  }

  static scopeOf(nodeId) {
    return nodeId == null ? "root" : nodeId;
  }

  scope(key) {
    let s = this.scopes.get(key);
    if (!s) {
      s = { key, turns: [], cells: [] };
      this.scopes.set(key, s);
    }
    return s;
  }

  /** Apply a batch of events; returns how many were new. */
  ingest(events) {
    let applied = 0;
    for (const event of events) {
      if (!event || typeof event.seq !== "number") continue;
      if (event.seq <= this.lastSeq) {
        this.dropped += 1;
        continue;
      }
      if (event.seq !== this.lastSeq + 1) this.gaps += 1;
      this.apply(event);
      this.lastSeq = event.seq;
      this.seqs.push(event.seq);
      applied += 1;
    }
    if (applied) this.version += 1;
    return applied;
  }

  apply(event) {
    const d = event.data || {};
    const ts = event.ts;
    if (this.firstTs === null || ts < this.firstTs) this.firstTs = ts;
    if (this.lastTs === null || ts > this.lastTs) this.lastTs = ts;
    switch (event.type) {
      case EVENT.RUN_STARTED: {
        Object.assign(this.run, {
          question: d.question ?? this.run.question, mode: d.mode ?? this.run.mode,
          root_model: d.root_model ?? this.run.root_model, sub_model: d.sub_model ?? this.run.sub_model,
          limits: d.limits || this.run.limits, offline: Boolean(d.offline),
          startedTs: ts,
        });
        if (!FINISHED.includes(this.run.status)) this.run.status = STATUSES.RUNNING;
        if (Array.isArray(d.documents) && d.documents.length) {
          this.documents = d.documents.map((doc, i) => ({
            name: doc.name ?? (this.documents[i] && this.documents[i].name) ?? `document ${i + 1}`,
            chars: doc.chars ?? (this.documents[i] && this.documents[i].chars) ?? 0,
          }));
        }
        this.changes.push({ kind: "run" });
        break;
      }
      case EVENT.ROOT_TURN: {
        const scope = TrajectoryModel.scopeOf(d.node_id);
        const turn = {
          kind: "turn", seq: event.seq, ts, start: ts - (d.latency_s || 0), end: ts,
          scope, node_id: d.node_id ?? null, depth: d.depth || 0, iteration: d.iteration,
          content: d.content || "", prompt_tokens: d.prompt_tokens || 0,
          completion_tokens: d.completion_tokens || 0, cost_usd: d.cost_usd ?? null,
          latency_s: d.latency_s || 0, attempts: d.attempts ?? 1, model: d.model || "", forced: Boolean(d.forced),
          cached_tokens: d.cached_tokens ?? null, cache_saving_usd: d.cache_saving_usd ?? null,
          input: Array.isArray(d.input) ? d.input : [], id: `turn-${scope}-${d.iteration}`, cells: [],
        };
        this.turns.push(turn);
        this.turnByKey.set(`${scope}|${d.iteration}`, turn);
        this.scope(scope).turns.push(turn);
        this.changes.push({ kind: "turn", item: turn });
        break;
      }
      case EVENT.CELL_STARTED: {
        const scope = TrajectoryModel.scopeOf(d.node_id);
        const cell = {
          kind: "cell", id: d.cell_id, seq: event.seq, start: ts, end: null, scope,
          node_id: d.node_id ?? null, depth: d.depth || 0, iteration: d.iteration, index: d.index || 0,
          code: d.code || "", result: null, nodes: [], childRlms: [],
        };
        this.cells.set(cell.id, cell);
        this.cellOrder.push(cell);
        this.scope(scope).cells.push(cell);
        const turn = this.turnByKey.get(`${scope}|${d.iteration}`);
        cell.turn = turn || null;
        if (turn) turn.cells.push(cell);
        this.changes.push({ kind: "cell", item: cell });
        break;
      }
      case EVENT.CELL_FINISHED: {
        const cell = this.cells.get(d.cell_id);
        if (!cell) break;
        cell.end = ts;
        cell.finishedSeq = event.seq;
        cell.result = {
          stdout: d.stdout || "", stdout_chars: d.stdout_chars ?? (d.stdout || "").length,
          truncated: Boolean(d.truncated), error: d.error ?? null, duration_s: d.duration_s ?? ts - cell.start,
          killed: Boolean(d.killed), state_note: d.state_note ?? null,
        };
        this.changes.push({ kind: "cell-finished", item: cell });
        break;
      }
      case EVENT.SUBCALL_STARTED: {
        const node = {
          kind: "node", id: d.node_id, seq: event.seq, start: ts, end: null,
          parent_id: d.parent_id ?? null, cell_id: d.cell_id ?? null, depth: d.depth || 1,
          callKind: d.kind === CALL_KINDS.RLM ? CALL_KINDS.RLM : CALL_KINDS.LLM, model: d.model || "", prompt: d.prompt || "",
          prompt_chars: d.prompt_chars ?? (d.prompt || "").length, ranges: Array.isArray(d.ranges) ? d.ranges : [],
          batch_id: d.batch_id ?? null, batch_index: d.batch_index ?? null, result: null,
        };
        this.nodes.set(node.id, node);
        this.nodeOrder.push(node);
        const cell = node.cell_id ? this.cells.get(node.cell_id) : null;
        if (cell) {
          cell.nodes.push(node);
          if (node.callKind === CALL_KINDS.RLM) cell.childRlms.push(node);
        }
        this.changes.push({ kind: "node", item: node });
        break;
      }
      case EVENT.SUBCALL_FINISHED: {
        const node = this.nodes.get(d.node_id);
        if (!node) break;
        node.end = ts;
        node.result = {
          response: d.response || "", response_chars: d.response_chars ?? (d.response || "").length,
          prompt_tokens: d.prompt_tokens || 0, completion_tokens: d.completion_tokens || 0,
          cost_usd: d.cost_usd ?? null, latency_s: d.latency_s ?? ts - node.start,
          error: d.error ?? null, attempts: d.attempts ?? 1,
          cached_tokens: d.cached_tokens ?? null, cache_saving_usd: d.cache_saving_usd ?? null,
        };
        this.changes.push({ kind: "node-finished", item: node });
        break;
      }
      case EVENT.COST_UPDATED: {
        if (d.totals) {
          Object.assign(this.totals, d.totals);
          this.costSeries.push({
            t: ts, cost: d.totals.cost_usd || 0, unknown: d.totals.cost_unknown_calls || 0,
            tokens: (d.totals.prompt_tokens || 0) + (d.totals.completion_tokens || 0),
          });
        }
        this.changes.push({ kind: "totals" });
        break;
      }
      case EVENT.FINAL_ANSWER: {
        this.final = { answer: d.answer ?? "", source: d.source || "", node_id: d.node_id ?? null, seq: event.seq };
        this.changes.push({ kind: "final" });
        break;
      }
      case EVENT.RUN_FINISHED: {
        this.run.status = d.status || this.run.status;
        this.run.failure_reason = d.failure_reason ?? null;
        this.run.stop_reason = d.stop_reason ?? null;
        this.run.forced_final = Boolean(d.forced_final);
        this.run.finishedTs = ts;
        if (d.totals) Object.assign(this.totals, d.totals);
        this.changes.push({ kind: "run" });
        break;
      }
      case EVENT.ROOT_COMPACTED:
      case EVENT.HELPERS_LOADED:
      case EVENT.SNAPSHOT_RESTORED:
      case EVENT.SNAPSHOT_SAVED: {
        const scope = TrajectoryModel.scopeOf(d.node_id);
        const note = { kind: "note", type: event.type, seq: event.seq, ts, scope, data: d, id: `note-${event.seq}` };
        this.notes.push(note);
        if (event.type === EVENT.ROOT_COMPACTED) this.scope(scope).compactions = [...(this.scope(scope).compactions || []), note];
        this.changes.push({ kind: "note", item: note });
        break;
      }
      default:
        break; // unknown types are kept in seqs but otherwise ignored (forward compatible)
    }
  }

  get isFinished() {
    return FINISHED.includes(this.run.status);
  }

  drainChanges() {
    const out = this.changes;
    this.changes = [];
    return out;
  }

  /** The top of a scope (the run, or a child RLM): its turns in order, cells that arrived without
   * their turn, and sub-calls whose owning cell never arrived. */
  scopeChildren(key) {
    const scope = this.scopes.get(key);
    const out = [];
    if (scope) {
      out.push(...scope.turns);
      for (const cell of scope.cells) if (!cell.turn) out.push(cell);
    }
    out.push(...this.orphanChildren(key === "root" ? null : key));
    return out;
  }

  /** One hierarchy: run → root turn → cell → sub-call / child RLM → its turns → cells … */
  treeChildren(item) {
    if (item.kind === "turn") return item.cells;
    if (item.kind === "cell") return item.nodes;
    if (item.kind === "node" && item.callKind === CALL_KINDS.RLM) return this.scopeChildren(item.id);
    return [];
  }

  orphanChildren(parentId) {
    if (!this._orphans || this._orphansVersion !== this.version) {
      this._orphans = new Map();
      for (const n of this.nodeOrder) {
        if (n.cell_id && this.cells.has(n.cell_id)) continue;
        const key = n.parent_id ?? "root";
        if (!this._orphans.has(key)) this._orphans.set(key, []);
        this._orphans.get(key).push(n);
      }
      this._orphansVersion = this.version;
    }
    return this._orphans.get(parentId ?? "root") || [];
  }

  treeRoots() {
    return this.scopeChildren("root");
  }

  static keyOf(item) {
    return item.kind === "cell" ? `cell:${item.id}` : item.id;
  }

  /** Cost and tokens per tree item (turn, cell, node), rolled up from the leaves: root turns and llm
   * sub-calls. An rlm node's own finished figures are already an aggregate, so they are not added. */
  rollups() {
    if (this._roll && this._rollVersion === this.version) return this._roll;
    const roll = new Map();
    const own = (item) => {
      if (item.kind === "turn") {
        return { cost: item.cost_usd ?? 0, unknown: item.cost_usd == null ? 1 : 0, tokens: item.prompt_tokens + item.completion_tokens };
      }
      if (item.kind === "node" && item.callKind === CALL_KINDS.RLM) {
        // A child RLM's summarising calls (root.compacted) are its root's calls: not tree items.
        const sum = { cost: 0, unknown: 0, tokens: 0 };
        for (const c of this.scopes.get(item.id)?.compactions || []) {
          sum.cost += c.data.cost_usd ?? 0;
          sum.unknown += c.data.cost_usd == null ? 1 : 0;
          sum.tokens += (c.data.prompt_tokens || 0) + (c.data.completion_tokens || 0);
        }
        return sum;
      }
      if (item.kind !== "node" || !item.result) return { cost: 0, unknown: 0, tokens: 0 };
      const r = item.result;
      return { cost: r.cost_usd ?? 0, unknown: r.cost_usd == null ? 1 : 0, tokens: r.prompt_tokens + r.completion_tokens };
    };
    const visit = (item) => {
      const key = TrajectoryModel.keyOf(item);
      if (roll.has(key)) return roll.get(key);
      const sum = { ...own(item), count: 0 };
      roll.set(key, sum); // guards against cycles in malformed input
      for (const child of this.treeChildren(item)) {
        const c = visit(child);
        sum.cost += c.cost;
        sum.unknown += c.unknown;
        sum.tokens += c.tokens;
        sum.count += c.count + (child.kind === "node" ? 1 : 0);
      }
      return sum;
    };
    for (const item of this.treeRoots()) visit(item);
    for (const n of this.nodeOrder) visit(n);
    this._roll = roll;
    this._rollVersion = this.version;
    return roll;
  }

  /** The chain of tree items above a node, cell or turn (outermost first), for deep links. */
  ancestors(item) {
    const chain = [];
    let cur = item;
    const guard = new Set();
    while (cur && !guard.has(cur)) {
      guard.add(cur);
      let parent = null;
      if (cur.kind === "node") {
        parent = cur.cell_id && this.cells.has(cur.cell_id) ? this.cells.get(cur.cell_id) : null;
        if (!parent && cur.parent_id) parent = this.nodes.get(cur.parent_id) || null;
      } else if (cur.kind === "cell") {
        parent = cur.turn || (cur.node_id ? this.nodes.get(cur.node_id) || null : null);
      } else if (cur.kind === "turn" && cur.node_id) {
        parent = this.nodes.get(cur.node_id) || null;
      }
      if (parent) chain.unshift(parent);
      cur = parent;
    }
    return chain;
  }

  runningNodes() {
    let n = 0;
    for (const node of this.nodeOrder) if (!node.result) n += 1;
    return n;
  }
}
