"""Offline SageMaker Clarify: processing jobs with Clarify's image compute bias metrics and SHAP.

A job created with ``image_uris.retrieve("clarify", region)`` (the SDK's
``SageMakerClarifyProcessor``, v3 ``sagemaker.core.clarify`` or v2 ``sagemaker.clarify``, or
plain ``CreateProcessingJob``) runs :mod:`.analyzer` under the processing container contract.
What is real: every metric is computed from the data and the model's predictions
(:mod:`.metrics`), SHAP values are Kernel SHAP from the ``shap`` package against the
baseline (:mod:`.analysis`), and the outputs have Clarify's names and schema.

The shadow endpoint: when the analysis has a ``predictor`` with a ``model_name``, Clarify
creates an endpoint from that model for the job's duration and deletes it afterwards. This
engine does that on the container's behalf (the job's processes cannot call the backend's
API offline), through the hosting engine: the endpoint ``sm-clarify-<job>`` is real while
the job runs (ListEndpoints shows it), serves the model's own inference code, is billed as
hosting for the instances the ``predictor`` names, and is gone when the job ends.
What differs from AWS: Clarify runs Spark for several instances; here one process computes
everything, and the baseline must be given inline (an S3 URI baseline is refused with a message).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from .. import moto_state, s3_location
from .. import storage as s3_storage
from ..dispatch import AWSError
from ..training import images, processing

REPOSITORY = "sagemaker-clarify-processing"
CONFIG_PATH = "/opt/ml/processing/input/config"
SHADOW_START_TIMEOUT_S = 120.0

images.BUILTIN_ENTRYPOINTS[REPOSITORY] = ["python3", "-m", "labkit.offline.clarify.analyzer"]


def _analysis_config(request: dict[str, Any]) -> dict[str, Any]:
    """The job's ``analysis_config.json``, read from the S3 input that lands in the config folder."""
    for item in request.get("ProcessingInputs", []):
        s3 = item.get("S3Input") or {}
        if item.get("InputName") == "analysis_config" or s3.get("LocalPath", "").rstrip("/") == CONFIG_PATH:
            keys = s3_storage.list_keys(s3["S3Uri"])
            bucket, _ = s3_location.split(s3["S3Uri"])
            key = next((k for k in keys if k.endswith("analysis_config.json")), keys[0] if keys else None)
            if key is None:
                raise ValueError(f"no analysis_config.json under {s3['S3Uri']}")
            body = s3_storage.s3().get_object(Bucket=bucket, Key=key)["Body"].read()
            try:
                return json.loads(body)
            except ValueError as err:
                raise ValueError(f"analysis_config.json is not valid JSON: {err}") from err
    raise ValueError("the job has no 'analysis_config' input (an S3Input with LocalPath "
                     f"{CONFIG_PATH}): Clarify reads its analysis configuration from there")


def _invocations_url(endpoint_name: str) -> str:
    from ..hosting import engine

    endpoint = engine.endpoints.get(endpoint_name)
    if endpoint is None or endpoint.status != "InService":
        raise ValueError(f"endpoint {endpoint_name} is not InService")
    variant = next(iter(endpoint.variants.values()))
    if variant.process is None or variant.process.port is None:
        raise ValueError(f"endpoint {endpoint_name} has no running model server (a serverless variant "
                         "cannot be a Clarify shadow endpoint offline)")
    return f"http://127.0.0.1:{variant.process.port}/invocations"


def wait_until_gone(name: str, timeout: float = 30.0) -> None:
    """Block while endpoint ``name`` is still listed (``Deleting``): the job ends after its endpoint."""
    deadline = time.time() + timeout
    while name in moto_state.backend("sagemaker").endpoints and time.time() < deadline:
        time.sleep(0.05)


def shadow_endpoint(request: dict[str, Any]) -> tuple[dict[str, str], Callable[[], None]]:
    """Processing sidecar: bring up the predictor's endpoint; give its URL; delete it at the end."""
    config = _analysis_config(request)
    predictor = config.get("predictor")
    if not predictor:
        return {}, lambda: None
    if predictor.get("endpoint_name"):  # an existing endpoint: used as it is, not deleted
        return {"LABKIT_CLARIFY_PREDICTOR_URL": _invocations_url(predictor["endpoint_name"])}, lambda: None
    from ..hosting import api, engine

    name = f"sm-clarify-{request['ProcessingJobName']}"[:63].rstrip("-")
    variant = {"VariantName": "AllTraffic", "ModelName": predictor.get("model_name", ""),
               "InstanceType": predictor.get("instance_type", "ml.m5.xlarge"),
               "InitialInstanceCount": int(predictor.get("initial_instance_count", 1))}
    if predictor.get("accelerator_type"):
        variant["AcceleratorType"] = predictor["accelerator_type"]
    try:
        api.create_endpoint_config({"EndpointConfigName": name, "ProductionVariants": [variant]})
        api.create_endpoint({"EndpointName": name, "EndpointConfigName": name})
    except AWSError as err:
        raise ValueError(f"could not create the shadow endpoint for model {variant['ModelName']!r}: "
                         f"{err.message}") from err

    def cleanup() -> None:
        with contextlib.suppress(AWSError):
            api.delete_endpoint({"EndpointName": name})
        wait_until_gone(name)
        moto_state.backend("sagemaker").endpoint_configs.pop(name, None)

    deadline = time.time() + SHADOW_START_TIMEOUT_S
    status = engine.wait(name, SHADOW_START_TIMEOUT_S)
    if status != "InService" or time.time() > deadline:
        reason = getattr(engine.endpoints.get(name), "failure", "") or status
        cleanup()
        raise ValueError(f"the shadow endpoint for model {variant['ModelName']!r} did not start: {reason}")
    return {"LABKIT_CLARIFY_PREDICTOR_URL": _invocations_url(name)}, cleanup


processing.SIDECARS[REPOSITORY] = shadow_endpoint
