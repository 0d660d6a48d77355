"""The AWS protocol of the hosting engine: boto3 calls in, engine calls, AWS-shaped answers.

moto keeps the SageMaker records (models, endpoint configurations, endpoints, transform
jobs); the handlers here validate as SageMaker does, update those records and drive
:class:`~.endpoints.HostingEngine`, :mod:`.transform` and :mod:`.async_`.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from .. import ACCOUNT_ID, REGION, dispatch, moto_state, persistence, s3_location, storage
from ..dispatch import AWSError
from . import async_, process, transform
from .endpoints import Endpoint, HostingEngine

engine = HostingEngine()

SERVERLESS_MEMORY = (1024, 2048, 3072, 4096, 5120, 6144)
MAX_SERVERLESS_CONCURRENCY = 200


def _arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:{kind}/{name.lower()}"


def _moto_call(fn, *args: Any, **kwargs: Any) -> Any:
    """Call a moto backend method, turning its errors into :class:`AWSError`."""
    from moto.core.exceptions import JsonRESTError, ServiceException

    try:
        return fn(*args, **kwargs)
    except ServiceException as err:
        raise AWSError(err.code, err.message, 400) from err
    except JsonRESTError as err:
        raise AWSError(err.error_type, err.message, err.code) from err


def invalid(message: str) -> AWSError:
    return AWSError("ValidationException", message)


# --- models: the model data must exist; a model is usually deployed next, so warm the zygote now ----


def _model_data_exists(location: s3_location.S3Location, prefix: bool) -> bool:
    try:
        if prefix:
            return bool(storage.list_keys(location.uri, strict=True))
        storage.get(location.uri)
    except KeyError:
        return False
    return True


@dispatch.validate("sagemaker", "CreateModel")
def validate_model_data(params: dict[str, Any]) -> None:
    """SageMaker checks at CreateModel that each container's model data is in S3."""
    containers = [("primaryContainer", params.get("PrimaryContainer"))]
    containers += [(f"containers.{i}.member", c) for i, c in enumerate(params.get("Containers") or [], 1)]
    for member, container in containers:
        if not container:
            continue
        source = (container.get("ModelDataSource") or {}).get("S3DataSource")
        if container.get("ModelDataUrl"):
            url, field = container["ModelDataUrl"], f"{member}.modelDataUrl"
            prefix = container.get("Mode") == "MultiModel" or url.endswith("/")
        elif source:
            url, field = source.get("S3Uri", ""), f"{member}.modelDataSource.s3DataSource.s3Uri"
            prefix = source.get("S3DataType") == "S3Prefix" or source.get("CompressionType") == "None"
        else:
            continue
        location = s3_location.require(url, field)
        if container.get("Mode") != "MultiModel" and not _model_data_exists(location, prefix):
            raise invalid(f"Could not find model data at {url}.")


@dispatch.after("sagemaker", "CreateModel")
def _warm_up(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    process.warm_up()


def _utc(moment: Any) -> Any:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dispatch.operation("sagemaker", "ListModels")
def list_models(params: dict[str, Any]) -> dict[str, Any]:
    """ListModels with its filters, order and pages (moto 5.2 ignores them all and lists every model).

    Without ``MaxResults`` every match is returned in one page.
    """
    models = [m for m in moto_state.backend("sagemaker")._models.values()
              if params.get("NameContains", "") in m.model_name
              and ("CreationTimeBefore" not in params or _utc(m.creation_time) < _utc(params["CreationTimeBefore"]))
              and ("CreationTimeAfter" not in params or _utc(m.creation_time) >= _utc(params["CreationTimeAfter"]))]
    by_name = params.get("SortBy", "CreationTime") == "Name"
    models.sort(key=lambda m: m.model_name if by_name else _utc(m.creation_time),
                reverse=params.get("SortOrder", "Descending") == "Descending")
    start = int(params["NextToken"]) if str(params.get("NextToken", "")).isdigit() else 0
    end = start + int(params["MaxResults"]) if params.get("MaxResults") else len(models)
    page: dict[str, Any] = {"Models": [{"ModelName": m.model_name, "ModelArn": m.arn, "CreationTime": _utc(m.creation_time)}
                       for m in models[start:end]]}
    if end < len(models):
        page["NextToken"] = str(end)
    return page


# --- endpoint configurations ---------------------------------------------------------------


def validate_endpoint_config(params: dict[str, Any]) -> None:
    """SageMaker's checks of CreateEndpointConfig that botocore leaves to the service."""
    name = params["EndpointConfigName"]
    if name in moto_state.backend("sagemaker").endpoint_configs:
        raise invalid(f"Cannot create already existing endpoint configuration \"{_arn('endpoint-config', name)}\".")
    variants = params["ProductionVariants"]
    names = [v["VariantName"] for v in variants]
    if len(set(names)) != len(names):
        raise invalid(f"Variant names must be unique within an endpoint configuration: {names}.")
    has_async = "AsyncInferenceConfig" in params
    for v in variants:
        serverless = v.get("ServerlessConfig")
        if serverless is None and not v.get("InstanceType"):
            raise invalid(f"Variant {v['VariantName']} needs an InstanceType (with InitialInstanceCount) or a "
                          "ServerlessConfig.")
        if serverless is not None:
            if v.get("InstanceType") or v.get("InitialInstanceCount"):
                raise invalid(f"Variant {v['VariantName']}: a serverless variant takes no InstanceType or "
                              "InitialInstanceCount; its capacity is ServerlessConfig.")
            memory, concurrency = serverless.get("MemorySizeInMB"), serverless.get("MaxConcurrency")
            if memory not in SERVERLESS_MEMORY:
                raise invalid(f"Value '{memory}' at 'MemorySizeInMB' failed to satisfy constraint: Member must be "
                              f"one of {list(SERVERLESS_MEMORY)} (1024 to 6144 in steps of 1024).")
            if not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_SERVERLESS_CONCURRENCY:
                raise invalid(f"Value '{concurrency}' at 'MaxConcurrency' failed to satisfy constraint: Member must "
                              f"have value between 1 and {MAX_SERVERLESS_CONCURRENCY}.")
            provisioned = serverless.get("ProvisionedConcurrency")
            if provisioned is not None and provisioned > concurrency:
                raise invalid("ProvisionedConcurrency must be less than or equal to MaxConcurrency.")
            if has_async:
                raise invalid("Asynchronous inference is not supported with serverless variants: give the "
                              "variant an InstanceType.")
        elif v.get("InitialInstanceCount") is None:
            raise invalid(f"Variant {v['VariantName']}: InitialInstanceCount is required with InstanceType.")
        weight = v.get("InitialVariantWeight")
        if weight is not None and weight < 0:
            raise invalid(f"InitialVariantWeight of {v['VariantName']} must be >= 0.")
    capture = params.get("DataCaptureConfig")
    if capture:
        pct = capture.get("InitialSamplingPercentage")
        if not isinstance(pct, int) or not 0 <= pct <= 100:
            raise invalid(f"Value '{pct}' at 'DataCaptureConfig.InitialSamplingPercentage' failed to satisfy "
                          "constraint: Member must have value between 0 and 100.")
        s3_location.require(capture.get("DestinationS3Uri", ""), "dataCaptureConfig.destinationS3Uri")
        if not capture.get("CaptureOptions"):
            raise invalid("DataCaptureConfig.CaptureOptions needs at least one of Input, Output.")
    if has_async:
        output = params["AsyncInferenceConfig"].get("OutputConfig") or {}
        if not output.get("S3OutputPath"):
            raise invalid("AsyncInferenceConfig.OutputConfig.S3OutputPath is required: where results go.")
        s3_location.require(output["S3OutputPath"], "asyncInferenceConfig.outputConfig.s3OutputPath")
        if output.get("S3FailurePath"):
            s3_location.require(output["S3FailurePath"], "asyncInferenceConfig.outputConfig.s3FailurePath")


@dispatch.operation("sagemaker", "CreateEndpointConfig")
def create_endpoint_config(params: dict[str, Any]) -> dict[str, Any]:
    validate_endpoint_config(params)
    config = _moto_call(moto_state.backend("sagemaker").create_endpoint_config, endpoint_config_name=params["EndpointConfigName"],
                        production_variants=params["ProductionVariants"],
                        data_capture_config=params.get("DataCaptureConfig") or {},
                        async_inference_config=params.get("AsyncInferenceConfig") or {},
                        tags=params.get("Tags") or [], kms_key_id=params.get("KmsKeyId"))
    return {"EndpointConfigArn": config.endpoint_config_arn}


def _config(name: str) -> dict[str, Any]:
    config = moto_state.backend("sagemaker").endpoint_configs.get(name)
    if config is None:
        raise invalid(f"Could not find endpoint configuration \"{_arn('endpoint-config', name)}\".")
    out = {"EndpointConfigName": name, "ProductionVariants": config.production_variants}
    if config.data_capture_config:
        out["DataCaptureConfig"] = config.data_capture_config
    if config.async_inference_config:
        out["AsyncInferenceConfig"] = config.async_inference_config
    return out


# --- endpoints -------------------------------------------------------------------------------


def _sync(endpoint: Endpoint) -> None:
    """Copy the engine's view of an endpoint into moto's record (what Describe/List show)."""
    from moto.core.utils import utcnow

    record = moto_state.backend("sagemaker").endpoints.get(endpoint.name)
    if record is None:
        return
    record.endpoint_status = endpoint.status
    record.failure_reason = endpoint.failure
    record.last_modified_time = utcnow()
    if record.endpoint_config_name != endpoint.config_name:
        config = _config(endpoint.config_name)
        record.endpoint_config_name = endpoint.config_name
        record.production_variants = record._process_production_variants(config["ProductionVariants"])
        record.data_capture_config = config.get("DataCaptureConfig") or {}


@dispatch.operation("sagemaker", "CreateEndpoint")
def create_endpoint(params: dict[str, Any]) -> dict[str, Any]:
    name = params["EndpointName"]
    if name in moto_state.backend("sagemaker").endpoints:
        raise invalid(f"Cannot create already existing endpoint \"{_arn('endpoint', name)}\".")
    config = _config(params["EndpointConfigName"])
    record = _moto_call(moto_state.backend("sagemaker").create_endpoint, endpoint_name=name,
                        endpoint_config_name=params["EndpointConfigName"], tags=params.get("Tags") or [])
    record.endpoint_status = "Creating"
    try:
        engine.create(name, config, on_status=_sync)
    except AWSError:
        moto_state.backend("sagemaker").endpoints.pop(name, None)
        raise
    return {"EndpointArn": record.arn}


@persistence.on_restore
def _serve_again(stopped_at: float) -> None:
    """After a stop and start of the shared backend: endpoints that were up start their model servers
    again (``Creating``, then ``InService``, or ``Failed`` with the reason); those that had failed
    stay ``Failed``, ready to be updated or deleted; those being deleted are gone; transform jobs
    that ran are ``Failed``, with the reason."""
    from datetime import datetime

    sm = moto_state.backend("sagemaker")
    for name, record in list(sm.endpoints.items()):
        if record.endpoint_status == "Deleting":
            del sm.endpoints[name]
        elif record.endpoint_status in ("InService", "Creating", "Updating", "SystemUpdating"):
            record.endpoint_status = "Creating"
            try:
                engine.create(name, _config(record.endpoint_config_name), on_status=_sync)
            except AWSError as err:
                record.endpoint_status, record.failure_reason = "Failed", err.message
        elif record.endpoint_status == "Failed":
            engine.adopt_failed(name, record.endpoint_config_name, record.failure_reason)
    end = datetime.fromtimestamp(stopped_at, UTC)
    for job in sm.transform_jobs.values():
        if job.transform_job_status in ("InProgress", "Stopping"):
            job.transform_job_status, job.failure_reason = "Failed", persistence.INTERRUPTED
            job.transform_end_time = job.last_modified_time = end


@dispatch.operation("sagemaker", "UpdateEndpoint")
def update_endpoint(params: dict[str, Any]) -> dict[str, Any]:
    name = params["EndpointName"]
    record = moto_state.backend("sagemaker").endpoints.get(name)
    if record is None or name not in engine.endpoints:
        raise invalid(f"Could not find endpoint \"{_arn('endpoint', name)}\".")
    config = _config(params["EndpointConfigName"])
    from . import deployment  # a DeploymentConfig: blue/green traffic shifting and auto-rollback

    if not deployment.start(engine, name, config, params, on_status=_sync):
        engine.update(name, config, on_status=_sync)
    record.endpoint_status = "Updating"
    return {"EndpointArn": record.arn}


@dispatch.operation("sagemaker", "DeleteEndpoint")
def delete_endpoint(params: dict[str, Any]) -> dict[str, Any]:
    """The endpoint is ``Deleting`` for a short while, then gone (describe: "Could not find endpoint")."""
    name = params["EndpointName"]
    record = moto_state.backend("sagemaker").endpoints.get(name)
    if record is None:
        raise invalid(f"Could not find endpoint \"{_arn('endpoint', name)}\".")
    if name not in engine.endpoints:
        moto_state.backend("sagemaker").endpoints.pop(name, None)
        return {}
    record.endpoint_status = "Deleting"

    def drop_record(_: Endpoint) -> None:
        if moto_state.backend("sagemaker").endpoints.get(name) is record:
            del moto_state.backend("sagemaker").endpoints[name]

    engine.delete(name, on_gone=drop_record)
    return {}


@dispatch.after("sagemaker", "DescribeEndpoint")
def _describe_endpoint(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    endpoint = engine.endpoints.get(params.get("EndpointName", ""))
    if endpoint is None:
        return
    parsed["EndpointStatus"] = endpoint.status
    if endpoint.failure:
        parsed["FailureReason"] = endpoint.failure
    if endpoint.capture is not None:
        parsed["DataCaptureConfig"] = endpoint.capture.describe()
    else:
        parsed.pop("DataCaptureConfig", None)
    if endpoint.async_config:
        parsed["AsyncInferenceConfig"] = endpoint.async_config


@dispatch.after("sagemaker", "UpdateEndpointWeightsAndCapacities")
def _weights(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    name = params["EndpointName"]
    for change in params.get("DesiredWeightsAndCapacities", []):
        if name in engine.endpoints and change["VariantName"] in engine.endpoints[name].variants:
            engine.set_capacity(name, change["VariantName"], weight=change.get("DesiredWeight"),
                                instance_count=change.get("DesiredInstanceCount"))
    record = moto_state.backend("sagemaker").endpoints.get(name)
    if record is not None and name in engine.endpoints:
        record.endpoint_status = engine.endpoints[name].status


# --- runtime ---------------------------------------------------------------------------------


def _body(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8")
    if hasattr(value, "read"):
        return value.read()
    return bytes(value)


@dispatch.operation("sagemaker-runtime", "InvokeEndpoint")
def invoke_endpoint(params: dict[str, Any]) -> dict[str, Any]:
    result = engine.invoke(params["EndpointName"], _body(params.get("Body")),
                           content_type=params.get("ContentType"), accept=params.get("Accept"),
                           target_variant=params.get("TargetVariant"), target_model=params.get("TargetModel"),
                           custom_attributes=params.get("CustomAttributes"), inference_id=params.get("InferenceId"))
    result["Body"] = dispatch.streaming_body(result["Body"])
    return result


@dispatch.operation("sagemaker-runtime", "InvokeEndpointAsync")
def invoke_endpoint_async(params: dict[str, Any]) -> dict[str, Any]:
    return async_.invoke_async(engine, params["EndpointName"], params)


# --- transform jobs --------------------------------------------------------------------------

dispatch.operation("sagemaker", "CreateTransformJob")(transform.create_transform_job)
dispatch.operation("sagemaker", "StopTransformJob")(transform.stop_transform_job)
