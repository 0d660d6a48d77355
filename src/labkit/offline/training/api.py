"""The SageMaker training API of the offline backend (the protocol layer).

Parses and validates requests as AWS does, keeps the job in moto's record and hands
the work to :class:`~labkit.offline.training.jobs.TrainingRun`.
"""

from __future__ import annotations

from typing import Any

from .. import dispatch, moto_state, s3_location, storage
from ..dispatch import AWSError
from . import images, jobs, shapes


def _validate_resource_config(config: dict[str, Any]) -> None:
    shape = shapes.sagemaker_model().shape_for("TrainingInstanceType")
    if "InstanceType" in config:
        msg = shapes.validation_enum(config["InstanceType"], "resourceConfig.instanceType", shape)
        if msg:
            raise AWSError("ValidationException", msg)
    elif not config.get("InstanceGroups"):
        raise AWSError("ValidationException", "ResourceConfig must specify InstanceType and InstanceCount, "
                       "or InstanceGroups.")


def no_objects_message(uri: str, role_arn: str) -> str:
    bucket, _ = s3_location.split(uri)
    return (f'No S3 objects found under S3 URL "{uri}" given in input data source. Please ensure that the bucket '
            f"exists in the selected region ({jobs.REGION}), that objects exist under that S3 prefix, and that the "
            f'role "{role_arn}" has "s3:ListBucket" permissions on bucket "{bucket}".')


def validate_channels(channels: list[dict[str, Any]], role_arn: str) -> None:
    names = [c["ChannelName"] for c in channels]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise AWSError("ValidationException", f"Channel names must be unique: {', '.join(duplicates)} repeated.")
    for index, c in enumerate(channels, 1):
        source = c.get("DataSource", {})
        s3 = source.get("S3DataSource")
        if s3 is None:
            raise AWSError("ValidationException",
                           f"Channel {c['ChannelName']!r}: the offline backend stages S3 data sources only "
                           "(FileSystemDataSource needs EFS/FSx); upload the data to S3 and use S3DataSource.")
        if s3.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise AWSError("ValidationException",
                           f"Channel {c['ChannelName']!r}: S3DataType {s3['S3DataType']} is not emulated offline; "
                           "use S3Prefix (a prefix or a single object).")
        s3_location.require(s3["S3Uri"], f"inputDataConfig.{index}.member.dataSource.s3DataSource.s3Uri")
        if not storage.list_keys(s3["S3Uri"]):
            raise AWSError("ValidationException", no_objects_message(s3["S3Uri"], role_arn))


def _validate_stopping(params: dict[str, Any]) -> None:
    stopping = params.get("StoppingCondition") or {}
    if params.get("EnableManagedSpotTraining"):
        wait, runtime = stopping.get("MaxWaitTimeInSeconds"), stopping.get("MaxRuntimeInSeconds", 86400)
        if wait is None or wait < runtime:
            raise AWSError("ValidationException",
                           "Invalid MaxWaitTimeInSeconds. It must be present and be greater than or equal to "
                           "MaxRuntimeInSeconds")
        if params.get("CheckpointConfig") is None:
            pass  # allowed on AWS; the job simply cannot resume after an interruption
    elif "MaxWaitTimeInSeconds" in stopping:
        raise AWSError("ValidationException",
                       "MaxWaitTimeInSeconds can only be specified when EnableManagedSpotTraining is true.")


def validate_training_request(params: dict[str, Any]) -> None:
    """AWS's checks on a CreateTrainingJob request (beyond botocore's own)."""
    name = params["TrainingJobName"]
    if name in moto_state.backend("sagemaker").training_jobs:
        arn = moto_state.backend("sagemaker").training_jobs[name].arn
        raise AWSError("ResourceInUse", f"Training job names must be unique within an AWS account and region, "
                       f"and a training job with this name already exists ({arn})")
    spec = params["AlgorithmSpecification"]
    if not spec.get("TrainingImage") and not spec.get("AlgorithmName"):
        raise AWSError("ValidationException", "Either TrainingImage or AlgorithmName must be specified "
                       "in AlgorithmSpecification.")
    if spec.get("AlgorithmName") and not spec.get("TrainingImage"):
        raise AWSError("ValidationException", f"AlgorithmName {spec['AlgorithmName']!r}: Marketplace and "
                       f"custom algorithm resources are not emulated offline; the backend runs {images.EMULATED}.")
    _validate_resource_config(params["ResourceConfig"])
    _validate_stopping(params)
    validate_channels(params.get("InputDataConfig") or [], params["RoleArn"])
    s3_location.require(params["OutputDataConfig"].get("S3OutputPath", ""), "outputDataConfig.s3OutputPath")
    if params.get("CheckpointConfig"):
        s3_location.require(params["CheckpointConfig"].get("S3Uri", ""), "checkpointConfig.s3Uri")


def create_record(params: dict[str, Any]) -> Any:
    """Keep the job in moto's backend, as moto would have on its own."""
    return moto_state.backend("sagemaker").create_training_job(
        training_job_name=params["TrainingJobName"], hyper_parameters=dict(params.get("HyperParameters") or {}),
        algorithm_specification=dict(params["AlgorithmSpecification"]), role_arn=params["RoleArn"],
        input_data_config=params.get("InputDataConfig") or [], output_data_config=params["OutputDataConfig"],
        resource_config=params["ResourceConfig"], vpc_config=params.get("VpcConfig"),
        stopping_condition=params.get("StoppingCondition") or {"MaxRuntimeInSeconds": 86400},
        tags=params.get("Tags") or [], enable_network_isolation=params.get("EnableNetworkIsolation", False),
        enable_inter_container_traffic_encryption=params.get("EnableInterContainerTrafficEncryption", False),
        enable_managed_spot_training=params.get("EnableManagedSpotTraining", False),
        checkpoint_config=params.get("CheckpointConfig"), debug_hook_config=params.get("DebugHookConfig"),
        debug_rule_configurations=params.get("DebugRuleConfigurations"),
        tensor_board_output_config=params.get("TensorBoardOutputConfig"),
        experiment_config=params.get("ExperimentConfig"))


def start_training_job(params: dict[str, Any]) -> jobs.TrainingRun:
    """Validate, record and start a training job (used by the API and by tuning)."""
    validate_training_request(params)
    params.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": 86400})
    record = create_record(params)
    if params.get("Environment"):
        record.environment = dict(params["Environment"])
    image = images.parse(params["AlgorithmSpecification"].get("TrainingImage", ""))
    program = (params.get("HyperParameters") or {}).get("sagemaker_program")
    builtin = image.algorithm is not None and not program and not params["AlgorithmSpecification"].get(
        "ContainerEntrypoint")
    run = jobs.TrainingRun(params, record, builtin_metrics=builtin)
    jobs.runs[run.name] = run
    run.start()
    return run


@dispatch.operation("sagemaker", "CreateTrainingJob")
def create_training_job(params: dict[str, Any]) -> dict[str, Any]:
    run = start_training_job(params)
    return {"TrainingJobArn": run.record.arn}


def _record(name: str) -> Any:
    record = moto_state.backend("sagemaker").training_jobs.get(name)
    if record is None:
        raise AWSError("ValidationException", "Requested resource not found.")
    return record


@dispatch.operation("sagemaker", "DescribeTrainingJob")
def describe_training_job(params: dict[str, Any]) -> dict[str, Any]:
    record = _record(params["TrainingJobName"])
    out = shapes.describe("DescribeTrainingJob", record.response_object)
    # AWS always answers OutputDataConfig.KmsKeyId ("" when none was given); SDK v2's attach reads it.
    out.get("OutputDataConfig", {}).setdefault("KmsKeyId", "")
    return out


@dispatch.operation("sagemaker", "StopTrainingJob")
def stop_training_job(params: dict[str, Any]) -> dict[str, Any]:
    record = _record(params["TrainingJobName"])
    run = jobs.runs.get(params["TrainingJobName"])
    if run is None or run.done.is_set() or record.training_job_status != "InProgress":
        raise AWSError("ValidationException", f"The request was rejected because the training job is in "
                       f"status {record.training_job_status}.")
    run.stop()
    return {}
