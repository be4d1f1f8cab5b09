// Derived views of a trajectory: context coverage, failure-pattern flags and search.
// Pure functions of the model, so tests and the benchmark can call them without a page.
import { num } from "./format.js";
import { ANSWER_SOURCES, STATUSES } from "./vocabulary.js";

/** A range the engine located exactly: `{doc, start, end}` (what the code sliced, or text found once). */
export function isExactRange(r) {
  return Boolean(r) && Number.isFinite(r.start) && Number.isFinite(r.end) && r.end > r.start;
}

/** A range the engine could not place: `{doc, chars, places}`, the text occurring `places` (≥ 2) times.
 * It is read, but where is unknown, so it never marks the coverage map. */
export function isAmbiguousRange(r) {
  return Boolean(r) && !isExactRange(r) && (r.places >= 2 || (r.start == null && r.end == null));
}

/** Per document: merged covered spans (exact ranges only), covered chars, fraction, how many exact
 * ranges read it (`reads`) and how many reads could not be placed (`ambiguous`, `ambiguousChars`). */
export function coverage(model) {
  // The map, the flags and the summary all ask for it after the same batch of events: once per version.
  const cached = COVERAGE.get(model);
  if (cached && cached.version === model.version && cached.nodes === model.nodeOrder.length) return cached.value;
  const value = computeCoverage(model);
  COVERAGE.set(model, { version: model.version, nodes: model.nodeOrder.length, value });
  return value;
}

const COVERAGE = new WeakMap();

function computeCoverage(model) {
  const perDoc = model.documents.map((doc) => ({
    name: doc.name, chars: doc.chars || 0, raw: [], ambiguous: 0, ambiguousChars: 0, readers: new Set(),
  }));
  for (const node of model.nodeOrder) {
    for (const r of node.ranges) {
      const doc = perDoc[r && r.doc];
      if (!doc) continue;
      if (isExactRange(r)) {
        doc.raw.push([Math.max(0, r.start), r.end, node.id]);
        doc.readers.add(node.id);
      } else if (isAmbiguousRange(r)) {
        doc.ambiguous += 1;
        doc.ambiguousChars += Number(r.chars) || 0;
        doc.readers.add(node.id);
      }
    }
  }
  return perDoc.map((doc) => {
    const sorted = doc.raw.map((r) => [r[0], r[1]]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const spans = [];
    for (const [s, e] of sorted) {
      const last = spans[spans.length - 1];
      if (last && s <= last[1]) last[1] = Math.max(last[1], e);
      else spans.push([s, e]);
    }
    let covered = 0;
    const limit = doc.chars || Infinity;
    for (const [s, e] of spans) covered += Math.max(0, Math.min(e, limit) - Math.min(s, limit));
    return {
      name: doc.name, chars: doc.chars, spans, covered, reads: doc.raw.length,
      ambiguous: doc.ambiguous, ambiguousChars: doc.ambiguousChars, readers: doc.readers.size,
      fraction: doc.chars ? covered / doc.chars : 0, ranges: doc.raw,
    };
  });
}

/** Sub-call nodes whose exact ranges include a character offset of a document. */
export function nodesAt(model, docIndex, offset, limit = 50) {
  const out = [];
  for (const node of model.nodeOrder) {
    if (node.ranges.some((r) => r.doc === docIndex && isExactRange(r) && r.start <= offset && offset < r.end)) {
      out.push(node);
      if (out.length >= limit) break;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Flags

/** JavaScript's white space and line terminators: what `\s` and `trim()` match. */
function isSpace(c) {
  if (c <= 32) return c === 32 || (c >= 9 && c <= 13);
  if (c < 0xa0) return false;
  return c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 ||
    c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
}

/** Lower case, runs of white space as one space, trimmed: `.replace(/\s+/g, " ").trim()` in one
 * pass that keeps the already single-spaced stretches as slices (the regex is the slow part on
 * 10,000 prompts). */
function normalise(text) {
  const s = String(text || "").toLowerCase();
  const n = s.length;
  let i = 0;
  while (i < n && isSpace(s.charCodeAt(i))) i += 1;
  let out = "";
  let from = i;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c > 32 && c < 0xa0) {
      i += 1;
      continue;
    }
    if (!isSpace(c)) {
      i += 1;
      continue;
    }
    let j = i + 1;
    while (j < n && isSpace(s.charCodeAt(j))) j += 1;
    if (j === n) return out + s.slice(from, i); // trailing white space
    if (c !== 32 || j !== i + 1) {
      out += `${s.slice(from, i)} `;
      from = j;
    }
    i = j;
  }
  return out + s.slice(from, n);
}

const MINHASH_K = 24;
const BANDS = 6; // 6 bands of 4 rows: pairs with Jaccard ≳ 0.7 almost always collide in some band
const ROWS = MINHASH_K / BANDS;
const SEEDS = Array.from({ length: MINHASH_K }, (_, i) => [
  (Math.imul(i + 1, 0x9e3779b1) | 1) >>> 0, Math.imul(i + 7, 0x85ebca6b) >>> 0,
]);

const SEED_MUL = Uint32Array.from(SEEDS, (s) => s[0]);
const SEED_XOR = Uint32Array.from(SEEDS, (s) => s[1]);
const FNV_PRIME = 0x01000193;

// Scratch buffers for signatures, grown as needed: the text's UTF-16 units and its word spans.
let CODES = new Uint16Array(4096);
let STARTS = new Int32Array(1024);
let ENDS = new Int32Array(1024);

/** FNV-1a over CODES[from, to), continuing from state h (the same values as over that text). */
function fnvRange(h, from, to) {
  for (let i = from; i < to; i += 1) h = Math.imul(h ^ CODES[i], FNV_PRIME);
  return h;
}

/** A MinHash signature over word 3-shingles (at most ~600 shingles sampled evenly) of a
 * normalised text (lower case, single spaces, trimmed). Each shingle is hashed in place, so the
 * values are those of FNV-1a over the string "w1 w2 w3" without building it. */
function signatureOfNormalised(norm) {
  // One pass: copy the text's units and note the words (single spaces, so word j is
  // [STARTS[j], ENDS[j]) and the shingle from word i is [STARTS[i], ENDS[i + 2])).
  const len = norm.length;
  if (CODES.length < len) CODES = new Uint16Array(len * 2);
  const codes = CODES;
  let count = 0;
  let from = 0;
  for (let i = 0; i < len; i += 1) {
    const c = norm.charCodeAt(i);
    codes[i] = c;
    if (c === 32) {
      if (count + 1 >= STARTS.length) growWordSpans();
      STARTS[count] = from;
      ENDS[count] = i;
      count += 1;
      from = i + 1;
    }
  }
  if (count + 1 >= STARTS.length) growWordSpans();
  STARTS[count] = from;
  ENDS[count] = len;
  count += 1;
  const n = Math.max(1, count - 2);
  const step = Math.max(1, Math.floor(n / 600));
  const sig = new Uint32Array(MINHASH_K).fill(0xffffffff);
  for (let i = 0; i < n; i += step) {
    let h;
    if (i + 2 < count) {
      h = fnvRange(0x811c9dc5, STARTS[i], ENDS[i + 2]) >>> 0;
    } else {
      // Fewer than three words: "w1 w2 " or "w1  ", as the template string would give.
      h = fnvRange(0x811c9dc5, STARTS[i], ENDS[i]);
      h = Math.imul(h ^ 32, FNV_PRIME);
      if (i + 1 < count) h = fnvRange(h, STARTS[i + 1], ENDS[i + 1]);
      h = Math.imul(h ^ 32, FNV_PRIME) >>> 0;
    }
    const hs = h >>> 15;
    for (let k = 0; k < MINHASH_K; k += 1) {
      const v = (Math.imul(h ^ SEED_XOR[k], SEED_MUL[k]) ^ hs) >>> 0;
      if (v < sig[k]) sig[k] = v;
    }
  }
  return sig;
}

function growWordSpans() {
  const starts = new Int32Array(STARTS.length * 2);
  const ends = new Int32Array(ENDS.length * 2);
  starts.set(STARTS);
  ends.set(ENDS);
  STARTS = starts;
  ENDS = ends;
}

/** Per node, its prompt's signature, kept while the prompt is unchanged: a live run recomputes
 * the flags every few seconds and only new nodes need hashing. */
const SIGNATURES = new WeakMap();

function signatureOfNode(node, norm) {
  const cached = SIGNATURES.get(node);
  if (cached && cached.prompt === node.prompt) return cached.sig;
  const sig = signatureOfNormalised(norm);
  SIGNATURES.set(node, { prompt: node.prompt, sig });
  return sig;
}

function similarity(a, b) {
  let same = 0;
  for (let k = 0; k < MINHASH_K; k += 1) if (a[k] === b[k]) same += 1;
  return same / MINHASH_K;
}

function find(parent, x) {
  while (parent[x] !== x) {
    parent[x] = parent[parent[x]];
    x = parent[x];
  }
  return x;
}

/** Distinctive tokens of a text: words of four letters or more, and anything with a digit. */
function keyTokens(text) {
  const tokens = normalise(text).match(/[\p{L}\p{N}]+(?:[._-][\p{L}\p{N}]+)*/gu) || [];
  return new Set(tokens.filter((t) => t.length >= 4 || /\d/.test(t)));
}

/** Markdown emphasis and list marks are presentation, not part of the computed value. */
function plain(text) {
  return String(text || "").replace(/[*_`#>]+/g, " ").replace(/^\s*[-+]\s+/gm, " ");
}

// What a sub-call says when its passage holds nothing: "NOT FOUND", "None.", "No relevant information"…
const NOT_FOUND = /^(?:not found|none|n\/a|no answer|unknown|nothing(?: found| relevant)?|no (?:relevant |such )?(?:information|mention|answer|data|match(?:es)?)(?: (?:found|in (?:this|the) (?:passage|text|context)))?|(?:the )?(?:passage|text|context) does not (?:say|mention|contain)\b.*|i (?:could not|couldn't|cannot|can't) find\b.*)$/;

/** Whether a sub-call response means "nothing here" (short, and one of the usual phrasings). */
export function isNotFound(response) {
  if (response && response.length > 400) return false; // long answers say something; skip the regex
  const text = normalise(String(response || "")).replace(/[.!*_`"'\u201c\u201d]+/g, "").trim();
  return text === "" || (text.length <= 120 && NOT_FOUND.test(text));
}

/** Whether an answer (markdown already stripped) occurs in some values: verbatim after normalising,
 * or with all its digit-bearing tokens (codes, counts, dates), or with most of its words. */
export function answerFoundIn(answerText, values) {
  const answer = normalise(answerText);
  const haystack = values.map(normalise);
  if (haystack.some((v) => v.includes(answer) || (v.length >= 8 && answer.includes(v)))) return true;
  const want = keyTokens(answerText);
  const have = new Set();
  for (const v of values) for (const t of keyTokens(v)) if (want.has(t)) have.add(t);
  const digits = [...want].filter((t) => /\d/.test(t));
  if (digits.length) return digits.every((t) => have.has(t));
  if (want.size) return have.size / want.size >= 0.5;
  return false;
}

/**
 * Failure patterns from the paper, as flags: [{id, severity, title, detail, items: [{kind, id}]}].
 * - duplicate-prompts: the same sub-call prompt sent more than once (exact, after whitespace).
 * - near-duplicate-prompts: groups of ≥ 3 sub-calls whose prompts are near-identical (MinHash of
 *   word 3-shingles, estimated Jaccard ≥ 0.8) but not exact copies: re-verification loops.
 * - document-never-read (succeeded runs with sub-calls, some range recorded): a document no
 *   sub-call prompt carried.
 * - all-not-found (succeeded runs): every finished sub-call answered NOT FOUND or the like.
 * - answer-not-in-trajectory: the final answer is in no cell output and no sub-call response;
 *   otherwise final-not-computed: it is not in the last cells' output nor the last responses
 *   (FINAL_VAR answers come from a computed variable and are exempt from both).
 * - forced-final, cell errors and failed sub-calls are reported as well.
 */
export function flags(model, { nearThreshold = 0.8, minGroup = 3 } = {}) {
  const out = [];
  const nodes = model.nodeOrder.filter((n) => n.prompt);

  // Exact duplicates.
  // Each prompt is normalised once: the groups are keyed by it and the signatures hash it.
  const byPrompt = new Map();
  const normOf = new Map(); // node -> normalised prompt
  for (const n of nodes) {
    const key = normalise(n.prompt);
    normOf.set(n, key);
    const group = byPrompt.get(key);
    if (group === undefined) byPrompt.set(key, [n]);
    else group.push(n);
  }
  const dupGroups = [...byPrompt.values()].filter((g) => g.length > 1).sort((a, b) => b.length - a.length);
  if (dupGroups.length) {
    const repeats = dupGroups.reduce((s, g) => s + g.length - 1, 0);
    out.push({
      id: "duplicate-prompts", severity: "warn",
      title: `Same sub-call prompt repeated: ${repeats} repeat${repeats === 1 ? "" : "s"} in ${dupGroups.length} group${dupGroups.length === 1 ? "" : "s"}`,
      detail: "Identical prompts were sent more than once; the answers were already known.",
      groups: dupGroups.slice(0, 20).map((g) => g.map((n) => n.id)),
    });
  }

  // Near duplicates: one representative per exact group, MinHash + LSH banding, union-find.
  const reps = [...byPrompt.values()].map((g) => g[0]);
  if (reps.length >= minGroup) {
    const sigs = reps.map((n) => signatureOfNode(n, normOf.get(n)));
    const parent = reps.map((_, i) => i);
    for (let b = 0; b < BANDS; b += 1) {
      const buckets = new Map();
      for (let i = 0; i < reps.length; i += 1) {
        // The band's values as a string key: two UTF-16 units per value, no number formatting.
        let key = "";
        for (let r = 0; r < ROWS; r += 1) {
          const v = sigs[i][b * ROWS + r];
          key += String.fromCharCode(v & 0xffff, v >>> 16);
        }
        const bucket = buckets.get(key);
        if (bucket === undefined) buckets.set(key, i);
        else if (find(parent, bucket) !== find(parent, i) && similarity(sigs[bucket], sigs[i]) >= nearThreshold) {
          parent[find(parent, i)] = find(parent, bucket);
        }
      }
    }
    const groups = new Map();
    for (let i = 0; i < reps.length; i += 1) {
      const root = find(parent, i);
      if (!groups.has(root)) groups.set(root, []);
      groups.get(root).push(...byPrompt.get(normOf.get(reps[i])));
    }
    const near = [...groups.values()]
      .filter((g) => g.length >= minGroup && new Set(g.map((n) => normOf.get(n))).size > 1)
      .sort((a, b) => b.length - a.length);
    if (near.length) {
      const total = near.reduce((s, g) => s + g.length, 0);
      out.push({
        id: "near-duplicate-prompts", severity: "warn",
        title: `Many near-identical sub-calls: ${total} calls in ${near.length} group${near.length === 1 ? "" : "s"}`,
        detail: "Prompts that differ only slightly (≥ 80% shared word shingles): often the same check run again and again.",
        groups: near.slice(0, 20).map((g) => g.map((n) => n.id)),
      });
    }
  }

  // Answer quality: a run can succeed while reading nothing relevant.
  const succeeded = model.isFinished && model.run.status === STATUSES.SUCCEEDED;
  const finished = model.nodeOrder.filter((n) => n.result && !n.result.error);
  if (succeeded && model.nodeOrder.length) {
    // Without a single range in the run, where the sub-calls read is unknown (text the engine could
    // not place), not "nowhere": judged only when some range was recorded.
    const cov = coverage(model);
    const unread = cov.some((d) => d.readers > 0) ? cov.filter((d) => d.readers === 0).map((d) => d.name) : [];
    if (unread.length) {
      out.push({
        id: "document-never-read", severity: "warn",
        title: `${unread.length === 1 ? "A document was" : `${unread.length} documents were`} never read by a sub-call: ${unread.join(", ")}`,
        detail: "No sub-call prompt carried any part of it, so the answer cannot rest on it (the root may still have searched it with code).",
        groups: [],
      });
    }
  }
  if (succeeded && finished.length && finished.every((n) => isNotFound(n.result.response))) {
    out.push({
      id: "all-not-found", severity: "bad",
      title: `Every sub-call answered NOT FOUND (${num(finished.length)} of ${num(finished.length)})`,
      detail: "No sub-call found anything relevant, yet the run gave an answer: it did not come from what the sub-calls read.",
      groups: [finished.slice(0, 30).map((n) => n.id)],
    });
  }

  // The final answer against what the trajectory computed: anywhere, then last.
  const final = model.final;
  if (final && final.answer && final.source !== ANSWER_SOURCES.FINAL_VAR && model.isFinished) {
    const answer = plain(final.answer);
    const rootCells = model.cellOrder.filter((c) => c.scope === "root" && c.result);
    const lastCells = rootCells.slice(-3);
    const lastNodes = finished.slice(-20);
    const lastValues = [...lastCells.map((c) => c.result.stdout), ...lastNodes.map((n) => n.result.response)].filter(Boolean);
    // Everything only when the last values miss it: most answers are found there, cheaply.
    const inLast = lastValues.length > 0 && answerFoundIn(answer, lastValues);
    const allValues = inLast ? [] : [
      ...model.cellOrder.filter((c) => c.result).flatMap((c) => [c.result.stdout, c.result.state_note]),
      ...finished.map((n) => n.result.response),
    ].filter(Boolean);
    if (!inLast && allValues.length && !answerFoundIn(answer, allValues)) {
      out.push({
        id: "answer-not-in-trajectory", severity: "bad",
        title: "Final answer found in no computed value",
        detail: "Neither any cell's output nor any sub-call's response contains the answer: the model answered from its own knowledge or reasoning, not from the documents.",
        groups: [],
      });
    } else if (!inLast && lastValues.length) {
      out.push({
        id: "final-not-computed", severity: "bad",
        title: "Final answer not among the last computed values",
        detail: "The answer text is found neither in the last cells' output nor in the last sub-call responses: the model may have answered from its own reasoning instead of the trajectory.",
        groups: [[...lastCells.map((c) => c.id), ...lastNodes.slice(-5).map((n) => n.id)]],
      });
    }
  }
  if (model.run.forced_final) {
    out.push({
      id: "forced-final", severity: "warn", title: "Answer forced at a limit",
      detail: `The run hit a limit (${model.run.stop_reason || "budget"}) and the root was asked once more for its best answer.`,
      groups: [],
    });
  }
  const failedCells = model.cellOrder.filter((c) => c.result && (c.result.error || c.result.killed));
  if (failedCells.length) {
    out.push({
      id: "cell-errors", severity: "info",
      title: `${failedCells.length} cell${failedCells.length === 1 ? "" : "s"} raised an error`,
      detail: "", groups: [failedCells.slice(0, 30).map((c) => c.id)],
    });
  }
  const failedNodes = model.nodeOrder.filter((n) => n.result && n.result.error);
  if (failedNodes.length) {
    out.push({
      id: "subcall-errors", severity: "info",
      title: `${failedNodes.length} sub-call${failedNodes.length === 1 ? "" : "s"} failed`,
      detail: "", groups: [failedNodes.slice(0, 30).map((n) => n.id)],
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Search

/** Find `query` (case-insensitive) in turns, code, outputs, prompts and responses. */
export function search(model, query, limit = 200) {
  const q = query.trim().toLowerCase();
  const results = [];
  let total = 0;
  if (q.length < 2) return { results, total };
  const consider = (target, field, text) => {
    if (!text) return;
    const i = text.toLowerCase().indexOf(q);
    if (i < 0) return;
    total += 1;
    if (results.length < limit) {
      const from = Math.max(0, i - 60);
      results.push({
        target, field, before: (from > 0 ? "…" : "") + text.slice(from, i),
        match: text.slice(i, i + q.length), after: text.slice(i + q.length, i + q.length + 80),
      });
    }
  };
  for (const t of model.turns) consider({ kind: "turn", id: t.id }, "reasoning", t.content);
  for (const c of model.cellOrder) {
    consider({ kind: "cell", id: c.id }, "code", c.code);
    if (c.result) {
      consider({ kind: "cell", id: c.id }, "output", c.result.stdout);
      consider({ kind: "cell", id: c.id }, "error", c.result.error);
    }
  }
  for (const n of model.nodeOrder) {
    consider({ kind: "node", id: n.id }, "prompt", n.prompt);
    if (n.result) consider({ kind: "node", id: n.id }, "response", n.result.response || n.result.error);
  }
  if (model.final) consider({ kind: "final", id: "final" }, "final answer", model.final.answer);
  return { results, total };
}
