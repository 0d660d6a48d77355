"""A job's own dependencies: installed into a per-job environment, never into the course's.

SageMaker's containers pip-install the source directory's ``requirements.txt`` before the
entry point runs (the sagemaker-training toolkit for framework images, SDK v3's
``sm_train.sh`` driver). Offline the container is this machine's Python, so each host gets
its own environment layered over the course's (:func:`layer`): a virtual environment in
``<host root>/deps`` whose ``site-packages`` adds the course's own with a ``.pth`` file.
The host's processes run its ``python`` (first on ``PATH``), and its packages come first
on ``PYTHONPATH``, so a pinned version in ``requirements.txt`` shadows the course's for this
job only, and any ``pip install`` a job runs lands there and nowhere else.

Offline nothing is downloaded: pip reads only a local wheel cache (``--no-index
--find-links``), ``$LABKIT_WHEEL_CACHE`` or ``$LABKIT_HOME/wheels`` (default
``~/.labkit/wheels``), which a learner fills with ``pip download -r requirements.txt -d
<cache>``. A requirement the course already satisfies needs no wheel. When the cache lacks
one, the job fails with a ``FailureReason`` that names it and the command that fixes it.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

REQUIREMENTS = "requirements.txt"
_INSTALLED_MARK = ".labkit-requirements-installed"


class DependencyError(Exception):
    """``requirements.txt`` could not be installed offline; the message is the job's FailureReason."""


def wheel_cache() -> Path:
    explicit = os.environ.get("LABKIT_WHEEL_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("LABKIT_HOME") or Path.home() / ".labkit").expanduser() / "wheels"


def _site_packages(prefix: Path) -> Path:
    return prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def layer(root: Path) -> Path:
    """The host's environment, ``<root>/deps``, layered over this Python's packages (idempotent)."""
    prefix = root / "deps"
    python = prefix / "bin" / "python"
    if python.exists():
        return prefix
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    (prefix / "bin").mkdir(parents=True, exist_ok=True)
    packages = _site_packages(prefix)
    packages.mkdir(parents=True, exist_ok=True)
    (prefix / "pyvenv.cfg").write_text(f"home = {base.parent}\ninclude-system-site-packages = false\n"
                                       f"version = {'.'.join(map(str, sys.version_info[:3]))}\n")
    for name in ("python", "python3", f"python3.{sys.version_info.minor}"):
        (prefix / "bin" / name).symlink_to(base)
    course = [p for p in dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"]]) if Path(p).is_dir()]
    (packages / "labkit-course.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({p!r})" for p in course) + "\n")
    return prefix


def python(root: Path) -> str:
    return str(layer(root) / "bin" / "python")


def environment(root: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` for a host's processes: its environment first, pip confined to it and to the cache."""
    prefix = layer(root)
    out = dict(env)
    out["PATH"] = os.pathsep.join([str(prefix / "bin"), out.get("PATH", "")])
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(_site_packages(prefix)), out.get("PYTHONPATH", "")) if p)
    out["VIRTUAL_ENV"] = str(prefix)
    out["PIP_NO_INDEX"] = "1"
    out["PIP_FIND_LINKS"] = str(wheel_cache())
    out["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    out.pop("PIP_INDEX_URL", None)
    out.pop("PIP_EXTRA_INDEX_URL", None)
    return out


def install(requirements: Path, root: Path, env: dict[str, str]) -> str:
    """pip-install ``requirements`` into the host's environment from the wheel cache; pip's output.

    Raises :class:`DependencyError` (with pip's reason and the fix) when it cannot.
    """
    mark = layer(root) / _INSTALLED_MARK
    text = requirements.read_text(errors="replace")
    if mark.exists() and mark.read_text() == text:
        return ""
    cache = wheel_cache()
    cmd = [python(root), "-m", "pip", "install", "--no-index", "--find-links", str(cache), "--no-input",
           "--disable-pip-version-check", "-r", str(requirements)]
    result = subprocess.run(cmd, cwd=str(requirements.parent), env=environment(root, env), capture_output=True,
                            text=True, errors="replace", stdin=subprocess.DEVNULL)
    output = (result.stdout or "") + (result.stderr or "")
    if result.returncode != 0:
        errors = [ln.strip() for ln in output.splitlines() if ln.startswith("ERROR")]
        reason = errors[-1] if errors else (output.strip().splitlines() or ["pip failed"])[-1]
        raise DependencyError(
            f"ClientError: {requirements.name} could not be installed offline: {reason.rstrip('.')}. The offline backend "
            f"installs a job's requirements from the local wheel cache {cache} only (nothing is downloaded); "
            f"fill it with `pip download -r {requirements.name} -d {cache}` while online, or drop the "
            "requirement if the course environment already has the package.")
    mark.write_text(text)
    return output
