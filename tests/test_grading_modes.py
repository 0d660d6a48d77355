"""The grader in its other modes: without namespaces (SageMaker Studio, Docker without
CAP_SYS_ADMIN), refusing to run learner code as root, and fair share under process storms.

Without namespaces the grader needs a Python installation that the kernels' own uids can read.
This machine's interpreter may live under a folder only root can enter (pyenv in /root): the
tests then run the grader in a mount namespace of their own, where that one folder is
reachable, as on a machine whose Python lives in /usr. The grader itself uses no namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
import pytest

from labkit.grading import Limits, grade
from labkit.grading.pipeline import GradingRefused
from labkit.grading.sandbox import first_closed

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "grading"))
import hostile  # noqa: E402
from hostile import fingerprint, outputs_text  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "grading" / "course"


def make_course(base: Path) -> Path:
    return hostile.make_course(base, FIXTURE)

pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the grader's tests need Linux"),
              pytest.mark.skipif(os.geteuid() != 0, reason="these modes are about a grader running as root")]
PYTHON_HOME = os.path.realpath(sys.base_prefix)

_REACHABLE = f"""
import ctypes, os, sys
libc = ctypes.CDLL("libc.so.6", use_errno=True)
def check(result, what):
    if result != 0:
        raise OSError(ctypes.get_errno(), what)
check(libc.unshare(0x00020000), "unshare")
check(libc.mount(b"none", b"/", None, 16384 | (1 << 18), None), "make / private")
closed, keep = {first_closed(PYTHON_HOME)!r}, {PYTHON_HOME!r}
if closed:
    fd = os.open(keep, os.O_RDONLY | os.O_DIRECTORY)
    check(libc.mount(b"tmpfs", closed.encode(), b"tmpfs", 0, b"mode=0755"), "cover " + closed)
    os.makedirs(keep)
    check(libc.mount(f"/proc/self/fd/{{fd}}".encode(), keep.encode(), None, 4096 | 16384, None), "bind python")
os.execv(sys.executable, [sys.executable, "-m", "labkit.grading.cli", *sys.argv[1:]])
"""


def grade_without_namespaces(*args: str) -> subprocess.CompletedProcess:
    """``labkit grade --no-namespaces ARGS`` where other uids can run this Python."""
    return subprocess.run([sys.executable, "-c", _REACHABLE, "--no-namespaces", *args], capture_output=True,
                          text=True, timeout=900)


ATTACKER = '''import glob, os, pathlib, signal, subprocess, sys, time
hits = []
for path in glob.glob("{submissions}/*/mini.ipynb") + glob.glob("/tmp/labkit-grade-*/private/intake/*") + \\
        glob.glob("/tmp/labkit-grade-*/jobs/*/work/mini.ipynb"):
    if os.path.realpath(path).startswith(os.getcwd()):
        continue
    try:
        with open(path, "a") as f:
            f.write("  ")
        hits.append(path)
    except OSError:
        pass
try:
    os.kill(os.getppid(), signal.SIGKILL)  # the sandbox's init (root): not ours to kill
    hits.append("init")
except OSError:
    pass
subprocess.Popen([sys.executable, "-c", "import os, time, pathlib\\nif os.fork(): os._exit(0)\\nos.setsid()\\n"
                  "time.sleep(4)\\npathlib.Path('/tmp/late-{nonce}').write_text('survived')"], start_new_session=True)
for folder in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock"):
    try:
        pathlib.Path(folder, "left-{nonce}").write_text("x")
        os.symlink("{victim}", os.path.join(folder, "link-{nonce}"))
    except OSError:
        pass
print("attacker hits:", hits)
'''


@pytest.fixture(scope="module")
def no_namespaces(tmp_path_factory):
    base = tmp_path_factory.mktemp("nons")
    course = make_course(base)
    victims = base / "victims"
    victims.mkdir()
    (victims / "victim.txt").write_text("the victim's data")
    nonce = uuid.uuid4().hex[:10]
    submissions, out = base / "submissions", base / "out"
    solution = course / "solutions" / "mini" / "mini.ipynb"
    cases = hostile.build(solution, nonce, 9, course, submissions, out, victims)
    from labkit.grading.assignment import prepare_assignment

    release = prepare_assignment("mini", base / "prep", course).release_dir / "mini.ipynb"
    chosen = {k: cases[k] for k in ("solution", "escape", "network", "daemon", "plant_symlink", "plant_fifo",
                                    "tamper_run_cell", "tamper_atexit", "leak_history_plain", "meta_renamed")}
    sol = nbformat.read(solution, as_version=4)
    attacker = hostile._set(nbformat.read(solution, as_version=4), "answer_mean",
                            ATTACKER.format(submissions=submissions, nonce=nonce, victim=victims / "victim.txt")
                            + hostile.SOLUTION_MEAN)
    chosen.update(victim=sol, attacker=attacker)
    hostile.write(submissions, chosen, release)
    os.chmod(submissions / "victim" / "mini.ipynb", 0o666)  # a careless copy: writable by anyone
    watched = [victims / "victim.txt", victims, Path("/etc/passwd"), submissions / "victim" / "mini.ipynb"]
    before = {p: fingerprint(p) for p in watched}
    done = grade_without_namespaces("mini", str(submissions), "--out", str(out), "--course", str(course),
                                    "--timeout-cell", "10", "--memory-mb", "3072", "--workers", "2")
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else {}
    return {"done": done, "report": report, "results": {s["student"]: s for s in report.get("submissions", [])},
            "nonce": nonce, "out": out, "changed": [str(p) for p in watched if fingerprint(p) != before[p]]}


def test_without_namespaces_every_submission_gets_its_grade(no_namespaces):
    assert no_namespaces["done"].returncode == 0, no_namespaces["done"].stderr[-3000:]
    totals = {s: r["total"] for s, r in no_namespaces["results"].items()}
    expected = {s: hostile.EXPECTED.get(s, 6) for s in totals}
    assert totals == expected


def test_without_namespaces_each_kernel_has_its_own_uid_and_limits(no_namespaces):
    status = no_namespaces["report"]["isolation"]
    assert status["namespaces"] is None and status["own_uid"] and status["uid"] != 0
    assert "uid: 0" not in no_namespaces["done"].stdout
    assert status["cgroups"].startswith("per submission")


def test_one_submission_cannot_change_anothers_notebook(no_namespaces):
    results = no_namespaces["results"]
    assert results["victim"]["total"] == 6
    text = outputs_text(no_namespaces["out"] / "autograded" / "attacker" / "mini" / "mini.ipynb")
    hits = text.split("attacker hits:", 1)[1].split("\n", 1)[0]
    assert "intake" not in hits and "work" not in hits and "init" not in hits, hits
    if "victim" in hits:  # it could append to the world-writable original; the copy taken before is graded
        assert any("changed while the class was graded" in r for r in results["victim"]["reasons"])


def test_without_namespaces_no_daemon_survives_and_nothing_is_left_in_shared_folders(no_namespaces):
    nonce = no_namespaces["nonce"]
    import time

    time.sleep(5)
    assert not Path(f"/tmp/late-{nonce}").exists()
    for folder in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock"):
        assert not os.path.lexists(f"{folder}/left-{nonce}") and not os.path.lexists(f"{folder}/link-{nonce}")
    assert any("shared temporary folders were deleted" in r for r in no_namespaces["results"]["attacker"]["reasons"])
    assert no_namespaces["changed"] == []


def test_without_namespaces_the_metadata_address_is_blocked(no_namespaces):
    status = no_namespaces["report"]["isolation"]
    if status.get("metadata_addresses", "").startswith("blocked"):
        assert "no network []" in outputs_text(no_namespaces["out"] / "autograded" / "network" / "mini" / "mini.ipynb")
    else:
        pytest.skip(f"no uid routing rule here: {status.get('metadata_addresses')}")


def test_without_namespaces_tampering_and_leaks_are_still_caught(no_namespaces):
    results = no_namespaces["results"]
    assert results["tamper_run_cell"]["review"]
    text = outputs_text(no_namespaces["out"] / "autograded" / "leak_history_plain" / "mini" / "mini.ipynb")
    counts = text.split("found in history:", 1)[1].split("\n", 1)[0]
    assert set(json.loads(counts.replace("'", '"')).values()) == {0}, counts


def test_as_root_without_namespaces_the_grader_refuses_unless_told(tmp_path):
    if not first_closed(PYTHON_HOME):
        pytest.skip("this Python is readable by other users: learner code gets a uid of its own")
    course = make_course(tmp_path)
    (tmp_path / "subs" / "alice").mkdir(parents=True)
    shutil.copyfile(course / "solutions" / "mini" / "mini.ipynb", tmp_path / "subs" / "alice" / "mini.ipynb")
    with pytest.raises(GradingRefused, match="--allow-root"):
        grade("mini", tmp_path / "subs", tmp_path / "out", course_root=course, namespaces=False)
    from labkit.grading.cli import main

    assert main(["mini", str(tmp_path / "subs"), "--course", str(course), "--no-namespaces",
                 "--out", str(tmp_path / "out2")]) == 2
    run = grade("mini", tmp_path / "subs", tmp_path / "out3", course_root=course, namespaces=False,
                allow_root=True, limits=Limits(cell_timeout=20))
    assert run.by_student()["alice"].total == 6 and run.isolation["uid"] == 0


# ---- fair share ------------------------------------------------------------------------------------

STORM = '''import os, subprocess, sys, threading
code = """import os
for _ in range(500):
    try:
        if os.fork() == 0:
            break
    except OSError:
        break
while True:
    pass
"""
subprocess.Popen([sys.executable, "-c", code, "labkit-storm-{nonce}"], start_new_session=True)
def spin():
    while True:
        pass
if {threads}:
    for _ in range(8):
        threading.Thread(target=spin, daemon=True).start()
'''


@pytest.fixture(scope="module")
def storms(tmp_path_factory):
    base = tmp_path_factory.mktemp("storms")
    course = make_course(base)
    solution = nbformat.read(course / "solutions" / "mini" / "mini.ipynb", as_version=4)
    nonce = uuid.uuid4().hex[:10]
    submissions = base / "submissions"
    cases = {"correct_a": solution, "correct_b": solution}
    for name, threads in (("storm_processes", False), ("storm_threads", True)):
        nb = hostile._set(nbformat.read(course / "solutions" / "mini" / "mini.ipynb", as_version=4), "answer_mean",
                          STORM.format(nonce=nonce, threads=threads) + hostile.SOLUTION_MEAN)
        cases[name] = hostile._set(nb, "answer_rows", "while True:\n    pass\n")  # times out beside the storm
    for student, nb in cases.items():
        (submissions / student).mkdir(parents=True)
        nbformat.write(nb, submissions / student / "mini.ipynb")
    run = grade("mini", submissions, base / "out", course_root=course, workers=4,
                limits=Limits(cell_timeout=10, notebook_timeout=120, nproc=64))
    alive = [pid for pid in filter(str.isdigit, os.listdir("/proc"))
             if f"labkit-storm-{nonce}".encode() in _cmdline(pid)]
    return {"run": run, "results": run.by_student(), "alive": alive}


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_storms_cannot_touch_other_submissions_grades(storms):
    if not storms["run"].isolation["cgroups"].startswith("per submission"):
        pytest.skip(f"no cgroups here: {storms['run'].isolation['cgroups']}")
    for student in ("correct_a", "correct_b"):
        result = storms["results"][student]
        assert result.total == 6 and not result.reasons, (student, result.reasons)


def test_replay_after_a_timeout_skips_the_cell_that_started_the_storm(storms):
    for student in ("storm_processes", "storm_threads"):
        result = storms["results"][student]
        assert any("timed out" in r for r in result.reasons), result.reasons
        if student == "storm_processes":
            assert any("not replayed" in r and "answer_mean" in r for r in result.reasons), result.reasons
        assert {t.grade_id: t.points for t in result.tests}["test_rows"] == 0
    assert storms["alive"] == []


def test_without_cgroups_a_lower_priority_and_a_tighter_process_cap(tmp_path):
    course = make_course(tmp_path)
    nb = hostile._set(nbformat.read(course / "solutions" / "mini" / "mini.ipynb", as_version=4), "answer_shout",
                      "import os\nforks = 0\nfor _ in range(2000):\n    try:\n        pid = os.fork()\n"
                      "    except OSError:\n        break\n    if pid == 0:\n        import time\n"
                      "        time.sleep(30)\n        os._exit(0)\n    forks += 1\nprint('forks', forks)\n"
                      + hostile.SOLUTION_SHOUT)
    (tmp_path / "subs" / "forker").mkdir(parents=True)
    nbformat.write(nb, tmp_path / "subs" / "forker" / "mini.ipynb")
    run = grade("mini", tmp_path / "subs", tmp_path / "out", course_root=course, fair_share=False,
                limits=Limits(cell_timeout=20, nproc=512))
    assert run.isolation["cgroups"].startswith("none (turned off")
    assert run.isolation["limits"]["nice"] == 10 and run.isolation["limits"]["nproc"] == 256
    text = outputs_text(tmp_path / "out" / "autograded" / "forker" / "mini" / "mini.ipynb")
    forks = int(text.split("forks ", 1)[1].split()[0])
    assert forks < 256
    assert run.by_student()["forker"].total == 6


# ---- as an ordinary user, with user namespaces -----------------------------------------------------

_AS_USER = _REACHABLE.replace('os.execv(sys.executable, [sys.executable, "-m", "labkit.grading.cli", *sys.argv[1:]])',
                              'os.setgroups([])\nos.setgid(65534)\nos.setuid(65534)\n'
                              'os.environ["TMPDIR"] = os.environ["HOME"] = sys.argv[1]\n'
                              'os.execv(sys.executable, [sys.executable, "-m", "labkit.grading.cli", *sys.argv[2:]])')
CAPABILITIES = '''import ctypes, os
libc = ctypes.CDLL("libc.so.6", use_errno=True)
tried = {"mount": libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, None), "umount": libc.umount2(b"/tmp", 2),
         "chroot": libc.chroot(b"/"), "root": sorted(os.listdir("/"))}
print("capabilities:", tried)
'''


@pytest.fixture
def world_readable_tmp():
    """A temporary folder other users can enter (pytest's own is root's alone)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="labkit-user-test-"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_as_a_user_the_kernel_gets_the_same_walls_and_no_capabilities(world_readable_tmp):
    if Path("/proc/sys/user/max_user_namespaces").read_text().strip() == "0":
        pytest.skip("user namespaces are off here")
    base = world_readable_tmp
    course = make_course(base)
    solution = course / "solutions" / "mini" / "mini.ipynb"
    cases = {"solution": nbformat.read(solution, as_version=4),
             "caps": hostile._set(nbformat.read(solution, as_version=4), "answer_mean",
                                  CAPABILITIES + hostile.SOLUTION_MEAN),
             "tamper_run_cell": ("blank+", hostile.TAMPERING["tamper_run_cell"])}
    from labkit.grading.assignment import prepare_assignment

    release = prepare_assignment("mini", base / "prep", course).release_dir / "mini.ipynb"
    hostile.write(base / "subs", cases, release)
    for path in [base, *base.rglob("*")]:
        os.chown(path, 65534, 65534, follow_symlinks=False)
    done = subprocess.run([sys.executable, "-c", _AS_USER, str(base), "mini", str(base / "subs"), "--course",
                           str(course), "--out", str(base / "out"), "--timeout-cell", "20"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((base / "out" / "report.json").read_text())
    results = {s["student"]: s for s in report["submissions"]}
    assert report["isolation"]["namespaces"] == "user namespace" and report["isolation"]["root"].startswith("allowlist")
    assert results["solution"]["total"] == results["caps"]["total"] == 6
    assert results["tamper_run_cell"]["total"] == 0 and results["tamper_run_cell"]["review"]
    text = outputs_text(base / "out" / "autograded" / "caps" / "mini" / "mini.ipynb")
    tried = text.split("capabilities:", 1)[1].split("\n", 1)[0]
    assert "'mount': -1" in tried and "'umount': -1" in tried and "'chroot': -1" in tried, tried
    assert "'home'" not in tried.split("'root':", 1)[1], tried
