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
<cache>``. A requirement the course already satisfies needs no wheel (pip resolves against
what the layered environment imports). When the cache lacks one, the job fails with a
``FailureReason`` that names it and the command that fixes it.

A requirement on the image's own framework that the image's version satisfies
(``torch>=1.13,<2.0`` in ``pytorch-training:1.13.1-cpu-py39``) is a no-op on AWS: pip finds
it installed. Offline the course's framework stands in for the image's (as it does for the
whole job), so :func:`set_aside_image_framework` comments such a line out in the host's copy
of ``requirements.txt`` (never the learner's file), saying why, before anything installs it:
the job then runs as it would on AWS, with the course's version, instead of failing on a
version the image already had.
"""

from __future__ import annotations

import os
import re
import site
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REQUIREMENTS = "requirements.txt"
_NO_DISTRIBUTION = re.compile(r"No matching distribution found for (\S+)")
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


def _parsed(lines: list[str]) -> Iterator[tuple[int, str, Requirement]]:
    """(line number, text, requirement) of the plain requirements that apply here (no options, URLs)."""
    for i, line in enumerate(lines):
        text = line.split(" #", 1)[0].strip()
        if not text or text.startswith(("#", "-")):
            continue
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.url or (req.marker is not None and not req.marker.evaluate()):
            continue
        yield i, text, req


def unsatisfied(text: str) -> list[str]:
    """The requirements of ``text`` the course environment does not satisfy, each with what it has.

    Run in the backend, whose packages are the course's: the layer adds only what the cache gave.
    """
    from importlib import metadata

    out = []
    for _, line, req in _parsed(text.splitlines()):
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            out.append(f"{line} (not in the course environment)")
            continue
        if req.specifier and not req.specifier.contains(Version(have), prereleases=True):
            out.append(f"{line} (the course environment has {req.name} {have})")
    return out


def set_aside_image_framework(requirements: Path, framework: tuple[str, str] | None) -> list[str]:
    """Comment out the lines of ``requirements`` that the image's ``framework`` (package, version) satisfies.

    ``requirements`` is the host's copy. Returns the lines set aside; each stays in the file as
    a comment that names the image's version and the course's, so the job's log shows it.
    """
    if framework is None or not requirements.is_file():
        return []
    package, version = framework
    from importlib import metadata

    try:
        course = metadata.version(package)
    except metadata.PackageNotFoundError:
        return []  # the course has no such framework: pip decides, as for any other requirement
    lines, aside = requirements.read_text(errors="replace").splitlines(keepends=True), []
    for i, text, req in _parsed(lines):
        if canonicalize_name(req.name) != canonicalize_name(package):
            continue
        if req.specifier and not req.specifier.contains(Version(version), prereleases=True):
            continue
        aside.append(text)
        lines[i] = (f"# {text}  (labkit offline: provided by the image, {package} {version}; the course's "
                    f"{package} {course} stands in for it)\n")
    if aside:
        requirements.write_text("".join(lines))
    return aside


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
        said = errors[0] if errors else (output.strip().splitlines() or ["pip failed"])[-1]
        cached = {canonicalize_name(f.name.split("-", 1)[0]) for f in cache.glob("*") if "-" in f.name}
        missing = [m for m in unsatisfied(text) if canonicalize_name(Requirement(m.split(" (")[0]).name) not in cached]
        missing += [f"{name} (needed by another requirement)" for name in _NO_DISTRIBUTION.findall(output)
                    if not any(m.startswith(name) for m in missing)]
        what = "; ".join(missing) if missing else "see pip's error"
        raise DependencyError(
            f"ClientError: {requirements.name} could not be installed offline: {what}: no wheel for it in the "
            f"local wheel cache {cache} (the offline backend downloads nothing). Fill the cache with `pip download "
            f"-r {requirements.name} -d {cache}` while online, or drop or loosen the requirement if the course "
            f"environment's version will do. pip said: {said.rstrip('.')}.")
    mark.write_text(text)
    return output
