// Python syntax highlighting for REPL cells: one tokenising regex, output escaped span by span.
import { esc } from "./format.js";

const KEYWORDS = new Set(
  ("False None True and as assert async await break class continue def del elif else except finally for " +
    "from global if import in is lambda nonlocal not or pass raise return try while with yield match case").split(" "),
);
const BUILTINS = new Set(
  ("print len range enumerate zip sorted reversed min max sum any all map filter list dict set tuple str int " +
    "float bool isinstance type repr round abs open iter next hasattr getattr sorted " +
    "context context_names llm_query llm_query_batched rlm_query FINAL FINAL_VAR SHOW_VARS").split(" "),
);

const TOKEN = new RegExp(
  [
    String.raw`(?<comment>#[^\n]*)`,
    String.raw`(?<string>[rRbBfFuU]{0,2}(?:"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?))`,
    String.raw`(?<number>\b(?:0[xX][0-9a-fA-F_]+|\d[\d_]*(?:\.\d*)?(?:[eE][+-]?\d+)?j?|\.\d+)\b)`,
    String.raw`(?<name>[A-Za-z_][A-Za-z0-9_]*)`,
  ].join("|"),
  "g",
);

export function highlightPython(code) {
  const src = String(code ?? "");
  let out = "";
  let last = 0;
  let prevName = "";
  TOKEN.lastIndex = 0;
  for (let m = TOKEN.exec(src); m; m = TOKEN.exec(src)) {
    if (m[0] === "") {
      TOKEN.lastIndex += 1;
      continue;
    }
    out += esc(src.slice(last, m.index));
    const g = m.groups;
    let cls = null;
    if (g.comment) cls = "c";
    else if (g.string) cls = "s";
    else if (g.number) cls = "n";
    else if (g.name) {
      if (KEYWORDS.has(g.name)) cls = "k";
      else if (prevName === "def" || prevName === "class") cls = "f";
      else if (BUILTINS.has(g.name)) cls = "b";
    }
    out += cls ? `<span class="hl-${cls}">${esc(m[0])}</span>` : esc(m[0]);
    prevName = g.name || (m[0].trim() ? "" : prevName);
    last = m.index + m[0].length;
  }
  return out + esc(src.slice(last));
}
