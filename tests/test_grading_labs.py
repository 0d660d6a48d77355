"""The hostile suite on the course's real labs: lab 00 (AWS APIs, labkit's checks) and lab 04
(endpoints serving the learner's inference code, a batch transform job). The reference
solution keeps full marks beside every attack; each attack earns what the issue says."""

from __future__ import annotations

import copy
import json
import os
import re
import sys
import uuid
from pathlib import Path

import nbformat
import pytest

from labkit.grading import Limits, grade
from labkit.grading.assignment import prepare_assignment

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "grading"))
import hostile  # noqa: E402
from hostile import TAMPERING, fingerprint, outputs_text  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.notebooks,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the grader's tests need Linux")]


def _lab(lab: str) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    return (nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4),
            nbformat.read(ROOT / "labs" / lab / f"{lab}.ipynb", as_version=4))


def _max_points(nb) -> float:
    """The lab's total: the points of its graded cells (the labs change; the tests follow them)."""
    return float(sum(c.metadata.get("nbgrader", {}).get("points", 0) for c in nb.cells
                     if c.metadata.get("nbgrader", {}).get("grade")))


def _with_cell(nb, after: str | None, source: str):
    """A cell of the learner's own after the cell ``after`` (None: after the first code cell)."""
    nb = copy.deepcopy(nb)
    anchor = next(c for c in nb.cells if c.cell_type == "code") if after is None else hostile._get(nb, after)
    nb.cells.insert(nb.cells.index(anchor) + 1, nbformat.v4.new_code_cell(source))
    return nb


FAKE_IAM = '''import sys, types
fake = types.ModuleType("labkit.checks.iam")
fake.decision = lambda policy, action, resource, context=None: "allowed" if "Get" in action or "Put" in action \\
    else "implicitDeny"
sys.modules["labkit.checks.iam"] = fake
import labkit.checks
labkit.checks.iam = fake
'''
PATCH_IAM = '''import labkit.checks.iam
labkit.checks.iam.decision = lambda policy, action, resource, context=None: "allowed"
'''


@pytest.fixture(scope="module")
def lab00(tmp_path_factory):
    base = tmp_path_factory.mktemp("lab00")
    victims = base / "victims"
    victims.mkdir()
    (victims / "victim.txt").write_text("the victim's data")
    submissions = base / "submissions"
    sol, blank = _lab("00-setup")
    search = ('import linecache, sys\nip = get_ipython()\n'
              'places = {"In": list(In), "_ih": list(_ih), "history": list(ip.history_manager.input_hist_raw), '
              '"linecache": ["".join(e[2]) for e in list(linecache.cache.values()) if isinstance(e, tuple) '
              'and len(e) > 2], "namespace": [repr(v)[:3000] for v in list(globals().values())]}\n'
              'NEEDLES = ["HID" + "DEN", "called with other " + "instance types", "secrets/" + "keys.txt", '
              '"_hash" + "lib"]\n'
              'print("found in history:", {k: len([x for x in v if any(n in str(x) for n in NEEDLES)]) '
              'for k, v in places.items()})\n')
    renamed = copy.deepcopy(sol)
    hostile._get(renamed, "ex2-objects").metadata.nbgrader["grade_id"] = "mine"
    for cell in renamed.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "ex4-answer":
            cell.metadata = {}
    wrong_policy = copy.deepcopy(sol)
    hostile._get(wrong_policy, "ex2-answer").source = (
        'def least_privilege_policy(bucket):\n    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
        '"Action": ["s3:GetObject", "s3:PutObject"], "Resource": "*"}]}\n')
    cases = {
        "solution": sol,
        "tamper_run_cell": _with_cell(blank, None, TAMPERING["tamper_run_cell"]),
        "tamper_input_transformer": _with_cell(blank, None, TAMPERING["tamper_input_transformer"]),
        "fake_checks_module": _with_cell(wrong_policy, "ex1-arguments", FAKE_IAM),
        "patched_check": _with_cell(wrong_policy, "ex1-arguments", PATCH_IAM),
        "history_leak": _with_cell(sol, "ex4-tests", search),
        "planted": _with_cell(_with_cell(sol, "ex1-tests", hostile._plant_code("symlink", victims, None)),
                              "ex3-tests", "import os\nos._exit(1)\n"),
        "metadata": renamed,
    }
    for student, nb in cases.items():
        (submissions / student).mkdir(parents=True)
        nbformat.write(nb, submissions / student / "00-setup.ipynb")
    before = {p: fingerprint(p) for p in (victims / "victim.txt", victims, Path("/etc/passwd"))}
    run = grade("00-setup", submissions, base / "out", course_root=ROOT, workers=2,
                limits=Limits(cell_timeout=60, notebook_timeout=300))
    return {"run": run, "results": run.by_student(), "out": base / "out", "victims": victims,
            "max": _max_points(sol), "changed": [str(p) for p, f in before.items() if fingerprint(p) != f]}


def test_lab00_solution_and_ordinary_variants_keep_full_marks(lab00):
    results = lab00["results"]
    full = lab00["max"]
    assert results["solution"].total == results["solution"].max_score == full and not results["solution"].reasons
    for student in ("history_leak", "planted", "metadata"):
        assert results[student].total == full and not results[student].review, (student, results[student].reasons)
    assert any("came with the id 'mine'" in r for r in results["metadata"].reasons)
    assert any("ex4-answer came without its nbgrader metadata" in r for r in results["metadata"].reasons)
    assert any("kernel died" in r for r in results["planted"].reasons)


def test_lab00_tampering_earns_nothing_and_is_flagged(lab00):
    results = lab00["results"]
    for student in ("tamper_run_cell", "tamper_input_transformer"):
        assert results[student].total == 0 and results[student].review, (student, results[student].reasons)
    for student in ("fake_checks_module", "patched_check"):
        points = {t.grade_id: t.points for t in results[student].tests}
        assert points["ex1-tests"] == points["ex1-arguments"] == 1 and points["ex2-objects"] == 0, (student, points)
        assert results[student].review and "flagged for review" in " ".join(results[student].reasons)


def test_lab00_hidden_tests_stay_out_of_history_and_feedback(lab00):
    text = outputs_text(lab00["out"] / "autograded" / "history_leak" / "00-setup" / "00-setup.ipynb")
    counts = text.split("found in history:", 1)[1].split("\n", 1)[0]
    assert set(json.loads(counts.replace("'", '"')).values()) == {0}, counts
    assignment = prepare_assignment("00-setup", lab00["out"].parent / "prep", ROOT)
    for page in (lab00["out"] / "feedback").rglob("*.html"):
        text = re.sub(r"<pre>.*?</pre>", "", page.read_text(), flags=re.S)
        assert not assignment.secrets.leaked_by(re.sub(r"<[^>]+>", " ", text)), page


def test_lab00_links_planted_by_a_submission_change_nothing(lab00):
    assert lab00["changed"] == []
    assert sorted(os.listdir(lab00["victims"])) == ["victim.txt"]


@pytest.fixture(scope="module")
def lab04(tmp_path_factory):
    base = tmp_path_factory.mktemp("lab04")
    victims = base / "victims"
    victims.mkdir()
    (victims / "victim.txt").write_text("the victim's data")
    nonce = uuid.uuid4().hex[:8]
    sol, blank = _lab("04-endpoints")
    plant = hostile._plant_code("symlink", victims, None) + (
        f'import subprocess, sys\nsubprocess.Popen([sys.executable, "-c", "import time\\nwhile True: time.sleep(1)",'
        f' "labkit-lab04-daemon-{nonce}"], start_new_session=True)\n')
    tampered = _with_cell(blank, None, TAMPERING["tamper_run_cell"] + TAMPERING["tamper_input_transformer"]
                          + TAMPERING["tamper_import_hook"])
    submissions = base / "submissions"
    for student, nb in {"solution_planting": _with_cell(sol, "ex1-tests", plant), "tampered": tampered}.items():
        (submissions / student).mkdir(parents=True)
        nbformat.write(nb, submissions / student / "04-endpoints.ipynb")
    before = {p: fingerprint(p) for p in (victims / "victim.txt", victims, Path("/etc/passwd"))}
    run = grade("04-endpoints", submissions, base / "out", course_root=ROOT, workers=2,
                limits=Limits(cell_timeout=120, notebook_timeout=600))
    alive = [pid for pid in filter(str.isdigit, os.listdir("/proc"))
             if f"labkit-lab04-daemon-{nonce}".encode() in _cmdline(pid)]
    return {"run": run, "results": run.by_student(), "alive": alive, "victims": victims, "max": _max_points(sol),
            "changed": [str(p) for p, f in before.items() if fingerprint(p) != f]}


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_lab04_solution_keeps_full_marks_while_planting_links(lab04):
    result = lab04["results"]["solution_planting"]
    assert result.total == result.max_score == lab04["max"], (result.reasons, [(t.grade_id, t.message) for t in result.tests])
    assert not result.review
    assert lab04["changed"] == [] and sorted(os.listdir(lab04["victims"])) == ["victim.txt"]
    assert lab04["alive"] == []


def test_lab04_tampering_earns_nothing_and_is_flagged(lab04):
    result = lab04["results"]["tampered"]
    assert result.total == 0 and result.review, result.reasons
