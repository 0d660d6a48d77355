"""Plausible wrong answers, graded: each earns the points it should and feedback that names it.

The cases are in ``tests/wrong_answers/<lab>.py`` (see that package). Per lab, every mistake
becomes a submission built from the learner copy with every answer cell filled in with the
solution except the ones the mistake replaces; mistakes on different exercises share one
submission (exercises must not cascade, so they cannot disturb each other, and every test a
mistake does not name must still earn full marks). All of a lab's submissions are graded in
ONE ``labkit grade`` run.

Checked per mistake: points per test; the feedback substring; that a failing hidden test shows
the instructor's message (never only "a hidden test failed"); and that the learner's feedback
page contains no line of the solution that the learner copy does not already show.
"""

from __future__ import annotations

import html
import json
import re
import sys
import tempfile
from pathlib import Path

import pytest
from wrong_answers import REPO, Mistake, answer_cells, case_modules, graded_tests

CASES = case_modules()
LABS_WITH_CASES = [m.LAB for m in CASES]
MIN_LEAK_LINE = 24  # solution lines shorter than this are too generic to count as a leak


def _ids(module) -> str:
    return module.LAB


def pack(mistakes: list[Mistake]) -> list[list[Mistake]]:
    """Group mistakes that touch disjoint answer cells and disjoint tests into shared submissions."""
    groups: list[tuple[set, set, list[Mistake]]] = []
    for mistake in mistakes:
        cells, tests = set(mistake.answers), set(mistake.expect) | set(mistake.feedback)
        for used_cells, used_tests, members in groups:
            if not (cells & used_cells) and not (tests & used_tests):
                used_cells |= cells
                used_tests |= tests
                members.append(mistake)
                break
        else:
            groups.append((set(cells), set(tests), [mistake]))
    return [members for _, _, members in groups]


def build_submission(lab: str, group: list[Mistake]) -> dict:
    """The learner copy with every answer cell filled in: the solution, or a mistake's answer."""
    nb = json.loads((REPO / "labs" / lab / f"{lab}.ipynb").read_text())
    answers = answer_cells(lab)
    for mistake in group:
        answers.update(mistake.answers)
    for cell in nb["cells"]:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution") and gid in answers:
            cell["source"] = answers[gid]
    return nb


def secret_lines(lab: str) -> list[str]:
    """Lines of the solution's answers that the learner copy does not show (what feedback must not leak)."""
    learner = (REPO / "labs" / lab / f"{lab}.ipynb").read_text()
    shown = {line.strip() for cell in json.loads(learner)["cells"] for line in
             ("".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]).splitlines()}
    lines = set()
    for source in answer_cells(lab).values():
        for line in source.splitlines():
            piece = line.strip()
            if len(piece) >= MIN_LEAK_LINE and piece not in shown and not piece.startswith("#"):
                lines.add(piece)
    return sorted(lines)


# ---------------------------------------------------------------------------------------------
# Fast checks of the case files and the labs' test cells (no notebook runs)


@pytest.mark.parametrize("module", CASES, ids=_ids)
def test_case_file_names_real_cells_and_every_exercise_has_mistakes(module):
    lab = module.LAB
    answers, tests = answer_cells(lab), graded_tests(lab)
    problems, names = [], set()
    for mistake in module.MISTAKES:
        assert isinstance(mistake, Mistake), f"{lab}: MISTAKES holds {type(mistake).__name__}, not Mistake"
        where = f"{lab} / {mistake.name}"
        if mistake.name in names:
            problems.append(f"{where}: two mistakes have this name")
        names.add(mistake.name)
        if not mistake.answers:
            problems.append(f"{where}: no answer cell replaced")
        for gid, source in mistake.answers.items():
            if gid not in answers:
                problems.append(f"{where}: {gid!r} is not a code answer cell of the lab ({sorted(answers)})")
            elif source.strip() == answers[gid].strip():
                problems.append(f"{where}: the answer to {gid} is the solution itself")
        for gid in {*mistake.expect, *mistake.feedback}:
            if gid not in tests:
                problems.append(f"{where}: {gid!r} is not a test cell of the lab ({sorted(tests)})")
        for gid, points in mistake.expect.items():
            if gid in tests and not 0 <= points <= tests[gid][0]:
                problems.append(f"{where}: {gid} expects {points}, outside 0..{tests[gid][0]}")
        if not any(gid in tests and points < tests[gid][0] for gid, points in mistake.expect.items()):
            problems.append(f"{where}: a mistake must lose points somewhere")
        if not mistake.feedback:
            problems.append(f"{where}: say what the feedback must name (feedback={{test: substring}})")
    for gid in answers:
        covering = [m.name for m in module.MISTAKES if gid in m.answers]
        if len(covering) < 2:
            problems.append(f"{lab}: answer cell {gid} has {len(covering)} mistake(s); write two or three")
    assert not problems, "\n".join(problems)


def test_packing_keeps_mistakes_on_the_same_exercise_apart():
    a = Mistake("a", {"ex1": "x"}, {"t1": 0})
    b = Mistake("b", {"ex1": "y"}, {"t1": 1})
    c = Mistake("c", {"ex2": "z"}, {"t2": 0})
    d = Mistake("d", {"ex3": "w"}, {"t1": 0})  # another exercise, but a test that b's submission judges
    e = Mistake("e", {"ex3": "v"}, {"t3": 0})
    assert [[m.name for m in g] for g in pack([a, b, c, d, e])] == [["a", "c", "e"], ["b"], ["d"]]


# ---------------------------------------------------------------------------------------------
# The graded run, one per lab


def _feedback_text(test) -> str:
    return f"{test.message} {test.hint}"


def _wrong_answer_tests(module) -> type:
    """One class per lab, so that pytest-xdist (``--dist loadscope``) spreads the labs over its workers."""

    @pytest.mark.notebooks
    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the grader needs Linux")
    class WrongAnswers:
        def test_wrong_answers_earn_their_points_and_named_feedback(self):
            from labkit.grading import grade

            # A folder of our own, not pytest's tmp_path: other pytest sessions of the same user prune
            # old tmp_path folders, and the grader writes its gradebook into the output folder.
            with tempfile.TemporaryDirectory(prefix="labkit-wrong-answers-") as folder:
                _grade_and_check(module, Path(folder), grade)

    WrongAnswers.__doc__ = f"Lab {module.LAB}: its plausible mistakes, graded in one run."
    WrongAnswers.__name__ = WrongAnswers.__qualname__ = "TestWrongAnswers" + module.LAB.replace("-", "_")
    return WrongAnswers


for _module in CASES:
    globals()["TestWrongAnswers" + _module.LAB.replace("-", "_")] = _wrong_answer_tests(_module)


# The grader's per-cell limit is for learners' submissions on a grading machine; here up to eight
# helpers share two cores, and a lab's tuning or pipeline cell can take minutes under that load.
LIMITS = {"cell_timeout": 300.0, "notebook_timeout": 1200.0}


def _grade_and_check(module, tmp_path: Path, grade) -> None:
    lab = module.LAB
    groups = pack(list(module.MISTAKES))
    submissions = tmp_path / "submissions"
    for index, group in enumerate(groups):
        folder = submissions / f"s{index:02d}"
        folder.mkdir(parents=True)
        (folder / f"{lab}.ipynb").write_text(json.dumps(build_submission(lab, group), indent=1))
    from labkit.grading import Limits

    run = grade(lab, submissions, tmp_path / "graded", limits=Limits(**LIMITS))
    results = run.by_student()
    secrets = secret_lines(lab)
    problems, table = [], []
    for index, group in enumerate(groups):
        result = results[f"s{index:02d}"]
        tests = {t.grade_id: t for t in result.tests}
        expect = {gid: points for m in group for gid, points in m.expect.items()}
        owner = {gid: m.name for m in group for gid in (*m.expect, *m.feedback)}
        page = html.unescape(Path(result.feedback).read_text())
        for reason in result.reasons:
            problems.append(f"s{index:02d} ({', '.join(m.name for m in group)}): grader note: {reason}")
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
                text = _feedback_text(tests[gid])
                if needle not in text:
                    problems.append(f"{lab}/{gid} [{mistake.name}]: feedback lacks {needle!r}; it reads: {text!r}")
            table.append(f"  {mistake.name}: " + ", ".join(
                f"{gid} {tests[gid].points:g}/{tests[gid].max_points:g}" for gid in mistake.expect))
        leaked = [line for line in secrets if line in page]
        if leaked:
            problems.append(f"s{index:02d}: the feedback page shows solution lines: {leaked[:3]}")
    print(f"{lab}: {len(module.MISTAKES)} mistakes in {len(groups)} submissions\n" + "\n".join(table))
    print("\n".join(problems))
    assert not problems, "\n".join(problems)


def test_submission_keeps_grade_cells_and_fills_answers():
    module = CASES[0]
    lab = module.LAB
    mistake = module.MISTAKES[0]
    nb = build_submission(lab, [mistake])
    learner = json.loads((REPO / "labs" / lab / f"{lab}.ipynb").read_text())
    answers = answer_cells(lab)
    for cell, original in zip(nb["cells"], learner["cells"], strict=True):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and cell["cell_type"] == "code":
            expected = mistake.answers.get(meta["grade_id"], answers[meta["grade_id"]])
            assert cell["source"] == expected
        else:
            assert cell["source"] == original["source"]
