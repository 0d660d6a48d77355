"""Step "export": grades.csv, the per-submission reports, a copy of the gradebook, and an
``nbgrader_config.py`` that makes the output folder a course folder nbgrader's formgrader opens."""

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
    from .submissions import safe_name

    out = Path(out)
    for result in results:
        path = out / "reports" / safe_name(result.student) / f"{assignment.lab}.json"
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


FORMGRADER_CONFIG = """\
# Written by `labkit grade`: this folder is an nbgrader course folder for formgrader.
#   cd {folder} && jupyter lab      then the Nbgrader menu > Formgrader
# The gradebook is this run's (gradebook.db); source/ holds the lab's nbgrader source,
# submitted/ the files as handed in and autograded/ the executed notebooks (hidden tests
# included): instructors only.
from pathlib import Path

c = get_config()  # noqa: F821
HERE = Path(__file__).resolve().parent
c.CourseDirectory.root = str(HERE)
c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.db_url = f"sqlite:///{{HERE / 'gradebook.db'}}"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.Exchange.root = str(HERE / "exchange")
"""


def write_formgrader_config(assignment: Assignment, out: Path) -> Path:
    """``nbgrader_config.py`` in ``out``, pointing formgrader at this run's gradebook, and the lab's
    nbgrader source in ``source/<lab>/`` (formgrader lists the assignments it finds there)."""
    from .assignment import _IGNORE, COURSE_ID

    source = Path(out) / "source" / assignment.lab
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(assignment.source_dir, source, ignore=_IGNORE)
    (Path(out) / "exchange").mkdir(exist_ok=True)  # formgrader checks that it exists; nothing is released
    path = Path(out) / "nbgrader_config.py"
    path.write_text(FORMGRADER_CONFIG.format(folder=out, course_id=COURSE_ID))
    return path
