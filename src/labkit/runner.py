"""Execute lab notebooks with papermill and judge the result.

``labkit run`` executes every lab's solution on the offline backend and prints one line
per lab as it finishes (result, score, seconds, what it would have cost on AWS), then a
table. ``labkit check`` also executes each learner version, which must run to the end
without an error outside its answer and test cells, and score 0. A test passes by the one
rule that grading uses too (:func:`labkit.grading.score.cell_failure`).

Everything lands in ``build/executed/<lab>/`` (ignored by git): the executed notebook
(``<version>.ipynb``), the cells' output streams, the kernel's own log, and under
``<version>-logs/`` the full CloudWatch log of every job and endpoint the notebook ran
(:mod:`labkit.offline.runlog`) with ``failures.jsonl``; the summary prints the root cause
of each failed job, endpoint or pipeline of a lab that failed. ``labkit check --realworld DIR``
runs AWS's own public notebooks instead (:mod:`labkit.realworld`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .authoring import LABS, REPO, SOLUTIONS, lab_names
from .grading.score import cell_failure
from .offline import MODES, runlog

BUILD = REPO / "build" / "executed"
ERROR_MARKER = "papermill-error-cell-tag"
CELL_TIMEOUT_S = 900
# After a cell's reply, how long nbclient waits for the cell's last outputs (4 s by default, after
# which they are dropped with only a log line): on a loaded machine a print can arrive later.
IOPUB_TIMEOUT_S = 60
HEARTBEAT_S = 60.0


@dataclass
class CellError:
    cell_id: str
    kind: str  # "answer", "test", "other"
    ename: str
    evalue: str


@dataclass
class Execution:
    """The outcome of executing one notebook."""

    lab: str
    version: str  # "solution" or "learner"
    seconds: float
    score: float
    max_score: float
    errors: list[CellError] = field(default_factory=list)
    cost_usd: float | None = None
    output: str = ""
    crashed: str = ""  # kernel death or a failure before any cell ran
    failures: list[dict] = field(default_factory=list)  # jobs, endpoints, pipelines that failed
    logs: str = ""  # the folder with every job's and endpoint's log

    @property
    def errors_outside_exercises(self) -> list[CellError]:
        return [e for e in self.errors if e.kind == "other"]

    @property
    def ok(self) -> bool:
        """Solution: no error at all, full marks. Learner: clean run outside exercises, score 0."""
        if self.crashed:
            return False
        if self.version == "solution":
            return not self.errors and self.score == self.max_score
        return not self.errors_outside_exercises and self.score == 0

    def problems(self) -> str:
        if self.crashed:
            return self.crashed
        if self.version == "solution":
            errs = self.errors
        else:
            errs = self.errors_outside_exercises
            if self.score:
                errs = errs + [CellError("-", "test", "ScoreNotZero", f"learner version scored {self.score}")]
        return "; ".join(f"cell {e.cell_id}: {e.ename}: {e.evalue[:300]}" for e in errs)

    def root_causes(self) -> list[str]:
        """One entry per job, endpoint or pipeline that failed: what, and the root cause from its log."""
        return [f"{f.get('kind')} {f.get('name')}: {f.get('reason', '').strip()}" for f in self.failures]

    def line(self) -> str:
        """The console line printed when this execution finishes."""
        cost = "" if self.cost_usd is None else f"  ${self.cost_usd:,.4f}"
        return (f"{self.lab:<28} {self.version:<8} {'pass' if self.ok else 'FAIL':<4} "
                f"{self.score:>5g}/{self.max_score:<3g} {self.seconds:7.1f} s{cost}")


def merged_streams(outputs: list[dict]) -> list[dict]:
    """A cell's outputs as Jupyter shows them: consecutive stream outputs of one name are one text.

    A kernel sends a print in as many stream messages as its buffer was flushed (on a loaded
    machine one line can arrive in two), and the executed notebook keeps each message; read
    the text of the merged outputs, never of the messages one by one.
    """
    merged: list[dict] = []
    for out in outputs:
        if (out.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                and merged[-1].get("name") == out.get("name")):
            merged[-1] = {**merged[-1], "text": "".join(merged[-1].get("text", "")) + "".join(out.get("text", ""))}
        else:
            merged.append(out)
    return merged


def _cell_kind(cell: dict) -> str:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if meta.get("grade") and cell.get("cell_type") == "code":
        return "test"
    if meta.get("solution"):
        return "answer"
    return "other"


def judge(nb: dict, lab: str, version: str, seconds: float) -> Execution:
    """Score an executed notebook by the grader's rule (:func:`~labkit.grading.score.cell_failure`)."""
    score = max_score = 0.0
    errors = []
    for cell in nb["cells"]:
        if ERROR_MARKER in cell.get("metadata", {}).get("tags", []) or cell.get("cell_type") != "code":
            continue
        kind = _cell_kind(cell)
        if kind == "test":
            failure = cell_failure(cell)
        else:
            failure = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
        cell_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or cell.get("id", "?")
        if failure is not None:
            errors.append(CellError(cell_id, kind, failure.get("ename", ""), failure.get("evalue", "")))
        if kind == "test":
            points = float(cell["metadata"]["nbgrader"].get("points", 0))
            max_score += points
            if failure is None:
                score += points
    return Execution(lab, version, seconds, score, max_score, errors)


def _kernel_manager_class(log_path: Path) -> type:
    """Kernels on IPC sockets whose own output goes to ``log_path`` (nbclient starts and stops them).

    IPC sockets: no TCP ports to pick and race for when kernels start in parallel, and no
    "Kernel is running over TCP without encryption" warning. The kernel process's own stdout
    and stderr (its start-up log, anything written below Python) go to the log file, so
    the console shows only the runner's lines; cell outputs stay in the notebook.
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class QuietKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self) -> str:
            return "ipc"

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            log = open(log_path, "ab")  # noqa: SIM115 - the child keeps its own copy of the descriptor
            try:
                await super()._async_launch_kernel(kernel_cmd, **{**kw, "stdout": log, "stderr": log})
            finally:
                log.close()

    return QuietKernelManager


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """``os.environ`` updated with ``values`` for the block (the kernel started in it inherits them)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _quiet_logs(log_path: Path):
    """papermill's and nbclient's messages ("Interrupting kernel", ...) go to the lab's log, not the console."""
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(name) for name in ("papermill", "traitlets", "nbclient", "jupyter_client")]
    saved = [(lg.handlers[:], lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.handlers, lg.propagate = [handler], False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, (handlers, propagate) in zip(loggers, saved, strict=True):
            lg.handlers, lg.propagate = handlers, propagate
        handler.close()


def execute(lab: str, version: str, out_dir: Path | None = None, source_dir: Path | None = None, *,
            offline_mode: str = "embedded") -> Execution:
    """Execute ``solutions/<lab>`` or ``labs/<lab>`` (or ``source_dir/<lab>.ipynb``) offline and judge it.

    ``offline_mode="shared"`` runs it against the shared backend of ``$LABKIT_HOME`` (the learner's
    own, whose account persists) instead of a private, empty one (bench/rerun.py uses it)."""
    if offline_mode not in MODES:
        raise ValueError(f"offline_mode must be {' or '.join(map(repr, MODES))}, not {offline_mode!r}")
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source_dir = source_dir or (SOLUTIONS if version == "solution" else LABS) / lab
    out_dir = out_dir or BUILD / lab
    out_dir.mkdir(parents=True, exist_ok=True)
    # Labs write files (train.py, inference.py...): run in a scratch copy, never in the repo.
    work = out_dir / f"work-{version}"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(source_dir, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    notebook = work / f"{lab}.ipynb"
    output = out_dir / f"{version}.ipynb"
    report_dir = out_dir / f"{version}-reports"
    report_dir.mkdir(exist_ok=True)
    for old in report_dir.glob("*.json"):
        old.unlink()
    log_dir = out_dir / f"{version}-logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir()
    kernel_log = out_dir / f"{version}.kernel.log"
    kernel_log.write_bytes(b"")
    # The kernel inherits this environment. The offline backend is forced: a runner must never
    # reach a real account, and each notebook gets a private, empty backend in its kernel
    # (embedded), never the user's shared one unless the caller asks for it. The kernel draws
    # inline, so executed notebooks keep their figures.
    kernel_env = {"LABKIT_BACKEND": "offline", "LABKIT_OFFLINE_MODE": offline_mode, "LABKIT_REPORT_DIR": str(report_dir),
                  runlog.LOG_DIR_VARIABLE: str(log_dir), "LABKIT_LAB": lab, "PYTHONUNBUFFERED": "1",
                  "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    start = time.perf_counter()
    crashed = ""
    with open(out_dir / f"{version}.stdout.log", "w") as stdout, \
            open(out_dir / f"{version}.stderr.log", "w") as stderr, _quiet_logs(kernel_log), \
            _environment(kernel_env):
        try:
            papermill.execute_notebook(
                str(notebook), str(output), cwd=str(work), kernel_name="python3",
                progress_bar=False, stdout_file=stdout, stderr_file=stderr,
                execution_timeout=CELL_TIMEOUT_S, iopub_timeout=IOPUB_TIMEOUT_S, allow_errors=True,
                kernel_manager_class=_kernel_manager_class(kernel_log),
            )
        except PapermillExecutionError:
            pass  # judged from the saved notebook below
        except Exception as err:  # the kernel died, or could not start
            crashed = f"{type(err).__name__}: {err}"
    seconds = time.perf_counter() - start
    if not output.exists():
        return Execution(lab, version, seconds, 0.0, 0.0, crashed=crashed or "no output notebook",
                         failures=runlog.read_failures(log_dir), logs=_shown(log_dir))
    result = judge(json.loads(output.read_text()), lab, version, seconds)
    result.crashed = crashed
    result.failures, result.logs = runlog.read_failures(log_dir), _shown(log_dir)
    result.output = _shown(output)
    bills = list(report_dir.glob("*.bill.json"))
    if bills:
        result.cost_usd = sum(_bill_total(b) for b in bills)
    return result


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _bill_total(path: Path) -> float:
    data = json.loads(path.read_text())
    for key in ("total_usd", "total"):
        if isinstance(data.get(key), int | float):
            return float(data[key])
    return 0.0


def _execute_star(args: tuple[str, str]) -> Execution:
    return execute(*args)


def run_many(labs: list[str], versions: list[str], workers: int,
             on_done=lambda result: None, heartbeat: float = HEARTBEAT_S) -> list[Execution]:
    """Execute every (lab, version), ``workers`` at a time; ``on_done(result)`` as each finishes.

    While nothing finishes for ``heartbeat`` seconds, a line says what is still running.
    Results come back in the order of ``labs`` and ``versions``.
    """
    jobs = [(lab, v) for lab in labs for v in versions]
    if workers <= 1 or len(jobs) == 1:
        results = []
        for job in jobs:
            results.append(execute(*job))
            on_done(results[-1])
        return results
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: dict[Future, tuple[str, str]] = {pool.submit(_execute_star, job): job for job in jobs}
        done: dict[tuple[str, str], Execution] = {}
        while pending:
            finished, _ = wait(pending, timeout=heartbeat, return_when=FIRST_COMPLETED)
            if not finished:
                running = [f"{lab} ({version})" for f, (lab, version) in pending.items() if f.running()]
                print(f"  ... {time.monotonic() - started:.0f} s, still running: {', '.join(running)}", flush=True)
            for future in finished:
                job = pending.pop(future)
                done[job] = future.result()
                on_done(done[job])
    return [done[job] for job in jobs]


def failure_report(r: Execution) -> str:
    """Why an execution failed: its cells' errors, the root cause of each failed job, where the logs are."""
    lines = [f"{r.lab} ({r.version}) failed: {r.problems()}"]
    for cause in r.root_causes():
        lines.append("  " + cause.replace("\n", "\n    "))
    lines.append(f"  notebook: {r.output or BUILD / r.lab}; every job's and endpoint's log: {r.logs}")
    return "\n".join(lines)


def summary(results: list[Execution]) -> str:
    lines = ["| lab | version | result | score | time (s) | would-be AWS cost |",
             "|---|---|---|---|---|---|"]
    for r in results:
        cost = "-" if r.cost_usd is None else f"${r.cost_usd:,.4f}"
        verdict = "pass" if r.ok else "FAIL"
        lines.append(f"| {r.lab} | {r.version} | {verdict} | {r.score:g}/{r.max_score:g} | "
                     f"{r.seconds:.1f} | {cost} |")
    costs = [r.cost_usd for r in results if r.version == "solution" and r.cost_usd is not None]
    total_time = sum(r.seconds for r in results)
    lines.append(f"| **total** | | {sum(r.ok for r in results)}/{len(results)} pass | | {total_time:.1f} | "
                 f"${sum(costs):,.4f} |")
    return "\n".join(lines)


def _main(argv: list[str] | None, versions: list[str], prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labs", nargs="*", help="labs to run (default: all)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    from .scale import add_arguments as add_scale_arguments  # --on sagemaker: labkit.scale

    add_scale_arguments(parser, instances_help="processing jobs at once, one notebook each (default 4)")
    args = parser.parse_args(argv)
    labs = args.labs or lab_names()
    unknown = sorted(set(labs) - set(lab_names()))
    if unknown:
        print(f"unknown lab(s): {', '.join(unknown)}; labs: {', '.join(lab_names())}", file=sys.stderr)
        return 2
    print(f"Executing {len(labs)} lab(s) on the offline backend ({', '.join(versions)}), "
          f"{min(args.workers, len(labs) * len(versions))} at a "
          f"time; notebooks and logs in {BUILD.relative_to(REPO)}/<lab>/", flush=True)
    if args.on == "sagemaker":
        from .scale.checking import main_on_sagemaker

        results = main_on_sagemaker(labs, versions, args)
        if isinstance(results, int):  # a dry run, or refused before anything ran
            return results
    else:
        results = run_many(labs, versions, args.workers, on_done=lambda r: print("  " + r.line(), flush=True))
    table = summary(results)
    print("\n" + table)
    for r in results:
        if not r.ok:
            print("\n" + failure_report(r))
    (BUILD / "summary.md").write_text(table + "\n")
    (BUILD / "summary.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0 if all(r.ok for r in results) else 1


def main_run(argv: list[str] | None = None) -> int:
    # A learner copy (labkit release) has no solutions/: run the learner versions instead.
    return _main(argv, ["solution"] if SOLUTIONS.is_dir() else ["learner"], "labkit run")


def main_check(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--realworld" in argv:  # AWS's own notebooks, from local checkouts (labkit.realworld)
        from . import realworld

        return realworld.cli([a for a in argv if a != "--realworld"])
    return _main(argv, ["solution", "learner"], "labkit check")
