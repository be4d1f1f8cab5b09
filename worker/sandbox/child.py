"""The REPL process tree (trusted code). Started by ``Sandbox.start`` as::

    python -I -c "...; from worker.sandbox.child import main; main()" <socket fd> <host pid>

Processes:
* **supervisor** (the process the host started; session and process-group leader, child
  subreaper). Reads the init frame, imports everything the REPL may ever need (after lockdown no
  file can be opened, so nothing may be imported lazily), forks the first holder, then only reaps
  children and watches the host: if the host dies it kills the whole process group.
* **holder**: reads the documents, locks itself down (rlimits, uid, no_new_privs, Landlock,
  seccomp) and keeps the REPL state. It never runs untrusted code itself: for every cell it forks a
  **cell process** with its own socketpair, whose host end it passes to the host (SCM_RIGHTS).
* The cell process runs the cell. When it completes (even with an exception) it *commits*: the host
  tells the old holder to exit and the cell process becomes the new holder, state and all. When it
  is killed (timeout, interrupt, memory, crash), the old holder, whose memory is the state from
  before the cell, reports how the cell process ended and carries on.

Every REPL process has PR_SET_PDEATHSIG (SIGKILL) armed against its parent and checks its parent
pid after arming it; a committing cell process disarms it while its old holder exits, waits until
it has been re-parented to the supervisor, then re-arms it.
"""

from __future__ import annotations

import codecs
import contextlib
import gc
import os
import select
import signal
import socket
import sys
import time
import warnings
from typing import Any

from worker.sandbox import lockdown, snapshot
from worker.sandbox.channel import Channel, ChannelClosed

_PRELOAD_ENCODINGS = (
    "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be",
    "latin-1", "ascii", "cp1252", "cp1251", "cp1250", "cp437", "cp850", "iso8859-2", "iso8859-15",
    "mac-roman", "idna", "unicode-escape", "raw-unicode-escape", "big5", "gb2312", "gbk", "gb18030",
    "shift_jis", "euc-jp", "euc-kr", "koi8-r",
)


def _preload() -> None:
    """Import everything lazily-imported code paths of the allowed modules would need."""
    warnings.simplefilter("ignore")
    import array  # noqa: F401  (socket.send_fds)
    import datetime

    datetime.datetime.strptime("2024-01-02", "%Y-%m-%d")  # imports _strptime, locale, calendar
    for name in _PRELOAD_ENCODINGS:
        with contextlib.suppress(LookupError):
            codecs.lookup(name)
    import worker.sandbox.repl  # noqa: F401  (guards: every allowed module)


# ---------------------------------------------------------------------------------------------
# supervisor
# ---------------------------------------------------------------------------------------------
def main() -> None:
    fd, host_pid = int(sys.argv[1]), int(sys.argv[2])

    def host_gone() -> bool:
        return os.getppid() != host_pid

    def on_parent_death(signum: int, frame: object) -> None:
        if host_gone():
            os.killpg(0, signal.SIGKILL)

    signal.signal(signal.SIGUSR1, on_parent_death)
    lockdown.set_pdeathsig(signal.SIGUSR1)
    if host_gone():
        os._exit(1)
    lockdown.set_child_subreaper()
    chan = Channel(socket.socket(fileno=fd))
    try:
        init = chan.recv(timeout=60)
        if not isinstance(init, dict) or init.get("op") != "init":
            os._exit(2)
        _preload()
    except BaseException as exc:
        try:
            chan.send({"op": "error", "message": f"sandbox start failed: {type(exc).__name__}: {exc}"})
        finally:
            os._exit(2)
    supervisor_pid = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            _holder_main(chan, init, supervisor_pid)
        finally:
            os._exit(0)
    chan.close()
    _supervise(host_gone)


def _supervise(host_gone: Any) -> None:
    def reap() -> bool:
        """Reap finished children; False when there are none left."""
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True

    # Reap at once (a committed cell leaves its old holder as a zombie, and zombies count
    # against the sandbox uid's process limit).
    signal.signal(signal.SIGCHLD, lambda signum, frame: reap())
    while True:
        if host_gone():
            os.killpg(0, signal.SIGKILL)
        if not reap():
            os._exit(0)
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------------
# holder
# ---------------------------------------------------------------------------------------------
_HUGE_PAGE = 2 * 1024 * 1024
_MADV_COLLAPSE = 25  # Linux 6.1+


def _collapse_into_huge_pages(text: str) -> None:
    """Move a large document's memory into 2 MiB transparent huge pages, once, at load.

    Every cell forks the process holding the documents, and fork copies one page-table entry per
    4 KiB page: ~5 ms for 100 MB of text, paid on every cell. With huge pages it copies a few
    dozen entries (fork + exit of a process holding 100 MB: 5 ms -> 1.5 ms). Only the documents
    are collapsed (asking malloc for huge pages everywhere makes the REPL's own big allocations
    stall on memory compaction). Best effort: an older kernel or THP switched off changes nothing.
    """
    start = (id(text) + _HUGE_PAGE - 1) // _HUGE_PAGE * _HUGE_PAGE
    end = (id(text) + sys.getsizeof(text)) // _HUGE_PAGE * _HUGE_PAGE
    if end - start >= 4 * _HUGE_PAGE:
        lockdown.madvise(start, end - start, _MADV_COLLAPSE)


def _read_documents(init: dict[str, Any]) -> list[tuple[str, str]]:
    docs = []
    for name, path in init["documents"]:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        _collapse_into_huge_pages(text)
        docs.append((str(name), text))
    return docs


def _lock_down(init: dict[str, Any], supervisor_pid: int) -> dict[str, str]:
    limits = init["limits"]
    prot: dict[str, str] = {}

    def attempt(name: str, fn: Any, *args: Any) -> None:
        try:
            result = fn(*args)
            prot[name] = result if isinstance(result, str) else ("active" if result is None else str(result))
        except Exception as exc:
            prot[name] = f"unavailable: {type(exc).__name__}: {exc}"

    attempt("oom_score_adj", lockdown.set_oom_score_adj, 1000)
    attempt("rlimits", lockdown.apply_rlimits, int(limits["memory_bytes"]), limits.get("cpu_seconds_per_cell"))
    try:
        dropped = lockdown.drop_privileges(1_000_000 + supervisor_pid, 8)
        prot["uid"] = dropped or f"unchanged (not root: uid {os.geteuid()})"
    except Exception as exc:
        prot["uid"] = f"unavailable: {type(exc).__name__}: {exc}"
    # Changing credentials clears the parent-death signal: arm it afterwards.
    lockdown.set_pdeathsig(signal.SIGKILL)
    if os.getppid() != supervisor_pid:
        os._exit(1)
    prot["pdeathsig"] = "SIGKILL on parent death, parent pid checked"
    attempt("no_new_privs", lockdown.prctl, lockdown.PR_SET_NO_NEW_PRIVS, 1)
    switch = init.get("os_layers", "on")
    if switch == "off":
        # Test-only switch (RLMWEB_SANDBOX_TEST_NO_OS_LAYERS=1): prove the language layer alone.
        prot["landlock"] = prot["seccomp"] = "off: switched off for a test"
    elif switch == "unavailable":
        # Test-only (RLMWEB_SANDBOX_TEST_NO_OS_LAYERS=unavailable): a host without them.
        prot["landlock"] = prot["seccomp"] = "unavailable: simulated by a test"
    elif prot["no_new_privs"] == "active":
        attempt("landlock", lockdown.apply_landlock)
        if prot["landlock"] == "active":
            prot["landlock"] = "unavailable: the kernel does not support Landlock"
        attempt("seccomp", lockdown.apply_seccomp)
        if prot["seccomp"] == "active":
            prot["seccomp"] = "unavailable: unsupported architecture"
    else:
        prot["landlock"] = prot["seccomp"] = "unavailable: no_new_privs could not be set"
    return prot


# Imported by the process before lockdown (ctypes for the syscalls) but never needed after it: out
# of sys.modules, a later `import` would have to read them from disk, which Landlock forbids.
_DANGEROUS_MODULES = ("ctypes", "_ctypes", "ctypes.util", "subprocess", "multiprocessing", "pty", "shutil")


def _forget_dangerous_modules() -> None:
    for name in list(sys.modules):
        if name in _DANGEROUS_MODULES or name.startswith("ctypes."):
            del sys.modules[name]


def _holder_main(chan: Channel, init: dict[str, Any], supervisor_pid: int) -> None:
    from worker.sandbox.repl import Repl

    try:
        docs = _read_documents(init)
        protections = _lock_down(init, supervisor_pid)
        _forget_dangerous_modules()
        repl = Repl(docs, int(init["limits"]["output_limit_chars"]), test_hooks=bool(init.get("test_hooks")))
        del docs
        chan.send({"op": "ready", "pid": os.getpid(), "protections": protections})
    except BaseException as exc:
        try:
            chan.send({"op": "error", "message": f"sandbox start failed: {type(exc).__name__}: {exc}"})
        finally:
            os._exit(2)
    _holder_loop(chan, repl, supervisor_pid)


def _holder_loop(chan: Channel, repl: Any, supervisor_pid: int) -> None:
    while True:
        try:
            msg = chan.recv()
        except ChannelClosed:
            os._exit(0)
        if not isinstance(msg, dict):
            os._exit(3)  # what the unknown-op branch below does
        op = msg.get("op")
        if op == "exec" and isinstance(msg.get("code"), str):
            new = _fork_cell(chan, repl, supervisor_pid, msg, keep=True)
        elif (op == "read_var" and isinstance(msg.get("name"), str)) or op == "summary" or (
                op == "snapshot" and type(msg.get("max_bytes")) is int and type(msg.get("exclude")) is list):
            # REPL values (and the code of their classes) are only touched in a forked,
            # time-limited process, never in the holder.
            new = _fork_cell(chan, repl, supervisor_pid, msg, keep=False)
        elif op == "restore" and type(msg.get("variables")) is dict:
            new = _fork_cell(chan, repl, supervisor_pid, msg, keep=True)  # writes globals: it commits
        elif op in ("release", "close"):
            os._exit(0)
        else:
            os._exit(3)
        if new is not None:
            chan = new


def _fork() -> int:
    """os.fork, waiting up to 2 s while the process cap is full: old holders that just exited count
    against it until the supervisor has reaped them, which takes a moment on a busy machine."""
    deadline = time.monotonic() + 2.0
    while True:
        try:
            return os.fork()
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _fork_cell(chan: Channel, repl: Any, supervisor_pid: int, msg: dict[str, Any], keep: bool) -> Channel | None:
    """Run one request in a forked child. Returns the new channel in a committed child, else None."""
    mine, theirs = socket.socketpair()
    died_r, died_w = os.pipe()  # EOF on died_r <=> the child has exited
    holder_pid = os.getpid()
    gc.freeze()  # keep the collector from touching (and copying) the holder's pages in the child
    try:
        pid = _fork()
    except OSError as exc:
        for s in (mine, theirs):
            s.close()
        os.close(died_r)
        os.close(died_w)
        chan.send({"op": "fork_failed", "error": f"{type(exc).__name__}: {exc}"})
        return None
    if pid == 0:
        os.close(died_r)
        theirs.close()
        chan.close()
        lockdown.set_pdeathsig(signal.SIGKILL)
        if os.getppid() != holder_pid:
            os._exit(1)
        try:
            return _cell_main(Channel(mine), repl, msg, keep, died_w, holder_pid, supervisor_pid)
        except BaseException:  # a failure of this trusted code itself (e.g. MemoryError)
            os._exit(70)
    os.close(died_w)
    mine.close()
    chan.send({"op": "forked", "pid": pid})
    chan.send_fd(theirs.fileno())
    theirs.close()
    poller = select.poll()
    poller.register(chan.fileno(), select.POLLIN | select.POLLHUP)
    # The child's exit: its pidfd when the kernel has them (a grandchild holding the pipe open
    # cannot delay it), else EOF on the pipe.
    try:
        exited_fd = os.pidfd_open(pid)
        own_fd = True
    except OSError:
        exited_fd, own_fd = died_r, False
    poller.register(exited_fd, select.POLLIN | select.POLLHUP)
    while True:
        for fd, _events in poller.poll():
            if fd == chan.fileno():
                try:
                    reply = chan.recv()
                except ChannelClosed:
                    os._exit(0)
                if isinstance(reply, dict) and reply.get("op") in ("release", "close"):
                    os._exit(0)  # the child committed: it is the holder now
            elif fd == exited_fd:
                _pid, status = os.waitpid(pid, 0)
                # The pipe's write end is still open after the child's exit only if the child
                # left processes behind: the host then kills them.
                strays = not select.select([died_r], [], [], 0)[0]
                if own_fd:
                    os.close(exited_fd)
                os.close(died_r)
                report: dict[str, Any] = {"op": "child_exit", "strays": strays}
                if os.WIFSIGNALED(status):
                    report["signal"] = os.WTERMSIG(status)
                else:
                    report["exit_code"] = os.waitstatus_to_exitcode(status)
                chan.send(report)
                return None


def _has_children() -> bool:
    """Whether this process has children (a cell has none unless its code escaped)."""
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return False
    return True


def _snapshot_op(repl: Any, msg: dict[str, Any]) -> dict[str, Any]:
    try:
        if msg["op"] == "snapshot":
            exclude = {n for n in msg["exclude"] if type(n) is str}
            return {"value": snapshot.take(repl.globals, msg["max_bytes"], exclude)}
        return {"value": snapshot.restore_into(repl.globals, msg["variables"])}
    except BaseException as exc:
        return {"error": f"{msg['op']} failed: {type(exc).__name__}"}


def _cell_main(
    cell: Channel, repl: Any, msg: dict[str, Any], keep: bool, died_w: int, holder_pid: int, supervisor_pid: int
) -> Channel:
    def call_host(name: str, args: dict[str, Any]) -> Any:
        try:
            cell.send({"op": "call", "name": name, "args": args})
            reply = cell.recv()
        except ChannelClosed:
            os._exit(0)
        if not isinstance(reply, dict):
            os._exit(5)
        if "error" in reply:
            raise RuntimeError(str(reply["error"]))
        return reply.get("value")

    repl.call_host = call_host
    if msg["op"] == "exec":
        result: dict[str, Any] = repl.run_cell(msg["code"])
        if result.get("memory_error"):
            keep = False  # out of memory: discard this process, the holder keeps the state from before
    elif msg["op"] in ("snapshot", "restore"):
        result = _snapshot_op(repl, msg)
    elif msg["op"] == "summary":
        try:
            result = {"value": repl.variable_summary()}
        except BaseException as exc:
            result = {"value": f"(variables could not be listed: {type(exc).__name__})"}
    else:
        try:
            result = {"value": repl.read_variable(msg["name"])}
        except KeyError:
            result = {"missing": True}
        except BaseException as exc:
            result = {"error": f"{type(exc).__name__}: the variable could not be converted to text"}
    repl.call_host = None
    result["strays"] = _has_children()
    if keep:
        lockdown.set_pdeathsig(0)  # the old holder is about to exit
    try:
        cell.send({"op": "done", "commit": keep, **result})
    except ChannelClosed:
        os._exit(0)
    except BaseException as exc:  # e.g. MemoryError encoding a huge result
        try:
            cell.send({"op": "done", "commit": keep, "stdout": "", "truncated": False, "final": None,
                       "error": f"the cell's result could not be sent: {type(exc).__name__}"})
        except BaseException:
            os._exit(6)
    if not keep:
        os._exit(0)
    deadline = time.monotonic() + 60
    while os.getppid() == holder_pid:
        if time.monotonic() > deadline:
            os._exit(7)
        time.sleep(0.0002)
    lockdown.set_pdeathsig(signal.SIGKILL)
    if os.getppid() != supervisor_pid:
        os._exit(8)
    os.close(died_w)
    return cell
