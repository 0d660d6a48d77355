"""Monitoring schedules over captured endpoint traffic (moto has none).

CreateMonitoringSchedule takes an inline ``MonitoringJobDefinition`` or the name of a
data-quality job definition (moto keeps those). A schedule with ``ScheduleExpression``
``NOW`` (AWS's one-time schedule) starts its monitoring execution at once: a processing
job of the analyzer image over the endpoint's data capture files in the analysis window
(``DataAnalysisStartTime``/``EndTime``, ISO 8601 offsets such as ``-PT1H``), with the
baseline's statistics and constraints, writing to
``<S3Uri>/<endpoint>/<schedule>/<yyyy>/<mm>/<dd>/<hh>``. The execution ends
``Completed``, ``CompletedWithViolations`` (its ``constraint_violations.json`` lists some)
or ``Failed`` (no captured data in the window, or the job failed).

Not emulated: the hourly/daily clock of ``cron(...)`` schedules. Such a schedule is
recorded as ``Scheduled`` and runs no execution offline (a lab cannot wait for the next
hour); use ``NOW`` to run one, which is what a real account also runs at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ... import ACCOUNT_ID, REGION, dispatch, moto_state, on_reset, s3_location, storage
from ...dispatch import AWSError

ANALYZER = "sagemaker-model-monitor-analyzer"
DEFAULT_ENDPOINT_PATH = "/opt/ml/processing/input/endpoint"
BASELINE_CONSTRAINTS = "/opt/ml/processing/baseline/constraints"
BASELINE_STATISTICS = "/opt/ml/processing/baseline/stats"
_OFFSET = re.compile(r"^-?PT(?:(\d+)H)?(?:(\d+)M)?$")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def offset(text: str | None, default: str) -> dt.timedelta:
    """``-PT1H`` -> -1 hour (the analysis window's offsets from the scheduled time)."""
    value = text or default
    m = _OFFSET.match(value)
    if not m or not any(m.groups()):
        raise AWSError("ValidationException", f"Invalid analysis time offset {value!r}: use an ISO 8601 duration "
                                              "such as -PT1H or -PT0H.")
    delta = dt.timedelta(hours=int(m.group(1) or 0), minutes=int(m.group(2) or 0))
    return -delta if value.startswith("-") else delta


@dataclass
class Execution:
    """One monitoring execution (ListMonitoringExecutions' summary)."""

    schedule: str
    endpoint: str | None
    definition_name: str | None
    monitoring_type: str
    scheduled: dt.datetime = field(default_factory=now)
    created: dt.datetime = field(default_factory=now)
    modified: dt.datetime = field(default_factory=now)
    status: str = "Pending"
    processing_job_arn: str | None = None
    failure: str | None = None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"MonitoringScheduleName": self.schedule, "ScheduledTime": self.scheduled,
                               "CreationTime": self.created, "LastModifiedTime": self.modified,
                               "MonitoringExecutionStatus": self.status, "MonitoringType": self.monitoring_type}
        for key, value in (("ProcessingJobArn", self.processing_job_arn), ("EndpointName", self.endpoint),
                           ("FailureReason", self.failure), ("MonitoringJobDefinitionName", self.definition_name)):
            if value:
                out[key] = value
        return out


@dataclass
class Schedule:
    name: str
    config: dict[str, Any]
    tags: list[dict[str, str]]
    created: dt.datetime = field(default_factory=now)
    modified: dt.datetime = field(default_factory=now)
    status: str = "Scheduled"
    executions: list[Execution] = field(default_factory=list)

    @property
    def arn(self) -> str:
        return f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:monitoring-schedule/{self.name.lower()}"

    @property
    def monitoring_type(self) -> str:
        return self.config.get("MonitoringType", "DataQuality")

    def job(self) -> dict[str, Any]:
        """The job definition as an inline ``MonitoringJobDefinition``."""
        if "MonitoringJobDefinition" in self.config:
            return self.config["MonitoringJobDefinition"]
        d = moto_state.backend("sagemaker").data_quality_job_definitions[self.config["MonitoringJobDefinitionName"]]
        app = dict(d.data_quality_app_specification)
        return {"BaselineConfig": d.data_quality_baseline_config, "MonitoringInputs": [d.data_quality_job_input],
                "MonitoringOutputConfig": d.data_quality_job_output_config, "MonitoringResources": d.job_resources,
                "MonitoringAppSpecification": app, "StoppingCondition": d.stopping_condition,
                "Environment": {**(d.environment or {}), **(app.get("Environment") or {})},
                "NetworkConfig": d.network_config, "RoleArn": d.role_arn}

    @property
    def endpoint(self) -> str | None:
        for item in self.job().get("MonitoringInputs") or []:
            if "EndpointInput" in item:
                return item["EndpointInput"]["EndpointName"]
        return None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"MonitoringScheduleArn": self.arn, "MonitoringScheduleName": self.name,
                               "MonitoringScheduleStatus": self.status, "MonitoringType": self.monitoring_type,
                               "CreationTime": self.created, "LastModifiedTime": self.modified,
                               "MonitoringScheduleConfig": self.config}
        if self.endpoint:
            out["EndpointName"] = self.endpoint
        if self.executions:
            out["LastMonitoringExecutionSummary"] = self.executions[-1].summary()
        return out


schedules: dict[str, Schedule] = {}
_threads: list[threading.Thread] = []


def capture_destination(endpoint: str) -> str:
    """The endpoint's ``DataCaptureConfig.DestinationS3Uri`` (ValidationException without capture)."""
    backend = moto_state.backend("sagemaker")
    record = backend.endpoints.get(endpoint)
    if record is None:
        raise AWSError("ValidationException", f"Could not find endpoint \"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:"
                                              f"endpoint/{endpoint.lower()}\".")
    config = backend.endpoint_configs.get(record.endpoint_config_name)
    capture = (getattr(config, "data_capture_config", None) or record.data_capture_config or {})
    if not capture or not capture.get("EnableCapture", True) or not capture.get("DestinationS3Uri"):
        raise AWSError("ValidationException", f"Endpoint {endpoint} does not capture data: give its endpoint "
                                              "configuration a DataCaptureConfig (EnableCapture, "
                                              "DestinationS3Uri, CaptureOptions) to monitor it.")
    return capture["DestinationS3Uri"].rstrip("/")


def _validate(params: dict[str, Any]) -> None:
    name = params["MonitoringScheduleName"]
    if name in schedules:
        raise AWSError("ResourceInUse", f"Monitoring schedule {name} already exists.")
    config = params["MonitoringScheduleConfig"]
    if ("MonitoringJobDefinition" in config) == ("MonitoringJobDefinitionName" in config):
        raise AWSError("ValidationException", "MonitoringScheduleConfig needs exactly one of MonitoringJobDefinition "
                                              "or MonitoringJobDefinitionName.")
    definition_name = config.get("MonitoringJobDefinitionName")
    if definition_name:
        kind = config.get("MonitoringType", "DataQuality")
        if kind != "DataQuality":
            raise AWSError("ValidationException", f"MonitoringType {kind}: the offline backend runs DataQuality "
                                                  "monitoring (model quality, bias and explainability need ground "
                                                  "truth or Clarify).")
        if definition_name not in moto_state.backend("sagemaker").data_quality_job_definitions:
            raise AWSError("ResourceNotFound", f"Job definition {definition_name} does not exist.")
    expression = (config.get("ScheduleConfig") or {}).get("ScheduleExpression")
    if expression is not None and expression != "NOW" and not re.match(r"^cron\(.+\)$", expression):
        raise AWSError("ValidationException", f"ScheduleExpression {expression!r} is not valid: use NOW or a cron "
                                              "expression such as cron(0 * ? * * *).")
    schedule = Schedule(name, config, params.get("Tags") or [])
    if schedule.endpoint:
        capture_destination(schedule.endpoint)
    if expression == "NOW":
        offset((config.get("ScheduleConfig") or {}).get("DataAnalysisStartTime"), "-PT1H")
        offset((config.get("ScheduleConfig") or {}).get("DataAnalysisEndTime"), "-PT0H")


@dispatch.operation("sagemaker", "CreateMonitoringSchedule")
def create_monitoring_schedule(params: dict[str, Any]) -> dict[str, Any]:
    _validate(params)
    schedule = Schedule(params["MonitoringScheduleName"], params["MonitoringScheduleConfig"], params.get("Tags") or [])
    schedules[schedule.name] = schedule
    if (schedule.config.get("ScheduleConfig") or {}).get("ScheduleExpression") == "NOW":
        start_execution(schedule)
    return {"MonitoringScheduleArn": schedule.arn}


def _schedule(name: str) -> Schedule:
    schedule = schedules.get(name)
    if schedule is None:
        raise AWSError("ResourceNotFound", f"Monitoring schedule {name} does not exist.")
    return schedule


@dispatch.operation("sagemaker", "DescribeMonitoringSchedule")
def describe_monitoring_schedule(params: dict[str, Any]) -> dict[str, Any]:
    return _schedule(params["MonitoringScheduleName"]).describe()


@dispatch.operation("sagemaker", "ListMonitoringSchedules")
def list_monitoring_schedules(params: dict[str, Any]) -> dict[str, Any]:
    items = [s for s in schedules.values()
             if (not params.get("EndpointName") or s.endpoint == params["EndpointName"])
             and (not params.get("NameContains") or params["NameContains"] in s.name)
             and (not params.get("StatusEquals") or s.status == params["StatusEquals"])]
    return {"MonitoringScheduleSummaries": [
        {k: v for k, v in {"MonitoringScheduleName": s.name, "MonitoringScheduleArn": s.arn,
                           "CreationTime": s.created, "LastModifiedTime": s.modified,
                           "MonitoringScheduleStatus": s.status, "EndpointName": s.endpoint,
                           "MonitoringJobDefinitionName": s.config.get("MonitoringJobDefinitionName"),
                           "MonitoringType": s.monitoring_type}.items() if v is not None} for s in items]}


@dispatch.operation("sagemaker", "ListMonitoringExecutions")
def list_monitoring_executions(params: dict[str, Any]) -> dict[str, Any]:
    items = [e for s in schedules.values() for e in s.executions
             if (not params.get("MonitoringScheduleName") or e.schedule == params["MonitoringScheduleName"])
             and (not params.get("EndpointName") or e.endpoint == params["EndpointName"])
             and (not params.get("StatusEquals") or e.status == params["StatusEquals"])]
    key = {"CreationTime": "created", "ScheduledTime": "scheduled", "Status": "status"}[params.get("SortBy",
                                                                                                  "ScheduledTime")]
    items.sort(key=lambda e: getattr(e, key), reverse=params.get("SortOrder", "Descending") == "Descending")
    return {"MonitoringExecutionSummaries": [e.summary() for e in items[: int(params.get("MaxResults") or 100)]]}


@dispatch.operation("sagemaker", "StopMonitoringSchedule")
def stop_monitoring_schedule(params: dict[str, Any]) -> dict[str, Any]:
    schedule = _schedule(params["MonitoringScheduleName"])
    schedule.status, schedule.modified = "Stopped", now()
    return {}


@dispatch.operation("sagemaker", "StartMonitoringSchedule")
def start_monitoring_schedule(params: dict[str, Any]) -> dict[str, Any]:
    schedule = _schedule(params["MonitoringScheduleName"])
    schedule.status, schedule.modified = "Scheduled", now()
    return {}


@dispatch.operation("sagemaker", "DeleteMonitoringSchedule")
def delete_monitoring_schedule(params: dict[str, Any]) -> dict[str, Any]:
    schedule = _schedule(params["MonitoringScheduleName"])
    if any(e.status in ("Pending", "InProgress") for e in schedule.executions):
        raise AWSError("ValidationException", f"Monitoring schedule {schedule.name} has an execution in progress; "
                                              "wait for it to end before deleting the schedule.")
    del schedules[schedule.name]
    return {}


# --- an execution -----------------------------------------------------------------------


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def processing_request(schedule: Schedule, execution: Execution, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """The CreateProcessingJob request of one monitoring execution."""
    job = schedule.job()
    app = job.get("MonitoringAppSpecification") or {}
    baseline = job.get("BaselineConfig") or {}
    stamp = execution.scheduled.strftime("%Y%m%d%H%M")
    digest = hashlib.sha256(f"{schedule.name}{execution.created.isoformat()}".encode()).hexdigest()[:12]
    name = f"model-monitoring-{stamp}-{digest}"
    env = dict(job.get("Environment") or {})
    env.update({"dataset_format": json.dumps({"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput",
                                                                                            "endpointOutput"]}}),
                "start_time": _iso(start), "end_time": _iso(end), "metric_time": _iso(end),
                "sagemaker_monitoring_schedule_name": schedule.name,
                "publish_cloudwatch_metrics": env.get("publish_cloudwatch_metrics", "Enabled")})
    inputs = []
    for item in job.get("MonitoringInputs") or []:
        endpoint_input = item.get("EndpointInput")
        if not endpoint_input:
            continue
        endpoint = endpoint_input["EndpointName"]
        local = endpoint_input.get("LocalPath") or DEFAULT_ENDPOINT_PATH
        uri = f"{capture_destination(endpoint)}/{endpoint}"
        if not storage.list_keys(uri):
            raise RuntimeError(f"Job inputs had no data: endpoint {endpoint} has captured no requests under {uri}.")
        env.update(dataset_source=local, sagemaker_endpoint_name=endpoint)
        inputs.append({"InputName": "endpoint_input_1", "S3Input": {
            "S3Uri": uri, "LocalPath": local, "S3DataType": "S3Prefix", "S3InputMode": "File",
            "S3DataDistributionType": endpoint_input.get("S3DataDistributionType", "FullyReplicated")}})
    for key, folder, file, var in (("ConstraintsResource", BASELINE_CONSTRAINTS, "constraints.json",
                                    "baseline_constraints"),
                                   ("StatisticsResource", BASELINE_STATISTICS, "statistics.json",
                                    "baseline_statistics")):
        baseline_uri = (baseline.get(key) or {}).get("S3Uri")
        if baseline_uri:
            inputs.append({"InputName": var, "S3Input": {"S3Uri": baseline_uri, "LocalPath": folder,
                                                         "S3DataType": "S3Prefix", "S3InputMode": "File"}})
            env[var] = f"{folder}/{baseline_uri.rstrip('/').rsplit('/', 1)[-1] or file}"
    outputs = []
    for i, item in enumerate((job.get("MonitoringOutputConfig") or {}).get("MonitoringOutputs") or []):
        s3 = item["S3Output"]
        uri = f"{s3['S3Uri'].rstrip('/')}/{schedule.endpoint or 'batch'}/{schedule.name}/{end:%Y/%m/%d/%H}"
        outputs.append({"OutputName": f"monitoring_output_{i + 1}", "S3Output": {
            "S3Uri": uri, "LocalPath": s3.get("LocalPath") or "/opt/ml/processing/output",
            "S3UploadMode": "EndOfJob"}})
        env.setdefault("output_path", s3.get("LocalPath") or "/opt/ml/processing/output")
    spec: dict[str, Any] = {"ImageUri": app["ImageUri"]}
    for key in ("ContainerEntrypoint", "ContainerArguments"):
        if app.get(key):
            spec[key] = app[key]
    for key, var in (("RecordPreprocessorSourceUri", "record_preprocessor_script"),
                     ("PostAnalyticsProcessorSourceUri", "post_analytics_processor_script")):
        if app.get(key):
            env[var] = app[key]
    request: dict[str, Any] = {
        "ProcessingJobName": name, "ProcessingInputs": inputs, "ProcessingOutputConfig": {"Outputs": outputs},
        "ProcessingResources": job.get("MonitoringResources") or {"ClusterConfig": {
            "InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30}},
        "AppSpecification": spec, "Environment": env, "RoleArn": job["RoleArn"]}
    if job.get("StoppingCondition"):
        request["StoppingCondition"] = job["StoppingCondition"]
    return request


def start_execution(schedule: Schedule) -> Execution:
    """Run one monitoring execution of ``schedule`` now, in a thread."""
    execution = Execution(schedule.name, schedule.endpoint, schedule.config.get("MonitoringJobDefinitionName"),
                          schedule.monitoring_type)
    schedule.executions.append(execution)
    config = schedule.config.get("ScheduleConfig") or {}
    start = execution.scheduled + offset(config.get("DataAnalysisStartTime"), "-PT1H")
    end = execution.scheduled + offset(config.get("DataAnalysisEndTime"), "-PT0H")
    thread = threading.Thread(target=_run, args=(schedule, execution, start, end), daemon=True,
                              name=f"labkit-monitoring-{schedule.name}")
    _threads.append(thread)
    thread.start()
    return execution


def _set(execution: Execution, **fields: Any) -> None:
    for key, value in fields.items():
        setattr(execution, key, value)
    execution.modified = now()


def _run(schedule: Schedule, execution: Execution, start: dt.datetime, end: dt.datetime) -> None:
    import boto3

    try:
        request = processing_request(schedule, execution, start, end)
    except (RuntimeError, AWSError) as err:
        _set(execution, status="Failed", failure=str(getattr(err, "message", err)))
        return
    sm = boto3.session.Session().client("sagemaker", region_name=REGION)
    try:
        arn = sm.create_processing_job(**request)["ProcessingJobArn"]
    except Exception as err:
        _set(execution, status="Failed", failure=f"Could not start the monitoring job: {err}")
        return
    _set(execution, status="InProgress", processing_job_arn=arn)
    while True:
        job = sm.describe_processing_job(ProcessingJobName=request["ProcessingJobName"])
        if job["ProcessingJobStatus"] in ("Completed", "Failed", "Stopped"):
            break
        time.sleep(0.1)
    if job["ProcessingJobStatus"] != "Completed":
        _set(execution, status="Failed" if job["ProcessingJobStatus"] == "Failed" else "Stopped",
             failure=job.get("FailureReason"))
        return
    status = "Completed"
    for output in request["ProcessingOutputConfig"]["Outputs"]:
        bucket, key = s3_location.split(output["S3Output"]["S3Uri"].rstrip("/") + "/constraint_violations.json")
        try:
            report = json.loads(storage.s3().get_object(Bucket=bucket, Key=key)["Body"].read())
        except Exception:
            continue
        if report.get("violations"):
            status = "CompletedWithViolations"
    _set(execution, status=status)


def wait_for_executions(name: str, timeout: float = 120.0) -> list[dict[str, Any]]:
    """Block until every execution of schedule ``name`` has ended (tests and helpers)."""
    deadline = time.time() + timeout
    schedule = _schedule(name)
    while time.time() < deadline and any(e.status in ("Pending", "InProgress") for e in schedule.executions):
        time.sleep(0.05)
    return [e.summary() for e in schedule.executions]


@on_reset
def _reset() -> None:
    schedules.clear()
    for thread in _threads:
        thread.join(timeout=10)
    _threads.clear()
