"""The autograder end to end: a class of real submissions, hostile ones included (namespaces mode).

One module-scoped run grades the ``mini`` fixture lab (tests/fixtures/grading/course) for
every case in tests/fixtures/grading/hostile.py in parallel, plus a submissions folder full of
links, FIFOs and oddly named entries; each test checks one case or class. The same submissions
without namespaces, fair share under process storms and the real labs are in
test_grading_modes.py and test_grading_labs.py.
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import shutil
import socket
import stat
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
# A busy machine must not fail legitimate cells (imports, 3,000 outputs: 10,000 passed 10 s at a load of 18
# on 2 cores; their cost is measured in bench/bench_grading.py): loops pay 10 s each.
LIMITS = Limits(cell_timeout=10, notebook_timeout=120, memory_mb=3072, disk_mb=64, tmp_mb=64)


def make_course(base: Path) -> Path:
    return hostile.make_course(base, FIXTURE)


fingerprint = hostile.fingerprint


def link_entries(submissions: Path, course: Path, solution: Path) -> dict[str, str]:
    """Student folders that are links, hold links, FIFOs or devices, or are named oddly: each must
    be listed with its reason, none graded. {student: reason fragment}"""
    entries = {"link_to_solutions": "symbolic link", "holds_link": "symbolic link", "holds_fifo": "FIFO",
               "holds_hardlink": "hard link", "two_notebooks": "two notebooks", ".dotted": "starts with a dot",
               "stray.txt": "not a student's folder", "nested_link": "symbolic link", "folder_fifo": "FIFO"}
    (submissions / "link_to_solutions").symlink_to(course / "solutions" / "mini")
    (submissions / "holds_link").mkdir()
    (submissions / "holds_link" / "mini.ipynb").symlink_to(solution)
    (submissions / "holds_fifo").mkdir()
    os.mkfifo(submissions / "holds_fifo" / "mini.ipynb")
    (submissions / "holds_hardlink").mkdir()
    os.link(solution, submissions / "holds_hardlink" / "mini.ipynb")
    (submissions / "two_notebooks" / "mini").mkdir(parents=True)
    shutil.copyfile(solution, submissions / "two_notebooks" / "mini.ipynb")
    shutil.copyfile(solution, submissions / "two_notebooks" / "mini" / "mini.ipynb")
    (submissions / ".dotted").mkdir()
    shutil.copyfile(solution, submissions / ".dotted" / "mini.ipynb")
    (submissions / "stray.txt").write_text("not a student")
    (submissions / "nested_link").mkdir()
    (submissions / "nested_link" / "mini").symlink_to(course / "solutions" / "mini")
    os.mkfifo(submissions / "folder_fifo")
    if os.geteuid() == 0:
        (submissions / "holds_device").mkdir()
        os.mknod(submissions / "holds_device" / "mini.ipynb", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        entries["holds_device"] = "character device"
    return entries


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("grading")
    course = make_course(base)
    victims = base / "victims"
    victims.mkdir()
    (victims / "victim.txt").write_text("the victim's data")
    nonce = uuid.uuid4().hex[:10]
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.setblocking(False)
    submissions, out = base / "submissions", base / "out"
    cases = hostile.build(course / "solutions" / "mini" / "mini.ipynb", nonce, server.getsockname()[1], course,
                          submissions, out, victims)
    from labkit.grading.assignment import prepare_assignment

    assignment = prepare_assignment("mini", base / "prep", course)  # the learner version, as nbgrader makes it
    hostile.write(submissions, cases, assignment.release_dir / "mini.ipynb", nested=("deleted_tests",))
    links = link_entries(submissions, course, course / "solutions" / "mini" / "mini.ipynb")
    watched = [victims / "victim.txt", victims, Path("/etc/passwd"), Path("/etc"),
               submissions / "solution" / "mini.ipynb", course / "solutions" / "mini" / "mini.ipynb"]
    before = {p: fingerprint(p) for p in watched}
    run = grade("mini", submissions, out, course_root=course, workers=2, limits=LIMITS)
    try:
        conn, _ = server.accept()
        received = conn.recv(100)
    except BlockingIOError:
        received = b""
    server.close()
    return {"run": run, "out": out, "course": course, "nonce": nonce, "received": received, "victims": victims,
            "results": run.by_student(), "submissions": submissions, "links": links, "assignment": assignment,
            "changed": [str(p) for p in watched if fingerprint(p) != before[p]]}


def executed_text(graded, student: str) -> str:
    return hostile.outputs_text(graded["out"] / "autograded" / student / "mini" / "mini.ipynb")


def feedback(graded, student: str) -> str:
    return html.unescape((graded["out"] / "feedback" / student / "mini.html").read_text())


# ---- grades ------------------------------------------------------------------------------------

def test_every_case_gets_the_grade_its_surviving_cells_earn(graded):
    totals = {s: r.total for s, r in graded["results"].items() if s in hostile.EXPECTED}
    assert totals == hostile.EXPECTED


def test_every_case_carries_its_reason(graded):
    for student, fragment in hostile.REASONS.items():
        reasons = graded["results"][student].reasons
        assert any(fragment in r for r in reasons), (student, reasons)


def test_solutions_and_ordinary_code_are_never_flagged(graded):
    for student in ("solution", "solution_twin", "ordinary", "escape", "network", "leak_frame_constants",
                    "many_outputs", "disk_filler", "meta_stripped", "tamper_atexit", "tamper_displayhook"):
        result = graded["results"][student]
        assert not result.review and not any("flagged" in r for r in result.reasons), (student, result.reasons)


def test_grades_csv_has_totals_and_per_test_scores(graded):
    rows = {r["student"]: r for r in csv.DictReader((graded["out"] / "grades.csv").open())}
    assert set(hostile.EXPECTED) | set(graded["links"]) <= set(rows)
    assert rows["solution"]["total"] == "6" and rows["solution"]["max"] == "6"
    assert (rows["os_exit"]["test_mean"], rows["os_exit"]["test_rows"], rows["os_exit"]["test_shout"]) == ("2", "3", "0")
    assert "kernel died" in rows["os_exit"]["reasons"]


# ---- robustness --------------------------------------------------------------------------------

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
        assert any("kernel died" in r for r in graded["results"][student].reasons)


def test_huge_output_is_cut_and_many_small_outputs_are_kept(graded):
    size = (graded["out"] / "autograded" / "huge_output" / "mini" / "mini.ipynb").stat().st_size
    assert size < 3_000_000
    nb = nbformat.read(graded["out"] / "autograded" / "many_outputs" / "mini" / "mini.ipynb", as_version=4)
    kept = max(len(c.get("outputs", [])) for c in nb.cells)
    assert kept > 1000  # the time 10,000 outputs cost is in bench/bench_grading.py


def test_always_equal_objects_do_not_pass_type_checking_tests(graded):
    assert {t.grade_id: t.status for t in graded["results"]["always_equal"].tests} == {
        "test_mean": "failed", "test_rows": "passed", "test_shout": "failed"}


def test_memory_limit_stops_the_allocation_not_the_grading(graded):
    result = graded["results"]["memory_hog"]
    rows = next(t for t in result.tests if t.grade_id == "test_rows")
    assert rows.status == "failed" and rows.message.startswith("MemoryError"), rows
    assert not any("kernel died" in r for r in result.reasons), result.reasons


def test_disk_quota_stops_writes_at_the_limit(graded):
    text = executed_text(graded, "disk_filler")
    assert "quota:" in text and text.count("ENOSPC") >= 2, text[:2000]


# ---- escape: files, network, other students ------------------------------------------------------

def test_submission_cannot_read_or_change_files_outside_its_folder(graded):
    course, nonce = graded["course"], graded["nonce"]
    text = executed_text(graded, "escape")
    assert "no leak 0" in text, text[:3000]
    assert (course / "sentinel.txt").read_text() == "must survive"
    assert (course / "solutions" / "mini" / "mini.ipynb").exists()
    for path in (f"/tmp/escape-{nonce}.txt", f"/run/lock/escape-{nonce}", f"/dev/shm/escape-{nonce}",
                 f"/var/tmp/escape-{nonce}", str(course / f"escape-{nonce}.txt")):
        assert not Path(path).exists(), path


def test_the_kernel_sees_an_allowlist_of_the_machine(graded):
    text = executed_text(graded, "escape")
    root = json.loads(re.search(r"no leak 0 (\[.*?\])", text).group(1).replace("'", '"'))
    status = graded["run"].isolation
    # The system's folders, and the top folder of each path the sandbox says it exposes (the course's
    # .venv lives wherever the course was cloned: /work/main here, /check/... on CI).
    exposed = {Path(path).parts[1] for path in status["visible"] if Path(path).is_absolute() and len(Path(path).parts) > 1}
    assert set(root) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "root", "run", "sbin",
                         "sys", "tmp", "usr", "var", "home", "opt"} | exposed, (root, status["visible"])
    assert status["root"].startswith("allowlist")
    visible = " ".join(status["visible"])
    for hidden in (graded["course"] / "solutions", graded["submissions"], graded["out"], graded["course"] / ".git"):
        assert str(hidden) not in visible


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
    notes = [r for r in graded["results"]["daemon"].reasons if "left running" in r]
    assert notes and "(python" in notes[0], graded["results"]["daemon"].reasons  # says what it killed


def test_no_network_beyond_the_sandbox(graded):
    assert graded["received"] == b""
    assert "no network []" in executed_text(graded, "network")


def test_no_access_to_other_students_work_or_the_gradebook(graded):
    assert "snooped: 0 []" in executed_text(graded, "snoop")


# ---- links and FIFOs planted where the grader works -------------------------------------------------

def test_nothing_outside_changed_and_nothing_was_created_through_links(graded):
    assert graded["changed"] == []
    assert sorted(os.listdir(graded["victims"])) == ["victim.txt"]
    assert not Path("/atexit-ran").exists()


def test_planted_links_and_fifos_neither_stall_nor_escape(graded):
    for student in ("plant_symlink", "plant_fifo", "plant_hardlink", "plant_then_crash"):
        result = graded["results"][student]
        assert "planted" in executed_text(graded, student)
        assert result.seconds < 60, (student, result.seconds)
    assert int(re.search(r"planted (\d+)", executed_text(graded, "plant_symlink")).group(1)) >= 40


# ---- links and names in the submissions folder ------------------------------------------------------

def test_every_folder_is_listed_and_links_are_never_graded(graded):
    results = graded["results"]
    for student, fragment in graded["links"].items():
        result = results[student]
        assert result.total == 0 and any(fragment in r for r in result.reasons), (student, result.reasons)
    for folder in ("submitted", "autograded"):
        for path in (graded["out"] / folder).rglob("*.ipynb"):
            assert path.parts[-3] not in graded["links"], path


# ---- nothing of a hidden test reaches a learner ---------------------------------------------------------

def test_hidden_tests_never_enter_the_kernels_history(graded):
    for name in ("plain", "base64", "reversed", "rot13", "hex", "zero_width"):
        text = executed_text(graded, f"leak_history_{name}")
        counts = re.search(r"found in history: (\{.*?\})", text)
        assert counts, text[:2000]
        assert set(json.loads(counts.group(1).replace("'", '"')).values()) == {0}, counts.group(1)


def test_feedback_shows_no_line_of_any_hidden_test_in_any_encoding(graded):
    secrets = graded["assignment"].secrets
    for student in graded["results"]:
        path = graded["out"] / "feedback" / student / "mini.html"
        if not path.exists():
            continue
        page = feedback(graded, student)
        text = re.sub(r"<pre>.*?</pre>", "", page, flags=re.S)  # the visible test code the learner has
        assert "BEGIN HIDDEN" not in page and "other = mean([2, 5])" not in page and "Traceback" not in page
        assert not secrets.leaked_by(re.sub(r"<[^>]+>", " ", text)), student


def test_exception_classes_the_learner_defines_are_never_named(graded):
    page = feedback(graded, "leak_exception_name")
    assert "SecretClassNameXYZ" not in page
    shout = next(t for t in graded["results"]["leak_exception_name"].tests if t.grade_id == "test_shout")
    assert shout.message.startswith("Exception"), shout.message


def test_a_failing_hidden_test_shows_only_the_instructors_words(graded):
    rows = next(t for t in graded["results"]["always_equal"].tests if t.grade_id == "test_mean")
    assert rows.message.startswith("AssertionError: mean must return a float")
    raised = next(t for t in graded["results"]["leak_raised_constant"].tests if t.grade_id == "test_rows")
    assert raised.hidden_failure and raised.message == "a hidden test failed (AssertionError)", raised.message
    for student, result in graded["results"].items():
        for test in result.tests:
            if test.hidden_failure:
                assert re.fullmatch(r"a hidden test failed \(\w+\)(: .*)?", test.message), (student, test.message)
                literal = test.message.split(": ", 1)[1] if ": " in test.message else ""
                assert not literal or literal in graded["assignment"].test(test.grade_id).source


# ---- tampering earns nothing ---------------------------------------------------------------------------

@pytest.mark.parametrize("student", sorted(hostile.FLAGGED))
def test_tampering_is_flagged_and_scores_nothing(graded, student):
    result = graded["results"][student]
    assert result.total == 0 and result.review, (student, result.reasons)
    assert any(hostile.FLAGGED[student] in r for r in result.review), (student, result.review)


def test_tampering_after_a_test_keeps_that_tests_points(graded):
    result = graded["results"]["tamper_solution_late"]
    assert {t.grade_id: t.points for t in result.tests} == {"test_mean": 2, "test_rows": 0, "test_shout": 0}
    assert "flagged for review" in feedback(graded, "tamper_solution_late")


def test_output_the_learner_emits_in_a_test_is_not_partial_credit(graded):
    shout = next(t for t in graded["results"]["tamper_displayhook"].tests if t.grade_id == "test_shout")
    assert shout.points == 0 and shout.status == "failed"


# ---- metadata repair -------------------------------------------------------------------------------------

def test_deleted_and_edited_tests_are_restored_and_flagged(graded):
    deleted = graded["results"]["deleted_tests"]  # also the nested <student>/<lab>/<lab>.ipynb layout
    assert any("test_rows was deleted" in r for r in deleted.reasons)
    assert any("test_shout was deleted" in r for r in deleted.reasons)
    edited = graded["results"]["edited_tests"]
    assert any("points of test_shout" in r for r in edited.reasons)
    assert edited.max_score == 6


# ---- reports and records ---------------------------------------------------------------------------------

def test_feedback_says_what_failed_and_what_to_fix(graded):
    page = feedback(graded, "blank")
    assert "NotImplementedError" in page and "What to fix" in page and "0 / 6" in page
    assert "shout must return a str" in feedback(graded, "always_equal")


def test_same_submission_twice_gives_the_same_result(graded):
    one, two = graded["results"]["solution"], graded["results"]["solution_twin"]
    assert [(t.grade_id, t.points, t.status) for t in one.tests] == [(t.grade_id, t.points, t.status) for t in two.tests]


def test_gradebook_is_intact(graded):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{graded['out'] / 'gradebook.db'}") as gb:
        assert set(hostile.EXPECTED) <= {s.id for s in gb.students}
        assert gb.find_assignment("mini").max_score == 6
        assert "BEGIN HIDDEN TESTS" in gb.find_source_cell("test_mean", "mini", "mini").source
        assert gb.find_submission("mini", "solution").score == 6
        assert gb.find_submission("mini", "infinite_loop").score == 3


def test_isolation_was_enforced_as_reported(graded):
    status = graded["run"].isolation
    if os.geteuid() == 0:
        assert status["uid"] != 0 and status["own_uid"]
        assert status["disk_quota"].startswith("size-limited")
    if status.get("namespaces"):
        assert status["network"].startswith("own namespace")
    assert graded["run"].isolation["limits"]["memory_mb"] == 3072


def test_kernels_are_forked_from_the_warm_process(graded):
    run = graded["run"]
    assert run.isolation["warm"].startswith("on"), run.isolation["warm"]
    assert {r.isolation.get("kernel") for r in run.results if r.isolation} == {"warm fork"}


def test_the_grader_leaves_nothing_behind(graded):
    # This run's folders, from where its kernels ran (other grading runs on the machine have their own).
    folders = {str(Path(v).parent.parent) for r in graded["run"].results for v in r.isolation.get("visible", [])
               if "/labkit-grade-" in v and Path(v).parent.name == "jobs"}
    assert folders and not any(Path(folder).exists() for folder in folders), folders
    assert not [m for m in Path("/proc/self/mountinfo").read_text().splitlines() if any(f in m for f in folders)]
    assert not list(Path("/sys/fs/cgroup").glob(f"*/labkit-grading-{os.getpid()}-*"))


# ---- the same submissions again, through the command line, kernels started cold ---------------------

REGRADE = ["solution", "os_exit", "always_equal", "daemon", "edited_tests", "tamper_run_cell", "meta_renamed"]


@pytest.fixture(scope="module")
def regraded(graded, tmp_path_factory):
    base = tmp_path_factory.mktemp("regrade")
    for student in REGRADE:
        shutil.copytree(graded["submissions"] / student, base / "submissions" / student)
    code = grade_cli(["mini", str(base / "submissions"), "--out", str(base / "out"), "--course",
                      str(graded["course"]), "--no-warm", "--timeout-cell", "10", "--memory-mb", "3072"])
    report = json.loads((base / "out" / "report.json").read_text())
    return {"code": code, "report": report, "out": base / "out"}


def test_command_line_grades_and_writes_every_file(regraded):
    assert regraded["code"] == 0
    out = regraded["out"]
    assert (out / "grades.csv").is_file() and (out / "gradebook.db").is_file()
    for student in REGRADE:
        assert (out / "feedback" / student / "mini.html").is_file()
        assert (out / "reports" / student / "mini.json").is_file()


def test_parallel_workers_default_to_the_number_of_cores(regraded):
    assert regraded["report"]["isolation"]["workers"] == min(os.cpu_count() or 1, len(REGRADE))


def test_regrading_gives_the_same_result_warm_or_cold(graded, regraded):
    again = {s["student"]: s for s in regraded["report"]["submissions"]}
    assert regraded["report"]["isolation"]["warm"] == "off"
    assert {s["isolation"].get("kernel") for s in again.values()} == {"exec"}
    for student in REGRADE:
        first, second = graded["results"][student], again[student]
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
