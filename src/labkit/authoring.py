"""Generate the learner labs (``labs/``) from the instructor sources (``solutions/``).

A lab is written once, as an nbgrader source notebook in ``solutions/<lab>/``;
``nbgrader generate_assignment`` turns it into the learner version (solutions cleared,
hidden tests removed, cells locked and checksummed). We run it in a private, temporary
course folder so that generating never touches the instructor's gradebook, and the
same function tells whether the committed ``labs/`` is stale.

    labkit generate            # all labs
    labkit generate 00-setup   # one lab
    labkit generate --check    # exit 1 if labs/ differs from what solutions/ generates
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOLUTIONS = REPO / "solutions"
LABS = REPO / "labs"


def lab_names() -> list[str]:
    """Every lab with a source notebook, in course order (in a learner copy: every learner lab)."""
    folder = SOLUTIONS if SOLUTIONS.is_dir() else LABS
    return sorted(p.name for p in folder.iterdir() if (p / f"{p.name}.ipynb").exists())


def strip_outputs(path: Path) -> bool:
    """Clear outputs and execution counts of a notebook in place; True if it changed."""
    nb = json.loads(path.read_text())
    changed = False
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and (cell.get("outputs") or cell.get("execution_count")):
            cell["outputs"], cell["execution_count"] = [], None
            changed = True
    if changed:
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return changed


def ensure_scripts_on_path() -> None:
    """Put this interpreter's scripts folder on PATH: nbgrader runs the ``alembic`` command.

    Without it, nbgrader fails when the virtual environment is used without being
    activated (``.venv/bin/labkit ...``).
    """
    scripts = str(Path(sys.executable).parent)
    if shutil.which("alembic") is None or scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")


def generate_to(lab: str, dest_root: Path) -> Path:
    """Generate the learner version of ``lab`` into ``dest_root/<lab>``; return that folder."""
    ensure_scripts_on_path()
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    from .grading.assignment import create_gradebook

    if not (SOLUTIONS / lab / f"{lab}.ipynb").exists():
        raise FileNotFoundError(f"no source notebook solutions/{lab}/{lab}.ipynb "
                                f"(labs with sources: {', '.join(lab_names())})")
    with tempfile.TemporaryDirectory(prefix="labkit-generate-") as tmp:
        root = Path(tmp)
        shutil.copytree(SOLUTIONS / lab, root / "source" / lab,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc"))
        config = Config()
        config.CourseDirectory.root = str(root)
        config.CourseDirectory.course_id = "ml-infra-aws"
        # Made here, not by nbgrader: its Gradebook stamps a new database through an ``alembic``
        # subprocess, seconds per lab on a busy machine (``labkit generate --check``, CI).
        create_gradebook(root / "gradebook.db")
        config.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
        config.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
        config.ClearSolutions.text_stub = "YOUR ANSWER HERE"
        config.GenerateAssignment.create_assignment = True
        config.Exchange.root = str(root / "exchange")
        api = NbGraderAPI(CourseDirectory(config=config), config=config)
        result = api.generate_assignment(lab, force=True)
        if not result["success"]:
            raise RuntimeError(f"nbgrader could not generate {lab}:\n{result['log']}\n{result.get('error', '')}")
        out = dest_root / lab
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(root / "release" / lab, out)
    for nb in out.glob("*.ipynb"):
        strip_outputs(nb)
    return out


def stale(lab: str) -> list[str]:
    """Files of ``labs/<lab>`` that differ from a fresh generation (empty when up to date)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate_to(lab, Path(tmp))
        committed = LABS / lab
        if not committed.exists():
            return [f"labs/{lab}/ (missing)"]
        comparison = filecmp.dircmp(fresh, committed, ignore=[".ipynb_checkpoints", "__pycache__"])
        return _differences(comparison, f"labs/{lab}")


def _differences(cmp: filecmp.dircmp, prefix: str) -> list[str]:
    diffs = [f"{prefix}/{n}" for n in cmp.left_only + cmp.right_only]
    for name in cmp.common_files:
        if not filecmp.cmp(Path(cmp.left) / name, Path(cmp.right) / name, shallow=False):
            diffs.append(f"{prefix}/{name}")
    for name, sub in cmp.subdirs.items():
        diffs += _differences(sub, f"{prefix}/{name}")
    return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labkit generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labs", nargs="*", help="labs to generate (default: all)")
    parser.add_argument("--check", action="store_true", help="only report stale labs; exit 1 if any")
    args = parser.parse_args(argv)
    labs = args.labs or lab_names()
    if args.check:
        problems = {lab: stale(lab) for lab in labs}
        problems = {k: v for k, v in problems.items() if v}
        for lab, files in problems.items():
            print(f"{lab}: stale: {', '.join(files)}. Run `labkit generate {lab}` and commit labs/{lab}.")
        return 1 if problems else 0
    for lab in labs:
        for nb in (SOLUTIONS / lab).glob("*.ipynb"):
            if strip_outputs(nb):
                print(f"cleared outputs of {nb.relative_to(REPO)}")
        out = generate_to(lab, LABS)
        print(f"generated {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
