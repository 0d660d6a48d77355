"""``labkit grade LAB FOLDER --on sagemaker``: grade a class in N SageMaker Processing jobs.

:func:`grade_on_sagemaker` splits the class into ``instances`` shards, prints the plan (expected
wall time and cost, the worst case the spending cap is checked against), packs the lab's source
and each shard, runs one job per shard (:class:`~labkit.scale.fleet.Fleet`: guarded, tagged,
retried, cleaned up) and merges what the jobs' graders wrote into one output folder
(:mod:`~labkit.scale.merge`): the same ``grades.csv`` as grading the folder here.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import DEFAULT_INSTANCE_TYPE, ScaleError
from .fleet import (
    Fleet,
    JobSpec,
    Outcome,
    default_image,
    describe_backend,
    guarded,
    job_cost,
    sigterm_interrupts,
)
from .plan import Plan, grading_plan
from .shards import entries, pack, split


@dataclass
class ScaleRun:
    """What ``grade_on_sagemaker`` did: the plan, the jobs and (unless a dry run) the merged run."""

    plan: Plan
    run: Any = None                      # labkit.grading.GradeRun of the merged output
    outcomes: list[Outcome] = field(default_factory=list)
    not_graded: dict[str, str] = field(default_factory=dict)
    fleet: Fleet | None = None           # its run id, tags, S3 prefix and the AWS calls it made
    cost_usd: float = 0.0

    @property
    def ok(self) -> bool:
        return self.run is not None and not self.not_graded

    @property
    def retried(self) -> list[Outcome]:
        return [o for o in self.outcomes if len(o.attempts) > 1]


def course_folder(course_root: str | Path | None, lab: str) -> Path:
    """The course folder holding ``solutions/<lab>/<lab>.ipynb`` (found from here when not given)."""
    from ..authoring import REPO

    if course_root:
        root = Path(course_root).resolve()
    else:
        here = Path.cwd().resolve()
        root = next((p for p in (here, *here.parents) if (p / "solutions").is_dir() and (p / "autograder").is_dir()),
                    REPO)
    if not (root / "solutions" / lab / f"{lab}.ipynb").is_file():
        known = sorted(p.name for p in (root / "solutions").glob("*") if p.is_dir())
        raise ScaleError(f"No nbgrader source for lab {lab!r} in {root / 'solutions'} (labs there: "
                         f"{', '.join(known) or 'none'}): pass --course with the course folder.")
    return root


def _entry_arguments(lab: str, limits: Any, workers: int | None, namespaces: bool, warm: bool,
                     allow_root: bool = False, fair_share: bool = True) -> list[str]:
    """The job's command line: every option of ``labkit grade`` that changes how a submission is graded."""
    args = ["--lab", lab, "--timeout-cell", f"{limits.cell_timeout:g}",
            "--timeout-notebook", f"{limits.notebook_timeout:g}", "--memory-mb", str(limits.memory_mb),
            "--disk-mb", str(limits.disk_mb)]
    if workers:
        args += ["--workers", str(workers)]
    for flag, on in (("--no-namespaces", not namespaces), ("--no-warm", not warm),
                     ("--allow-root", allow_root), ("--no-cgroups", not fair_share)):
        if on:
            args.append(flag)
    return args


def grade_on_sagemaker(lab: str, submissions: str | Path, out: str | Path | None = None, *,
                       course_root: str | Path | None = None, instances: int = 4,
                       instance_type: str = DEFAULT_INSTANCE_TYPE, limits: Any = None, workers: int | None = None,
                       namespaces: bool = True, warm: bool = True, allow_root: bool = False,
                       fair_share: bool = True, image: str | None = None, role: str | None = None, max_cost: float | None = None, max_attempts: int = 3,
                       faults: dict[str, int] | None = None, dry_run: bool = False, keep_s3: bool = False,
                       connection: Any = None, log: Callable[[str], None] = print) -> ScaleRun:
    """Grade ``submissions`` of ``lab`` in ``instances`` processing jobs; merge into ``out``.

    ``workers``: submissions graded at once inside each job (default: the instance's vCPUs).
    ``namespaces``, ``warm``, ``allow_root``, ``fair_share`` and ``limits``: as :func:`labkit.grading.grade`,
    passed to the grader in every job.
    ``faults``: ``{"s001": 1}`` makes the first attempt of shard ``s001`` fail on purpose
    (``LABKIT_SCALE_FAULT``), to see a retry. ``connection``: a :class:`labkit.Lab` already
    connected (default: ``labkit.connect(lab)`` on ``$LABKIT_BACKEND``).
    """
    from ..grading import Limits

    limits = limits or Limits()
    if instances < 1:
        raise ScaleError("--instances must be at least 1")
    root = course_folder(course_root, lab)
    folder = Path(submissions).resolve()
    names = entries(folder)
    if not names:
        raise ScaleError(f"{folder} is empty: nothing to grade (one sub-folder per student is expected).")
    groups = split(names, instances)
    if connection is None:
        import labkit

        connection = labkit.connect(lab, quiet=True)
    plan = grading_plan(lab, [len(g) for g in groups], instance_type, connection.region)
    image = image or default_image(connection.account_id, connection.region)
    log(plan.describe())
    log(describe_backend(connection, image, role or connection.role_arn))
    if dry_run:
        return ScaleRun(plan)
    out_dir = Path(out or Path("graded") / lab).resolve()
    work = Path(tempfile.mkdtemp(prefix="labkit-scale-"))
    try:
        with guarded(connection, max_cost, log):
            course = pack(root, [p for p in (f"solutions/{lab}", "autograder") if (root / p).exists()],
                          work / "in" / "course" / "course.tar.gz")
            specs = [JobSpec(key=f"s{i:03d}", label=f"shard {i + 1}/{len(groups)} ({len(g)} submission(s))",
                             archive=pack(folder, g, work / "in" / f"s{i:03d}" / "work.tar.gz"),
                             arguments=_entry_arguments(lab, limits, workers, namespaces, warm, allow_root, fair_share),
                             max_runtime_s=plan.jobs[i].max_runtime_s, items=len(g))
                     for i, g in enumerate(groups)]
            fleet = Fleet(connection, kind="grade", lab_tag=lab, image=image, instance_type=instance_type,
                          role_arn=role, max_parallel=len(specs), max_attempts=max_attempts, faults=faults,
                          log=log, keep_s3=keep_s3)
            log(f"Run {fleet.run_id}: {len(specs)} job(s), tagged labkit:lab={lab} and labkit:run={fleet.run_id}; "
                f"S3 prefix {fleet.uri()} (deleted at the end{', kept: --keep-s3' if keep_s3 else ''}).")
            outcomes = fleet.run(specs, {"course": course}, work / "results")
        return _merge(lab, folder, root, out_dir, plan, fleet, groups, outcomes, image)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _merge(lab: str, folder: Path, course: Path, out: Path, plan: Plan, fleet: Fleet, groups: list[list[str]],
           outcomes: list[Outcome], image: str) -> ScaleRun:
    from .. import __version__
    from .merge import merge

    not_graded: dict[str, str] = {}
    shards: list[tuple[Path, dict[str, Any]]] = []
    notes = []
    for outcome, names in zip(outcomes, groups, strict=True):
        if outcome.result_dir is not None:  # ok
            result = json.loads((outcome.result_dir / "result.json").read_text())
            if result.get("labkit_version") != __version__:
                notes.append(f"{outcome.spec.label} ran labkit {result.get('labkit_version')} (here: {__version__}): "
                             "rebuild the course image")
            shards.append((outcome.result_dir, result))
            continue
        last = outcome.attempts[-1] if outcome.attempts else None
        why = (last.why() or last.status) if last else "never started"
        for name in names:
            if (folder / name).is_dir() and not name.startswith("."):
                not_graded[name] = (f"not graded: {outcome.spec.label} failed {len(outcome.attempts)} attempt(s) "
                                    f"on SageMaker ({why}); grade this student again")
    seconds, cost = job_cost(plan, outcomes)
    info = {"run_id": fleet.run_id, "backend": "offline" if getattr(fleet.lab, "offline", False) else "aws",
            "image": image, "instance_type": fleet.instance_type, "instances": len(outcomes),
            "plan": {"expected_wall_s": round(plan.wall_s, 1), "expected_cost_usd": round(plan.cost_usd, 4),
                     "worst_case_usd": round(plan.worst_usd, 4)},
            "instance_seconds": round(seconds, 1), "cost_usd": round(cost, 4),
            "jobs": [{"shard": o.spec.key, "submissions": o.spec.items, "ok": o.ok,
                      "attempts": [asdict(a) for a in o.attempts]} for o in outcomes],
            "tags": fleet.tags, "aws_calls": dict(sorted(fleet.calls.items())), "version_notes": notes}
    run = merge(lab, shards, out, not_graded, info, {"submissions": folder, "course": course})
    return ScaleRun(plan, run, outcomes, not_graded, fleet, cost)


def main_on_sagemaker(args: Any, limits: Any, print_results: Callable[[Any], None]) -> int:
    """``labkit grade ... --on sagemaker`` (called by :mod:`labkit.grading.cli` with its parsed options)."""
    from ..connect import BackendError
    from ..cost.quotas import GuardError

    os.environ.setdefault("LABKIT_OFFLINE_MODE", "embedded")  # offline: a private backend for this run
    try:
        with sigterm_interrupts():
            result = grade_on_sagemaker(
                args.lab, args.submissions, args.out, course_root=args.course, instances=args.instances,
                instance_type=args.instance_type, limits=limits, workers=args.workers,
                namespaces=not args.no_namespaces, warm=not args.no_warm, allow_root=args.allow_root,
                fair_share=not args.no_cgroups, image=args.image, role=args.role,
                max_cost=args.max_cost, max_attempts=args.max_attempts, dry_run=args.dry_run, keep_s3=args.keep_s3)
    except KeyboardInterrupt:
        print("labkit grade: interrupted; the jobs still running were stopped and the run's S3 prefix deleted.",
              file=sys.stderr)
        return 130
    except (ScaleError, GuardError, BackendError, FileNotFoundError) as err:
        print(f"labkit grade: {err}", file=sys.stderr)
        return 2
    if result.run is None:
        return 0
    print_results(result.run)
    for outcome in result.outcomes:
        if len(outcome.attempts) > 1 or not outcome.ok:
            print(f"  {outcome.summary()}")
    print(f"SageMaker: {len(result.outcomes)} job(s), {len(result.retried)} retried, "
          f"{sum(not o.ok for o in result.outcomes)} failed; {result.plan.instance_type} at "
          f"${result.plan.hourly_usd:g}/h: ${result.cost_usd:,.4f} for the attempts' run time.")
    if result.not_graded:
        print(f"{len(result.not_graded)} student(s) NOT graded (their shard failed every attempt): "
              f"{', '.join(sorted(result.not_graded))}", file=sys.stderr)
        return 1
    return 0
