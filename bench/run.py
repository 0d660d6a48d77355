"""Run the benchmarks and write docs/benchmarks.md.

    python -m bench.run              # every bench/bench_*.py
    python -m bench.run connect      # only bench/bench_connect.py

Each ``bench_<name>.py`` has ``main() -> str`` returning a markdown section (a heading
and a table). Targets live here, in the tables, never in unit tests.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import platform
import sys
from pathlib import Path

# Benchmarks measure a private, embedded backend (as grading and tests use), never the user's shared
# one; bench_endpoint measures the shared mode with a private LABKIT_HOME of its own.
os.environ.setdefault("LABKIT_OFFLINE_MODE", "embedded")

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "benchmarks.md"


def machine() -> str:
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}")


def read_sections() -> dict[str, str]:
    """The sections of docs/benchmarks.md by name (``<!-- bench: name -->``)."""
    sections: dict[str, list[str]] = {}
    if DOC.exists():
        current = None
        for line in DOC.read_text().splitlines():
            if line.startswith("<!-- bench:"):
                current = line.split(":", 1)[1].strip(" ->")
                sections[current] = []
            elif current:
                sections[current].append(line)
    return {k: "\n".join(v).strip() for k, v in sections.items()}


def write_sections(sections: dict[str, str]) -> None:
    body = "\n\n".join(f"<!-- bench: {k} -->\n{v}" for k, v in sorted(sections.items()))
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text("# Benchmarks\n\nWritten by `python -m bench.run`; each "
                   f"section says when and where it was measured.\n\n{body}\n")


def write_section(name: str, table: str) -> None:
    """Replace (or add) one section of docs/benchmarks.md, stamped with the date and the machine."""
    sections = read_sections()
    sections[name] = f"{table}\n\n_Measured {dt.date.today().isoformat()} on {machine()}._"
    write_sections(sections)


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    for name in names:
        print(f"== bench {name}", flush=True)
        module = importlib.import_module(f"bench.bench_{name}")
        table = module.main()
        print(table, flush=True)
        write_section(name, table)  # each as it is done, other sections kept
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
