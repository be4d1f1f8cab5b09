// Live events for the explorer: a websocket to /ws/runs/<id>/?since=<last seq held>, reconnecting
// with backoff from the last seq the model holds. The model drops any event at or below that seq,
// so a replay that overlaps what we already have never doubles anything. When the socket cannot
// be opened, the events.json endpoint fills the gap between attempts.

const REFUSED = {
  4400: "The server refused the stream request (bad request).",
  4401: "You are signed out: reload the page to sign in again.",
  4403: "You no longer have access to this run.",
  4404: "This run does not exist, or you no longer have access to it.",
};

export class LiveStream {
  constructor(explorer, { wsPath, eventsUrl }) {
    this.explorer = explorer;
    this.model = explorer.model;
    this.wsPath = wsPath;
    this.eventsUrl = eventsUrl;
    this.attempt = 0;
    this.socket = null;
    this.stopped = false;
    this.replayed = false;
  }

  start() {
    this.connect();
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && !this.socket && !this.stopped) this.connect();
    });
    return this;
  }

  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return `${proto}//${location.host}${this.wsPath}?since=${this.model.lastSeq}`;
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    this.explorer.setConnection(this.attempt ? "reconnecting…" : "connecting…");
    let socket;
    try {
      socket = new WebSocket(this.url());
    } catch {
      this.retry();
      return;
    }
    this.socket = socket;
    this.replayed = false;
    socket.addEventListener("open", () => {
      this.explorer.setConnection("replaying…");
    });
    socket.addEventListener("message", (e) => this.onMessage(e));
    socket.addEventListener("close", (e) => this.onClose(e, socket));
  }

  onMessage(e) {
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch {
      return;
    }
    if (msg.type === "events" && Array.isArray(msg.events)) {
      this.attempt = 0;
      this.explorer.ingest(msg.events);
    } else if (msg.type === "replayed") {
      this.attempt = 0;
      this.replayed = true;
      this.explorer.setStatus(msg.status);
      if (this.model.isFinished && this.model.lastSeq >= (msg.last_seq || 0)) this.finish();
      else this.explorer.setConnection("live");
    }
    if (this.replayed && this.model.isFinished) this.finish();
  }

  finish() {
    this.stopped = true;
    this.explorer.setConnection("");
    if (this.socket && this.socket.readyState <= 1) this.socket.close(1000);
  }

  onClose(e, socket) {
    if (socket !== this.socket) return;
    this.socket = null;
    if (this.stopped) return;
    if (REFUSED[e.code]) {
      this.stopped = true;
      this.explorer.setConnection(REFUSED[e.code]);
      return;
    }
    this.retry();
  }

  async retry() {
    this.attempt += 1;
    // 0.5 s, 1 s, 2 s … up to 15 s, with jitter so many viewers do not reconnect in step.
    const delay = Math.min(15000, 500 * 2 ** Math.min(this.attempt - 1, 5)) * (0.75 + Math.random() * 0.5);
    this.explorer.setConnection(`disconnected: retrying in ${Math.ceil(delay / 1000)} s`);
    if (this.attempt >= 2) await this.catchUp();
    if (this.stopped) return;
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Fetch what we are missing over HTTP (the socket may be blocked by a proxy). */
  async catchUp() {
    if (!this.eventsUrl) return;
    try {
      for (let page = 0; page < 50; page += 1) {
        const sep = this.eventsUrl.includes("?") ? "&" : "?";
        const resp = await fetch(`${this.eventsUrl}${sep}since=${this.model.lastSeq}&limit=1000`, {
          credentials: "same-origin", headers: { Accept: "application/json" },
        });
        if (!resp.ok) return;
        const body = await resp.json();
        this.explorer.ingest(body.events || []);
        this.explorer.setStatus(body.status);
        if (!body.more) break;
      }
      if (this.model.isFinished) this.finish();
    } catch {
      // offline: the next websocket attempt will try again
    }
  }
}
