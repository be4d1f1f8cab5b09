"""OS-level confinement of the REPL processes, applied before any untrusted code runs.

Everything here is best effort *per mechanism* and reported: ``apply_lockdown`` returns a dict of
what is active, so the host can expose it (``Sandbox.protections``) and log what is missing.
Linux x86_64 and aarch64 are supported for seccomp; other architectures skip it (reported).

Layers (each would hold on its own if RestrictedPython were bypassed completely):
* rlimits: address space, file size 0, no core dumps, few file descriptors, optional CPU seconds,
  and (when started as root) a per-sandbox uid with at most a handful of processes;
* oom_score_adj 1000: the kernel OOM killer picks the REPL first;
* PR_SET_NO_NEW_PRIVS;
* Landlock: no file system access at all, no TCP bind/connect, no signals to or abstract-socket
  connections with processes outside the sandbox (per the kernel's ABI version);
* seccomp: no exec, no new sockets (the inherited socketpair keeps working), no ptrace, no
  signals, no mount/namespaces/keyrings/bpf/io_uring, no raising resource limits.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import struct

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

PR_SET_PDEATHSIG = 1
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
SECCOMP_MODE_FILTER = 2


def prctl(option: int, arg2: int = 0) -> None:
    if _libc.prctl(option, arg2, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


def madvise(address: int, length: int, advice: int) -> bool:
    """madvise(2) on memory this process owns; False (and nothing changed) where the kernel refuses."""
    return bool(_libc.madvise(ctypes.c_void_p(address), ctypes.c_size_t(length), ctypes.c_int(advice)) == 0)


def set_pdeathsig(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig)


def set_child_subreaper() -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1)


# ---------------------------------------------------------------------------------------------
# rlimits, OOM score, uid
# ---------------------------------------------------------------------------------------------
def apply_rlimits(memory_bytes: int, cpu_seconds: int | None, nofile: int = 32) -> str:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))
    resource.setrlimit(resource.RLIMIT_MSGQUEUE, (0, 0))
    parts = [f"AS={memory_bytes}", "FSIZE=0", "CORE=0", f"NOFILE={nofile}", "MEMLOCK=0"]
    if cpu_seconds:
        # Each forked cell process starts at 0 CPU seconds, so this is a per-cell limit.
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        parts.append(f"CPU={cpu_seconds}s per cell")
    return ", ".join(parts)


def set_oom_score_adj(value: int = 1000) -> None:
    with open("/proc/self/oom_score_adj", "w") as fh:
        fh.write(str(value))


def drop_privileges(uid: int, max_processes: int) -> str | None:
    """When running as root: switch to an otherwise unused uid and cap its processes."""
    if os.geteuid() != 0:
        return None
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    # Counted per uid; the uid is unique to this sandbox, so this caps this sandbox's processes.
    resource.setrlimit(resource.RLIMIT_NPROC, (max_processes, max_processes))
    return f"uid/gid {uid}, at most {max_processes} processes"


# ---------------------------------------------------------------------------------------------
# Landlock
# ---------------------------------------------------------------------------------------------
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1


def landlock_abi() -> int:
    r = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                      ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    return int(r) if r > 0 else 0


def apply_landlock() -> str | None:
    """Deny all file system access (and TCP, signals, abstract sockets where supported)."""
    abi = landlock_abi()
    if abi <= 0:
        return None
    fs_bits = 13  # ABI 1: execute .. make_sym
    if abi >= 2:
        fs_bits = 14  # refer
    if abi >= 3:
        fs_bits = 15  # truncate
    if abi >= 5:
        fs_bits = 16  # ioctl_dev
    handled_fs = (1 << fs_bits) - 1
    handled_net = 0b11 if abi >= 4 else 0  # bind_tcp, connect_tcp
    scoped = 0b11 if abi >= 6 else 0  # abstract unix sockets, signals
    if abi >= 6:
        attr = struct.pack("=QQQ", handled_fs, handled_net, scoped)
    elif abi >= 4:
        attr = struct.pack("=QQ", handled_fs, handled_net)
    else:
        attr = struct.pack("=Q", handled_fs)
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"landlock_create_ruleset: {os.strerror(err)}")
    try:
        if _libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"landlock_restrict_self: {os.strerror(err)}")
    finally:
        os.close(fd)
    what = ["no file system access"]
    if handled_net:
        what.append("no TCP bind/connect")
    if scoped:
        what.append("no signals or abstract sockets outside the sandbox")
    return f"ABI {abi}: " + ", ".join(what)


# ---------------------------------------------------------------------------------------------
# seccomp
# ---------------------------------------------------------------------------------------------
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}

# Syscalls refused with EPERM, by architecture (x86_64 numbers / aarch64 generic numbers).
_DENY = {
    "x86_64": {
        "execve": 59, "execveat": 322, "socket": 41, "connect": 42, "accept": 43, "bind": 49,
        "listen": 50, "accept4": 288, "ptrace": 101, "kill": 62, "tkill": 200, "tgkill": 234,
        "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297, "pidfd_send_signal": 424,
        "pidfd_getfd": 438, "process_vm_readv": 310, "process_vm_writev": 311, "mount": 165,
        "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308,
        "setsid": 112, "setpgid": 109, "vfork": 58, "personality": 135, "reboot": 169,
        "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
        "delete_module": 176, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
        "keyctl": 250, "add_key": 248, "request_key": 249, "io_uring_setup": 425,
        "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "setrlimit": 160, "acct": 163, "swapon": 167, "swapoff": 168, "iopl": 172, "ioperm": 173,
        "quotactl": 179, "name_to_handle_at": 303, "open_by_handle_at": 304, "setuid": 105,
        "setgid": 106, "setreuid": 113, "setregid": 114, "setresuid": 117, "setresgid": 119,
        "setgroups": 116, "process_madvise": 440, "memfd_secret": 447,
    },
    "aarch64": {
        "execve": 221, "execveat": 281, "socket": 198, "connect": 203, "accept": 202, "bind": 200,
        "listen": 201, "accept4": 242, "ptrace": 117, "kill": 129, "tkill": 130, "tgkill": 131,
        "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240, "pidfd_send_signal": 424,
        "pidfd_getfd": 438, "process_vm_readv": 270, "process_vm_writev": 271, "mount": 40,
        "umount2": 39, "pivot_root": 41, "chroot": 51, "unshare": 97, "setns": 268, "setsid": 157,
        "setpgid": 154, "personality": 92, "reboot": 142, "kexec_load": 104, "kexec_file_load": 294,
        "init_module": 105, "finit_module": 273, "delete_module": 106, "bpf": 280,
        "perf_event_open": 241, "userfaultfd": 282, "keyctl": 219, "add_key": 217,
        "request_key": 218, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "mount_setattr": 442, "setrlimit": 164, "acct": 89, "swapon": 224,
        "swapoff": 225, "quotactl": 60, "name_to_handle_at": 264, "open_by_handle_at": 265,
        "setuid": 146, "setgid": 144, "setreuid": 145, "setregid": 143, "setresuid": 147,
        "setresgid": 149, "setgroups": 159, "process_madvise": 440, "memfd_secret": 447,
    },
}
_CLONE = {"x86_64": 56, "aarch64": 220}
_CLONE3 = {"x86_64": 435, "aarch64": 435}
_PRLIMIT64 = {"x86_64": 302, "aarch64": 261}
_CLONE_NEW_FLAGS = 0x00000080 | 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

# classic BPF
_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_JGE_K = 0x35
_BPF_JSET_K = 0x45
_BPF_RET_K = 0x06
_BPF_JA = 0x05
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_ERRNO = 0x00050000
_SECCOMP_RET_KILL_PROCESS = 0x80000000
_EPERM = 1
_ENOSYS = 38
# struct seccomp_data: int nr; u32 arch; u64 ip; u64 args[6]
_OFF_NR, _OFF_ARCH, _OFF_ARGS = 0, 4, 16


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _build_filter(arch: str) -> list[tuple[int, int, int, int]]:
    deny = sorted(set(_DENY[arch].values()))
    prog: list[tuple[int, int, int, int]] = []
    ret_errno = _SECCOMP_RET_ERRNO | _EPERM
    prog.append((_BPF_LD_W_ABS, 0, 0, _OFF_ARCH))
    prog.append((_BPF_JEQ_K, 1, 0, _AUDIT_ARCH[arch]))
    prog.append((_BPF_RET_K, 0, 0, _SECCOMP_RET_KILL_PROCESS))
    prog.append((_BPF_LD_W_ABS, 0, 0, _OFF_NR))
    if arch == "x86_64":  # x32 ABI numbers have bit 30 set
        prog.append((_BPF_JGE_K, 0, 1, 0x40000000))
        prog.append((_BPF_RET_K, 0, 0, ret_errno))
    # Each denied number: if equal, jump to the shared "deny" return at the end of this block.
    n = len(deny)
    for i, nr in enumerate(deny):
        prog.append((_BPF_JEQ_K, n - i, 0, nr))
    prog.append((_BPF_JA, 0, 0, 1))  # not denied: jump over the deny return
    prog.append((_BPF_RET_K, 0, 0, ret_errno))
    # clone: refuse namespace flags (fork and threads stay possible; exec is denied anyway)
    prog.append((_BPF_JEQ_K, 0, 3, _CLONE[arch]))
    prog.append((_BPF_LD_W_ABS, 0, 0, _OFF_ARGS))  # low 32 bits of args[0] (little endian)
    prog.append((_BPF_JSET_K, 0, 1, _CLONE_NEW_FLAGS))
    prog.append((_BPF_RET_K, 0, 0, ret_errno))
    prog.append((_BPF_LD_W_ABS, 0, 0, _OFF_NR))
    # clone3: its flags are behind a pointer; ENOSYS makes libc fall back to clone
    prog.append((_BPF_JEQ_K, 0, 1, _CLONE3[arch]))
    prog.append((_BPF_RET_K, 0, 0, _SECCOMP_RET_ERRNO | _ENOSYS))
    # prlimit64: reading limits is fine, setting them is not (new_limit = args[2] must be NULL)
    prog.append((_BPF_JEQ_K, 0, 5, _PRLIMIT64[arch]))
    prog.append((_BPF_LD_W_ABS, 0, 0, _OFF_ARGS + 2 * 8))
    prog.append((_BPF_JEQ_K, 0, 2, 0))
    prog.append((_BPF_LD_W_ABS, 0, 0, _OFF_ARGS + 2 * 8 + 4))
    prog.append((_BPF_JEQ_K, 1, 0, 0))
    prog.append((_BPF_RET_K, 0, 0, ret_errno))
    prog.append((_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW))
    return prog


def apply_seccomp() -> str | None:
    arch = platform.machine()
    if arch not in _AUDIT_ARCH:
        return None
    prog = _build_filter(arch)
    filters = (_SockFilter * len(prog))(*[_SockFilter(*ins) for ins in prog])
    fprog = _SockFprog(len(prog), filters)
    if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp: {os.strerror(err)}")
    return (
        f"{len(_DENY[arch])} syscalls refused (exec, socket/connect/bind/listen/accept, ptrace, "
        "kill/tgkill, mount/unshare/setns, bpf, io_uring, keyrings, setrlimit, setuid...), "
        "clone without namespace flags only"
    )
