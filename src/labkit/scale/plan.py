"""What a run on SageMaker will take and cost, printed before anything starts.

The model is deliberately simple and every input is written down:

- **CPU seconds per submission** and the **fixed CPU seconds per run** (preparing the lab, the
  warm process, the workers) were measured by ``bench/bench_scale.py`` on a known machine and are
  stored in ``measured.json`` beside this module (with the date and the machine). Grading is
  CPU-bound, so a shard of ``n`` submissions on an instance with ``v`` vCPUs takes
  ``fixed + n x cpu / (v x efficiency)`` seconds, where ``efficiency`` is the parallel efficiency
  measured there (the CPU the grader used over the CPU other processes left it: the measuring
  machine is shared, a processing instance is not). One vCPU of an ``ml.m5``/``ml.c5`` instance is
  assumed as fast as one core of the measuring machine (an assumption, said so in the printout).
- **Start-up**: a processing job first gets an instance and pulls its image. AWS documents that
  pulling a large image "adds minutes to every processing job" (:data:`STARTUP_SOURCE`); the
  course image is a few GB, so :data:`STARTUP_S` assumes 3 minutes per job.
- **Prices** come from the dated catalogue (``data/pricing/sagemaker.json``, ``usage=processing``
  and ``ml-storage``). Billing is per second; the estimate bills the whole job, start-up included
  (an upper bound).

The spending cap is not checked here but by the sandbox guard (:mod:`labkit.cost.guard`), on the
worst case: each job's ``MaxRuntimeInSeconds``, which :func:`max_runtime` sets to three times
the job's estimate (at least 15 minutes).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..cost import catalogue as cat

MEASURED = Path(__file__).with_name("measured.json")
STARTUP_S = 180.0
STARTUP_SOURCE = ("https://docs.aws.amazon.com/sagemaker/latest/dg/processing-job-soci-indexed-images.html "
                  "(read 2026-12-05: a processing job downloads its image before the script runs, which "
                  "for large images adds minutes to every job); 3 minutes assumed for the course image")
VOLUME_GB = 30
HOURS_PER_MONTH = 730.0  # the catalogue's GB-month, as AWS prorates it
MIN_RUNTIME_S = 900
RUNTIME_FACTOR = 3.0


class NoMeasurement(LookupError):
    """``measured.json`` has no figures at all: run the benchmark first."""


@dataclass(frozen=True)
class Figures:
    """Measured grading cost of one lab on one machine."""

    lab: str
    cpu_s: float          # CPU seconds per submission, every process included
    fixed_s: float        # CPU seconds once per run: prepare the lab, start the warm process and the workers
    efficiency: float     # measured parallel efficiency (CPU used / CPU left by other processes)
    measured_on: str
    machine: str
    borrowed_from: str = ""  # set when the lab itself was not measured

    def describe(self) -> str:
        base = (f"{self.cpu_s:.2f} CPU s per submission + {self.fixed_s:.0f} CPU s per job, parallel efficiency "
                f"{self.efficiency:.0%} (measured {self.measured_on} on {self.machine} by bench/bench_scale.py)")
        if self.borrowed_from:
            base += (f"; lab {self.lab} was never measured, so these are lab {self.borrowed_from}'s, the most "
                     f"expensive measured (measure it: LABKIT_BENCH_SCALE_LABS={self.lab} python -m bench.run scale)")
        return base


@lru_cache(maxsize=4)
def _measured(path: str) -> dict:
    return json.loads(Path(path).read_text())


def figures(lab: str, path: Path = MEASURED) -> Figures:
    """The measured figures of ``lab``, else those of the most expensive measured lab (said so)."""
    if not Path(path).is_file():
        raise NoMeasurement(f"{path} is missing: run `python -m bench.run scale` to measure grading on this machine.")
    data = _measured(str(path))
    labs = data.get("grading", {})
    if not labs:
        raise NoMeasurement(f"{path} holds no grading figures: run `python -m bench.run scale`.")
    borrowed = ""
    if lab not in labs:
        borrowed = max(labs, key=lambda name: labs[name]["cpu_s_per_submission"])
    entry = labs[borrowed or lab]
    return Figures(lab=lab, cpu_s=float(entry["cpu_s_per_submission"]), fixed_s=float(entry["fixed_s"]),
                   efficiency=float(entry["efficiency"]), measured_on=data["measured_on"], machine=data["machine"],
                   borrowed_from=borrowed)


def grading_seconds(fig: Figures, submissions: int, vcpus: int) -> float:
    """Seconds one instance with ``vcpus`` spends grading ``submissions`` (start-up excluded)."""
    if submissions <= 0:
        return 0.0
    return fig.fixed_s + submissions * fig.cpu_s / (max(vcpus, 1) * max(fig.efficiency, 0.05))


def max_runtime(expected_s: float) -> int:
    """A job's ``MaxRuntimeInSeconds``: three times its estimate, at least 15 minutes, at most AWS's 1 day."""
    return int(min(86400, max(MIN_RUNTIME_S, math.ceil(RUNTIME_FACTOR * expected_s))))


@dataclass
class JobEstimate:
    """One processing job of a plan."""

    key: str
    items: int            # submissions (grading) or notebooks (checking)
    seconds: float        # expected wall time of the job, start-up included
    max_runtime_s: int


@dataclass
class Plan:
    """The jobs of a run, what they should take and cost, and the worst case the guard caps."""

    title: str
    instance_type: str
    vcpus: int
    hourly_usd: float
    price_source: str
    storage_gb_month_usd: float
    jobs: list[JobEstimate]
    max_parallel: int
    startup_s: float = STARTUP_S
    basis: str = ""                      # where the per-item figures came from
    notes: list[str] = field(default_factory=list)

    @property
    def wall_s(self) -> float:
        """Expected wall time: jobs start in waves of ``max_parallel``, longest first."""
        lanes = [0.0] * max(1, min(self.max_parallel, len(self.jobs) or 1))
        for job in sorted(self.jobs, key=lambda j: -j.seconds):
            lanes[lanes.index(min(lanes))] += job.seconds
        return max(lanes) if self.jobs else 0.0

    def job_cost(self, seconds: float) -> float:
        hours = math.ceil(seconds) / 3600
        return hours * (self.hourly_usd + VOLUME_GB * self.storage_gb_month_usd / HOURS_PER_MONTH)

    @property
    def cost_usd(self) -> float:
        return sum(self.job_cost(j.seconds) for j in self.jobs)

    @property
    def worst_usd(self) -> float:
        """What the guard counts: every job running to its ``MaxRuntimeInSeconds``."""
        return sum(j.max_runtime_s / 3600 * self.hourly_usd for j in self.jobs)

    def describe(self) -> str:
        sizes = sorted({j.items for j in self.jobs})
        spread = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
        lines = [
            f"Plan: {self.title}: {len(self.jobs)} processing job(s) on {self.instance_type} "
            f"({self.vcpus} vCPUs, ${self.hourly_usd:g}/h, {self.price_source}), {spread} item(s) each, "
            f"at most {self.max_parallel} at once.",
            f"  expected wall time ~{_duration(self.wall_s)} (each job ~{_duration(self.startup_s)} of start-up: "
            f"{STARTUP_SOURCE}), expected cost ~${self.cost_usd:,.2f} (compute + {VOLUME_GB} GB ML storage per job).",
            f"  worst case ${self.worst_usd:,.2f}: every job stopped at its MaxRuntimeInSeconds "
            f"({_duration(max(j.max_runtime_s for j in self.jobs))} at most): the spending cap is checked against this.",
        ]
        if self.basis:
            lines.append(f"  basis: {self.basis}; one vCPU assumed as fast as one core of that machine.")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def instance_price(instance_type: str, region: str) -> tuple[cat.Price, int, float]:
    """(processing price, vCPUs, ML storage $/GB-month) of an ``ml.*`` type from the catalogue."""
    catalogue = cat.load()
    price = catalogue.sagemaker_instance(instance_type, "processing", region)
    storage = catalogue.sagemaker_other("ml-storage", region).price_usd
    return price, int(price.get("vcpu") or 1), storage


def grading_plan(lab: str, shard_sizes: list[int], instance_type: str, region: str,
                 startup_s: float = STARTUP_S) -> Plan:
    """The plan of grading ``shard_sizes`` submissions per job of ``lab`` on ``instance_type``."""
    price, vcpus, storage = instance_price(instance_type, region)
    fig = figures(lab)
    jobs = []
    for index, size in enumerate(shard_sizes):
        seconds = startup_s + grading_seconds(fig, size, vcpus)
        jobs.append(JobEstimate(f"shard {index}", size, seconds, max_runtime(seconds)))
    return Plan(title=f"grade {sum(shard_sizes)} submission(s) of {lab}", instance_type=instance_type,
                vcpus=vcpus, hourly_usd=price.price_usd, price_source=price.provenance,
                storage_gb_month_usd=storage, jobs=jobs, max_parallel=len(jobs), startup_s=startup_s,
                basis=fig.describe())


def project(submissions: int, instances: int, instance_type: str, fig: Figures, region: str = "us-east-1",
            startup_s: float = STARTUP_S) -> tuple[float, float]:
    """(wall seconds, cost USD) of grading ``submissions`` on ``instances`` jobs of ``instance_type``."""
    from .shards import shard_sizes

    price, vcpus, storage = instance_price(instance_type, region)
    sizes = shard_sizes(submissions, instances)
    plan = Plan(title="projection", instance_type=instance_type, vcpus=vcpus, hourly_usd=price.price_usd,
                price_source=price.provenance, storage_gb_month_usd=storage, max_parallel=len(sizes),
                startup_s=startup_s,
                jobs=[JobEstimate(str(i), n, startup_s + grading_seconds(fig, n, vcpus), 0)
                      for i, n in enumerate(sizes)])
    return plan.wall_s, plan.cost_usd
