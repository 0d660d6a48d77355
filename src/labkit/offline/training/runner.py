"""Run one host's container process: the command it would run, its output, its exit.

:func:`training_command` decides what a training host runs (the same rules the
containers follow: a ``ContainerEntrypoint`` as given, else the framework's entry point
``sagemaker_program`` with ``--key value`` arguments, else the built-in algorithm).
:class:`HostProcess` runs it in a subprocess of this Python, in its own process group,
streams every output line to a sink and keeps the last lines (timed) for ``FailureReason``.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .. import storage, subprocess_environment
from ..patches import rewrite_sdk_drivers
from . import dependencies
from .environment import CONTAINER_ROOT, HostEnvironment, to_cmd_args
from .images import Image

PYTHON_NAMES = ("python", "python3", f"python3.{sys.version_info.minor}", "/usr/bin/python3",
                "/usr/local/bin/python3", "/opt/conda/bin/python", "/opt/conda/bin/python3")
SDK_DRIVER_CHANNEL = "sm_drivers"
# Holds the ``sitecustomize`` that maps /opt/ml to the host's root in Python processes.
CONTAINER_SHIM = Path(__file__).parent / "container"


class JobSetupError(Exception):
    """The container could not start the job; the message becomes ``FailureReason``."""


def python_first_path() -> str:
    """``PATH`` with this Python's folder first, so ``python3`` in a shell script is this one."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def remap_text(text: str, root: Path) -> str:
    return text.replace(CONTAINER_ROOT, str(root))


def argv0(word: str, root: Path) -> str:
    """The program a container command names: a Python name runs the host's own Python."""
    return dependencies.python(root) if word in PYTHON_NAMES else word


def install_requirements(env: HostEnvironment, source_dir: Path, image: Image) -> None:
    """``requirements.txt`` of the source directory, into the host's own environment (as the containers do)."""
    requirements = source_dir / dependencies.REQUIREMENTS
    if requirements.is_file():
        dependencies.set_aside_image_framework(requirements, image.framework_package)
        try:
            dependencies.install(requirements, env.root, process_environment(env))
        except dependencies.DependencyError as err:
            raise JobSetupError(str(err)) from None


def training_command(env: HostEnvironment, image: Image, spec: dict) -> tuple[list[str], Path]:
    """The command line and working folder of a training host."""
    entrypoint = spec.get("ContainerEntrypoint")
    if entrypoint:
        if (env.data_dir / SDK_DRIVER_CHANNEL).is_dir():
            rewrite_sdk_drivers(env.data_dir / SDK_DRIVER_CHANNEL, env.root,
                                master=(env.master_addr, env.master_port))
        install_requirements(env, env.data_dir / "code", image)  # SDK v3's SourceCode channel
        words = [remap_text(w, env.root) for w in [*entrypoint, *spec.get("ContainerArguments", [])]]
        return [argv0(words[0], env.root), *words[1:]], env.root
    program = env.program
    if program:
        submit = env.framework_params.get("sagemaker_submit_directory")
        if isinstance(submit, str) and submit.startswith("s3://"):
            try:
                storage.unpack(submit, env.code_dir)
            except Exception as err:
                raise JobSetupError(f"ClientError: could not download sagemaker_submit_directory {submit}: {err}") from err
        script = env.code_dir / program
        if not script.is_file():
            raise JobSetupError(
                f"AlgorithmError: ExecuteUserScriptError: entry point {program!r} was not found in the source "
                f"directory ({submit or 'none given'}). Check sagemaker_program/entry_point and source_dir.")
        install_requirements(env, env.code_dir, image)
        return [dependencies.python(env.root), program, *to_cmd_args(env.user_hyperparameters)], env.code_dir
    if image.algorithm == "xgboost":
        return [dependencies.python(env.root), "-m", "labkit.offline.training.algorithms.xgboost"], env.root
    raise JobSetupError(
        f"ClientError: image {image.uri} is a {image.framework} framework image, which runs a script: give the "
        "entry point (hyperparameters sagemaker_program and sagemaker_submit_directory, SDK v3 "
        "SourceCode(entry_script=...), or AlgorithmSpecification.ContainerEntrypoint).")


def process_environment(env: HostEnvironment, extra: dict[str, str] | None = None, *,
                        sm_variables: bool = True) -> dict[str, str]:
    """The host process's environment: the job's ``Environment``, ``SM_*`` (training), ``extra``."""
    out = subprocess_environment()
    out.update(env.environment)
    if sm_variables:
        out.update(env.variables())
    out.update(extra or {})
    out["PATH"] = python_first_path()
    out["PYTHONUNBUFFERED"] = "1"
    # The host's own environment (its requirements, any pip install it runs) before the course's.
    out = dependencies.environment(env.root, out)
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(CONTAINER_SHIM), str(env.code_dir),
                                                    out.get("PYTHONPATH", "")) if p)
    out["LABKIT_CONTAINER_ROOT"] = str(env.root)
    out["LABKIT_PARENT_PID"] = str(os.getpid())  # the shim's watchdog: a job dies with its kernel
    # On AWS each instance has its own cores; here every host of a job (and the notebook) shares
    # this machine's, and OpenMP threads that spin while waiting (libgomp's default) starve the
    # other hosts: a tiny PyTorch epoch then takes seconds instead of a fraction of one.
    out.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return out


class HostProcess:
    """One host's process; lines go to ``sink`` as they are printed.

    ``tail`` keeps the last lines with the time each was read, so that the root cause of a
    failure can be told from its consequences on other hosts (:mod:`labkit.offline.failures`).
    """

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], sink: Callable[[str], object]):
        self.argv = argv
        self.tail: collections.deque[tuple[float, str]] = collections.deque(maxlen=400)
        self.terminated = False  # the platform signalled it (its exit status is then not its own)
        self._sink = sink
        self.proc = subprocess.Popen(argv, cwd=str(cwd), env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, text=True, errors="replace", bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"labkit-log-{self.proc.pid}")
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.tail.append((time.time(), line))
            self._sink(line)

    def poll(self) -> int | None:
        code = self.proc.poll()
        if code is not None:
            self._reader.join(timeout=5)
        return code

    def wait(self, timeout: float | None = None) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout=5)
        return code

    def terminate(self, grace: float = 5.0) -> int:
        """SIGTERM the process group (what the platform sends), SIGKILL after ``grace`` s."""
        if self.proc.poll() is None:
            self.terminated = True
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
        return self.wait()


def first_failure(processes: list[HostProcess]) -> tuple[int, int] | None:
    """The first host that exited non-zero, as ``(index, exit code)``; None while none has."""
    for i, proc in enumerate(processes):
        code = proc.poll()
        if code not in (None, 0):
            return i, code
    return None


def settle(processes: list[HostProcess], seconds: float) -> None:
    """Give the hosts still running up to ``seconds`` to exit by themselves.

    After one host fails, its peers usually fail too within moments (a collective whose peer has
    gone); letting them finish their own output and exit keeps the root cause and its exit status
    theirs, not the platform's SIGTERM.
    """
    deadline = time.monotonic() + seconds
    while any(proc.poll() is None for proc in processes) and time.monotonic() < deadline:
        time.sleep(0.05)


def all_succeeded(processes: list[HostProcess]) -> bool:
    return all(proc.poll() == 0 for proc in processes)


def terminate_all(processes: list[HostProcess], grace: float = 5.0) -> None:
    """Stop every host as the platform does (SIGTERM, SIGKILL after ``grace`` s)."""
    for proc in processes:
        proc.terminate(grace)
