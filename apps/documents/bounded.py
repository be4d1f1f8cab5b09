"""Text extraction in a child process bounded in time and memory.

A few kilobytes of PDF or DOCX can make a parser work for hours or allocate gigabytes (one content
stream shared by thousands of pages, a million empty paragraphs). Extraction therefore never runs
in a worker: `extract_bounded` starts `python -m apps.documents.bounded` with `subprocess.Popen`
(Celery's prefork children are daemonic and cannot fork multiprocessing children, and the embedded
worker is a thread pool inside the web process), and the child caps its own address space
(RLIMIT_AS) and CPU time (RLIMIT_CPU) before it reads a byte of the file. The parent enforces the
wall-clock limit and kills the child's whole process group when it is exceeded.

Protocol: the child prints one JSON object per line on stdout: `{"progress": f}` while it works,
then `{"result": {...}}` or `{"error": "message for the user"}`.
"""

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from .extraction import ExtractionError, ExtractionResult, Progress, extract_text

REPO = Path(__file__).resolve().parent.parent.parent
# The child's own interpreter and imports need some room below the address-space cap.
MIN_MEMORY_MB = 256


def extract_bounded(
    source: Path, dest: Path, name: str, progress: Progress | None = None, *, timeout_s: float, memory_mb: int
) -> ExtractionResult:
    """`extract_text` in a child process limited to `timeout_s` seconds and `memory_mb` MiB.

    Raises ExtractionError with a message for the user when the file is refused or a limit is hit.
    An exception raised by `progress` (the document was deleted) kills the child and propagates.
    """
    report: Progress = progress or (lambda fraction: None)
    command = [sys.executable, "-m", "apps.documents.bounded", str(source), str(dest), name,
               str(int(timeout_s)), str(max(MIN_MEMORY_MB, memory_mb)), str(os.getpid())]
    child = subprocess.Popen(
        command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        env=_child_env(), start_new_session=True, close_fds=True,
    )
    try:
        message = _read_until_done(child, report, time.monotonic() + timeout_s)
    except BaseException:
        _kill(child)
        raise
    if message is None:
        _kill(child)
        raise ExtractionError(_limit_message("time", timeout_s, memory_mb))
    child.wait()
    if "result" in message:
        return ExtractionResult(**message["result"])
    if "error" in message:
        raise ExtractionError(message["error"])
    if child.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise ExtractionError(_limit_message("cpu", timeout_s, memory_mb))
    raise ExtractionError(_limit_message("memory", timeout_s, memory_mb))


def _child_env() -> dict[str, str]:
    # Nothing of the server's environment (keys, database URLs) is needed to read a file.
    keep = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR")
    return {k: v for k, v in os.environ.items() if k in keep}


def _read_until_done(child: subprocess.Popen, report: Progress, deadline: float) -> dict | None:
    """The child's final message ({} if it exited without one), or None past the deadline."""
    assert child.stdout is not None
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not selector.select(min(remaining, 1.0)):
                continue
            chunk = os.read(child.stdout.fileno(), 65536)
            if not chunk:
                return {}
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                message = json.loads(line)
                if "progress" in message:
                    report(message["progress"])
                else:
                    return message


def _kill(child: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def _limit_message(kind: str, timeout_s: float, memory_mb: int) -> str:
    if kind == "time":
        return (f"Text extraction took longer than the limit of {int(timeout_s)} s and was stopped; "
                "the file may be built to be slow to read (for example one content stream repeated on "
                "every page). Simplify or re-save the file and upload it again.")
    if kind == "cpu":
        return (f"Text extraction used more than the limit of {int(timeout_s)} s of processor time and was "
                "stopped. Simplify or re-save the file and upload it again.")
    return (f"Text extraction needed more than the memory limit of {memory_mb} MiB and was stopped. "
            "Simplify or re-save the file and upload it again.")


# --- the child --------------------------------------------------------------------------------------


def _limit_self(timeout_s: int, memory_mb: int) -> None:
    import resource

    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # SIGXCPU at the soft limit, SIGKILL a few seconds later at the hard one.
    resource.setrlimit(resource.RLIMIT_CPU, (timeout_s, timeout_s + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _die_with_parent(parent: int) -> None:
    """Exit as soon as the worker that started us (`parent`, passed in: it may already be gone by
    the time we run) is gone, killed or restarted: the child has its own session, so nothing else
    would stop it before its CPU limit."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    source, dest, name, timeout_s, memory_mb, parent = argv
    _limit_self(int(timeout_s), int(memory_mb))
    _die_with_parent(int(parent))
    try:
        result = extract_text(Path(source), Path(dest), name, lambda f: _send({"progress": f}))
    except ExtractionError as exc:
        _send({"error": str(exc)})
        return 0
    except MemoryError:
        _send({"error": _limit_message("memory", 0, int(memory_mb))})
        return 0
    except Exception as exc:  # the traceback goes to the server log (stderr), the user gets the type only
        import traceback

        traceback.print_exc()
        _send({"error": f"Text extraction failed unexpectedly ({type(exc).__name__})."})
        return 0
    _send({"result": {"chars": result.chars, "lines": result.lines, "preview": result.preview,
                      "notes": result.notes}})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
