"""``labkit check --on sagemaker``: every lab's solution and learner version in parallel Processing jobs.

One job per notebook (lab x version). Each job unpacks its lab folder and runs
:func:`labkit.runner.execute` on it, exactly as ``labkit check`` does here (offline backend inside
the job, papermill, the same judging); the executed notebook, logs and bill come back into
``build/executed/<lab>/`` and the :class:`~labkit.runner.Execution` into the same summary table.

The estimate uses the last local timings in ``build/executed/summary.json`` when there are
some (what ``labkit check`` measured here), else an assumed :data:`UNMEASURED_S` per notebook,
said so in the plan.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
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
from .plan import STARTUP_S, JobEstimate, Plan, instance_price, max_runtime
from .shards import pack, unpack_results

UNMEASURED_S = 600.0


@dataclass
class CheckItem:
    """One notebook to execute: a lab, its version (``solution``/``learner``) and its folder."""

    lab: str
    version: str
    source: Path

    @property
    def key(self) -> str:
        return f"{self.lab}-{self.version}"


@dataclass
class CheckRun:
    plan: Plan
    executions: list[Any] | None = None   # labkit.runner.Execution, in the order of the items
    outcomes: list[Outcome] = field(default_factory=list)
    fleet: Fleet | None = None
    cost_usd: float = 0.0


def local_timings(summary: Path) -> dict[tuple[str, str], float]:
    """(lab, version) -> seconds of the last local ``labkit check``/``run`` (empty if none)."""
    try:
        return {(r["lab"], r["version"]): float(r["seconds"]) for r in json.loads(summary.read_text())}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def check_plan(items: list[CheckItem], instance_type: str, region: str, instances: int,
               timings: dict[tuple[str, str], float]) -> Plan:
    price, vcpus, storage = instance_price(instance_type, region)
    jobs, guessed = [], []
    for item in items:
        seconds = timings.get((item.lab, item.version))
        if seconds is None:
            guessed.append(item.key)
            seconds = UNMEASURED_S
        expected = STARTUP_S + seconds
        jobs.append(JobEstimate(item.key, 1, expected, max_runtime(expected)))
    basis = "notebook times of the last local `labkit check` (build/executed/summary.json)"
    notes = [f"no local time for {', '.join(guessed)}: {UNMEASURED_S / 60:.0f} min assumed each"] if guessed else []
    return Plan(title=f"check {len(items)} notebook(s)", instance_type=instance_type, vcpus=vcpus,
                hourly_usd=price.price_usd, price_source=price.provenance, storage_gb_month_usd=storage, jobs=jobs,
                max_parallel=max(1, instances), basis=basis, notes=notes)


def _execution(item: CheckItem, outcome: Outcome, build_dir: Path) -> Any:
    from ..authoring import REPO
    from ..runner import CellError, Execution

    if outcome.result_dir is None:  # not ok: the job never completed
        last = outcome.attempts[-1] if outcome.attempts else None
        why = (last.why() or last.status) if last else "never started"
        return Execution(item.lab, item.version, sum(a.seconds for a in outcome.attempts), 0.0, 0.0,
                         crashed=f"the processing job failed {len(outcome.attempts)} attempt(s): {why}")
    result = json.loads((outcome.result_dir / "result.json").read_text())
    data = dict(result["execution"])
    data["errors"] = [CellError(**e) for e in data.get("errors", [])]
    target = build_dir / item.lab
    unpack_results(outcome.result_dir / "executed.tar.gz", target)
    notebook = target / f"{item.version}.ipynb"
    data["output"] = str(notebook.relative_to(REPO)) if notebook.is_relative_to(REPO) else str(notebook)
    return Execution(**data)


def check_on_sagemaker(items: list[CheckItem], *, instances: int = 4, instance_type: str = DEFAULT_INSTANCE_TYPE,
                       image: str | None = None, role: str | None = None, max_cost: float | None = None,
                       max_attempts: int = 3, faults: dict[str, int] | None = None, dry_run: bool = False,
                       keep_s3: bool = False, connection: Any = None, build_dir: Path | None = None,
                       log: Callable[[str], None] = print) -> CheckRun:
    """Execute every item in its own processing job, at most ``instances`` at once."""
    from ..runner import BUILD

    build_dir = build_dir or BUILD
    if not items:
        raise ScaleError("nothing to check")
    if connection is None:
        import labkit

        connection = labkit.connect("check", quiet=True)
    plan = check_plan(items, instance_type, connection.region, instances, local_timings(build_dir / "summary.json"))
    image = image or default_image(connection.account_id, connection.region)
    log(plan.describe())
    log(describe_backend(connection, image, role or connection.role_arn))
    if dry_run:
        return CheckRun(plan)
    work = Path(tempfile.mkdtemp(prefix="labkit-scale-check-"))
    try:
        with guarded(connection, max_cost, log):
            specs = [JobSpec(key=item.key, label=f"{item.lab} ({item.version})",
                             archive=pack(item.source, sorted(os.listdir(item.source)),
                                          work / "in" / item.key / "work.tar.gz"),
                             arguments=["--lab", item.lab, "--version", item.version],
                             max_runtime_s=plan.jobs[i].max_runtime_s, items=1, lab_tag=item.lab)
                     for i, item in enumerate(items)]
            fleet = Fleet(connection, kind="check", lab_tag="check", image=image, instance_type=instance_type,
                          role_arn=role, max_parallel=instances, max_attempts=max_attempts, faults=faults, log=log,
                          keep_s3=keep_s3)
            log(f"Run {fleet.run_id}: {len(specs)} job(s), each tagged labkit:lab=<its lab> and "
                f"labkit:run={fleet.run_id}; S3 prefix {fleet.uri()} (deleted at the end).")
            outcomes = fleet.run(specs, {}, work / "results")
        executions = [_execution(item, outcome, build_dir) for item, outcome in zip(items, outcomes, strict=True)]
        return CheckRun(plan, executions, outcomes, fleet, job_cost(plan, outcomes)[1])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main_on_sagemaker(labs: list[str], versions: list[str], args: Any) -> list[Any] | int:
    """``labkit check ... --on sagemaker``: the executions for the runner's summary, or an exit code."""
    from ..authoring import LABS, SOLUTIONS
    from ..connect import BackendError
    from ..cost.quotas import GuardError

    os.environ.setdefault("LABKIT_OFFLINE_MODE", "embedded")  # offline: a private backend for this run
    items = [CheckItem(lab, v, (SOLUTIONS if v == "solution" else LABS) / lab) for lab in labs for v in versions]
    try:
        with sigterm_interrupts():
            run = check_on_sagemaker(items, instances=args.instances, instance_type=args.instance_type,
                                     image=args.image, role=args.role, max_cost=args.max_cost,
                                     max_attempts=args.max_attempts, dry_run=args.dry_run, keep_s3=args.keep_s3)
    except KeyboardInterrupt:
        print("labkit check: interrupted; the jobs still running were stopped and the run's S3 prefix deleted.",
              file=sys.stderr)
        return 130
    except (ScaleError, GuardError, BackendError) as err:
        print(f"labkit check: {err}", file=sys.stderr)
        return 2
    if run.executions is None:
        return 0
    for outcome in run.outcomes:
        if len(outcome.attempts) > 1 or not outcome.ok:
            print(f"  {outcome.summary()}")
    print(f"SageMaker: {len(run.outcomes)} job(s) on {run.plan.instance_type}, ${run.cost_usd:,.4f} for their run time.")
    return run.executions
