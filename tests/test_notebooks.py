"""Every lab graded ONCE through the autograder, as an instructor grades a class; its lecture executed.

Per lab, one ``labkit grade`` run with its default isolation (:func:`grade_lab`, shared by the
lab's tests through a class-scoped fixture) grades these submissions together:

- ``solution``, the reference solution (``solutions/<lab>``): full marks, no error in any cell;
- ``learner``, the learner version (``labs/<lab>``): runs to the end with only its exercises
  failing, and scores 0;
- ``mistakes-NN``, the lab's plausible wrong answers (``tests/wrong_answers/<lab>.py``), packed
  into as few submissions as their exercises allow: each mistake earns the points it should and
  feedback that names it, and every test no mistake names keeps full marks.

So a lab's fixed grading costs (nbgrader's assignment, the warm kernel parent, the gradebook) are
paid once, and each notebook is executed once: the solution and the learner version are judged by
the one pass rule (:func:`labkit.grading.score.cell_failure`) that ``labkit run`` and
``labkit check`` use too. The graded notebooks, feedback and report are kept in
``build/graded/<lab>/``. Each lab's lecture is executed as it is (papermill).

Each lab is one test class, so pytest-xdist (``--dist loadscope``) keeps a lab's tests, and its
one grading run, on one worker and spreads the labs over the workers. In ``--durations`` a lab's
grading run is the "setup" of its first test.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from wrong_answers import Mistake, build_submission, cases, pack, secret_lines

from labkit.authoring import LABS, REPO, SOLUTIONS, lab_names, stale
from labkit.grading import GradeRun, Limits, grade
from labkit.runner import IOPUB_TIMEOUT_S, judge

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


# ---------------------------------------------------------------------------------------------
# The one grading run per lab


@dataclass
class GradedLab:
    """One lab's ``labkit grade`` run: its solution, its learner version and its mistakes, graded together."""

    lab: str
    run: GradeRun
    mistakes: dict[str, list[Mistake]]  # submission name (mistakes-NN) -> the mistakes it holds

    @property
    def where(self) -> str:
        return f"(graded notebooks, feedback and report in {(GRADED / self.lab).relative_to(REPO)}/)"


def grade_lab(lab: str) -> GradedLab:
    """Grade ``solution``, ``learner`` and every ``mistakes-NN`` submission of ``lab`` in one run."""
    module = cases(lab)
    groups = pack(list(module.MISTAKES)) if module else []
    mistakes = {f"mistakes-{index:02d}": group for index, group in enumerate(groups)}
    out = GRADED / lab
    shutil.rmtree(out, ignore_errors=True)
    # A folder of our own, not pytest's tmp_path: other pytest sessions of the same user prune old
    # tmp_path folders while a long class is graded.
    with tempfile.TemporaryDirectory(prefix="labkit-graded-") as folder:
        submissions = Path(folder)
        for version, source in (("solution", SOLUTIONS), ("learner", LABS)):
            (submissions / version).mkdir()
            shutil.copyfile(source / lab / f"{lab}.ipynb", submissions / version / f"{lab}.ipynb")
        for name, group in mistakes.items():
            (submissions / name).mkdir()
            (submissions / name / f"{lab}.ipynb").write_text(json.dumps(build_submission(lab, group), indent=1))
        run = grade(lab, submissions, out, workers=2, limits=LIMITS)
    return GradedLab(lab, run, mistakes)


def check_solution_and_learner(graded: GradedLab) -> None:
    """The solution gets full marks with no error anywhere; the learner version runs to the end, scores 0."""
    lab, where = graded.lab, graded.where
    results = graded.run.by_student()
    judged = {}
    for version in ("solution", "learner"):
        executed = GRADED / lab / "autograded" / version / lab / f"{lab}.ipynb"
        assert executed.exists(), f"{lab} {version}: the grader executed nothing: {results[version].reasons}"
        judged[version] = judge(json.loads(executed.read_text()), lab, version, results[version].seconds)
    solution, learner = results["solution"], results["learner"]

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


def check_wrong_answers(graded: GradedLab) -> None:
    """Per mistake: its points per test, the feedback words it names, an instructor's message for a
    failing hidden test (never only "a hidden test failed"), no solution line on the feedback page;
    every test no mistake of a submission names keeps full marks, and the grader has nothing to note."""
    lab = graded.lab
    results = graded.run.by_student()
    secrets = secret_lines(lab)
    problems, table = [], []
    for student, group in graded.mistakes.items():
        result = results[student]
        tests = {t.grade_id: t for t in result.tests}
        expect = {gid: points for m in group for gid, points in m.expect.items()}
        owner = {gid: m.name for m in group for gid in (*m.expect, *m.feedback)}
        page = html.unescape(Path(result.feedback).read_text())
        for reason in result.reasons:
            problems.append(f"{student} ({', '.join(m.name for m in group)}): grader note: {reason}")
        for gid, test in tests.items():
            want = expect.get(gid, test.max_points)
            who = owner.get(gid, "no mistake (must keep full marks)")
            if abs(test.points - want) > 1e-6:
                problems.append(f"{lab}/{gid} [{who}]: {test.points:g} points, expected {want:g} "
                                f"(status {test.status}: {test.message})")
            if test.hidden_failure and re.fullmatch(r"a hidden test failed \(\w+\)", test.message.strip()):
                problems.append(f"{lab}/{gid} [{who}]: only the generic message {test.message!r}: "
                                "give the failing hidden check a literal message")
        for mistake in group:
            for gid, needle in mistake.feedback.items():
                text = f"{tests[gid].message} {tests[gid].hint}"
                if needle not in text:
                    problems.append(f"{lab}/{gid} [{mistake.name}]: feedback lacks {needle!r}; it reads: {text!r}")
            table.append(f"  {mistake.name}: " + ", ".join(
                f"{gid} {tests[gid].points:g}/{tests[gid].max_points:g}" for gid in mistake.expect))
        leaked = [line for line in secrets if line in page]
        if leaked:
            problems.append(f"{student}: the feedback page shows solution lines: {leaked[:3]}")
    count = sum(len(group) for group in graded.mistakes.values())
    print(f"{lab}: {count} mistakes in {len(graded.mistakes)} submissions\n" + "\n".join(table))
    print("\n".join(problems))
    assert not problems, "\n".join(problems) + f"\n{graded.where}"


def check_lecture(lab: str, tmp_path: Path) -> None:
    import papermill

    lecture = REPO / "notebooks" / f"{lab}.ipynb"
    papermill.execute_notebook(str(lecture), str(tmp_path / lecture.name), cwd=str(lecture.parent),
                               kernel_name="python3", progress_bar=False, iopub_timeout=IOPUB_TIMEOUT_S)


@pytest.fixture(scope="class")
def graded(request) -> GradedLab:
    """The lab's one grading run, shared by the tests of its class (``LAB``: the lab)."""
    return grade_lab(request.cls.LAB)


def _lab_tests(lab: str) -> type:
    """One class per lab: its tests read the lab's one grading run (``graded``), then its lecture runs."""

    class LabTests:
        LAB = lab

        def test_grader_gives_the_solution_full_marks_and_the_learner_version_zero(self, graded):
            check_solution_and_learner(graded)

        if cases(lab) is not None:
            @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the grader needs Linux")
            def test_wrong_answers_earn_their_points_and_named_feedback(self, graded):
                check_wrong_answers(graded)

        def test_lecture_executes(self, tmp_path):
            check_lecture(lab, tmp_path)

    LabTests.__name__ = LabTests.__qualname__ = "TestLab" + lab.replace("-", "_")
    LabTests.__doc__ = (f"Lab {lab}: its solution, learner version and plausible mistakes graded in one run, "
                        "as a class would be; its lecture executed.")
    return LabTests


for _lab in LABS_ALL:
    globals()["TestLab" + _lab.replace("-", "_")] = _lab_tests(_lab)
