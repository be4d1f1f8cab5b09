// Comments on a run and on its cells and sub-call nodes.
//
// Mounts a panel on the run page (into #comments if the page has one, else at the end of <main>)
// and gives every element whose id is `cell-<cell_id>` or `node-<node_id>` a small "comment"
// button, watching the page with a MutationObserver because the explorer renders those live.
// The explorer's detail pane (#node-detail, whose data-item names the selected cell or sub-call)
// gets the same button, so a sub-call is commented on where its prompt and response are shown.
// It only talks to /api/comments/…; on any page that is not a signed-in run page (a share link,
// a list) it does nothing.
const match = location.pathname.match(/^\/runs\/([0-9a-fA-F-]{36})\/?$/);
let host = document.getElementById("comments");
const runId = (host && host.dataset.runId) || (match && match[1]);

const api = runId ? "/api/comments/runs/" + runId + "/" : null;
const TARGET = /^(cell|node)-([A-Za-z0-9_.:-]{1,64})$/;
const TARGET_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
const state = { comments: [], canComment: false, loaded: false, open: {} };
let scheduled = false;

function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
  if (text !== undefined) node.textContent = text;
  return node;
}

function request(method, url, body) {
  return fetch(url, {
    method: method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf(), "Accept": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  }).then(function (r) {
    if (r.status === 204) return {};
    return r.json().then(function (data) {
      if (!r.ok) throw new Error(data.error || ("HTTP " + r.status));
      return data;
    });
  });
}

function load() {
  return request("GET", api).then(function (data) {
    state.comments = data.comments;
    state.canComment = data.can_comment;
    state.loaded = true;
    render();
  }).catch(function () { /* not allowed or offline: leave the page as it is */ });
}

function forTarget(kind, id) {
  return state.comments.filter(function (c) { return c.target_kind === kind && c.target_id === (id || ""); });
}

function commentItem(c) {
  const li = el("li", { "class": "comment", "data-comment": c.id });
  const head = el("div", { "class": "comment-head muted" });
  head.appendChild(el("strong", {}, c.author || "(deleted user)"));
  head.appendChild(document.createTextNode(" · " + new Date(c.created_at).toLocaleString() + (c.edited_at ? " · edited" : "")));
  if (c.target_kind !== "run") {
    const a = el("a", { href: "#" + c.target_kind + "-" + c.target_id }, " on " + c.target_kind + " " + c.target_id);
    head.appendChild(a);
  }
  if (c.can_delete) {
    const del = el("button", { type: "button", "class": "linklike comment-delete" }, "delete");
    del.addEventListener("click", function () {
      if (!confirm("Delete this comment?")) return;
      request("DELETE", "/api/comments/" + c.id + "/").then(load).catch(alert);
    });
    head.appendChild(document.createTextNode(" "));
    head.appendChild(del);
  }
  li.appendChild(head);
  li.appendChild(el("div", { "class": "comment-body" }, c.body));
  return li;
}

function form(kind, id, onDone) {
  const f = el("form", { "class": "comment-form" });
  const label = kind === "run" ? "Comment on this run" : "Comment on " + kind + " " + id;
  const area = el("textarea", { name: "body", rows: "3", maxlength: "5000", "aria-label": label, placeholder: label + "…" });
  const button = el("button", { type: "submit", "class": "small primary" }, "Comment");
  const error = el("p", { "class": "error", hidden: "" });
  f.appendChild(area);
  f.appendChild(button);
  f.appendChild(error);
  f.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    request("POST", api, { body: area.value, target_kind: kind, target_id: id || "" })
      .then(function () { area.value = ""; error.hidden = true; return load(); })
      .then(onDone || function () {})
      .catch(function (e) { error.textContent = e.message; error.hidden = false; })
      .then(function () { button.disabled = false; });
  });
  return f;
}

function panel() {
  let section = host;
  if (!section) {
    section = el("section", { id: "comments", "class": "card comments-panel" });
    (document.querySelector("main") || document.body).appendChild(section);
    host = section;
  }
  section.replaceChildren();
  section.appendChild(el("h2", {}, "Comments (" + state.comments.length + ")"));
  const list = el("ul", { "class": "plain comment-list" });
  state.comments.forEach(function (c) { list.appendChild(commentItem(c)); });
  if (!state.comments.length) list.appendChild(el("li", { "class": "empty" }, "No comments yet."));
  section.appendChild(list);
  if (state.canComment) section.appendChild(form("run", ""));
}

// What an element is about: a notebook cell (`cell-c3`), a node element (`node-n17`), or the
// explorer's detail pane (`#node-detail`, showing the selected cell or sub-call in data-item).
function targetOf(elm) {
  if (elm.id === "node-detail") {
    const item = elm.dataset.item;
    if (!item || !TARGET_ID.test(item)) return null;
    const kind = elm.dataset.kind;  // turns and folded batches take no comments: only cells and nodes
    if (kind !== "cell" && kind !== "node") return null;
    return { kind: kind, id: item, key: "detail:" + kind + ":" + item };
  }
  const m = elm.id.match(TARGET);
  return m ? { kind: m[1], id: m[2], key: elm.id } : null;
}

function decorate(elm) {
  const t = targetOf(elm);
  if (!t) return;
  let button = elm.querySelector(":scope > .comment-affordance");
  if (button && button.dataset.key !== t.key) { button.remove(); button = null; }
  if (!button) {
    button = el("button", { type: "button", "class": "linklike small comment-affordance" });
    button.dataset.key = t.key;
    button.addEventListener("click", function (event) {
      const now = targetOf(elm);
      if (!now) return;
      if (virtualRow(elm)) {
        // A row of the virtualised tree has a fixed height: the click goes on to the row, which
        // selects it, and the thread opens in the detail pane.
        state.open["detail:" + now.kind + ":" + now.id] = true;
        setTimeout(function () { decorateAll(); focusForm(document.getElementById("node-detail")); }, 0);
        return;
      }
      event.stopPropagation();
      state.open[now.key] = !state.open[now.key];
      thread(elm, now);
      if (state.open[now.key]) focusForm(elm);
    });
    elm.appendChild(button);
  }
  const n = forTarget(t.kind, t.id).length;
  const text = n ? n + (n === 1 ? " comment" : " comments") : "comment";
  if (button.textContent !== text) button.textContent = text;
  button.setAttribute("aria-label", (n ? n + " comments on " : "Comment on ") + t.kind + " " + t.id);
  thread(elm, t);
}

// Opening a thread is asking to write in it: the comment box takes the focus (without scrolling
// the page, as the box opens right under the button that was pressed).
function focusForm(elm) {
  const area = elm && elm.querySelector(":scope > .comment-thread textarea");
  if (area) area.focus({ preventScroll: true });
}

function virtualRow(elm) {
  return elm.getAttribute("role") === "treeitem";
}

function thread(elm, t) {
  if (virtualRow(elm)) return;
  let box = elm.querySelector(":scope > .comment-thread");
  if (box && box.dataset.key !== t.key) { box.remove(); box = null; }
  if (!state.open[t.key]) { if (box) box.remove(); return; }
  const count = String(forTarget(t.kind, t.id).length);
  if (box && box.dataset.count === count) return;
  if (box) box.remove();
  box = el("div", { "class": "comment-thread card" });
  box.dataset.key = t.key;
  box.dataset.count = count;
  box.addEventListener("click", function (event) { event.stopPropagation(); });
  const list = el("ul", { "class": "plain comment-list" });
  forTarget(t.kind, t.id).forEach(function (c) { list.appendChild(commentItem(c)); });
  box.appendChild(list);
  if (state.canComment) box.appendChild(form(t.kind, t.id));
  elm.appendChild(box);
}

function decorateAll() {
  if (!state.loaded) return;
  document.querySelectorAll('[id^="cell-"], [id^="node-"]').forEach(decorate);
}

function render() {
  panel();
  decorateAll();
}

function ours(node) {
  return node.nodeType === 1 && node.matches(".comment-affordance, .comment-thread, #comments");
}

const observer = new MutationObserver(function (mutations) {
  // Our own buttons and threads are mutations too: only the explorer's new nodes need a look.
  const foreign = mutations.some(function (m) {
    if (m.target.closest && m.target.closest(".comment-thread, #comments")) return false;
    return Array.prototype.some.call(m.addedNodes, function (n) { return !ours(n); });
  });
  if (!foreign || scheduled) return;
  scheduled = true;
  requestAnimationFrame(function () { scheduled = false; decorateAll(); });
});

const style = el("style", {}, ".comment-affordance{margin-left:.4rem;font-size:.8em}" +
  ".comment-thread{margin:.4rem 0;padding:.5rem .7rem;font-size:.9em}" +
  ".comment-list{list-style:none;padding:0;margin:.3rem 0}.comment{margin-bottom:.5rem}" +
  ".comment-body{white-space:pre-wrap}.comment-form textarea{min-height:3rem}");

function start() {
  document.head.appendChild(style);
  load().then(function () {
    observer.observe(document.body, { childList: true, subtree: true });
  });
  setInterval(function () { if (!document.hidden) load(); }, 30000);
}

if (runId) start();
