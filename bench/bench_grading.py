"""Grading throughput: 40 mixed submissions of lab 00, `labkit grade` vs `nbgrader autograde`.

Both grade the same submissions on the same machine in the same run, one after the other:

- **nbgrader**: the instructor's loop with plain nbgrader 0.9.6: ``nbgrader generate_assignment``
  once, then ``nbgrader autograde <lab> --student <id>`` per student (one CLI call each, as
  nbgrader's docs describe), then ``nbgrader export`` for the CSV. No isolation at all.
- **labkit**: ``labkit.grading.grade`` with every protection this machine offers (namespaces,
  a uid per submission, limits), ``workers`` = number of cores, feedback pages and CSV included.

The submissions are built from the lab's real files: the solution, the blank learner
version, partial and wrong answers, an always-equal object, a deleted and an edited test
cell, and a kernel crash (``os._exit``). The table also says how many totals the two agree on.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

LAB = "00-setup"
ROOT = Path(__file__).resolve().parent.parent
KINDS = ["full", "blank", "partial", "wrong_policy", "always_equal", "deleted_test", "crash", "edited_test"]


def _cell(nb, grade_id: str):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _with(nb, **sources: str):
    nb = copy.deepcopy(nb)
    for grade_id, source in sources.items():
        _cell(nb, grade_id.replace("_", "-")).source = source
    return nb


def submissions(solution: Path, release: Path) -> dict[str, nbformat.NotebookNode]:
    """One notebook per kind (see the module docstring)."""
    sol, blank = nbformat.read(solution, as_version=4), nbformat.read(release, as_version=4)
    stub = "# YOUR CODE HERE\nraise NotImplementedError()"
    partial = copy.deepcopy(blank)
    for gid in ("ex1-answer", "ex2-answer"):
        _cell(partial, gid).source = _cell(sol, gid).source
    deleted = copy.deepcopy(sol)
    deleted.cells = [c for c in deleted.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "ex4-tests"]
    return {
        "full": sol,
        "blank": blank,
        "partial": partial,
        "wrong_policy": _with(sol, ex2_answer='def least_privilege_policy(bucket):\n    return {"Version": '
                                              '"2012-10-17", "Statement": [{"Effect": "Allow", "Action": '
                                              '"s3:*", "Resource": "*"}]}\n'),
        "always_equal": _with(sol, ex1_answer="class Yes(dict):\n    def __eq__(self, other):\n        return True\n"
                                              "def instance_availability(types, regions):\n    return Yes()\n"),
        "deleted_test": deleted,
        "crash": _with(sol, ex3_answer="import os\nos._exit(1)\n"),
        "edited_test": _with(_with(sol, ex6_answer=stub), ex6_tests="pass  # edited by the learner\n"),
    }


def _write_class(folder: Path, notebooks: dict, count: int, nested: bool) -> dict[str, str]:
    """``count`` students cycling through the kinds; returns {student: kind}."""
    students = {}
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        student = f"s{i:02d}-{kind.replace('_', '-')}"
        target = folder / student / (LAB if nested else "") / f"{LAB}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(notebooks[kind], indent=1))
        students[student] = kind
    return students


def _nbgrader_course(work: Path) -> Path:
    course = work / "nbgrader-course"
    shutil.copytree(ROOT / "solutions" / LAB, course / "source" / LAB)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.course_id = 'bench'\n"
        "c.ClearSolutions.code_stub = {'python': '# YOUR CODE HERE\\nraise NotImplementedError()'}\n"
        "c.ClearSolutions.text_stub = 'YOUR ANSWER HERE'\n")
    return course


def _cpu() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its waited-for children so far."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, children.ru_utime + children.ru_stime


def _env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "LABKIT_BACKEND": "offline", "MPLBACKEND": "Agg"}


def run_nbgrader(notebooks: dict, work: Path, count: int) -> tuple[float, dict[str, float], int]:
    """Seconds, totals by student, and how many autograde calls failed."""
    course = _nbgrader_course(work)
    students = _write_class(course / "submitted", notebooks, count, nested=True)
    nbgrader = [str(Path(sys.executable).parent / "nbgrader")]
    run = lambda *args: subprocess.run([*nbgrader, *args], cwd=course, env=_env(),  # noqa: E731
                                       capture_output=True, text=True)
    started = time.perf_counter()
    made = run("generate_assignment", LAB, "--create", "--force")
    if made.returncode:
        raise RuntimeError(f"nbgrader generate_assignment failed:\n{made.stderr[-2000:]}")
    failed = sum(bool(run("autograde", LAB, "--student", s).returncode) for s in students)
    exported = run("export")
    seconds = time.perf_counter() - started
    if exported.returncode:
        raise RuntimeError(f"nbgrader export failed:\n{exported.stderr[-2000:]}")
    totals = {s: 0.0 for s in students}
    for row in csv.DictReader((course / "grades.csv").open()):
        totals[row["student_id"]] = float(row["score"] or 0)
    return seconds, totals, failed


def run_labkit(notebooks: dict, work: Path, count: int) -> tuple[float, dict[str, float], dict, int]:
    from labkit.grading import grade

    folder = work / "labkit-submissions"
    _write_class(folder, notebooks, count, nested=False)
    workers = os.cpu_count() or 1
    started = time.perf_counter()
    run = grade(LAB, folder, work / "labkit-out", course_root=ROOT, workers=workers)
    seconds = time.perf_counter() - started
    return seconds, {r.student: r.total for r in run.results}, run.isolation, workers


def run_outputs(solution: Path, work: Path) -> tuple[float, float]:
    """Seconds to grade the solution, and the solution with a cell of 10,000 small outputs
    (``display(i)``), in one run with one worker (a first submission absorbs the start-up): the
    grader's bookkeeping must stay linear in the number of outputs."""
    from labkit.grading import grade

    sol = nbformat.read(solution, as_version=4)
    noisy = copy.deepcopy(sol)
    noisy.cells.insert(2, nbformat.v4.new_code_cell("from IPython.display import display\n"
                                                    "for i in range(10_000):\n    display(i)"))
    folder = work / "outputs"
    for name, nb in (("a-warm-up", sol), ("b-outputs", noisy), ("c-normal", sol)):
        (folder / name).mkdir(parents=True)
        nbformat.write(nb, folder / name / f"{LAB}.ipynb")
    seconds = {r.student: r.seconds for r in grade(LAB, folder, work / "outputs-out", course_root=ROOT,
                                                   workers=1).results}
    return seconds["c-normal"], seconds["b-outputs"]


def main(count: int = 40) -> str:
    count = int(os.environ.get("LABKIT_BENCH_GRADING_COUNT", count))
    notebooks = submissions(ROOT / "solutions" / LAB / f"{LAB}.ipynb", ROOT / "labs" / LAB / f"{LAB}.ipynb")
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        work = Path(tmp)
        load_before, cpu_before = os.getloadavg(), _cpu()
        nb_seconds, nb_totals, nb_failed = run_nbgrader(notebooks, work, count)
        load_between, cpu_between = os.getloadavg(), _cpu()
        lk_seconds, lk_totals, isolation, workers = run_labkit(notebooks, work, count)
        load_after, cpu_after = os.getloadavg(), _cpu()
        normal_s, outputs_s = run_outputs(ROOT / "solutions" / LAB / f"{LAB}.ipynb", work)
    nb_cpu = sum(cpu_between) - sum(cpu_before)
    lk_cpu = sum(cpu_after) - sum(cpu_between)
    kinds = {s: s.split("-", 1)[1].replace("-", "_") for s in lk_totals}
    differ = sorted({kinds[s] for s in lk_totals if nb_totals.get(s) != lk_totals[s]})
    first = {k: next(s for s in sorted(kinds) if kinds[s] == k) for k in KINDS if k in kinds.values()}
    by_kind = ", ".join(f"{k} {lk_totals[s]:g} ({nb_totals.get(s, 0):g})" for k, s in first.items())
    per_min = lambda seconds: 60 * count / seconds  # noqa: E731
    warm = str(isolation.get("warm", "off"))
    isolated = (f"namespaces: {isolation.get('namespaces') or 'none'}, "
                f"{'a uid per submission' if isolation.get('uid') else 'the grader uid'}, "
                f"network: {isolation.get('network', 'shared')}, warm kernels: {warm.split(':')[0]}")
    lines = [
        "## Grading a class",
        "",
        f"{count} mixed submissions of lab {LAB} ({', '.join(KINDS)}), graded by both on the same machine in "
        "the same run, nbgrader first. CPU seconds (user + system, every process included) do not depend on "
        "what else the machine is doing; wall seconds do.",
        "",
        "| grader | wall seconds | submissions per minute | CPU seconds per submission | speed-up (wall) | target |",
        "|---|---|---|---|---|---|",
        f"| `nbgrader autograde` CLI per student (generate once, autograde {count}x, export; no isolation) | "
        f"{nb_seconds:.1f} | {per_min(nb_seconds):.1f} | {nb_cpu / count:.2f} | 1x | |",
        f"| `labkit grade`, {workers} workers ({isolated}; feedback pages + CSV) | {lk_seconds:.1f} | "
        f"{per_min(lk_seconds):.1f} | {lk_cpu / count:.2f} | {nb_seconds / lk_seconds:.1f}x | >= 4x |",
        "",
        "| one submission of the solution, graded alone | seconds | ratio | target |",
        "|---|---|---|---|",
        f"| as handed out | {normal_s:.1f} | 1x | |",
        f"| with a cell of 10,000 small outputs (`display(i)`) | {outputs_s:.1f} | {outputs_s / normal_s:.1f}x | < 4x |",
        "",
        f"Totals by kind, labkit (nbgrader): {by_kind}. Kinds where the totals differ: "
        f"{', '.join(differ) or 'none'} (nbgrader loses the whole crashed submission and does not restore a "
        f"deleted test cell); nbgrader autograde calls that failed: {nb_failed}. Warm kernels: {warm}.",
        f"Load average (1 min) before / between / after: {load_before[0]:.2f} / {load_between[0]:.2f} / "
        f"{load_after[0]:.2f} (other work shares this machine).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
