"""Application Auto Scaling for endpoint variants: AWS's checks, and what a policy would do.

moto records scalable targets and policies; this module adds SageMaker's validation
(the endpoint and variant exist, capacities make sense, the policy's target is
registered and its metric belongs to SageMaker), and makes deregistering a target delete
its policies and scheduled actions, as AWS does. :mod:`labkit.offline.patches` calls
:func:`check_target`, :func:`check_policy` and :func:`forget_target` from moto's backend
methods.

No CloudWatch alarm fires offline, so nothing scales by itself. Instead
:func:`desired_instance_count` is the target-tracking arithmetic and
:func:`simulate_target_tracking` applies it to a registered variant, from the load you
name or the invocations the variant really served in the last minute::

    for _ in range(600):
        runtime.invoke_endpoint(EndpointName="ep", Body=b"1,2", ContentType="text/csv")
    simulate_target_tracking("ep", "AllTraffic")   # {'desired': 3, ...} for a target of 250
"""

from __future__ import annotations

import math
import re
from typing import Any

from .. import moto_state

DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"
_RESOURCE = re.compile(r"^endpoint/(?P<endpoint>[^/]+)/variant/(?P<variant>[^/]+)$")


def desired_instance_count(invocations_per_minute: float, target_value: float, *, current: int = 1,
                           min_capacity: int = 1, max_capacity: int = 1, disable_scale_in: bool = False) -> int:
    """The instance count a SageMakerVariantInvocationsPerInstance target-tracking policy sets.

    The metric is invocations per instance per minute (``invocations_per_minute / current``);
    target tracking scales capacity in proportion to metric / target, i.e. to
    ``ceil(invocations_per_minute / target_value)``, kept within ``[min_capacity,
    max_capacity]``; with ``disable_scale_in`` it never goes below ``current``.
    (AWS also waits for cooldowns and several alarm periods; this is the steady state.)
    """
    if target_value <= 0:
        raise ValueError("target_value must be positive (invocations per instance per minute)")
    desired = max(1, math.ceil(invocations_per_minute / target_value)) if invocations_per_minute > 0 else min_capacity
    if disable_scale_in:
        desired = max(desired, current)
    return max(min_capacity, min(max_capacity, desired))


def _variant(resource_id: str) -> tuple[str, str, dict[str, Any]]:
    from moto.applicationautoscaling.exceptions import AWSValidationException

    match = _RESOURCE.match(resource_id or "")
    if not match:
        raise AWSValidationException(f"Resource ID {resource_id!r} is not a SageMaker variant: use "
                                     "endpoint/<endpoint name>/variant/<variant name>.")
    endpoint = moto_state.backend("sagemaker").endpoints.get(match["endpoint"])
    if endpoint is None:
        raise AWSValidationException(f"Endpoint {match['endpoint']} does not exist: create it (and wait for "
                                     "InService) before registering a scalable target.")
    for variant in endpoint.production_variants:
        if variant["VariantName"] == match["variant"]:
            return match["endpoint"], match["variant"], variant
    raise AWSValidationException(f"Variant {match['variant']} does not exist in endpoint {match['endpoint']} "
                                 f"(variants: {[v['VariantName'] for v in endpoint.production_variants]}).")


def check_target(namespace: str, resource_id: str, dimension: str, min_capacity: int | None,
                  max_capacity: int | None) -> None:
    from moto.applicationautoscaling.exceptions import AWSValidationException

    if namespace != "sagemaker" or not str(resource_id).startswith("endpoint/"):
        return
    _, _, variant = _variant(resource_id)
    if "CurrentServerlessConfig" in variant and dimension == DIMENSION:
        raise AWSValidationException("A serverless variant has no instances to scale: use the dimension "
                                     "sagemaker:variant:DesiredProvisionedConcurrency.")
    exists = resource_id in moto_state.backend("applicationautoscaling").targets.get(dimension, {})
    if not exists and (min_capacity is None or max_capacity is None):
        raise AWSValidationException("MinCapacity and MaxCapacity are required to register a new scalable target.")
    if min_capacity is not None and dimension == DIMENSION and min_capacity < 1:
        raise AWSValidationException("MinCapacity of an endpoint variant must be at least 1 instance.")
    if min_capacity is not None and max_capacity is not None and min_capacity > max_capacity:
        raise AWSValidationException(f"Minimum capacity ({min_capacity}) cannot be greater than maximum capacity "
                                     f"({max_capacity}).")


def check_policy(policy_name: str, namespace: str, resource_id: str, dimension: str,
                  body: dict[str, Any] | None, policy_type: str | None) -> None:
    from moto.applicationautoscaling.exceptions import AWSValidationException
    from moto.core.exceptions import JsonRESTError

    if namespace != "sagemaker":
        return
    if resource_id not in moto_state.backend("applicationautoscaling").targets.get(dimension, {}):
        raise JsonRESTError("ObjectNotFoundException",
                            f"No scalable target registered for service namespace: {namespace}, resource ID: "
                            f"{resource_id}, scalable dimension: {dimension}")
    if (policy_type or "StepScaling") == "TargetTrackingScaling":
        body = body or {}
        if "TargetValue" not in body:
            raise AWSValidationException("TargetTrackingScalingPolicyConfiguration with a TargetValue is required "
                                         "for a TargetTrackingScaling policy.")
        if body["TargetValue"] <= 0:
            raise AWSValidationException("TargetValue must be greater than 0.")
        spec = body.get("PredefinedMetricSpecification")
        if spec and not spec.get("PredefinedMetricType", "").startswith("SageMaker"):
            raise AWSValidationException(f"Predefined metric type {spec.get('PredefinedMetricType')} is not valid "
                                         f"for a SageMaker variant: use {METRIC}.")
        if not spec and not body.get("CustomizedMetricSpecification"):
            raise AWSValidationException("A target-tracking policy needs PredefinedMetricSpecification or "
                                         "CustomizedMetricSpecification.")


def forget_target(backend: Any, namespace: str, resource_id: str, dimension: str) -> None:
    """AWS deletes a deregistered target's scaling policies and scheduled actions with it (moto keeps them)."""

    def mine(x: Any) -> bool:
        return (x.service_namespace, x.resource_id, x.scalable_dimension) == (namespace, resource_id, dimension)

    backend.policies = {k: p for k, p in backend.policies.items() if not mine(p)}
    backend.scheduled_actions = [a for a in backend.scheduled_actions if not mine(a)]


def simulate_target_tracking(endpoint_name: str, variant_name: str = "AllTraffic",
                             invocations_per_minute: float | None = None, *, apply: bool = False) -> dict[str, Any]:
    """What the variant's target-tracking policy would set for this load.

    ``invocations_per_minute`` defaults to what the variant really served in the last
    60 s. With ``apply=True`` the desired count becomes the variant's instance count (as
    UpdateEndpointWeightsAndCapacities would set it), which DescribeEndpoint and the cost
    meter then show.
    """
    from .api import engine

    resource_id = f"endpoint/{endpoint_name}/variant/{variant_name}"
    target = moto_state.backend("applicationautoscaling").targets.get(DIMENSION, {}).get(resource_id)
    if target is None:
        raise LookupError(f"No scalable target is registered for {resource_id}: call "
                          "application-autoscaling register_scalable_target first.")
    policies = [p for p in moto_state.backend("applicationautoscaling").policies.values()
                if p.resource_id == resource_id and p.policy_type == "TargetTrackingScaling"]
    if not policies:
        raise LookupError(f"No TargetTrackingScaling policy on {resource_id}: call put_scaling_policy first.")
    config = policies[0].target_tracking_scaling_policy_configuration
    variant = engine.get(endpoint_name).variants[variant_name]
    if invocations_per_minute is None:
        invocations_per_minute = float(variant.invocations_in(60.0))
    current = variant.instance_count
    desired = desired_instance_count(invocations_per_minute, float(config["TargetValue"]), current=current,
                                     min_capacity=int(target.min_capacity), max_capacity=int(target.max_capacity),
                                     disable_scale_in=bool(config.get("DisableScaleIn", False)))
    if apply and desired != current:
        record = moto_state.backend("sagemaker").endpoints[endpoint_name]
        for pv in record.production_variants:
            if pv["VariantName"] == variant_name:
                pv["CurrentInstanceCount"] = pv["DesiredInstanceCount"] = desired
        engine.set_capacity(endpoint_name, variant_name, instance_count=desired)
    return {"policy": policies[0].policy_name, "target_value": float(config["TargetValue"]),
            "invocations_per_minute": invocations_per_minute,
            "invocations_per_instance": invocations_per_minute / max(current, 1), "current": current,
            "desired": desired, "min_capacity": int(target.min_capacity), "max_capacity": int(target.max_capacity)}
