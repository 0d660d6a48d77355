"""A model server process seen from the backend: start, health, invoke, stop.

:class:`ModelProcess` runs ``server.py`` with this Python (``sys.executable``) and
:func:`labkit.offline.subprocess_environment`, reads its output into a log callback,
learns its port from its ready line and keeps a small pool of keep-alive HTTP
connections to it.

Starting a Python that imports numpy, scikit-learn and the inference toolkit costs
seconds of CPU, so on Linux one warm **zygote** process (:class:`Zygote`, started when
the first model is created) does those imports once and forks each model server from
then on, in milliseconds. Where fork is not safe (macOS) or the zygote is gone, a server
is a fresh process. Either way every server started is tracked so that :func:`stop_all`
(on reset, at exit) leaves nothing running, and each dies with this process on its own
(``server._die_with_parent``), even if this process is SIGKILLed.

The zygote and every server run in a session of their own, out of the kernel's process
group: Jupyter interrupts a cell with SIGINT to that group (which killed every endpoint
with it), and ipykernel's shutdown signals and waits for the group's processes (it waited
out its whole grace for the zygote, which only this process's exit handler reaps).
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 120.0
SERVER = str(Path(__file__).with_name("server.py"))
READY, FAILED, ZYGOTE = "LABKIT-SERVER-READY", "LABKIT-SERVER-FAILED", "LABKIT-ZYGOTE-READY"

_all: set[ModelProcess] = set()
_all_lock = threading.Lock()


class _Connection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class ContainerError(RuntimeError):
    """The model server could not be reached (it died, or never started)."""


class ModelProcess:
    """One model server: ``start()``, ``wait()``, ``invoke()``, ``stop()``."""

    def __init__(self, model_dir: str, *, code_dir: str | None, program: str, framework: str,
                 env: dict[str, str], log: Callable[[str], object], multi_model: bool = False,
                 max_models: int = 3, workdir: str | None = None, image: str = ""):
        self.args = ["--model-dir", model_dir, "--framework", framework, "--program", program,
                     "--parent", str(os.getpid()), "--image", image]
        if code_dir:
            self.args += ["--code-dir", code_dir]
        if workdir:
            self.args += ["--workdir", workdir]
        if multi_model:
            self.args += ["--multi-model", "--max-models", str(max_models)]
        self.env = env
        self.log = log
        self.port: int | None = None
        self.state = "new"
        self.started_at = self.ready_at = 0.0
        self.failure = ""
        self._tail: list[str] = []
        self._event = threading.Event()
        self._pool: queue.SimpleQueue[_Connection] = queue.SimpleQueue()
        self.proc: subprocess.Popen | ForkedProcess | None = None

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> ModelProcess:
        """Start the server: forked by the warm zygote where there is one, else a fresh process."""
        self.started_at = time.time()
        self.state = "starting"
        zygote = warm_up()
        if zygote is not None:
            try:
                self.proc = zygote.fork(self.args, _environment(self.env))
            except OSError as err:
                self.log(f"(the warm zygote failed: {err}; starting a fresh server process)")
                _drop_zygote(zygote)
        if self.proc is None:
            self.proc = _spawn([*self.args], self.env)
        with _all_lock:
            _all.add(self)
        threading.Thread(target=self._read, args=(self.proc,), name="labkit-model-server-log", daemon=True).start()
        return self

    def _read(self, proc: subprocess.Popen | ForkedProcess) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(READY):
                self.port = int(line.split()[1])
                self.ready_at = time.time()
                self.state = "ready"
                self._event.set()
                continue
            if line.startswith(FAILED):
                continue
            self._tail = (self._tail + [line.rstrip()])[-80:]
            with contextlib.suppress(Exception):  # logging must never kill the reader
                self.log(line)
        if self.state != "stopped":
            self.failure = "\n".join(self._tail[-15:]) or f"the model server exited ({proc.wait()})"
            self.state = "failed"
        self._event.set()
        if isinstance(proc, subprocess.Popen):
            proc.wait()  # reaped now (a forked server is the zygote's to reap)

    @property
    def root_cause(self) -> str:
        """Why the server stopped, from its own output: the exception and the learner's line that raised it
        (the model folder written as the container's ``/opt/ml/model``)."""
        from .. import failures

        cause = failures.explain({"model server": failures.timed(self._tail)}, "model server")
        return cause.replace(self.args[1].rstrip("/"), "/opt/ml/model")

    def wait(self, timeout: float = 120.0) -> bool:
        """Block until the server serves (True) or failed (False)."""
        self._event.wait(timeout)
        return self.state == "ready"

    def stop(self) -> None:
        self.state = "stopped"
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                break
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        with _all_lock:
            _all.discard(self)

    @property
    def alive(self) -> bool:
        return self.state == "ready" and self.proc is not None and self.proc.poll() is None

    # requests ----------------------------------------------------------------------------

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                timeout: float = 60.0) -> tuple[int, bytes, str]:
        """Send one request; returns ``(status, body, content type)``."""
        if not self.alive:
            raise ContainerError(self.failure or f"the model server is {self.state}")
        for attempt in (0, 1):
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                conn = _Connection("127.0.0.1", self.port, timeout=timeout)
            try:
                conn.request(method, path, body=body, headers=headers or {})
                resp = conn.getresponse()
                data = resp.read()
                ctype = resp.getheader("Content-Type") or ""
                self._pool.put(conn)
                return resp.status, data, ctype
            except (OSError, http.client.HTTPException) as err:
                conn.close()
                if attempt or not self.alive:
                    raise ContainerError(f"the model server did not answer: {err}") from err
        raise AssertionError("unreachable")

    def invoke(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
        return self.request("POST", "/invocations", body, headers)

    def ping(self) -> bool:
        try:
            return self.request("GET", "/ping", timeout=2)[0] == 200
        except ContainerError:
            return False


def _environment(extra_env: dict[str, str]) -> dict[str, str]:
    from .. import subprocess_environment

    env = subprocess_environment()
    env.update(extra_env)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _spawn(argv: list[str], extra_env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-u", SERVER, *argv], env=_environment(extra_env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.PIPE, text=True,
                            bufsize=1, start_new_session=True)


def _own_proc() -> bool:
    """Whether ``/proc`` shows this process's PID namespace (see ``server._own_proc``)."""
    try:
        return os.readlink("/proc/self") == str(os.getpid())
    except OSError:
        return False


def _start_time(pid: int) -> str | None:
    if not _own_proc():  # no usable /proc: alive or not, by the signal test (the zygote reaps)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


class ForkedProcess:
    """A server the zygote forked: the part of ``subprocess.Popen`` that :class:`ModelProcess` uses.

    It is the zygote's child, not ours, so it is known by pid and start time (a recycled
    pid is never signalled); its exit status is not known (the zygote does not keep it).
    """

    def __init__(self, pid: int, stdin: Any, stdout: Any):
        self.pid, self.stdin, self.stdout = pid, stdin, stdout
        self.returncode: int | None = None
        self._started = _start_time(pid)

    def poll(self) -> int | None:
        if self.returncode is None and (self._started is None or _start_time(self.pid) != self._started):
            self.returncode = -1
        return self.returncode

    def _signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        started = time.time()
        while (code := self.poll()) is None:
            if timeout is not None and time.time() > started + timeout:
                raise subprocess.TimeoutExpired(SERVER, timeout)
            time.sleep(0.01)
        for stream in (self.stdin,):
            with contextlib.suppress(OSError):
                stream.close()
        return code


class Zygote:
    """The warm process that forks model servers (``server.zygote``): one per Python process.

    It survives backend resets (it holds no state, only imports) and dies with this process.
    """

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen([sys.executable, "-u", SERVER, "--zygote", str(theirs.fileno())],
                                     pass_fds=[theirs.fileno()], env=_environment({}), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                     start_new_session=True)
        theirs.close()
        ours.settimeout(START_TIMEOUT_S)
        self.sock = ours
        self.ready = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._read, name="labkit-zygote-log", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(ZYGOTE):
                self.ready.set()
        self.ready.set()  # it exited: fork() fails and servers start as fresh processes
        self.proc.wait()  # reaped now, not left a zombie until this process exits

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def fork(self, argv: list[str], env: dict[str, str]) -> ForkedProcess:
        """A new server with ``argv`` and ``env`` (waits for the zygote's imports, or cuts them short)."""
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        request = json.dumps({"argv": argv, "env": env, "cwd": os.getcwd()}).encode()
        try:
            with self._lock:
                socket.send_fds(self.sock, [request], [stdin_r, stdout_w])
                reply = self.sock.recv(4096)
        except OSError:
            os.close(stdin_w)
            os.close(stdout_r)
            raise
        finally:
            os.close(stdin_r)
            os.close(stdout_w)
        if not reply:
            os.close(stdin_w)
            os.close(stdout_r)
            raise OSError("the zygote has exited")
        return ForkedProcess(json.loads(reply)["pid"], os.fdopen(stdin_w, "w", buffering=1),
                             os.fdopen(stdout_r, "r", buffering=1))

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


_zygote: list[Zygote] = []
use_zygote = os.environ.get("LABKIT_HOSTING_ZYGOTE", "1") != "0" and sys.platform.startswith("linux")


def warm_up() -> Zygote | None:
    """The zygote, started now if it is not running (CreateModel calls this: an endpoint usually follows)."""
    if not use_zygote:
        return None
    with _all_lock:
        if _zygote and not _zygote[0].alive:
            _zygote.pop().stop()
        if not _zygote:
            _zygote.append(Zygote())
        return _zygote[0]


def _drop_zygote(zygote: Zygote) -> None:
    with _all_lock:
        if zygote in _zygote:
            _zygote.remove(zygote)
    zygote.stop()


def wait_until_warm(timeout: float = 60.0) -> bool:
    """Block until the zygote has done its imports (benchmarks and tests use this)."""
    with _all_lock:
        zygote = _zygote[0] if _zygote else None
    return zygote is not None and zygote.ready.wait(timeout) and zygote.alive


def running_pids() -> dict[str, list[int]]:
    """Pids of the model servers this process started, and of the zygote."""
    with _all_lock:
        servers = [p.proc.pid for p in _all if p.proc is not None and p.proc.poll() is None]
        zygotes = [z.proc.pid for z in _zygote if z.alive]
    return {"servers": servers, "zygote": zygotes}


def stop_all(zygote: bool = False) -> None:
    """Stop every model server this process started (and the zygote too, with ``zygote=True``)."""
    with _all_lock:
        procs = list(_all)
        zygotes = list(_zygote) if zygote else []
        if zygote:
            _zygote.clear()
    for proc in procs:
        proc.stop()
    for z in zygotes:
        z.stop()


atexit.register(stop_all, zygote=True)
