"""What a stack's resources do: each supported type created, updated, read and deleted by an API call.

A resource a stack creates behaves like one the API creates because it *is* one: every
provider here makes the same in-process boto3 call a learner would (``create_model``,
``create_endpoint``, ``register_scalable_target``, ``put_metric_alarm``...), so the offline
engines' validators and behaviour apply (a stack's endpoint really serves, its alarm really
evaluates). Property values are converted to the API's types first (CloudFormation passes
``"1"`` where ``CreateEndpointConfig`` takes an integer), using botocore's service model.

Supported types: :data:`PROVIDERS`. Any other type is refused at creation with a
``CREATE_FAILED`` reason that says so (:func:`unsupported`), never created behind the
engines' backs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import ACCOUNT_ID, REGION

STABILIZE_TIMEOUT_S = 600.0


class ResourceFailed(Exception):
    """A resource operation failed; ``str(err)`` is the status reason CloudFormation shows."""


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def _client(service: str) -> Any:
    """An in-process client, made once per service (making one reads its service model: slow)."""
    with _clients_lock:
        if service not in _clients:
            import boto3

            _clients[service] = boto3.session.Session().client(service, region_name=REGION)
        return _clients[service]


def forget_clients() -> None:
    """Drop the cached clients (the backend was reset or stopped: their session may be stale)."""
    with _clients_lock:
        _clients.clear()


def _coerce(shape: Any, value: Any) -> Any:
    """``value`` converted to botocore ``shape``'s types (CloudFormation passes numbers and booleans as text)."""
    if shape is None or value is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return {k: _coerce(shape.members.get(k), v) for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [_coerce(shape.member, v) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _coerce(shape.value, v) for k, v in value.items()}
    if isinstance(value, str):
        try:
            if kind in ("integer", "long"):
                return int(float(value))
            if kind in ("double", "float"):
                return float(value)
        except ValueError:
            return value
        if kind == "boolean" and value.lower() in ("true", "false"):
            return value.lower() == "true"
    return value


def call(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """Make the API call a learner would; an AWS error becomes :class:`ResourceFailed` with its message."""
    from botocore import xform_name
    from botocore.exceptions import ClientError, ParamValidationError

    client = _client(service)
    model = client.meta.service_model.operation_model(operation)
    known = model.input_shape.members
    args = {k: _coerce(known[k], v) for k, v in params.items() if k in known and v is not None}
    try:
        return getattr(client, xform_name(operation))(**args)
    except ClientError as err:
        error = err.response.get("Error", {})
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
        raise ResourceFailed(f"Resource handler returned message: \"{error.get('Message', '')} (Service: "
                             f"{client.meta.service_model.service_id}, Status Code: {status}, Error Code: "
                             f"{error.get('Code', '')})\"") from err
    except ParamValidationError as err:
        raise ResourceFailed(f"Properties validation failed: {err}") from err


def _tags(props: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Key": t["Key"], "Value": str(t["Value"])} for t in props.get("Tags") or []]


@dataclass
class Created:
    """A resource as created: its physical id (what ``Ref`` returns unless ``ref`` says) and attributes."""

    physical_id: str
    attributes: dict[str, Any]
    ref: str | None = None


@dataclass
class Provider:
    """How CloudFormation drives one resource type through the API.

    ``create(name, props)`` returns :class:`Created` (``name`` is the generated name, used when
    the template gives none); ``update(created, old, new)`` changes it in place; ``delete(created)``;
    ``read(created)`` the live properties for drift detection (None: gone); ``stable(created)``
    True once it is ready (False: still working), raising :class:`ResourceFailed` if it failed;
    ``gone(created)`` True once a deleted resource no longer exists (an endpoint is ``Deleting`` first).
    """

    name_property: str | None
    create: Callable[[str, dict[str, Any]], Created]
    delete: Callable[[Created], None]
    read: Callable[[Created], dict[str, Any] | None]
    update: Callable[[Created, dict[str, Any], dict[str, Any]], Created] | None = None
    stable: Callable[[Created], bool] | None = None
    gone: Callable[[Created], bool] | None = None  # after delete: True once it no longer exists


def _gone(err: ResourceFailed) -> bool:
    text = str(err)
    return "Could not find" in text or "does not exist" in text or "not found" in text.lower()


# --- SageMaker --------------------------------------------------------------------------------

MODEL_PROPS = ("ExecutionRoleArn", "PrimaryContainer", "Containers", "VpcConfig", "EnableNetworkIsolation",
               "InferenceExecutionConfig")


def _create_model(name: str, props: dict[str, Any]) -> Created:
    name = props.get("ModelName") or name
    out = call("sagemaker", "CreateModel", {**{k: props.get(k) for k in MODEL_PROPS}, "ModelName": name,
                                            "Tags": _tags(props) or None})
    return Created(out["ModelArn"], {"ModelName": name, "ModelArn": out["ModelArn"]})


def _read_model(created: Created) -> dict[str, Any] | None:
    try:
        out = call("sagemaker", "DescribeModel", {"ModelName": created.attributes["ModelName"]})
    except ResourceFailed as err:
        if _gone(err):
            return None
        raise
    return {"ModelName": out["ModelName"], **{k: out[k] for k in MODEL_PROPS if k in out}}


def _delete_model(created: Created) -> None:
    call("sagemaker", "DeleteModel", {"ModelName": created.attributes["ModelName"]})


CONFIG_PROPS = ("ProductionVariants", "DataCaptureConfig", "KmsKeyId", "AsyncInferenceConfig", "ExplainerConfig",
                "ShadowProductionVariants", "ExecutionRoleArn", "VpcConfig", "EnableNetworkIsolation")


def _create_config(name: str, props: dict[str, Any]) -> Created:
    name = props.get("EndpointConfigName") or name
    out = call("sagemaker", "CreateEndpointConfig", {**{k: props.get(k) for k in CONFIG_PROPS},
                                                     "EndpointConfigName": name, "Tags": _tags(props) or None})
    arn = out["EndpointConfigArn"]
    return Created(arn, {"EndpointConfigName": name, "EndpointConfigArn": arn, "Id": arn})


def _read_config(created: Created) -> dict[str, Any] | None:
    try:
        out = call("sagemaker", "DescribeEndpointConfig", {"EndpointConfigName": created.attributes["EndpointConfigName"]})
    except ResourceFailed as err:
        if _gone(err):
            return None
        raise
    return {"EndpointConfigName": out["EndpointConfigName"], **{k: out[k] for k in CONFIG_PROPS if k in out}}


def _delete_config(created: Created) -> None:
    call("sagemaker", "DeleteEndpointConfig", {"EndpointConfigName": created.attributes["EndpointConfigName"]})


def _create_endpoint(name: str, props: dict[str, Any]) -> Created:
    name = props.get("EndpointName") or name
    out = call("sagemaker", "CreateEndpoint", {"EndpointName": name, "EndpointConfigName": props["EndpointConfigName"],
                                               "Tags": _tags(props) or None})
    arn = out["EndpointArn"]
    return Created(arn, {"EndpointName": name, "EndpointArn": arn, "target": props["EndpointConfigName"]})


def _update_endpoint(created: Created, old: dict[str, Any], new: dict[str, Any]) -> Created:
    params = {k: new.get(k) for k in ("EndpointConfigName", "DeploymentConfig", "RetainAllVariantProperties",
                                       "ExcludeRetainedVariantProperties", "RetainDeploymentConfig")}
    call("sagemaker", "UpdateEndpoint", {**params, "EndpointName": created.attributes["EndpointName"]})
    return Created(created.physical_id, {**created.attributes, "target": new["EndpointConfigName"]})


def _endpoint_stable(created: Created) -> bool:
    out = call("sagemaker", "DescribeEndpoint", {"EndpointName": created.attributes["EndpointName"]})
    status = out["EndpointStatus"]
    if status in ("Creating", "Updating", "RollingBack", "SystemUpdating"):
        return False
    if status == "Failed":
        raise ResourceFailed(f"Resource of type 'AWS::SageMaker::Endpoint' with identifier "
                             f"'{created.attributes['EndpointName']}' did not stabilize: endpoint status Failed. "
                             f"FailureReason: {out.get('FailureReason', '')}")
    if out.get("EndpointConfigName") != created.attributes["target"]:  # the update was rolled back
        raise ResourceFailed(f"Endpoint {created.attributes['EndpointName']} did not reach endpoint configuration "
                             f"{created.attributes['target']}: {out.get('FailureReason', 'the update failed')}")
    return True


def _read_endpoint(created: Created) -> dict[str, Any] | None:
    try:
        out = call("sagemaker", "DescribeEndpoint", {"EndpointName": created.attributes["EndpointName"]})
    except ResourceFailed as err:
        if _gone(err):
            return None
        raise
    live = {"EndpointName": out["EndpointName"], "EndpointConfigName": out["EndpointConfigName"]}
    if out.get("LastDeploymentConfig"):
        live["DeploymentConfig"] = out["LastDeploymentConfig"]
    return live


def _delete_endpoint(created: Created) -> None:
    call("sagemaker", "DeleteEndpoint", {"EndpointName": created.attributes["EndpointName"]})


def _endpoint_gone(created: Created) -> bool:
    return _read_endpoint(created) is None


# --- Application Auto Scaling ------------------------------------------------------------------

TARGET_PROPS = ("ServiceNamespace", "ResourceId", "ScalableDimension", "MinCapacity", "MaxCapacity", "RoleARN",
                "SuspendedState")


def _target_key(created: Created) -> dict[str, str]:
    resource, dimension, namespace = created.physical_id.split("|")
    return {"ResourceId": resource, "ScalableDimension": dimension, "ServiceNamespace": namespace}


def _put_target(props: dict[str, Any]) -> Created:
    call("application-autoscaling", "RegisterScalableTarget", {k: props.get(k) for k in TARGET_PROPS})
    for action in props.get("ScheduledActions") or []:
        call("application-autoscaling", "PutScheduledAction", {
            **action, "ServiceNamespace": props["ServiceNamespace"], "ResourceId": props["ResourceId"],
            "ScalableDimension": props["ScalableDimension"]})
    physical = f"{props['ResourceId']}|{props['ScalableDimension']}|{props['ServiceNamespace']}"
    return Created(physical, {"Id": physical})


def _read_target(created: Created) -> dict[str, Any] | None:
    key = _target_key(created)
    out = call("application-autoscaling", "DescribeScalableTargets", {
        "ServiceNamespace": key["ServiceNamespace"], "ResourceIds": [key["ResourceId"]],
        "ScalableDimension": key["ScalableDimension"]})
    if not out["ScalableTargets"]:
        return None
    target = out["ScalableTargets"][0]
    return {k: target[k] for k in TARGET_PROPS if k in target and k != "RoleARN"}


def _delete_target(created: Created) -> None:
    call("application-autoscaling", "DeregisterScalableTarget", _target_key(created))


POLICY_PROPS = ("PolicyName", "PolicyType", "ServiceNamespace", "ResourceId", "ScalableDimension",
                "TargetTrackingScalingPolicyConfiguration", "StepScalingPolicyConfiguration")


def _policy_target(props: dict[str, Any]) -> dict[str, Any]:
    props = dict(props)
    if props.get("ScalingTargetId"):
        resource, dimension, namespace = props["ScalingTargetId"].split("|")
        props.update(ResourceId=resource, ScalableDimension=dimension, ServiceNamespace=namespace)
    return props


def _put_policy(name: str, props: dict[str, Any]) -> Created:
    props = _policy_target(props)
    out = call("application-autoscaling", "PutScalingPolicy", {k: props.get(k) for k in POLICY_PROPS})
    key = {k: props[k] for k in ("PolicyName", "ServiceNamespace", "ResourceId", "ScalableDimension")}
    return Created(out["PolicyARN"], {"Arn": out["PolicyARN"], **key})


def _read_policy(created: Created) -> dict[str, Any] | None:
    a = created.attributes
    out = call("application-autoscaling", "DescribeScalingPolicies", {
        "ServiceNamespace": a["ServiceNamespace"], "ResourceId": a["ResourceId"],
        "ScalableDimension": a["ScalableDimension"], "PolicyNames": [a["PolicyName"]]})
    if not out["ScalingPolicies"]:
        return None
    policy = out["ScalingPolicies"][0]
    return {k: policy[k] for k in POLICY_PROPS if k in policy}


def _delete_policy(created: Created) -> None:
    a = created.attributes
    call("application-autoscaling", "DeleteScalingPolicy", {k: a[k] for k in (
        "PolicyName", "ServiceNamespace", "ResourceId", "ScalableDimension")})


# --- CloudWatch --------------------------------------------------------------------------------

ALARM_PROPS = ("AlarmName", "AlarmDescription", "ActionsEnabled", "AlarmActions", "OKActions",
               "InsufficientDataActions", "MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Dimensions",
               "Period", "Unit", "EvaluationPeriods", "DatapointsToAlarm", "Threshold", "ComparisonOperator",
               "TreatMissingData", "EvaluateLowSampleCountPercentile", "Metrics", "ThresholdMetricId")


def _put_alarm(name: str, props: dict[str, Any]) -> Created:
    name = props.get("AlarmName") or name
    call("cloudwatch", "PutMetricAlarm", {**{k: props.get(k) for k in ALARM_PROPS}, "AlarmName": name,
                                          "Tags": _tags(props) or None})
    arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{name}"
    return Created(name, {"Arn": arn, "AlarmName": name})


def _read_alarm(created: Created) -> dict[str, Any] | None:
    out = call("cloudwatch", "DescribeAlarms", {"AlarmNames": [created.physical_id]})
    if not out["MetricAlarms"]:
        return None
    alarm = out["MetricAlarms"][0]
    return {k: alarm[k] for k in ALARM_PROPS if k in alarm and alarm[k] not in (None, [], "")}


def _delete_alarm(created: Created) -> None:
    call("cloudwatch", "DeleteAlarms", {"AlarmNames": [created.physical_id]})


PROVIDERS: dict[str, Provider] = {
    "AWS::SageMaker::Model": Provider("ModelName", _create_model, _delete_model, _read_model),
    "AWS::SageMaker::EndpointConfig": Provider("EndpointConfigName", _create_config, _delete_config, _read_config),
    "AWS::SageMaker::Endpoint": Provider("EndpointName", _create_endpoint, _delete_endpoint, _read_endpoint,
                                         update=_update_endpoint, stable=_endpoint_stable, gone=_endpoint_gone),
    "AWS::ApplicationAutoScaling::ScalableTarget": Provider(
        None, lambda name, props: _put_target(props), _delete_target, _read_target,
        update=lambda created, old, new: _put_target(new)),
    "AWS::ApplicationAutoScaling::ScalingPolicy": Provider(
        None, _put_policy, _delete_policy, _read_policy,
        update=lambda created, old, new: _put_policy(created.attributes["PolicyName"], new)),
    "AWS::CloudWatch::Alarm": Provider("AlarmName", _put_alarm, _delete_alarm, _read_alarm,
                                       update=lambda created, old, new: _put_alarm(created.physical_id, new)),
}


def unsupported(resource_type: str) -> str:
    """The CREATE_FAILED reason of a resource type the offline backend does not create."""
    return (f"Resource type {resource_type} is not supported by the offline backend's CloudFormation: it creates "
            f"only {', '.join(sorted(PROVIDERS))}, each through the same API call a program would make. Nothing "
            "was sent to AWS. Create this resource with its own API, or use the sandbox backend.")


def wait_stable(provider: Provider, created: Created, timeout: float = STABILIZE_TIMEOUT_S,
                stop: Callable[[], bool] = lambda: False) -> None:
    """Block until ``created`` is ready (an endpoint InService); :class:`ResourceFailed` if it fails."""
    if provider.stable is None:
        return
    deadline = time.monotonic() + timeout
    while not provider.stable(created):
        if stop() or time.monotonic() > deadline:
            raise ResourceFailed("Resource stabilization timed out or was cancelled.")
        time.sleep(0.05)
