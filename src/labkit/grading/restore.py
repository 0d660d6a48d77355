"""Step "restore tests": turn a learner's file into the notebook the grader executes.

Read the submission (malformed JSON is a reason, not a crash), put back every test cell
the learner deleted or edited and the points they changed, from the private gradebook,
with nbgrader's own sanitising preprocessors (ClearOutput, DeduplicateIds,
OverwriteKernelspec, OverwriteCells, CheckCellMetadata). Hidden tests come back here,
into the in-memory copy the grader executes; they are never written where learner code
can read them. Each repair is reported as a flag.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .assignment import Assignment


@dataclass
class Restored:
    """The notebook to execute (None when unreadable) and what was repaired."""

    notebook: NotebookNode | None
    flags: list[str] = field(default_factory=list)
    error: str | None = None


def _grade_id(cell: NotebookNode) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta.get("grade_id") if (meta.get("grade") or meta.get("solution") or meta.get("locked")) else None


def read_submission(path: Path) -> tuple[NotebookNode | None, str | None]:
    """The notebook at ``path``, or None and a message naming what is wrong with it."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return None, f"cannot read the notebook file: {err}"
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        return None, f"malformed notebook (not valid JSON: {err.msg} at line {err.lineno}, column {err.colno})"
    if not isinstance(data, dict) or "cells" not in data:
        return None, "malformed notebook (JSON without a 'cells' list)"
    try:
        nb = nbformat.reads(raw, as_version=4)
        for cell in nb.cells:
            cell.setdefault("metadata", {})
            if cell.cell_type == "code":
                cell.setdefault("outputs", [])
                cell.setdefault("execution_count", None)
    except Exception as err:  # nbformat raises several kinds on broken structure
        return None, f"malformed notebook ({type(err).__name__}: {err})"
    return nb, None


def _restore_missing(nb: NotebookNode, assignment: Assignment, flags: list[str]) -> None:
    """Put back graded and solution cells the learner deleted, where they were."""
    release = assignment.release_notebook.cells
    present = {gid for gid in map(_grade_id, nb.cells) if gid}
    for index, template in enumerate(release):
        gid = _grade_id(template)
        if not gid or gid in present:
            continue
        meta = template.metadata.get("nbgrader", {})
        if not (meta.get("grade") or meta.get("solution")):
            continue
        # after the nearest earlier release cell that is present in the submission
        position = 0
        for earlier in reversed(release[:index]):
            earlier_id = _grade_id(earlier)
            if earlier_id in present:
                position = 1 + next(i for i, c in enumerate(nb.cells) if _grade_id(c) == earlier_id)
                break
        nb.cells.insert(position, copy.deepcopy(template))
        present.add(gid)
        kind = "test cell" if meta.get("grade") and not meta.get("solution") else "answer cell"
        flags.append(f"{kind} {gid} was deleted: restored from the lab source"
                     + (" (its answer is the unanswered stub)" if kind == "answer cell" else ""))


def _note_edits(nb: NotebookNode, assignment: Assignment, flags: list[str]) -> None:
    """Flag test cells whose code or points the learner changed (restored afterwards)."""
    for cell in nb.cells:
        gid = _grade_id(cell)
        test = assignment.test(gid) if gid else None
        if test is None:
            continue
        if cell.source.rstrip() != test.visible_source.rstrip() and cell.source.rstrip() != test.source.rstrip():
            flags.append(f"test cell {gid} was edited: restored from the lab source")
        points = cell.metadata.get("nbgrader", {}).get("points")
        try:
            changed = points is None or float(points) != test.points
        except (TypeError, ValueError):
            changed = True
        if changed:
            flags.append(f"points of {gid} were changed to {points!r}: restored to {test.points:g}")
        if cell.cell_type != "code":
            flags.append(f"test cell {gid} was turned into a {cell.cell_type} cell: restored")
            cell.cell_type = "code"
            cell.outputs, cell.execution_count = [], None


def restore(path: Path, assignment: Assignment, student: str) -> Restored:
    """The executable notebook for ``student``'s file at ``path``, with its repair flags."""
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearOutput,
        DeduplicateIds,
        OverwriteCells,
        OverwriteKernelspec,
    )

    nb, error = read_submission(path)
    if nb is None:
        assert error is not None  # read_submission names what is wrong whenever it returns no notebook
        return Restored(None, [error], error)
    flags: list[str] = []
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel != "python3":
        flags.append(f"kernel {kernel!r} in the notebook's metadata replaced by python3")
    # a test cell whose metadata was stripped is treated as deleted (and its copy kept as plain code)
    _note_edits(nb, assignment, flags)
    _restore_missing(nb, assignment, flags)
    resources = {"nbgrader": {"db_url": assignment.db_url, "assignment": assignment.lab,
                              "notebook": assignment.notebook_name, "student": student}}
    try:
        for step in (ClearOutput(), DeduplicateIds(), OverwriteKernelspec(), OverwriteCells(),
                     CheckCellMetadata()):
            nb, resources = step.preprocess(nb, resources)
    except Exception as err:  # nbgrader refuses notebooks it cannot reconcile
        return Restored(None, [*flags, f"the notebook's structure could not be repaired: {err}"], str(err))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    return Restored(nb, flags)
