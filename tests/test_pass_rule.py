"""One rule for "this test passed", whoever asks: labkit run/check, the notebook tests, labkit grade."""
from __future__ import annotations

import nbformat
import pytest
from nbgrader.utils import determine_grade

from labkit.grading.score import as_judged, cell_failure
from labkit.runner import judge


def _test_cell(outputs: list, executed: bool = True) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("check()")
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "t", "points": 4, "solution": False,
                                 "locked": True, "schema_version": 3, "task": False}
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    cell.execution_count = 1 if executed else None
    return cell


STDERR = {"output_type": "stream", "name": "stderr", "text": "WARNING:sagemaker:Defaulting to only copy...\n"}
STDOUT = {"output_type": "stream", "name": "stdout", "text": "ok\n"}
ERROR = {"output_type": "error", "ename": "AssertionError", "evalue": "wrong", "traceback": []}
NUMBER = {"output_type": "execute_result", "execution_count": 1, "metadata": {}, "data": {"text/plain": "0.25"}}

CASES = [  # outputs, executed, passes
    ([], True, True),
    ([STDOUT], True, True),
    ([STDERR], True, True),            # library logging and warnings never fail a test
    ([STDOUT, STDERR, STDOUT], True, True),
    ([NUMBER], True, True),            # a bare expression's value is no partial credit
    ([STDERR, ERROR], True, False),    # an exception always does
    ([ERROR], True, False),
    ([], False, False),                # never ran
]


@pytest.mark.parametrize("outputs, executed, passes", CASES)
def test_every_scorer_applies_the_same_rule(outputs, executed, passes):
    cell = _test_cell(outputs, executed)
    assert (cell_failure(cell) is None) is passes
    # labkit run / check
    result = judge(nbformat.v4.new_notebook(cells=[cell]), "lab", "solution", 0.0)
    assert result.score == (4 if passes else 0)
    # labkit grade: nbgrader's own scorer, shown the cell as the rule judged it
    view = as_judged(nbformat.v4.new_notebook(cells=[cell]))
    assert determine_grade(view.cells[0])[0] == (4 if passes else 0)
    assert cell.outputs == [nbformat.from_dict(o) for o in outputs], "the graded notebook keeps its outputs"
