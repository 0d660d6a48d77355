"""Every lab, executed: the solution passes its own tests, the learner version fails them cleanly.

Executed notebooks and logs are kept in build/executed/<lab>/ for inspection.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.authoring import LABS, REPO, SOLUTIONS, lab_names, stale
from labkit.runner import execute

LABS_ALL = lab_names()
pytestmark = pytest.mark.notebooks


def test_every_lab_has_source_learner_version_and_lecture():
    assert LABS_ALL, "no labs found in solutions/"
    for lab in LABS_ALL:
        assert (LABS / lab / f"{lab}.ipynb").exists(), f"labs/{lab} missing: run `labkit generate {lab}`"
        assert (REPO / "notebooks" / f"{lab}.ipynb").exists(), f"notebooks/{lab}.ipynb (the lecture) missing"


@pytest.mark.parametrize("lab", LABS_ALL)
def test_learner_version_is_current(lab):
    assert stale(lab) == [], f"labs/{lab} is stale: run `labkit generate {lab}` and commit it"


def test_notebooks_are_committed_without_outputs():
    dirty = []
    for folder in (SOLUTIONS, LABS, REPO / "notebooks"):
        for path in folder.rglob("*.ipynb"):
            nb = json.loads(path.read_text())
            if any(c.get("outputs") or c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code"):
                dirty.append(str(path.relative_to(REPO)))
    assert not dirty, f"notebooks with outputs (clear them: `labkit generate` does for solutions): {dirty}"


@pytest.mark.parametrize("lab", LABS_ALL)
def test_solution_passes_all_its_tests(lab):
    result = execute(lab, "solution")
    assert result.ok, f"{lab} solution: {result.problems()} (see {result.output})"
    assert result.max_score > 0


@pytest.mark.parametrize("lab", LABS_ALL)
def test_learner_version_runs_to_the_end_and_scores_zero(lab):
    result = execute(lab, "learner")
    assert not result.crashed, result.crashed
    assert not result.errors_outside_exercises, f"{lab} learner version: {result.problems()}"
    assert result.score == 0, f"{lab} learner version scored {result.score}: a test passes without an answer"
    failing_tests = [e for e in result.errors if e.kind == "test"]
    assert failing_tests, "the learner version's tests should fail"


@pytest.mark.parametrize("lecture", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_lecture_executes(lecture: Path, tmp_path):
    import papermill

    papermill.execute_notebook(str(lecture), str(tmp_path / lecture.name), cwd=str(lecture.parent),
                               kernel_name="python3", progress_bar=False)
