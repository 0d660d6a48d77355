"""Grade a folder of submissions: isolate, execute, restore tests, score, feedback, export.

:func:`grade` prepares the lab once (private nbgrader course and gradebook), then grades
each submission in a thread of its own that drives one worker process
(:mod:`labkit.grading.execute`) and its sandboxed kernel (:mod:`labkit.grading.sandbox`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .assignment import Assignment, prepare_assignment
from .execute import Job
from .export import copy_gradebook, write_grades_csv, write_reports
from .feedback import write_feedback
from .restore import restore
from .sandbox import Policy, kill_marked, pick_uid
from .score import TestResult, explain, save_grades
from .submissions import Submission, find_submissions

_KEEP_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "VIRTUAL_ENV", "LABKIT_DATA")


@dataclass
class Limits:
    """Per-submission limits (seconds, MiB)."""

    cell_timeout: float = 60.0
    notebook_timeout: float = 600.0
    memory_mb: int = 4096
    file_mb: int = 256
    output_bytes: int = 1_000_000
    nproc: int = 512


@dataclass
class SubmissionResult:
    """One student's outcome: scores per test, reasons, and what the grader did."""

    student: str
    total: float
    max_score: float
    tests: list[TestResult] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0
    feedback: str = ""
    isolation: dict = field(default_factory=dict)

    def learner_reasons(self) -> list[str]:
        return list(self.reasons)


@dataclass
class GradeRun:
    """Everything one ``grade`` call produced."""

    lab: str
    out: Path
    results: list[SubmissionResult]
    grades_csv: Path
    report: Path
    isolation: dict

    def by_student(self) -> dict[str, SubmissionResult]:
        return {r.student: r for r in self.results}


def kernel_environment(scratch: str) -> dict[str, str]:
    """The kernel's whole environment: offline backend, no credentials, HOME in scratch."""
    env = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/bin:/bin")
    env.update({"HOME": scratch, "USER": "learner", "LABKIT_BACKEND": "offline", "MPLBACKEND": "Agg",
                "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "AWS_EC2_METADATA_DISABLED": "true",
                "JUPYTER_PLATFORM_DIRS": "1", "IPYTHONDIR": f"{scratch}/.ipython",
                "MPLCONFIGDIR": f"{scratch}/.matplotlib", "TMPDIR": "/tmp"})
    return env


def _interpreter_paths() -> list[str]:
    """What the kernel must be able to read: the Python installation, this package, the course data."""
    import labkit

    paths = {os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix),
             os.path.realpath(Path(labkit.__file__).parent), os.path.realpath(labkit.data_path())}
    return sorted(paths)


class Grader:
    """Grades submissions of one prepared assignment; thread-safe ``grade_one``."""

    def __init__(self, assignment: Assignment, run_dir: Path, out: Path, submissions_dir: Path,
                 limits: Limits, namespaces: bool = True):
        self.assignment, self.run_dir, self.out = assignment, run_dir, out
        self.submissions_dir, self.limits, self.namespaces = submissions_dir, limits, namespaces
        self._slots = iter(range(10**6))
        self._slot_lock = threading.Lock()

    def _hide(self) -> list[str]:
        root = self.assignment.course_root
        paths = [root / "solutions", root / "autograder", self.assignment.source_dir.parent,
                 self.submissions_dir, self.out, self.assignment.private_course, self.run_dir / "private"]
        return sorted({str(Path(p).resolve()) for p in paths})

    def _stage(self, submission: Submission, slot: int) -> tuple[Path, Path, Policy]:
        """Scratch copy: released files + the learner's own notebook; private folder for the rest."""
        exposed = self.run_dir / "jobs" / str(slot)
        private = self.run_dir / "private" / str(slot)
        scratch, kernel = exposed / "work", exposed / "kernel"
        for folder in (scratch, kernel):
            folder.mkdir(parents=True)
        private.mkdir(parents=True, mode=0o700)
        os.chmod(exposed, 0o711)
        for path in self.assignment.released_files():
            target = scratch / path.relative_to(self.assignment.release_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        shutil.copyfile(submission.path, scratch / f"{self.assignment.notebook_name}.ipynb")
        for folder in (scratch, kernel):
            os.chmod(folder, 0o700)
        uid = pick_uid(slot)
        policy = Policy(scratch=str(scratch), kernel_dir=str(kernel), token=uuid.uuid4().hex, uid=uid,
                        hide=self._hide(), memory_mb=self.limits.memory_mb,
                        cpu_seconds=int(self.limits.notebook_timeout) + 60, file_mb=self.limits.file_mb,
                        nproc=self.limits.nproc, namespaces=self.namespaces,
                        status_path=str(private / "status.json"), env=kernel_environment(str(scratch)),
                        reach=_interpreter_paths())
        policy.save(private / "policy.json")
        return exposed, private, policy

    def grade_one(self, submission: Submission) -> SubmissionResult:
        started = time.monotonic()
        lab = self.assignment
        reasons: list[str] = []
        executed = None
        isolation: dict = {}
        events: dict = {}
        if submission.path is None:
            reasons.append(submission.problem)
        else:
            restored = restore(submission.path, lab, submission.student)
            reasons.extend(restored.flags)
            if restored.notebook is not None:
                with self._slot_lock:
                    slot = next(self._slots)
                exposed, private, policy = self._stage(submission, slot)
                try:
                    executed, events, isolation = self._execute(restored.notebook, private, policy)
                finally:
                    kill_marked(policy.token, policy.uid)
                    shutil.rmtree(exposed, ignore_errors=True)
                    shutil.rmtree(private, ignore_errors=True)
                reasons.extend(self._event_reasons(executed, events))
        scores = save_grades(executed, lab, submission.student)
        cells = {}
        if executed is not None:
            for cell in executed.cells:
                gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                if gid:
                    cells.setdefault(gid, cell)
        tests = [explain(t, cells.get(t.grade_id), scores.get(t.grade_id)) for t in lab.tests]
        result = SubmissionResult(submission.student, sum(t.points for t in tests), lab.max_score, tests,
                                  reasons, round(time.monotonic() - started, 2), isolation=isolation)
        result.feedback = str(write_feedback(result, lab, self.out))
        if executed is not None:  # instructor-only copy (hidden tests included), beside the report
            path = self.out / "executed" / submission.student / f"{lab.notebook_name}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(executed, path)
        return result

    def _execute(self, nb, private: Path, policy: Policy):
        nbformat.write(nb, private / "notebook.ipynb")
        job = Job(notebook=str(private / "notebook.ipynb"), executed=str(private / "executed.ipynb"),
                  events=str(private / "events.json"), policy=str(private / "policy.json"),
                  cell_timeout=self.limits.cell_timeout, notebook_timeout=self.limits.notebook_timeout,
                  output_limit=self.limits.output_bytes)
        (private / "job.json").write_text(json.dumps(job.__dict__))
        budget = self.limits.notebook_timeout + 120
        proc = subprocess.Popen([sys.executable, "-m", "labkit.grading.execute", str(private / "job.json")],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            log, _ = proc.communicate(timeout=budget)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            log, _ = proc.communicate()
        isolation = json.loads((private / "status.json").read_text()) if (private / "status.json").exists() else {}
        executed_path, events_path = private / "executed.ipynb", private / "events.json"
        if not executed_path.exists():
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs = [nbformat.v4.new_output("error", ename="NotRun", evalue="the grader's worker "
                                                           "failed", traceback=[])]
            tail = log.decode(errors="replace")[-2000:]
            return nb, {"worker_error": f"the grading worker stopped (exit {proc.returncode}): {tail}"}, isolation
        events = json.loads(events_path.read_text()) if events_path.exists() else {}
        return nbformat.read(executed_path, as_version=4), events, isolation

    def _event_reasons(self, nb, events: dict) -> list[str]:
        reasons = []
        if events.get("worker_error"):
            reasons.append(events["worker_error"])
        if events.get("kernel_start_error"):
            reasons.append(f"the kernel could not start: {events['kernel_start_error']}")
        def where(index: int) -> str:
            cell = nb.cells[index] if nb is not None and index < len(nb.cells) else {}
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            return f"cell {index}" + (f" ({gid})" if gid else "")
        for event in events.get("events", []):
            outcome, detail = event["outcome"], event.get("detail", "")
            if outcome in ("timeout", "kernel-died"):
                reasons.append(f"{where(event['index'])}: {detail}; later cells ran in a fresh kernel "
                               "after replaying the earlier ones")
            elif outcome == "replay-failed":
                reasons.append(f"{where(event['index'])}: failed when replayed in a fresh kernel")
            elif "output cut" in detail:
                reasons.append(f"{where(event['index'])}: output cut at the output limit")
        not_run = [e["index"] for e in events.get("events", []) if e["outcome"] == "not-run"]
        if not_run:
            reasons.append(f"{len(not_run)} cell(s) not run: {events['events'][-1].get('detail', '')}")
        if events.get("leftovers_killed"):
            reasons.append(f"{events['leftovers_killed']} process(es) left running by the submission were killed")
        return reasons


def grade(lab: str, submissions: str | Path, out: str | Path | None = None, *,
          course_root: str | Path | None = None, workers: int | None = None,
          limits: Limits | None = None, namespaces: bool = True, keep_work: bool = False) -> GradeRun:
    """Grade every submission of ``lab`` in ``submissions``; write grades.csv, feedback, reports.

    ``submissions`` holds ``<student>/<lab>.ipynb`` (or ``<student>/<lab>/<lab>.ipynb``).
    ``out`` defaults to ``./graded/<lab>``. ``workers`` defaults to the number of cores.
    """
    limits = limits or Limits()
    submissions_dir = Path(submissions).resolve()
    found = find_submissions(submissions_dir, lab)
    out_dir = Path(out or Path("graded") / lab).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="labkit-grade-"))
    os.chmod(run_dir, 0o711)
    (run_dir / "jobs").mkdir(mode=0o711)
    (run_dir / "private").mkdir(mode=0o700)
    try:
        assignment = prepare_assignment(lab, run_dir, Path(course_root) if course_root else None)
        grader = Grader(assignment, run_dir, out_dir, submissions_dir, limits, namespaces)
        with ThreadPoolExecutor(max_workers=max(1, workers or os.cpu_count() or 1)) as pool:
            results = list(pool.map(grader.grade_one, found))
        isolation = _summarise_isolation(results)
        grades_csv = write_grades_csv(results, assignment, out_dir)
        report = write_reports(results, assignment, out_dir, isolation)
        copy_gradebook(assignment, out_dir)
    finally:
        if not keep_work:
            shutil.rmtree(run_dir, ignore_errors=True)
    return GradeRun(lab, out_dir, results, grades_csv, report, isolation)


def _summarise_isolation(results: list[SubmissionResult]) -> dict:
    seen = [r.isolation for r in results if r.isolation]
    return seen[0] if seen else {}
