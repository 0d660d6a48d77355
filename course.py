#!/usr/bin/env python3
"""Set up the course and run it, from a fresh clone, with nothing but Python 3.11+.

    python3 course.py run     # install, then execute every lab offline: pass/fail, time, cost
    python3 course.py test    # install with the test tools, then lint, type-check and run the tests

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
    # Left to compile on first import: the packages' own test suites and the three large packages
    # nothing of the course imports (transformers and sentence-transformers are installed for
    # learners who check the offline embeddings against them; mlflow and numba come with the SDK
    # and Clarify's dependencies): a third of the files, 25 CPU seconds of every set-up.
    skip = r"/(tests|transformers|sentence_transformers|mlflow|numba)/"
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
    _say("mypy")
    _run(BIN / "mypy", env=env)  # src/labkit, as [tool.mypy] in pyproject.toml says
    if compiling is not None:
        compiling.wait()  # before pytest's processes import the packages
    _say("pytest")
    return subprocess.run([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
