"""Grading at scale: measured here, projected for SageMaker Processing (``labkit grade --on sagemaker``).

1. **Measure** (this machine): a class of mixed submissions of lab 00 (the kinds of
   ``bench_grading``) graded locally with ``labkit.grading.grade`` (workers = cores), and one
   submission alone. CPU seconds per submission (every process: user + system), the fixed
   seconds of a run and the parallel efficiency are written to ``src/labkit/scale/measured.json``,
   which ``labkit grade --on sagemaker`` reads for its estimate.
2. **Same class through SageMaker** on the offline backend: 4 processing jobs, really running
   here in parallel, the first attempt of one shard failing on purpose (retried); the merged
   ``grades.csv`` is compared byte for byte with the local run's.
3. **Project** classes of 100, 1,000 and 10,000 submissions onto processing instances (wall time and
   cost per instance type and count) with :mod:`labkit.scale.plan`: the measured figures, AWS's
   start-up overhead (source in the table) and the dated prices of ``data/pricing/``. Chart:
   ``docs/grading-at-scale.png``.

``LABKIT_BENCH_SCALE_COUNT`` (default 40) sets the class size, ``LABKIT_BENCH_SCALE_LABS`` (default
``00-setup``) which labs are measured (labs other than 00 alternate the solution and the blank
learner version).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import nbformat

from bench import bench_grading

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "docs" / "grading-at-scale.png"
CLASS_SIZES = (100, 1000, 10000)
INSTANCE_TYPES = ("ml.m5.large", "ml.m5.xlarge", "ml.c5.2xlarge", "ml.c5.4xlarge")
COUNTS = (1, 4, 16, 64)


def _cpu() -> float:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def _machine_busy() -> float:
    """CPU seconds the whole machine has been busy (every process, ours included), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _machine() -> str:
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _notebooks(lab: str) -> tuple[dict[str, nbformat.NotebookNode], list[str]]:
    solution, release = ROOT / "solutions" / lab / f"{lab}.ipynb", ROOT / "labs" / lab / f"{lab}.ipynb"
    if lab == bench_grading.LAB:
        return bench_grading.submissions(solution, release), list(bench_grading.KINDS)
    return ({"full": nbformat.read(solution, as_version=4), "blank": nbformat.read(release, as_version=4)},
            ["full", "blank"])


def write_class(lab: str, folder: Path, count: int) -> None:
    notebooks, kinds = _notebooks(lab)
    for i in range(count):
        kind = kinds[i % len(kinds)]
        target = folder / f"s{i:03d}-{kind.replace('_', '-')}" / f"{lab}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(notebooks[kind], indent=1))


def measure(lab: str, count: int, work: Path) -> dict:
    """Grade ``count`` submissions, then one, locally; the figures ``measured.json`` holds.

    This machine is shared, so wall seconds depend on what else runs. The figures the estimate
    uses do not: CPU seconds per submission (``getrusage`` of every process of the grader), the
    fixed CPU seconds of a run (a one-submission run less one submission), and the parallel
    efficiency as the CPU the grader used over the CPU the other processes left it
    (``cores x wall - others``, the others' share read from /proc/stat).
    """
    from labkit.grading import grade

    cores = os.cpu_count() or 1
    folder = work / f"{lab}-class"
    write_class(lab, folder, count)
    cpu0, busy0, wall0 = _cpu(), _machine_busy(), time.perf_counter()
    grade(lab, folder, work / f"{lab}-local", course_root=ROOT, workers=cores)
    wall, cpu, busy = time.perf_counter() - wall0, _cpu() - cpu0, _machine_busy() - busy0
    others = max(0.0, busy - cpu)
    one = work / f"{lab}-one"
    write_class(lab, one, 1)
    cpu1, wall1 = _cpu(), time.perf_counter()
    grade(lab, one, work / f"{lab}-one-out", course_root=ROOT, workers=1)
    wall_one, cpu_one = time.perf_counter() - wall1, _cpu() - cpu1
    per = cpu / count
    fixed = max(0.0, cpu_one - per)
    left = max(cores * wall - others, 1e-6)
    return {"submissions": count, "workers": cores, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "cpu_s_per_submission": round(per, 3), "one_submission_wall_s": round(wall_one, 2),
            "one_submission_cpu_s": round(cpu_one, 2), "fixed_s": round(fixed, 2),
            "others_cpu_s": round(others, 1), "efficiency": round(min(1.0, cpu / left), 3),
            "efficiency_wall": round(min(1.0, cpu / (cores * wall)), 3), "load_average": round(os.getloadavg()[0], 2)}


def through_sagemaker(lab: str, work: Path) -> dict:
    """The measured class again, through ``--on sagemaker`` offline: 4 jobs, one fault, same grades?"""
    import labkit
    from labkit.scale.grading import grade_on_sagemaker

    connection = labkit.connect("bench-scale", backend="offline", quiet=True)
    lines: list[str] = []
    started = time.perf_counter()
    result = grade_on_sagemaker(lab, work / f"{lab}-class", work / f"{lab}-sagemaker", course_root=ROOT,
                                instances=4, workers=1, faults={"s001": 1}, connection=connection,
                                log=lines.append)
    wall = time.perf_counter() - started
    same = ((work / f"{lab}-local" / "grades.csv").read_bytes()
            == (work / f"{lab}-sagemaker" / "grades.csv").read_bytes())
    return {"wall_s": round(wall, 1), "identical_grades_csv": same, "jobs": len(result.outcomes),
            "attempts": sum(len(o.attempts) for o in result.outcomes), "retried": [o.spec.key for o in result.retried],
            "ok": result.ok, "expected_wall_s": round(result.plan.wall_s, 1), "log": lines[-3:]}


def write_measured(figures: dict[str, dict], offline: dict) -> Path:
    from labkit.scale.plan import MEASURED, _measured

    data = {"written_by": "bench/bench_scale.py", "measured_on": dt.date.today().isoformat(), "machine": _machine(),
            "grading": figures, "offline_sagemaker": offline}
    MEASURED.write_text(json.dumps(data, indent=1) + "\n")
    _measured.cache_clear()
    return MEASURED


def projections(lab: str) -> list[dict]:
    from labkit.scale.plan import figures, project

    fig = figures(lab)
    rows = []
    for itype in INSTANCE_TYPES:
        for count in COUNTS:
            row = {"type": itype, "instances": count}
            for n in CLASS_SIZES:
                row[n] = project(n, count, itype, fig)
            rows.append(row)
    return rows


def local_wall(lab: str, n: int) -> float:
    from labkit.scale.plan import figures, grading_seconds

    return grading_seconds(figures(lab), n, os.cpu_count() or 1)


def _fmt(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def chart(lab: str, rows: list[dict]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CLASS_SIZES), figsize=(13, 4.2), sharey=False)
    for ax, n in zip(axes, CLASS_SIZES, strict=True):
        for itype in INSTANCE_TYPES:
            points = [(r[n][1], r[n][0] / 60, r["instances"]) for r in rows if r["type"] == itype]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=itype)
            for cost, minutes, count in points:
                ax.annotate(str(count), (cost, minutes), textcoords="offset points", xytext=(4, 3), fontsize=7)
        ax.axhline(local_wall(lab, n) / 60, color="grey", linestyle="--", linewidth=1,
                   label=f"this machine ({os.cpu_count()} cores)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{n:,} submissions of {lab}")
        ax.set_xlabel("cost (USD, log)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("wall time (minutes, log)")
    axes[0].legend(fontsize=7)
    fig.suptitle("labkit grade --on sagemaker: projected wall time vs cost (numbers: processing jobs)", fontsize=10)
    fig.tight_layout()
    CHART.parent.mkdir(exist_ok=True)
    fig.savefig(CHART, dpi=110)
    plt.close(fig)
    return CHART


def main() -> str:
    from labkit.cost import catalogue as cat
    from labkit.scale.plan import STARTUP_S, STARTUP_SOURCE, figures

    count = int(os.environ.get("LABKIT_BENCH_SCALE_COUNT", 40))
    labs = [x for x in os.environ.get("LABKIT_BENCH_SCALE_LABS", bench_grading.LAB).split(",") if x]
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        measured = {lab: measure(lab, count, work) for lab in labs}
        write_measured(measured, {})
        offline = through_sagemaker(labs[0], work)
        write_measured(measured, {labs[0]: offline})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lab = labs[0]
    rows = projections(lab)
    chart(lab, rows)
    prices = cat.load()
    price_of = {t: prices.sagemaker_instance(t, "processing") for t in INSTANCE_TYPES}
    lines = ["## Grading at scale (SageMaker Processing)", "",
             f"Measured here: {count} mixed submissions of each lab graded locally (workers = cores), and one alone. "
             "Stored in `src/labkit/scale/measured.json`, which `labkit grade --on sagemaker` reads for its estimate.",
             "This machine is shared: the wall seconds depend on the other work (its CPU seconds, from "
             "/proc/stat, are in the table); the figures the estimate uses do not: CPU seconds per submission, "
             "the fixed CPU seconds of a run (one submission graded alone, less one submission), and the parallel "
             "efficiency as the CPU the grader used over the CPU the other processes left it (on a saturated "
             "machine this ratio tends to 100%: compare the grading benchmark's idle-machine figure, CPU seconds "
             "x submissions / (cores x wall)).",
             "", "| lab | CPU s per submission | fixed CPU s per run | parallel efficiency (of the CPU left) | "
             "wall s (class) | other processes' CPU s meanwhile | load average |", "|---|---|---|---|---|---|---|"]
    for name, m in measured.items():
        lines.append(f"| {name} | {m['cpu_s_per_submission']:.2f} | {m['fixed_s']:.1f} | {m['efficiency']:.0%} | "
                     f"{m['wall_s']:.1f} | {m['others_cpu_s']:.0f} | {m['load_average']:.2f} |")
    lines += ["", f"The same {count} submissions through `--on sagemaker` on the offline backend (4 processing jobs "
              f"running here in parallel, 1 worker each; shard s001's first attempt fails on purpose): "
              f"{offline['wall_s']:.1f} s wall, {offline['jobs']} jobs, {offline['attempts']} attempts "
              f"(retried: {', '.join(offline['retried']) or 'none'}); merged `grades.csv` identical to the local "
              f"run's: **{'yes' if offline['identical_grades_csv'] else 'NO'}**.", ""]
    fig = figures(lab)
    lines += [f"Projection for lab {lab}: expected wall time / cost, every job in parallel (one shard each), "
              f"{STARTUP_S / 60:.0f} min start-up per job ({STARTUP_SOURCE}); grading time = fixed + n x "
              f"{fig.cpu_s:.2f} CPU s / (vCPUs x {fig.efficiency:.0%}), one vCPU as fast as one core here (an "
              "assumption); billed per second for the whole job plus 30 GB of ML storage. Prices: "
              + "; ".join(f"{t} ${p.price_usd:g}/h ({p.provenance})" for t, p in price_of.items()) + ".", "",
              "| instance type | instances | " + " | ".join(f"{n:,} submissions" for n in CLASS_SIZES) + " |",
              "|---|---|" + "---|" * len(CLASS_SIZES)]
    lines.append(f"| this machine ({os.cpu_count()} cores) | - | "
                 + " | ".join(f"{_fmt(local_wall(lab, n))} / -" for n in CLASS_SIZES) + " |")
    for r in rows:
        lines.append(f"| {r['type']} | {r['instances']} | "
                     + " | ".join(f"{_fmt(r[n][0])} / ${r[n][1]:,.2f}" for n in CLASS_SIZES) + " |")
    lines += ["", f"![wall time vs cost]({CHART.name})", "", "Reading it (computed from the table):"]
    for n in CLASS_SIZES:
        cheapest = min(rows, key=lambda r: r[n][1])
        fastest = min(rows, key=lambda r: (round(r[n][0] / 60), r[n][1]))
        lines.append(f"- {n:,} submissions: cheapest {cheapest['instances']} x {cheapest['type']} "
                     f"({_fmt(cheapest[n][0])}, ${cheapest[n][1]:,.2f}); fastest {fastest['instances']} x "
                     f"{fastest['type']} ({_fmt(fastest[n][0])}, ${fastest[n][1]:,.2f}), "
                     f"{fastest[n][1] / cheapest[n][1]:.1f}x the cost; this machine: {_fmt(local_wall(lab, n))}.")
    lines.append("- Each job pays its start-up (and is billed for it): for a small class more instances add cost "
                 "without finishing much sooner; for a large one the wall time falls with the instance count while "
                 "the CPU hours, hence most of the cost, stay the same.")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
