"""Serve static/ and a data directory on 127.0.0.1 so the explorer's harness page runs without
Django: `/explorer/harness.html?src=/_data/<file>.json`. Used by the browser tests and the
explorer benchmark."""

from __future__ import annotations

import functools
import os
import shutil
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "static"
CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


@contextmanager
def launch_chromium():
    """Debian's headless chromium under Playwright, with a fresh profile (Playwright gives every
    launch its own temporary user-data-dir). A missing chromium is an error, not a skip: `bin/setup
    --system` installs it, and a browser test that quietly does not run proves nothing.

    Playwright's sync API runs an event loop in this thread; Django's ORM in the same tests is
    still synchronous and safe, so DJANGO_ALLOW_ASYNC_UNSAFE is set for the browser's lifetime
    and restored after (never leaked into later tests or the subprocesses they start)."""
    if CHROMIUM is None:
        raise RuntimeError("Debian's chromium is missing: run `bin/setup --system` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield browser
            finally:
                browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class _Handler(SimpleHTTPRequestHandler):
    data_dir: Path

    def translate_path(self, path: str) -> str:
        clean = path.split("?", 1)[0].split("#", 1)[0]
        if clean.startswith("/_data/"):
            name = Path(clean[len("/_data/"):]).name  # one flat directory, no traversal
            return str(self.data_dir / name)
        return super().translate_path(path)

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, *args):  # keep test output quiet
        pass


@contextmanager
def serve_static(data_dir: Path):
    """Yield the base URL of a server for static/ plus `data_dir` under /_data/."""
    handler = type("Handler", (_Handler,), {"data_dir": Path(data_dir)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(STATIC)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
