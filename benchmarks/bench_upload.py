"""Upload a large text file to a real server and measure it.

    python benchmarks/bench_upload.py            # 500 MB
    BENCH_UPLOAD_MB=100 python benchmarks/bench_upload.py

Compares the chunked, resumable protocol (8 MiB PUTs, what the browser does) with its naive
baseline, the single-request multipart upload (`POST /api/documents/`), on the same file and the
same server: wall time, throughput, and the server's peak resident memory during each upload
(VmHWM, reset before each). Then times text extraction by a Celery worker.

The server is uvicorn serving Django's ASGI HTTP handler (what `manage.py serve` mounts for HTTP)
and the worker is `celery -A rlmweb worker` on the embedded filesystem broker: the upload path
without the websocket routes, so this benchmark does not depend on the runs app.
Writes benchmarks/results/upload.json and prints a markdown table.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SIZE_MB = int(os.environ.get("BENCH_UPLOAD_MB", "500"))
CHUNK = 8 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_text_file(path: Path, size: int) -> None:
    """Plausible text (varied lines, some non-ASCII) written in pieces, never whole in memory."""
    block = "".join(
        f"{i:08d} Der Bär läuft über die Straße; the quick brown fox jumps over the lazy dog #{i * 7919 % 10007}\n"
        for i in range(20_000)
    ).encode()
    with path.open("wb") as f:
        written = 0
        while written < size:
            piece = block[: size - written]
            f.write(piece)
            written += len(piece)


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process, now (VmRSS) or at its peak since the last reset (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def chunked_upload(client: httpx.Client, path: Path) -> dict:
    size = path.stat().st_size
    upload = client.post("/api/documents/uploads/", json={"name": path.name, "size": size})
    upload.raise_for_status()
    upload = upload.json()
    with path.open("rb") as f:
        offset = 0
        while offset < size:
            response = client.put(f"{upload['chunk_url']}?offset={offset}", content=f.read(upload["chunk_size"]))
            response.raise_for_status()
            offset = response.json()["offset"]
    completing = time.monotonic()
    done = client.post(upload["complete_url"])
    done.raise_for_status()
    return {**done.json(), "complete_s": time.monotonic() - completing}


def multipart_upload(client: httpx.Client, path: Path) -> dict:
    with path.open("rb") as f:
        response = client.post("/api/documents/", files={"file": (path.name, f, "text/plain")})
    response.raise_for_status()
    return response.json()


def wait_ready(client: httpx.Client, doc_id: str, timeout: float = 1800) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        detail = client.get(f"/api/documents/{doc_id}/").json()
        if detail["status"] != "extracting" or time.monotonic() > deadline:
            return detail
        time.sleep(0.25)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    env = {**os.environ, "RLMWEB_DATA_DIR": str(work / "data"), "RLMWEB_WORKER_CONCURRENCY": "1",
           "RLMWEB_RATE_UPLOAD_PER_MINUTE": "1000", "RLMWEB_LOG_LEVEL": "WARNING"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    manage = [sys.executable, str(REPO / "manage.py")]
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    subprocess.run([*manage, "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    token = subprocess.run(
        [*manage, "shell", "-c",
         "from django.contrib.auth.models import User; from apps.accounts.models import ApiToken; "
         "u = User.objects.create_user('bench', password='x'); print(ApiToken.issue(u)[1])"],
        cwd=REPO, env=env, check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]
    port = free_port()
    log = (work / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "django.core.asgi:get_asgi_application",
         "--port", str(port), "--log-level", "warning", "--lifespan", "off"],
        cwd=REPO, env={**env, "DJANGO_SETTINGS_MODULE": "rlmweb.settings"}, stdout=log, stderr=subprocess.STDOUT,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "rlmweb", "worker", "-Q", "celery,extraction", "--pool", "threads",
         "--concurrency", "1",
         "--loglevel", "WARNING", "--without-mingle", "--without-gossip"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    results: dict = {"size_mb": SIZE_MB, "chunk_bytes": CHUNK}
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Token {token}"}, timeout=600)
        deadline = time.monotonic() + 120
        while True:
            try:
                client.get("/api/documents/")
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start:\n" + (work / "server.log").read_text()[-3000:]) from None
                time.sleep(0.2)
        source = work / "big.txt"
        make_text_file(source, SIZE_MB * 1_000_000)
        size = source.stat().st_size
        rows = []
        for label, method in (("chunked (8 MiB PUTs)", chunked_upload), ("single multipart POST (baseline)", multipart_upload)):
            base_rss = rss_mib(server.pid)
            reset_peak(server.pid)
            started = time.monotonic()
            outcome = method(client, source)
            took = time.monotonic() - started
            peak = rss_mib(server.pid, "VmHWM")
            doc_id = outcome["document"]["id"]
            extracted_started = time.monotonic()
            detail = wait_ready(client, doc_id)
            extraction_s = time.monotonic() - extracted_started
            assert detail["status"] == "ready", detail
            assert detail["chars"] > 0
            row = {"method": label, "seconds": round(took, 2), "mb_per_s": round(size / 1e6 / took, 1),
                   "server_peak_rss_mib": round(peak, 1), "server_rss_before_mib": round(base_rss, 1),
                   "extraction_s": round(extraction_s, 2), "chars": detail["chars"]}
            if "complete_s" in outcome:
                row["of_which_complete_s"] = round(outcome["complete_s"], 2)
            rows.append(row)
            client.delete(f"/api/documents/{doc_id}/").raise_for_status()  # so the next method is not a duplicate
        results["rows"] = rows
    finally:
        for process in (server, worker):
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()
        subprocess.run(["rm", "-rf", str(work)])
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "upload.json").write_text(json.dumps(results, indent=2))
    print(f"Upload of a {SIZE_MB} MB text file to uvicorn + Django on localhost (embedded profile).\n")
    print("| method | upload s | MB/s | server RSS before → peak MiB | extraction s |")
    print("|---|---|---|---|---|")
    for r in results["rows"]:
        print(f"| {r['method']} | {r['seconds']} | {r['mb_per_s']} | {r['server_rss_before_mib']} → "
              f"{r['server_peak_rss_mib']} | {r['extraction_s']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
