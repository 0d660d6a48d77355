"""Grade a folder of submissions: isolate, execute, restore tests, score, feedback, export.

:func:`grade` prepares the lab once (private nbgrader course and gradebook), then grades
each submission in one of ``workers`` threads (default: the number of cores), each driving
a long-lived worker process (:mod:`labkit.grading.execute`) and, per submission, a sandboxed
kernel (:mod:`labkit.grading.sandbox`) forked from the run's warm process
(:mod:`labkit.grading.warm`).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
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
from typing import IO, Any

import nbformat

from .assignment import Assignment, prepare_assignment
from .execute import Job
from .export import copy_gradebook, write_formgrader_config, write_grades_csv, write_reports
from .feedback import write_feedback
from .restore import restore
from .sandbox import Policy, kill_marked, pick_uid
from .score import TestResult, explain, save_grades
from .submissions import Submission, find_submissions
from .warm import WarmProcess, warm_modules

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
    workers: int = 1

    def by_student(self) -> dict[str, SubmissionResult]:
        return {r.student: r for r in self.results}


def kernel_environment(scratch: str) -> dict[str, str]:
    """The kernel's whole environment: offline backend, no credentials, HOME in scratch."""
    env = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/bin:/bin")
    env.update({"HOME": scratch, "USER": "learner", "LABKIT_BACKEND": "offline", "LABKIT_OFFLINE_MODE": "embedded",
                "MPLBACKEND": "Agg",
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


@dataclass
class _Worker:
    """One execute worker: its process, the pipes it is driven through, and its log."""

    proc: subprocess.Popen[bytes]
    stdin: IO[bytes]
    stdout: IO[bytes]
    log_path: Path


class Workers:
    """Long-lived execute workers (``python -m labkit.grading.execute --serve``), one per grading
    thread at a time: a worker's imports are paid once per run, not once per submission. A
    worker that overruns a job's budget or dies is killed and replaced; only that job is lost."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._count = 0

    def _new(self) -> _Worker:
        with self._lock:
            self._count += 1
            log = open(self.log_dir / f"worker-{self._count}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "labkit.grading.execute", "--serve"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                start_new_session=True)
        log.close()
        assert proc.stdin is not None and proc.stdout is not None  # both are PIPE
        worker = _Worker(proc, proc.stdin, proc.stdout, Path(log.name))
        with self._lock:
            self._all.append(worker)
        return worker

    def prestart(self, count: int) -> None:
        """Start ``count`` workers now (their imports overlap with preparing the lab)."""
        started = [self._new() for _ in range(count)]
        with self._lock:
            self._idle.extend(started)

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.proc.poll() is None:
                    return worker
        return self._new()

    def _kill(self, worker: _Worker) -> None:
        with contextlib.suppress(OSError):
            os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()

    def run(self, job: Path, budget: float) -> str:
        """Run ``job``; "" when it finished, else why not (with the end of the worker's log)."""
        worker = self._take()
        try:
            worker.stdin.write(f"{job}\n".encode())
            worker.stdin.flush()
        except OSError:
            self._kill(worker)
            worker = self._new()
            worker.stdin.write(f"{job}\n".encode())
            worker.stdin.flush()
        deadline, line = time.monotonic() + budget, b""
        fd = worker.stdout.fileno()
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self._kill(worker)
                return f"the grading worker ran past its {budget:.0f} s budget and was stopped"
            chunk = os.read(fd, 4096)
            if not chunk:
                worker.proc.wait()
                tail = worker.log_path.read_bytes()[-2000:].decode(errors="replace")
                return f"the grading worker stopped (exit {worker.proc.returncode}): {tail}"
            line += chunk
        with self._lock:
            self._idle.append(worker)
        answer = line.decode(errors="replace").strip()
        return "" if answer.startswith("done ") else answer.split(": ", 1)[-1]

    def close(self) -> None:
        with self._lock:
            workers, self._all, self._idle = self._all, [], []
        for worker in workers:
            with contextlib.suppress(OSError):
                worker.stdin.close()
        for worker in workers:
            try:
                worker.proc.wait(10)
            except subprocess.TimeoutExpired:
                self._kill(worker)


class Grader:
    """Grades submissions of one prepared assignment; thread-safe ``grade_one``."""

    def __init__(self, assignment: Assignment, run_dir: Path, out: Path, submissions_dir: Path,
                 limits: Limits, namespaces: bool = True, workers: Workers | None = None,
                 warm: WarmProcess | None = None):
        self.assignment, self.run_dir, self.out = assignment, run_dir, out
        self.submissions_dir, self.limits, self.namespaces = submissions_dir, limits, namespaces
        self.workers = workers or Workers(run_dir / "private")
        self.warm = warm
        self._slots = iter(range(10**6))
        self._slot_lock = threading.Lock()

    def _hide(self) -> list[str]:
        root = self.assignment.course_root
        paths = [root / "solutions", root / "autograder", self.assignment.source_dir.parent,
                 self.submissions_dir, self.out, self.assignment.private_course, self.run_dir / "private"]
        return sorted({str(Path(p).resolve()) for p in paths})

    def _stage(self, notebook: Path, slot: int) -> tuple[Path, Path, Policy]:
        """Scratch copy: released files + the learner's ``notebook``; private folder for the rest."""
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
        shutil.copyfile(notebook, scratch / f"{self.assignment.notebook_name}.ipynb")
        for folder in (scratch, kernel):
            os.chmod(folder, 0o700)
        uid = pick_uid(slot)
        policy = Policy(scratch=str(scratch), kernel_dir=str(kernel), token=uuid.uuid4().hex, uid=uid,
                        hide=self._hide(), memory_mb=self.limits.memory_mb,
                        cpu_seconds=int(self.limits.notebook_timeout) + 60, file_mb=self.limits.file_mb,
                        nproc=self.limits.nproc, namespaces=self.namespaces,
                        status_path=str(private / "status.json"), env=kernel_environment(str(scratch)),
                        reach=_interpreter_paths(), warm=self.warm.wait() if self.warm else "")
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
        else:  # the file as handed in, in nbgrader's submitted/ layout (formgrader counts these)
            handed_in = self.out / "submitted" / submission.student / lab.lab / f"{lab.notebook_name}.ipynb"
            handed_in.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(submission.path, handed_in)
            restored = restore(submission.path, lab, submission.student)
            reasons.extend(restored.flags)
            if restored.notebook is not None:
                with self._slot_lock:
                    slot = next(self._slots)
                exposed, private, policy = self._stage(submission.path, slot)
                try:
                    executed, events, isolation = self._execute(restored.notebook, private, policy)
                finally:
                    kill_marked(policy.token, policy.uid)
                    shutil.rmtree(exposed, ignore_errors=True)
                    shutil.rmtree(private, ignore_errors=True)
                reasons.extend(self._event_reasons(executed, events))
        scores = save_grades(executed, lab, submission.student)
        cells: dict[str, Any] = {}
        if executed is not None:
            for cell in executed.cells:
                gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                if gid:
                    cells.setdefault(gid, cell)
        tests = [explain(t, cells.get(t.grade_id), scores.get(t.grade_id)) for t in lab.tests]
        result = SubmissionResult(submission.student, sum(t.points for t in tests), lab.max_score, tests,
                                  reasons, round(time.monotonic() - started, 2), isolation=isolation)
        result.feedback = str(write_feedback(result, lab, self.out))
        if executed is not None:  # instructor-only copy (hidden tests included), nbgrader's layout
            path = self.out / "autograded" / submission.student / lab.lab / f"{lab.notebook_name}.ipynb"
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
        problem = self.workers.run(private / "job.json", self.limits.notebook_timeout + 120)
        isolation = json.loads((private / "status.json").read_text()) if (private / "status.json").exists() else {}
        executed_path, events_path = private / "executed.ipynb", private / "events.json"
        if not executed_path.exists():
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs = [nbformat.v4.new_output("error", ename="NotRun", evalue="the grader's worker "
                                                           "failed", traceback=[])]
            return nb, {"worker_error": problem or "the grading worker wrote no result"}, isolation
        events = json.loads(events_path.read_text()) if events_path.exists() else {}
        if problem and not events.get("worker_error"):
            events["worker_error"] = problem
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
            if outcome in ("timeout", "kernel-died") and "notebook's time limit" in detail:
                reasons.append(f"{where(event['index'])}: {detail}")
            elif outcome in ("timeout", "kernel-died"):
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
          limits: Limits | None = None, namespaces: bool = True, warm: bool = True,
          keep_work: bool = False) -> GradeRun:
    """Grade every submission of ``lab`` in ``submissions``; write grades.csv, feedback, reports.

    ``submissions`` holds ``<student>/<lab>.ipynb`` (or ``<student>/<lab>/<lab>.ipynb``).
    ``out`` defaults to ``./graded/<lab>``. ``workers`` defaults to the number of cores.
    ``warm=False`` starts every kernel from scratch instead of forking it from the run's warm
    process (:mod:`labkit.grading.warm`); the walls around each kernel are the same.
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
    count = max(1, min(workers or os.cpu_count() or 1, len(found) or 1))
    pool = Workers(run_dir / "private")
    warm_process = None
    try:
        pool.prestart(count if any(s.path for s in found) else 0)
        assignment = prepare_assignment(lab, run_dir, Path(course_root) if course_root else None)
        if warm and any(s.path for s in found) and sys.platform.startswith("linux"):  # fork is Linux-safe
            warm_process = WarmProcess(run_dir / "private" / "warm", warm_modules(assignment.release_notebook),
                                       kernel_environment(str(run_dir / "private" / "warm"))).start()
        grader = Grader(assignment, run_dir, out_dir, submissions_dir, limits, namespaces, pool, warm_process)
        with ThreadPoolExecutor(max_workers=count) as threads:
            results = list(threads.map(grader.grade_one, found))
        isolation = _summarise_isolation(results)
        isolation.update(warm_process.status if warm_process else
                         {"warm": "off" if not warm or sys.platform.startswith("linux") else "off: Linux only"})
        isolation["workers"] = count
        grades_csv = write_grades_csv(results, assignment, out_dir)
        report = write_reports(results, assignment, out_dir, isolation)
        copy_gradebook(assignment, out_dir)
        write_formgrader_config(assignment, out_dir)
    finally:
        pool.close()
        if warm_process is not None:
            warm_process.stop()
        if not keep_work:
            shutil.rmtree(run_dir, ignore_errors=True)
    return GradeRun(lab, out_dir, results, grades_csv, report, isolation, count)


def _summarise_isolation(results: list[SubmissionResult]) -> dict:
    seen = [r.isolation for r in results if r.isolation]
    return dict(seen[0]) if seen else {}
