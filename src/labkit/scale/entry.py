"""The entry script of a grading or checking job: ``python3 -m labkit.scale.entry grade|check ...``.

It runs inside the processing container (on AWS, the course image; offline, a process the
processing engine starts under the same container contract) and does as little as possible
itself: lock the job's folders, unpack the inputs, call the course's own code, pack the results.

- ``grade``: ``<input>/course/course.tar.gz`` (the lab's nbgrader source and ``autograder/``)
  and ``<input>/work/work.tar.gz`` (this shard's student folders) are unpacked into a folder only
  this process's user can enter; :func:`labkit.grading.grade` grades them with its own
  isolation; ``<output>/graded.tar.gz`` and ``<output>/result.json`` go back to S3.
- ``check``: ``<input>/work/work.tar.gz`` is one lab folder (solution or learner version);
  :func:`labkit.runner.execute` runs it as ``labkit check`` does; ``<output>/executed.tar.gz``
  and ``<output>/result.json`` (the :class:`~labkit.runner.Execution`) go back.

``LABKIT_SCALE_FAULT=exit`` in the job's environment makes the attempt fail before any work
(the fault the orchestrator injects to test its retries; it works the same on AWS).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

FAULT_VARIABLE = "LABKIT_SCALE_FAULT"
RESULT = "result.json"


def _cpu_seconds() -> float:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def _lock(*folders: Path) -> None:
    """Only this user may enter the inputs and outputs: learner code runs as other users (or in
    namespaces that hide them), and must not read the lab's source or other students' work."""
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)


def _unpack(archive_dir: Path, dest: Path) -> list[str]:
    from .shards import unpack_trusted

    archives = sorted(archive_dir.glob("*.tar.gz"))
    if len(archives) != 1:
        raise SystemExit(f"labkit.scale.entry: expected one .tar.gz in {archive_dir}, found "
                         f"{[a.name for a in archives] or 'none'}")
    return unpack_trusted(archives[0], dest)


def _write_result(output: Path, result: dict) -> None:
    (output / RESULT).write_text(json.dumps(result, indent=1, default=str))


def grade_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`labkit.grading.grade` that the job's command line carries."""
    from ..grading import Limits

    return {"workers": args.workers, "namespaces": not args.no_namespaces, "warm": not args.no_warm,
            "allow_root": args.allow_root, "fair_share": not args.no_cgroups,
            "limits": Limits(cell_timeout=args.timeout_cell, notebook_timeout=args.timeout_notebook,
                             memory_mb=args.memory_mb, disk_mb=args.disk_mb)}


def grade_shard(args: argparse.Namespace, work: Path, output: Path) -> dict:
    from .. import __version__
    from ..grading import grade
    from .shards import pack_folder

    course, submissions, graded = work / "course", work / "submissions", work / "graded"
    skipped = _unpack(Path(args.input) / "course", course) + _unpack(Path(args.input) / "work", submissions)
    run = grade(args.lab, submissions, graded, course_root=course, **grade_options(args))
    pack_folder(graded, output / "graded.tar.gz")
    return {"kind": "grade", "lab": args.lab, "students": sorted(r.student for r in run.results),
            "paths": {"submissions": str(submissions), "out": str(graded), "course": str(course)},
            "isolation": run.isolation, "workers": run.workers, "skipped": skipped,
            "labkit_version": __version__}


def check_lab(args: argparse.Namespace, work: Path, output: Path) -> dict:
    from .. import __version__
    from ..runner import execute
    from .shards import pack_folder

    source, executed = work / args.lab, work / "executed"
    skipped = _unpack(Path(args.input) / "work", source)
    result = execute(args.lab, args.version, out_dir=executed, source_dir=source)
    shutil.rmtree(executed / f"work-{args.version}", ignore_errors=True)  # the scratch copy stays here
    pack_folder(executed, output / "executed.tar.gz")
    return {"kind": "check", "lab": args.lab, "version": args.version, "execution": asdict(result),
            "skipped": skipped, "labkit_version": __version__}


def command_line() -> argparse.ArgumentParser:
    """The job's options (what :func:`labkit.scale.grading._entry_arguments` writes)."""
    from ..grading import Limits  # the grader's defaults

    parser = argparse.ArgumentParser(prog="python3 -m labkit.scale.entry", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("grade", "check"))
    parser.add_argument("--lab", required=True)
    parser.add_argument("--input", required=True, help="the job's input folder (/opt/ml/processing/input)")
    parser.add_argument("--output", required=True, help="the job's output folder (/opt/ml/processing/output)")
    parser.add_argument("--version", choices=("solution", "learner"), default="solution")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--timeout-cell", type=float, default=Limits.cell_timeout)
    parser.add_argument("--timeout-notebook", type=float, default=Limits.notebook_timeout)
    parser.add_argument("--memory-mb", type=int, default=Limits.memory_mb)
    parser.add_argument("--disk-mb", type=int, default=Limits.disk_mb)
    parser.add_argument("--no-namespaces", action="store_true")
    parser.add_argument("--no-warm", action="store_true")
    parser.add_argument("--allow-root", action="store_true")
    parser.add_argument("--no-cgroups", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = command_line().parse_args(argv)
    if os.environ.get(FAULT_VARIABLE) == "exit":
        print(f"labkit.scale.entry: injected fault ({FAULT_VARIABLE}=exit): this attempt fails on purpose",
              file=sys.stderr, flush=True)
        return 3
    started, cpu = time.time(), _cpu_seconds()
    inputs, output = Path(args.input), Path(args.output)
    work = inputs.parent / "work"
    _lock(inputs, output, work)
    print(f"labkit.scale.entry: {args.kind} {args.lab} on {os.cpu_count()} CPUs as uid {os.getuid()}", flush=True)
    result = (grade_shard if args.kind == "grade" else check_lab)(args, work, output)
    result.update(seconds=round(time.time() - started, 2), cpu_seconds=round(_cpu_seconds() - cpu, 2),
                  cpus=os.cpu_count())
    _write_result(output, result)
    print(f"labkit.scale.entry: done in {result['seconds']:.1f} s ({result['cpu_seconds']:.1f} CPU s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
