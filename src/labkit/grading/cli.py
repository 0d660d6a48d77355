"""``labkit grade <lab> <submissions-folder> [--out DIR] [--workers N] ...``"""

from __future__ import annotations

import argparse
import sys

from .assignment import AssignmentError
from .pipeline import GradingRefused, Limits, grade


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="labkit grade",
        description="Grade a folder of submissions (<folder>/<student>/<lab>.ipynb) of one lab: "
                    "grades.csv, feedback/<student>/<lab>.html and report.json in --out.")
    parser.add_argument("lab", help="lab name, e.g. 00-setup (its source is solutions/<lab>/<lab>.ipynb)")
    parser.add_argument("submissions", help="folder with one sub-folder per student")
    parser.add_argument("--out", help="output folder (default: graded/<lab>)")
    parser.add_argument("--course", help="course folder with solutions/ (default: found from here)")
    parser.add_argument("--workers", type=int, default=None,
                        help="submissions graded at once (default: number of cores; with --on sagemaker, "
                             "of each instance)")
    parser.add_argument("--timeout-cell", type=float, default=Limits.cell_timeout,
                        help=f"seconds per cell (default {Limits.cell_timeout:g})")
    parser.add_argument("--timeout-notebook", type=float, default=Limits.notebook_timeout,
                        help=f"seconds per notebook (default {Limits.notebook_timeout:g})")
    parser.add_argument("--memory-mb", type=int, default=4096, help="address-space limit per process (MiB)")
    parser.add_argument("--disk-mb", type=int, default=1024,
                        help="disk space of each submission's folders (MiB, default 1024)")
    parser.add_argument("--no-namespaces", action="store_true",
                        help="do not use Linux namespaces even where available")
    parser.add_argument("--no-cgroups", action="store_true",
                        help="no cgroup per submission (a lower priority and a tighter process cap instead)")
    parser.add_argument("--allow-root", action="store_true",
                        help="without namespaces, run learner code as root if no other uid can run Python "
                             "(only for submissions you trust)")
    parser.add_argument("--no-warm", action="store_true",
                        help="start every kernel from scratch instead of forking it from a process that "
                             "imported the lab's modules once (slower; the isolation is the same)")
    from ..scale import add_arguments as add_scale_arguments  # --on sagemaker: labkit.scale

    add_scale_arguments(parser, instances_help="processing jobs, one shard of the class each (default 4)")
    args = parser.parse_args(argv)
    limits = Limits(cell_timeout=args.timeout_cell, notebook_timeout=args.timeout_notebook,
                    memory_mb=args.memory_mb, disk_mb=args.disk_mb)
    if args.on == "sagemaker":
        from ..scale.grading import main_on_sagemaker

        return main_on_sagemaker(args, limits, print_results)
    try:
        run = grade(args.lab, args.submissions, args.out, course_root=args.course, workers=args.workers,
                    limits=limits, namespaces=not args.no_namespaces, warm=not args.no_warm,
                    allow_root=args.allow_root, fair_share=not args.no_cgroups)
    except (AssignmentError, FileNotFoundError, GradingRefused) as err:
        print(f"labkit grade: {err}", file=sys.stderr)
        return 2
    print_results(run)
    return 0


def print_results(run) -> None:
    """One line per student, then where the files are and what isolation the grader got."""
    width = max([len(r.student) for r in run.results] + [7])
    for r in sorted(run.results, key=lambda r: r.student):
        note = f"  ({'; '.join(r.reasons)})" if r.reasons else ""
        print(f"{r.student:<{width}}  {r.total:>6g} / {r.max_score:g}{note}")
    print(f"\n{len(run.results)} submission(s) graded. Grades: {run.grades_csv}\n"
          f"Feedback: {run.out / 'feedback'}   Report: {run.report}")
    print(f"Isolation: {describe_isolation(run.isolation)}")


def describe_isolation(status: dict) -> str:
    if not status:
        return "no submission was executed"
    parts = [f"namespaces: {status.get('namespaces') or 'none'}",
             f"uid: {status.get('uid')}" + (" (learner code ran as root)" if status.get("uid") == 0 else ""),
             f"network: {status.get('network') or status.get('metadata_addresses') or 'shared'}",
             f"cgroups: {status.get('cgroups', 'none')}", f"disk: {status.get('disk_quota', 'none')}",
             f"warm kernels: {status.get('warm', 'off')}"]
    if status.get("namespaces_probe", "ok") != "ok":
        parts.append(f"(namespaces unavailable: {status['namespaces_probe']})")
    if status.get("readable_by_kernels"):
        parts.append(f"WARNING: kernels can read {', '.join(status['readable_by_kernels'])} (chmod 700 them)")
    return ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
