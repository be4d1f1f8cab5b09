// Entry point of the run page (templates/runs/run_detail.html): read the server-rendered shell's
// data attributes, mount the explorer in its place and stream the run's events into it.
import { mount } from "./explorer.js";
import { LiveStream } from "./live.js";

const root = document.getElementById("explorer");
const d = root.dataset;
const limits = document.getElementById("run-limits");
const documents = [...root.querySelectorAll(".run-doc")].map((n) => ({ name: n.dataset.name, chars: Number(n.dataset.chars) }));
const explorer = mount(root, {
  run: {
    question: d.question, status: d.status, mode: d.mode, root_model: d.rootModel, sub_model: d.subModel,
    final_answer: d.finalAnswer, answer_source: d.answerSource, failure_reason: d.failureReason,
    stop_reason: d.stopReason, limits: limits ? JSON.parse(limits.textContent) : {},
  },
  documents,
  trajectoryUrl: d.trajectoryUrl,
  cancelUrl: d.cancelUrl,
  canCancel: d.canCancel === "1",
  queueNote: d.queueNote || "",
  csrfToken: d.csrfToken,
});
const live = new LiveStream(explorer, { wsPath: d.wsPath, eventsUrl: d.eventsUrl }).start();

// A handle for the browser tests and benchmarks (tests/browser, benchmarks/bench_explorer.py) to
// inspect the page from outside; no script reads it (modules share names by import).
window.RLMExplorer = { current: explorer, live };
