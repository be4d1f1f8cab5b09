// The ask form (templates/runs/run_new.html): warn before submitting a direct-mode run whose
// documents cannot fit the root model's window, which the engine would refuse without a call.
// The documents carry data-chars, the model options data-window (tokens; empty when unknown).
import { num } from "../explorer/format.js";
import { MODES } from "../explorer/vocabulary.js";

const CHARS_PER_TOKEN = 4; // the engine's own estimate for prose

const form = document.getElementById("ask-form");
const warning = document.getElementById("direct-warning");

function selectedChars() {
  let chars = 0;
  for (const box of form.querySelectorAll('input[name="documents"]:checked')) chars += Number(box.dataset.chars) || 0;
  return chars;
}

/** The warning text, or "" when the run can go ahead. */
function problem() {
  const mode = form.querySelector('input[name="mode"]:checked');
  const model = form.querySelector('select[name="root_model"]');
  if (!mode || mode.value !== MODES.DIRECT || !model) return "";
  const option = model.selectedOptions[0];
  const window = option ? Number(option.dataset.window) : 0;
  const chars = selectedChars();
  const tokens = Math.ceil(chars / CHARS_PER_TOKEN);
  if (!window || tokens <= window) return "";
  return `These documents are about ${num(tokens)} tokens (${num(chars)} characters), more than the ` +
    `${num(window)}-token window of ${option.value}: direct mode will be refused. Choose mode rlm, fewer ` +
    "documents or a model with a larger window.";
}

function show(text) {
  warning.hidden = !text;
  warning.textContent = text;
}

if (form && warning) {
  form.addEventListener("change", () => {
    delete form.dataset.warned;
    show(problem());
  });
  form.addEventListener("submit", (e) => {
    // The first submit of a run that will be refused stops to say so; a second one goes ahead.
    const text = problem();
    show(text);
    if (text && !form.dataset.warned) {
      e.preventDefault();
      form.dataset.warned = "1";
      warning.textContent += " Press the button again to ask anyway.";
      warning.scrollIntoView({ block: "center" });
    }
  });
  show(problem());
}
