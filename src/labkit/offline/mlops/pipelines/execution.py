"""One pipeline execution: its steps run in dependency order, their jobs really run.

:class:`PipelineRun` schedules the steps of a :class:`~.definition.Definition` in a thread:
a step starts when every step it depends on has Succeeded (a step inside a Condition
step's branch also needs that branch to have been taken), up to
``MaxParallelExecutionSteps`` at a time. Each step's ``Arguments`` are resolved
(parameters, execution variables, other steps' properties, Join, JsonGet) and coerced to
the request shape of the call the step makes; job steps then call the SageMaker API
through boto3, so the offline training, processing and transform engines run them, and
wait for the job to end. Their properties are the job's Describe* response.

Behaviour taken from AWS: job names ``pipelines-<execution id>-<step>-<random>``; a
RegisterModel step creates its model package group if it does not exist yet; a failed
step lets running steps finish but starts no new ones, and the execution ends Failed
(``FailureReason`` names the step); a Fail step fails the execution with its message;
steps of a branch not taken never appear in ListPipelineExecutionSteps.

Not emulated: step caching (``CacheConfig`` is accepted, every step runs), retry
policies (a failed step is not retried), selective execution, and step types whose work
cannot run here (Lambda, Callback, EMR, ...): such a step fails with a message saying so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ... import failures, runlog, s3_location, storage
from .definition import RUNNABLE, Definition, StepDef
from .expressions import ExpressionError, Scope

POLL_SECONDS = 0.1
TERMINAL_STEP = ("Succeeded", "Failed", "Stopped")
_ALPHABET = string.ascii_letters + string.digits


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class JobKind:
    """How a job step type maps to the SageMaker API."""

    create: str
    name_field: str
    name_limit: int
    describe: str
    status_field: str
    metadata: str
    arn_field: str
    stop: str


JOBS = {
    "Processing": JobKind("create_processing_job", "ProcessingJobName", 63, "describe_processing_job",
                          "ProcessingJobStatus", "ProcessingJob", "ProcessingJobArn", "stop_processing_job"),
    "Training": JobKind("create_training_job", "TrainingJobName", 63, "describe_training_job",
                        "TrainingJobStatus", "TrainingJob", "TrainingJobArn", "stop_training_job"),
    "Transform": JobKind("create_transform_job", "TransformJobName", 63, "describe_transform_job",
                         "TransformJobStatus", "TransformJob", "TransformJobArn", "stop_transform_job"),
    "Tuning": JobKind("create_hyper_parameter_tuning_job", "HyperParameterTuningJobName", 32,
                      "describe_hyper_parameter_tuning_job", "HyperParameterTuningJobStatus", "TuningJob",
                      "HyperParameterTuningJobArn", "stop_hyper_parameter_tuning_job"),
}
OPERATIONS = {"create_processing_job": "CreateProcessingJob", "create_training_job": "CreateTrainingJob",
              "create_transform_job": "CreateTransformJob",
              "create_hyper_parameter_tuning_job": "CreateHyperParameterTuningJob",
              "create_model": "CreateModel", "create_model_package": "CreateModelPackage"}


class StepFailure(Exception):
    """A step ended Failed; the message is its FailureReason."""


def random_suffix(n: int = 10) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def job_name(execution_id: str, step: str, limit: int) -> str:
    """``pipelines-<id>-<step>-<random>`` within the API's length limit."""
    if limit < 40:
        return f"{execution_id[:12]}-{random_suffix(limit - 13)}"
    suffix = random_suffix()
    room = limit - len("pipelines-") - len(execution_id) - len(suffix) - 2
    return f"pipelines-{execution_id}-{step[:max(1, room)]}-{suffix}"


def coerce(value: Any, shape: Any) -> Any:
    """A resolved value shaped as the request member ``shape`` wants it (what the service does).

    Parameters and JsonGet give numbers where the API wants strings (hyperparameters,
    environment values) and strings where it wants numbers; the service converts them.
    """
    if shape is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return {k: coerce(v, shape.members.get(k)) for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [coerce(v, shape.member) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {str(k): coerce(v, shape.value) for k, v in value.items()}
    if kind == "string" and isinstance(value, bool):
        return "true" if value else "false"
    if kind == "string" and isinstance(value, int | float):
        return str(value)
    if kind in ("integer", "long") and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if kind in ("integer", "long") and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind in ("float", "double") and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if kind == "boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def drop_empty(value: Any) -> Any:
    """Remove empty objects the SDK leaves in a request (``"Bias": {}``), as the service ignores them."""
    if isinstance(value, dict):
        out = {k: drop_empty(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in ({}, None)}
    if isinstance(value, list):
        return [drop_empty(v) for v in value]
    return value


@dataclass
class StepRecord:
    """What ListPipelineExecutionSteps shows of one step."""

    step: StepDef
    status: str = "Starting"
    start: dt.datetime = field(default_factory=now)
    end: dt.datetime | None = None
    failure: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    attempts: int = 1

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"StepName": self.step.name, "StartTime": self.start, "StepStatus": self.status,
                               "AttemptCount": self.attempts, "Metadata": self.metadata}
        if self.step.display_name:
            out["StepDisplayName"] = self.step.display_name
        if self.step.description:
            out["StepDescription"] = self.step.description
        if self.end is not None:
            out["EndTime"] = self.end
        if self.failure:
            out["FailureReason"] = self.failure
        return out


class PipelineRun:
    """One execution of a pipeline definition."""

    def __init__(self, definition: Definition, *, arn: str, pipeline_name: str, pipeline_arn: str,
                 parameters: dict[str, Any], max_parallel: int = 50, region: str = "us-east-1"):
        self.definition = definition
        self.arn = arn
        self.execution_id = arn.rsplit("/", 1)[-1]
        self.pipeline_name = pipeline_name
        self.region = region
        self.parameters = parameters
        self.max_parallel = max(1, int(max_parallel))
        self.started = now()
        self.status = "Executing"
        self.failure_reason: str | None = None
        self.last_modified = self.started
        self.records: dict[str, StepRecord] = {}
        self.outcomes: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.done = threading.Event()
        self._jobs: dict[str, tuple[JobKind, str]] = {}
        self._property_files: dict[tuple[str, str], Any] = {}
        execution = {"PipelineExecutionId": self.execution_id, "PipelineExecutionArn": arn,
                     "PipelineName": pipeline_name, "PipelineArn": pipeline_arn, "StartDateTime": self.started}
        self.scope = Scope(parameters=parameters, execution=execution, properties=self._properties_of,
                           property_file=self._property_file)
        config = definition.experiment_config or {}
        self.experiment_config: dict[str, str] = {}
        for key in ("ExperimentName", "TrialName"):
            if key in config:
                with contextlib.suppress(ExpressionError):
                    self.experiment_config[key] = str(self.scope.resolve(config[key]))
        execution["PipelineExperimentName"] = self.experiment_config.get("ExperimentName", pipeline_name)
        execution["PipelineExecutionTrialName"] = self.experiment_config.get("TrialName", self.execution_id)
        self.thread = threading.Thread(target=self._main, name=f"labkit-pipeline-{self.execution_id}", daemon=True)

    # --- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """StopPipelineExecution: running jobs are stopped, no new step starts."""
        with self._lock:
            if self.done.is_set():
                return
            self.status = "Stopping"
            self.last_modified = now()
        self._stop.set()
        client = self._client()
        for name, (kind, job) in list(self._jobs.items()):
            if self.records[name].status in ("Starting", "Executing"):
                self.records[name].status = "Stopping"
                with contextlib.suppress(Exception):
                    getattr(client, kind.stop)(**{kind.name_field: job})

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    def steps(self, ascending: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            records = sorted(self.records.values(), key=lambda r: r.start, reverse=not ascending)
            return [r.summary() for r in records]

    # --- scheduling --------------------------------------------------------------
    def _client(self) -> Any:
        import boto3

        return boto3.session.Session().client("sagemaker", region_name=self.region)

    def _eligible(self, step: StepDef) -> str:
        """``ready``, ``wait`` or ``never`` for a step that has not started."""
        if step.parent is not None:
            outcome = self.outcomes.get(step.parent)
            if outcome is None:
                return "never" if self._settled(step.parent) else "wait"
            if outcome != step.branch:
                return "never"
        for dep in step.depends_on:
            record = self.records.get(dep)
            if record is None:
                if self._settled(dep):
                    return "never"
                return "wait"
            if record.status in ("Failed", "Stopped"):
                return "never"
            if record.status != "Succeeded":
                return "wait"
        return "ready"

    def _settled(self, name: str) -> bool:
        """A step that has not started and never will (its branch was not taken, a dependency failed)."""
        step = self.definition.steps[name]
        return name not in self.records and self._eligible(step) == "never"

    def _main(self) -> None:
        threads: dict[str, threading.Thread] = {}
        try:
            while True:
                with self._lock:
                    failed = any(r.status in ("Failed", "Stopped") for r in self.records.values())
                    running = [n for n, r in self.records.items() if r.status not in TERMINAL_STEP]
                    ready = []
                    if not failed and not self._stop.is_set():
                        for step in self.definition.steps.values():
                            if step.name not in self.records and self._eligible(step) == "ready":
                                ready.append(step)
                    for step in ready[: max(0, self.max_parallel - len(running))]:
                        self.records[step.name] = StepRecord(step)
                        self.last_modified = now()
                        t = threading.Thread(target=self._run_step, args=(step,), daemon=True,
                                             name=f"labkit-step-{self.execution_id}-{step.name}")
                        threads[step.name] = t
                        t.start()
                        running.append(step.name)
                if not running and not ready:
                    break
                time.sleep(POLL_SECONDS)
        except Exception as err:  # the engine itself failed: the execution must still end
            self.failure_reason = f"InternalServerError: offline pipeline engine: {err!r}"
        finally:
            for t in threads.values():
                t.join(timeout=5)
            self._finish()

    def _finish(self) -> None:
        with self._lock:
            records = list(self.records.values())
            failed = [r for r in records if r.status == "Failed"]
            if self.failure_reason:
                self.status = "Failed"
            elif self._stop.is_set():
                self.status = "Stopped"
            elif failed:
                self.status = "Failed"
                fail_steps = [r for r in failed if r.step.type == "Fail"]
                if fail_steps:
                    self.failure_reason = fail_steps[0].failure or "Fail step reached."
                else:
                    # AWS names no step here; the first failed step's own reason (a job's root
                    # cause) saves the learner a ListPipelineExecutionSteps call.
                    names = ", ".join(sorted(r.step.name for r in failed))
                    first = min(failed, key=lambda r: r.end or now())
                    cause = " ".join((first.failure or "").split())
                    self.failure_reason = failures.fit(f"Step failure: One or multiple steps failed ({names}). "
                                                       f"{first.step.name}: ", cause, limit=1300)
            else:
                self.status = "Succeeded"
            self.last_modified = now()
        if self.status == "Failed":
            runlog.failed("PipelineExecution", f"{self.pipeline_name}/{self.execution_id}", self.failure_reason or "")
        self.done.set()

    # --- one step ------------------------------------------------------------------
    def _run_step(self, step: StepDef) -> None:
        record = self.records[step.name]
        try:
            if step.type not in RUNNABLE:
                raise StepFailure(f"ClientError: the offline backend does not run {step.type} steps (they need "
                                  f"a service that cannot run here). Run this pipeline on the sandbox backend, or "
                                  f"use the step types {', '.join(RUNNABLE)}.")
            record.status = "Executing"
            if step.type in JOBS:
                self._job_step(step, record)
            elif step.type == "Condition":
                outcome = all(self.scope.condition(c) for c in step.arguments.get("Conditions") or [])
                record.metadata = {"Condition": {"Outcome": "True" if outcome else "False"}}
                record.properties = {"Outcome": outcome}
                with self._lock:
                    self.outcomes[step.name] = outcome
            elif step.type == "Fail":
                message = self.scope.resolve(step.arguments.get("ErrorMessage", ""))
                message = "" if message is None else str(message)
                record.metadata = {"Fail": {"ErrorMessage": message}}
                raise StepFailure(message)
            elif step.type == "RegisterModel":
                self._register_step(step, record)
            elif step.type == "Model":
                self._model_step(step, record)
            status, reason = "Succeeded", None
        except StepFailure as err:
            status, reason = "Failed", str(err)
        except ExpressionError as err:
            status, reason = "Failed", f"ClientError: {err}"
        except Exception as err:
            status, reason = "Failed", _client_error(err)
        with self._lock:
            if status == "Failed" and self._stop.is_set() and step.type in JOBS:
                status = "Stopped"
            record.status, record.end = status, now()
            if reason:
                record.failure = reason[:1024]
            self.last_modified = record.end

    def _request(self, step: StepDef, operation: str, extra: dict[str, Any]) -> dict[str, Any]:
        from ...training import shapes

        arguments = {k: v for k, v in step.arguments.items()}
        resolved = self.scope.resolve(arguments)
        resolved.update(extra)
        shape = shapes.sagemaker_model().operation_model(operation).input_shape
        return coerce(resolved, shape)

    def _job_step(self, step: StepDef, record: StepRecord) -> None:
        kind = JOBS[step.type]
        client = self._client()
        name = job_name(self.execution_id, step.name, kind.name_limit)
        request = self._request(step, OPERATIONS[kind.create], {kind.name_field: name})
        response = getattr(client, kind.create)(**request)
        arn = response[kind.arn_field]
        record.metadata = {kind.metadata: {"Arn": arn}}
        self._jobs[step.name] = (kind, name)
        while True:
            described = getattr(client, kind.describe)(**{kind.name_field: name})
            status = described[kind.status_field]
            if status in ("Completed", "Failed", "Stopped"):
                break
            time.sleep(POLL_SECONDS)
        described.pop("ResponseMetadata", None)
        record.properties = described
        if status == "Failed":
            raise StepFailure(described.get("FailureReason") or f"{kind.metadata} {name} failed.")
        if status == "Stopped":
            raise StepFailure(f"{kind.metadata} {name} was stopped.")

    def _register_step(self, step: StepDef, record: StepRecord) -> None:
        client = self._client()
        request = drop_empty(self._request(step, "CreateModelPackage", {}))
        group = request.get("ModelPackageGroupName")
        if group and not request.get("ModelPackageName"):
            from botocore.exceptions import ClientError

            try:
                client.describe_model_package_group(ModelPackageGroupName=group)
            except ClientError:
                client.create_model_package_group(ModelPackageGroupName=group)
        arn = client.create_model_package(**request)["ModelPackageArn"]
        record.metadata = {"RegisterModel": {"Arn": arn}}
        described = client.describe_model_package(ModelPackageName=arn)
        described.pop("ResponseMetadata", None)
        record.properties = described

    def _model_step(self, step: StepDef, record: StepRecord) -> None:
        client = self._client()
        name = job_name(self.execution_id, step.name, 63)
        request = drop_empty(self._request(step, "CreateModel", {"ModelName": name}))
        arn = client.create_model(**request)["ModelArn"]
        record.metadata = {"Model": {"Arn": arn}}
        described = client.describe_model(ModelName=name)
        described.pop("ResponseMetadata", None)
        record.properties = described

    # --- what expressions read --------------------------------------------------------
    def _properties_of(self, name: str) -> dict[str, Any]:
        record = self.records.get(name)
        if record is None or record.status != "Succeeded":
            state = "did not run" if record is None else record.status
            raise ExpressionError(f"Step {name!r} has no properties: it {state}.")
        return record.properties

    def _property_file(self, step: str, name: str) -> Any:
        key = (step, name)
        if key in self._property_files:
            return self._property_files[key]
        record = self.records.get(step)
        if record is None or record.status != "Succeeded":
            raise ExpressionError(f"Property file {name!r}: step {step!r} has not succeeded.")
        spec = next((f for f in record.step.property_files if f.get("PropertyFileName") == name), None)
        if spec is None:
            raise ExpressionError(f"Step {step!r} declares no property file {name!r} (PropertyFiles of the "
                                  "ProcessingStep).")
        outputs = (record.properties.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        output = next((o for o in outputs if o.get("OutputName") == spec.get("OutputName")), None)
        if output is None:
            raise ExpressionError(f"Property file {name!r}: step {step!r} has no output named "
                                  f"{spec.get('OutputName')!r}.")
        uri = output["S3Output"]["S3Uri"].rstrip("/") + "/" + spec["FilePath"].lstrip("/")
        bucket, key_ = s3_location.split(uri)
        try:
            body = storage.s3().get_object(Bucket=bucket, Key=key_)["Body"].read()
        except Exception as err:
            raise ExpressionError(f"Property file {name!r} of step {step!r} was not found at {uri}: the "
                                  f"processing script must write {spec['FilePath']} into that output.") from err
        try:
            document = json.loads(body)
        except ValueError as err:
            raise ExpressionError(f"Property file {name!r} at {uri} is not valid JSON: {err}.") from err
        self._property_files[key] = document
        return document


def _client_error(err: Exception) -> str:
    from botocore.exceptions import ClientError, ParamValidationError

    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return f"ClientError: {error.get('Code', 'Error')}: {error.get('Message', str(err))}"
    if isinstance(err, ParamValidationError):
        return f"ClientError: the step's resolved arguments are not a valid request: {err}"
    return f"InternalServerError: offline pipeline engine: {err!r}"
