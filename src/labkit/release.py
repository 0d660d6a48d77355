"""Build the learner copy of the course: what a learner gets, without the answers.

    labkit release                 # build/release/ml-infra-labs/ and ml-infra-labs.tar.gz
    labkit release --out DIR       # the same under DIR

The instructor keeps the full repository (``solutions/`` with every hidden test, ``autograder/``
with the answer keys, the test suite). A learner gets the generated labs (``labs/``, solution
regions replaced by stubs, hidden tests removed by nbgrader), the lectures, the data, the
``labkit`` package with the offline backend, and what installs and runs them (``course.py``,
``pyproject.toml``, ``environment.yml``), with a README written for learners. Files are copied
from the working tree by an explicit list, never with git history. :func:`leaks` says what of
the instructor-only material appears in a built copy (the test suite runs it on every build).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tarfile
from pathlib import Path

from .authoring import LABS, REPO, SOLUTIONS

NAME = "ml-infra-labs"
# What the learner copy holds: folders (copied whole, minus IGNORED) and single files.
FOLDERS = ("labs", "notebooks", "data", "src/labkit")
FILES = ("course.py", "pyproject.toml", "environment.yml")
LEARNER_README = "docs/learner-README.md"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info", ".DS_Store")
MIN_LINE = 20  # shorter lines are too generic to call a leak ("assert ok", "return out")
HIDDEN = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
SOLUTION = ("### BEGIN SOLUTION", "### END SOLUTION")


def build(out: Path | None = None, archive: bool = True) -> Path:
    """Copy the learner distribution to ``out/ml-infra-labs/`` (and a .tar.gz beside it); return the folder."""
    missing = [p for p in (*FOLDERS, *FILES, LEARNER_README) if not (REPO / p).exists()]
    if missing:
        raise FileNotFoundError(f"cannot build the learner copy, missing in {REPO}: {', '.join(missing)}")
    out = Path(out or REPO / "build" / "release").resolve()
    target = out / NAME
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for folder in FOLDERS:
        shutil.copytree(REPO / folder, target / folder, ignore=IGNORED)
    for name in FILES:
        shutil.copy2(REPO / name, target / name)
    shutil.copy2(REPO / LEARNER_README, target / "README.md")
    if archive:
        with tarfile.open(out / f"{NAME}.tar.gz", "w:gz") as tar:
            tar.add(target, arcname=NAME)
    return target


def _source(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def _regions(text: str, markers: tuple[str, str]) -> tuple[list[str], list[str]]:
    """(lines inside the marked regions, lines outside them) of one cell's source."""
    inside: list[str] = []
    outside: list[str] = []
    within = False
    for line in text.splitlines():
        if line.strip() == markers[0]:
            within = True
        elif line.strip() == markers[1]:
            within = False
        else:
            (inside if within else outside).append(line.strip())
    return inside, outside


def _lines(path: Path) -> set[str]:
    """The stripped lines of a text file (of a notebook: of its cells' sources)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return set()
    if path.suffix == ".ipynb":
        with contextlib.suppress(json.JSONDecodeError, KeyError, TypeError):  # a broken notebook: its raw text
            text = "\n".join(_source(c) for c in json.loads(text).get("cells", []))
    return {line.strip() for line in text.splitlines()}


def secrets() -> dict[str, set[str]]:
    """Instructor-only lines, by where they come from: hidden tests, solution regions, model answers, answer keys.

    A line counts when it is at least ``MIN_LINE`` characters long and is not public anyway: not in
    the visible part of any lab source, the lectures, the data (which hold the seeds' code) or the
    package (public code, which an answer may share ordinary lines with), so a
    line of ordinary code that a solution shares with a lecture is not called a secret.
    """
    found: dict[str, set[str]] = {"hidden tests": set(), "solutions": set(), "model answers": set(),
                                  "answer keys": set()}
    public: set[str] = set()
    for path in sorted(SOLUTIONS.glob("*/*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            text = _source(cell)
            if meta.get("solution") and cell["cell_type"] == "markdown":
                found["model answers"] |= {line.strip() for line in text.splitlines()}
                continue
            hidden, visible = _regions(text, HIDDEN)
            solved, rest = _regions("\n".join(visible), SOLUTION)
            found["hidden tests"] |= set(hidden)
            found["solutions"] |= set(solved)
            public |= set(rest)
    for folder in ("notebooks", "data", "src"):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and path.suffix in (".ipynb", ".md", ".json", ".txt", ".py", ".yaml", ".csv"):
                public |= _lines(path)
    key = REPO / "autograder" / "interview-key.json"
    if key.exists():
        for entry in json.loads(key.read_text())["keys"].values():
            found["answer keys"] |= set(entry.get("required", {}).values()) | set(entry.get("wrong", {}).values())
    return {kind: {s for s in lines - (public if kind != "answer keys" else set())
                   if len(s) >= MIN_LINE and not s.startswith("#")} for kind, lines in found.items()}


def leaks(folder: Path) -> list[str]:
    """Instructor-only lines found in the files of a built copy: ``kind: file: line`` (empty when clean)."""
    wanted = secrets()
    out = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        lines = _lines(path)
        text = "\n".join(lines)
        for kind, secret in wanted.items():
            hits = secret & lines if kind != "answer keys" else {s for s in secret if s in text}
            out += [f"{kind}: {path.relative_to(folder)}: {line[:100]}" for line in sorted(hits)]
    for forbidden in ("solutions", "autograder", "tests", ".git"):
        if (Path(folder) / forbidden).exists():
            out.append(f"instructor folder: {forbidden}/")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labkit release", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="where to build (default: build/release/)")
    parser.add_argument("--no-archive", action="store_true", help="the folder only, no .tar.gz")
    args = parser.parse_args(argv)
    stale = [lab for lab in sorted(p.name for p in SOLUTIONS.iterdir() if p.is_dir())
             if not (LABS / lab / f"{lab}.ipynb").exists()]
    if stale:
        print(f"labs/ lacks {', '.join(stale)}: run `labkit generate` first", file=sys.stderr)
        return 1
    folder = build(args.out, archive=not args.no_archive)
    found = leaks(folder)
    if found:
        print("the learner copy would contain instructor-only material; nothing is released:", file=sys.stderr)
        print("\n".join(found[:20]), file=sys.stderr)
        shutil.rmtree(folder)
        return 1
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"learner copy: {folder} ({size / 1e6:.1f} MB)"
          + (f", archive {folder.parent / (NAME + '.tar.gz')}" if not args.no_archive else ""))
    return 0

