"""A model server subprocess seen from the backend: start, health, invoke, stop.

:class:`ModelProcess` runs ``server.py`` with this Python (``sys.executable``) and
:func:`labkit.offline.subprocess_environment`, reads its output into a log callback,
learns its port from its ready line and keeps a small pool of keep-alive HTTP
connections to it. Every process started is tracked so that :func:`stop_all` (on reset,
at exit) leaves nothing running; the server also dies with its parent on its own.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

START_TIMEOUT_S = 120.0
SERVER = str(Path(__file__).with_name("server.py"))
READY, FAILED, STANDBY = "LABKIT-SERVER-READY", "LABKIT-SERVER-FAILED", "LABKIT-SERVER-STANDBY"

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
                 env: dict[str, str], log: Callable[[str], None], multi_model: bool = False,
                 max_models: int = 3):
        self.args = ["--model-dir", model_dir, "--framework", framework, "--program", program,
                     "--parent", str(os.getpid())]
        if code_dir:
            self.args += ["--code-dir", code_dir]
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
        self.proc: subprocess.Popen | None = None

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> ModelProcess:
        """Start the server: on the warm standby process when one is ready, else a fresh one."""
        self.started_at = time.time()
        self.state = "starting"
        spare = _take_standby()
        if spare is not None:
            self.proc, spare.proc = spare.proc, None
            with _all_lock:
                _all.discard(spare)
                _all.add(self)
            spare.owner = self
            assert self.proc is not None and self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"argv": self.args, "env": self.env}) + "\n")
            self.proc.stdin.flush()
        else:
            self.proc = _spawn([*self.args], self.env)
            with _all_lock:
                _all.add(self)
            threading.Thread(target=self._read, args=(self.proc,), name="labkit-model-server-log",
                             daemon=True).start()
        threading.Thread(target=self._then_replenish, name="labkit-standby", daemon=True).start()
        return self

    def _then_replenish(self) -> None:
        self._event.wait(START_TIMEOUT_S)  # not while this one starts: they would share the CPU
        _replenish_standby()

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(READY):
                self.port = int(line.split()[1])
                self.ready_at = time.time()
                self.state = "ready"
                self._event.set()
                continue
            if line.startswith((FAILED, STANDBY)):
                continue
            self._tail = (self._tail + [line.rstrip()])[-40:]
            with contextlib.suppress(Exception):  # logging must never kill the reader
                self.log(line)
        if self.state != "stopped":
            self.failure = "\n".join(self._tail[-15:]) or f"the model server exited ({proc.wait()})"
            self.state = "failed"
        self._event.set()

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


def _spawn(argv: list[str], extra_env: dict[str, str]) -> subprocess.Popen:
    from .. import subprocess_environment

    env = subprocess_environment()
    env.update(extra_env)
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen([sys.executable, "-u", SERVER, *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.PIPE, text=True, bufsize=1)


class _Standby:
    """A server process that has done its imports and waits for its model (see ``server.py``).

    Its output goes to whichever :class:`ModelProcess` takes it (``owner``).
    """

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = _spawn(["--standby"], {})
        self.ready = threading.Event()
        self.owner: ModelProcess | None = None
        threading.Thread(target=self._read, name="labkit-model-server-standby", daemon=True).start()

    def _read(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(STANDBY):
                self.ready.set()
                break
        while self.owner is None and proc.poll() is None:
            time.sleep(0.005)
        if self.owner is not None:
            self.owner._read(proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


_standby: list[_Standby] = []
use_standby = os.environ.get("LABKIT_HOSTING_STANDBY", "1") != "0"


def _take_standby() -> _Standby | None:
    """The standby server, even if still importing: it reads its model once it is done."""
    with _all_lock:
        if _standby and _standby[0].proc is not None and _standby[0].proc.poll() is None:
            return _standby.pop(0)
    return None


def wait_for_standby(timeout: float = 60.0) -> bool:
    """Block until the standby server has done its imports (benchmarks use this)."""
    with _all_lock:
        spare = _standby[0] if _standby else None
    return spare is not None and spare.ready.wait(timeout)


def prepare_standby() -> None:
    """Start the standby server now (CreateModel calls this: an endpoint or a job usually follows)."""
    _replenish_standby()


def _replenish_standby() -> None:
    """Keep one warm server ready for the next endpoint (after the first one was asked for)."""
    if not use_standby:
        return
    with _all_lock:
        if _standby:
            return
        spare = _Standby()
        _standby.append(spare)
        _all.add(spare)  # type: ignore[arg-type]


def stop_all() -> None:
    """Stop every model server this process started, the standby included."""
    with _all_lock:
        procs = list(_all)
        _standby.clear()
    for proc in procs:
        proc.stop()


atexit.register(stop_all)
