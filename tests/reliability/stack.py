"""rlmweb in its own processes on loopback, as it is deployed: for fault tests and the load script.

    with AppStack(data_dir, extra_env={...}) as app:          # embedded: `manage.py serve`
        alice = app.account("alice")                          # user, API token, session cookie
        doc = app.upload(alice, "notes.txt", "text ...")      # extracted by the app's worker
        run = app.ask(alice, question="...", documents=[doc])
        app.wait_finished(alice, [run["id"]])

With `production=True` (DATABASE_URL and REDIS_URL in the environment or `extra_env`) the web
server is uvicorn alone and the runs go to separate `celery -A rlmweb worker` processes.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
FINISHED = {"succeeded", "failed", "cancelled"}

ACCOUNT_SCRIPT = """
import json
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from apps.accounts.models import ApiToken
user = User.objects.filter(username={name!r}).first() or User.objects.create_user({name!r}, password="pw-" + {name!r} * 3)
session = SessionStore()
session.update({{SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: "apps.accounts.throttle.ThrottledModelBackend",
                 HASH_SESSION_KEY: user.get_session_auth_hash()}})
session.create()
print("ACCOUNT " + json.dumps({{"username": user.username, "token": ApiToken.issue(user)[1],
                               "session": session.session_key}}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Account:
    username: str
    token: str
    session: str

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Token {self.token}"}

    @property
    def cookie(self) -> str:
        return f"sessionid={self.session}"


class Proc:
    """A child process in its own session (so its whole group can be signalled), output to a log."""

    def __init__(self, args: list[str], env: dict, log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 20) -> None:
        if not self.alive():
            return
        self.signal_group(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.popen.wait()


class AppStack:
    def __init__(self, data_dir: Path, extra_env: dict | None = None, production: bool = False,
                 worker_concurrency: int = 8, workers: int = 1, migrate: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.production = production
        self.worker_concurrency = worker_concurrency
        self.workers = workers
        self.migrate = migrate
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL") or production}
        env.update(RLMWEB_DATA_DIR=str(self.data_dir), RLMWEB_WORKER_CONCURRENCY=str(worker_concurrency),
                   RLMWEB_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1", RLMWEB_SSL_REDIRECT="0",
                   RLMWEB_SECRET_KEY=os.environ.get("RLMWEB_SECRET_KEY") or "stack-secret-key-for-loopback-tests-only")
        env.update(extra_env or {})
        if production and not (env.get("DATABASE_URL") and env.get("REDIS_URL")):
            raise RuntimeError("production=True needs DATABASE_URL and REDIS_URL")
        self.env = env
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.web: Proc | None = None
        self.worker_procs: list[Proc] = []
        self.http = httpx.Client(base_url=self.base_url, timeout=30)

    # processes ---------------------------------------------------------------------------------
    def manage(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=self.env, capture_output=True,
                             text=True, timeout=300)
        if out.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def start(self) -> "AppStack":
        if self.migrate:
            self.manage("migrate", "--noinput")
        logs = self.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        if self.production:
            self.web = Proc([sys.executable, "-m", "uvicorn", "rlmweb.asgi:application", "--host", "127.0.0.1",
                             "--port", str(self.port), "--lifespan", "off", "--log-level", "warning"],
                            self.env, logs / "web.log")
            for i in range(self.workers):
                self.start_worker(i)
        else:
            self.web = Proc([sys.executable, "manage.py", "serve", "--port", str(self.port)], self.env,
                            logs / "web.log")
        self._wait_http()
        return self

    def start_worker(self, index: int = 0) -> Proc:
        proc = Proc([sys.executable, "-m", "celery", "-A", "rlmweb", "worker", "-Q", "celery,extraction", "--pool", "threads",
                     "--concurrency", str(self.worker_concurrency), "--loglevel", "INFO", "--without-mingle",
                     "--without-gossip", "--hostname", f"stack{index}-{os.getpid()}@%h"],
                    self.env, self.data_dir / "logs" / f"worker{index}-{time.monotonic_ns()}.log")
        deadline = time.monotonic() + 60
        while "ready." not in proc.output():
            if not proc.alive() or time.monotonic() > deadline:
                raise RuntimeError("celery worker did not start:\n" + proc.output()[-3000:])
            time.sleep(0.2)
        self.worker_procs.append(proc)
        return proc

    def _wait_http(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.http.get("/accounts/login/")
                return
            except httpx.TransportError:
                if not self.web.alive() or time.monotonic() > deadline:
                    raise RuntimeError("the web server did not start:\n" + self.web.output()[-3000:]) from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.http.close()
        for proc in [*self.worker_procs, self.web]:
            if proc is not None:
                proc.stop()

    def __enter__(self) -> "AppStack":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # the app -----------------------------------------------------------------------------------
    def account(self, name: str) -> Account:
        out = self.manage("shell", "-c", ACCOUNT_SCRIPT.format(name=name))
        line = next(line for line in out.splitlines() if line.startswith("ACCOUNT "))
        return Account(**json.loads(line[len("ACCOUNT "):]))

    def upload(self, who: Account, name: str, text: str, timeout: float = 60) -> str:
        response = self.http.post("/api/documents/", files={"file": (name, text.encode())}, headers=who.headers)
        assert response.status_code in (200, 201), response.text
        doc_id = response.json()["document"]["id"]
        deadline = time.monotonic() + timeout
        while (status := self.http.get(f"/api/documents/{doc_id}/", headers=who.headers).json()["status"]) != "ready":
            assert status != "failed" and time.monotonic() < deadline, status
            time.sleep(0.2)
        return doc_id

    def ask(self, who: Account, **body) -> dict:
        response = self.http.post("/api/runs/", json=body, headers=who.headers)
        assert response.status_code == 201, response.text
        return response.json()

    def run(self, who: Account, run_id: str) -> dict:
        return self.http.get(f"/api/runs/{run_id}/", headers=who.headers).json()

    def events(self, who: Account, run_id: str) -> list[dict]:
        events: list[dict] = []
        while True:
            page = self.http.get(f"/api/runs/{run_id}/events/", params={"since": len(events), "limit": 5000},
                                 headers=who.headers).json()
            events += page["events"]
            if not page["more"]:
                return events

    def wait_finished(self, who: Account, run_ids, timeout: float = 120) -> dict[str, dict]:
        deadline = time.monotonic() + timeout
        pending = set(run_ids)
        done: dict[str, dict] = {}
        while pending:
            for run_id in list(pending):
                summary = self.run(who, run_id)
                if summary["status"] in FINISHED:
                    done[run_id] = summary
                    pending.discard(run_id)
            if pending and time.monotonic() > deadline:
                raise AssertionError(f"runs still unfinished after {timeout} s: {sorted(pending)}")
            time.sleep(0.25)
        return done


class RedisServer:
    """A private redis-server on a free loopback port, restartable on the same port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: Proc | None = None

    def start(self) -> "RedisServer":
        self.proc = Proc(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", str(self.data_dir)], dict(os.environ),
                         self.data_dir / "redis.log")
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start:\n" + self.proc.output())
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.signal_group(signal.SIGKILL)
            self.proc.popen.wait()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (children, grandchildren, …), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


class Viewer:
    """A browser following one run over the websocket: it resumes from the last seq it saw whenever
    the socket drops, and counts what arrives twice or out of order (both must stay 0)."""

    def __init__(self, base_url: str, run_id: str, who: Account, since: int = 0) -> None:
        self.ws_base = base_url.replace("http://", "ws://")
        self.origin = base_url
        self.run_id = run_id
        self.who = who
        self.last_seq = since
        self.seqs: list[int] = []
        self.duplicates = 0
        self.gaps = 0
        self.reconnects = 0
        self.finished = False
        self.latencies: list[float] = []  # receipt time − the event's ts (emission), seconds

    def _take(self, events: list[dict]) -> None:
        now = time.time()
        for event in events:
            seq = event["seq"]
            if seq <= self.last_seq:
                self.duplicates += 1
                continue
            if seq != self.last_seq + 1:
                self.gaps += 1
            self.last_seq = seq
            self.seqs.append(seq)
            self.latencies.append(now - event["ts"])
            self.finished = self.finished or event["type"] == "run.finished"

    async def follow(self, timeout: float = 120, retry_s: float = 0.5) -> "Viewer":
        """Read until run.finished, reconnecting from the last seq on any drop."""
        import asyncio

        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, WebSocketException

        deadline = time.monotonic() + timeout
        while not self.finished:
            if time.monotonic() > deadline:
                raise TimeoutError(f"viewer of {self.run_id} saw seq {self.last_seq}, no run.finished")
            url = f"{self.ws_base}/ws/runs/{self.run_id}/?since={self.last_seq}"
            try:
                async with connect(url, origin=self.origin, additional_headers={"Cookie": self.who.cookie},
                                   proxy=None, max_size=None, open_timeout=10) as ws:
                    while not self.finished:
                        frame = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
                        if frame["type"] == "events":
                            self._take(frame["events"])
                        elif frame["type"] == "error":
                            raise AssertionError(f"the server refused the viewer: {frame}")
            except (OSError, WebSocketException, InvalidHandshake):
                self.reconnects += 1
                await asyncio.sleep(retry_s)
        return self
