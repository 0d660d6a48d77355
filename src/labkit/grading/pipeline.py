"""Grade a folder of submissions: intake, restore, isolate, execute, score, feedback, export.

:func:`grade` prepares the lab once (private nbgrader course and gradebook), takes a private
copy of every submission, then grades each in one of ``workers`` threads (default: the number
of cores), each driving a long-lived worker process (:mod:`labkit.grading.execute`) and, per
submission, a sandboxed kernel (:mod:`labkit.grading.sandbox`) forked from the run's warm
process (:mod:`labkit.grading.warm`), in a cgroup of its own (:mod:`labkit.grading.fairshare`).

What the grader does as root after learner code ran never goes through a path the learner
could have written: results come back over the kernel's sockets and through files in the
grader's private folder; the scratch folders are removed with ``rmtree`` (which follows no
link) or by unmounting their tmpfs.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import stat
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
from .execute import Job, imported_modules
from .export import copy_gradebook, write_formgrader_config, write_grades_csv, write_reports
from .fairshare import Tree, create_tree
from .feedback import write_feedback
from .restore import plan, restore
from .sandbox import Policy, UidLease, first_closed, kill_marked, probe_namespaces
from .score import TestResult, explain, save_grades
from .submissions import MAX_BYTES, Submission, find_submissions, safe_name
from .warm import WarmProcess, lab_services, warm_modules

_KEEP_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "VIRTUAL_ENV", "LABKIT_DATA")
# What the kernel sees of the machine besides the Python installation and the course data.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/sys")
# World-writable folders a kernel without namespaces shares with the machine.
SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
ROUTE_TABLE = 27755  # the uid routing rule's table (no namespaces, root): only unreachable routes
METADATA_ADDRESSES = ("169.254.169.254", "fd00:ec2::254")


class GradingRefused(RuntimeError):
    """The grader will not run learner code here as configured; the message says why and what to do."""


@dataclass
class Limits:
    """Per-submission limits (seconds, MiB)."""

    # Wall-clock seconds. A lab's training and endpoint cells run real jobs: on a busy machine a
    # correct cell of lab 02 takes well over a minute, so the defaults leave room for that; an
    # endless loop still stops at the cell limit and the notebook limit bounds the total.
    cell_timeout: float = 300.0
    notebook_timeout: float = 1200.0
    memory_mb: int = 4096
    file_mb: int = 256
    output_bytes: int = 1_000_000
    nproc: int = 512
    disk_mb: int = 1024        # the scratch and kernel folders together
    tmp_mb: int = 512          # /tmp, /var/tmp, /dev/shm and /run/lock together (namespaces)
    submission_mb: int = MAX_BYTES // (1024 * 1024)


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
    review: list[str] = field(default_factory=list)  # why an instructor should look at it
    sha256: str = ""

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


def _python_paths(run_dir: Path) -> list[str]:
    """The Python installation as the kernel's interpreter sees it: prefixes and its ``sys.path``."""
    import labkit

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable),
             os.path.dirname(os.path.realpath(sys.executable)), str(Path(labkit.__file__).parent.parent),
             str(labkit.data_path())}
    empty = run_dir / "private" / "probe"
    empty.mkdir(mode=0o700, exist_ok=True)
    probe = subprocess.run([sys.executable, "-c", "import sys, json; print(json.dumps(sys.path))"],
                           cwd=empty, env=kernel_environment(str(empty)), capture_output=True, text=True, timeout=60)
    with contextlib.suppress(ValueError):
        paths |= {p for p in json.loads(probe.stdout) if p and p not in (".", str(empty))}
    return sorted(p for p in paths if os.path.exists(p))


def install_roots() -> list[str]:
    """Folders whose code counts as installed (never written by learners): the Python installation,
    this package, and package folders put on the path another way (a processing job runs the
    installation's ``python3`` with the course's site-packages on ``PYTHONPATH``)."""
    import site

    import labkit

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(labkit.__file__).parent)}
    with contextlib.suppress(AttributeError):
        roots |= set(site.getsitepackages())
    roots |= {p for p in sys.path if p and Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()}
    return sorted({os.path.realpath(r) for r in roots})


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


@dataclass
class Walls:
    """What this run can enforce, found once before any submission runs."""

    namespaces: bool
    namespace_error: str
    own_uid: bool
    cgroups: Tree | None
    cgroup_error: str
    tmpfs: bool
    network_rule: str  # "" when no uid routing rule is used; else what it does or why not
    reach: list[str]
    exposed: list[str] = field(default_factory=list)  # private folders other users can read (no namespaces)

    def report(self) -> dict:
        return {"namespaces_probe": self.namespace_error or "ok", "own_uid": self.own_uid,
                "cgroups": "per submission: cpu share and pids.max" if self.cgroups else f"none ({self.cgroup_error})",
                "disk_quota": "size-limited tmpfs per submission" if self.tmpfs else
                              "watched (the kernel is stopped past the quota)",
                **({"metadata_addresses": self.network_rule} if self.network_rule else {}),
                **({"readable_by_kernels": self.exposed} if self.exposed else {})}


def _libc():
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _mount_quota(folder: Path, size_mb: int) -> bool:
    """A tmpfs of ``size_mb`` on ``folder`` (root on Linux): the submission's disk quota."""
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return False
    libc = _libc()
    flags = 2 | 4  # nosuid, nodev
    return libc.mount(b"tmpfs", str(folder).encode(), b"tmpfs", flags, f"size={size_mb}m,mode=0711".encode()) == 0


def _unmount(folder: Path) -> None:
    _libc().umount2(str(folder).encode(), 2)  # MNT_DETACH


def _ip(*args: str) -> str:
    """Run ``ip``; "" on success, else why not."""
    tool = shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip") if os.path.exists(p)), None)
    if tool is None:
        return "the ip command is not installed"
    done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=10)
    return "" if done.returncode == 0 else (done.stderr.strip() or f"ip exited {done.returncode}")


def _block_network(uid: int) -> str:
    """Without namespaces, as root: a routing rule for the kernel's uid whose table has only
    unreachable routes, so it reaches loopback and this machine's own addresses but no other host,
    the link-local metadata services (169.254.169.254, fd00:ec2::254) included."""
    for family in ("-4", "-6"):
        _ip(family, "route", "replace", "unreachable", "default", "table", str(ROUTE_TABLE))
        problem = _ip(family, "rule", "add", "uidrange", f"{uid}-{uid}", "lookup", str(ROUTE_TABLE),
                      "priority", str(ROUTE_TABLE))
        if problem and family == "-4":
            return problem
    return ""


def _unblock_network(uid: int) -> None:
    for family in ("-4", "-6"):
        _ip(family, "rule", "del", "uidrange", f"{uid}-{uid}", "lookup", str(ROUTE_TABLE), "priority",
            str(ROUTE_TABLE))


def _remove_files_of(uid: int) -> int:
    """Without namespaces: delete what the kernel's uid left in the shared world-writable folders
    (walked without following links; the uid's processes are all dead by then)."""
    removed = 0
    for top in SHARED_TMP:
        try:
            entries = list(os.scandir(top))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
                if st.st_uid != uid:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed += 1
            except OSError:
                continue
    return removed


class Grader:
    """Grades submissions of one prepared assignment; thread-safe ``grade_one``."""

    def __init__(self, assignment: Assignment, run_dir: Path, out: Path, limits: Limits, walls: Walls,
                 workers: Workers | None = None, warm: WarmProcess | None = None):
        self.assignment, self.run_dir, self.out = assignment, run_dir, out
        self.limits, self.walls = limits, walls
        self.workers = workers or Workers(run_dir / "private")
        self.warm = warm
        self._slots = iter(range(10**6))
        self._slot_lock = threading.Lock()
        visible = [c.source for c in assignment.release_notebook.cells if c.cell_type == "code"
                   and assignment.test(c.metadata.get("nbgrader", {}).get("grade_id", "")) is not None]
        used = imported_modules(visible)
        self.agent = {"roots": install_roots(), "preload": ["labkit", *used], "modules": used,
                      "module_prefixes": ["labkit"]}

    def _stage(self, submission: Submission, data: bytes, slot: int, lease: UidLease):
        """The submission's folders: ``jobs/<slot>`` (a tmpfs quota where root) holding its scratch
        copy and, later, one folder per kernel start; ``private/<slot>`` for the grader alone."""
        exposed = self.run_dir / "jobs" / str(slot)
        private = self.run_dir / "private" / str(slot)
        exposed.mkdir(mode=0o711)
        mounted = self.walls.tmpfs and _mount_quota(exposed, self.limits.disk_mb)
        os.chmod(exposed, 0o711)
        private.mkdir(mode=0o700)
        (private / "root").mkdir(mode=0o700)
        scratch = exposed / "work"
        scratch.mkdir(mode=0o700)
        for path in self.assignment.released_files():
            target = scratch / path.relative_to(self.assignment.release_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        (scratch / f"{self.assignment.notebook_name}.ipynb").write_bytes(data)
        uid = lease.uid if self.walls.own_uid else None
        if uid is not None:  # only the grader's own files so far: nothing of the learner to follow
            for path in [scratch, *scratch.rglob("*")]:
                os.lchown(path, uid, uid)
        group = None
        if self.walls.cgroups is not None:
            with contextlib.suppress(OSError):
                group = self.walls.cgroups.group(f"slot-{slot}", self.limits.nproc)
        policy = Policy(scratch=str(scratch), kernel_dir=str(exposed / "kernel-0"), token=uuid.uuid4().hex, uid=uid,
                        memory_mb=self.limits.memory_mb, cpu_seconds=int(self.limits.notebook_timeout) + 60,
                        file_mb=self.limits.file_mb,
                        nproc=self.limits.nproc if group is not None else min(self.limits.nproc, 256),
                        namespaces=self.walls.namespaces, tmp_mb=self.limits.tmp_mb, read_only=self.walls.reach,
                        read_write=[str(exposed)], root_dir=str(private / "root"),
                        cgroup=group.procs_files() if group is not None else [],
                        nice=0 if group is not None else 10, status_path=str(private / "status.json"),
                        leftovers_path=str(private / "leftovers"), env=kernel_environment(str(scratch)),
                        warm=self.warm.wait() if self.warm else "")
        policy.save(private / "policy.json")
        return exposed, private, policy, group, mounted

    def grade_one(self, submission: Submission) -> SubmissionResult:
        started = time.monotonic()
        lab = self.assignment
        reasons: list[str] = list(submission.notes)
        executed, events, isolation = None, {}, {}
        data = None
        handed_in_sources: list[str] = []
        if submission.problem:
            reasons.insert(0, submission.problem)
        else:
            data = submission.read_verified()
            if data is None:
                reasons.append("the grader's private copy of the notebook changed after it was taken: not graded "
                               "(another submission may have tried to alter it)")
        if data is not None:  # the file as handed in, in nbgrader's submitted/ layout (formgrader counts these)
            handed_in = self.out / "submitted" / safe_name(submission.student) / lab.lab / f"{lab.notebook_name}.ipynb"
            handed_in.parent.mkdir(parents=True, exist_ok=True)
            handed_in.write_bytes(data)
            restored = restore(data, lab, submission.student)
            reasons.extend(restored.flags)
            handed_in_sources = restored.handed_in
            if restored.notebook is not None:
                executed, events, isolation = self._run(submission, data, restored.notebook)
                reasons.extend(self._event_reasons(executed, events))
        scores = save_grades(executed, lab, submission.student)
        cells: dict[str, Any] = {}
        if executed is not None:
            for cell in executed.cells:
                gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                if gid:
                    cells.setdefault(gid, cell)
        own = lab.secrets.own_windows(handed_in_sources)
        tests = [explain(t, cells.get(t.grade_id), scores.get(t.grade_id), lab, own) for t in lab.tests]
        review = [f"tampering before {t['grade_id'] or 'a test'}: {'; '.join(t['reasons'])}"
                  for t in events.get("tampered", [])] + list(events.get("review", []))
        result = SubmissionResult(submission.student, sum(t.points for t in tests), lab.max_score, tests,
                                  reasons, round(time.monotonic() - started, 2), isolation=isolation,
                                  review=review, sha256=submission.sha256)
        result.feedback = str(write_feedback(result, lab, self.out))
        if executed is not None:  # instructor-only copy (hidden tests included), nbgrader's layout
            path = self.out / "autograded" / safe_name(submission.student) / lab.lab / f"{lab.notebook_name}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(executed, path)
        return result

    def _run(self, submission: Submission, data: bytes, nb):
        with self._slot_lock:
            slot = next(self._slots)
        lease = UidLease(slot)
        exposed = private = group = policy = None
        mounted, blocked = False, False
        try:
            exposed, private, policy, group, mounted = self._stage(submission, data, slot, lease)
            if policy.uid is not None and not self.walls.namespaces:
                problem = _block_network(policy.uid)
                blocked = not problem
                self.walls.network_rule = ("blocked for the kernels' uids (a routing rule with only unreachable "
                                           "routes: loopback and this machine's own addresses stay reachable)"
                                           if blocked else f"not blocked: {problem}")
            executed, events, isolation = self._execute(nb, private, policy, group, exposed, mounted)
            if policy.uid is not None and not self.walls.namespaces:
                left = _remove_files_of(policy.uid)
                if left:
                    events["shared_files_removed"] = left
            return executed, events, isolation
        finally:
            if policy is not None:
                kill_marked(policy.token, policy.uid)
            if group is not None:
                group.remove()
            if blocked and policy is not None:
                _unblock_network(policy.uid)
            if mounted and exposed is not None:
                _unmount(exposed)
            for folder in (exposed, private):
                if folder is not None:
                    shutil.rmtree(folder, ignore_errors=True)
            lease.release()

    def _execute(self, nb, private: Path, policy: Policy, group, exposed: Path, mounted: bool):
        nbformat.write(nb, private / "notebook.ipynb")
        job = Job(notebook=str(private / "notebook.ipynb"), executed=str(private / "executed.ipynb"),
                  events=str(private / "events.json"), policy=str(private / "policy.json"),
                  cell_timeout=self.limits.cell_timeout, notebook_timeout=self.limits.notebook_timeout,
                  output_limit=self.limits.output_bytes, plan=[p.to_json() for p in plan(nb, self.assignment)],
                  agent=self.agent, kernel_root=str(exposed),
                  cgroup=[str(f) for f in group.folders] if group is not None else [],
                  cgroup_version=group.version if group is not None else 0,
                  disk_mb=0 if mounted else self.limits.disk_mb)
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
        if events.get("checks"):
            isolation["agent_checks"] = f"{events['checks']} checks, {events.get('check_seconds', 0):.2f} s"
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
            elif outcome == "replay-skipped":
                reasons.append(f"{where(event['index'])}: not replayed: {detail}")
            elif "output cut" in detail:
                reasons.append(f"{where(event['index'])}: output cut at the output limit")
        not_run = [e["index"] for e in events.get("events", []) if e["outcome"] == "not-run"]
        if not_run:
            reasons.append(f"{len(not_run)} cell(s) not run: {events['events'][-1].get('detail', '')}")
        if events.get("leftovers_killed"):
            names = sorted(set(events.get("leftover_names", [])))
            reasons.append(f"{events['leftovers_killed']} process(es) left running by the submission were killed"
                           + (f" ({', '.join(names[:5])})" if names else ""))
        if events.get("shared_files_removed"):
            reasons.append(f"{events['shared_files_removed']} file(s) the submission left in shared temporary "
                           "folders were deleted")
        for tamper in events.get("tampered", []):
            where_ = f"before test {tamper['grade_id']}" if tamper.get("grade_id") else ""
            reasons.append(f"flagged for review: {'; '.join(tamper['reasons'])} ({where_}); that test and "
                           "every later one score 0")
        for note in events.get("review", []):
            reasons.append(f"flagged for review: {note}")
        return [self.assignment.secrets.learner_text(r, 1000) for r in reasons]


def _walls(namespaces: bool, allow_root: bool, run_dir: Path, watched: list[Path], fair_share: bool = True) -> Walls:
    root = os.geteuid() == 0 and sys.platform.startswith("linux")
    if not namespaces:
        ns_error = "turned off (--no-namespaces)"
    else:
        ns_error = probe_namespaces() if sys.platform.startswith("linux") else "not Linux"
    use_ns = namespaces and not ns_error
    python = _python_paths(run_dir)
    reach = sorted({p for p in (*SYSTEM_PATHS, *python) if os.path.exists(p)})
    closed = sorted({c for p in python if (c := first_closed(p))})
    own_uid = root and (use_ns or not closed)
    if root and not own_uid and not allow_root:
        raise GradingRefused(
            "labkit grade is running as root without namespaces, and the Python installation is under "
            f"{', '.join(closed)}, which other users cannot enter: learner code would run as root, able to change "
            "anything on this machine, other submissions included. Grade where namespaces work (root on plain "
            "Linux, or a container with --cap-add SYS_ADMIN), or install Python where other users can read it, "
            "or run as an ordinary user; pass --allow-root (allow_root=True) only for submissions you trust.")
    if not fair_share:
        cgroups, cgroup_error = None, "turned off (--no-cgroups)"
    else:
        cgroups, cgroup_error = create_tree() if root else (None, "not root")
    exposed = []
    if not use_ns:  # only file permissions keep a kernel out: say what it can read
        exposed = [str(p) for p in watched if p.exists() and first_closed(str(p / "x")) is None]
    return Walls(use_ns, ns_error, own_uid, cgroups, cgroup_error, root, "", reach, exposed)


def grade(lab: str, submissions: str | Path, out: str | Path | None = None, *,
          course_root: str | Path | None = None, workers: int | None = None,
          limits: Limits | None = None, namespaces: bool = True, warm: bool = True,
          keep_work: bool = False, allow_root: bool = False, fair_share: bool = True) -> GradeRun:
    """Grade every submission of ``lab`` in ``submissions``; write grades.csv, feedback, reports.

    ``submissions`` holds ``<student>/<lab>.ipynb`` (or ``<student>/<lab>/<lab>.ipynb``).
    ``out`` defaults to ``./graded/<lab>``. ``workers`` defaults to the number of cores.
    ``warm=False`` starts every kernel from scratch instead of forking it from the run's warm
    process (:mod:`labkit.grading.warm`); the walls around each kernel are the same.
    ``namespaces=False`` grades without Linux namespaces (as in SageMaker Studio); as root the
    grader then refuses to run learner code as root unless ``allow_root=True``.
    ``fair_share=False`` puts no submission in a cgroup of its own (a lower priority and a tighter
    process cap instead, as where cgroups cannot be made).
    """
    limits = limits or Limits()
    submissions_dir = Path(submissions).resolve()
    if not submissions_dir.is_dir():
        raise FileNotFoundError(f"Submissions folder {submissions_dir} does not exist: pass the folder that holds "
                                "one sub-folder per student (<folder>/<student>/<lab>.ipynb).")
    out_dir = Path(out or Path("graded") / lab).resolve()
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="labkit-grade-"))
    os.chmod(run_dir, 0o711)
    (run_dir / "jobs").mkdir(mode=0o711)
    (run_dir / "private").mkdir(mode=0o700)
    pool = Workers(run_dir / "private")
    warm_process = None
    walls = None
    try:
        from .assignment import find_course_root

        course = Path(course_root).resolve() if course_root else find_course_root()
        walls = _walls(namespaces, allow_root, run_dir, [course / "solutions", course / "autograder", course / ".git",
                                                         submissions_dir, out_dir], fair_share)
        found = find_submissions(submissions_dir, lab, run_dir / "private" / "intake",
                                 limits.submission_mb * 1024 * 1024)
        gradable = [s for s in found if not s.problem]
        count = max(1, min(workers or os.cpu_count() or 1, len(found) or 1))
        pool.prestart(count if gradable else 0)

        def start_warm(release_nb) -> WarmProcess:
            return WarmProcess(run_dir / "private" / "warm", warm_modules(release_nb),
                               kernel_environment(str(run_dir / "private" / "warm")),
                               services=lab_services(release_nb)).start()

        wants_warm = warm and bool(gradable) and sys.platform.startswith("linux")  # fork is Linux-safe
        # The course's learner version (labs/) is the release nbgrader is about to generate (the tests
        # keep it current): the warm process starts from it while the assignment is prepared.
        handed_out = course / "labs" / lab / f"{lab}.ipynb"
        if wants_warm and handed_out.is_file():
            with contextlib.suppress(Exception):  # unreadable: the warm process waits for the release
                warm_process = start_warm(nbformat.read(handed_out, as_version=4))
        assignment = prepare_assignment(lab, run_dir, course)
        if wants_warm and warm_process is None:
            warm_process = start_warm(assignment.release_notebook)
        grader = Grader(assignment, run_dir, out_dir, limits, walls, pool, warm_process)
        with ThreadPoolExecutor(max_workers=count) as threads:
            results = list(threads.map(grader.grade_one, found))
        for submission, result in zip(found, results, strict=True):
            if submission.changed_since_intake(submissions_dir):
                result.reasons.append("the handed-in file changed while the class was graded: this grade is for "
                                      "the copy taken before any submission ran")
        isolation = _summarise_isolation(results)
        isolation.update(walls.report())
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
        if walls is not None and walls.cgroups is not None:
            walls.cgroups.remove()
        if not keep_work:
            shutil.rmtree(run_dir, ignore_errors=True)
    return GradeRun(lab, out_dir, results, grades_csv, report, isolation, count)


def _summarise_isolation(results: list[SubmissionResult]) -> dict:
    seen = [r.isolation for r in results if r.isolation]
    return dict(seen[0]) if seen else {}

