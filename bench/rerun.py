"""Rerun check: every lab run twice in one persistent account, as a learner runs them.

    python -m bench.rerun                      # every lab, twice, in lab order
    python -m bench.rerun --labs 09-cost-optimisation,14-responsible-ml --runs 3

``labkit run``, the tests and the grader give each notebook a private, empty backend. A learner
does not: every lab of theirs runs against one shared backend whose account persists (S3,
jobs, endpoints, names), and they run a notebook again and again (Restart & Run All). Names
that cannot be used twice (training, processing and export jobs cannot be deleted), resources
an earlier lab left, and calls that reach the backend over HTTP instead of in the kernel meet
the learner there first. This runs each lab's solution, less its hidden tests (what a learner
who solved every exercise has), ``--runs`` times in a row, labs in course order, against the
shared backend of a private ``$LABKIT_HOME`` under ``build/rerun/``, and counts the runs that
did not pass cleanly. Target: 0 failures. The table goes to the console and to the ``rerun``
section of docs/benchmarks.md (``--no-write`` keeps it out).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from labkit.authoring import REPO, lab_names
from labkit.grading.assignment import visible_part
from labkit.runner import Execution, execute

OUT = REPO / "build" / "rerun"


def without_hidden_tests(lab: str, dest: Path) -> Path:
    """A copy of ``solutions/<lab>`` whose notebook holds no hidden test (what the learner runs)."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(REPO / "solutions" / lab, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    path = dest / f"{lab}.ipynb"
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        cell["source"] = visible_part("".join(cell["source"]))
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False))
    return dest


def table(results: dict[str, list[Execution]], runs: int, wall: float) -> str:
    failed = [r for rs in results.values() for r in rs if not r.ok]
    lines = [
        "## Rerun: every lab twice in one persistent account",
        "",
        f"`python -m bench.rerun --runs {runs}`: each lab's solution without its hidden tests (what a learner who "
        f"solved every exercise runs), {runs} time(s) in a row, labs in course order, all against one shared "
        "backend whose account persists, as a learner's labs run (`labkit run`, the tests and the grader give "
        "each notebook a private, empty backend instead). Target: 0 failures.",
        "",
        "| lab | " + " | ".join(f"run {i + 1}" for i in range(runs)) + " |",
        "|---|" + "---|" * runs,
    ]
    for lab, rs in results.items():
        lines.append(f"| {lab} | " + " | ".join(f"{'pass' if r.ok else 'FAIL'} ({r.seconds:.0f} s)" for r in rs) + " |")
    lines += ["", f"{sum(len(rs) for rs in results.values())} runs, {len(failed)} failed; wall time {wall / 60:.1f} min."]
    for r in failed:
        lines.append(f"- {r.lab} failed: {r.problems()[:300]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rerun", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labs", default=",".join(lab_names()), help="labs, in the order run (default: all)")
    parser.add_argument("--runs", type=int, default=2, help="runs of each lab in a row (default 2)")
    parser.add_argument("--no-write", dest="write", action="store_false", help="do not write docs/benchmarks.md")
    args = parser.parse_args(argv)
    labs = [lab for lab in args.labs.split(",") if lab]
    unknown = sorted(set(labs) - set(lab_names()))
    if unknown:
        print(f"unknown lab(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    shutil.rmtree(OUT, ignore_errors=True)
    os.environ["LABKIT_HOME"] = str(OUT / "home")  # the kernels' shared backend: private to this check
    from labkit.offline import shared

    results: dict[str, list[Execution]] = {}
    started = time.monotonic()
    try:
        for lab in labs:
            source = without_hidden_tests(lab, OUT / "src" / lab)
            for run in range(1, args.runs + 1):
                result = execute(lab, "solution", out_dir=OUT / f"{lab}-{run}", source_dir=source,
                                 offline_mode="shared")
                results.setdefault(lab, []).append(result)
                print(f"  [run {run}] {result.line()}", flush=True)
                if not result.ok:
                    print("    " + result.problems()[:500], flush=True)
    finally:
        shared.stop()
    text = table(results, args.runs, time.monotonic() - started)
    print("\n" + text, flush=True)
    if args.write:
        from bench.run import DOC, write_section

        write_section("rerun", text)
        print(f"wrote the rerun section of {DOC}")
    return 0 if all(r.ok for rs in results.values() for r in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
