// Live progress of an evaluation's results page, from ws/evals/<id>/ (see apps/evals/consumers.py).
// Updates the counters and each matrix cell's done / accuracy / interval in place; reloads the
// page once the evaluation stops running, for the final tables and plots. No inline script: this
// file is an ES module loaded with <script type="module" src>, so a strict CSP allows it.
const root = document.getElementById("eval-progress");

function pct(x) { return x === null || x === undefined ? "—" : Math.round(100 * x) + "%"; }
function ci(pair) { return pair ? Math.round(100 * pair[0]) + "–" + Math.round(100 * pair[1]) + "%" : "—"; }
function usd(x) { return x === null || x === undefined ? "unknown" : "$" + x.toFixed(4); }
function setText(el, text) { if (el) el.textContent = text; }

function render(p) {
  setText(document.getElementById("eval-done"), p.done + " / " + p.total + " cases scored");
  setText(document.getElementById("eval-spend"), "spent " + usd(p.spent_usd) +
    (p.max_cost_usd ? " of a $" + p.max_cost_usd + " cap" : ""));
  const rows = document.querySelectorAll("#eval-matrix tr[data-cell]");
  const byKey = {};
  rows.forEach(function (row) { byKey[row.dataset.cell] = row; });
  p.matrix.forEach(function (cell) {
    const row = byKey[cell.model + "|" + cell.mode + "|" + cell.size];
    if (!row) return;
    setText(row.querySelector(".done"), cell.cases + " / " + cell.total);
    setText(row.querySelector(".accuracy"), pct(cell.accuracy));
    setText(row.querySelector(".ci"), ci(cell.ci95));
  });
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(scheme + "//" + location.host + root.dataset.ws);
  socket.addEventListener("message", function (message) {
    const data = JSON.parse(message.data);
    if (data.type !== "progress") return;
    render(data);
    if (data.status !== root.dataset.status) location.reload();  // prepared, finished or cancelled
  });
  socket.addEventListener("close", function (event) {
    if (event.code === 4401 || event.code === 4404) return;
    setTimeout(function () { location.reload(); }, 5000);  // lost connection: fall back to reloading
  });
}

if (root && root.dataset.ws) connect();
