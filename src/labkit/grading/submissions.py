"""Step "intake": find the submissions in a folder and take a private copy of each.

Layout: ``<folder>/<student>/<lab>.ipynb`` or nbgrader's ``<folder>/<student>/<lab>/<lab>.ipynb``
(the ``submitted/`` layout). The folder is written by learners, so it is read as hostile:

- every entry of the folder is a student and is listed in the results, with the reason when
  it cannot be graded (a link, a file, a dot-folder, an unusable id, no notebook, two notebooks);
- only a regular file, reached through real folders, with no other hard link and at most
  ``max_bytes`` long is graded: nothing is followed (``O_NOFOLLOW``, ``lstat``, walking by
  directory descriptors) and nothing can block (``O_NONBLOCK``: a FIFO is refused, never read);
- the file is read once, here, into the grader's private folder; its SHA-256 is kept in memory
  and checked again before the copy is used, so nothing that runs later (another student's
  code included) can change what is graded.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

_STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")
MAX_BYTES = 50 * 1024 * 1024
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path | None       # where it was found (for messages only; never opened again by path)
    problem: str = ""       # why it cannot be graded ("" when it can)
    copy: Path | None = None  # the grader's private copy, taken at intake
    sha256: str = ""        # of the bytes taken at intake
    notes: tuple[str, ...] = field(default_factory=tuple)
    identity: tuple[int, int, int, int] = (0, 0, 0, 0)  # st_dev, st_ino, st_size, st_mtime_ns at intake

    def read_verified(self) -> bytes | None:
        """The bytes taken at intake, or None when the private copy no longer matches them."""
        if self.copy is None:
            return None
        try:
            fd = os.open(self.copy, _OPEN_FILE)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_BYTES * 4)
        return data if hashlib.sha256(data).hexdigest() == self.sha256 else None

    def changed_since_intake(self, folder: Path) -> bool:
        """Whether the handed-in file (still read without following links) differs from intake."""
        if self.path is None:
            return False
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return True
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != self.identity


def safe_name(student: str) -> str:
    """A name usable as a folder of the output: the id itself when it is a usable id."""
    if _STUDENT_ID.match(student):
        return student
    return "unusable-" + hashlib.sha256(student.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISREG, "a file")):
        if test(mode):
            return name
    return "not a regular file"


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None


def _notebook_problem(st: os.stat_result, shown: str, max_bytes: int) -> str:
    if not stat.S_ISREG(st.st_mode):
        return f"{shown} is {_kind(st.st_mode)}, not a regular file: hand in the notebook file itself"
    if st.st_nlink != 1:
        return (f"{shown} has {st.st_nlink - 1} other hard link(s) on this machine: only a file of its own "
                "is graded (copy it instead of linking it)")
    if st.st_size > max_bytes:
        return (f"{shown} is {st.st_size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit: clear the "
                "outputs (Edit > Clear Outputs of All Cells) and hand it in again")
    return ""


def _read(name: str, dir_fd: int, expected: os.stat_result, max_bytes: int) -> tuple[bytes | None, str]:
    """The file's bytes, opened without following a link or blocking; re-checked after opening."""
    try:
        fd = os.open(name, _OPEN_FILE, dir_fd=dir_fd)
    except OSError as err:
        return None, f"cannot open {name}: {err.strerror}"
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (expected.st_dev, expected.st_ino):
            return None, f"{name} was replaced while it was being read: hand it in again"
        problem = _notebook_problem(st, name, max_bytes)
        if problem:
            return None, problem
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        return None, f"{name} grew over the {max_bytes / 1e6:.0f} MB limit while it was being read"
    return data, ""


def _open_dir(name: str, dir_fd: int) -> int | None:
    try:
        return os.open(name, _OPEN_DIR, dir_fd=dir_fd)
    except OSError:
        return None


def _intake_student(student: str, folder: Path, root_fd: int, lab: str, max_bytes: int,
                    intake: Path) -> Submission:
    student_fd = _open_dir(student, root_fd)
    if student_fd is None:
        return Submission(student, None, f"{student} changed while the grader read it (no longer a real folder)")
    nested_fd = None
    try:
        names = sorted(os.listdir(student_fd))
        found = []  # (shown path, dir fd, stat)
        st = _lstat(f"{lab}.ipynb", student_fd)
        if st is not None:
            found.append((f"{student}/{lab}.ipynb", f"{lab}.ipynb", student_fd, st))
        nested = _lstat(lab, student_fd)
        if nested is not None and stat.S_ISDIR(nested.st_mode):
            nested_fd = _open_dir(lab, student_fd)
            if nested_fd is not None:
                inner = _lstat(f"{lab}.ipynb", nested_fd)
                if inner is not None:
                    found.append((f"{student}/{lab}/{lab}.ipynb", f"{lab}.ipynb", nested_fd, inner))
        elif nested is not None:
            return Submission(student, None, f"{student}/{lab} is {_kind(nested.st_mode)}: only real folders are "
                                             "graded")
        others = [n for n in names if n.endswith(".ipynb") and n != f"{lab}.ipynb"]
        if len(found) > 1:
            return Submission(student, None, f"two notebooks for {lab}: {found[0][0]} and {found[1][0]}; keep one "
                                             "of them and hand in again")
        if not found:
            seen = f" (found: {', '.join(others[:5])})" if others else ""
            return Submission(student, None, f"no {lab}.ipynb in {student}/ (expected {student}/{lab}.ipynb or "
                                             f"{student}/{lab}/{lab}.ipynb){seen}")
        shown, name, parent_fd, st = found[0]
        problem = _notebook_problem(st, shown, max_bytes)
        if problem:
            return Submission(student, folder / shown, problem)
        data, problem = _read(name, parent_fd, st, max_bytes)
        if data is None:
            return Submission(student, folder / shown, problem)
        notes = tuple(f"other notebook {n} in the folder was not graded" for n in others[:5])
        copy = intake / f"{safe_name(student)}.ipynb"
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return Submission(student, folder / shown, "", copy, hashlib.sha256(data).hexdigest(), notes,
                          (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    finally:
        if nested_fd is not None:
            os.close(nested_fd)
        os.close(student_fd)


def find_submissions(folder: Path, lab: str, intake: Path, max_bytes: int = MAX_BYTES) -> list[Submission]:
    """One entry per entry of ``folder``, sorted by name; each gradable one copied into ``intake``
    (a folder only the grader can read). Entries that cannot be graded carry the reason."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Submissions folder {folder} does not exist: pass the folder that holds "
                                "one sub-folder per student (<folder>/<student>/<lab>.ipynb).")
    intake.mkdir(mode=0o700, parents=True, exist_ok=True)
    root_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    found = []
    try:
        for name in sorted(os.listdir(root_fd)):
            st = _lstat(name, root_fd)
            if st is None:
                continue
            if name.startswith("."):
                found.append(Submission(name, None, f"{name!r} starts with a dot, so it is hidden and not graded: "
                                                    "name the folder after the student's id"))
            elif not stat.S_ISDIR(st.st_mode):
                found.append(Submission(name, None, f"{name!r} is {_kind(st.st_mode)}, not a student's folder: "
                                                    "only real folders are graded"))
            elif not _STUDENT_ID.match(name):
                found.append(Submission(name, None, f"folder name {name!r} is not a usable student id "
                                                    "(letters, digits, _ . @ + - only)"))
            else:
                try:
                    found.append(_intake_student(name, folder, root_fd, lab, max_bytes, intake))
                except OSError as err:
                    found.append(Submission(name, None, f"{name}/ could not be read: {err.strerror}"))
    finally:
        os.close(root_fd)
    return found
