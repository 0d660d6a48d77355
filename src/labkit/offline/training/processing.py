"""Processing jobs: the learner's script runs with its inputs and outputs under ``/opt/ml/processing``.

Each instance gets its own root (as a training host does); ``ProcessingInputs`` are
staged from S3 into their ``LocalPath`` (remapped under the root), the image's
``ContainerEntrypoint`` and ``ContainerArguments`` run with ``/opt/ml`` paths remapped,
and every ``ProcessingOutputs`` ``LocalPath`` is uploaded to its ``S3Uri`` at the end
(``Continuous`` upload mode is treated as ``EndOfJob``). Logs go to
``/aws/sagemaker/ProcessingJobs``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import dispatch, failures, moto_state, runlog, s3_location, storage, usage
from ..dispatch import AWSError
from . import api, images, jobs, shapes
from .environment import HostEnvironment, remap
from .runner import (
    HostProcess,
    all_succeeded,
    argv0,
    first_failure,
    process_environment,
    remap_text,
    settle,
    terminate_all,
)

PROCESSING_ROOT = "/opt/ml/processing"
# Images whose container starts helpers for its job (Clarify's shadow endpoint), registered by the
# engines that own them: repository -> fn(request) returning (environment for the job's processes,
# cleanup to run when the job ends). A ValueError it raises fails the job with a ClientError.
Sidecar = Callable[[dict[str, Any]], tuple[dict[str, str], Callable[[], None]]]
SIDECARS: dict[str, Sidecar] = {}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def validate(params: dict[str, Any]) -> None:
    name = params["ProcessingJobName"]
    if name in moto_state.backend("sagemaker").processing_jobs:
        raise AWSError("ResourceInUse", f"Processing job names must be unique within an AWS account and region, "
                       f"and a processing job with this name already exists ({name})")
    cluster = params["ProcessingResources"]["ClusterConfig"]
    msg = shapes.validation_enum(cluster["InstanceType"], "processingResources.clusterConfig.instanceType",
                                 shapes.sagemaker_model().shape_for("ProcessingInstanceType"))
    if msg:
        raise AWSError("ValidationException", msg)
    paths = []
    for index, item in enumerate(params.get("ProcessingInputs", []), 1):
        s3 = item.get("S3Input")
        if s3 is None:
            raise AWSError("ValidationException", f"ProcessingInput {item['InputName']!r}: only S3Input is "
                           "emulated offline (DatasetDefinition needs Athena or Redshift).")
        paths.append(s3["LocalPath"])
        s3_location.require(s3["S3Uri"], f"processingInputs.{index}.member.s3Input.s3Uri")
        if not storage.list_keys(s3["S3Uri"]):
            raise AWSError("ValidationException", api.no_objects_message(s3["S3Uri"], params["RoleArn"]))
    for index, item in enumerate(params.get("ProcessingOutputConfig", {}).get("Outputs", []), 1):
        if "S3Output" in item:
            s3_location.require(item["S3Output"]["S3Uri"], f"processingOutputConfig.outputs.{index}.member.s3Output.s3Uri")
            paths.append(item["S3Output"]["LocalPath"])
    for path in paths:
        if not (path == PROCESSING_ROOT or path.startswith(PROCESSING_ROOT + "/")):
            raise AWSError("ValidationException", f"LocalPath {path!r} must be an absolute path under "
                           f"{PROCESSING_ROOT} (for example {PROCESSING_ROOT}/input).")


class ProcessingRun:
    """One processing job, run in a thread; ``record`` is moto's FakeProcessingJob."""

    def __init__(self, request: dict[str, Any], record: Any):
        self.request, self.record = request, record
        self.name: str = request["ProcessingJobName"]
        cluster = request["ProcessingResources"]["ClusterConfig"]
        self.instance_type, self.instance_count = cluster["InstanceType"], int(cluster["InstanceCount"])
        self.max_runtime = (request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds", 86400)
        self.image = images.parse(request["AppSpecification"]["ImageUri"])
        self.processes: list[HostProcess] = []
        self.hosts: list[HostEnvironment] = []
        self._stop = threading.Event()
        self.done = threading.Event()
        self.started: float | None = None
        self._cleanup: Callable[[], None] | None = None
        for key, value in {"processing_job_status": "InProgress", "processing_end_time": None,
                           "last_modified_time": now()}.items():
            setattr(record, key, value)
        self.thread = threading.Thread(target=self._main, name=f"labkit-processing-{self.name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.record.processing_job_status = "Stopping"
        self._stop.set()

    def _set(self, **fields: Any) -> None:
        for key, value in fields.items():
            setattr(self.record, key, value)
        self.record.last_modified_time = now()

    def _main(self) -> None:
        status, reason, exit_message = "Failed", None, None
        try:
            status, reason, exit_message = self._run()
        except Exception as err:
            status, reason = "Failed", f"InternalServerError: offline processing engine: {err!r}"
        finally:
            if self._cleanup is not None:
                try:
                    self._cleanup()
                except Exception as err:  # a helper that does not stop must not hide the job's outcome
                    logging.getLogger(__name__).warning("processing job %s: sidecar cleanup failed: %r", self.name, err)
            fields: dict[str, Any] = {"processing_job_status": status, "processing_end_time": now()}
            if reason:
                fields["failure_reason"] = reason
            if status == "Failed":
                runlog.failed("ProcessingJob", self.name, reason or "")
            if exit_message:
                fields["exit_message"] = exit_message
            self._set(**fields)
            if self.started is not None:
                usage.record("sagemaker:processing", self.name, instance_type=self.instance_type,
                             instance_count=self.instance_count,
                             seconds=max(1, math.ceil(time.time() - self.started)), status=status)
            self.done.set()

    def _run(self) -> tuple[str, str | None, str | None]:
        if not self.image.emulated:
            return "Failed", images.not_emulated_message(self.image.uri), None
        spec = self.request["AppSpecification"]
        entrypoint = spec.get("ContainerEntrypoint") or images.BUILTIN_ENTRYPOINTS.get(self.image.repository)
        if not entrypoint:
            return "Failed", (f"ClientError: image {self.image.uri} has no entry point of its own offline: give "
                              "AppSpecification.ContainerEntrypoint (e.g. ['python3', "
                              "'/opt/ml/processing/input/code/preprocess.py'])."), None
        self.started = time.time()
        self._set(processing_start_time=now())
        sidecar_env: dict[str, str] = {}
        if self.image.repository in SIDECARS:
            try:
                sidecar_env, self._cleanup = SIDECARS[self.image.repository](self.request)
            except ValueError as err:
                return "Failed", f"ClientError: {err}", None
        names = [f"algo-{i + 1}" for i in range(self.instance_count)]
        for i, host in enumerate(names):
            env = HostEnvironment(job_name=self.name, job_arn=self.record.arn,
                                  root=jobs.work_dir() / "processing" / self.name / host, current_host=host,
                                  hosts=names, instance_type=self.instance_type,
                                  environment=dict(self.request.get("Environment") or {}))
            (env.root / "config").mkdir(parents=True, exist_ok=True)
            (env.root / "config" / "processingjobconfig.json").write_text(json.dumps(self.request, default=str))
            (env.root / "config" / "resourceconfig.json").write_text(
                json.dumps({"current_host": host, "hosts": names}))
            for item in self.request.get("ProcessingInputs", []):
                s3 = item["S3Input"]
                sharded = s3.get("S3DataDistributionType") == "ShardedByS3Key"
                storage.download_prefix(s3["S3Uri"], remap(s3["LocalPath"], env.root),
                                        shard=i if sharded else 0, shards=len(names) if sharded else 1)
            for item in self.request.get("ProcessingOutputConfig", {}).get("Outputs", []):
                if "S3Output" in item:
                    remap(item["S3Output"]["LocalPath"], env.root).mkdir(parents=True, exist_ok=True)
            self.hosts.append(env)
        words_of = [*entrypoint, *spec.get("ContainerArguments", [])]
        for env in self.hosts:
            words = [remap_text(w, env.root) for w in words_of]
            stream = storage.LogStream(storage.LOG_GROUP_PROCESSING,
                                       f"{self.name}/{env.current_host}-{int(time.time())}", job=True)
            extra = {"SM_CURRENT_HOST": env.current_host, "SM_HOSTS": json.dumps(env.hosts), **sidecar_env}
            self.processes.append(HostProcess([argv0(words[0], env.root), *words[1:]], env.root,
                                              process_environment(env, extra, sm_variables=False), stream.write))
        return self._watch()

    def _watch(self) -> tuple[str, str | None, str | None]:
        assert self.started is not None
        while True:
            failed = first_failure(self.processes)
            if failed:
                settle(self.processes, jobs.FAILURE_SETTLE_SECONDS)
                terminate_all(self.processes)
                outputs = {env.current_host: list(proc.tail) for env, proc in zip(self.hosts, self.processes,
                                                                                  strict=False)}
                message = jobs.container_paths(failures.explain(outputs, self.hosts[failed[0]].current_host),
                                               self.hosts)
                return ("Failed", failures.fit("AlgorithmError: See job logs for more information\n", message),
                        message[:1024])
            if all_succeeded(self.processes):
                self._upload()
                return "Completed", None, None
            if self._stop.is_set() or time.time() - self.started > self.max_runtime:
                terminate_all(self.processes)
                self._upload()
                return "Stopped", None, None
            time.sleep(jobs.POLL_SECONDS)

    def _upload(self) -> None:
        for item in self.request.get("ProcessingOutputConfig", {}).get("Outputs", []):
            if "S3Output" not in item:
                continue
            for env in self.hosts:
                storage.sync_up(remap(item["S3Output"]["LocalPath"], env.root), item["S3Output"]["S3Uri"])

    def kill(self) -> None:
        self._stop.set()
        terminate_all(self.processes, 0.5)


runs: dict[str, ProcessingRun] = {}


@jobs.on_reset
def _reset() -> None:
    for run in list(runs.values()):
        run.kill()
    runs.clear()


@dispatch.operation("sagemaker", "CreateProcessingJob")
def create_processing_job(params: dict[str, Any]) -> dict[str, Any]:
    validate(params)
    record = moto_state.backend("sagemaker").create_processing_job(
        app_specification=params["AppSpecification"], experiment_config=params.get("ExperimentConfig"),
        network_config=params.get("NetworkConfig"), processing_inputs=params.get("ProcessingInputs", []),
        processing_job_name=params["ProcessingJobName"],
        processing_output_config=params.get("ProcessingOutputConfig"), role_arn=params["RoleArn"],
        tags=params.get("Tags", []), stopping_condition=params.get("StoppingCondition"))
    record.processing_resources = params["ProcessingResources"]
    if params.get("Environment"):
        record.environment = params["Environment"]
    run = ProcessingRun(params, record)
    runs[run.name] = run
    run.start()
    return {"ProcessingJobArn": record.arn}


def _record(name: str) -> Any:
    record = moto_state.backend("sagemaker").processing_jobs.get(name)
    if record is None:
        raise AWSError("ValidationException", "Requested resource not found.")
    return record


@dispatch.operation("sagemaker", "DescribeProcessingJob")
def describe_processing_job(params: dict[str, Any]) -> dict[str, Any]:
    return shapes.describe("DescribeProcessingJob", _record(params["ProcessingJobName"]).response_object)


@dispatch.operation("sagemaker", "StopProcessingJob")
def stop_processing_job(params: dict[str, Any]) -> dict[str, Any]:
    record = _record(params["ProcessingJobName"])
    run = runs.get(params["ProcessingJobName"])
    if run is None or run.done.is_set():
        raise AWSError("ValidationException", f"The request was rejected because the processing job is in "
                       f"status {record.processing_job_status}.")
    run.stop()
    return {}
