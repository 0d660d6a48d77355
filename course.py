#!/usr/bin/env python3
"""Set up the course and run it, from a fresh clone, with nothing but Python 3.11+.

    python3 course.py run     # install, then execute every lab offline: pass/fail, time, cost
    python3 course.py test    # install with the test tools, then lint, type-check and run the tests
                              # (the type check runs beside the tests; both must pass)

Both create ``.venv/`` beside this file on first use and install the pinned versions
from ``pyproject.toml`` into it; later runs reuse it unless ``pyproject.toml`` changed.
Extra arguments are passed on (``python3 course.py run 00-setup``,
``python3 course.py test -k connect``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".labkit-installed"
# The AWS CDK's modules byte-compiled at set-up (:func:`_compile`): the package's own and the
# service modules lab 13 imports (tests/test_environment.py keeps this in step with the labs).
AWS_CDK_COMPILED = ("__init__", "_jsii", "_private", "asset_awscli_v1", "asset_node_proxy_agent_v6",
                    "cloud_assembly_schema", "interfaces", "aws_applicationautoscaling", "aws_cloudwatch",
                    "aws_sagemaker")


def _say(message: str) -> None:
    print(f"[course] {message}", flush=True)


def _run(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    completed = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env)
    if completed.returncode:
        sys.exit(completed.returncode)


def _compile(background: bool) -> subprocess.Popen[bytes] | None:
    """Byte-compile the venv's packages on every core (pip's own compile is serial: about a minute)."""
    import sysconfig

    where = {"base": str(VENV), "platbase": str(VENV)}
    packages = dict.fromkeys(sysconfig.get_path(kind, vars=where) for kind in ("purelib", "platlib"))
    # Errors are the packages' own (a file of test data that is not Python): pip ignores them too.
    # Left to compile on first import (compileall then takes 46 CPU s here, 65 with only the
    # first five names): the packages' own test suites (torch's too); the large packages nothing of
    # the course imports (transformers and sentence-transformers are installed for learners who
    # check the offline embeddings against them; mlflow, numba, databricks and hive_metastore come
    # with the SDK and Clarify's dependencies; mypy and mypyc run as compiled extensions, never from
    # their sources); and the AWS CDK's 400 MB of generated service modules but the few lab 13
    # imports (a module missing here still works: a kernel compiles it in memory when it imports it).
    skip = (r"/(tests|transformers|sentence_transformers|mlflow|numba|databricks|hive_metastore|mypy|mypyc)/"
            r"|/torch/testing/_internal/"
            rf"|/aws_cdk/(?!({'|'.join(AWS_CDK_COMPILED)})[/.])")
    command = [str(PYTHON), "-m", "compileall", "-q", "-j", "0", "-x", skip, *packages]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if background:
        return proc
    proc.wait()
    return None


def ensure_environment(extras: str, background_compile: bool = False) -> subprocess.Popen[bytes] | None:
    """Create .venv and install the course (with ``extras``) unless already done.

    Packages are installed without pip's serial byte-compilation and compiled on every core
    afterwards; with ``background_compile`` that runs beside what comes next (the returned
    process, to be waited for before anything imports them)."""
    if sys.version_info < (3, 11):  # noqa: UP036 (runs under any python3 before .venv exists)
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}. "
                 "Install it (python.org, pyenv or conda) and run this script with it.")
    # The stamp is the hash of pyproject.toml and the extras installed with it: a venv set up
    # for the tests (extras "dev") also serves `run`, so switching commands installs nothing.
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    installed, _, installed_extras = (STAMP.read_text().strip() if STAMP.exists() else "").partition(" ")
    if installed == wanted and set(filter(None, extras.split(","))) <= set(installed_extras.split(",")):
        return None
    if not PYTHON.exists():
        _say(f"creating {VENV.relative_to(ROOT)}/ with Python {sys.version.split()[0]}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    _say("installing the pinned course environment (first time: a few minutes)")
    _run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(PYTHON, "-m", "pip", "install", "--quiet", "--no-compile", "-e", f".[{extras}]" if extras else ".")
    STAMP.write_text(f"{wanted} {extras}")
    return _compile(background_compile)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    # The venv's scripts first on PATH: nbgrader runs `alembic`, papermill `jupyter`.
    env = {**os.environ, "LABKIT_BACKEND": "offline", "MPLBACKEND": "Agg", "VIRTUAL_ENV": str(VENV),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    if command == "run":
        ensure_environment("")
        return subprocess.run([str(BIN / "labkit"), "run", *rest], cwd=ROOT, env=env).returncode
    compiling = ensure_environment("dev", background_compile=True)
    _say("ruff check")
    _run(BIN / "ruff", "check", "src", "tests", "bench", "course.py", env=env)
    # mypy (src/labkit, as [tool.mypy] in pyproject.toml says) reads only the sources: it runs beside
    # the tests, on the CPU they leave idle, and its verdict is printed after theirs.
    _say("mypy, beside the tests (its verdict comes after theirs)")
    # At a lower priority: the byte-compilation that the tests wait for comes first.
    type_check = subprocess.Popen([str(BIN / "mypy")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True,
                                  preexec_fn=(lambda: os.nice(10)) if hasattr(os, "nice") else None)
    if compiling is not None:
        compiling.wait()  # before pytest's processes import the packages
    _say("pytest")
    tests = subprocess.run([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT, env=env).returncode
    verdict, _ = type_check.communicate()
    _say("mypy")
    print(verdict, end="", flush=True)
    return tests or type_check.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
