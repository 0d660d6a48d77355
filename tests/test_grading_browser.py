"""The learner's and the instructor's path in a real browser.

JupyterLab 4 with nbgrader's extensions runs on loopback; headless Chromium (Debian's
``chromium`` package, driven by Playwright with ``executable_path``, never a downloaded
browser) opens lab 00 as a learner, types an answer, runs the notebook, saves and presses
nbgrader's Validate; then opens a completed copy and validates it; then, as the instructor,
opens formgrader (Nbgrader menu) on the folder ``labkit grade`` wrote and finds the class's
grades there.

Chromium is required: without it these tests FAIL with the command that installs it
(``apt-get install -y chromium`` on Debian/Ubuntu). ``LABKIT_CHROMIUM=/path/to/chromium``
uses another Chromium or Chrome binary; ``LABKIT_SKIP_BROWSER_TESTS=1`` skips them, on
purpose and visibly, on a machine that cannot have one. CI (``.ci/run``) installs Chromium
in the background while the course sets itself up, and names in ``LABKIT_CHROMIUM_SETUP`` the
file where the outcome will be: these tests wait for it, and are skipped if it failed.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
LAB = "00-setup"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SKIP_VAR = "LABKIT_SKIP_BROWSER_TESTS"
SETUP_VAR = "LABKIT_CHROMIUM_SETUP"
SETUP_WAIT_S = 900

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the grader's tests need Linux")


def _wait_for_setup() -> None:
    """CI's background installation of Chromium (``.ci/run``): wait for its outcome; skip if it failed."""
    if not os.environ.get(SETUP_VAR):
        return
    status = Path(os.environ[SETUP_VAR])
    deadline = time.monotonic() + SETUP_WAIT_S
    while not status.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"Chromium's installation did not finish in {SETUP_WAIT_S} s (no {status}; its log: "
                        ".ci/chromium-setup.log)", pytrace=False)
        time.sleep(1)
    if status.read_text().strip() != "installed":
        pytest.skip("Chromium could not be installed on this machine (.ci/chromium-setup.log): the browser "
                    "tests were skipped")


def chromium() -> str:
    """The Chromium binary, or a failure that says how to get one (or how to opt out)."""
    if os.environ.get(SKIP_VAR) == "1":
        pytest.skip(f"{SKIP_VAR}=1: the browser tests were skipped on purpose")
    _wait_for_setup()
    wanted = os.environ.get("LABKIT_CHROMIUM")
    found = wanted if wanted and Path(wanted).is_file() else shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)
    if not found:
        pytest.fail("Chromium is needed for the browser tests and was not found. On Debian/Ubuntu: "
                    "`sudo apt-get install -y chromium` (CI's .ci/run does this). Elsewhere set "
                    "LABKIT_CHROMIUM=/path/to/chromium-or-chrome, or LABKIT_SKIP_BROWSER_TESTS=1 to skip "
                    "these tests on purpose.", pytrace=False)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("Playwright is needed for the browser tests: `.venv/bin/pip install -e '.[dev]'` "
                    "(it drives the system Chromium; no browser download is needed).", pytrace=False)
    return found


def _cell(nb, grade_id: str):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _answer(solution_source: str) -> str:
    """What a learner who solved the exercise has in the cell: the code, no nbgrader markers."""
    return "\n".join(line for line in solution_source.splitlines()
                     if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")) + "\n"


def _completed(release, solution):
    done = copy.deepcopy(release)
    for cell in done.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            cell.source = _answer(_cell(solution, meta["grade_id"]).source)
    return done


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """Learner folders, a class graded by ``labkit grade``, and a JupyterLab server over them."""
    binary = chromium()
    from labkit.grading import grade

    base = tmp_path_factory.mktemp("browser")
    release = nbformat.read(REPO / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    solution = nbformat.read(REPO / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
    work = base / "work"
    for folder, nb in (("learner", release), ("done", _completed(release, solution))):
        (work / folder / LAB).mkdir(parents=True)
        nbformat.write(nb, work / folder / LAB / f"{LAB}.ipynb")
    submissions = base / "submissions"
    for student, nb in (("ada", _completed(release, solution)), ("bob", release)):
        (submissions / student).mkdir(parents=True)
        nbformat.write(nb, submissions / student / f"{LAB}.ipynb")
    graded = work / "graded" / LAB
    run = grade(LAB, submissions, graded, course_root=REPO)

    home = base / "home"
    settings = home / "lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    notices = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    notices.mkdir(parents=True)  # no "get notified about Jupyter news?" prompt over the page
    (notices / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    token = uuid.uuid4().hex
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTER_DATA_DIR": str(home / "data"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "IPYTHONDIR": str(home / "ipython"),
           "LABKIT_BACKEND": "offline", "MPLBACKEND": "Agg",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = (base / "jupyter.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         "--ServerApp.port=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
         "--ServerApp.port_retries=0", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly", "--LabApp.news_url=None",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=graded, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            # Port 0: the server binds a port of the OS's choosing and names it in its runtime file
            # (a port chosen here and bound by the server later could be taken in between).
            info = next((home / "runtime").glob(f"jpserver-{server.pid}.json"), None)
            try:
                url = f"http://127.0.0.1:{json.loads(info.read_text())['port']}" if info else ""
                if url:
                    with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as answer:
                        if answer.status == 200:
                            break
            except (OSError, ValueError, KeyError):
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start:\n{(base / 'jupyter.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"url": url, "token": token, "work": work, "graded": graded, "run": run, "chromium": binary,
               "base": base, "solution": solution}
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()
        log.close()


@pytest.fixture
def pages(request):
    """Pages a test opened; each is saved as a screenshot beside the server's log if the test fails."""
    opened: list[Lab] = []
    failed_before = request.session.testsfailed
    yield opened
    if request.session.testsfailed > failed_before:
        for number, lab in enumerate(opened):
            with contextlib.suppress(Exception):
                lab.shot(f"failed-{request.node.name}-{number}")


@pytest.fixture(scope="module")
def browser(course):
    from playwright.sync_api import sync_playwright

    profile = course["base"] / "chromium-profile"
    profile.mkdir()
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(profile), executable_path=course["chromium"],
                                                       headless=True, args=CHROMIUM_FLAGS,
                                                       viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(60_000)
        try:
            yield context
        finally:
            context.close()


class Lab:
    """A JupyterLab page, driven the way a person would (menus, toolbar, keyboard)."""

    def __init__(self, context, course, path: str, opened: list | None = None):
        self.course, self.page = course, context.new_page()
        if opened is not None:
            opened.append(self)
        self.page.goto(f"{course['url']}/lab/tree/{path}?token={course['token']}")
        self.page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
        self.idle()

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.course["base"] / f"{name}.png"))

    def idle(self, timeout: float = 120_000) -> None:
        """The kernel is connected and idle (the status bar says so, not only the toolbar's default)."""
        self.page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) "
                                    ".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout)
        self.page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\|\s*Idle")).first.wait_for(
            timeout=timeout)

    def cell(self, text: str):
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell", has_text=text).first

    def menu(self, *items: str) -> None:
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{items[0]}$")).click()
        for item in items[1:]:
            self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).first.click()

    def validate(self) -> str:
        self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .validate-button").click()
        dialog = self.page.locator(".jp-Dialog", has_text="Validation Results")
        dialog.locator(".validation-success, .validation-failed").wait_for(timeout=300_000)
        text = dialog.inner_text()
        dialog.locator("button", has_text="Ok").click()
        return text


def test_learner_types_an_answer_runs_the_lab_and_validates(course, browser, pages):
    lab = Lab(browser, course, f"learner/{LAB}/{LAB}.ipynb", pages)
    answer = _answer(_cell(course["solution"], "ex1-answer").source)
    editor = lab.cell("def instance_availability").locator(".cm-content")
    editor.click()
    lab.page.keyboard.press("Control+a")
    lab.page.keyboard.insert_text(answer)
    lab.page.keyboard.press("Escape")
    lab.menu("Run", "Run All Cells")
    # JupyterLab stops a "Run All" at the first error: here exercise 2's test, still unanswered
    lab.page.locator(".jp-OutputArea-output", has_text="NotImplementedError").first.wait_for(timeout=300_000)
    lab.idle(timeout=300_000)
    lab.page.keyboard.press("Control+s")
    lab.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden).jp-mod-dirty, "
                     ".lm-TabBar-tab.jp-mod-current.jp-mod-dirty").wait_for(state="detached")
    lab.cell("ACCELERATORS = [").scroll_into_view_if_needed()
    lab.shot("learner-ran")
    # what the browser saved: the typed answer, the table its test printed, the unanswered exercise
    saved = nbformat.read(course["work"] / "learner" / LAB / f"{LAB}.ipynb", as_version=4)
    assert _cell(saved, "ex1-answer").source.strip() == answer.strip()
    ex1 = "".join(o.get("text", "") for o in _cell(saved, "ex1-tests").outputs)
    assert "p4d.24xlarge" in ex1 and "us-east-1" in ex1, _cell(saved, "ex1-tests").outputs
    assert [o.get("ename") for o in _cell(saved, "ex2-objects").outputs] == ["NotImplementedError"]
    text = lab.validate()  # nbgrader runs the whole notebook on the server
    lab.shot("learner-validated")
    assert "NotImplementedError" in text and "Success!" not in text
    assert "least_privilege_policy" in text  # the failing exercise 2 test is listed...
    assert "ACCELERATORS" not in text  # ...the one the learner answered is not


def test_completed_lab_runs_to_the_bill_and_validates(course, browser, pages):
    lab = Lab(browser, course, f"done/{LAB}/{LAB}.ipynb", pages)
    lab.menu("Run", "Run All Cells")
    lab.cell("bill = lab.bill()").locator(".jp-OutputArea-output").first.wait_for(timeout=300_000)
    lab.idle(timeout=300_000)
    lab.shot("done-ran")
    outputs = " ".join(lab.page.locator(".jp-OutputArea-output").all_text_contents())
    assert "nothing left behind" in outputs and "Bill for lab" in outputs
    assert "Traceback" not in outputs
    text = lab.validate()
    lab.shot("done-validated")
    assert "Success! Your notebook passes all the tests." in text


def test_instructor_sees_the_graded_class_in_formgrader(course, browser, pages):
    totals = {r.student: r.total for r in course["run"].results}
    full = course["run"].by_student()["ada"].max_score
    assert totals == {"ada": full, "bob": 0}
    lab = Lab(browser, course, f"done/{LAB}/{LAB}.ipynb", pages)
    lab.menu("Nbgrader", "Formgrader")
    frame = lab.page.frame_locator("iframe[src*='formgrader']")
    row = frame.locator("tr", has=frame.locator("a", has_text=re.compile(f"^{LAB}$")))
    row.wait_for()
    cells = [c.strip() for c in row.locator("td").all_inner_texts()]
    assert cells[-3] == "2", cells  # "# Submissions": the files labkit grade put in submitted/
    lab.shot("formgrader-assignments")
    frame.locator("a", has_text="Manage Students").click()
    for student, total in (("ada", f"{full:g}"), ("bob", "0")):
        row = frame.locator("tr", has=frame.locator("td", has_text=re.compile(f"^{student}$")))
        row.wait_for()
        assert re.search(rf"\b{total}(\.0)?\s*/\s*{full:g}\b", row.inner_text()), row.inner_text()
    lab.shot("formgrader-students")
    # Manual Grading: the submissions of the lab's notebook, then one executed notebook itself
    frame.locator("a", has_text="Manual Grading").first.click()
    frame.locator("td a", has_text=re.compile(f"^{LAB}$")).first.click()
    frame.locator("td a", has_text=re.compile(f"^{LAB}$")).first.click()
    scores = frame.locator("tr", has_text="Submission #")
    scores.first.wait_for()
    assert sorted(re.search(rf"(\d+(?:\.\d+)?) / {full:g}", t).group(1) for t in scores.all_inner_texts()) == sorted(
        ["0", f"{full:g}"])
    scores.first.locator("a", has_text="Submission #").click()
    frame.locator("text=Lab 00 · Setup, IAM and S3 data").first.wait_for()
    lab.shot("formgrader-submission")
