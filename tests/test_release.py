"""The learner copy (``labkit release``): everything a learner needs, none of the answers.

One module-scoped build; the tests grep it for every hidden test line, solution line, model answer
and answer-key entry of the instructor's sources, and run lab 00's learner version from it offline,
with the copy's own package and data (the current environment's dependencies, so it stays cheap).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import pytest

from labkit import release
from labkit.authoring import REPO, lab_names


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    return release.build(out), out


def test_the_copy_has_what_a_learner_needs(copy):
    folder, out = copy
    for lab in lab_names():
        assert (folder / "labs" / lab / f"{lab}.ipynb").exists(), lab
        assert (folder / "notebooks" / f"{lab}.ipynb").exists(), lab
    for name in ("course.py", "pyproject.toml", "environment.yml", "README.md", "src/labkit/offline/dispatch.py",
                 "data/pricing/ec2.json", "data/interview/scenarios.json", "data/interview/practice-key.json"):
        assert (folder / name).exists(), name
    assert "labkit release" not in (folder / "README.md").read_text()  # the learners' README, not the instructor's
    with tarfile.open(out / f"{release.NAME}.tar.gz") as tar:
        names = tar.getnames()
    assert f"{release.NAME}/labs/00-setup/00-setup.ipynb" in names and len(names) > 100


def test_the_copy_holds_no_answer(copy):
    folder, _ = copy
    for instructor_only in ("solutions", "autograder", "tests", "bench", ".git", ".ci", "docs"):
        assert not (folder / instructor_only).exists(), instructor_only
    found = release.leaks(folder)
    assert found == [], "instructor-only material in the learner copy:\n" + "\n".join(found[:20])


def test_the_secrets_are_really_looked_for():
    found = release.secrets()
    assert len(found["hidden tests"]) > 300 and len(found["solutions"]) > 300
    assert found["answer keys"] and found["model answers"]
    nb = json.loads((REPO / "solutions" / "12-interview-practice" / "12-interview-practice.ipynb").read_text())
    hidden = next("".join(c["source"]) for c in nb["cells"] if c["id"] == "ex1-tests")
    assert any(line in hidden for line in found["hidden tests"])


def test_a_planted_answer_is_caught(copy, tmp_path):
    folder, _ = copy
    planted = tmp_path / "planted"
    (planted / "labs").mkdir(parents=True)
    secret = sorted(release.secrets()["solutions"])[0]
    (planted / "labs" / "notes.py").write_text(f"# copied from a friend\n{secret}\n")
    (planted / "solutions").mkdir()
    found = release.leaks(planted)
    assert any(f.startswith("solutions: labs/notes.py") for f in found)
    assert "instructor folder: solutions/" in found


@pytest.mark.notebooks
def test_lab_00_runs_from_the_copy_offline(copy, tmp_path):
    folder, _ = copy
    script = ("from labkit.authoring import REPO\nfrom labkit.runner import execute\n"
              f"assert str(REPO) == {str(folder)!r}, REPO\n"
              "r = execute('00-setup', 'learner')\n"
              "print('crashed', repr(r.crashed), 'outside', r.errors_outside_exercises, 'score', r.score)\n"
              "assert not r.crashed and not r.errors_outside_exercises and r.score == 0\n")
    env = {**os.environ, "PYTHONPATH": str(folder / "src"), "LABKIT_BACKEND": "offline", "MPLBACKEND": "Agg"}
    env.pop("LABKIT_DATA", None)
    done = subprocess.run([sys.executable, "-c", script], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
