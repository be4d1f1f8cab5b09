// The explorer harness (harness.html): renders a recorded trajectory with the explorer alone, no
// server. harness.html?src=<url of a JSON file> where the file is an event list or
// {"events": [...], "run": {...}, "documents": [...]} (the trajectory download works too). Without
// src it waits for window.loadTrajectory(data). Used by the browser tests and
// benchmarks/bench_explorer.py, which drive it from outside through window.loadTrajectory and
// window.RLMExplorer.current; no script reads those.
import { mount } from "./explorer.js";

function normalise(data) {
  if (Array.isArray(data)) return { events: data };
  return { events: data.events || [], run: data.run || {}, documents: data.documents || (data.run && data.run.documents) || [] };
}

function loadTrajectory(data) {
  const { events, run, documents } = normalise(data);
  performance.mark("explorer-data");
  const explorer = mount(document.getElementById("explorer"), { events, run, documents });
  performance.mark("explorer-mounted");
  explorer.ready.then(() => performance.mark("explorer-ready"));
  window.RLMExplorer = { current: explorer };
  return explorer;
}

window.loadTrajectory = loadTrajectory;

const src = new URLSearchParams(location.search).get("src");
if (src) {
  const response = await fetch(src);
  loadTrajectory(await response.json());
} else {
  document.getElementById("harness-status").textContent = "Call window.loadTrajectory(events).";
}
