"""Grading and checking on SageMaker Processing (``--on sagemaker``), end to end on the offline backend.

One module-scoped run grades a small class of the ``mini`` fixture lab twice: locally with
``labkit.grading.grade``, and through ``grade_on_sagemaker`` in 3 processing jobs that really
run here in parallel, the first attempt of one shard failing on purpose. Each test checks one
promise: same grades.csv, retries reported, tags, clean-up, guard, least-privilege IAM.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import boto3
import nbformat
import pytest

from labkit.cost import guard as guard_module
from labkit.grading import Limits, grade
from labkit.scale import ScaleError, plan, shards
from labkit.scale.fleet import Fleet
from labkit.scale.grading import grade_on_sagemaker
from labkit.scale.merge import map_paths
from labkit.scale.policies import NAMES, policy

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "grading"))
import hostile  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "grading" / "course"
DOCS = Path(__file__).resolve().parent.parent / "docs"
LIMITS = Limits(cell_timeout=10, notebook_timeout=90, memory_mb=3072)
CASES = ("solution", "solution_twin", "os_exit", "sys_exit", "deleted_tests", "edited_tests", "malformed",
         "wrong_kernel")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the grader's tests need Linux")


def _course(base: Path) -> Path:
    course = base / "course"
    shutil.copytree(FIXTURE, course)
    (course / "autograder").mkdir()
    return course


def _release(course: Path, base: Path) -> Path:
    from labkit.grading.assignment import prepare_assignment

    release = base / "release"
    shutil.copytree(prepare_assignment("mini", base / "prep", course).release_dir, release)
    return release


def _class(course: Path, release: Path, folder: Path, names: tuple[str, ...] = CASES) -> Path:
    cases = hostile.build(course / "solutions" / "mini" / "mini.ipynb", "nonce", 9, course, folder, folder)
    hostile.write(folder, {k: cases[k] for k in names}, release / "mini.ipynb", nested=("deleted_tests",))
    (folder / "no_notebook").mkdir()  # a student who handed nothing in: listed with a reason
    return folder


@pytest.fixture(scope="module")
def graded(lab, tmp_path_factory):
    base = tmp_path_factory.mktemp("remote")
    course = _course(base)
    release = _release(course, base)
    submissions = _class(course, release, base / "submissions")
    local = grade("mini", submissions, base / "local", course_root=course, workers=2, limits=LIMITS)
    lines: list[str] = []
    remote = grade_on_sagemaker("mini", submissions, base / "remote", course_root=course, instances=3, workers=1,
                                limits=LIMITS, faults={"s001": 1}, connection=lab, log=lines.append)
    return {"base": base, "course": course, "release": release, "submissions": submissions, "local": local,
            "remote": remote, "lines": lines, "lab": lab}


# --- the same results as a local run ------------------------------------------------------------

def test_sagemaker_run_writes_the_same_grades_csv_as_a_local_run(graded):
    local, remote = graded["base"] / "local" / "grades.csv", graded["base"] / "remote" / "grades.csv"
    assert remote.read_bytes() == local.read_bytes()
    assert len(local.read_text().splitlines()) == len(CASES) + 3  # header, cases, blank, no_notebook
    assert graded["remote"].ok


def test_feedback_reports_and_results_match_the_local_run(graded):
    base = graded["base"]
    for folder in ("feedback", "submitted"):
        local = sorted(p.relative_to(base / "local" / folder) for p in (base / "local" / folder).rglob("*") if p.is_file())
        remote = sorted(p.relative_to(base / "remote" / folder) for p in (base / "remote" / folder).rglob("*") if p.is_file())
        assert remote == local and local
        for path in local:
            assert (base / "remote" / folder / path).read_bytes() == (base / "local" / folder / path).read_bytes(), path
    timing = ("seconds", "isolation", "feedback")
    strip = lambda entry: {k: v for k, v in entry.items() if k not in timing}  # noqa: E731
    local_report = json.loads((base / "local" / "report.json").read_text())
    remote_report = json.loads((base / "remote" / "report.json").read_text())
    assert [strip(s) for s in remote_report["submissions"]] == [strip(s) for s in local_report["submissions"]]
    run = graded["remote"].run
    assert {r.student: (r.total, r.reasons) for r in run.results} == \
        {r.student: (r.total, r.reasons) for r in graded["local"].results}
    assert all(r.feedback.startswith(str(base / "remote")) for r in run.results if r.feedback)
    assert str(base / "remote") in (base / "remote" / "nbgrader_config.py").read_text()


def test_merged_gradebook_holds_every_students_grades(graded):
    from nbgrader.api import Gradebook

    def scores(path: Path) -> dict:
        with Gradebook(f"sqlite:///{path}") as gb:
            return {(s.student_id, g.name): g.score for s in gb.assignment_submissions("mini")
                    for nb in s.notebooks for g in nb.grades}

    local, remote = scores(graded["base"] / "local" / "gradebook.db"), scores(graded["base"] / "remote" / "gradebook.db")
    assert remote == local
    assert len({student for student, _ in local}) == len(CASES) + 2


# --- jobs, retries, tags, clean-up ------------------------------------------------------------------

def test_one_job_per_shard_and_the_failed_shard_was_retried_and_reported(graded):
    remote = graded["remote"]
    attempts = {o.spec.key: [(a.status, a.fault_injected) for a in o.attempts] for o in remote.outcomes}
    assert attempts == {"s000": [("Completed", False)], "s001": [("Failed", True), ("Completed", False)],
                        "s002": [("Completed", False)]}
    assert [o.spec.key for o in remote.retried] == ["s001"]
    assert "injected fault" in remote.outcomes[1].attempts[0].why()
    assert any("s001-a1 Failed" in line and "attempt 2 of 3" in line for line in graded["lines"])
    report = json.loads((graded["base"] / "remote" / "report.json").read_text())["sagemaker"]
    assert [len(job["attempts"]) for job in report["jobs"]] == [1, 2, 1]
    assert sum(job["submissions"] for job in report["jobs"]) == len(CASES) + 2
    assert report["plan"]["worst_case_usd"] >= report["plan"]["expected_cost_usd"] > 0


def test_every_job_is_tagged_isolated_and_bounded(graded):
    sm = boto3.client("sagemaker")
    fleet = graded["remote"].fleet
    assert fleet.calls["sagemaker:CreateProcessingJob"] == 4  # 3 shards + 1 retry
    for name in fleet.created:
        job = sm.describe_processing_job(ProcessingJobName=name)
        tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=job["ProcessingJobArn"])["Tags"]}
        assert tags == {"labkit:lab": "mini", "labkit:run": fleet.run_id}
        assert job["NetworkConfig"]["EnableNetworkIsolation"] is True
        assert 900 <= job["StoppingCondition"]["MaxRuntimeInSeconds"] <= 86400
        assert job["AppSpecification"]["ContainerEntrypoint"] == ["python3", "-m", "labkit.scale.entry"]
        assert job["AppSpecification"]["ImageUri"].endswith("/labkit-grader:" + __import__("labkit").__version__)


def test_s3_prefix_is_deleted_and_the_guard_is_gone(graded):
    fleet = graded["remote"].fleet
    listed = boto3.client("s3").list_objects_v2(Bucket=graded["lab"].bucket, Prefix=fleet.prefix + "/")
    assert listed.get("KeyCount", 0) == 0
    assert fleet.calls["s3:DeleteObjects"] >= 1
    assert guard_module.active() is None  # the run installed its own guard and removed it


def test_processing_usage_is_metered_for_every_attempt(graded):
    from labkit.offline import usage

    names = set(graded["remote"].fleet.created)
    events = [e for e in usage.events("sagemaker:processing") if e["resource"] in names]
    assert {e["resource"] for e in events} == names
    assert {e["instance_type"] for e in events} == {"ml.m5.xlarge"}
    assert graded["remote"].cost_usd > 0


# --- least privilege, checked by the course's IAM checker ----------------------------------------

def _iam_requests(audit: list[tuple[str, dict]], lab) -> list[tuple[str, str, dict[str, list[str]]]]:
    """(IAM action, resource ARN, context) for every call the run made, as IAM authorizes them."""
    job_arn = f"arn:aws:sagemaker:{lab.region}:{lab.account_id}:processing-job/{{}}"
    log_group = f"arn:aws:logs:{lab.region}:{lab.account_id}:log-group:{{}}:*"
    out = []
    for operation, named in audit:
        service, name = operation.split(":")
        bucket = f"arn:aws:s3:::{named.get('Bucket', '')}"
        if operation in ("s3:PutObject", "s3:CreateMultipartUpload", "s3:UploadPart", "s3:CompleteMultipartUpload"):
            out.append(("s3:PutObject", f"{bucket}/{named['Key']}", {}))
            if named.get("Tagging"):
                out.append(("s3:PutObjectTagging", f"{bucket}/{named['Key']}", {}))
        elif operation in ("s3:GetObject", "s3:HeadObject"):
            out.append(("s3:GetObject", f"{bucket}/{named['Key']}", {}))
        elif operation == "s3:ListObjectsV2":
            out.append(("s3:ListBucket", bucket, {"s3:prefix": [named.get("Prefix", "")]}))
        elif operation == "s3:DeleteObjects":
            out += [("s3:DeleteObject", f"{bucket}/{key}", {}) for key in named["Keys"]]
        elif operation == "sagemaker:CreateProcessingJob":
            arn = job_arn.format(named["ProcessingJobName"])
            context = {"aws:TagKeys": named["TagKeys"], "aws:RequestTag/labkit:lab": ["mini"],
                       "aws:RequestTag/labkit:run": ["x"]}
            out += [("sagemaker:CreateProcessingJob", arn, context), ("sagemaker:AddTags", arn, context),
                    ("iam:PassRole", named["RoleArn"], {"iam:PassedToService": ["sagemaker.amazonaws.com"]})]
        elif service == "sagemaker":
            out.append((f"sagemaker:{name}", job_arn.format(named["ProcessingJobName"]), {}))
        elif service == "logs":
            out.append((f"logs:{name}", log_group.format(named["logGroupName"]), {}))
        else:
            raise AssertionError(f"the run made a call this test does not know how to authorize: {operation}")
    return out


def test_the_instructor_policy_allows_every_call_the_run_made_and_little_else(graded):
    from labkit.checks.iam import allowed

    lab = graded["lab"]
    document = policy("instructor-policy", account=lab.account_id, region=lab.region, bucket=lab.bucket,
                      job_role=lab.role_arn.rsplit("/", 1)[1])
    requests = _iam_requests(graded["remote"].fleet.audit, lab)
    assert {r[0] for r in requests} >= {"s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:DeleteObject",
                                        "sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob",
                                        "iam:PassRole", "logs:GetLogEvents"}
    for action, resource, context in {(a, r, json.dumps(c, sort_keys=True)) for a, r, c in requests}:
        assert allowed(document, action, resource, json.loads(context)), (action, resource, context)
    job = f"arn:aws:sagemaker:{lab.region}:{lab.account_id}:processing-job/lk-grade-x-s000-a1"
    denied = [
        ("sagemaker:CreateTrainingJob", f"arn:aws:sagemaker:{lab.region}:{lab.account_id}:training-job/x", {}),
        ("sagemaker:CreateProcessingJob", job, {}),  # without the run's tags
        ("sagemaker:CreateProcessingJob", job, {"aws:RequestTag/labkit:lab": ["mini"], "aws:RequestTag/labkit:run": ["x"],
                                                "aws:TagKeys": ["labkit:lab", "labkit:run", "owner"]}),
        ("sagemaker:StopProcessingJob", f"arn:aws:sagemaker:{lab.region}:{lab.account_id}:processing-job/other", {}),
        ("iam:PassRole", f"arn:aws:iam::{lab.account_id}:role/Admin", {"iam:PassedToService": ["sagemaker.amazonaws.com"]}),
        ("iam:PassRole", lab.role_arn, {"iam:PassedToService": ["ec2.amazonaws.com"]}),
        ("s3:GetObject", f"arn:aws:s3:::{lab.bucket}/00-setup/data.csv", {}),
        ("s3:DeleteObject", f"arn:aws:s3:::{lab.bucket}/datasets/x", {}),
        ("s3:ListBucket", f"arn:aws:s3:::{lab.bucket}", {"s3:prefix": ["datasets/"]}),
        ("s3:GetObject", "arn:aws:s3:::another-bucket/labkit-scale/x", {}),
    ]
    for action, resource, context in denied:
        assert not allowed(document, action, resource, context), (action, resource, context)


def test_the_job_role_can_stage_and_upload_the_run_and_nothing_else(lab):
    from labkit.checks.iam import allowed

    document = policy("job-role-policy", account=lab.account_id, region=lab.region, bucket=lab.bucket)
    run = f"arn:aws:s3:::{lab.bucket}/labkit-scale/abcd1234"
    assert allowed(document, "s3:GetObject", f"{run}/in/s000/work.tar.gz")
    assert allowed(document, "s3:PutObject", f"{run}/out/s000/a1/result.json")
    assert allowed(document, "s3:ListBucket", f"arn:aws:s3:::{lab.bucket}", {"s3:prefix": ["labkit-scale/abcd1234/in/"]})
    assert allowed(document, "ecr:BatchGetImage", f"arn:aws:ecr:{lab.region}:{lab.account_id}:repository/labkit-grader")
    assert allowed(document, "logs:PutLogEvents",
                   f"arn:aws:logs:{lab.region}:{lab.account_id}:log-group:/aws/sagemaker/ProcessingJobs:*")
    for action, resource in [("s3:PutObject", f"{run}/in/s000/work.tar.gz"),  # cannot rewrite its inputs
                             ("s3:GetObject", f"{run}/out/s001/a1/graded.tar.gz"),  # nor read others' results
                             ("s3:DeleteObject", f"{run}/out/s000/a1/result.json"),
                             ("s3:GetObject", f"arn:aws:s3:::{lab.bucket}/datasets/x"),
                             ("ecr:BatchGetImage", f"arn:aws:ecr:{lab.region}:{lab.account_id}:repository/other"),
                             ("sagemaker:CreateProcessingJob", "*"), ("iam:PassRole", "*")]:
        assert not allowed(document, action, resource), (action, resource)


def test_the_docs_show_the_policies_as_they_are(lab):
    text = (DOCS / "grading-at-scale.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, flags=re.S)]
    for name in NAMES:
        raw = json.loads((Path(plan.__file__).parent / "policies" / f"{name}.json").read_text())
        assert raw in blocks, f"docs/grading-at-scale.md does not show {name}.json as it is"


# --- failures, the cap, interrupts ------------------------------------------------------------------

def _small_class(base: Path, count: int) -> tuple[Path, Path]:
    course = _course(base)
    sol = nbformat.read(course / "solutions" / "mini" / "mini.ipynb", as_version=4)
    for i in range(count):
        target = base / "submissions" / f"st{i}" / "mini.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(copy.deepcopy(sol), target)
    return course, base / "submissions"


def test_a_shard_failing_every_attempt_is_reported_and_its_students_listed(lab, tmp_path):
    course, submissions = _small_class(tmp_path, 2)
    lines: list[str] = []
    result = grade_on_sagemaker("mini", submissions, tmp_path / "out", course_root=course, instances=2, workers=1,
                                limits=LIMITS, faults={"s000": 9}, max_attempts=2, connection=lab, log=lines.append)
    assert not result.ok
    assert [len(o.attempts) for o in result.outcomes] == [2, 1]
    assert set(result.not_graded) == {"st0"} and "failed 2 attempt(s)" in result.not_graded["st0"]
    rows = (tmp_path / "out" / "grades.csv").read_text().splitlines()
    assert rows[1].startswith("st0,0,6,0,0,0,not graded: shard 1/2") and rows[2].startswith("st1,6,6,")
    assert any("no attempts left" in line for line in lines)
    assert json.loads((tmp_path / "out" / "reports" / "st0" / "mini.json").read_text())["reasons"]


def test_a_run_over_the_spending_cap_is_refused_before_anything_is_created(lab, tmp_path):
    course, submissions = _small_class(tmp_path, 2)
    sm, s3 = boto3.client("sagemaker"), boto3.client("s3")
    before = len(sm.list_processing_jobs(MaxResults=100)["ProcessingJobSummaries"])
    with pytest.raises(guard_module.SpendingCapExceeded, match="Nothing was created or uploaded"):
        grade_on_sagemaker("mini", submissions, tmp_path / "out", course_root=course, instances=2,
                           max_cost=0.01, connection=lab, log=lambda _: None)
    assert len(sm.list_processing_jobs(MaxResults=100)["ProcessingJobSummaries"]) == before
    assert s3.list_objects_v2(Bucket=lab.bucket, Prefix="labkit-scale/").get("KeyCount", 0) == 0
    assert not (tmp_path / "out").exists()


def test_an_interrupt_stops_the_running_jobs_and_deletes_the_prefix(lab, tmp_path):
    course, submissions = _small_class(tmp_path, 2)
    started: list[str] = []

    def interrupt(line: str) -> None:  # Ctrl-C as soon as the second job is running, and again while stopping
        started.extend(re.findall(r"started (lk-\S+)", line))
        if len(started) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        grade_on_sagemaker("mini", submissions, tmp_path / "out", course_root=course, instances=2, workers=1,
                           connection=lab, log=interrupt)
    sm = boto3.client("sagemaker")
    assert {sm.describe_processing_job(ProcessingJobName=n)["ProcessingJobStatus"] for n in started} == {"Stopped"}
    assert boto3.client("s3").list_objects_v2(Bucket=lab.bucket, Prefix="labkit-scale/").get("KeyCount", 0) == 0
    assert guard_module.active() is None


# --- labkit check --on sagemaker ------------------------------------------------------------------------

def test_check_on_sagemaker_gives_the_same_summary_as_a_local_check(lab, tmp_path):
    from labkit.runner import execute, summary
    from labkit.scale.checking import CheckItem, check_on_sagemaker

    course = _course(tmp_path)
    release = _release(course, tmp_path)
    items = [CheckItem("mini", "solution", course / "solutions" / "mini"), CheckItem("mini", "learner", release)]
    run = check_on_sagemaker(items, instances=2, connection=lab, build_dir=tmp_path / "build", log=lambda _: None)
    assert [(e.version, e.ok, e.score, e.max_score) for e in run.executions] == \
        [("solution", True, 6, 6), ("learner", True, 0, 6)]
    assert (tmp_path / "build" / "mini" / "solution.ipynb").is_file()
    local = [execute("mini", v, out_dir=tmp_path / "local" / v, source_dir=i.source)
             for v, i in zip(("solution", "learner"), items, strict=True)]
    strip = lambda table: re.sub(r"\| [\d.]+ \|", "| t |", table)  # noqa: E731  (times differ)
    assert strip(summary(run.executions)) == strip(summary(local))


# --- the parts -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("count, shards_, sizes", [(10, 3, [4, 3, 3]), (2, 5, [1, 1]), (7, 1, [7]), (0, 4, [])])
def test_shard_sizes_are_balanced_and_never_empty(count, shards_, sizes):
    assert shards.shard_sizes(count, shards_) == sizes
    names = [f"n{i:02d}" for i in range(count)]
    groups = shards.split(names, shards_)
    assert [len(g) for g in groups] == sizes
    assert sorted(n for g in groups for n in g) == names
    assert shards.split(names, shards_) == groups  # the same split every time


def test_pack_keeps_links_as_links_and_leaves_devices_out(tmp_path):
    folder = tmp_path / "subs"
    (folder / "alice").mkdir(parents=True)
    (folder / "alice" / "lab.ipynb").write_text("{}")
    (folder / "bob").symlink_to("/etc")
    (folder / ".hidden").mkdir()
    os.mkfifo(folder / "alice" / "pipe")
    archive = shards.pack(folder, shards.entries(folder), tmp_path / "a.tar.gz")
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bob"].issym() and members["bob"].linkname == "/etc"
    assert members["alice/pipe"].isfifo() and ".hidden" in members
    assert all(m.uid == 0 and not m.uname for m in members.values())
    out = tmp_path / "unpacked"
    assert shards.unpack_trusted(archive, out) == []
    assert (out / "bob").is_symlink() and os.readlink(out / "bob") == "/etc"
    assert stat.S_ISFIFO(os.lstat(out / "alice" / "pipe").st_mode)
    with pytest.raises(tarfile.FilterError):  # results never land outside their folder
        shards.unpack_results(archive, tmp_path / "results")


def test_map_paths_rewrites_the_jobs_paths_in_text_files_only(tmp_path):
    (tmp_path / "a.csv").write_text("x,no notebook in /job/work/submissions/bob\n")
    (tmp_path / "b.bin").write_bytes(b"/job/work/submissions")
    map_paths(tmp_path, {"/job/work/submissions": "/home/me/subs", "/job/work": "/elsewhere"})
    assert (tmp_path / "a.csv").read_text() == "x,no notebook in /home/me/subs/bob\n"
    assert (tmp_path / "b.bin").read_bytes() == b"/job/work/submissions"


def test_plan_arithmetic_from_the_measured_figures():
    fig = plan.figures("00-setup")
    assert fig.cpu_s > 0 and fig.measured_on and not fig.borrowed_from
    assert "bench/bench_scale.py" in fig.describe()
    other = plan.figures("no-such-lab")
    assert other.borrowed_from and "never measured" in other.describe()
    assert plan.grading_seconds(fig, 0, 4) == 0
    assert plan.grading_seconds(fig, 100, 8) < plan.grading_seconds(fig, 100, 2)
    assert plan.max_runtime(10) == plan.MIN_RUNTIME_S and plan.max_runtime(10**6) == 86400
    assert plan.max_runtime(1000) == 3000
    small = [plan.project(100, n, "ml.m5.xlarge", fig) for n in (1, 64)]
    large = [plan.project(10000, n, "ml.m5.xlarge", fig) for n in (1, 64)]
    assert large[1][0] < large[0][0] / 10  # 64 jobs: far sooner for a big class ...
    assert small[1][1] > small[0][1]  # ... but for a small one more jobs only add start-ups to pay for
    p = plan.grading_plan("00-setup", [5, 5, 4], "ml.m5.large", "us-east-1")
    assert p.vcpus == 2 and p.hourly_usd == 0.115 and len(p.jobs) == 3
    assert p.worst_usd == pytest.approx(sum(j.max_runtime_s for j in p.jobs) / 3600 * 0.115)


def test_waves_when_jobs_outnumber_the_parallel_limit():
    jobs = [plan.JobEstimate(str(i), 1, 100.0, 900) for i in range(5)]
    p = plan.Plan("t", "ml.m5.large", 2, 0.1, "src", 0.14, jobs, max_parallel=2)
    assert p.wall_s == 300.0


def test_entry_script_fails_on_purpose_when_told(tmp_path):
    env = {**os.environ, "LABKIT_SCALE_FAULT": "exit"}
    done = subprocess.run([sys.executable, "-m", "labkit.scale.entry", "grade", "--lab", "mini", "--input",
                           str(tmp_path / "in"), "--output", str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "injected fault" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("options", [
    {},
    {"namespaces": False, "allow_root": True},
    {"fair_share": False, "warm": False, "workers": 3},
    {"limits": Limits(cell_timeout=7, notebook_timeout=90, memory_mb=2048, disk_mb=256)},
])
def test_every_grading_option_reaches_the_grader_in_the_job(options):
    """What the instructor asks of `labkit grade --on sagemaker` is what each job's grader does."""
    from labkit.scale.entry import command_line, grade_options
    from labkit.scale.grading import _entry_arguments

    asked = {"limits": Limits(), "workers": None, "namespaces": True, "warm": True, "allow_root": False,
             "fair_share": True, **options}
    argv = ["grade", "--input", "in", "--output", "out",
            *_entry_arguments("00-setup", asked["limits"], asked["workers"], asked["namespaces"], asked["warm"],
                              asked["allow_root"], asked["fair_share"])]
    assert grade_options(command_line().parse_args(argv)) == asked


def test_fleet_job_names_follow_aws_rules(lab):
    fleet = Fleet(lab, kind="check", lab_tag="x", image="i", instance_type="ml.m5.large", run_id="abcd1234")
    from labkit.scale.fleet import JobSpec, _job_name

    for key in ("s000", "05-mlops-learner", "a" * 80 + "-learner", "weird_name.with.dots"):
        name = _job_name("check", "abcd1234", key, 3)
        assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name), name
    request = fleet.request(JobSpec("s000", "shard", Path("x"), ["--lab", "mini"], 900), 1, {})
    assert request["ProcessingInputs"][0]["S3Input"]["S3Uri"].endswith("/in/s000/")


def test_empty_class_and_unknown_lab_are_refused_with_the_fix(lab, tmp_path):
    course = _course(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScaleError, match="nothing to grade"):
        grade_on_sagemaker("mini", tmp_path / "empty", course_root=course, connection=lab, log=lambda _: None)
    with pytest.raises(ScaleError, match="pass --course"):
        grade_on_sagemaker("nolab", tmp_path / "empty", course_root=course, connection=lab, log=lambda _: None)


# --- the commands (last: each connects, which resets this process's offline backend) ---------------

def test_a_job_that_cannot_start_fails_the_command_with_the_reason(lab, tmp_path, capsys):
    from labkit.grading.cli import main as grade_cli

    course, submissions = _small_class(tmp_path, 1)
    code = grade_cli(["mini", str(submissions), "--out", str(tmp_path / "out"), "--course", str(course),
                      "--on", "sagemaker", "--instances", "1", "--max-attempts", "1",
                      "--image", f"{lab.account_id}.dkr.ecr.{lab.region}.amazonaws.com/not-the-course:1"])
    captured = capsys.readouterr()
    assert code == 2
    assert "cannot run image" in captured.out and "no shard completed" in captured.err


def test_cli_dry_run_prints_the_plan_and_starts_nothing(lab, tmp_path, capsys):
    from labkit.grading.cli import main as grade_cli

    course, submissions = _small_class(tmp_path, 3)
    code = grade_cli(["mini", str(submissions), "--course", str(course), "--on", "sagemaker", "--instances", "2",
                      "--instance-type", "ml.c5.xlarge", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "2 processing job(s) on ml.c5.xlarge (4 vCPUs, $0.204/h" in out
    assert "expected wall time" in out and "worst case $" in out and "bench_scale.py" in out


def test_labkit_check_dry_run_plans_one_job_per_notebook(capsys):
    from labkit.runner import main_check

    code = main_check(["00-setup", "01-training-jobs", "--on", "sagemaker", "--dry-run", "--instances", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "check 4 notebook(s): 4 processing job(s)" in out and "at most 2 at once" in out
