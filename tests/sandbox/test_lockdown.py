"""The OS layer, verified on this machine: what a total RestrictedPython bypass could still do.

The probe process applies exactly the holder's lockdown (``child._lock_down``) and then, as plain
unrestricted Python, tries to read files, open sockets, exec, signal, ptrace, unshare, raise its
limits and fork without bound. Plus: the REPL process tree dies with its host and with close().
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from worker.sandbox.host import REPO_ROOT, group_members


@pytest.fixture(scope="module", autouse=True)
def os_layers():
    """This module tests the OS layer itself: always on (overrides the conftest's on/off)."""
    return "os-layers-on"

PROBE = textwrap.dedent(
    """
    import ctypes, json, os, resource, socket, sys, time
    sys.path.insert(0, sys.argv[1])
    from worker.sandbox import child
    child._preload()
    prot = child._lock_down({"limits": {"memory_bytes": 1024**3, "cpu_seconds_per_cell": None}}, os.getppid())
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    def sys_call(*args):
        if libc.syscall(*args) == -1:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    out = {"protections": prot}
    def attempt(name, fn):
        try:
            fn()
            out[name] = "allowed"
        except OSError as e:
            out[name] = f"denied errno {e.errno}"
        except Exception as e:
            out[name] = f"error {type(e).__name__}: {e}"
    attempt("read /etc/passwd", lambda: open("/etc/passwd").read())
    attempt("read own source", lambda: open(child.__file__).read())
    attempt("list /", lambda: os.listdir("/"))
    attempt("write /tmp", lambda: open("/tmp/rlmweb-sandbox-probe", "w").write("x"))
    attempt("socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    attempt("unix socket", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    attempt("exec", lambda: os.execv("/bin/true", ["true"]))
    attempt("kill parent", lambda: os.kill(os.getppid(), 0))
    attempt("ptrace parent", lambda: sys_call(101, 16, os.getppid(), 0, 0))  # PTRACE_ATTACH
    attempt("unshare user ns", lambda: sys_call(272, 0x10000000))
    attempt("mount", lambda: sys_call(165, b"none", b"/tmp", b"tmpfs", 0, None))
    # prlimit64 setting the *same* limit: only the seccomp filter refuses that
    same = (ctypes.c_uint64 * 2)(*resource.getrlimit(resource.RLIMIT_AS))
    attempt("set a resource limit", lambda: sys_call(302, 0, resource.RLIMIT_AS, same, None))
    attempt("socketpair", lambda: socket.socketpair())
    attempt("read memory limit", lambda: resource.getrlimit(resource.RLIMIT_AS))
    child._forget_dangerous_modules()
    attempt("import ctypes after lockdown", lambda: __import__("ctypes"))
    forks = 0
    for _ in range(20):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(1)
            os._exit(0)
        forks += 1
    out["forks"] = forks
    out["env"] = dict(os.environ)
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def probe():
    proc = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(REPO_ROOT)],
        capture_output=True, text=True, timeout=60, env={}, cwd="/",
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_protections_are_all_active_here(probe):
    prot = probe["protections"]
    for name in ("rlimits", "oom_score_adj", "no_new_privs", "landlock", "seccomp", "pdeathsig", "uid"):
        assert not prot[name].startswith("unavailable"), (name, prot[name])


@pytest.mark.parametrize("action", ["read /etc/passwd", "read own source", "list /", "write /tmp"])
def test_no_file_system(probe, action):
    assert probe[action].startswith("denied"), probe[action]


@pytest.mark.parametrize(
    "action", ["socket", "unix socket", "exec", "kill parent", "ptrace parent", "unshare user ns", "mount",
               "set a resource limit"],
)
def test_forbidden_system_calls(probe, action):
    assert probe[action] == "denied errno 1", probe[action]  # EPERM


def test_what_the_repl_itself_needs_still_works(probe):
    assert probe["socketpair"] == "allowed"
    assert probe["read memory limit"] == "allowed"


def test_process_count_is_capped(probe):
    if os.geteuid() != 0:
        pytest.skip("the per-sandbox uid and process cap need root")
    assert 1 <= probe["forks"] < 8


def _wait_gone(pgid: int, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = group_members(pgid)
        if not alive:
            return []
        time.sleep(0.05)
    return group_members(pgid)


HOST = textwrap.dedent(
    """
    import sys, tempfile, threading, time
    sys.path.insert(0, sys.argv[1])
    from worker.sandbox import Sandbox, SandboxLimits
    p = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
    p.write("text " * 1000); p.close()
    sb = Sandbox([("d", p.name)], lambda n, a: "x", SandboxLimits(cell_timeout_s=600))
    sb.start()
    sb.run_cell("x = 1")
    threading.Thread(target=sb.run_cell, args=("while True:\\n    pass",), daemon=True).start()
    time.sleep(0.5)
    print(sb._proc.pid, flush=True)
    time.sleep(600)
    """
)


def test_repl_processes_die_with_their_host():
    host = subprocess.Popen([sys.executable, "-c", HOST, str(REPO_ROOT)], stdout=subprocess.PIPE, text=True)
    try:
        pgid = int(host.stdout.readline())
        members = group_members(pgid)
        assert len(members) >= 3, members  # supervisor, holder, running cell
        host.send_signal(signal.SIGKILL)
        host.wait(timeout=10)
        assert _wait_gone(pgid) == []
    finally:
        host.kill()


def test_close_kills_the_whole_group(docs, recorder):
    from worker.sandbox import Sandbox

    sb = Sandbox(docs[:1], recorder)
    sb.start()
    pgid = sb._proc.pid
    assert sb.run_cell("x = 1").error is None
    assert len(group_members(pgid)) >= 2
    sb.close()
    sb.close()  # idempotent
    assert _wait_gone(pgid, 2.0) == []


def test_modules_the_repl_never_needs_cannot_be_imported_again_after_lockdown(probe):
    # ctypes was imported for the lockdown's own syscalls; out of sys.modules, re-importing it
    # would need its files, which Landlock forbids.
    assert probe["import ctypes after lockdown"] != "allowed", probe["import ctypes after lockdown"]
