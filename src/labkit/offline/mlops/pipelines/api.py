"""The SageMaker Pipelines API of the offline backend (the protocol layer).

moto keeps the pipelines and execution records (CreatePipeline, DescribePipeline,
ListPipelines, DescribePipelineDefinitionForExecution...). This layer checks
definitions at CreatePipeline/UpdatePipeline as the service does, and answers the
execution calls moto only records or lacks: StartPipelineExecution (which now runs the
steps, see :mod:`.execution`), DescribePipelineExecution, ListPipelineExecutions,
ListPipelineExecutionSteps, StopPipelineExecution and ListPipelineParametersForExecution.
"""

from __future__ import annotations

import threading
from typing import Any

from ... import ACCOUNT_ID, REGION, dispatch, moto_state, on_reset, storage
from ...dispatch import AWSError
from . import definition as definitions
from .execution import PipelineRun

runs: dict[str, PipelineRun] = {}
_lock = threading.Lock()


def _name(name_or_arn: str) -> str:
    return name_or_arn.split(":pipeline/", 1)[1].split("/", 1)[0] if ":pipeline/" in name_or_arn else name_or_arn


def _pipeline(name_or_arn: str) -> Any:
    name = _name(name_or_arn)
    pipelines = moto_state.backend("sagemaker").pipelines
    pipeline = pipelines.get(name) or next((p for p in pipelines.values() if p.pipeline_name.lower() == name.lower()),
                                           None)
    if pipeline is None:
        raise AWSError("ResourceNotFound", f"Pipeline 'arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:pipeline/"
                                           f"{name.lower()}' does not exist.")
    return pipeline


def _definition_text(params: dict[str, Any]) -> str | None:
    if params.get("PipelineDefinition"):
        return params["PipelineDefinition"]
    location = params.get("PipelineDefinitionS3Location")
    if not location:
        return None
    try:
        body = storage.s3().get_object(Bucket=location["Bucket"], Key=location["ObjectKey"])["Body"].read()
    except Exception as err:
        raise AWSError("ValidationException", f"Could not read the pipeline definition from "
                                              f"s3://{location['Bucket']}/{location['ObjectKey']}: {err}") from err
    return body.decode()


def _check(params: dict[str, Any]) -> None:
    text = _definition_text(params)
    if text is None:
        return
    try:
        definitions.parse(text)
    except definitions.DefinitionError as err:
        raise AWSError("ValidationException", str(err)) from err


@dispatch.validate("sagemaker", "CreatePipeline")
def _validate_create(params: dict[str, Any]) -> None:
    if params.get("PipelineDefinition") and params.get("PipelineDefinitionS3Location"):
        raise AWSError("ValidationException", "Give PipelineDefinition or PipelineDefinitionS3Location, not both.")
    if not params.get("PipelineDefinition") and not params.get("PipelineDefinitionS3Location"):
        raise AWSError("ValidationException", "Either PipelineDefinition or PipelineDefinitionS3Location must be "
                                              "provided.")
    if params["PipelineName"] in moto_state.backend("sagemaker").pipelines:
        raise AWSError("ResourceInUse", f"Pipeline names must be unique within an AWS account and region. "
                                        f"Pipeline with name ({params['PipelineName']}) already exists.")
    _check(params)


@dispatch.validate("sagemaker", "UpdatePipeline")
def _validate_update(params: dict[str, Any]) -> None:
    _pipeline(params["PipelineName"])
    _check(params)


def _convert(parameter: definitions.Parameter, value: Any) -> Any:
    try:
        if parameter.type == "Integer":
            return int(value) if not isinstance(value, bool) else int("x")
        if parameter.type == "Float":
            return float(value)
        if parameter.type == "Boolean":
            if isinstance(value, bool):
                return value
            if str(value).lower() not in ("true", "false"):
                raise ValueError(value)
            return str(value).lower() == "true"
    except (TypeError, ValueError) as err:
        raise AWSError("ValidationException", f"Parameter '{parameter.name}' is of type {parameter.type}; "
                                              f"the value {value!r} is not.") from err
    return str(value)


def execution_parameters(definition: definitions.Definition, given: list[dict[str, str]]) -> dict[str, Any]:
    """Every declared parameter's value for an execution: overrides, else defaults."""
    values: dict[str, Any] = {}
    overrides = {}
    for item in given:
        if item["Name"] not in definition.parameters:
            raise AWSError("ValidationException", f"Parameter '{item['Name']}' is not declared in the pipeline "
                                                  f"definition (declared: {', '.join(definition.parameters) or 'none'}).")
        overrides[item["Name"]] = item["Value"]
    for name, parameter in definition.parameters.items():
        if name in overrides:
            raw = overrides[name]
        elif parameter.default is not None:
            raw = parameter.default
        else:
            raise AWSError("ValidationException", f"Parameter '{name}' has no default value: give it in "
                                                  "PipelineParameters.")
        value = _convert(parameter, raw)
        if parameter.enum and value not in parameter.enum:
            raise AWSError("ValidationException", f"Parameter '{name}' must be one of {parameter.enum}, not {value!r}.")
        values[name] = value
    return values


@dispatch.operation("sagemaker", "StartPipelineExecution")
def start_pipeline_execution(params: dict[str, Any]) -> dict[str, Any]:
    pipeline = _pipeline(params["PipelineName"])
    try:
        definition = definitions.parse(pipeline.pipeline_definition)
    except definitions.DefinitionError as err:
        raise AWSError("ValidationException", str(err)) from err
    values = execution_parameters(definition, params.get("PipelineParameters") or [])
    response = moto_state.backend("sagemaker").start_pipeline_execution(
        pipeline.pipeline_name, params.get("PipelineExecutionDisplayName"), params.get("PipelineParameters") or [],
        params.get("PipelineExecutionDescription"), params.get("ParallelismConfiguration"),
        params.get("ClientRequestToken"))
    arn = response["PipelineExecutionArn"]
    record = pipeline.pipeline_executions[arn]
    record.pipeline_execution_status = "Executing"
    record.pipeline_parameters = [{"Name": k, "Value": str(v).lower() if isinstance(v, bool) else str(v)}
                                  for k, v in values.items()]
    parallel = (params.get("ParallelismConfiguration") or pipeline.parallelism_configuration or {})
    run = PipelineRun(definition, arn=arn, pipeline_name=pipeline.pipeline_name, pipeline_arn=pipeline.arn,
                      parameters=values, max_parallel=parallel.get("MaxParallelExecutionSteps", 50), region=REGION)
    run.record = record  # type: ignore[attr-defined]
    with _lock:
        runs[arn] = run
    run.start()
    return {"PipelineExecutionArn": arn}


def _run(arn: str) -> PipelineRun:
    run = runs.get(arn)
    if run is None:
        raise AWSError("ResourceNotFound", f"Pipeline execution '{arn}' does not exist.")
    return run


def _sync(run: PipelineRun) -> None:
    record = getattr(run, "record", None)
    if record is not None:
        record.pipeline_execution_status = run.status
        record.pipeline_execution_failure_reason = run.failure_reason
        record.last_modified_time = run.last_modified


@dispatch.operation("sagemaker", "DescribePipelineExecution")
def describe_pipeline_execution(params: dict[str, Any]) -> dict[str, Any]:
    run = _run(params["PipelineExecutionArn"])
    _sync(run)
    record = run.record  # type: ignore[attr-defined]
    out: dict[str, Any] = {
        "PipelineArn": _pipeline(run.pipeline_name).arn, "PipelineExecutionArn": run.arn,
        "PipelineExecutionDisplayName": record.pipeline_execution_display_name or run.execution_id,
        "PipelineExecutionStatus": run.status, "CreationTime": run.started, "LastModifiedTime": run.last_modified,
        "CreatedBy": {}, "LastModifiedBy": {},
    }
    if record.pipeline_execution_description:
        out["PipelineExecutionDescription"] = record.pipeline_execution_description
    if run.experiment_config:
        out["PipelineExperimentConfig"] = dict(run.experiment_config)
    if run.failure_reason:
        out["FailureReason"] = run.failure_reason
    if record.parallelism_configuration:
        out["ParallelismConfiguration"] = record.parallelism_configuration
    for key in ("CreatedBy", "LastModifiedBy"):
        if not out[key]:
            del out[key]
    return out


@dispatch.operation("sagemaker", "ListPipelineExecutions")
def list_pipeline_executions(params: dict[str, Any]) -> dict[str, Any]:
    pipeline = _pipeline(params["PipelineName"])
    items = [runs[arn] for arn in pipeline.pipeline_executions if arn in runs]
    after, before = params.get("CreatedAfter"), params.get("CreatedBefore")
    items = [r for r in items if (after is None or r.started > after) and (before is None or r.started < before)]
    items.sort(key=lambda r: r.started, reverse=params.get("SortOrder", "Descending") == "Descending")
    summaries = []
    for run in items:
        _sync(run)
        summary = {"PipelineExecutionArn": run.arn, "StartTime": run.started,
                   "PipelineExecutionStatus": run.status,
                   "PipelineExecutionDisplayName": run.record.pipeline_execution_display_name  # type: ignore[attr-defined]
                   or run.execution_id}
        if run.failure_reason:
            summary["PipelineExecutionFailureReason"] = run.failure_reason
        summaries.append(summary)
    return _page(summaries, params, "PipelineExecutionSummaries")


def _page(items: list[Any], params: dict[str, Any], key: str) -> dict[str, Any]:
    start = int(params.get("NextToken") or 0) if str(params.get("NextToken") or "0").isdigit() else 0
    size = int(params.get("MaxResults") or 100)
    out: dict[str, Any] = {key: items[start:start + size]}
    if start + size < len(items):
        out["NextToken"] = str(start + size)
    return out


@dispatch.operation("sagemaker", "ListPipelineExecutionSteps")
def list_pipeline_execution_steps(params: dict[str, Any]) -> dict[str, Any]:
    run = _run(params["PipelineExecutionArn"])
    steps = run.steps(ascending=params.get("SortOrder") == "Ascending")
    return _page(steps, params, "PipelineExecutionSteps")


@dispatch.operation("sagemaker", "StopPipelineExecution")
def stop_pipeline_execution(params: dict[str, Any]) -> dict[str, Any]:
    run = _run(params["PipelineExecutionArn"])
    if run.done.is_set():
        raise AWSError("ValidationException", f"Pipeline execution '{run.arn}' is in status {run.status} and "
                                              "cannot be stopped.")
    run.stop()
    return {"PipelineExecutionArn": run.arn}


@dispatch.operation("sagemaker", "ListPipelineParametersForExecution")
def list_pipeline_parameters_for_execution(params: dict[str, Any]) -> dict[str, Any]:
    run = _run(params["PipelineExecutionArn"])
    return _page(list(run.record.pipeline_parameters), params, "PipelineParameters")  # type: ignore[attr-defined]


def wait_for_execution(arn: str, timeout: float = 600.0) -> str:
    """Block until execution ``arn`` ends; returns its status (for tests and labs' helpers)."""
    run = _run(arn)
    run.wait(timeout)
    return run.status


@on_reset
def _reset() -> None:
    with _lock:
        for run in list(runs.values()):
            run.stop()
        for run in list(runs.values()):
            run.wait(10)
        runs.clear()
