"""labkit.connect() time (first and later) and lab 00's offline execution time."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

FIRST = ("import time; t = time.perf_counter(); import labkit; labkit.connect('bench', quiet=True); "
         "print(time.perf_counter() - t)")


def _first_connect() -> float:
    env = dict(os.environ, LABKIT_OFFLINE_MODE="embedded")  # shared mode: bench_endpoint
    out = subprocess.run([sys.executable, "-c", FIRST], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> str:
    import labkit
    from labkit.runner import execute

    first = [_first_connect() for _ in range(3)]
    labkit.connect("bench", quiet=True)
    again = []
    for _ in range(5):
        t = time.perf_counter()
        labkit.connect("bench", quiet=True)
        again.append(time.perf_counter() - t)
    lab00 = execute("00-setup", "solution")
    rows = [
        ("`labkit.connect()` in a new process (import + start + seed)", statistics.median(first), "< 3 s"),
        ("`labkit.connect()` again in the same process (fresh account)", statistics.median(again), "< 1 s"),
        ("lab 00 solution, executed by papermill (kernel start included)", lab00.seconds, "< 60 s"),
    ]
    lines = ["## Course skeleton", "", "| what | median seconds | target |", "|---|---|---|"]
    lines += [f"| {what} | {value:.2f} | {target} |" for what, value, target in rows]
    return "\n".join(lines)
