"""The autograder end to end: a class of real submissions, hostile ones included.

One module-scoped run grades the ``mini`` fixture lab (tests/fixtures/grading/course) for
every case in tests/fixtures/grading/hostile.py in parallel; each test checks one case.
"""

from __future__ import annotations

import csv
import html
import json
import os
import shutil
import socket
import sys
import uuid
from pathlib import Path

import nbformat
import pytest

from labkit.grading import Limits, grade
from labkit.grading.cli import main as grade_cli

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "grading"))
import hostile  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "grading" / "course"
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the grader's tests need Linux")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("grading")
    course = base / "course"
    shutil.copytree(FIXTURE, course)
    (course / "autograder").mkdir()
    (course / "autograder" / "gradebook-secret.txt").write_text("### BEGIN SOLUTION (instructor only)")
    (course / "sentinel.txt").write_text("must survive")
    nonce = uuid.uuid4().hex[:10]
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.setblocking(False)
    submissions, out = base / "submissions", base / "out"
    cases = hostile.build(course / "solutions" / "mini" / "mini.ipynb", nonce, server.getsockname()[1], course,
                          submissions, out)
    release_dir = base / "release"
    # the learner version, as nbgrader generates it (the grader makes the same one privately)
    from labkit.grading.assignment import prepare_assignment

    assignment = prepare_assignment("mini", base / "prep", course)
    shutil.copytree(assignment.release_dir, release_dir)
    hostile.write(submissions, cases, release_dir / "mini.ipynb", nested=("deleted_tests",))
    run = grade("mini", submissions, out, course_root=course, workers=2,
                limits=Limits(cell_timeout=4, notebook_timeout=90, memory_mb=3072))
    try:
        conn, _ = server.accept()
        received = conn.recv(100)
    except BlockingIOError:
        received = b""
    server.close()
    return {"run": run, "out": out, "course": course, "nonce": nonce, "received": received,
            "results": run.by_student(), "submissions": submissions}


def executed_text(graded, student: str) -> str:
    nb = nbformat.read(graded["out"] / "autograded" / student / "mini" / "mini.ipynb", as_version=4)
    return "\n".join(str(o) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_every_case_gets_the_grade_its_surviving_cells_earn(graded):
    totals = {s: r.total for s, r in graded["results"].items()}
    assert totals == hostile.EXPECTED


def test_grades_csv_has_totals_and_per_test_scores(graded):
    rows = {r["student"]: r for r in csv.DictReader((graded["out"] / "grades.csv").open())}
    assert set(rows) == set(hostile.EXPECTED)
    assert rows["solution"]["total"] == "6" and rows["solution"]["max"] == "6"
    assert (rows["os_exit"]["test_mean"], rows["os_exit"]["test_rows"], rows["os_exit"]["test_shout"]) == ("2", "3", "0")
    assert "kernel died" in rows["os_exit"]["reasons"]


def test_infinite_loop_times_out_and_later_cells_still_count(graded):
    result = graded["results"]["infinite_loop"]
    assert any("timed out" in r for r in result.reasons)
    assert [t.status for t in result.tests] == ["passed", "failed", "passed"]


def test_sigint_immune_loop_is_killed(graded):
    result = graded["results"]["sigint_immune"]
    assert any("timed out" in r and "answer_mean" in r for r in result.reasons)
    assert {t.grade_id: t.points for t in result.tests} == {"test_mean": 0, "test_rows": 3, "test_shout": 1}


def test_os_exit_and_segfault_are_kernel_deaths(graded):
    for student in ("os_exit", "segfault"):
        result = graded["results"][student]
        assert any("kernel died" in r for r in result.reasons), result.reasons


def test_sys_exit_does_not_stop_grading(graded):
    assert graded["results"]["sys_exit"].total == 6


def test_deleted_and_edited_tests_are_restored_and_flagged(graded):
    deleted = graded["results"]["deleted_tests"]  # also the nested <student>/<lab>/<lab>.ipynb layout
    assert any("test_rows was deleted" in r for r in deleted.reasons)
    assert any("test_shout was deleted" in r for r in deleted.reasons)
    edited = graded["results"]["edited_tests"]
    assert any("test_mean was edited" in r for r in edited.reasons)
    assert any("points of test_shout" in r for r in edited.reasons)
    assert edited.max_score == 6


def test_malformed_notebook_scores_zero_with_reason(graded):
    result = graded["results"]["malformed"]
    assert result.total == 0 and any("malformed notebook" in r for r in result.reasons)


def test_wrong_kernel_name_is_replaced(graded):
    result = graded["results"]["wrong_kernel"]
    assert result.total == 6 and any("kernel 'ir'" in r for r in result.reasons)


def test_huge_output_is_cut(graded):
    result = graded["results"]["huge_output"]
    assert any("output cut" in r for r in result.reasons)
    size = (graded["out"] / "autograded" / "huge_output" / "mini" / "mini.ipynb").stat().st_size
    assert size < 3_000_000


def test_always_equal_objects_do_not_pass_type_checking_tests(graded):
    result = graded["results"]["always_equal"]
    assert {t.grade_id: t.status for t in result.tests} == {
        "test_mean": "failed", "test_rows": "passed", "test_shout": "failed"}


def test_submission_cannot_read_or_change_files_outside_its_folder(graded):
    course, nonce = graded["course"], graded["nonce"]
    text = executed_text(graded, "escape")
    assert "no leak" in text and "LEAK" not in text.replace("no leak", "")
    assert (course / "sentinel.txt").read_text() == "must survive"
    assert (course / "solutions" / "mini" / "data.csv").exists()
    assert (course / "solutions" / "mini" / "mini.ipynb").exists()
    assert not Path(f"/tmp/escape-{nonce}.txt").exists()
    assert not (course / f"escape-{nonce}.txt").exists()


def test_detached_background_process_is_killed(graded):
    marker = f"labkit-hostile-daemon-{graded['nonce']}".encode()
    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                alive.append(pid)
        except OSError:
            pass
    assert alive == []
    result = graded["results"]["daemon"]
    assert result.total == 6
    assert any("left running by the submission were killed" in r for r in result.reasons), result.reasons


def test_no_network_beyond_the_sandbox(graded):
    assert graded["received"] == b""
    assert "no network" in executed_text(graded, "network")


def test_feedback_never_shows_hidden_tests(graded):
    for student in hostile.EXPECTED:
        page = (graded["out"] / "feedback" / student / "mini.html").read_text()
        assert "BEGIN HIDDEN" not in page and "other = mean([2, 5])" not in page, student
        assert "Traceback" not in page
    leak = (graded["out"] / "feedback" / "leak_hidden" / "mini.html").read_text()
    assert "(details hidden)" in leak


def test_feedback_says_what_failed_and_what_to_fix(graded):
    page = (graded["out"] / "feedback" / "blank" / "mini.html").read_text()
    assert "NotImplementedError" in page and "What to fix" in page and "0 / 6" in page
    page = (graded["out"] / "feedback" / "always_equal" / "mini.html").read_text()
    assert "shout must return a str" in page


def test_same_submission_twice_gives_the_same_result(graded):
    one, two = graded["results"]["solution"], graded["results"]["solution_twin"]
    assert [(t.grade_id, t.points, t.status) for t in one.tests] == [(t.grade_id, t.points, t.status) for t in two.tests]


def test_gradebook_is_intact(graded):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{graded['out'] / 'gradebook.db'}") as gb:
        assert sorted(s.id for s in gb.students) == sorted(hostile.EXPECTED)
        assert gb.find_assignment("mini").max_score == 6
        source = gb.find_source_cell("test_mean", "mini", "mini").source
        assert "BEGIN HIDDEN TESTS" in source
        assert gb.find_submission("mini", "solution").score == 6
        assert gb.find_submission("mini", "infinite_loop").score == 3


def test_isolation_was_enforced_as_reported(graded):
    status = graded["run"].isolation
    if os.geteuid() == 0:
        assert status["uid"] != 0
    if status.get("namespaces"):
        assert status["network"].startswith("own namespace")
        assert str(graded["course"] / "solutions") in status["hidden"]


def test_memory_limit_stops_the_allocation_not_the_grading(graded):
    result = graded["results"]["memory_hog"]
    rows = next(t for t in result.tests if t.grade_id == "test_rows")
    assert rows.status == "failed" and rows.message.startswith("MemoryError"), rows
    assert "memory" in rows.hint
    assert not any("kernel died" in r for r in result.reasons), result.reasons
    assert graded["run"].isolation["limits"]["memory_mb"] == 3072


def test_no_access_to_other_students_work_or_the_gradebook(graded):
    text = executed_text(graded, "snoop")
    assert "snooped: 0 []" in text, text


def test_feedback_shows_no_line_of_any_hidden_test(graded):
    source = nbformat.read(FIXTURE / "solutions" / "mini" / "mini.ipynb", as_version=4)
    hidden = []
    for cell in source.cells:
        if "### BEGIN HIDDEN TESTS" in cell.source:
            block = cell.source.split("### BEGIN HIDDEN TESTS", 1)[1].split("### END HIDDEN TESTS", 1)[0]
            hidden += [line.strip() for line in block.splitlines() if len(line.strip()) >= 12]
    assert hidden
    for student in hostile.EXPECTED:
        page = (graded["out"] / "feedback" / student / "mini.html").read_text()
        for line in hidden:
            assert line not in page and html.escape(line) not in page, (student, line)


def test_kernels_are_forked_from_the_warm_process(graded):
    run = graded["run"]
    assert run.isolation["warm"].startswith("on"), run.isolation["warm"]
    kinds = {r.isolation.get("kernel") for r in run.results if r.isolation}
    assert kinds == {"warm fork"}, kinds


def test_parallel_workers_default_to_the_number_of_cores(regraded):
    report = regraded["report"]
    assert report["isolation"]["workers"] == min(os.cpu_count() or 1, len(REGRADE))


REGRADE = ["solution", "os_exit", "always_equal", "daemon", "edited_tests"]


@pytest.fixture(scope="module")
def regraded(graded, tmp_path_factory):
    """The same submissions graded again, through the command line, with kernels started cold."""
    base = tmp_path_factory.mktemp("regrade")
    for student in REGRADE:
        shutil.copytree(graded["submissions"] / student, base / "submissions" / student)
    code = grade_cli(["mini", str(base / "submissions"), "--out", str(base / "out"), "--course",
                      str(graded["course"]), "--no-warm", "--timeout-cell", "4", "--memory-mb", "3072"])
    report = json.loads((base / "out" / "report.json").read_text())
    return {"code": code, "report": report, "out": base / "out"}


def test_command_line_grades_and_writes_every_file(regraded):
    assert regraded["code"] == 0
    out = regraded["out"]
    assert (out / "grades.csv").is_file() and (out / "gradebook.db").is_file()
    for student in REGRADE:
        assert (out / "feedback" / student / "mini.html").is_file()
        assert (out / "reports" / student / "mini.json").is_file()


def test_regrading_gives_the_same_result_warm_or_cold(graded, regraded):
    again = {s["student"]: s for s in regraded["report"]["submissions"]}
    assert regraded["report"]["isolation"]["warm"] == "off"
    assert {s["isolation"].get("kernel") for s in again.values()} == {"exec"}
    for student in REGRADE:
        first = graded["results"][student]
        second = again[student]
        assert second["total"] == first.total, student
        assert second["reasons"] == first.reasons, student
        assert [(t["grade_id"], t["points"], t["status"], t["message"]) for t in second["tests"]] == [
            (t.grade_id, t.points, t.status, t.message) for t in first.tests], student


def test_notebook_time_limit_stops_the_rest(graded, tmp_path):
    nb = nbformat.read(graded["submissions"] / "solution" / "mini.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = "import time\ntime.sleep(2)\n" + cell.source
    (tmp_path / "subs" / "slow").mkdir(parents=True)
    nbformat.write(nb, tmp_path / "subs" / "slow" / "mini.ipynb")
    run = grade("mini", tmp_path / "subs", tmp_path / "out", course_root=graded["course"],
                limits=Limits(cell_timeout=30, notebook_timeout=5))
    result = run.by_student()["slow"]
    assert any("time limit" in r for r in result.reasons), (result.reasons, result.tests)
    shout = next(t for t in result.tests if t.grade_id == "test_shout")
    assert shout.status != "passed" and result.total < 6
