"""Find the submissions in a folder: ``<folder>/<student>/<lab>.ipynb`` or nbgrader's
``<folder>/<student>/<lab>/<lab>.ipynb`` (the ``submitted/`` layout)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path | None       # None: the student's folder has no notebook for this lab
    problem: str = ""


def find_submissions(folder: Path, lab: str) -> list[Submission]:
    """One entry per student folder, sorted by student id; a folder without the notebook
    is listed with a problem (it is graded 0 and reported, not silently skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Submissions folder {folder} does not exist: pass the folder that holds "
                                "one sub-folder per student (<folder>/<student>/<lab>.ipynb).")
    found = []
    for student_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        student = student_dir.name
        if not _STUDENT_ID.match(student):
            found.append(Submission(student, None, f"folder name {student!r} is not a usable student id "
                                    "(letters, digits, _ . @ + - only)"))
            continue
        for candidate in (student_dir / f"{lab}.ipynb", student_dir / lab / f"{lab}.ipynb"):
            if candidate.is_file() and not candidate.is_symlink():
                found.append(Submission(student, candidate))
                break
        else:
            found.append(Submission(student, None, f"no {lab}.ipynb in {student_dir} "
                                    f"(expected {student}/{lab}.ipynb or {student}/{lab}/{lab}.ipynb)"))
    return found
