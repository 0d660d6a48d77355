"""Plausible wrong answers to the labs' exercises, as test cases for the grader.

Each module ``tests/wrong_answers/<lab>.py`` (``lab_01_training_jobs.py``: a module name cannot
start with a digit) defines ``LAB = "01-training-jobs"`` and ``MISTAKES``, a list of
:class:`Mistake`. :func:`pack` groups a lab's mistakes into as few submissions as their
exercises allow and :func:`build_submission` writes each: the lab's learner copy, every answer
cell filled with the solution except the ones its mistakes replace. ``tests/test_notebooks.py``
grades them in the lab's one ``labkit grade`` run (beside the solution and the learner version)
and checks that each mistake earns the points it should and gets feedback that names it;
``tests/test_wrong_answers.py`` checks the case files themselves, without running notebooks.

A mistake's answer is usually the solution with one thing changed: :func:`edit` makes it.
"""

from __future__ import annotations

import functools
import importlib
import json
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
MIN_LEAK_LINE = 24  # solution lines shorter than this are too generic to count as a leak


@dataclass
class Mistake:
    """One wrong submission: what the learner wrote, the points it should earn, what it should read.

    ``answers``: answer cell grade_id -> the cell's whole source as the learner wrote it.
    ``expect``: test cell grade_id -> the points it should earn (tests not listed: full marks).
    ``feedback``: test cell grade_id -> a substring the feedback for that test must contain.
    """

    name: str
    answers: dict[str, str]
    expect: dict[str, float]
    feedback: dict[str, str] = field(default_factory=dict)


@functools.cache
def _cells(lab: str, version: str = "solutions") -> tuple[dict, ...]:
    nb = json.loads((REPO / version / lab / f"{lab}.ipynb").read_text())
    return tuple(nb["cells"])


def _source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def answer_cells(lab: str) -> dict[str, str]:
    """The lab's code answer cells: grade_id -> the solution's source, without the solution markers."""
    out = {}
    for cell in _cells(lab):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and cell["cell_type"] == "code":
            lines = [ln for ln in _source(cell).splitlines() if ln.strip() not in SOLUTION_MARKERS]
            out[meta["grade_id"]] = "\n".join(lines) + "\n"
    return out


def graded_tests(lab: str) -> dict[str, tuple[float, str]]:
    """The lab's autograded test cells: grade_id -> (points, full source, hidden tests included)."""
    out = {}
    for cell in _cells(lab):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution") and cell["cell_type"] == "code":
            out[meta["grade_id"]] = (float(meta.get("points", 0)), _source(cell))
    return out


def solution(lab: str, grade_id: str) -> str:
    """The solution's source of one answer cell, as a learner who got it right would hand it in."""
    cells = answer_cells(lab)
    if grade_id not in cells:
        raise KeyError(f"{lab} has no code answer cell {grade_id!r}; its answer cells: {sorted(cells)}")
    return cells[grade_id]


def edit(lab: str, grade_id: str, *replacements: tuple[str, str]) -> str:
    """The solution of ``grade_id`` with each ``(old, new)`` replaced; each ``old`` must occur exactly once."""
    text = solution(lab, grade_id)
    for old, new in replacements:
        count = text.count(old)
        if count != 1:
            raise ValueError(f"{lab}/{grade_id}: {old!r} occurs {count} times in the solution, not once")
        text = text.replace(old, new)
    return text


def case_modules() -> list[ModuleType]:
    """Every ``tests/wrong_answers/<lab>.py`` module, in lab order."""
    modules = [importlib.import_module(f"{__name__}.{info.name}")
               for info in pkgutil.iter_modules([str(Path(__file__).parent)]) if not info.name.startswith("_")]
    return sorted(modules, key=lambda m: m.LAB)


def cases(lab: str) -> ModuleType | None:
    """The case module of ``lab`` (``tests/wrong_answers/lab_<lab>.py``), or None if it has none."""
    return {module.LAB: module for module in case_modules()}.get(lab)


def pack(mistakes: list[Mistake]) -> list[list[Mistake]]:
    """Group mistakes that touch disjoint answer cells and disjoint tests into shared submissions.

    Exercises must not cascade, so mistakes on different exercises cannot disturb each other, and
    every test no mistake of a group names must still earn full marks in that group's submission.
    """
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
