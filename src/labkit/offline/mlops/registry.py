"""The Model Registry's approval flow, filled in where moto's records fall short.

moto keeps model package groups and packages. What it gets wrong, fixed here:

- a versioned package created without ``ModelApprovalStatus`` is ``PendingManualApproval``
  (moto leaves it unset);
- UpdateModelPackage changes only what the request names (moto wipes
  ``CustomerMetadataProperties`` and ``ApprovalDescription`` when they are absent), rejects
  unversioned packages and unknown ARNs as SageMaker does, and records who changed it when;
- CreateModel with a container that names ``ModelPackageName`` (deploying a registered
  version) checks that the package exists and gives the model the package's image, model
  data and environment, so the hosting engine serves it;
- DeleteModelPackage and DeleteModelPackageGroup (moto lacks both); a group that still holds
  versions cannot be deleted.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .. import ACCOUNT_ID, REGION, dispatch, moto_state
from ..dispatch import AWSError

APPROVAL_STATUSES = ("Approved", "Rejected", "PendingManualApproval")


def find_package(name_or_arn: str) -> Any:
    """moto's ModelPackage for a name or ARN, or ``ValidationException`` as SageMaker answers."""
    backend = moto_state.backend("sagemaker")
    key = backend.model_package_name_mapping.get(name_or_arn, name_or_arn)
    package = backend.model_packages.get(key)
    if package is None:
        raise AWSError("ValidationException", f"ModelPackage {name_or_arn} does not exist.")
    return package


@dispatch.after("sagemaker", "CreateModelPackage")
def _default_approval(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    package = moto_state.backend("sagemaker").model_packages.get(parsed.get("ModelPackageArn"))
    if package is not None and package.model_package_version and package.model_approval_status is None:
        package.model_approval_status = "PendingManualApproval"


@dispatch.operation("sagemaker", "UpdateModelPackage")
def update_model_package(params: dict[str, Any]) -> dict[str, Any]:
    package = find_package(params["ModelPackageArn"])
    status = params.get("ModelApprovalStatus")
    if status is not None:
        if not package.model_package_version:
            raise AWSError("ValidationException", "ModelApprovalStatus can only be set on a versioned model package "
                                                  "(one in a model package group).")
        if status not in APPROVAL_STATUSES:
            raise AWSError("ValidationException", f"Value '{status}' at 'modelApprovalStatus' failed to satisfy "
                                                  f"constraint: Member must satisfy enum value set: "
                                                  f"[{', '.join(APPROVAL_STATUSES)}]")
        package.model_approval_status = status
    if "ApprovalDescription" in params:
        package.approval_description = params["ApprovalDescription"]
    properties = dict(package.customer_metadata_properties or {})
    properties.update(params.get("CustomerMetadataProperties") or {})
    for key in params.get("CustomerMetadataPropertiesToRemove") or []:
        properties.pop(key, None)
    package.customer_metadata_properties = properties or None
    if params.get("AdditionalInferenceSpecificationsToAdd"):
        package.add_additional_inference_specifications(params["AdditionalInferenceSpecificationsToAdd"])
    if params.get("InferenceSpecification"):
        package.inference_specification = params["InferenceSpecification"]
    package.last_modified_time = dt.datetime.now(dt.UTC)
    package.last_modified_by = package.created_by
    return {"ModelPackageArn": package.arn}


def _containers(params: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in [params.get("PrimaryContainer"), *(params.get("Containers") or [])] if c]


@dispatch.validate("sagemaker", "CreateModel")
def _check_model_package(params: dict[str, Any]) -> None:
    for container in _containers(params):
        name = container.get("ModelPackageName")
        if name:
            find_package(name)
        elif not container.get("Image") and not container.get("ModelDataSource"):
            raise AWSError("ValidationException", "A container definition needs an Image (or a ModelPackageName "
                                                  "of a registered model version).")


def _resolved(container: dict[str, Any]) -> dict[str, Any]:
    name = container.get("ModelPackageName")
    if not name:
        return container
    package = find_package(name)
    spec = ((package.inference_specification or {}).get("Containers") or [{}])[0]
    out = dict(container)
    for key in ("Image", "ModelDataUrl", "ModelDataSource"):
        if key in spec and key not in out:
            out[key] = spec[key]
    env = dict(spec.get("Environment") or {})
    env.update(container.get("Environment") or {})
    if env:
        out["Environment"] = env
    return out


@dispatch.after("sagemaker", "CreateModel")
def _deploy_model_package(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    model = moto_state.backend("sagemaker")._models.get(params["ModelName"])
    if model is None:
        return
    if model.primary_container:
        model.primary_container = _resolved(model.primary_container)
    model.containers = [_resolved(c) for c in model.containers or []]


@dispatch.operation("sagemaker", "DeleteModelPackage")
def delete_model_package(params: dict[str, Any]) -> dict[str, Any]:
    package = find_package(params["ModelPackageName"])
    backend = moto_state.backend("sagemaker")
    backend.model_packages.pop(package.arn, None)
    for key in [k for k, v in backend.model_package_name_mapping.items() if v == package.arn]:
        del backend.model_package_name_mapping[key]
    return {}


@dispatch.operation("sagemaker", "DeleteModelPackageGroup")
def delete_model_package_group(params: dict[str, Any]) -> dict[str, Any]:
    name = params["ModelPackageGroupName"].rsplit("/", 1)[-1]
    backend = moto_state.backend("sagemaker")
    if name not in backend.model_package_groups:
        raise AWSError("ValidationException", f"ModelPackageGroup arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:"
                                              f"model-package-group/{name.lower()} does not exist.")
    versions = [p for p in backend.model_packages.values() if p.model_package_group_name == name]
    if versions:
        raise AWSError("ValidationException", f"Model package group {name} has {len(versions)} model package "
                                            "version(s): delete them (DeleteModelPackage) before the group.")
    del backend.model_package_groups[name]
    return {}
