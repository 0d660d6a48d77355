"""Run a set of jobs as SageMaker Processing jobs: upload, create, watch, retry, collect, clean up.

One job per shard (grading) or per notebook (checking), one instance each, so a failed shard is
retried alone. Every create call goes through the sandbox guard (:mod:`labkit.cost.guard`): the
whole plan's worst case is checked against the cap before anything is uploaded, and each create
(retries included) is admitted by the guard's botocore handler. Every job is tagged
``labkit:lab=<lab>`` and ``labkit:run=<run id>``, every S3 object too; the run's S3 prefix is
deleted at the end, and on an interrupt (Ctrl-C, SIGTERM) the jobs still running are stopped first.

Per job, the request is what AWS documents for ``CreateProcessingJob``: the course image, the
entry script as ``ContainerEntrypoint``, two S3 inputs under ``/opt/ml/processing/input`` (the
shared ``course`` archive and the job's own ``work`` archive), one output, network isolation on
(the grader needs no network: no credentials reach the container), ``MaxRuntimeInSeconds`` from
the plan. A job that ends ``Failed`` or ``Stopped`` (not by us) is created again under a new name,
up to ``max_attempts`` in all; each attempt is reported.
"""

from __future__ import annotations

import contextlib
import re
import time
import urllib.parse
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import ScaleError
from .entry import FAULT_VARIABLE, RESULT

PROCESSING = "/opt/ml/processing"
TERMINAL = ("Completed", "Failed", "Stopped")
RUN_TAG = "labkit:run"
IMAGE_REPOSITORY = "labkit-grader"
IMAGE_VARIABLE = "LABKIT_GRADER_IMAGE"
S3_ROOT = "labkit-scale"
LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
AUDITED = ("Bucket", "Key", "Prefix", "Tagging", "ProcessingJobName", "RoleArn", "logGroupName", "logStreamName")
CREATE_RETRY_CODES = ("ThrottlingException", "ResourceLimitExceeded", "InternalFailure", "ServiceUnavailable")


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


def default_image(account: str, region: str) -> str:
    """``$LABKIT_GRADER_IMAGE``, else ``<account>.dkr.ecr.<region>.amazonaws.com/labkit-grader:<version>``."""
    import os

    from .. import __version__

    return os.environ.get(IMAGE_VARIABLE) or f"{account}.dkr.ecr.{region}.amazonaws.com/{IMAGE_REPOSITORY}:{__version__}"


@dataclass
class JobSpec:
    """One unit of work: a shard of the class, or one notebook to check."""

    key: str                 # short and unique in the run: "s003", "05-mlops-learner"
    label: str               # for people: "shard 3 (12 submissions)"
    archive: Path            # the job's own input (``work``)
    arguments: list[str]     # entry-script arguments
    max_runtime_s: int
    items: int = 0
    lab_tag: str = ""        # the job's ``labkit:lab`` tag, when not the fleet's


@dataclass
class Attempt:
    number: int
    job_name: str
    status: str = "Creating"
    failure: str = ""
    seconds: float = 0.0
    fault_injected: bool = False
    log_tail: list[str] = field(default_factory=list)  # the job's last log lines, when it failed

    def why(self) -> str:
        """One line: the job's own last error line, else AWS's failure reason."""
        generic = "See job logs for more information"
        lines = [ln for ln in self.failure.splitlines() if ln.strip() and generic not in ln]
        return (self.log_tail[-1] if self.log_tail else "") or (lines[-1] if lines else self.failure.strip())


@dataclass
class Outcome:
    """What became of one job: its attempts and, if one completed, its downloaded output."""

    spec: JobSpec
    attempts: list[Attempt] = field(default_factory=list)
    result_dir: Path | None = None

    @property
    def ok(self) -> bool:
        return self.result_dir is not None

    def summary(self) -> str:
        tries = "; ".join(f"{a.job_name}: {a.status}{f' ({a.why()[:200]})' if a.why() else ''}"
                          for a in self.attempts)
        return f"{self.spec.label}: {'completed' if self.ok else 'FAILED'} after {len(self.attempts)} attempt(s) [{tries}]"


def _job_name(kind: str, run_id: str, key: str, attempt: int) -> str:
    name = re.sub(r"[^A-Za-z0-9-]+", "-", f"lk-{kind}-{run_id}-{key}-a{attempt}").strip("-")
    if len(name) > 63:  # AWS: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
        name = f"lk-{kind}-{run_id}-{re.sub(r'[^A-Za-z0-9-]+', '-', key)[-(63 - 20):]}-a{attempt}".strip("-")[:63]
    return re.sub(r"-{2,}", "-", name)


class Fleet:
    """Processing jobs of one run (``kind`` ``grade`` or ``check``) on the connected backend."""

    def __init__(self, lab: Any, *, kind: str, lab_tag: str, image: str, instance_type: str,
                 role_arn: str | None = None, run_id: str | None = None, max_parallel: int = 4,
                 max_attempts: int = 3, volume_gb: int = 30, faults: dict[str, int] | None = None,
                 poll_s: float | None = None, log: Callable[[str], None] = print, keep_s3: bool = False):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.lab, self.kind, self.lab_tag, self.image = lab, kind, lab_tag, image
        self.instance_type, self.role_arn = instance_type, role_arn or lab.role_arn
        self.run_id = run_id or new_run_id()
        self.max_parallel, self.max_attempts, self.volume_gb = max(1, max_parallel), max_attempts, volume_gb
        self.faults = dict(faults or {})
        self.poll_s = poll_s if poll_s is not None else (0.2 if getattr(lab, "offline", False) else 10.0)
        self.log, self.keep_s3 = log, keep_s3
        self.prefix = f"{S3_ROOT}/{self.run_id}"
        self.calls: Counter[str] = Counter()  # every AWS call this run made, by service:operation
        self.audit: list[tuple[str, dict[str, Any]]] = []  # and what each named (IAM needs this)
        self.created: list[str] = []
        self._session: Any = None
        self._started = time.monotonic()

    # --- AWS clients ----------------------------------------------------------------------------
    def _client(self, service: str) -> Any:
        if self._session is None:
            import boto3

            self._session = boto3.session.Session(region_name=self.lab.region)
            self._session.events.register("before-parameter-build", self._record)
        return self._session.client(service, region_name=self.lab.region)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        operation = f"{model.service_model.service_name}:{model.name}"
        self.calls[operation] += 1
        named = {k: params[k] for k in AUDITED if k in params}
        if "Delete" in params:
            named["Keys"] = [o["Key"] for o in params["Delete"].get("Objects", [])]
        if "Tags" in params:
            named["TagKeys"] = sorted(t["Key"] for t in params["Tags"])
        self.audit.append((operation, named))

    @property
    def tags(self) -> list[dict[str, str]]:
        return self.tags_for(self.lab_tag)

    def tags_for(self, lab_tag: str) -> list[dict[str, str]]:
        from ..cost.cleanup import TAG_KEY

        return [{"Key": TAG_KEY, "Value": lab_tag}, {"Key": RUN_TAG, "Value": self.run_id}]

    def uri(self, *parts: str) -> str:
        return f"s3://{self.lab.bucket}/{self.prefix}/" + "/".join(p.strip("/") for p in parts)

    def upload(self, path: Path, *parts: str) -> str:
        """Upload ``path`` to ``<prefix>/<parts...>``, tagged like the jobs; returns the folder URI."""
        key = f"{self.prefix}/{'/'.join(parts)}/{path.name}"
        tagging = urllib.parse.urlencode({t["Key"]: t["Value"] for t in self.tags})
        self._client("s3").upload_file(str(path), self.lab.bucket, key, ExtraArgs={"Tagging": tagging})
        return self.uri(*parts) + "/"

    # --- requests ---------------------------------------------------------------------------------
    def request(self, spec: JobSpec, attempt: int, inputs: dict[str, str]) -> dict[str, Any]:
        """The ``CreateProcessingJob`` request of one attempt of ``spec``."""
        name = _job_name(self.kind, self.run_id, spec.key, attempt)
        environment = {"PYTHONUNBUFFERED": "1", "LABKIT_SCALE_RUN": self.run_id}
        if attempt <= self.faults.get(spec.key, 0):
            environment[FAULT_VARIABLE] = "exit"
        return {
            "ProcessingJobName": name,
            "RoleArn": self.role_arn,
            "AppSpecification": {
                "ImageUri": self.image,
                "ContainerEntrypoint": ["python3", "-m", "labkit.scale.entry"],
                "ContainerArguments": [self.kind, "--input", f"{PROCESSING}/input", "--output",
                                       f"{PROCESSING}/output", *spec.arguments],
            },
            "ProcessingInputs": [
                {"InputName": input_name, "S3Input": {
                    "S3Uri": uri, "LocalPath": f"{PROCESSING}/input/{input_name}", "S3DataType": "S3Prefix",
                    "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}}
                for input_name, uri in sorted({**inputs, "work": self.uri("in", spec.key) + "/"}.items())],
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": "result", "S3Output": {
                "S3Uri": self.uri("out", spec.key, f"a{attempt}") + "/", "LocalPath": f"{PROCESSING}/output",
                "S3UploadMode": "EndOfJob"}}]},
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": self.instance_type,
                                                      "VolumeSizeInGB": self.volume_gb}},
            "StoppingCondition": {"MaxRuntimeInSeconds": spec.max_runtime_s},
            "NetworkConfig": {"EnableNetworkIsolation": True},
            "Environment": environment,
            "Tags": self.tags_for(spec.lab_tag or self.lab_tag),
        }

    def preflight(self, specs: list[JobSpec], inputs: dict[str, str]) -> None:
        """Refuse the whole run, before anything is uploaded, if its worst case exceeds the cap."""
        from ..cost import guard as guard_module

        guard = guard_module.active()
        if guard is None:
            raise ScaleError("no spending guard is installed: install one (labkit.cost.guard.install) first")
        requests = [self.request(spec, 1, inputs) for spec in specs]
        worst = sum(guard.estimate("CreateProcessingJob", r).worst_usd for r in requests)
        left = guard.cap - guard.committed
        if worst > left + 1e-9:
            raise guard_module.SpendingCapExceeded(
                f"labkit guard: these {len(requests)} processing jobs could cost up to ${worst:,.2f} on AWS (every "
                f"job on {self.instance_type} for its MaxRuntimeInSeconds), and ${max(left, 0):,.2f} is left of the "
                f"${guard.cap:,.2f} spending cap. Nothing was created or uploaded.\nUse fewer or smaller instances, "
                f"or raise the cap if you mean it: --max-cost {guard_module._suggest(guard.committed + worst)} "
                "(or LABKIT_SPEND_CAP_USD).")
        if guard.quotas is not None:
            guard.quotas.check(self.instance_type, "processing", min(len(requests), self.max_parallel))

    # --- the run ------------------------------------------------------------------------------------
    def _say(self, message: str) -> None:
        self.log(f"[{time.monotonic() - self._started:6.0f} s] {message}")

    def run(self, specs: list[JobSpec], shared: dict[str, Path], download_to: Path) -> list[Outcome]:
        """Run every spec to an outcome; ``shared``: input name -> archive every job gets."""
        outcomes = [Outcome(spec) for spec in specs]
        inputs = {name: self.uri("in", name) + "/" for name in shared}
        self.preflight(specs, inputs)
        try:
            for name, path in shared.items():
                self.upload(path, "in", name)
            for spec in specs:
                self.upload(spec.archive, "in", spec.key)
            self._say(f"uploaded {len(specs)} job input(s) to {self.uri()}")
            self._watch(outcomes, inputs, download_to)
        except BaseException:
            self._stop_running(outcomes)
            raise
        finally:
            if not self.keep_s3:
                self.cleanup()
        return outcomes

    def _watch(self, outcomes: list[Outcome], inputs: dict[str, str], download_to: Path) -> None:
        from botocore.exceptions import ClientError

        sm = self._client("sagemaker")
        pending: deque[Outcome] = deque(outcomes)
        running: dict[str, tuple[Outcome, Attempt, float]] = {}
        not_before = 0.0
        while pending or running:
            while pending and len(running) < self.max_parallel and time.monotonic() >= not_before:
                outcome = pending.popleft()
                request = self.request(outcome.spec, len(outcome.attempts) + 1, inputs)
                try:
                    sm.create_processing_job(**request)
                except ClientError as err:
                    code = err.response.get("Error", {}).get("Code", "")
                    if code in CREATE_RETRY_CODES:  # quota or throttling: wait, then try the same attempt again
                        self._say(f"{outcome.spec.label}: {code}; waiting before creating it again")
                        pending.appendleft(outcome)
                        not_before = time.monotonic() + max(self.poll_s, 1.0) * 5
                        break
                    raise
                attempt = Attempt(len(outcome.attempts) + 1, request["ProcessingJobName"],
                                  fault_injected=FAULT_VARIABLE in request["Environment"])
                outcome.attempts.append(attempt)
                self.created.append(attempt.job_name)
                running[attempt.job_name] = (outcome, attempt, time.monotonic())
                self._say(f"{outcome.spec.label}: started {attempt.job_name}"
                          + (" (with an injected fault)" if attempt.fault_injected else ""))
            for name, (outcome, attempt, began) in list(running.items()):
                job = sm.describe_processing_job(ProcessingJobName=name)
                attempt.status = job["ProcessingJobStatus"]
                if attempt.status not in TERMINAL:
                    continue
                del running[name]
                start, end = job.get("ProcessingStartTime"), job.get("ProcessingEndTime")
                attempt.seconds = (end - start).total_seconds() if start and end else time.monotonic() - began
                attempt.failure = job.get("FailureReason", "") or job.get("ExitMessage", "")
                if attempt.status != "Completed":
                    attempt.log_tail = self._log_tail(name)
                if attempt.status == "Completed":
                    outcome.result_dir = self._download(outcome.spec, attempt, download_to)
                    self._say(f"{outcome.spec.label}: {name} completed in {attempt.seconds:.0f} s")
                elif len(outcome.attempts) < self.max_attempts:
                    self._say(f"{outcome.spec.label}: {name} {attempt.status}: {attempt.why()}"
                              f" -> attempt {len(outcome.attempts) + 1} of {self.max_attempts}")
                    pending.append(outcome)
                else:
                    self._say(f"{outcome.spec.label}: {name} {attempt.status}: {attempt.why()}; no attempts "
                              f"left ({self.max_attempts} in all)")
            if running or pending:
                time.sleep(self.poll_s)

    def _log_tail(self, job_name: str, lines: int = 5) -> list[str]:
        """The last lines the job logged (``/aws/sagemaker/ProcessingJobs``), for the failure report."""
        logs = self._client("logs")
        try:
            streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=job_name)["logStreams"]
            tail: list[str] = []
            for stream in streams[:1]:
                events = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream["logStreamName"],
                                             limit=50, startFromHead=False)["events"]
                tail = [e["message"] for e in events if e["message"].strip()]
            return tail[-lines:]
        except Exception:  # no logs (yet), or no permission: the failure reason still says what AWS knows
            return []

    def _download(self, spec: JobSpec, attempt: Attempt, download_to: Path) -> Path:
        s3 = self._client("s3")
        prefix = f"{self.prefix}/out/{spec.key}/a{attempt.number}/"
        target = download_to / spec.key
        target.mkdir(parents=True, exist_ok=True)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.lab.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = item["Key"][len(prefix):]
                if relative and "/" not in relative:  # the job writes flat: result.json and one archive
                    s3.download_file(self.lab.bucket, item["Key"], str(target / relative))
        if not (target / RESULT).is_file():
            raise ScaleError(f"{attempt.job_name} completed but wrote no {RESULT} under s3://{self.lab.bucket}/{prefix}")
        return target

    def _stop_running(self, outcomes: list[Outcome], wait_s: float | None = None) -> None:
        """Stop every attempt still running, then wait (bounded) until they ended, so that what a
        stopped job uploads on its way out lands before the run's prefix is deleted. A second
        interrupt meanwhile does not leave a job running: every stop is still sent; it only cuts
        the wait short."""
        sm = self._client("sagemaker")
        stopping = [a for o in outcomes for a in o.attempts if a.status not in TERMINAL]
        for attempt in stopping:
            try:
                sm.stop_processing_job(ProcessingJobName=attempt.job_name)
            except KeyboardInterrupt:
                continue
            except Exception:  # noqa: S112  it ended meanwhile: nothing to stop
                continue
        with contextlib.suppress(Exception, KeyboardInterrupt):
            if stopping:
                self._say(f"stopping {', '.join(a.job_name for a in stopping)}")
        deadline = time.monotonic() + (wait_s if wait_s is not None else 60 if self.poll_s < 1 else 600)
        try:
            while stopping and time.monotonic() < deadline:
                for attempt in list(stopping):
                    with contextlib.suppress(Exception):
                        attempt.status = sm.describe_processing_job(ProcessingJobName=attempt.job_name)[
                            "ProcessingJobStatus"]
                    if attempt.status in TERMINAL:
                        stopping.remove(attempt)
                if stopping:
                    time.sleep(self.poll_s)
        except KeyboardInterrupt:
            pass
        if stopping:
            with contextlib.suppress(Exception, KeyboardInterrupt):
                self._say(f"{len(stopping)} job(s) still stopping; what they upload stays under {self.uri()} "
                          f"(aws s3 rm --recursive {self.uri()})")

    def cleanup(self) -> int:
        """Delete every object of this run's S3 prefix; returns how many."""
        s3 = self._client("s3")
        deleted = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.lab.bucket, Prefix=self.prefix + "/"):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=self.lab.bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
        return deleted


@contextlib.contextmanager
def guarded(lab: Any, max_cost: float | None, log: Callable[[str], None] = print):
    """The run's spending guard: the installed one (the sandbox installs it at connect), else a new
    one for the run, removed afterwards. ``max_cost`` sets its cap."""
    from ..cost import guard as guard_module

    guard = guard_module.active()
    installed = guard is None
    if guard is None:
        guard = guard_module.install(lab, cap_usd=max_cost, bedrock=False)
    if max_cost is not None:
        guard.set_cap(max_cost)
    log(f"Spending cap: ${guard.cap:,.2f} (${guard.committed:,.2f} committed so far; --max-cost or "
        "LABKIT_SPEND_CAP_USD to change it). Every job is checked against it before it is created.")
    try:
        yield guard
    finally:
        if installed:
            guard_module.uninstall()


def describe_backend(lab: Any, image: str, role: str) -> str:
    if getattr(lab, "offline", False):
        return ("Backend: offline. The jobs run on this machine as processes, in parallel, under the processing "
                "container contract; the costs shown are what AWS would charge.")
    return (f"Backend: AWS account {lab.account_id} in {lab.region}. Image {image} (built once from "
            f"docker/labkit-grader.Dockerfile, see docs/grading-at-scale.md), execution role {role}.")


@contextlib.contextmanager
def sigterm_interrupts():
    """Within the block, SIGTERM raises KeyboardInterrupt (so running jobs are stopped and S3 cleaned)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def job_cost(plan: Any, outcomes: list[Outcome]) -> tuple[float, float]:
    """(instance seconds, USD) the attempts of a run took, at the plan's price."""
    seconds = sum(a.seconds for o in outcomes for a in o.attempts)
    return seconds, sum(plan.job_cost(a.seconds) for o in outcomes for a in o.attempts)
