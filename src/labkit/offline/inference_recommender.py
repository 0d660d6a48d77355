"""SageMaker Inference Recommender offline: real load tests against real endpoints.

``CreateInferenceRecommendationsJob`` (``Default`` or ``Advanced``) deploys the model
(``InputConfig.ModelName``, or a model package version's container) on each candidate
instance type (``ContainerConfig.SupportedInstanceTypes``, or ``EndpointConfigurations`` for an
Advanced job), sends it the sample payloads of ``ContainerConfig.PayloadConfig.SamplePayloadUrl``
(a ``.tar.gz`` of request bodies) at rising concurrency, measures every request's latency,
deletes the endpoint, and reports per instance type: ``MaxInvocations`` (per minute, at the
highest concurrency whose latency percentile stays under ``ModelLatencyThresholds``, P95 by
default), ``ModelLatency`` (ms, that percentile), ``CostPerHour`` (the catalogue's hosting price)
and ``CostPerInference``. ``InferenceRecommendations`` lists them cheapest per inference first.

What differs from AWS: every instance type runs the same model server on this machine, so the
latency and throughput measured are this machine's, not the instance type's; only the price
differs between candidates. Each load test lasts half a second per concurrency level (AWS's
Default job takes about 45 minutes): some hundred requests at one user, enough for a P95 (a
longer test keeps the machine's cores busy longer and measures the same machine). The
endpoints it starts are billed as hosting, as on AWS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import tarfile
import threading
import time
import uuid
from typing import Any

import numpy as np

from . import ACCOUNT_ID, REGION, dispatch, moto_state, on_reset, s3_location
from .clarify import wait_until_gone
from .dispatch import AWSError

CONCURRENCY = (1, 2, 4)
SECONDS_PER_LEVEL = 0.5
jobs: dict[str, dict[str, Any]] = {}
_threads: list[threading.Thread] = []


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def payloads(uri: str) -> list[bytes]:
    """The request bodies in a SamplePayloadUrl archive (every file in the .tar.gz)."""
    from . import storage

    bucket, key = s3_location.split(uri)
    data = storage.s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        bodies = [f.read() for m in tar.getmembers() if m.isfile() and (f := tar.extractfile(m)) is not None]
    if not bodies:
        raise ValueError(f"{uri} holds no payload files")
    return bodies


def load_test(invoke: Any, bodies: list[bytes], concurrency: int, seconds: float) -> list[float]:
    """Latencies (ms) of requests sent by ``concurrency`` users for ``seconds``."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.time() + seconds

    def user(offset: int) -> None:
        i = offset
        while time.time() < deadline:
            start = time.perf_counter()
            invoke(bodies[i % len(bodies)])
            with lock:
                latencies.append((time.perf_counter() - start) * 1000)
            i += concurrency

    threads = [threading.Thread(target=user, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def _percentile(name: str) -> float:
    return {"P50": 50, "P90": 90, "P95": 95, "P99": 99}.get(name.upper(), 95)


def _run(job: dict[str, Any]) -> None:
    from ..cost import catalogue as cat
    from .hosting import api, engine

    request = job["request"]
    config = request["InputConfig"]
    container = config.get("ContainerConfig") or {}
    thresholds = (request.get("StoppingConditions") or {}).get("ModelLatencyThresholds") or [
        {"Percentile": "P95", "ValueInMilliseconds": 10_000}]
    percentile, limit = _percentile(thresholds[0]["Percentile"]), thresholds[0]["ValueInMilliseconds"]
    try:
        bodies = payloads(container["PayloadConfig"]["SamplePayloadUrl"])
        content_type = (container["PayloadConfig"].get("SupportedContentTypes") or ["text/csv"])[0]
        recommendations: list[dict[str, Any]] = []
        performances: list[dict[str, Any]] = []
        for n, instance_type in enumerate(job["candidates"]):
            name = f"sm-ir-{job['name']}-{n}"[:63]
            api.create_endpoint_config({"EndpointConfigName": name, "ProductionVariants": [
                {"VariantName": "AllTraffic", "ModelName": job["model"], "InstanceType": instance_type,
                 "InitialInstanceCount": 1}]})
            started = time.time()
            api.create_endpoint({"EndpointName": name, "EndpointConfigName": name})
            status = engine.wait(name, 120)
            setup = time.time() - started
            try:
                if status != "InService":
                    raise ValueError(f"the endpoint on {instance_type} did not start: {status}")
                begin = _now()
                best = None
                for users in CONCURRENCY:
                    lat = load_test(lambda body, name=name: engine.invoke(name, body, content_type=content_type),
                                    bodies, users, SECONDS_PER_LEVEL)
                    value = float(np.percentile(lat, percentile))
                    per_minute = len(lat) / SECONDS_PER_LEVEL * 60
                    if value <= limit and (best is None or per_minute > best[0]):
                        best = (per_minute, value)
                end = _now()
            finally:
                with contextlib.suppress(AWSError):
                    api.delete_endpoint({"EndpointName": name})
                wait_until_gone(name)
                moto_state.backend("sagemaker").endpoint_configs.pop(name, None)
            price = cat.load().sagemaker_instance(instance_type, "hosting", REGION).price_usd
            max_inv, latency = best if best else (0.0, float("nan"))
            metrics = {"CostPerHour": round(price, 4), "MaxInvocations": int(max_inv),
                       "ModelLatency": int(round(latency)) if best else 0, "ModelSetupTime": int(setup),
                       "CostPerInference": round(price / (max_inv * 60), 10) if max_inv else 0.0}
            recommendations.append({"RecommendationId": f"{job['name']}/{uuid.uuid4().hex[:8]}", "Metrics": metrics,
                                    "EndpointConfiguration": {"EndpointName": name, "VariantName": "AllTraffic",
                                                              "InstanceType": instance_type, "InitialInstanceCount": 1},
                                    "ModelConfiguration": {}, "InvocationStartTime": begin, "InvocationEndTime": end})
            performances.append({"Metrics": {"MaxInvocations": int(max_inv), "ModelLatency": metrics["ModelLatency"]},
                                 "EndpointInfo": {"EndpointName": name}})
        job["InferenceRecommendations"] = sorted([r for r in recommendations if r["Metrics"]["MaxInvocations"]],
                                                 key=lambda r: r["Metrics"]["CostPerInference"])
        if request["JobType"] == "Advanced":
            job["EndpointPerformances"] = performances
        job["Status"] = "COMPLETED"
    except Exception as err:  # the job fails with a reason; the backend goes on
        job.update(Status="FAILED", FailureReason=f"{type(err).__name__}: {err}"[:1024])
    job["CompletionTime"] = job["LastModifiedTime"] = _now()


def _candidates(request: dict[str, Any]) -> list[str]:
    config = request["InputConfig"]
    if request["JobType"] == "Advanced":
        types = [c["InstanceType"] for c in config.get("EndpointConfigurations") or [] if c.get("InstanceType")]
        if not types:
            raise AWSError("ValidationException", "An Advanced job needs InputConfig.EndpointConfigurations with "
                           "an InstanceType each.")
        return types
    types = (config.get("ContainerConfig") or {}).get("SupportedInstanceTypes") or []
    if not types:
        raise AWSError("ValidationException", "Give ContainerConfig.SupportedInstanceTypes: the offline backend "
                       "has no catalogue of instance types to choose candidates from for a model.")
    return types[:5]


def _model(config: dict[str, Any]) -> str:

    if config.get("ModelName"):
        if config["ModelName"] not in moto_state.backend("sagemaker")._models:
            raise AWSError("ValidationException", f"Could not find model \"{config['ModelName']}\".")
        return config["ModelName"]
    if config.get("ModelPackageVersionArn"):
        package = next((p for p in moto_state.backend("sagemaker").model_packages.values()
                        if p.arn == config["ModelPackageVersionArn"]), None)
        if package is None:
            raise AWSError("ValidationException", f"Could not find model package {config['ModelPackageVersionArn']}.")
        name = f"sm-ir-model-{uuid.uuid4().hex[:10]}"
        moto_state.backend("sagemaker").create_model(model_name=name, execution_role_arn=jobs_role(config),
                                 containers=package.inference_specification["Containers"], tags=[])
        return name
    raise AWSError("ValidationException", "InputConfig needs ModelName or ModelPackageVersionArn.")


def jobs_role(config: dict[str, Any]) -> str:
    from . import ROLE_ARN

    return ROLE_ARN


@dispatch.operation("sagemaker", "CreateInferenceRecommendationsJob")
def create_job(params: dict[str, Any]) -> dict[str, Any]:
    name = params["JobName"]
    if name in jobs:
        raise AWSError("ResourceInUse", f"Inference recommendations job {name} already exists.")
    payload = ((params["InputConfig"].get("ContainerConfig") or {}).get("PayloadConfig") or {}).get("SamplePayloadUrl")
    if not payload:
        raise AWSError("ValidationException", "InputConfig.ContainerConfig.PayloadConfig.SamplePayloadUrl is "
                       "required offline: the load test sends those payloads.")
    candidates, model = _candidates(params), _model(params["InputConfig"])
    now = _now()
    job = {"name": name, "request": params, "candidates": candidates, "model": model,
           "JobName": name, "JobType": params["JobType"], "RoleArn": params["RoleArn"],
           "JobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:inference-recommendations-job/{name.lower()}",
           "Status": "IN_PROGRESS", "CreationTime": now, "LastModifiedTime": now,
           "InputConfig": params["InputConfig"], "StoppingConditions": params.get("StoppingConditions") or {}}
    if params.get("JobDescription"):
        job["JobDescription"] = params["JobDescription"]
    jobs[name] = job
    thread = threading.Thread(target=_run, args=(job,), name=f"labkit-ir-{name}", daemon=True)
    _threads.append(thread)
    thread.start()
    return {"JobArn": job["JobArn"]}


OUTPUT_KEYS = ("JobName", "JobDescription", "JobType", "JobArn", "RoleArn", "Status", "CreationTime", "CompletionTime",
               "LastModifiedTime", "FailureReason", "InputConfig", "StoppingConditions", "InferenceRecommendations",
               "EndpointPerformances")


@dispatch.operation("sagemaker", "DescribeInferenceRecommendationsJob")
def describe_job(params: dict[str, Any]) -> dict[str, Any]:
    job = jobs.get(params["JobName"])
    if job is None:
        raise AWSError("ResourceNotFound", f"Inference recommendations job {params['JobName']} does not exist.")
    return {k: job[k] for k in OUTPUT_KEYS if k in job}


@dispatch.operation("sagemaker", "ListInferenceRecommendationsJobs")
def list_jobs(params: dict[str, Any]) -> dict[str, Any]:
    keys = ("JobName", "JobDescription", "JobType", "JobArn", "Status", "CreationTime", "RoleArn", "LastModifiedTime")
    return {"InferenceRecommendationsJobs": [{k: j[k] for k in keys if k in j} for j in jobs.values()
                                             if params.get("NameContains", "") in j["JobName"]]}


@on_reset
def _reset() -> None:
    for thread in _threads:
        thread.join(30)
    _threads.clear()
    jobs.clear()
