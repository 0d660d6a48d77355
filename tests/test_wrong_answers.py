"""Plausible wrong answers: the case files checked, without running a notebook.

The cases are in ``tests/wrong_answers/<lab>.py`` (see that package). They are GRADED in
``tests/test_notebooks.py``, in the lab's one ``labkit grade`` run beside its solution and
learner version: per mistake, the points per test, the feedback substring, that a failing hidden
test shows the instructor's message (never only "a hidden test failed"), and that the learner's
feedback page contains no line of the solution that the learner copy does not already show.

Here: every case names real cells, every exercise has mistakes, each mistake loses points
somewhere and says what its feedback must name; packing and submission building do what they say.
"""

from __future__ import annotations

import json

import pytest
from wrong_answers import REPO, Mistake, answer_cells, build_submission, case_modules, graded_tests, pack

CASES = case_modules()


def _ids(module) -> str:
    return module.LAB


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
