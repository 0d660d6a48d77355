"""The ``labkit`` command: run the course, grade a class, check the set-up, count the cost.

    labkit run [LAB ...]          execute lab solutions offline; pass/fail, time, cost
    labkit check [LAB ...]        execute solutions and learner versions (what CI runs)
    labkit generate [LAB ...]     regenerate labs/ from solutions/ (nbgrader)
    labkit release [--out DIR]    build the learner copy: labs, lectures, data, package; no answers
    labkit grade LAB FOLDER       grade a folder of submissions
    labkit cleanup                list (and with --yes delete) resources left by labs
    labkit cost                   the price catalogue: show or refresh
    labkit doctor                 what backend, versions and kernel are in use
    labkit backend                the shared offline backend: status, start, stop, reset
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Each sub-command lives in the module that owns the work; this file only routes.
COMMANDS = {
    "run": ("labkit.runner", "main_run"),
    "check": ("labkit.runner", "main_check"),
    "generate": ("labkit.authoring", "main"),
    "release": ("labkit.release", "main"),
    "grade": ("labkit.grading.cli", "main"),
    "cleanup": ("labkit.cost.cli", "main_cleanup"),
    "cost": ("labkit.cost.cli", "main_cost"),
    "doctor": ("labkit.doctor", "main"),
    "backend": ("labkit.offline.shared", "main"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="labkit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=sorted(COMMANDS))
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    args, rest = parser.parse_known_args(argv[:1])
    module_name, function = COMMANDS[args.command]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            print(f"labkit {args.command}: not available in this version ({module_name} is missing).",
                  file=sys.stderr)
            return 2
        raise
    return int(getattr(module, function)(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
