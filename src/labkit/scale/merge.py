"""Merge the graded shards into one output folder, as one local run writes it.

Each shard's job ran :func:`labkit.grading.grade` on its own students and sent back its whole
output folder. Merging only combines what the grader wrote, without re-deriving anything:

- per-student files (``feedback/``, ``reports/``, ``submitted/``, ``autograded/``) are disjoint
  and copied as they are; files every shard writes alike (``source/``, ``exchange/``) are taken
  from the first shard (a shard whose copy differs is noted in the report);
- ``grades.csv``: the shards' rows under their (identical) header, sorted by student as the
  grader sorts them, written with the same CSV dialect: the same bytes as one local run;
- ``report.json``: the shards' submissions in one sorted list, plus a ``sagemaker`` section
  (the jobs, their attempts, what each shard's isolation was);
- ``gradebook.db``: the first shard's nbgrader gradebook, with every other shard's students,
  submissions, grades and comments added through nbgrader's own ``Gradebook`` API;
- ``nbgrader_config.py``: the first shard's.

Where the grader wrote a path of the job's container (a reason naming the student's folder, the
feedback page's location), the merge writes the instructor's path instead, as the processing
engine maps ``/opt/ml`` for a job: the submissions folder, the output folder, the course folder.

Students of a shard that failed every attempt get a row in ``grades.csv`` (0 points, the reason
"not graded: ...") and a report entry, so nobody is silently missing; they have no feedback page.
"""

from __future__ import annotations

import csv
import filecmp
import json
import shutil
import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any

from . import ScaleError
from .shards import unpack_results

SPECIAL = ("grades.csv", "report.json", "gradebook.db")
TEXT = (".csv", ".json", ".html", ".py", ".txt", ".md")


def map_paths(folder: Path, replacements: dict[str, str]) -> None:
    """Replace the job's paths by the instructor's in every text file the grader wrote in ``folder``."""
    pairs = sorted(((old, new) for old, new in replacements.items() if old and old != new), key=lambda p: -len(p[0]))
    if not pairs:
        return
    for path in folder.rglob("*"):
        if not path.is_file() or path.suffix not in TEXT:
            continue
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        mapped = text
        for old, new in pairs:
            mapped = mapped.replace(old, new)
        if mapped != text:
            path.write_text(mapped, encoding="utf-8", errors="surrogateescape")


def _copy_tree(source: Path, out: Path, written: set[Path], notes: list[str]) -> None:
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_dir() or relative.as_posix() in SPECIAL:
            continue
        target = out / relative
        if target in written:
            if not filecmp.cmp(path, target, shallow=False):
                notes.append(f"{relative} differs between shards; the first shard's copy was kept")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        written.add(target)


def merge_grades_csv(shard_csvs: list[Path], extra_rows: list[list[str]], out: Path) -> Path:
    """One ``grades.csv`` from the shards' (same header, rows sorted by student)."""
    header: list[str] | None = None
    rows: list[list[str]] = []
    for path in shard_csvs:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            this = next(reader)
            if header is not None and this != header:
                raise ScaleError(f"the shards' grades.csv headers differ ({header} vs {this}): were they graded "
                                 "from the same lab source and the same course image?")
            header = this
            rows.extend(reader)
    if header is None:
        raise ScaleError("no shard produced a grades.csv")
    rows.extend(extra_rows)
    target = out / "grades.csv"
    with target.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        rows.sort(key=lambda row: row[0])
        writer.writerows(rows)
    return target


def merge_gradebooks(target: Path, sources: list[Path], lab: str) -> None:
    """Add every student, submission, grade and comment of ``sources`` to the gradebook ``target``."""
    from nbgrader.api import Gradebook

    with warnings.catch_warnings():  # nbgrader's own SQLAlchemy autoflush warnings (as in grading.score)
        warnings.filterwarnings("ignore", message=".*not in session.*")
        with Gradebook(f"sqlite:///{target}") as dst:
            for source in sources:
                with Gradebook(f"sqlite:///{source}") as src:
                    for student in src.students:
                        dst.update_or_create_student(student.id, first_name=student.first_name,
                                                     last_name=student.last_name, email=student.email,
                                                     lms_user_id=student.lms_user_id)
                    for submission in src.assignment_submissions(lab):
                        who = submission.student_id
                        dst.update_or_create_submission(lab, who, timestamp=submission.timestamp,
                                                        extension=submission.extension)
                        for notebook in submission.notebooks:
                            mine = dst.find_submission_notebook(notebook.name, lab, who)
                            mine.flagged = notebook.flagged
                            for grade in notebook.grades:
                                copy = dst.find_grade(grade.name, notebook.name, lab, who)
                                copy.auto_score, copy.manual_score = grade.auto_score, grade.manual_score
                                copy.extra_credit = grade.extra_credit
                                copy.needs_manual_grade = grade.needs_manual_grade
                            for comment in notebook.comments:
                                copy = dst.find_comment(comment.name, notebook.name, lab, who)
                                copy.auto_comment, copy.manual_comment = comment.auto_comment, comment.manual_comment
                        dst.db.commit()


def _result_objects(entries: list[dict[str, Any]]) -> list[Any]:
    """The grader's own result objects, rebuilt from ``report.json`` entries."""
    from ..grading import SubmissionResult
    from ..grading.score import TestResult

    def build(cls: type, data: dict[str, Any]) -> Any:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    results = []
    for entry in entries:
        result = build(SubmissionResult, entry)
        result.tests = [build(TestResult, t) for t in entry.get("tests", [])]
        results.append(result)
    return results


def merge(lab: str, shards: list[tuple[Path, dict[str, Any]]], out: Path, not_graded: dict[str, str],
          sagemaker: dict[str, Any], local_paths: dict[str, Path]) -> Any:
    """Merge ``shards`` (result folder, result.json) into ``out``; returns a :class:`~labkit.grading.GradeRun`.

    ``not_graded``: student -> reason, for the students of shards that never completed.
    ``local_paths``: ``{"submissions": ..., "course": ...}`` here, for the jobs' own paths.
    """
    from ..grading import GradeRun

    if not shards:
        raise ScaleError("no shard completed: nothing to merge (see the attempts above)")
    out.mkdir(parents=True, exist_ok=True)
    unpacked = []
    for folder, result in shards:
        graded = folder / "graded"
        if graded.exists():
            shutil.rmtree(graded)
        unpack_results(folder / "graded.tar.gz", graded)
        theirs = result.get("paths", {})
        map_paths(graded, {theirs.get("out", ""): str(out), **{theirs.get(k, ""): str(v) for k, v in local_paths.items()}})
        unpacked.append((graded, result))
    notes: list[str] = []
    written: set[Path] = set()
    for graded, _ in unpacked:
        _copy_tree(graded, out, written, notes)

    reports = [json.loads((graded / "report.json").read_text()) for graded, _ in unpacked]
    max_score = reports[0].get("max_score", 0)
    test_ids = next(csv.reader((unpacked[0][0] / "grades.csv").open(newline="", encoding="utf-8")))[3:-1]
    extra_rows, extra_entries = [], []
    for student, reason in sorted(not_graded.items()):
        extra_rows.append([student, "0", f"{max_score:g}", *("0" for _ in test_ids), reason])
        entry = {"student": student, "total": 0.0, "max_score": max_score, "tests": [], "reasons": [reason],
                 "seconds": 0.0, "feedback": "", "isolation": {}}
        extra_entries.append(entry)
        path = out / "reports" / student / f"{lab}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(entry, indent=1))
    grades_csv = merge_grades_csv([graded / "grades.csv" for graded, _ in unpacked], extra_rows, out)

    submissions = sorted([s for r in reports for s in r.get("submissions", [])] + extra_entries,
                         key=lambda s: s["student"])
    report = dict(reports[0])
    report["submissions"] = submissions
    report["isolation"] = next((r["isolation"] for r in reports if r.get("isolation")), {})
    report["sagemaker"] = {**sagemaker, "notes": notes,
                           "shard_isolation": [r.get("isolation", {}) for r in reports]}
    (out / "report.json").write_text(json.dumps(report, indent=1))

    shutil.copyfile(unpacked[0][0] / "gradebook.db", out / "gradebook.db")
    merge_gradebooks(out / "gradebook.db", [graded / "gradebook.db" for graded, _ in unpacked[1:]], lab)

    results = _result_objects(submissions)
    workers = sum(int(r.get("workers") or 0) for _, r in unpacked)
    return GradeRun(lab, out, results, grades_csv, out / "report.json", report["isolation"], workers)
