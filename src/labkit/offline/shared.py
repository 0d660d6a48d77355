"""The shared offline backend: one per user, a process whose state lasts until reset.

``labkit.connect()`` in a learner's kernel (mode ``shared``, the default) calls
:func:`ensure_running`, which attaches to the user's backend process or starts it, and
then configures the kernel's clients to reach it (:func:`labkit.offline.attach`). That
process runs the offline backend (moto and the engines) and serves it on a loopback port;
S3 objects, jobs, endpoints, models, knowledge bases, logs and the meter live there, so
they last across kernels, notebooks and kernel restarts, as in an account, until
``labkit backend reset``. ``stop`` ends the process but keeps the account: it is saved
to ``account.pickle`` and restored by the next start (:mod:`.persistence`). Jobs and
model servers are its children, not the kernel's: an endpoint left running keeps running,
and keeps adding to the would-be bill, as on AWS, until deleted (``labkit cleanup`` finds it).

Its files, in ``$LABKIT_HOME`` (default ``~/.labkit``):

==================  ===============================================================
``backend.json``    url, port, pid, token, started_at, log, source: how a kernel attaches
``backend.lock``    taken while a backend starts, so two kernels get one backend
``backend.log``     the backend process's output
``account.pickle``  the account a stop saved, restored by the next start (deleted by reset)
``aws-config``      region and ``endpoint_url`` (``AWS_CONFIG_FILE`` of attached kernels)
``aws-credentials`` the execution role's session (``AWS_SHARED_CREDENTIALS_FILE``)
==================  ===============================================================

The port is ``$LABKIT_BACKEND_PORT``, or one the OS picks. Stopping it (``labkit backend
stop``, or SIGTERM) saves the account, then stops its jobs and model servers; they also
die with it if it is killed (their watchdog follows the backend's pid). It stops itself
the same way after ``$LABKIT_BACKEND_IDLE_S`` seconds (default 4 hours; 0: never) without
a request while no job runs and no endpoint is up. A kernel never attaches to a backend
that another checkout of labkit started (:func:`source_id`: the version and a hash of the
source): :func:`ensure_running` restarts it from this one, the account kept.

    python -m labkit.offline.shared serve     # what ensure_running starts (detached)
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

STATE_FILE, LOCK_FILE, LOG_FILE = "backend.json", "backend.lock", "backend.log"
HOME_VARIABLE, PORT_VARIABLE = "LABKIT_HOME", "LABKIT_BACKEND_PORT"
IDLE_VARIABLE = "LABKIT_BACKEND_IDLE_S"
START_TIMEOUT_S = 180.0
IDLE_S = 4 * 3600.0  # an idle backend (no request, nothing running) stops after this long, saving the account
# What a kernel's environment may hold that must not leak into the backend process.
_KERNEL_ONLY = ("LABKIT_LAB", "LABKIT_REPORT_DIR", "MPLBACKEND", "JPY_PARENT_PID", "JPY_SESSION_NAME",
                "PYDEVD_USE_FRAME_EVAL", "LABKIT_OFFLINE_MODE")


class BackendStartError(RuntimeError):
    """The shared backend could not be started or reached; the message says why and what to do."""


@functools.cache
def source_id() -> str:
    """This checkout of labkit: its version and a hash of its source files.

    A backend started by another checkout (an older version, or code changed since) runs
    other code than this kernel's: :func:`ensure_running` restarts it rather than attach.
    """
    import hashlib

    import labkit

    package = Path(labkit.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{labkit.__version__}+{digest.hexdigest()[:16]}"


def idle_limit() -> float | None:
    """Seconds an idle backend waits before it stops (``$LABKIT_BACKEND_IDLE_S``; 0: never)."""
    raw = os.environ.get(IDLE_VARIABLE, "").strip()
    try:
        seconds = float(raw) if raw else IDLE_S
    except ValueError:
        raise BackendStartError(f"{IDLE_VARIABLE}={raw!r}: give a number of seconds (0: never stop).") from None
    return seconds if seconds > 0 else None


def home() -> Path:
    return Path(os.environ.get(HOME_VARIABLE) or Path.home() / ".labkit").expanduser()


def _ensure_home() -> Path:
    path = home()
    path.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        path.chmod(0o700)  # the token and the credentials live here
    return path


def read_state() -> dict[str, Any] | None:
    try:
        return json.loads((home() / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def answering(state: dict[str, Any] | None, timeout: float = 5.0, *, use: bool = True) -> dict[str, Any] | None:
    """The backend's status when ``state``'s backend is up and answers with its token; else None.
    ``use=False`` only looks: the backend's idle timer goes on (a use resets it, so that a backend
    about to be used is not stopped for idling in between)."""
    if not state or not _pid_alive(int(state.get("pid", 0))):
        return None
    from .endpoint import PASSIVE_STATUS, control

    try:
        info = control(state["url"], state["token"], "status" if use else PASSIVE_STATUS, timeout=timeout)
    except Exception:
        return None
    return info if info.get("pid") == state.get("pid") else None


@contextlib.contextmanager
def _locked():
    with open(_ensure_home() / LOCK_FILE, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _log_tail(lines: int = 15) -> str:
    try:
        return "\n".join((home() / LOG_FILE).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _backend_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _KERNEL_ONLY}
    env["MPLBACKEND"] = "Agg"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def ensure_running(timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
    """The running backend's state, starting it first if none answers (one per ``$LABKIT_HOME``).

    A backend of another checkout of labkit (:func:`source_id`) is stopped, its account
    saved, and started again from this one; the state returned then says so in ``replaced``.
    """
    with _locked():
        state = read_state()
        replaced = None
        if state is not None and answering(state):
            if state.get("source") == source_id():
                return state
            replaced = (f"the offline backend that ran (pid {state['pid']}) was started by another version of "
                        f"labkit ({state.get('source') or 'before versions were recorded'}; this is "
                        f"{source_id()}): restarted it with this one, its account kept (jobs that ran "
                        "are Failed; endpoints serve again)")
            _stop_locked(state)
        started = _start_locked(timeout)
        return {**started, "replaced": replaced} if replaced else started


def _start_locked(timeout: float) -> dict[str, Any]:
    """Start the backend process and wait until it answers (the caller holds the lock)."""
    path = _ensure_home()
    with contextlib.suppress(FileNotFoundError):
        (path / STATE_FILE).unlink()
    with open(path / LOG_FILE, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "labkit.offline.shared", "serve"], cwd=str(path),
                                env=_backend_environment(), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise BackendStartError(f"The offline backend process exited ({code}) while starting. Its log "
                                    f"({path / LOG_FILE}) ends:\n{_log_tail()}")
        state = read_state()
        if state and state.get("pid") == proc.pid and answering(state):
            return state
        time.sleep(0.1)
    proc.terminate()
    raise BackendStartError(f"The offline backend did not answer within {timeout:.0f} s (the machine may be "
                            f"busy). Try again; its log ({path / LOG_FILE}) ends:\n{_log_tail()}")


def stop(timeout: float = 60.0) -> bool:
    """Stop the running backend, its account saved (its jobs and model servers end); False when none ran."""
    with _locked():
        state = read_state()
        if not state or not _pid_alive(int(state.get("pid", 0))):
            with contextlib.suppress(FileNotFoundError):
                (home() / STATE_FILE).unlink()
            return False
        _stop_locked(state, timeout)
        return True


def _stop_locked(state: dict[str, Any], timeout: float = 60.0) -> None:
    pid = int(state["pid"])
    try:
        from .endpoint import control

        control(state["url"], state["token"], "stop", {}, timeout=10)
    except Exception:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _reap(pid)
    with contextlib.suppress(FileNotFoundError):
        (home() / STATE_FILE).unlink()


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our child (a test that started the backend from this process)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def reset() -> dict[str, Any]:
    """Empty the running backend's account (starting a backend if none runs)."""
    from .endpoint import control

    state = ensure_running()
    return control(state["url"], state["token"], "reset", {}, timeout=300)


# --- the backend process --------------------------------------------------------------------------


def serve() -> int:
    """Run the shared backend in this process until stopped (``python -m labkit.offline.shared serve``)."""
    from .. import offline
    from . import persistence

    path = _ensure_home()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    port = int(os.environ.get(PORT_VARIABLE) or 0)
    idle = idle_limit()
    persistence.location = path / persistence.FILE
    saved = persistence.load(persistence.location)
    if saved is not None and saved.get("format") != persistence.FORMAT:
        kept = persistence.location.with_name(f"{persistence.FILE}.unreadable")
        persistence.location.replace(kept)
        print(f"labkit offline backend: {persistence.location} is damaged or of another version (kept as "
              f"{kept.name}); starting with an empty account", flush=True)
        saved = None
    problems = offline.start(port=port, config_dir=path, on_stop=stopping.set, saved=saved)
    if saved is not None:
        print(f"labkit offline backend: restored the account saved at {time.ctime(saved['saved_at'])}", flush=True)
    for problem in problems:
        print(f"labkit offline backend: not restored: {problem}", flush=True)
    url = offline.endpoint_url()
    state = {"url": url, "port": int(str(url).rsplit(":", 1)[1]), "pid": os.getpid(), "token": offline._token,
             "started_at": time.time(), "config_dir": str(path), "log": str(path / LOG_FILE),
             "source": source_id(), "idle_s": idle}
    tmp = path / f".{STATE_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(state, indent=1))
    tmp.chmod(0o600)
    tmp.replace(path / STATE_FILE)
    print(f"labkit offline backend: serving {url} (pid {os.getpid()})", flush=True)
    try:
        while not stopping.wait(1.0):
            if idle is not None and offline.idle_seconds() >= idle and not _running_resources():
                print(f"labkit offline backend: no request for {idle:.0f} s and nothing running: stopping "
                      f"(set {IDLE_VARIABLE} to change this; 0 never stops)", flush=True)
                break
    finally:
        print("labkit offline backend: saving the account, then stopping (jobs and model servers first)",
              flush=True)
        for problem in offline.stop(save_to=persistence.location):
            print(f"labkit offline backend: not saved: {problem}", flush=True)
        current = read_state()
        if current and current.get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                (path / STATE_FILE).unlink()
    return 0


def _running_resources() -> list[str]:
    """What keeps an idle backend up: jobs that run and endpoints that are up (they bill, as on AWS)."""
    from . import moto_state

    try:
        return _running_in(moto_state.backend("sagemaker"))
    except RuntimeError:  # a record added or removed while these were read: something runs
        return ["(records changing)"]


def _running_in(sm: Any) -> list[str]:
    active = ("InProgress", "Stopping")
    found = [f"training job {n}" for n, j in sm.training_jobs.items() if j.training_job_status in active]
    found += [f"processing job {n}" for n, j in sm.processing_jobs.items() if j.processing_job_status in active]
    found += [f"transform job {n}" for n, j in sm.transform_jobs.items() if j.transform_job_status in active]
    found += [f"tuning job {n}" for n, j in sm.hyper_parameter_tuning_jobs.items()
              if j.hyper_parameter_tuning_job_status in active]
    found += [f"endpoint {n}" for n, e in sm.endpoints.items() if e.endpoint_status != "Failed"]
    found += [f"pipeline execution {x.arn}" for p in sm.pipelines.values() for x in p.pipeline_executions.values()
              if x.pipeline_execution_status in ("Executing", "Stopping")]
    return found


# --- `labkit backend` ---------------------------------------------------------------------------------


USAGE = """labkit backend status|start|stop|reset

    status   whether the shared offline backend runs: url, pid, state folder, what is running
    start    start it (labkit.connect() does this on first use)
    stop     stop it, keeping its account (S3, models, endpoints, jobs, logs, the meter) for the
             next start: endpoints then serve again; jobs that ran end as Failed, with the reason
    reset    empty its account (as a fresh connect in grading does), keeping it running
"""


def _describe(state: dict[str, Any], info: dict[str, Any]) -> str:
    up = time.time() - float(state.get("started_at") or time.time())
    lines = [f"offline backend: running at {state['url']} (pid {state['pid']}, up {up / 60:.0f} min)",
             f"  state folder: {home()}  (log: {state.get('log')})",
             f"  labkit {state.get('source')}; stops after "
             + (f"{float(state['idle_s']) / 60:.0f} min idle" if state.get("idle_s") else "no idle time (never)"),
             f"  account {info['account']}, region {info['region']}, caller {info['caller_arn']}"]
    try:
        lines += _what_runs(state)
    except Exception as err:  # the listing is a convenience; status itself must not fail
        lines.append(f"  (could not list resources: {type(err).__name__}: {err})")
    return "\n".join(lines)


def _what_runs(state: dict[str, Any]) -> list[str]:
    """Billed resources still up, and the would-be bill since the backend started."""
    from .. import offline

    offline.attach({**state, "config_dir": str(home())})
    import boto3

    sm = boto3.client("sagemaker")
    jobs = [j["TrainingJobName"] for j in sm.list_training_jobs(StatusEquals="InProgress")["TrainingJobSummaries"]]
    # An endpoint being deleted (``labkit cleanup --yes`` just asked) is no longer left running.
    endpoints = [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"] if e.get("EndpointStatus") != "Deleting"]
    from ..cost.meter import price_events
    from . import usage

    rows, _ = price_events(usage.events(), region=offline.REGION, now=time.time())
    total = sum(r.cost for r in rows)
    return [f"  running: {len(jobs)} training job(s) {', '.join(jobs)}".rstrip(),
            f"  endpoints: {len(endpoints)} {', '.join(endpoints)}".rstrip(),
            f"  would-be AWS cost since the account was created or reset: ${total:,.4f} (endpoints up keep adding; "
            "`labkit cleanup --yes` removes them)"]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else "status"
    if command in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if command == "serve":
        return serve()
    if command == "status":
        state = read_state()
        info = answering(state, use=False)
        if not info or state is None:
            print(f"offline backend: not running (state folder {home()}); labkit.connect() or "
                  "`labkit backend start` starts it.")
            return 1
        print(_describe(state, info))
        return 0
    if command == "start":
        try:
            state = ensure_running()
        except BackendStartError as err:
            print(f"labkit backend start: {err}", file=sys.stderr)
            return 1
        if state.get("replaced"):
            print(f"offline backend: {state['replaced']}")
        print(f"offline backend: running at {state['url']} (pid {state['pid']})")
        return 0
    if command == "stop":
        print("offline backend: stopped" if stop() else "offline backend: was not running")
        return 0
    if command == "reset":
        reset()
        print("offline backend: reset (an empty account: the execution role and the default bucket)")
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
