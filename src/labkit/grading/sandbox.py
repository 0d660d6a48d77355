"""Step "isolate": the walls around one submission's kernel.

``python -m labkit.grading.sandbox POLICY.json -- KERNEL-COMMAND...`` is what the grader
starts instead of the bare kernel command. It applies, in order, what this machine offers:

- the submission's cgroup (CPU share, process cap; see :mod:`labkit.grading.fairshare`),
  joined first, so the kernel and everything it starts are in it;
- Linux namespaces (``unshare`` through libc; as root directly, otherwise inside a new user
  namespace where unprivileged ones are allowed): a new mount namespace whose root is built
  from an **allowlist** (:func:`_new_root`): the system folders and the Python installation
  read-only, the course data read-only, the submission's own scratch and kernel folders, and
  a private ``/tmp``, ``/var/tmp``, ``/dev/shm`` and ``/run/lock`` sharing one size-limited
  tmpfs. Nothing else of the machine exists in there: no homes, no other checkout, no
  ``.git``, no other submission, no output folder. Also a network namespace with only
  loopback, and a PID namespace, so every process the submission starts dies with it;
- the kernel's own uid when the grader runs as root (decided by the grader and passed in
  the policy); in a user namespace, every capability is dropped before the kernel starts;
- on Linux, with or without namespaces: the sandbox's init is a child subreaper, so every
  process the submission starts, detached or double-forked, is re-parented to it and killed
  (and counted for the report) when the kernel ends or the grader stops it;
- everywhere: its own session, resource limits (``RLIMIT_AS`` memory, ``RLIMIT_CPU``,
  ``RLIMIT_FSIZE`` largest file, ``RLIMIT_CORE`` 0, ``RLIMIT_NPROC`` with a uid of its own), a
  lower priority where no cgroup shares the CPU, a scratch working folder that is also ``HOME``,
  an environment with the offline backend and no credentials, and a marker variable by which
  leftovers are found.

Nothing here opens a path the submission can write after its code has run: what the launcher
reports (``status.json``, the count of leftover processes) goes to files it opened in the
grader's private folder before the kernel started.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import platform
import select
import signal
import socket
import struct
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = (0x00020000, 0x04000000, 0x10000000,
                                                                       0x20000000, 0x40000000)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_CAP_AMBIENT = 1, 36, 38, 24, 47
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41}
MARKER = "LABKIT_GRADING_SANDBOX"
# Device nodes a kernel needs; bound from the host's /dev into the sandbox's own /dev.
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


@dataclass
class Policy:
    """Everything the launcher needs, written by the grader as JSON."""

    scratch: str
    kernel_dir: str
    token: str
    uid: int | None = None        # the kernel's uid (root only), None to keep the grader's
    memory_mb: int = 4096
    cpu_seconds: int = 900
    file_mb: int = 256
    nproc: int = 512
    namespaces: bool = True
    tmp_mb: int = 512
    read_only: list[str] = field(default_factory=list)   # what the kernel may see, read-only
    read_write: list[str] = field(default_factory=list)  # the submission's own folders
    root_dir: str = ""            # an empty folder the sandbox's root is mounted on
    cgroup: list[str] = field(default_factory=list)      # cgroup.procs files to join
    nice: int = 0                 # added priority penalty where no cgroup shares the CPU
    status_path: str = ""
    leftovers_path: str = ""
    env: dict[str, str] = field(default_factory=dict)
    warm: str = ""  # the run's warm process (its Unix socket), "" to start the kernel directly

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> Policy:
        return cls(**json.loads(Path(path).read_text()))


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _mount(libc, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(libc.mount(source.encode() if source else None, target.encode(), fstype.encode() if fstype else None,
                      flags, data.encode() if data else None), f"mount {source or ''} on {target}")


def _unshare(libc: ctypes.CDLL) -> str:
    """Enter new mount, network, PID and host-name namespaces; returns how (root or user namespace)."""
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWUTS
    if os.geteuid() == 0:
        _check(libc.unshare(flags), "unshare")
        return "root"
    uid, gid = os.getuid(), os.getgid()
    _check(libc.unshare(flags | CLONE_NEWUSER), "unshare (user namespace)")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    return "user namespace"


def probe_namespaces() -> str:
    """"" when this process may create the sandbox's namespaces, else why not (forks to try)."""
    if not sys.platform.startswith("linux"):
        return "not Linux"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            _unshare(_libc())
            os.write(write, b"ok")
        except BaseException as err:  # noqa: BLE001 (reported to the parent)
            os.write(write, str(err).encode()[:500])
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        answer = f.read().decode(errors="replace")
    os.waitpid(pid, 0)
    return "" if answer == "ok" else answer or "the probe died"


def _statvfs_flags(path: str) -> int:
    """The mount flags a read-only remount of a bind of ``path`` must keep (locked in user namespaces)."""
    try:
        flags = os.statvfs(path).f_flag
    except OSError:
        return 0
    return (MS_NOSUID if flags & os.ST_NOSUID else 0) | (MS_NODEV if flags & os.ST_NODEV else 0) | (
        MS_NOEXEC if flags & os.ST_NOEXEC else 0)


def _materialise(root: str, path: str, libc, read_only: bool, bound: list[str], depth: int = 0) -> None:
    """Make ``path`` exist in the new root as on the host: symbolic links on the way are re-created
    (same target), then the host's file or folder is bind-mounted there."""
    if depth > 16:
        raise OSError(40, f"too many links on the way to {path}")
    current = "/"
    parts = [p for p in path.split("/") if p]
    for index, part in enumerate(parts):
        host = os.path.join(current, part)
        inside = root + host
        if os.path.islink(host):
            target = os.readlink(host)
            if not os.path.lexists(inside):
                os.makedirs(os.path.dirname(inside), exist_ok=True)
                os.symlink(target, inside)
            resolved = os.path.normpath(os.path.join(current, target))
            rest = "/".join(parts[index + 1:])
            _materialise(root, os.path.join(resolved, rest) if rest else resolved, libc, read_only, bound, depth + 1)
            return
        current = host
    inside = root + current
    if any(current == b or current.startswith(b.rstrip("/") + "/") for b in bound):
        return  # already there, inside a folder bound before
    if os.path.isdir(current):
        os.makedirs(inside, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(inside), exist_ok=True)
        if not os.path.lexists(inside):
            os.close(os.open(inside, os.O_WRONLY | os.O_CREAT, 0o644))
    _mount(libc, current, inside, None, MS_BIND | MS_REC)
    if read_only:
        _mount(libc, None, inside, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _statvfs_flags(current))
    bound.append(current)


def _new_root(libc, policy: Policy) -> dict:
    """Build the sandbox's root from the allowlist and pivot into it; the old root is detached."""
    root = policy.root_dir
    _mount(libc, "tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0755")
    # one size-limited tmpfs for every world-writable folder the kernel gets
    shared = os.path.join(root, ".tmpfs")
    os.mkdir(shared)
    _mount(libc, "tmpfs", shared, "tmpfs", MS_NOSUID | MS_NODEV, f"size={policy.tmp_mb}m,mode=0755")
    for name, where in (("tmp", "/tmp"), ("var-tmp", "/var/tmp"), ("shm", "/dev/shm"), ("lock", "/run/lock")):
        os.mkdir(os.path.join(shared, name), 0o1777)
        os.chmod(os.path.join(shared, name), 0o1777)
        os.makedirs(root + where, exist_ok=True)
        _mount(libc, os.path.join(shared, name), root + where, None, MS_BIND)
    _check(libc.umount2(shared.encode(), MNT_DETACH), "umount the shared tmpfs")
    os.rmdir(shared)
    bound: list[str] = []
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            _materialise(root, f"/dev/{name}", libc, False, bound)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        with contextlib.suppress(FileExistsError):
            os.symlink(target, f"{root}/dev/{name}")
    os.makedirs(f"{root}/proc", exist_ok=True)
    visible, skipped = [], {}
    for path in policy.read_write:
        _materialise(root, path, libc, False, bound)
        visible.append(path)
    for path in sorted(policy.read_only, key=len):
        try:
            _materialise(root, path, libc, True, bound)
            visible.append(path)
        except OSError as err:
            skipped[path] = err.strerror or str(err)
    number = SYS_PIVOT_ROOT.get(platform.machine())
    old = os.path.join(root, ".old-root")
    os.mkdir(old)
    os.chdir(root)
    if number is not None and libc.syscall(number, b".", b".old-root") == 0:
        os.chdir("/")
        _check(libc.umount2(b"/.old-root", MNT_DETACH), "detach the old root")
        os.rmdir("/.old-root")
        how = "pivot_root"
    else:
        os.rmdir(old)
        os.chroot(root)
        os.chdir("/")
        how = "chroot"
    return {"root": f"allowlist ({how})", "visible": visible, "not_visible": skipped}


def _loopback_up() -> None:
    """Bring ``lo`` up in the new network namespace (SIOCGIFFLAGS/SIOCSIFFLAGS)."""
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0)))[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))


def _limits(policy: Policy, own_uid: bool) -> list[str]:
    import resource

    applied = []

    def limit(name: str, value: int) -> None:
        kind = getattr(resource, name, None)
        if kind is None:
            return
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(kind, (value, value))
            applied.append(f"{name}={value}")

    limit("RLIMIT_AS", policy.memory_mb * 1024 * 1024)
    limit("RLIMIT_CPU", policy.cpu_seconds)
    limit("RLIMIT_FSIZE", policy.file_mb * 1024 * 1024)
    limit("RLIMIT_CORE", 0)
    limit("RLIMIT_NICE", 0)
    if own_uid:  # counts every process of the uid: meaningful only for a uid of its own
        limit("RLIMIT_NPROC", policy.nproc)
    return applied


def _drop_to(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities(libc) -> None:
    """No capability left (a user namespace grants them all), none to regain: the kernel cannot
    mount, unmount or pivot to see what the sandbox covers."""
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:
            break
    libc.prctl(PR_CAP_AMBIENT, 4, 0, 0, 0)
    data = (_CapData * 2)()
    _check(libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), data), "capset")


class _Stop(Exception):
    """Raised in the sandbox's init by SIGTERM: take everything down now."""


def _raise_stop(signum, frame):
    raise _Stop()


def _reap_until(kernel_pid: int) -> int:
    """As init of the namespace (or subreaper): reap everything until the kernel exits."""
    status = 0
    while True:
        try:
            pid, code = os.waitpid(-1, 0)
        except ChildProcessError:
            return status
        if pid == kernel_pid:
            status = os.waitstatus_to_exitcode(code)
            return status


def _own_proc() -> bool:
    """Whether /proc shows this process's own PID namespace (so its pids are ours to signal)."""
    try:
        return os.readlink("/proc/self") == str(os.getpid())
    except OSError:
        return False


def _children() -> list[int]:
    """Live processes whose parent is this one (as init or subreaper: every orphan of the tree).
    Zombies (already exited, waiting to be reaped) are not listed: they are reaped, not counted."""
    me, found = os.getpid(), []
    for pid in _proc_pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and fields[1] == str(me) and fields[0] not in ("Z", "X"):
            found.append(pid)
    return found


def process_name(pid: int) -> str:
    """A short name for ``pid`` from its command line ("python3 server.py", "node"), or "" if gone."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    words = [os.path.basename(a.decode("utf-8", "replace")) for a in argv if a]
    script = next((w for w in words[1:] if w.endswith(".py")), "")  # python -u server.py ...
    return " ".join(w for w in words[:1] + [script] if w)[:60]


def _kill_tree(kernel: int | None, rounds: int = 60) -> list[str]:
    """SIGKILL every descendant of this init/subreaper; returns their names, the kernel not counted.

    Orphans are re-parented to this process, so killing its children round after round
    reaches the whole tree, detached (``setsid``, double-forked) processes included.
    """
    if not _own_proc():
        return []
    killed: dict[int, str] = {}
    quiet = 0
    for _ in range(rounds):
        found = _children()
        for pid in found:
            name = process_name(pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.setdefault(pid, name or "?")
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        quiet = quiet + 1 if not found else 0
        if quiet >= 2:
            break
        time.sleep(0.01 if found else 0.02)
    killed.pop(kernel or -1, None)
    return list(killed.values())


def _exec_kernel(command: list[str], env: dict[str, str]) -> None:
    os.execve(command[0], command, env)


def _supervise(init: int, control: socket.socket | None) -> int:
    """Wait for the sandbox's init; on SIGTERM, a "stop" on ``control``, its closing, or the death
    of the process that started this one, ask init to take the sandbox down (then force it)."""
    parent = os.getppid()
    stop_at: list[float] = []

    def request_stop(*_args) -> None:
        if not stop_at:
            stop_at.append(time.monotonic() + 5)
            with contextlib.suppress(ProcessLookupError):
                os.kill(init, signal.SIGTERM)

    if control is None:
        signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        watch = os.pidfd_open(init)
    except (AttributeError, OSError):
        watch = None
    while True:
        pid, code = os.waitpid(init, os.WNOHANG)
        if pid:
            if watch is not None:
                os.close(watch)
            return os.waitstatus_to_exitcode(code)
        readable = [x for x in (watch, control) if x is not None]
        ready = select.select(readable, [], [], 0.5 if watch is not None else 0.05)[0] if readable else []
        if not readable:
            time.sleep(0.05)
        if control is not None and control in ready:
            try:
                data = control.recv(64)
            except OSError:
                data = b""
            if not data or b"stop" in data:
                request_stop()
                if not data:
                    control = None
        if os.getppid() != parent:
            request_stop()
        if stop_at and time.monotonic() > stop_at[0]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(init, signal.SIGKILL)


def _join_cgroup(files: list[str]) -> str:
    for path in files:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)
        except OSError as err:
            return f"could not join {path}: {err.strerror}"
    return ""


def launch(policy_path: Path, command: list[str], start=_exec_kernel,
           control: socket.socket | None = None) -> int:
    """Apply the policy and run ``command`` (the kernel); returns its exit status.

    ``start(command, env)`` replaces this process image with the kernel (``execve``, or the
    warm process's in-place kernel start, see :mod:`labkit.grading.warm`); ``control`` is the
    warm client's connection (a "stop" there, or its closing, takes the sandbox down).
    """
    policy = Policy.load(policy_path)
    status_file = open(policy.status_path or Path(policy_path).with_name("status.json"), "w")  # noqa: SIM115
    leftovers = os.open(policy.leftovers_path or os.devnull,
                        os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    status: dict[str, object] = {"platform": sys.platform, "uid": None, "namespaces": None,
                                 "kernel": "warm fork" if start is not _exec_kernel else "exec"}
    libc = _libc() if sys.platform.startswith("linux") else None
    if policy.cgroup:
        problem = _join_cgroup(policy.cgroup)
        status["cgroup"] = problem or "joined"
    in_pid_ns = False
    if libc is not None and policy.namespaces:
        try:
            status["namespaces"] = _unshare(libc)
            in_pid_ns = True
            _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
            status.update(_new_root(libc, policy))
            _check(libc.sethostname(b"localhost", 9), "sethostname")  # resolvable without DNS
            try:
                _loopback_up()
                status["network"] = "own namespace, loopback only"
            except OSError as err:
                status["network"] = f"own namespace, no loopback ({err})"
        except OSError as err:  # fail closed: never a kernel half inside the walls
            status["namespace_error"] = str(err)
            status_file.write(json.dumps(status))
            status_file.close()
            print(f"labkit sandbox: the namespaces this grader checked could not be set up: {err}", file=sys.stderr)
            return 126
    own_uid = policy.uid is not None and os.geteuid() == 0
    if own_uid and policy.uid is not None:  # the connection file jupyter_client just wrote into this start's folder
        for name in os.listdir(policy.kernel_dir):
            os.chown(os.path.join(policy.kernel_dir, name), policy.uid, policy.uid, follow_symlinks=False)
    status["uid"] = policy.uid if own_uid else os.geteuid()
    status["limits"] = {"memory_mb": policy.memory_mb, "cpu_seconds": policy.cpu_seconds,
                        "file_mb": policy.file_mb, "nproc": policy.nproc if own_uid else None,
                        "tmp_mb": policy.tmp_mb if in_pid_ns else None, "nice": policy.nice}
    with status_file:  # opened before the root was replaced
        status_file.write(json.dumps(status))

    init = os.fork()
    if init:  # the supervisor: wait, and take the namespace down with it
        os.close(leftovers)
        return _supervise(init, control)

    # init of the new PID namespace (or subreaper without one): dies with the supervisor
    if control is not None:
        control.close()
    if libc is not None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        if in_pid_ns:
            with contextlib.suppress(OSError):
                _check(libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
                       "mount proc")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    kernel = os.fork()
    if kernel == 0:
        try:
            os.close(leftovers)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.setsid()
            os.chdir(policy.scratch)
            _limits(policy, own_uid)
            if policy.nice:
                os.nice(policy.nice)
            if own_uid and policy.uid is not None:
                _drop_to(policy.uid)
            elif libc is not None and status.get("namespaces") == "user namespace":
                _drop_capabilities(libc)
            if libc is not None:  # dies with init (the credentials change above cleared it)
                libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            env = dict(policy.env, **{MARKER: policy.token, "HOME": policy.scratch})
            start(command, env)
        except BaseException as err:  # never fall back into the launcher's code
            print(f"labkit sandbox: cannot start the kernel: {err}", file=sys.stderr)
        os._exit(127)
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        code = _reap_until(kernel)
        alive = None
    except _Stop:
        code, alive = 128 + signal.SIGTERM, kernel
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if in_pid_ns:  # all of it dies with this process anyway; killed first to count it
        left = _kill_tree(alive) if _own_proc() else []
    else:
        left = _kill_tree(alive) + ["?"] * len(kill_marked(policy.token, policy.uid if own_uid else None))
    if left:  # one line per process killed: its name (the grader's note says what was left running)
        with contextlib.suppress(OSError):
            os.write(leftovers, "".join(f"{name}\n" for name in left).encode())
    os._exit(code if code >= 0 else 128 - code)


def _proc_pids() -> list[int]:
    try:
        return [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []


def _marked(pid: int, token: str, uid: int | None) -> bool:
    if pid == os.getpid():
        return False
    if uid is not None:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("Uid:") and int(line.split()[1]) == uid:
                    return True
        except (OSError, ValueError, IndexError):
            pass
    try:
        return f"{MARKER}={token}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def marked_pids(token: str, uid: int | None = None) -> list[int]:
    """The processes of this sandbox, found by its uid or by the marker variable."""
    return [pid for pid in _proc_pids() if _marked(pid, token, uid)]


def kill_marked(token: str, uid: int | None = None, rounds: int = 5) -> set[int]:
    """SIGKILL every process of this sandbox (by its uid, or by the marker variable); count them.

    Repeated a few times, so a process forking while it is being killed is caught too.
    Without /proc (macOS) nothing can be found this way; the session kill is all there is.
    """
    killed: set[int] = set()
    for _ in range(rounds):
        found = marked_pids(token, uid)
        if not found:
            break
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        time.sleep(0.05)
    return killed


def first_closed(path: str) -> str | None:
    """The first folder on ``path`` that other users cannot enter (None: all can be entered)."""
    parts = Path(path).resolve().parts
    for depth in range(1, len(parts)):
        folder = os.path.join(*parts[:depth])
        try:
            if not os.stat(folder).st_mode & 0o001:
                return folder
        except OSError:
            return folder
    return None


class UidLease:
    """A uid no process uses, held for one submission (root only): an exclusive lock per uid in a
    folder only root can write, so concurrent grading runs never share one."""

    FOLDER = Path("/run/labkit-grading-uids")
    FIRST, COUNT = 61000, 4000

    def __init__(self, slot: int):
        self.uid: int | None = None
        self._fd: int | None = None
        if os.geteuid() != 0 or not sys.platform.startswith("linux"):
            return
        import fcntl

        folder = self.FOLDER if Path("/run").is_dir() else Path("/tmp") / "labkit-grading-uids"
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        used = set()
        for pid in _proc_pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("Uid:"):
                        used.add(int(line.split()[1]))
            except (OSError, ValueError):
                continue
        start = (os.getpid() * 37 + slot * 7) % self.COUNT
        for offset in range(self.COUNT):
            uid = self.FIRST + (start + offset) % self.COUNT
            if uid in used:
                continue
            fd = os.open(folder / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self.uid, self._fd = uid, fd
            return

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _via_warm(policy: Policy, policy_path: Path, command: list[str]) -> int | None:
    """Have the run's warm process fork the kernel (see :mod:`labkit.grading.warm`); relay stop
    and the exit status. None when no warm process answers (the caller then starts it itself)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(policy.warm)
        request = json.dumps({"policy": str(Path(policy_path).resolve()), "command": command}).encode()
        socket.send_fds(conn, [request], [0, 1, 2])
    except OSError:
        conn.close()
        return None
    stopping: list[bool] = []

    def stop(*_args) -> None:
        if not stopping:
            stopping.append(True)
            with contextlib.suppress(OSError):
                conn.sendall(b"stop\n")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent, received = os.getppid(), b""
    while True:
        if select.select([conn], [], [], 0.5)[0]:
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            if not data:
                break
            received += data
        if os.getppid() != parent:
            stop()
    try:
        return int(json.loads(received.strip().splitlines()[-1])["exit"])
    except (ValueError, KeyError, IndexError):
        return 1


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m labkit.grading.sandbox POLICY.json -- KERNEL-COMMAND...", file=sys.stderr)
        return 2
    policy_path, command = Path(argv[0]), argv[2:]
    policy = Policy.load(policy_path)
    if policy.warm and command[1:3] == ["-m", "ipykernel_launcher"]:
        code = _via_warm(policy, policy_path, command)
        if code is not None:
            return code
    return launch(policy_path, command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
