"""AWS Batch jobs that really run offline: queues, priorities, array jobs, retries.

moto keeps compute environments, job queues and job definitions, and validates them; its
jobs need a Docker engine. This engine takes over the jobs (SubmitJob, DescribeJobs,
ListJobs, CancelJob, TerminateJob) and runs them with a container-like contract:

- the job definition's ``command`` (with ``Ref::name`` parameters substituted and the
  submission's overrides applied) runs as a process on this machine, ``python``/``python3``
  being this Python; **no container image is pulled**: the image is recorded, the command
  must run with what is installed here (a ``python -c`` program, a script you staged);
- the environment a Batch container gets: the definition's and the overrides' ``environment``,
  ``AWS_BATCH_JOB_ID``, ``AWS_BATCH_JOB_ATTEMPT``, ``AWS_BATCH_JQ_NAME``, ``AWS_BATCH_CE_NAME``,
  and ``AWS_BATCH_JOB_ARRAY_INDEX`` in each child of an array job; a fresh working folder per
  attempt; output to CloudWatch Logs ``/aws/batch/job``, stream ``<definition>/default/<id>``;
- scheduling: RUNNABLE jobs start in the order of their queue's ``priority`` (higher first),
  then submission time, on the first ENABLED compute environment of the queue's
  ``computeEnvironmentOrder`` with enough free vCPUs (``maxvCpus`` less what running jobs use);
  ``dependsOn`` (``SEQUENTIAL`` and ``N_TO_N`` for arrays) holds a job PENDING;
- retries: ``retryStrategy.attempts`` and ``evaluateOnExit`` (``onStatusReason``, ``onReason``,
  ``onExitCode`` patterns, ``*`` at the end, first match wins; no match retries), as AWS
  documents; ``timeout.attemptDurationSeconds`` ends an attempt;
- Spot: there is no Spot market offline. :func:`simulate_spot_reclaim` (a test harness, never
  in learner code) takes the host of a running attempt on a SPOT compute environment away, with
  the status reason AWS gives (``Host EC2 (instance i-...) terminated.``).

Billing: Batch costs nothing itself; the instances do. Each attempt is billed as its share
(job vCPUs / instance vCPUs) of one instance of the compute environment's first instance
type (``m5.large`` for ``optimal``), Spot at the family's typical saving (``ec2:instance``).
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from . import ACCOUNT_ID, REGION, dispatch, moto_state, on_reset, storage, subprocess_environment, usage
from .dispatch import AWSError

POLL_S = 0.05
OPTIMAL = "m5.large"
_lock = threading.RLock()


def client_error(message: str) -> AWSError:
    return AWSError("ClientException", message, 400)


@dataclass
class Attempt:
    started: float
    instance: str
    log_stream: str
    stopped: float | None = None
    exit_code: int | None = None
    reason: str | None = None          # the container's reason (OutOfMemoryError..., "Essential container...")
    status_reason: str | None = None   # the attempt's (Host EC2 ... terminated., Job attempt duration exceeded...)

    def describe(self) -> dict[str, Any]:
        container: dict[str, Any] = {"containerInstanceArn": f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:container-instance/"
                                     f"{self.instance}", "logStreamName": self.log_stream, "networkInterfaces": []}
        if self.exit_code is not None:
            container["exitCode"] = self.exit_code
        if self.reason:
            container["reason"] = self.reason
        out: dict[str, Any] = {"container": container, "startedAt": int(self.started * 1000)}
        if self.stopped is not None:
            out["stoppedAt"] = int(self.stopped * 1000)
        if self.status_reason:
            out["statusReason"] = self.status_reason
        return out


@dataclass
class Job:
    id: str
    name: str
    queue: Any            # moto JobQueue
    definition: Any       # moto JobDefinition
    request: dict[str, Any]
    created: float = field(default_factory=time.time)
    status: str = "SUBMITTED"
    status_reason: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    array_index: int | None = None
    parent: Job | None = None
    children: list[Job] = field(default_factory=list)
    depends_on: list[dict[str, Any]] = field(default_factory=list)
    process: subprocess.Popen | None = None
    compute_environment: Any = None
    deadline: float | None = None
    usage_event: usage.UsageEvent | None = None
    cancel: str | None = None
    started: float | None = None
    stopped: float | None = None
    reclaim_at: float | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:batch:{REGION}:{ACCOUNT_ID}:job/{self.id}"

    # --- the container ----------------------------------------------------------------------
    def container(self) -> dict[str, Any]:
        props = dict(self.definition.container_properties or {})
        overrides = self.request.get("containerOverrides") or {}
        command = overrides.get("command") or props.get("command") or []
        params = {**(self.definition.parameters or {}), **(self.request.get("parameters") or {})}
        command = [_substitute(word, params) for word in command]
        env = {e["name"]: e["value"] for e in props.get("environment", [])}
        env.update({e["name"]: e["value"] for e in overrides.get("environment", [])})
        return {"image": props.get("image"), "command": command, "environment": env,
                "vcpus": self.vcpus(), "memory": self.memory()}

    def _requirement(self, kind: str) -> str | None:
        for source in ((self.request.get("containerOverrides") or {}).get("resourceRequirements") or [],
                       (self.definition.container_properties or {}).get("resourceRequirements") or []):
            for req in source:
                if req["type"] == kind:
                    return req["value"]
        return None

    def vcpus(self) -> float:
        value = self._requirement("VCPU") or (self.definition.container_properties or {}).get("vcpus") or 1
        return float(value)

    def memory(self) -> int:
        value = self._requirement("MEMORY") or (self.definition.container_properties or {}).get("memory") or 2048
        return int(value)

    def retry(self) -> dict[str, Any]:
        return self.request.get("retryStrategy") or self.definition.retry_strategy or {}

    def timeout(self) -> int | None:
        spec = self.request.get("timeout") or self.definition.timeout or {}
        return spec.get("attemptDurationSeconds")

    # --- the API's view ---------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        container = self.container()
        out: dict[str, Any] = {
            "jobArn": self.arn, "jobName": self.name, "jobId": self.id, "jobQueue": self.queue.arn,
            "status": self.status, "attempts": [a.describe() for a in self.attempts],
            "createdAt": int(self.created * 1000), "dependsOn": self.depends_on,
            "jobDefinition": self.definition.arn, "parameters": {**(self.definition.parameters or {}),
                                                                 **(self.request.get("parameters") or {})},
            "container": {"image": container["image"], "command": container["command"],
                          "vcpus": int(container["vcpus"]), "memory": container["memory"],
                          "environment": [{"name": k, "value": v} for k, v in self._env().items()],
                          "resourceRequirements": [{"type": "VCPU", "value": f"{container['vcpus']:g}"},
                                                   {"type": "MEMORY", "value": str(container["memory"])}]},
            "tags": self.request.get("tags") or {}, "platformCapabilities": ["EC2"],
        }
        if self.retry():
            out["retryStrategy"] = self.retry()
        if self.timeout():
            out["timeout"] = {"attemptDurationSeconds": self.timeout()}
        if self.status_reason:
            out["statusReason"] = self.status_reason
        if self.started is not None:
            out["startedAt"] = int(self.started * 1000)
        if self.stopped is not None:
            out["stoppedAt"] = int(self.stopped * 1000)
        if self.attempts:
            last = self.attempts[-1]
            out["container"]["logStreamName"] = last.log_stream
            if last.exit_code is not None:
                out["container"]["exitCode"] = last.exit_code
            if last.reason:
                out["container"]["reason"] = last.reason
        if self.children:
            counts = dict.fromkeys(("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED",
                                    "FAILED"), 0)
            for child in self.children:
                counts[child.status] += 1
            out["arrayProperties"] = {"size": len(self.children), "statusSummary": counts}
        elif self.array_index is not None:
            out["arrayProperties"] = {"index": self.array_index}
        return out

    def summary(self) -> dict[str, Any]:
        out = {"jobArn": self.arn, "jobId": self.id, "jobName": self.name, "createdAt": int(self.created * 1000),
               "status": self.status, "jobDefinition": self.definition.arn}
        for key in ("statusReason", "startedAt", "stoppedAt", "arrayProperties"):
            value = self.describe().get(key)
            if value is not None:
                out[key] = {"size": value["size"]} if key == "arrayProperties" and "size" in value else value
        return out

    def _env(self) -> dict[str, str]:
        env = dict(self.container()["environment"])
        env.update({"AWS_BATCH_JOB_ID": self.id, "AWS_BATCH_JQ_NAME": self.queue.name,
                    "AWS_BATCH_JOB_ATTEMPT": str(len(self.attempts) or 1)})
        if self.compute_environment is not None:
            env["AWS_BATCH_CE_NAME"] = self.compute_environment.name
        if self.array_index is not None:
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(self.array_index)
            env["AWS_BATCH_JOB_ARRAY_SIZE"] = str(len(self.parent.children)) if self.parent else ""
        return env


def _substitute(word: str, params: dict[str, str]) -> str:
    for key, value in params.items():
        word = word.replace(f"Ref::{key}", str(value))
    return word


def _matches(pattern: str | None, value: str | None) -> bool:
    if pattern is None:
        return True
    return value is not None and fnmatch.fnmatchcase(str(value), pattern)


def should_retry(job: Job, attempt: Attempt) -> bool:
    """AWS's retry decision: attempts left, then the first matching evaluateOnExit rule; none -> retry."""
    strategy = job.retry()
    if len(job.attempts) >= int(strategy.get("attempts", 1)):
        return False
    for rule in strategy.get("evaluateOnExit") or []:
        if (_matches(rule.get("onStatusReason"), attempt.status_reason) and _matches(rule.get("onReason"), attempt.reason)
                and _matches(rule.get("onExitCode"), None if attempt.exit_code is None else str(attempt.exit_code))):
            return rule["action"].upper() == "RETRY"
    return True


class Scheduler:
    """Every offline Batch job, and the thread that starts, watches and retries them."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._reclaims: list[tuple[str | None, float]] = []

    # --- submission ----------------------------------------------------------------------------
    def submit(self, request: dict[str, Any]) -> Job:
        backend = moto_state.backend("batch")
        queue = backend.get_job_queue(request["jobQueue"])
        if queue is None:
            raise client_error(f"Job queue {request['jobQueue']} not found.")
        if queue.state != "ENABLED":
            raise client_error(f"Job queue {queue.name} is {queue.state}: enable it to submit jobs.")
        definition = backend.get_job_definition(request["jobDefinition"])
        if definition is None or definition.status != "ACTIVE":
            raise client_error(f"Job definition {request['jobDefinition']} not found or not ACTIVE.")
        if not (definition.container_properties or {}).get("command") and not \
                (request.get("containerOverrides") or {}).get("command"):
            raise client_error("The job has no command: give containerProperties.command in the job definition "
                               "or containerOverrides.command.")
        size = (request.get("arrayProperties") or {}).get("size")
        if size is not None and not 2 <= int(size) <= 10000:
            raise client_error("arrayProperties.size must be between 2 and 10,000.")
        attempts = int((request.get("retryStrategy") or definition.retry_strategy or {}).get("attempts", 1))
        if not 1 <= attempts <= 10:
            raise client_error("retryStrategy.attempts must be between 1 and 10.")
        depends = list(request.get("dependsOn") or [])
        for dep in depends:
            if dep["jobId"] not in self.jobs:
                raise client_error(f"Job {dep['jobId']} in dependsOn was not found.")
        job = Job(str(uuid.uuid4()), request["jobName"], queue, definition, request, depends_on=depends)
        with _lock:
            self.jobs[job.id] = job
            if size:
                for i in range(int(size)):
                    child = Job(f"{job.id}:{i}", job.name, queue, definition, request, array_index=i, parent=job,
                                depends_on=depends)
                    job.children.append(child)
                    self.jobs[child.id] = child
            for j in [job, *job.children]:
                j.status = "PENDING" if depends else "RUNNABLE"
        self._ensure_thread()
        return job

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="labkit-batch", daemon=True)
            self._thread.start()

    # --- the loop --------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            with _lock:
                try:
                    self._tick()
                except Exception as err:  # a job's problem must not stop the scheduler
                    print(f"labkit batch scheduler: {err!r}", file=sys.stderr)
            if all(j.status in ("SUCCEEDED", "FAILED") for j in self.jobs.values()):
                return

    def _tick(self) -> None:
        now = time.time()
        for job in self.jobs.values():
            if job.status == "RUNNING" and not job.children:
                self._watch(job, now)
        for job in self.jobs.values():
            if job.status == "PENDING":
                self._resolve_dependencies(job)
        runnable = sorted((j for j in self.jobs.values() if j.status == "RUNNABLE" and not j.children),
                          key=lambda j: (-j.queue.priority, j.created, j.array_index or 0))
        for job in runnable:
            if job.cancel:
                self._finish(job, "FAILED", job.cancel)
                continue
            environment = self._place(job)
            if environment is not None:
                self._start(job, environment)
        for job in self.jobs.values():
            if job.children and job.status not in ("SUCCEEDED", "FAILED"):
                states = {c.status for c in job.children}
                if states <= {"SUCCEEDED"}:
                    self._finish(job, "SUCCEEDED", None)
                elif states <= {"SUCCEEDED", "FAILED"}:
                    self._finish(job, "FAILED", "Array Child Job failed")
                elif states & {"STARTING", "RUNNING", "SUCCEEDED", "FAILED"}:
                    job.status = "RUNNING"
                    job.started = job.started or min((c.started for c in job.children if c.started), default=now)

    def _resolve_dependencies(self, job: Job) -> None:
        for dep in job.depends_on:
            parent = self.jobs[dep["jobId"]]
            target = parent
            if dep.get("type") == "N_TO_N" and job.array_index is not None and parent.children:
                target = parent.children[job.array_index]
            if target.status == "FAILED":
                self._finish(job, "FAILED", f"Dependent Job failed: {target.id}")
                return
            if target.status != "SUCCEEDED":
                return
        job.status = "RUNNABLE"

    def _used_vcpus(self, environment: Any) -> float:
        return sum(j.vcpus() for j in self.jobs.values()
                   if j.status in ("STARTING", "RUNNING") and j.compute_environment is environment)

    def _place(self, job: Job) -> Any:
        backend = moto_state.backend("batch")
        for item in sorted(job.queue.env_order_json, key=lambda e: e["order"]):
            environment = backend.get_compute_environment(item["computeEnvironment"])
            if environment is None or environment.state != "ENABLED":
                continue
            resources = environment.compute_resources or {}
            if self._used_vcpus(environment) + job.vcpus() <= float(resources.get("maxvCpus", 0)):
                return environment
        return None

    def _start(self, job: Job, environment: Any) -> None:
        job.status, job.compute_environment = "STARTING", environment
        now = time.time()
        job.started = job.started or now
        stream = f"{job.definition.name}/default/{uuid.uuid4().hex}"
        attempt = Attempt(started=now, instance=f"i-{uuid.uuid4().hex[:17]}", log_stream=stream)
        job.attempts.append(attempt)
        container = job.container()
        command = [sys.executable if w in ("python", "python3") else w for w in container["command"]]
        env = subprocess_environment()
        env.update(job._env())
        workdir = tempfile.mkdtemp(prefix=f"labkit-batch-{job.id.replace(':', '-')}-")
        try:
            job.process = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                                           errors="replace", start_new_session=True)
        except OSError as err:
            attempt.stopped, attempt.reason = time.time(), f"CannotStartContainerError: {err}"
            attempt.status_reason = "Essential container in task exited"
            self._after_attempt(job, attempt)
            return
        threading.Thread(target=_pipe_logs, args=(job.process, stream), daemon=True).start()
        job.status = "RUNNING"
        timeout = job.timeout()
        job.deadline = now + timeout if timeout else None
        job.reclaim_at = self._reclaim_time(job, now)
        resources = environment.compute_resources or {}
        instance_type = next((t for t in resources.get("instanceTypes", [OPTIMAL]) if t != "optimal"), OPTIMAL)
        try:
            from ..cost import catalogue as cat

            share = min(1.0, job.vcpus() / float(cat.load().instance_specs(instance_type).get("vcpu") or 1))
        except Exception:
            share = 1.0
        job.usage_event = usage.record("ec2:instance", f"batch {job.name} ({job.id[:8]})", instance_type=instance_type,
                                       instance_count=share, start=now, end=None,
                                       spot=resources.get("type") == "SPOT",
                                       note=f"AWS Batch job: {share:.2f} of one {instance_type}")

    def _reclaim_time(self, job: Job, now: float) -> float | None:
        if (job.compute_environment.compute_resources or {}).get("type") != "SPOT":
            return None
        for i, (name, after) in enumerate(self._reclaims):
            if name in (None, job.name, job.id):
                del self._reclaims[i]
                return now + after
        return None

    def _watch(self, job: Job, now: float) -> None:
        attempt = job.attempts[-1]
        assert job.process is not None
        code = job.process.poll()
        if job.reclaim_at is not None and now >= job.reclaim_at:
            # the host is taken away; a process that ended within the same poll shares its fate
            _kill(job.process)
            attempt.status_reason = f"Host EC2 (instance {attempt.instance}) terminated."
            job.process.wait()
        elif code is None:
            if job.cancel:
                _kill(job.process)
                attempt.status_reason = job.cancel
            elif job.deadline is not None and now > job.deadline:
                _kill(job.process)
                attempt.status_reason = "Job attempt duration exceeded timeout"
            else:
                return
            attempt.exit_code = job.process.wait()
        else:
            attempt.exit_code = code
            if code != 0:
                attempt.reason = "Essential container in task exited"
        attempt.stopped = time.time()
        if job.usage_event is not None:
            job.usage_event["end"] = attempt.stopped
        self._after_attempt(job, attempt)

    def _after_attempt(self, job: Job, attempt: Attempt) -> None:
        job.process = None
        if attempt.exit_code == 0 and not attempt.status_reason:
            self._finish(job, "SUCCEEDED", None)
        elif job.cancel:
            self._finish(job, "FAILED", job.cancel)
        elif should_retry(job, attempt):
            job.status = "RUNNABLE"
        else:
            self._finish(job, "FAILED", attempt.status_reason or attempt.reason or f"exit code {attempt.exit_code}")

    def _finish(self, job: Job, status: str, reason: str | None) -> None:
        job.status, job.status_reason = status, reason
        job.stopped = time.time()
        job.started = job.started or job.stopped

    # --- cancel, terminate, reset ------------------------------------------------------------------
    def end(self, job_id: str, reason: str, running_too: bool) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            raise client_error(f"Job {job_id} not found.")
        for target in [job, *job.children]:
            if target.status in ("SUCCEEDED", "FAILED"):
                continue
            if target.status in ("STARTING", "RUNNING") and not running_too:
                continue
            target.cancel = reason
            if target.status in ("SUBMITTED", "PENDING", "RUNNABLE"):
                self._finish(target, "FAILED", reason)

    def reset(self) -> None:
        self._stop.set()
        with _lock:
            for job in self.jobs.values():
                if job.process is not None and job.process.poll() is None:
                    _kill(job.process)
            self.jobs.clear()
            self._reclaims.clear()


def _kill(process: subprocess.Popen) -> None:
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
            process.wait(2)
            return
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue


def _pipe_logs(process: subprocess.Popen, stream: str) -> None:
    log = storage.LogStream("/aws/batch/job", stream, job=True)
    assert process.stdout is not None
    for line in process.stdout:
        log.write(line.rstrip("\n"))


scheduler = Scheduler()


@dispatch.backend_function
def simulate_spot_reclaim(job_name: str | None = None, *, after_seconds: float = 0.2) -> None:
    """Test harness (not an AWS API): the next attempt of ``job_name`` (or of any job) that runs on a
    SPOT compute environment loses its instance ``after_seconds`` after it starts."""
    scheduler._reclaims.append((job_name, after_seconds))


@on_reset
def _reset() -> None:
    scheduler.reset()


# --- protocol ---------------------------------------------------------------------------------------

@dispatch.operation("batch", "SubmitJob")
def submit_job(params: dict[str, Any]) -> dict[str, Any]:
    job = scheduler.submit(params)
    return {"jobArn": job.arn, "jobName": job.name, "jobId": job.id}


@dispatch.operation("batch", "DescribeJobs")
def describe_jobs(params: dict[str, Any]) -> dict[str, Any]:
    with _lock:
        return {"jobs": [scheduler.jobs[j].describe() for j in params["jobs"] if j in scheduler.jobs]}


@dispatch.operation("batch", "ListJobs")
def list_jobs(params: dict[str, Any]) -> dict[str, Any]:
    with _lock:
        if params.get("arrayJobId"):
            parent = scheduler.jobs.get(params["arrayJobId"])
            chosen = list(parent.children) if parent else []
        else:
            queue = moto_state.backend("batch").get_job_queue(params.get("jobQueue", ""))
            if queue is None:
                raise client_error("Give jobQueue (an existing queue) or arrayJobId.")
            chosen = [j for j in scheduler.jobs.values() if j.queue is queue and j.parent is None]
        status = params.get("jobStatus")
        if status:
            chosen = [j for j in chosen if j.status == status]
        elif not params.get("arrayJobId"):
            chosen = [j for j in chosen if j.status == "RUNNING"]  # AWS lists RUNNING when no status is given
        start = int(params.get("nextToken") or 0)
        size = int(params.get("maxResults") or 100)
        page = chosen[start:start + size]
        out: dict[str, Any] = {"jobSummaryList": [j.summary() for j in page]}
        if start + size < len(chosen):
            out["nextToken"] = str(start + size)
        return out


@dispatch.operation("batch", "CancelJob")
def cancel_job(params: dict[str, Any]) -> dict[str, Any]:
    with _lock:
        scheduler.end(params["jobId"], params["reason"], running_too=False)
    return {}


@dispatch.operation("batch", "TerminateJob")
def terminate_job(params: dict[str, Any]) -> dict[str, Any]:
    with _lock:
        scheduler.end(params["jobId"], params["reason"], running_too=True)
    return {}

