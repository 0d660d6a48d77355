"""``labkit doctor``: what this set-up uses, what is missing, and the fix for each."""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .authoring import REPO


@dataclass
class Finding:
    item: str
    value: str
    ok: bool
    fix: str = ""


def _pins() -> dict[str, str]:
    """``name -> version`` pinned in pyproject.toml (the course's tested versions)."""
    text = (REPO / "pyproject.toml").read_text() if (REPO / "pyproject.toml").exists() else ""
    return {m.group(1).lower(): m.group(2) for m in re.finditer(r'"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^"]+)"', text)}


def check_packages() -> list[Finding]:
    findings = []
    for name, pinned in sorted(_pins().items()):
        try:
            installed = md.version(name)
        except md.PackageNotFoundError:
            findings.append(Finding(name, "missing", False, "python3 course.py run (or: pip install -e .)"))
            continue
        base = installed.split("+")[0]
        ok = base == pinned
        findings.append(Finding(name, installed if ok else f"{installed} (course pins {pinned})", ok,
                                "" if ok else f"pip install '{name}=={pinned}'"))
    return findings


def check_kernel() -> Finding:
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        spec = KernelSpecManager().get_kernel_spec("python3")
        exe = spec.argv[0]
        same = exe in ("python", "python3", "{python}") or Path(exe).resolve() == Path(sys.executable).resolve()
        where = sys.executable if exe in ("python", "python3", "{python}") else exe
        return Finding("kernel python3", where, same,
                       "" if same else f"{sys.executable} -m ipykernel install --sys-prefix")
    except Exception as err:
        return Finding("kernel python3", f"not found ({err})", False,
                       f"{sys.executable} -m pip install ipykernel && {sys.executable} -m ipykernel install --sys-prefix")


def check_backend() -> list[Finding]:
    chosen = os.environ.get("LABKIT_BACKEND", "offline")
    findings = [Finding("backend", f"{chosen} (LABKIT_BACKEND)", chosen in ("offline", "sandbox"),
                        "unset LABKIT_BACKEND or set it to offline/sandbox")]
    if chosen == "offline":
        from . import offline
        from .offline import engines

        offline.start()
        for engine in engines.ENGINES:
            state = engines.loaded.get(engine.module, "not loaded")
            answers = "; ".join(f"{service} ({len(ops)})" for service, ops in engines.answered(engine).items())
            findings.append(Finding(f"engine {engine.name}", f"{state}: {engine.summary}"
                                    + (f" [{answers}]" if answers else ""), state == "loaded",
                                    "" if state == "loaded" else "this engine is not part of this version yet"))
        offline.stop()
        from .offline import shared

        shared_state = shared.read_state()
        up = shared_state if shared.answering(shared_state) else None
        findings.append(Finding("shared offline backend", f"running at {up['url']} (pid {up['pid']})" if up else
                                f"not running (labkit.connect() starts it; state in {shared.home()})", True, ""))
        cli = Path(sys.executable).parent / "aws"
        findings.append(Finding("AWS CLI", str(cli) if cli.exists() else "missing", cli.exists(),
                                f"{sys.executable} -m pip install awscli (the version pinned in pyproject.toml)"))
    else:
        has_creds = any(os.environ.get(v) for v in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID")) or \
            (Path.home() / ".aws").exists()
        findings.append(Finding("AWS credentials", "found" if has_creds else "none", has_creds,
                                "aws configure (or aws sso login), then connect again"))
    return findings


def check_course_files() -> list[Finding]:
    data = Path(os.environ.get("LABKIT_DATA") or REPO / "data")
    labs = sorted(p.name for p in (REPO / "labs").glob("*") if p.is_dir()) if (REPO / "labs").exists() else []
    return [
        Finding("data folder", str(data), data.exists(), "set LABKIT_DATA to the course's data/ folder"),
        Finding("labs", ", ".join(labs) or "none", bool(labs), "labkit generate"),
    ]


def findings() -> list[Finding]:
    python_ok = sys.version_info >= (3, 11)
    return [
        Finding("python", sys.version.split()[0], python_ok, "install Python 3.11 or newer"),
        check_kernel(),
        *check_backend(),
        *check_course_files(),
        *check_packages(),
    ]


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="labkit doctor", description=__doc__).parse_args(argv)
    results = findings()
    width = max(len(f.item) for f in results)
    for f in results:
        mark = "ok " if f.ok else "!! "
        line = f"{mark}{f.item:<{width}}  {f.value}"
        if not f.ok and f.fix:
            line += f"\n   {'':<{width}}  fix: {f.fix}"
        print(line)
    bad = [f for f in results if not f.ok]
    print(f"\n{len(results) - len(bad)} ok, {len(bad)} to fix" if bad else f"\nall {len(results)} checks ok")
    return 1 if bad else 0
