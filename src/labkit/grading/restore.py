"""Step "restore": turn a learner's file into the notebook the grader executes.

The notebook the grader runs is rebuilt from the lab's source, never trusted as handed in:
every instructor cell (setup, explanations, tests with their hidden parts) comes from the
source in its place and with its metadata; from the learner's file come only the answers
(matched to the lab's answer cells by id, or recognised when the id was renamed) and the
extra cells they added, kept in place as ordinary ungraded code. So any edit to nbgrader's
metadata (a renamed or duplicated id, a flipped grade flag, changed points, an extra cell
claiming points, a deleted or edited test) is repaired and the notebook graded normally;
each repair is reported as a flag. Malformed JSON is a reason, not a crash.

:func:`plan` then says, per cell of the rebuilt notebook, what the executor must know: whose
code it is, and for test cells their visible and hidden segments (see
:mod:`labkit.grading.execute`).
"""

from __future__ import annotations

import ast
import copy
import json
import uuid
from dataclasses import asdict, dataclass, field

import nbformat
from nbformat import NotebookNode

from .assignment import HIDDEN_BEGIN, HIDDEN_END, Assignment
from .pysource import parse_cell


@dataclass
class Restored:
    """The notebook to execute (None when unreadable), what was repaired, and the sources of the
    cells as the learner handed them in (never the restored tests: words the learner may see)."""

    notebook: NotebookNode | None
    flags: list[str] = field(default_factory=list)
    error: str | None = None
    handed_in: list[str] = field(default_factory=list)


def _meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {}) if isinstance(cell, dict) else {}
    return meta if isinstance(meta, dict) else {}


def _gid(cell) -> str | None:
    gid = _meta(cell).get("grade_id")
    return gid if isinstance(gid, str) and gid else None


def read_submission(raw: bytes) -> tuple[NotebookNode | None, str | None]:
    """The notebook in ``raw``, or None and a message naming what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, f"cannot read the notebook file: not UTF-8 text ({err.reason} at byte {err.start})"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        return None, f"malformed notebook (not valid JSON: {err.msg} at line {err.lineno}, column {err.colno})"
    except RecursionError:
        return None, "malformed notebook (JSON nested too deeply)"
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        return None, "malformed notebook (JSON without a 'cells' list)"
    cells = []
    for raw_cell in data["cells"]:
        if not isinstance(raw_cell, dict) or raw_cell.get("cell_type") not in ("code", "markdown", "raw"):
            continue
        source = raw_cell.get("source", "")
        if isinstance(source, list):
            source = "".join(s for s in source if isinstance(s, str))
        if not isinstance(source, str):
            source = ""
        meta = raw_cell.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
        cells.append(nbformat.from_dict({"cell_type": raw_cell["cell_type"], "source": source,
                                         "metadata": {"nbgrader": meta.get("nbgrader", {})}}))
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    return nb, None


@dataclass
class _Match:
    answers: dict[str, NotebookNode] = field(default_factory=dict)   # answer grade_id -> learner's cell
    extras: dict[int, list[NotebookNode]] = field(default_factory=dict)  # after source index (-1: top)
    seen: set[str] = field(default_factory=set)                      # instructor ids present


def _stripped(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _source_cells(assignment: Assignment) -> list[NotebookNode]:
    """The lab source's cells, which grading rebuilds every notebook from."""
    if assignment.source_notebook is None:
        raise ValueError(f"grading {assignment.notebook_name} needs the lab's source notebook (with its "
                         "solutions and hidden tests), and this assignment has only the learner's version")
    return list(assignment.source_notebook.cells)


def _match(nb: NotebookNode, assignment: Assignment, flags: list[str]) -> _Match:
    """Assign each of the learner's cells to a lab cell (answers, instructor cells) or keep it as extra."""
    source = _source_cells(assignment)
    release = {(_gid(c) or ""): c for c in assignment.release_notebook.cells}
    position = {gid: i for i, c in enumerate(source) if (gid := _gid(c))}
    answers = [gid for c in source if (gid := _gid(c)) and _meta(c).get("solution")]
    instructor = {gid for c in source if (gid := _gid(c)) and not _meta(c).get("solution")}
    by_text: dict[str, str] = {}  # a lab cell's text -> its id
    for c in source:
        gid = _gid(c)
        if gid is not None and gid in instructor:
            by_text.setdefault(_stripped(release[gid].source if gid in release else c.source), gid)
            by_text.setdefault(_stripped(c.source), gid)
    present = {_gid(c) for c in nb.cells}
    chosen: dict[str, int] = {}  # an instructor id claimed twice: the copy that still reads like the lab's
    for number, cell in enumerate(nb.cells):
        gid = _gid(cell)
        if gid is None or gid not in instructor:
            continue
        reads_like_lab = by_text.get(_stripped(cell.source)) == gid
        if gid not in chosen or (reads_like_lab and by_text.get(_stripped(nb.cells[chosen[gid]].source)) != gid):
            chosen[gid] = number
    found = _Match()
    anchor = -1
    for number, cell in enumerate(nb.cells):
        gid, meta = _gid(cell), _meta(cell)
        lab = assignment.source_cell(gid) if gid else None
        if gid is not None and gid in instructor and chosen.get(gid) != number:  # a decoy of a lab cell
            flags.append(f"a second cell with the id {gid!r}: kept as ordinary code, worth no points")
            if cell.cell_type == "code":
                found.extras.setdefault(anchor, []).append(cell)
            continue
        if gid is not None and gid in answers and gid not in found.answers:
            found.answers[gid] = cell
            _note_metadata(cell, lab, gid, flags)
            anchor = position[gid]
            continue
        if gid is not None and gid in instructor and gid not in found.seen:
            found.seen.add(gid)
            _note_instructor_edit(cell, lab, release.get(gid), gid, assignment, flags)
            anchor = position[gid]
            continue
        renamed = by_text.get(_stripped(cell.source)) if cell.source.strip() else None
        if renamed and renamed not in found.seen and renamed not in present:
            found.seen.add(renamed)
            flags.append(f"cell {renamed} of the lab came with "
                         + (f"the id {gid!r}" if gid else "its nbgrader metadata removed") + ": restored")
            anchor = position[renamed]
            continue
        if gid in found.answers or gid in found.seen:
            flags.append(f"a second cell with the id {gid!r}: kept as ordinary code, worth no points")
        elif meta.get("solution") and gid not in position:
            missing = [a for a in answers if a not in found.answers and a not in present and position[a] > anchor]
            if missing:
                flags.append(f"answer cell {missing[0]} came with the id {gid!r}: restored")
                found.answers[missing[0]] = cell
                anchor = position[missing[0]]
                continue
        if (meta.get("grade") or meta.get("points")) and not (gid in found.answers or gid in found.seen):
            flags.append(f"a cell claimed points with the id {gid!r}, which the lab does not have: kept as "
                         "ordinary code, worth no points")
        if cell.cell_type == "code":
            found.extras.setdefault(anchor, []).append(cell)
    _answers_without_metadata(found, answers, position, assignment, flags)
    return found


def _answers_without_metadata(found: _Match, answers: list[str], position: dict[str, int], assignment: Assignment,
                              flags: list[str]) -> None:
    """An answer cell that lost its metadata sits, as an extra cell, where the answer belongs
    (between the lab cells around it): it is taken as that answer."""
    matched = sorted({position[g] for g in found.seen} | {position[g] for g in found.answers})
    for gid in answers:
        lab = assignment.source_cell(gid)
        if gid in found.answers or lab is None or lab.cell_type != "code":
            continue
        where = position[gid]
        before = max((p for p in matched if p < where), default=-1)
        if found.extras.get(before):
            found.answers[gid] = found.extras[before].pop(0)
            flags.append(f"answer cell {gid} came without its nbgrader metadata: restored")
            matched = sorted([*matched, where])


def _note_metadata(cell, lab, gid: str, flags: list[str]) -> None:
    meta, want = _meta(cell), _meta(lab)
    changed = [key for key in ("grade", "solution", "locked", "points")
               if key in want and meta.get(key) != want.get(key) and not (key == "points" and not want.get("grade"))]
    if changed:
        flags.append(f"nbgrader metadata of {gid} changed ({', '.join(changed)}): restored from the lab source")
    if cell.cell_type != lab.cell_type:
        flags.append(f"cell {gid} was turned into a {cell.cell_type} cell: restored")


def _note_instructor_edit(cell, lab, released, gid: str, assignment: Assignment, flags: list[str]) -> None:
    test = assignment.test(gid)
    shown = released.source if released is not None else lab.source
    if _stripped(cell.source) not in (_stripped(shown), _stripped(lab.source)):
        flags.append(f"{'test' if test else 'lab'} cell {gid} was edited: restored from the lab source")
    meta, want = _meta(cell), _meta(lab)
    if test is not None:
        points = meta.get("points")
        try:
            changed = points is None or float(points) != test.points
        except (TypeError, ValueError):
            changed = True
        if changed:
            flags.append(f"points of {gid} were changed to {points!r}: restored to {test.points:g}")
    flipped = [key for key in ("grade", "solution", "locked") if bool(meta.get(key)) != bool(want.get(key))]
    if flipped:
        flags.append(f"nbgrader metadata of {gid} changed ({', '.join(flipped)}): restored from the lab source")
    if cell.cell_type != lab.cell_type:
        flags.append(f"{'test' if test else 'lab'} cell {gid} was turned into a {cell.cell_type} cell: restored")


def _fresh(cell: NotebookNode, extra: bool = False) -> NotebookNode:
    cell = copy.deepcopy(cell)
    if extra:  # the learner's own cell: ordinary code, it claims nothing
        cell.metadata = {}
    cell["id"] = uuid.uuid4().hex[:12]
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    cell.pop("attachments", None)
    return cell


def rebuild(nb: NotebookNode, assignment: Assignment, flags: list[str]) -> NotebookNode:
    """The lab's source skeleton with the learner's answers and extra cells in place."""
    found = _match(nb, assignment, flags)
    release = {_gid(c): c for c in assignment.release_notebook.cells if _gid(c)}
    out = [_fresh(c, extra=True) for c in found.extras.get(-1, [])]
    for index, lab in enumerate(_source_cells(assignment)):
        gid, meta = _gid(lab), _meta(lab)
        if gid and meta.get("solution"):
            cell = _fresh(release.get(gid, lab))
            learner = found.answers.get(gid)
            if learner is not None:
                cell.source = learner.source
            elif lab.cell_type == "code":
                flags.append(f"answer cell {gid} was deleted: restored as the unanswered stub")
            out.append(cell)
        elif gid and assignment.test(gid) is not None:
            if gid not in found.seen:
                flags.append(f"test cell {gid} was deleted: restored from the lab source")
            out.append(_fresh(lab))  # hidden tests included; the learner never sees this copy
        else:
            if gid and gid not in found.seen and lab.cell_type == "code":
                flags.append(f"lab cell {gid} was deleted: restored from the lab source")
            out.append(_fresh(release.get(gid, lab) if gid else lab))
        out.extend(_fresh(c, extra=True) for c in found.extras.get(index, []))
    rebuilt = nbformat.v4.new_notebook()
    rebuilt.metadata = copy.deepcopy(assignment.release_notebook.metadata)
    rebuilt.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                      "language": "python"}
    rebuilt.cells = out
    return rebuilt


def restore(raw: bytes, assignment: Assignment, student: str) -> Restored:
    """The executable notebook for ``student``'s file (its bytes), with its repair flags."""
    nb, error = read_submission(raw)
    if nb is None:
        assert error is not None  # read_submission names what is wrong whenever it returns no notebook
        return Restored(None, [error], error)
    flags: list[str] = []
    try:
        kernel = json.loads(raw).get("metadata", {}).get("kernelspec", {}).get("name")
    except (AttributeError, ValueError):
        kernel = None
    if kernel != "python3":
        flags.append(f"kernel {kernel!r} in the notebook's metadata replaced by python3")
    handed_in = [cell.source for cell in nb.cells]
    return Restored(rebuild(nb, assignment, flags), list(dict.fromkeys(flags)), handed_in=handed_in)


# ---- what the executor needs to know about each cell -------------------------------------------


@dataclass
class CellPlan:
    """How to run one cell: ``role`` is learner | instructor | test; a test's ``segments`` are
    ``[hidden, code]`` pairs in order; ``binds`` are the helper names an instructor cell defines
    (functions, classes, imports) that learner code must not replace."""

    role: str
    grade_id: str = ""
    segments: list[tuple[bool, str]] = field(default_factory=list)
    binds: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def segments(source: str) -> list[tuple[bool, str]]:
    """``source`` cut into (hidden, code) pieces at nbgrader's hidden-test markers, in order."""
    pieces: list[tuple[bool, str]] = []
    hidden = False
    lines: list[str] = []
    for line in source.splitlines():
        marker = line.strip()
        if marker in (HIDDEN_BEGIN, HIDDEN_END):
            if any(x.strip() for x in lines):
                pieces.append((hidden, "\n".join(lines)))
            hidden, lines = marker == HIDDEN_BEGIN, []
            continue
        lines.append(line)
    if any(x.strip() for x in lines):
        pieces.append((hidden, "\n".join(lines)))
    return pieces


def defined_helpers(source: str) -> list[str]:
    """Top-level names ``source`` binds with ``def``, ``class`` or ``import``."""
    tree = parse_cell(source)
    names: list[str] = []
    for node in tree.body if tree else []:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Import):
            names += [(a.asname or a.name).split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names += [a.asname or a.name for a in node.names if a.name != "*"]
    return names


def bound_names(source: str) -> set[str]:
    """Every top-level name ``source`` binds (assignments included)."""
    tree = parse_cell(source)
    names = set(defined_helpers(source))
    for node in tree.body if tree else []:
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        for target in targets:
            names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def plan(nb: NotebookNode, assignment: Assignment) -> list[CellPlan]:
    """One :class:`CellPlan` per cell of a notebook :func:`rebuild` made."""
    learners_may_bind: set[str] = set()
    for cell in _source_cells(assignment):
        if _meta(cell).get("solution") and cell.cell_type == "code":
            learners_may_bind |= bound_names(cell.source)
    plans = []
    for cell in nb.cells:
        gid, meta = _gid(cell), _meta(cell)
        if cell.cell_type != "code":
            plans.append(CellPlan("markdown", gid or ""))
        elif not gid or meta.get("solution"):
            plans.append(CellPlan("learner", gid or ""))
        else:
            test = assignment.test(gid)
            visible = "\n".join(code for hidden, code in segments(cell.source) if not hidden)
            binds = [n for n in defined_helpers(visible) if n not in learners_may_bind]
            if test is not None:
                plans.append(CellPlan("test", gid, segments(test.source), binds))
            else:
                plans.append(CellPlan("instructor", gid, [], binds))
    return plans
