"""Step "export": grades.csv, the per-submission reports and a copy of the gradebook."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import asdict
from pathlib import Path

from .assignment import Assignment


def write_grades_csv(results, assignment: Assignment, out: Path) -> Path:
    """``student,total,max,<test>...,reasons``: one row per submission, sorted by student."""
    path = Path(out) / "grades.csv"
    test_ids = [t.grade_id for t in assignment.tests]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "total", "max", *test_ids, "reasons"])
        for result in sorted(results, key=lambda r: r.student):
            by_id = {t.grade_id: t.points for t in result.tests}
            writer.writerow([result.student, f"{result.total:g}", f"{result.max_score:g}",
                             *(f"{by_id.get(i, 0.0):g}" for i in test_ids), "; ".join(result.reasons)])
    return path


def write_reports(results, assignment: Assignment, out: Path, isolation: dict) -> Path:
    """``report.json`` (everything) and ``reports/<student>/<lab>.json`` per submission."""
    out = Path(out)
    for result in results:
        path = out / "reports" / result.student / f"{assignment.lab}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(result), indent=1))
    summary = {"lab": assignment.lab, "max_score": assignment.max_score, "isolation": isolation,
               "submissions": [asdict(r) for r in sorted(results, key=lambda r: r.student)]}
    path = out / "report.json"
    path.write_text(json.dumps(summary, indent=1))
    return path


def copy_gradebook(assignment: Assignment, out: Path) -> Path:
    """The run's nbgrader gradebook (sqlite), for formgrader or nbgrader's own exports."""
    target = Path(out) / "gradebook.db"
    shutil.copyfile(assignment.private_course / "gradebook.db", target)
    return target
