"""Host side of the sandbox: start the REPL process tree, run cells, serve sub-calls, kill.

See ``worker/sandbox/child.py`` for the process design. The host never unpickles anything: it
reads length-prefixed JSON frames and checks their shape; a cell process that misbehaves is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from worker.sandbox import snapshot as snapshots
from worker.sandbox.channel import Channel, ChannelClosed, ChannelTimeout, ProtocolError
from worker.sandbox.text import ERROR_MAX_CHARS, cap, cap_final, clean

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
_BOOT = (
    "import sys; sys.path.insert(0, {repo!r}); "
    "from worker.sandbox.child import main; main()"
)
QUERY_FUNCTIONS = ("llm_query", "llm_query_batched", "rlm_query")
_CONTROL_TIMEOUT_S = 30.0
# A cell's frames: its calls carry at most 32M characters (repl.MAX_CALL_CHARS); results are capped
# in the REPL and again here.
CELL_FRAME_BYTES = 160 * 1024**2
# The isolation layers without which REPL cells do not run (unless degraded mode is allowed).
REQUIRED_LAYERS = ("landlock", "seccomp")
ALLOW_DEGRADED_ENV = "RLMWEB_SANDBOX_ALLOW_DEGRADED"
TEST_NO_OS_LAYERS_ENV = "RLMWEB_SANDBOX_TEST_NO_OS_LAYERS"
TEST_HOOKS_ENV = "RLMWEB_SANDBOX_TEST_HOOKS"


def missing_layers(protections: dict[str, str]) -> dict[str, str]:
    """The required isolation layers that are not active, with the reason each gave."""
    return {k: protections.get(k, "unavailable: not reported") for k in REQUIRED_LAYERS
            if protections.get(k, "unavailable").startswith("unavailable")}


def degraded_allowed() -> bool:
    return os.environ.get(ALLOW_DEGRADED_ENV) == "1"


def probe_protections() -> dict[str, str]:
    """Start an empty sandbox on this host and report each isolation layer's state (it runs no
    cell, so it reports even where cells would be refused)."""
    sb = Sandbox([], lambda name, args: None, SandboxLimits(memory_bytes=512 * 1024**2))
    sb._fail_closed = False
    try:
        sb.start()
        return dict(sb.protections)
    finally:
        sb.close()


@dataclass(frozen=True)
class SandboxLimits:
    memory_bytes: int = 4 * 1024**3  # RLIMIT_AS of each REPL process
    # Wall-clock limit for a cell's own work. Time the cell spends waiting for the host's handler
    # (llm_query and friends) does not count: sub-calls have their own budgets in the engine.
    cell_timeout_s: float = 120.0
    output_limit_chars: int = 1_000_000  # cap on captured print output per cell
    # RLIMIT_CPU of each cell process (which starts at 0). None: a backstop behind the wall-clock
    # timeout, 2 x cell_timeout_s + 10 s (a committed cell process becomes the holder and keeps its
    # CPU seconds, so the limit leaves room for the holder's work after its own cell).
    cpu_seconds_per_cell: int | None = None
    start_timeout_s: float = 120.0  # reading very large documents takes a while

    def cpu_limit_s(self) -> int:
        if self.cpu_seconds_per_cell is not None:
            return self.cpu_seconds_per_cell
        return int(2 * self.cell_timeout_s) + 10


@dataclass(frozen=True)
class FinalAnswer:
    value: str  # str() of what FINAL got, or of the variable FINAL_VAR named
    source: str  # "FINAL" or "FINAL_VAR"
    var_name: str | None


@dataclass(frozen=True)
class CellResult:
    stdout: str
    error: str | None  # exception type + message + cell line numbers; compile error verbatim; or kill reason
    duration_s: float
    output_truncated: bool
    final: FinalAnswer | None  # the last FINAL/FINAL_VAR call of the cell (the cell runs to its end)
    killed: bool  # the cell was killed (timeout, interrupt, memory, crash) and the state restored
    state_note: str | None


class SandboxCallError(Exception):
    """Raised by the host's handler; the REPL code gets a RuntimeError with this message."""


class SandboxError(RuntimeError):
    """The sandbox could not start, or was used after close()."""


def group_members(pgid: int) -> list[int]:
    """Live processes (not zombies) whose process group is ``pgid``, read from /proc."""
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != b"Z":
            members.append(int(name))
    return members


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


_SIGNAL_NAMES: dict[int, str] = {
    signal.SIGKILL: "was killed (SIGKILL) by the system, most likely because the machine ran out of memory",
    signal.SIGXCPU: "was stopped because it used up its CPU time limit",
    signal.SIGSEGV: "crashed (segmentation fault, e.g. a C-level stack overflow)",
    signal.SIGABRT: "crashed (aborted)",
    signal.SIGBUS: "crashed (bus error)",
    signal.SIGXFSZ: "was stopped for trying to write a file",
    signal.SIGSYS: "was stopped for making a forbidden system call",
}


class Sandbox:
    """A persistent, isolated RestrictedPython REPL for one RLM run."""

    def __init__(
        self,
        documents: Sequence[tuple[str, str]],
        handler: Callable[[str, dict[str, Any]], Any],
        limits: SandboxLimits = SandboxLimits(),  # noqa: B008 - frozen dataclass
    ) -> None:
        self.documents = [(str(name), os.fspath(path)) for name, path in documents]
        self.handler = handler
        self.limits = limits
        self.protections: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._chan: Channel | None = None  # to the current holder
        self._holder_pid: int | None = None
        self._op_lock = threading.Lock()
        self._cell_lock = threading.Lock()
        self._cell_pidfd: int | None = None
        self._interrupted = False
        self._closed = False
        self._finalizer: weakref.finalize[[int], Sandbox] | None = None
        self._fail_closed = True

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._closed:
            raise SandboxError("the sandbox is closed")
        if self._proc is not None:
            return
        for _name, path in self.documents:
            if not os.path.isfile(path):
                raise FileNotFoundError(path)
        host_end, child_end = socket.socketpair()
        env: dict[str, str] = {}
        debug = bool(os.environ.get("RLMWEB_SANDBOX_DEBUG"))
        try:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed command line
                [sys.executable, "-I", "-c", _BOOT.format(repo=str(REPO_ROOT)),
                 str(child_end.fileno()), str(os.getpid())],
                pass_fds=(child_end.fileno(),),
                close_fds=True,
                start_new_session=True,
                env=env,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=None if debug else subprocess.DEVNULL,
            )
        finally:
            child_end.close()
        self._finalizer = weakref.finalize(self, _kill_group, self._proc.pid)
        self._chan = Channel(host_end)
        limits = {**asdict(self.limits), "cpu_seconds_per_cell": self.limits.cpu_limit_s()}
        try:
            os_layers = {"1": "off", "unavailable": "unavailable"}.get(os.environ.get(TEST_NO_OS_LAYERS_ENV, ""), "on")
            test_hooks = os.environ.get(TEST_HOOKS_ENV) == "1"
            self._chan.send({"op": "init", "documents": self.documents, "limits": limits, "os_layers": os_layers,
                             "test_hooks": test_hooks})
            msg = self._chan.recv(timeout=self.limits.start_timeout_s)
        except (ChannelClosed, ChannelTimeout, ProtocolError) as exc:
            self._teardown()
            raise SandboxError(f"the sandbox process did not start ({type(exc).__name__})") from None
        if not isinstance(msg, dict) or msg.get("op") != "ready":
            self._teardown()
            detail = msg.get("message") if isinstance(msg, dict) else None
            raise SandboxError(str(detail or "the sandbox process did not start"))
        self._holder_pid = int(msg["pid"])
        prot = msg.get("protections")
        self.protections = {str(k): str(v) for k, v in prot.items()} if isinstance(prot, dict) else {}
        missing = missing_layers(self.protections)
        if missing and self._fail_closed and not degraded_allowed():
            self._teardown()
            names = " and ".join(f"{k} ({v})" for k, v in missing.items())
            raise SandboxError(
                f"the sandbox refuses to run REPL cells: {names} is not available on this host. The "
                f"language layer alone is not the wall; set {ALLOW_DEGRADED_ENV}=1 to run without it."
            )
        weak = {k: v for k, v in self.protections.items() if v.startswith(("unavailable", "off"))}
        if weak:
            logger.warning("sandbox protections not active on this machine: %s", weak)

    def close(self) -> None:
        """Kill the whole process group. Idempotent."""
        self._closed = True
        self._teardown()

    def _teardown(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _kill_group(proc.pid)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                logger.error("sandbox supervisor %s did not exit", proc.pid)
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._chan is not None:
            self._chan.close()
            self._chan = None
        self._holder_pid = None

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public operations ---------------------------------------------------------------------
    def run_cell(self, code: str) -> CellResult:
        if not isinstance(code, str):
            raise TypeError("code must be a str")
        with self._op_lock:
            self._ensure_running()
            started = time.monotonic()
            outcome = self._run_forked({"op": "exec", "code": code}, self.limits.cell_timeout_s)
            duration = time.monotonic() - started
            if outcome[0] == "done":
                done = outcome[1]
                return self._cell_result(done, duration)
            return self._killed_result(outcome, duration)

    def read_variable(self, name: str) -> str:
        with self._op_lock:
            self._ensure_running()
            outcome = self._run_forked({"op": "read_var", "name": str(name)}, self.limits.cell_timeout_s)
        if outcome[0] != "done":
            detail = outcome[2] or ("it took longer than the cell time limit" if outcome[1] == "timeout" else outcome[1])
            raise SandboxError(f"reading variable {name!r} failed: {detail}")
        done = outcome[1]
        if done.get("missing"):
            raise KeyError(name)
        if isinstance(done.get("error"), str):
            raise SandboxError(done["error"])
        value = done.get("value")
        return cap_final(value) if isinstance(value, str) else ""

    def variable_summary(self) -> str:
        """The REPL's variables, listed in a forked process under the cell timeout."""
        with self._op_lock:
            self._ensure_running()
            outcome = self._run_forked({"op": "summary"}, self.limits.cell_timeout_s)
        if outcome[0] != "done":
            return f"(variables could not be listed: {outcome[2] or outcome[1]})"
        value = outcome[1].get("value")
        return cap(value, ERROR_MAX_CHARS) if isinstance(value, str) else ""

    def snapshot(self, max_bytes: int = snapshots.DEFAULT_MAX_BYTES, exclude: Sequence[str] = ()) -> dict[str, Any]:
        """The REPL's plain-data variables (``worker.sandbox.snapshot``), read in a forked,
        non-committing process under the cell timeout and validated here: ``{"variables": {name:
        encoded}, "types": {name: type}, "not_carried": [{name, type, reason}]}``."""
        max_bytes = min(int(max_bytes), CELL_FRAME_BYTES // 2)
        with self._op_lock:
            self._ensure_running()
            outcome = self._run_forked({"op": "snapshot", "max_bytes": max_bytes,
                                        "exclude": [str(n) for n in exclude]}, self.limits.cell_timeout_s)
        return snapshots.validate(self._op_value("snapshot", outcome), max_bytes)

    def restore(self, checked: dict[str, Any]) -> dict[str, Any]:
        """Put a validated snapshot's variables into the REPL (a committing cell process decodes them
        again). Returns ``{"restored": [names], "rejected": [{name, reason}]}``."""
        with self._op_lock:
            self._ensure_running()
            outcome = self._run_forked({"op": "restore", "variables": checked["variables"]},
                                       self.limits.cell_timeout_s)
        value = self._op_value("restore", outcome)
        restored, rejected = value.get("restored"), value.get("rejected")
        return {"restored": [n for n in restored if type(n) is str] if type(restored) is list else [],
                "rejected": [r for r in rejected if type(r) is dict] if type(rejected) is list else []}

    def _op_value(self, op: str, outcome: tuple[str, Any, str]) -> dict[str, Any]:
        if outcome[0] != "done":
            raise SandboxError(f"the REPL's {op} failed: {outcome[2] or outcome[1]}")
        if isinstance(outcome[1].get("error"), str):
            raise SandboxError(cap(outcome[1]["error"], ERROR_MAX_CHARS))
        value = outcome[1].get("value")
        if not isinstance(value, dict):
            raise SandboxError(f"the REPL's {op} sent no result")
        return value

    def interrupt(self) -> None:
        """Kill the running cell now (from any thread); its state is discarded as for a timeout."""
        with self._cell_lock:
            self._interrupted = True
            if self._cell_pidfd is not None:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self._cell_pidfd, signal.SIGKILL)

    # -- internals -----------------------------------------------------------------------------
    def _ensure_running(self) -> None:
        if self._closed:
            raise SandboxError("the sandbox is closed")
        if self._proc is None:
            self.start()

    def _restart_after_loss(self) -> None:
        logger.warning("sandbox REPL process lost; restarting with fresh state")
        self._teardown()
        self.start()

    def _run_forked(self, request: dict[str, Any], timeout: float) -> tuple[str, Any, str]:
        """Fork a cell process for `request` and serve it. Returns one of
        ("done", done_frame, ""), ("killed", kind, detail), ("lost", None, detail)."""
        chan = self._chan
        assert chan is not None
        with self._cell_lock:
            self._interrupted = False
        try:
            chan.send(request)
            msg = chan.recv(timeout=_CONTROL_TIMEOUT_S)
            if isinstance(msg, dict) and msg.get("op") == "fork_failed":
                return ("killed", "fork_failed", str(msg.get("error")))
            if not isinstance(msg, dict) or msg.get("op") != "forked" or type(msg.get("pid")) is not int:
                raise ProtocolError("expected 'forked'")
            pid = msg["pid"]
            cell = Channel(socket.socket(fileno=chan.recv_fd(timeout=_CONTROL_TIMEOUT_S)), CELL_FRAME_BYTES)
        except (ChannelClosed, ChannelTimeout, ProtocolError) as exc:
            self._restart_after_loss()
            return ("lost", None, type(exc).__name__)
        try:
            pidfd: int | None = os.pidfd_open(pid)
        except OSError:
            pidfd = None
        with self._cell_lock:
            self._cell_pidfd = pidfd
            if self._interrupted and pidfd is not None:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        kind, detail, pending = "died", "", None
        compute = 0.0
        try:
            while True:
                t0 = time.monotonic()
                try:
                    # Valid Unicode from here on: lone surrogates never reach the engine.
                    frame = clean(cell.recv(timeout=max(timeout - compute, 0.0)))
                except ChannelTimeout:
                    kind = "timeout"
                    break
                except ChannelClosed:
                    kind = "died"
                    break
                except ProtocolError as exc:
                    kind, detail = "protocol", str(exc)
                    break
                finally:
                    compute += time.monotonic() - t0
                op = frame.get("op") if isinstance(frame, dict) else None
                if op == "call":
                    name, args = frame.get("name"), frame.get("args")
                    if name not in QUERY_FUNCTIONS or not isinstance(args, dict):
                        kind, detail = "protocol", "bad call frame"
                        break
                    try:
                        reply: dict[str, Any] = {"value": self.handler(name, args)}
                    except SandboxCallError as exc:
                        reply = {"error": str(exc)}
                    except BaseException as exc:  # the engine's own failure: stop the cell, re-raise
                        kind, pending = "handler", exc
                        break
                    try:
                        cell.send(reply)
                    except (TypeError, ValueError):
                        logger.exception("sandbox handler returned a value that is not JSON")
                        cell.send({"error": f"{name} failed: internal error"})
                    except ChannelClosed:
                        kind = "died"
                        break
                elif op == "done":
                    if frame.get("strays"):
                        self._kill_strays(keep_cell=pid if frame.get("commit") else None)
                    if frame.get("commit"):
                        with contextlib.suppress(ChannelClosed):
                            chan.send({"op": "release"})
                        chan.close()
                        self._chan, self._holder_pid = cell, pid
                        cell = None  # type: ignore[assignment]  # now self._chan: the finally must not close it
                    else:
                        self._await_child_exit()
                    return ("done", frame, "")
                else:
                    kind, detail = "protocol", f"unexpected frame {op!r}"
                    break
        finally:
            with self._cell_lock:
                self._cell_pidfd = None
                interrupted = self._interrupted
            if cell is not None and pidfd is not None:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            if pidfd is not None:
                os.close(pidfd)
            if cell is not None:
                cell.close()
        if interrupted:
            kind = "interrupted"
        report = self._await_child_exit()
        if report is None:
            if pending is not None:
                raise pending
            return ("lost", None, "the REPL process was lost while the cell was stopped")
        if report.get("strays"):
            self._kill_strays(keep_cell=None)
        if kind == "died":
            sig = report.get("signal")
            if type(sig) is int:
                detail = _SIGNAL_NAMES.get(sig, f"killed by signal {sig}")
            else:
                detail = f"exited unexpectedly (exit code {report.get('exit_code')})"
        if pending is not None:
            raise pending
        return ("killed", kind, detail)

    def _kill_strays(self, keep_cell: int | None) -> None:
        """Kill every process of this sandbox but the supervisor and the holder(s): what a cell
        left behind (its process group is the supervisor's; seccomp forbids leaving it)."""
        if self._proc is None:
            return
        keep = {self._proc.pid, self._holder_pid, keep_cell}
        for pid in group_members(self._proc.pid):
            if pid not in keep:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def _await_child_exit(self) -> dict[str, Any] | None:
        assert self._chan is not None
        try:
            report = self._chan.recv(timeout=_CONTROL_TIMEOUT_S)
        except (ChannelClosed, ChannelTimeout, ProtocolError):
            self._restart_after_loss()
            return None
        if not isinstance(report, dict) or report.get("op") != "child_exit":
            self._restart_after_loss()
            return None
        return report

    def _cell_result(self, done: dict[str, Any], duration: float) -> CellResult:
        final = done.get("final")
        answer = None
        if isinstance(final, dict) and isinstance(final.get("value"), str):
            var = final.get("var_name")
            answer = FinalAnswer(
                value=cap_final(final["value"]),
                source="FINAL_VAR" if final.get("source") == "FINAL_VAR" else "FINAL",
                var_name=var if isinstance(var, str) else None,
            )
        stdout = done.get("stdout")
        stdout = stdout if isinstance(stdout, str) else ""
        error = done.get("error")
        out_of_memory = bool(done.get("memory_error")) and not done.get("commit")
        limit = self.limits.output_limit_chars
        return CellResult(
            stdout=cap(stdout, limit),
            error=cap(error, ERROR_MAX_CHARS) if isinstance(error, str) else None,
            duration_s=duration,
            output_truncated=bool(done.get("truncated")) or len(stdout) > limit,
            final=None if out_of_memory else answer,
            killed=out_of_memory,
            state_note=(
                f"The cell ran out of memory (the limit is {self.limits.memory_bytes / 1024**3:g} GiB) and was "
                "discarded; variables are as they were before this cell."
            ) if out_of_memory else None,
        )

    def _killed_result(self, outcome: tuple[str, Any, str], duration: float) -> CellResult:
        status, kind, detail = outcome
        before = "variables are as they were before this cell"
        if status == "lost":
            error = f"The REPL process was lost ({detail})."
            note = ("The REPL was restarted: all variables are gone; `context` and `context_names` "
                    "were loaded again.")
        elif kind == "timeout":
            t = self.limits.cell_timeout_s
            error = f"TimeoutError: the cell ran longer than {t:g} s and was stopped."
            note = f"The cell was killed after {t:g} s; {before} (anything it computed is lost)."
        elif kind == "interrupted":
            error = "Interrupted: the cell was stopped because the run was cancelled."
            note = f"The cell was killed; {before}."
        elif kind == "fork_failed":
            error = f"The cell could not be started ({detail})."
            note = f"The cell did not run; {before}."
        elif kind == "protocol":
            error = f"The cell was stopped: it broke the REPL protocol ({detail})."
            note = f"The cell was killed; {before}."
        else:
            error = f"The cell's process {detail}."
            if "memory" in detail:
                error += f" Use less memory (the limit is {self.limits.memory_bytes / 1024**3:g} GiB) or split the work."
            note = f"The cell was killed; {before}."
        return CellResult(stdout="", error=error, duration_s=duration, output_truncated=False,
                          final=None, killed=True, state_note=note)
