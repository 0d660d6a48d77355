"""Stress check: the course, run again and again while a CPU hog keeps every core busy.

    python -m bench.stress                       # 5 x the whole course, then 10 x labs 02-05, hog on
    python -m bench.stress --course 1 --lab-runs 3
    python -m bench.stress --labs 02-distributed-training --lab-runs 20 --no-hog

A course that passes only on an idle machine fails learners on a laptop that is busy with
something else and CI on a shared runner. This runs each lab's solution the way ``labkit run``
does (:func:`labkit.runner.execute`, two at a time) while one busy-looping process per core
competes for the CPU, counts the runs that did not pass (wrong score, error, crash) and says
why, with the root cause of every failed job or endpoint. Target: 0 failures. The table goes
to the console and to the ``stress`` section of docs/benchmarks.md (``--no-write`` keeps it out).

It is long (the full default is about 5 x the course plus 40 lab runs, hours on 2 cores):
``--course`` and ``--lab-runs`` scale it down. Each run executes in its own folder under
``build/stress/`` with its notebook and logs, kept when the run failed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field

from labkit.authoring import REPO, lab_names
from labkit.runner import Execution, execute

STRESS_LABS = ("02-distributed-training", "03-hyperparameter-tuning", "04-endpoints", "05-mlops")
OUT = REPO / "build" / "stress"


def _spin(parent: int) -> None:
    """Keep one core busy until the parent process is gone (or this process is terminated)."""
    n = 0
    while True:
        n += 1
        if n % 2_000_000 == 0 and os.getppid() != parent:
            return


class Hog:
    """One busy process per core (``cores`` of them), started and stopped with the block."""

    def __init__(self, cores: int):
        self.cores = cores
        self.procs: list[multiprocessing.Process] = []

    def __enter__(self) -> Hog:
        context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        for _ in range(self.cores):
            proc = context.Process(target=_spin, args=(os.getpid(),), daemon=True, name="labkit-stress-hog")
            proc.start()
            self.procs.append(proc)
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()


@dataclass
class Tally:
    """What the runs of one lab gave."""

    lab: str
    seconds: list[float] = field(default_factory=list)
    failed: list[Execution] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return len(self.seconds)


def _run(lab: str, out_dir: str) -> Execution:
    return execute(lab, "solution", out_dir=OUT / out_dir)


def run_rounds(rounds: list[list[str]], workers: int, tallies: dict[str, Tally], phase: str) -> None:
    """Execute each round's labs (``workers`` at a time), round after round, printing each result."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for number, labs in enumerate(rounds, 1):
            started = time.monotonic()
            futures = {pool.submit(_run, lab, f"{phase}-{number}/{i}-{lab}"): (i, lab) for i, lab in enumerate(labs)}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    i, lab = futures[future]
                    try:
                        result = future.result()
                    except Exception as err:  # the runner itself broke: a failure to count
                        result = Execution(lab, "solution", 0.0, 0.0, 0.0, crashed=f"{type(err).__name__}: {err}")
                    tally = tallies.setdefault(lab, Tally(lab))
                    tally.seconds.append(result.seconds)
                    print(f"  [{phase} {number}/{len(rounds)}] {result.line()}", flush=True)
                    if result.ok:
                        shutil.rmtree(OUT / f"{phase}-{number}" / f"{i}-{lab}", ignore_errors=True)
                    else:
                        tally.failed.append(result)
                        print("    " + result.problems()[:500], flush=True)
                        for cause in result.root_causes():
                            print("    " + cause.replace("\n", "\n      ")[:1500], flush=True)
            print(f"  round {phase} {number} done in {time.monotonic() - started:.0f} s", flush=True)


def table(tallies: dict[str, Tally], course: int, lab_runs: int, labs: list[str], cores: int,
          wall: float, cpu: float, load: tuple[float, float]) -> str:
    runs = sum(t.runs for t in tallies.values())
    failures = sum(len(t.failed) for t in tallies.values())
    hog = f"a CPU hog of {cores} busy processes (one per core)" if cores else "no CPU hog"
    lines = [
        "## Stress: the course under a CPU hog",
        "",
        f"`python -m bench.stress --course {course} --lab-runs {lab_runs}`: the whole course {course} time(s) "
        f"back to back, then {', '.join(lab.split('-')[0] for lab in labs)} {lab_runs} more time(s) each, "
        f"solutions executed as `labkit run` does (two at a time), while {hog} competed for the CPU. "
        f"Target: 0 failures.",
        "",
        "| lab | runs | failures | median s | slowest s |",
        "|---|---|---|---|---|",
    ]
    for lab in sorted(tallies):
        t = tallies[lab]
        lines.append(f"| {lab} | {t.runs} | {len(t.failed)} | {statistics.median(t.seconds):.1f} | "
                     f"{max(t.seconds):.1f} |")
    lines.append(f"| **all** | {runs} | **{failures}** | | |")
    lines += ["", f"Wall time {wall / 60:.1f} min; CPU time of the runs (user + system, every process) "
                  f"{cpu / 60:.1f} min. Load average (1 min) at the start / end: {load[0]:.1f} / {load[1]:.1f} "
                  f"on {os.cpu_count()} cores (other work shares this machine)."]
    for t in tallies.values():
        for r in t.failed:
            lines.append(f"- {r.lab} failed: {r.problems()[:300]}")
    return "\n".join(lines)


def _cpu_seconds() -> float:
    """CPU seconds of this process and of every finished process below it (the hog's are still running)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stress", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--course", type=int, default=5, help="whole-course runs (default 5)")
    parser.add_argument("--lab-runs", type=int, default=10, help="further runs of each --labs lab (default 10)")
    parser.add_argument("--labs", default=",".join(STRESS_LABS), help="labs run again (default: 02-05)")
    parser.add_argument("--workers", type=int, default=2, help="labs executed at a time (default 2, as labkit run)")
    parser.add_argument("--hog", dest="hog", action="store_true", default=True,
                        help="one busy process per core while the runs go (default)")
    parser.add_argument("--no-hog", dest="hog", action="store_false")
    parser.add_argument("--no-write", dest="write", action="store_false", help="do not write docs/benchmarks.md")
    args = parser.parse_args(argv)
    labs = [lab for lab in args.labs.split(",") if lab]
    unknown = sorted(set(labs) - set(lab_names()))  # a lab named twice runs twice at a time
    if unknown:
        print(f"unknown lab(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    cores = (os.cpu_count() or 1) if args.hog else 0
    rounds_course = [lab_names() for _ in range(args.course)]
    rounds_labs = [labs for _ in range(args.lab_runs)]
    print(f"Stress: {args.course} x the course ({len(lab_names())} labs), then {args.lab_runs} x {len(labs)} labs; "
          f"{cores} hog process(es); runs in {OUT.relative_to(REPO)}/", flush=True)
    shutil.rmtree(OUT, ignore_errors=True)
    tallies: dict[str, Tally] = {}
    load_start = os.getloadavg()[0]
    started, cpu_before = time.monotonic(), _cpu_seconds()
    with Hog(cores):
        run_rounds(rounds_course, args.workers, tallies, "course")
        run_rounds(rounds_labs, args.workers, tallies, "labs")
        wall, cpu = time.monotonic() - started, _cpu_seconds() - cpu_before  # before the hog is reaped
    text = table(tallies, args.course, args.lab_runs, labs, cores, wall, cpu, (load_start, os.getloadavg()[0]))
    print("\n" + text, flush=True)
    if args.write:
        from bench.run import DOC, write_section

        write_section("stress", text)
        print(f"wrote the stress section of {DOC}")
    return 0 if not any(t.failed for t in tallies.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
