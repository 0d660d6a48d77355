"""Execute lab notebooks with papermill and judge the result.

``labkit run`` executes every lab's solution on the offline backend and prints a
summary (pass/fail, score, time, what the lab would have cost on AWS). ``labkit check``
also executes each learner version, which must run to the end without an error
outside its answer and test cells, and score 0. Executed notebooks and logs go to
``build/executed/<lab>/`` (ignored by git) for inspection.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .authoring import LABS, REPO, SOLUTIONS, lab_names

BUILD = REPO / "build" / "executed"
ERROR_MARKER = "papermill-error-cell-tag"
CELL_TIMEOUT_S = 900


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


def _cell_kind(cell: dict) -> str:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if meta.get("grade") and cell.get("cell_type") == "code":
        return "test"
    if meta.get("solution"):
        return "answer"
    return "other"


def judge(nb: dict, lab: str, version: str, seconds: float) -> Execution:
    """Score an executed notebook the way nbgrader autogrades code tests."""
    score = max_score = 0.0
    errors = []
    for cell in nb["cells"]:
        if ERROR_MARKER in cell.get("metadata", {}).get("tags", []) or cell.get("cell_type") != "code":
            continue
        kind = _cell_kind(cell)
        failed = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        cell_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or cell.get("id", "?")
        for out in failed[:1]:
            errors.append(CellError(cell_id, kind, out.get("ename", ""), out.get("evalue", "")))
        if kind == "test":
            points = float(cell["metadata"]["nbgrader"].get("points", 0))
            max_score += points
            executed = cell.get("execution_count") is not None
            if executed and not failed:
                score += points
    return Execution(lab, version, seconds, score, max_score, errors)


def execute(lab: str, version: str, out_dir: Path | None = None) -> Execution:
    """Execute ``solutions/<lab>`` or ``labs/<lab>`` on the offline backend and judge it."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source_dir = (SOLUTIONS if version == "solution" else LABS) / lab
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
    # The offline backend is forced: a runner must never reach a real account. Each notebook gets
    # a private, empty backend in its kernel (embedded), never the user's shared one.
    os.environ.update({"LABKIT_BACKEND": "offline", "LABKIT_OFFLINE_MODE": "embedded",
                       "LABKIT_REPORT_DIR": str(report_dir),
                       "LABKIT_LAB": lab, "PYTHONUNBUFFERED": "1"})
    # The kernel draws inline, so executed notebooks keep their figures; this process may not.
    own_backend = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    start = time.perf_counter()
    crashed = ""
    with open(out_dir / f"{version}.stdout.log", "w") as stdout, \
            open(out_dir / f"{version}.stderr.log", "w") as stderr:
        try:
            papermill.execute_notebook(
                str(notebook), str(output), cwd=str(work), kernel_name="python3",
                progress_bar=False, stdout_file=stdout, stderr_file=stderr,
                execution_timeout=CELL_TIMEOUT_S, allow_errors=True,
            )
        except PapermillExecutionError:
            pass  # judged from the saved notebook below
        except Exception as err:  # the kernel died, or could not start
            crashed = f"{type(err).__name__}: {err}"
        finally:
            if own_backend is None:
                os.environ.pop("MPLBACKEND", None)
            else:
                os.environ["MPLBACKEND"] = own_backend
    seconds = time.perf_counter() - start
    if not output.exists():
        return Execution(lab, version, seconds, 0.0, 0.0, crashed=crashed or "no output notebook")
    result = judge(json.loads(output.read_text()), lab, version, seconds)
    result.crashed = crashed
    result.output = str(output.relative_to(REPO)) if output.is_relative_to(REPO) else str(output)
    bills = list(report_dir.glob("*.bill.json"))
    if bills:
        result.cost_usd = sum(_bill_total(b) for b in bills)
    return result


def _bill_total(path: Path) -> float:
    data = json.loads(path.read_text())
    for key in ("total_usd", "total"):
        if isinstance(data.get(key), int | float):
            return float(data[key])
    return 0.0


def _execute_star(args: tuple[str, str]) -> Execution:
    return execute(*args)


def run_many(labs: list[str], versions: list[str], workers: int) -> list[Execution]:
    jobs = [(lab, v) for lab in labs for v in versions]
    if workers <= 1 or len(jobs) == 1:
        results = []
        for job in jobs:
            print(f"  running {job[0]} ({job[1]}) ...", flush=True)
            results.append(execute(*job))
        return results
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_execute_star, jobs))


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
    args = parser.parse_args(argv)
    labs = args.labs or lab_names()
    unknown = sorted(set(labs) - set(lab_names()))
    if unknown:
        print(f"unknown lab(s): {', '.join(unknown)}; labs: {', '.join(lab_names())}", file=sys.stderr)
        return 2
    print(f"Executing {len(labs)} lab(s) on the offline backend ({', '.join(versions)}); "
          f"notebooks and logs in {BUILD.relative_to(REPO)}/")
    results = run_many(labs, versions, args.workers)
    table = summary(results)
    print("\n" + table)
    for r in results:
        if not r.ok:
            print(f"\n{r.lab} ({r.version}) failed: {r.problems()}\n  see {r.output or BUILD / r.lab}")
    (BUILD / "summary.md").write_text(table + "\n")
    (BUILD / "summary.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0 if all(r.ok for r in results) else 1


def main_run(argv: list[str] | None = None) -> int:
    return _main(argv, ["solution"], "labkit run")


def main_check(argv: list[str] | None = None) -> int:
    return _main(argv, ["solution", "learner"], "labkit check")
