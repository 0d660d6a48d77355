"""Every lab, executed once through the autograder, as an instructor grades a class.

``labkit grade`` with its default isolation grades two submissions of each lab in one run:
the reference solution (``solutions/<lab>``) must get full marks with no error in any cell,
the learner version (``labs/<lab>``) must run to the end with only its exercises failing and
score 0. Both are judged by the one pass rule (:func:`labkit.grading.score.cell_failure`)
that ``labkit run`` and ``labkit check`` use too, so each notebook is executed once, not once
per tool. The graded notebooks, feedback and report are kept in ``build/graded/<lab>/``.
Each lab's lecture is executed as it is (papermill), in the same test class as the lab.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from labkit.authoring import LABS, REPO, SOLUTIONS, lab_names, stale
from labkit.grading import Limits, grade
from labkit.runner import judge

LABS_ALL = lab_names()
GRADED = REPO / "build" / "graded"
# Correctness is checked here, not speed: a loaded CI machine must not turn a slow cell into a
# failure (the isolation, memory and output limits stay the grader's defaults).
LIMITS = Limits(cell_timeout=600, notebook_timeout=1800)
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


def _graded(lab: str, tmp_path: Path):
    """Grade the solution and the learner version of ``lab`` in one run; (run, {version: judged})."""
    submissions = tmp_path / "submissions"
    for version, folder in (("solution", SOLUTIONS), ("learner", LABS)):
        (submissions / version).mkdir(parents=True)
        shutil.copyfile(folder / lab / f"{lab}.ipynb", submissions / version / f"{lab}.ipynb")
    out = GRADED / lab
    shutil.rmtree(out, ignore_errors=True)
    run = grade(lab, submissions, out, workers=2, limits=LIMITS)
    judged = {}
    for version, result in run.by_student().items():
        executed = out / "autograded" / version / lab / f"{lab}.ipynb"
        assert executed.exists(), f"{lab} {version}: the grader executed nothing: {result.reasons}"
        judged[version] = judge(json.loads(executed.read_text()), lab, version, result.seconds)
    return run, judged


def check_graded(lab: str, tmp_path: Path) -> None:
    """The solution gets full marks with no error anywhere; the learner version runs to the end, scores 0."""
    run, judged = _graded(lab, tmp_path)
    results = run.by_student()
    solution, learner = results["solution"], results["learner"]
    where = f"(graded notebooks, feedback and report in {(GRADED / lab).relative_to(REPO)}/)"

    assert solution.max_score > 0
    failed = [f"{t.grade_id}: {t.message}" for t in solution.tests if t.status != "passed"]
    assert solution.total == solution.max_score and not failed, (
        f"{lab} solution scored {solution.total:g}/{solution.max_score:g}: {failed} {solution.reasons} "
        f"{judged['solution'].problems()} {where}")
    assert not judged["solution"].errors, f"{lab} solution: {judged['solution'].problems()} {where}"
    assert not solution.reasons, f"{lab} solution: {solution.reasons} {where}"

    assert not judged["learner"].errors_outside_exercises, f"{lab} learner version: {judged['learner'].problems()} {where}"
    assert learner.total == 0, f"{lab} learner version scored {learner.total:g}: a test passes without an answer {where}"
    assert [e for e in judged["learner"].errors if e.kind == "test"], "the learner version's tests should fail"
    assert not [r for r in learner.reasons if "time limit" in r or "stopped" in r], f"{lab}: {learner.reasons}"


def check_lecture(lab: str, tmp_path: Path) -> None:
    import papermill

    lecture = REPO / "notebooks" / f"{lab}.ipynb"
    papermill.execute_notebook(str(lecture), str(tmp_path / lecture.name), cwd=str(lecture.parent),
                               kernel_name="python3", progress_bar=False)


def _lab_tests(lab: str) -> type:
    """One class per lab, so that pytest-xdist (``--dist loadscope``) spreads the labs over its workers."""

    class LabTests:
        def test_grader_gives_the_solution_full_marks_and_the_learner_version_zero(self, tmp_path):
            check_graded(lab, tmp_path)

        def test_lecture_executes(self, tmp_path):
            check_lecture(lab, tmp_path)

    LabTests.__name__ = LabTests.__qualname__ = "TestLab" + lab.replace("-", "_")
    LabTests.__doc__ = f"Lab {lab}: graded once as a class would be; its lecture executed."
    return LabTests


for _lab in LABS_ALL:
    globals()["TestLab" + _lab.replace("-", "_")] = _lab_tests(_lab)
