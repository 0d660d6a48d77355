"""Warm kernels: one process per grading run imports what every kernel of the lab imports,
then forks a fresh kernel for each submission.

Most of a lab's grading time is spent importing (IPython, boto3, moto, pandas, matplotlib,
the offline engines) in every kernel again. ``python -m labkit.grading.warm SOCKET SPEC``
imports them once, in the kernel's environment, with nothing of any submission, hidden
test or gradebook in it, and listens on a Unix socket in the grader's private folder.

For each kernel the sandbox launcher (what jupyter_client starts, see
:mod:`labkit.grading.sandbox`) connects, passes its stdin/stdout/stderr and the policy,
and the warm process forks a *leader*, which applies exactly the walls of an ``exec``-ed
kernel (cgroup, namespaces, allowlist root, uid, limits, environment) through
:func:`~labkit.grading.sandbox.launch` and then starts ipykernel in place of ``execve``.
The launcher relays "stop" (SIGTERM) and the leader relays the exit status back, so
jupyter_client sees an ordinary kernel process.

Forking is only done from a process with a single thread: a module that starts a thread
at import is reported (``{"threads": module}``) and the grader starts the warm process again
without it. What a forked kernel shares with its siblings: the imported modules and the
hash seed (``PYTHONHASHSEED``); numpy's global random state is re-seeded in each. What the warm
process loaded is frozen (``gc.freeze``) before the first fork: a kernel's garbage collector
skips it, and its pages stay shared.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess

# Threads that survive a fork safely (jemalloc, bundled with pyarrow, re-creates its
# background threads in the child).
FORK_SAFE_THREADS = {"jemalloc_bg_thd"}


def _native_threads() -> list[str]:
    try:
        names = []
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):
                names.append(Path(f"/proc/self/task/{tid}/comm").read_text().strip())
        return names
    except OSError:
        return []


def _unsafe_threads() -> list[str]:
    extra = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    native = _native_threads()
    if native:
        native = native[1:]  # the first task is the main thread
        extra += [n for n in native if n not in FORK_SAFE_THREADS and n not in extra]
    return extra


def preload(modules: list[str]) -> tuple[list[str], dict[str, str], str | None]:
    """Import ``modules`` in order; (imported, failed with why, first module that started a thread)."""
    loaded: list[str] = []
    failed: dict[str, str] = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except BaseException as err:  # noqa: BLE001 (a module that fails simply is not preloaded)
            failed[name] = f"{type(err).__name__}: {err}"[:200]
            continue
        if _unsafe_threads():
            return loaded, failed, name
        loaded.append(name)
    return loaded, failed, None


def _close_fds(keep: set[int]) -> None:
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 256))
    for fd in fds:
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def start_in_place(command: list[str], env: dict[str, str]) -> None:
    """The kernel, started in this (forked) process as ``python -m ipykernel_launcher ARGS`` would."""
    os.environ.clear()
    os.environ.update(env)
    _close_fds(set())
    import ipykernel_launcher

    sys.argv = [ipykernel_launcher.__file__, *command[3:]]
    if sys.path and (sys.path[0] == "" or Path(sys.path[0]).resolve() == Path(WARM_CWD).resolve()):
        del sys.path[0]  # as ipykernel_launcher does; IPython puts '' back
    if "numpy.random" in sys.modules:
        sys.modules["numpy.random"].seed()
    for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from ipykernel import kernelapp

    try:
        kernelapp.launch_new_instance()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    # The exit handlers an exec-ed kernel runs as it ends: the course's backend stops the model
    # servers and training jobs it started (they live outside the kernel's process group), so the
    # grader counts only what the submission itself left running.
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def is_kernel_command(command: list[str]) -> bool:
    """Whether ``command`` is the plain ipykernel command a warm process can stand in for."""
    return len(command) >= 3 and command[1:3] == ["-m", "ipykernel_launcher"]


def _serve(conn: socket.socket) -> None:
    """The leader: one sandboxed kernel for one launcher connection."""
    from .sandbox import PR_SET_PDEATHSIG, _libc, launch

    with contextlib.suppress(Exception):
        _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # dies with the warm process
    message, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    for target, fd in zip((0, 1, 2), fds, strict=False):
        os.dup2(fd, target)
        os.close(fd)
    _close_fds({conn.fileno()})
    request = json.loads(message)
    code = 1
    try:
        code = launch(Path(request["policy"]), request["command"], start=start_in_place, control=conn)
    finally:
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps({"exit": code}).encode() + b"\n")


# Imported by every kernel.
KERNEL_MODULES = ["IPython", "ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell"]
# Imported by every course lab's kernel through ``labkit.connect()`` (the offline engines and what
# they build on) and ``lab.bill()``; the lab's own imports are added from its notebook.
COURSE_MODULES = ["numpy", "pandas", "boto3", "botocore", "moto", "moto.ec2", "moto.ecs",
                  "moto.applicationautoscaling", "moto.sagemaker", "moto.iam", "moto.s3",
                  "labkit", "labkit.offline", "@engines", "labkit.cost.meter", "labkit.cost.cleanup",
                  "matplotlib", "matplotlib.pyplot", "tqdm", "tqdm.auto"]
# Modules known to start a thread at import (so cannot be forked from): each kernel imports them
# itself. None of the course's engines does (hosting starts its threads with the first endpoint).
# The AWS CDK (lab 13) starts its jsii runtime, a node process read by a thread, at import: found
# at run time, it cost a second warm start of every import before it. Others are found at run
# time and reported (``{"threads": module}``).
THREAD_STARTERS: list[str] = ["aws_cdk", "constructs", "jsii"]


def lab_imports(nb) -> list[str]:
    """Absolute imports of the learner-visible code cells of ``nb`` (never its hidden tests)."""
    from .execute import imported_modules  # the executor's side; a kernel importing warm never needs it

    return imported_modules([cell.source for cell in nb.cells if cell.cell_type == "code"])


def warm_modules(release_nb) -> list[str]:
    """What the warm process imports for a lab: the course's modules, then the lab's own."""
    from labkit.offline import engines

    own = lab_imports(release_nb)
    modules = list(KERNEL_MODULES)
    if any(m == "labkit" or m.startswith("labkit.") for m in own):
        for name in COURSE_MODULES:
            modules += engines.modules() if name == "@engines" else [name]
    modules += own
    return [m for m in dict.fromkeys(modules) if m.split(".")[0] not in THREAD_STARTERS
            and not m.startswith("labkit.grading")]


BASE_SERVICES = ("iam", "s3", "sts")  # what labkit.connect() itself calls


def lab_services(release_nb) -> list[str]:
    """The AWS services whose botocore model files the warm process reads once for every kernel
    (:func:`labkit.offline.patches.preload_models`): each quoted name of a service in the
    learner-visible code cells of ``release_nb``, and labkit's own."""
    import re

    import botocore.session

    known = set(botocore.session.get_session().get_available_services())
    code = "\n".join(cell.source for cell in release_nb.cells if cell.cell_type == "code")
    return sorted(set(BASE_SERVICES) | (set(re.findall(r"""["']([a-z0-9-]+)["']""", code)) & known))


class WarmProcess:
    """The grader's side: start the warm process, learn when it is ready, stop it.

    ``socket`` is "" until it is ready, and stays "" if it could not be made ready (kernels
    are then started directly, as without it); ``status`` says which, for the report.
    """

    def __init__(self, folder: Path, modules: list[str], env: dict[str, str], attempts: int = 3,
                 services: list[str] | None = None):
        self.folder, self.modules, self.env, self.attempts = Path(folder), modules, env, attempts
        self.services = services or []
        self.socket = ""
        self.status: dict = {"warm": "starting"}
        self._ready = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._start, name="labkit-warm", daemon=True)

    def start(self) -> WarmProcess:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._thread.start()
        return self

    def _start(self) -> None:
        import subprocess

        exclude: list[str] = []
        try:
            for attempt in range(self.attempts):
                path = self.folder / f"warm-{attempt}.sock"
                spec = self.folder / f"warm-{attempt}.json"
                spec.write_text(json.dumps({"env": self.env, "modules": self.modules, "exclude": exclude,
                                            "cwd": str(self.folder), "services": self.services}))
                if self._stopped:
                    return
                proc = self._proc = subprocess.Popen(
                    [sys.executable, "-m", "labkit.grading.warm", str(path), str(spec)], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=self.folder, env=self.env,
                    start_new_session=True)
                assert proc.stdout is not None  # a PIPE
                line = proc.stdout.readline()
                try:
                    answer = json.loads(line)
                except ValueError:
                    answer = {}
                if answer.get("ready"):
                    self.socket = str(path)
                    self.status = {"warm": f"on: kernels forked from one process that imported "
                                           f"{len(answer.get('modules', []))} modules in {answer.get('seconds')} s",
                                   "warm_modules": answer.get("modules", []),
                                   "warm_failed": answer.get("failed", {})}
                    return
                proc.wait()
                if answer.get("threads"):
                    exclude.append(answer["threads"])
                    continue
                self.status = {"warm": f"off: the warm process stopped (exit {proc.returncode})"}
                return
            self.status = {"warm": f"off: modules start threads at import: {', '.join(exclude)}"}
        except OSError as err:
            self.status = {"warm": f"off: {err}"}
        finally:
            self._ready.set()

    def wait(self, timeout: float = 120.0) -> str:
        """The socket path once ready ("" when it is not available)."""
        self._ready.wait(timeout)
        return self.socket

    def stop(self) -> None:
        self._stopped = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                if proc.stdin is not None:
                    proc.stdin.close()
            try:
                proc.wait(5)
            except Exception:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._ready.set()


WARM_CWD = "/"


def main(argv: list[str]) -> int:
    """``python -m labkit.grading.warm SOCKET SPEC.json``: preload, then fork kernels on request."""
    global WARM_CWD
    socket_path, spec = argv[0], json.loads(Path(argv[1]).read_text())
    os.environ.clear()
    os.environ.update(spec["env"])
    WARM_CWD = spec.get("cwd") or "/"
    os.chdir(WARM_CWD)
    # No parent-death signal here: it fires when the grader's *thread* that started this process
    # ends. The grader's end closes our stdin instead, which stops this loop.
    started = time.monotonic()
    exclude = set(spec.get("exclude", []))
    loaded, failed, culprit = preload([m for m in spec["modules"] if m not in exclude])
    say = lambda **fields: print(json.dumps(fields), flush=True)  # noqa: E731
    if culprit:
        say(threads=culprit, detail=_unsafe_threads())
        return 3
    models = 0
    if "labkit.offline" in sys.modules:  # else a kernel does both itself
        patches = importlib.import_module("labkit.offline.patches")
        if spec.get("services"):
            with contextlib.suppress(Exception):
                models = patches.preload_models(spec["services"])
        with contextlib.suppress(Exception):
            patches.check_sdk_config_schemas()
    # Frozen (module docstring): collections walking the preloaded modules were a third of lab 00's kernel CPU.
    gc.collect()
    gc.freeze()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    os.chmod(socket_path, 0o600)
    listener.listen(64)
    say(ready=True, modules=loaded, failed=failed, models=models, seconds=round(time.monotonic() - started, 2))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    children: set[int] = set()
    try:
        while True:
            ready = select.select([listener, sys.stdin], [], [], 1.0)[0]
            with contextlib.suppress(ChildProcessError):
                while True:
                    pid, _ = os.waitpid(-1, os.WNOHANG)
                    if not pid:
                        break
                    children.discard(pid)
            if sys.stdin in ready and not os.read(sys.stdin.fileno(), 64):
                return 0  # the grader closed our stdin (or died): stop
            if listener in ready:
                conn, _ = listener.accept()
                pid = os.fork()
                if pid == 0:
                    try:
                        listener.close()
                        os.close(sys.stdin.fileno())
                        _serve(conn)
                    except BaseException:  # noqa: BLE001 (reported on the launcher's stderr)
                        import traceback

                        traceback.print_exc()
                    finally:
                        os._exit(0)
                children.add(pid)
                conn.close()
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
