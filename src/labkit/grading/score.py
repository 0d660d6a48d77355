"""Step "score": nbgrader's SaveAutoGrades into the private gradebook, then per-test results.

A test earns its points when its cell ran without an error output: :func:`cell_failure`, the
one rule for "this test passed" that ``labkit run``/``check``, the notebook tests and
``labkit grade`` all use. Library logging and warnings on stderr never fail a test; an
exception always does (the grader writes its own outcomes, a timeout, a dead kernel, a cell
not run, tampering, as error outputs too). nbgrader's own rule (``determine_grade``) also fails
a cell for any stderr output and gives an ``execute_result`` number as partial credit, so
nbgrader is shown each test cell as this rule judges it (:func:`as_judged`). Messages shown to
learners are cleaned here (:mod:`labkit.grading.redact`): never a traceback, never the name of
an exception class the submission defined; for hidden tests only a message written in the lab
source itself, never one built from values; for visible tests nothing that holds a stretch of a
hidden test, in any encoding, that the learner's own copy does not hold.
"""

from __future__ import annotations

import copy
import re
import threading
import warnings
from dataclasses import dataclass

import nbformat
from nbformat import NotebookNode

from .assignment import Assignment, TestSpec
from .redact import HIDDEN, literals, message_templates, shown_exception

_DB_LOCK = threading.Lock()
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_LINE = re.compile(r"(?:Cell In\s*\[\d*\]|<ipython-input-[^>]*>),? line (\d+)")

HINTS = {
    "NotImplementedError": "The answer cell still raises NotImplementedError: replace "
                           "`raise NotImplementedError()` with your code.",
    "NameError": "A name the test uses is not defined: make sure the answer cell runs without errors "
                 "and keeps the function or variable name the exercise asks for.",
    "TimeoutError": "This test (or the answer it calls) ran too long: look for an endless loop or a slow step.",
    "KernelDied": "Python stopped while running this test: remove os._exit/sys.exit calls, code that "
                  "crashes the interpreter, or very large memory use.",
    "NotRun": "The notebook ran out of time (or Python stopped) before this test: make earlier cells "
              "finish and faster.",
    "MemoryError": "The code asked for more memory than the grader allows each submission: work on smaller "
                   "pieces, or free what you no longer need.",
    "AssertionError": "A check in the test failed: compare your answer with what the exercise asks, "
                      "including its type and structure.",
    "Tampered": "The submission changed how the notebook runs or checks code (see the notes): tests after "
                "that point were not graded and an instructor will review it. Remove that code.",
}


@dataclass
class TestResult:
    grade_id: str
    points: float
    max_points: float
    status: str            # passed | failed | not run
    message: str = ""
    hint: str = ""
    hidden_failure: bool = False


def cell_failure(cell: dict) -> dict | None:
    """THE pass rule: the error output that fails this test cell, or None when it passed.

    A test cell passes iff it ran and produced no error output (an exception). Output on
    stderr (library logging, warnings) never fails it. A cell that never ran fails as "NotRun".
    """
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out
    if cell.get("execution_count") is None and not cell.get("outputs"):
        return {"output_type": "error", "ename": "NotRun", "evalue": "the cell was not executed", "traceback": []}
    return None


def as_judged(nb: NotebookNode) -> NotebookNode:
    """A copy of ``nb`` whose test cells show nbgrader only what :func:`cell_failure` judged."""
    view = copy.deepcopy(nb)
    for cell in view.cells:
        if cell.cell_type == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            failure = cell_failure(cell)
            cell.outputs = [nbformat.from_dict(failure)] if failure else []
    return view


def _failure_line(error: dict) -> int | None:
    text = _ANSI.sub("", "\n".join(error.get("traceback", [])))
    match = _CELL_LINE.search(text)
    return int(match.group(1)) if match else None


def explain(test: TestSpec, cell: NotebookNode | None, earned: float | None, assignment: Assignment | None = None,
            own: frozenset[str] = frozenset()) -> TestResult:
    """The learner-facing result of one test cell (``own``: the hidden windows the learner's own
    submission holds, :meth:`Secrets.own_windows`, shown when a message echoes them back)."""
    points = float(earned or 0.0)
    if cell is None:
        return TestResult(test.grade_id, 0.0, test.points, "not run", "the test cell was not executed",
                          HINTS["NotRun"])
    grader = cell.get("metadata", {}).get("labkit", {})
    if grader.get("tampered"):
        return TestResult(test.grade_id, 0.0, test.points, "failed", "not graded: the submission changed how the "
                          "kernel runs tests (flagged for review)", HINTS["Tampered"])
    error = cell_failure(cell)
    if error is None and points >= test.points:
        return TestResult(test.grade_id, points, test.points, "passed")
    if error is None:
        return TestResult(test.grade_id, points, test.points, "partial",
                          f"partial credit: {points:g} of {test.points:g}")
    raw_name, evalue = str(error.get("ename", "Error")), str(error.get("evalue", "")).strip()
    ename = shown_exception(raw_name)
    if "failed_in" in grader:
        hidden = grader["failed_in"] == "hidden"
    else:  # outcomes the grader wrote itself (timeouts, kernel deaths, not run) carry no learner text
        line, hidden_lines = _failure_line(error), test.hidden_lines()
        hidden = bool(hidden_lines) and (line is None or line in hidden_lines) and raw_name not in (
            "TimeoutError", "KernelDied", "NotRun")
    if hidden:
        shown = evalue if evalue and evalue in literals(test.source) else ""
        message = f"a hidden test failed ({ename})" + (f": {shown}" if shown else "")
    else:
        # One rule, whoever raised it (a visible assert of the test, the backend through the learner's
        # call, the learner's own code): shown unless it holds a stretch of a hidden line that the
        # learner's copy does not (redact.Secrets), so a visible assert's own words and an AWS error
        # are shown, and hidden text echoed through them, or through the values they show, is not.
        text = evalue if assignment is None else assignment.secrets.learner_text(
            evalue, templates=message_templates(test.visible_source), own=own)
        message = f"{ename}: {text}" if text else ename
        if text == HIDDEN:
            message = f"{ename}: {HIDDEN}"
    hint = HINTS.get(raw_name if ename == raw_name else "", f"Your code raised {ename}: run the answer cell and "
                     "this test yourself, read the message and fix the cause.")
    status = "not run" if raw_name == "NotRun" else "failed"
    return TestResult(test.grade_id, points, test.points, status, message, hint, hidden)


def save_grades(nb: NotebookNode | None, assignment: Assignment, student: str) -> dict[str, float]:
    """Record the autograder's scores in the private gradebook; return them by grade id."""
    from nbgrader.api import Gradebook
    from nbgrader.preprocessors import SaveAutoGrades

    resources = {"nbgrader": {"db_url": assignment.db_url, "assignment": assignment.lab,
                              "notebook": assignment.notebook_name, "student": student}}
    # nbgrader's own gradebook code trips SQLAlchemy's autoflush warnings (SAWarning "not in
    # session"); they are nbgrader's, harmless, and would bury the grader's report.
    with _DB_LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not in session.*")
        with Gradebook(assignment.db_url) as gb:
            gb.update_or_create_student(student)
            gb.update_or_create_submission(assignment.lab, student)
        if nb is not None:
            SaveAutoGrades().preprocess(as_judged(nb), resources)
        scores = {}
        with Gradebook(assignment.db_url) as gb:
            for test in assignment.tests:
                grade = gb.find_grade(test.grade_id, assignment.notebook_name, assignment.lab, student)
                if nb is None or grade.auto_score is None:
                    grade.auto_score = 0.0
                    grade.needs_manual_grade = False
                    gb.db.commit()
                scores[test.grade_id] = float(grade.auto_score or 0.0)
    return scores
