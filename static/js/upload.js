/* Documents page: chunked, resumable uploads and live extraction status. No build step.
 *
 * Protocol (see apps/documents/api.py): POST uploads/ {files: [{name, size}]} opens one upload per
 * file; each file is sent as PUT <chunk_url>?offset=N with raw bytes, chunk by chunk; on a network
 * error the chunk is retried with backoff after asking the server (GET <url>) which offset it has;
 * a 409 carries the server's offset too. POST <complete_url> creates the document (or names the
 * identical one already there), then the page polls the status endpoint every second.
 */
const RETRIES = 8;
// A document's status (apps.documents.models.DocumentStatus), as the status endpoint reports it.
const DOC = Object.freeze({ EXTRACTING: "extracting", READY: "ready", FAILED: "failed" });
const PARALLEL_FILES = 2;
const table = document.getElementById("document-table");
const tbody = table.querySelector("tbody");
const askSelected = document.getElementById("ask-selected");
const area = document.getElementById("upload");
const statusUrl = area ? area.dataset.statusUrl : "/documents/status/";

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const field = document.querySelector("input[name=csrfmiddlewaretoken]");
  return field ? field.value : "";
}

function humanBytes(n) {
  const units = ["bytes", "KB", "MB", "GB"];
  let value = n, unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return unit === 0 ? value + " bytes" : value.toFixed(1) + " " + units[unit];
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function requestJSON(method, url, body) {
  const response = await fetch(url, {
    method: method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), "Accept": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data;
  try { data = await response.json(); } catch { data = { error: "The server answered " + response.status + "." }; }
  return { status: response.status, ok: response.ok, data: data };
}

/* PUT one chunk with XMLHttpRequest, for byte-level upload progress. Rejects on network errors. */
function putChunk(url, blob, onProgress) {
  return new Promise(function (resolve, reject) {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.timeout = 120000;
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = function () {
      let data;
      try { data = JSON.parse(xhr.responseText); } catch { data = { error: "The server answered " + xhr.status + "." }; }
      resolve({ status: xhr.status, data: data });
    };
    xhr.onerror = () => reject(new Error("connection lost"));
    xhr.ontimeout = () => reject(new Error("timed out"));
    xhr.send(blob);
  });
}

/* ---- one line per file in the upload list ---- */
function uploadItem(file) {
  const li = document.createElement("li");
  li.className = "upload-item";
  const head = document.createElement("div");
  head.className = "row";
  const name = document.createElement("strong");
  name.textContent = file.name;
  const size = document.createElement("span");
  size.className = "muted";
  size.textContent = humanBytes(file.size);
  const state = document.createElement("span");
  state.className = "upload-state";
  head.append(name, size, state);
  const bar = document.createElement("div");
  bar.className = "progress";
  const fill = document.createElement("span");
  bar.append(fill);
  const message = document.createElement("div");
  message.className = "upload-message";
  li.append(head, bar, message);
  document.getElementById("upload-list").prepend(li);
  return {
    li: li,
    progress(fraction, label) {
      fill.style.width = Math.round(fraction * 100) + "%";
      state.textContent = label;
    },
    say(text, kind) {
      message.textContent = text;
      message.className = "upload-message" + (kind ? " " + kind : "");
    },
    fail(text) {
      li.classList.add("failed");
      bar.hidden = true;
      state.textContent = "Failed";
      this.say(text, "error");
    },
  };
}

async function sendFile(file, upload, item) {
  let offset = upload.offset || 0;
  let attempt = 0;
  item.progress(offset / file.size, "Uploading");
  while (offset < file.size) {
    const end = Math.min(offset + upload.chunk_size, file.size);
    const start = offset;
    try {
      const r = await putChunk(upload.chunk_url + "?offset=" + start, file.slice(start, end),
        (loaded) => item.progress((start + loaded) / file.size, "Uploading " + Math.floor(100 * (start + loaded) / file.size) + "%"));
      if (r.status === 200) { offset = r.data.offset; attempt = 0; item.say(""); continue; }
      if (r.status === 409 && typeof r.data.offset === "number") { offset = r.data.offset; continue; }
      if (r.status < 500 && r.status !== 429) { item.fail(r.data.error || "Upload refused."); return; }
      throw new Error(r.data.error || "server error " + r.status);
    } catch (error) {
      attempt += 1;
      if (attempt > RETRIES) { item.fail("Upload failed after " + RETRIES + " retries (" + error.message + "). Try again later."); return; }
      const delay = Math.min(30, 2 ** (attempt - 1));
      item.say("Connection problem (" + error.message + "); retrying in " + delay + " s…", "warn");
      await sleep(delay * 1000);
      try {
        const s = await requestJSON("GET", upload.url);
        if (s.status === 404) { item.fail(s.data.error || "The upload expired."); return; }
        if (s.ok) offset = s.data.offset;
      } catch { /* still offline: the next attempt will tell */ }
    }
  }
  item.progress(1, "Checking");
  for (let tries = 0; ; tries += 1) {
    try {
      const r = await requestJSON("POST", upload.complete_url);
      if (r.ok) { finished(item, r.data); return; }
      if (r.status < 500 || tries >= RETRIES) { item.fail(r.data.error || "The upload could not be completed."); return; }
    } catch (e) {
      if (tries >= RETRIES) { item.fail("The upload could not be completed: " + e.message); return; }
    }
    await sleep(Math.min(30, 2 ** tries) * 1000);
  }
}

function finished(item, result) {
  const doc = result.document;
  item.li.dataset.docId = doc.id;
  if (!result.created) {
    item.progress(1, "Duplicate");
    item.say("Already uploaded as " + doc.name + ".", "muted");
  } else {
    item.progress(0, "Extracting");
    item.say("");
  }
  upsertRow(doc);
  updateItem(doc);
  startPolling();
}

function updateItem(doc) {
  document.querySelectorAll('.upload-item[data-doc-id="' + doc.id + '"]').forEach(function (li) {
    const state = li.querySelector(".upload-state");
    const fill = li.querySelector(".progress span");
    const message = li.querySelector(".upload-message");
    if (state.textContent === "Duplicate") return;
    if (doc.status === DOC.EXTRACTING) {
      fill.style.width = Math.round(doc.progress * 100) + "%";
      state.textContent = "Extracting " + Math.floor(doc.progress * 100) + "%";
    } else if (doc.status === DOC.READY) {
      fill.style.width = "100%";
      state.textContent = "Ready";
      message.className = "upload-message muted";
      message.textContent = doc.chars.toLocaleString("en-US") + " characters, " + doc.lines.toLocaleString("en-US") + " lines, ≈ " + doc.tokens_estimate.toLocaleString("en-US") + " tokens";
    } else {
      li.classList.add("failed");
      li.querySelector(".progress").hidden = true;
      state.textContent = "Failed";
      message.className = "upload-message error";
      message.textContent = doc.error;
    }
  });
}

/* ---- the documents table ---- */
function upsertRow(doc) {
  let row = tbody.querySelector('tr[data-doc-id="' + doc.id + '"]');
  if (!row) {
    const template = document.getElementById("doc-row-template");
    row = template.content.firstElementChild.cloneNode(true);
    row.dataset.docId = doc.id;
    row.querySelector(".pick-doc").value = doc.id;
    row.querySelector(".pick-doc").setAttribute("aria-label", "Select " + doc.name);
    row.querySelector(".doc-name strong").textContent = doc.name;
    row.querySelector(".doc-format").textContent = doc.format;
    row.querySelector('[data-field="size"]').textContent = humanBytes(doc.size_bytes);
    const form = row.querySelector(".delete-form");
    form.action = form.dataset.actionTemplate.replace("00000000-0000-0000-0000-000000000000", doc.id);
    form.dataset.name = doc.name;
    row.querySelectorAll("a.download-file, a.download-text").forEach(function (link) {
      link.href = link.dataset.hrefTemplate.replace("00000000-0000-0000-0000-000000000000", doc.id);
    });
    const empty = tbody.querySelector(".empty-row");
    if (empty) empty.remove();
    tbody.prepend(row);
  }
  row.dataset.status = doc.status;
  const badge = row.querySelector(".status");
  badge.className = "status status-" + doc.status;
  badge.textContent = { extracting: "Extracting text", ready: "Ready", failed: "Failed" }[doc.status] || doc.status;
  const bar = row.querySelector(".progress");
  bar.hidden = doc.status !== DOC.EXTRACTING;
  bar.querySelector("span").style.width = Math.round(doc.progress * 100) + "%";
  row.querySelector(".doc-error").textContent = doc.error || "";
  row.querySelector(".doc-note").textContent = doc.extraction_note || "";
  const ready = doc.status === DOC.READY;
  row.querySelector('[data-field="chars"]').textContent = ready ? doc.chars.toLocaleString("en-US") : "";
  row.querySelector('[data-field="lines"]').textContent = ready ? doc.lines.toLocaleString("en-US") : "";
  row.querySelector('[data-field="tokens"]').textContent = ready ? "≈ " + doc.tokens_estimate.toLocaleString("en-US") : "";
  const preview = row.querySelector(".preview");
  preview.hidden = !doc.preview;
  preview.querySelector("pre").textContent = doc.preview || "";
  const pick = row.querySelector(".pick-doc");
  pick.disabled = !ready;
  if (!ready) pick.checked = false;
  row.querySelector("a.download-file").hidden = doc.status === DOC.FAILED;  // a failed extraction removes the file
  row.querySelector("a.download-text").hidden = !ready;
  const ask = row.querySelector(".ask-link");
  ask.hidden = !ready;
  ask.href = "/runs/new/?documents=" + doc.id;
  updateSelection();
}

let polling = false;
async function startPolling() {
  if (polling) return;
  polling = true;
  try {
    for (;;) {
      const ids = Array.from(tbody.querySelectorAll(`tr[data-status="${DOC.EXTRACTING}"]`)).map((tr) => tr.dataset.docId);
      if (!ids.length) break;
      try {
        const r = await requestJSON("GET", statusUrl + "?ids=" + ids.join(","));
        if (r.ok) r.data.documents.forEach((doc) => { upsertRow(doc); updateItem(doc); });
      } catch { /* offline for a moment: poll again */ }
      await sleep(1000);
    }
  } finally {
    polling = false;
  }
}

/* ---- picking documents to ask about ---- */
function updateSelection() {
  const ids = Array.from(tbody.querySelectorAll(".pick-doc:checked")).map((box) => box.value);
  askSelected.href = "/runs/new/?documents=" + ids.join(",");
  askSelected.setAttribute("aria-disabled", ids.length ? "false" : "true");
  askSelected.classList.toggle("disabled", !ids.length);
}
tbody.addEventListener("change", (event) => { if (event.target.classList.contains("pick-doc")) updateSelection(); });
askSelected.addEventListener("click", (event) => {
  if (askSelected.getAttribute("aria-disabled") === "true") { event.preventDefault(); }
});
tbody.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.classList.contains("delete-form") && !confirm("Delete " + (form.dataset.name || "this document") + " and its files?")) {
    event.preventDefault();
  }
});

/* ---- choosing files ---- */
async function uploadAll(fileList) {
  const errorBox = document.getElementById("upload-error");
  errorBox.hidden = true;
  const files = Array.from(fileList);
  if (!files.length) return;
  const maxFiles = parseInt(area.dataset.maxFiles, 10);
  if (files.length > maxFiles) {
    errorBox.textContent = files.length + " files is too many for one upload: at most " + maxFiles + " at a time.";
    errorBox.hidden = false;
    return;
  }
  const items = files.map(uploadItem);
  let r;
  try {
    r = await requestJSON("POST", area.dataset.createUrl, { files: files.map((f) => ({ name: f.name, size: f.size })) });
  } catch (e) {
    items.forEach((item) => item.fail("Could not reach the server: " + e.message));
    return;
  }
  if (!r.ok) { items.forEach((item) => item.fail(r.data.error || "Upload refused.")); return; }
  const queue = [];
  r.data.uploads.forEach(function (upload, i) {
    if (upload.error) items[i].fail(upload.error);
    else queue.push([files[i], upload, items[i]]);
  });
  async function worker() {
    while (queue.length) {
      const [file, upload, item] = queue.shift();
      await sendFile(file, upload, item);
    }
  }
  await Promise.all(Array.from({ length: PARALLEL_FILES }, worker));
}

if (area) {
  const zone = document.getElementById("dropzone");
  const input = document.getElementById("file-input");
  input.addEventListener("change", () => { uploadAll(input.files); input.value = ""; });
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); }
  });
  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("dragging")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    uploadAll(event.dataTransfer.files);
  });
}

updateSelection();
startPolling();
