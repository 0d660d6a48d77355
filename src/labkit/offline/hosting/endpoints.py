"""Endpoints as running model servers: create, update without downtime, invoke, delete.

Plain Python, no botocore: :class:`HostingEngine` is driven by the thin AWS layer in
:mod:`.api` (and by tests directly). Each production variant runs one model server
process (:mod:`.process`), whatever its ``InitialInstanceCount``: the count is recorded
for billing and autoscaling, but two cores cannot host several copies honestly.
Serverless variants start their server on the first request (a real cold start, logged)
and stop it after :data:`SERVERLESS_IDLE_S` without requests. Multi-model variants load
each ``TargetModel`` on first use and keep the :data:`MME_MAX_LOADED` most recently used
(``LABKIT_MME_MAX_MODELS`` in the model's or the backend's environment): AWS unloads the least
recently used model when the instance's memory is full, which a count stands in for here.
"""

from __future__ import annotations

import collections
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import ACCOUNT_ID, REGION, moto_state, runlog, storage, usage
from ..dispatch import AWSError
from . import artifacts
from .capture import DataCapture
from .process import ContainerError, ModelProcess

MAX_PAYLOAD = 6 * 1024 * 1024
SERVERLESS_IDLE_S = float(os.environ.get("LABKIT_SERVERLESS_IDLE_S", "120"))
MME_MAX_LOADED = int(os.environ.get("LABKIT_MME_MAX_MODELS", "8"))
START_TIMEOUT_S = 120.0
# How long a deleted endpoint stays ``Deleting`` before it is gone (AWS: a minute or more). Long
# enough that "wait until it is gone" is observable, short enough for prompt waiters (0.05 s polls).
DELETING_S = float(os.environ.get("LABKIT_ENDPOINT_DELETING_S", "0.5"))


def runtime_error(message: str) -> AWSError:
    """sagemaker-runtime's validation error (its code is ``ValidationError``)."""
    return AWSError("ValidationError", message, 400)


@dataclass
class Variant:
    """One production variant: its model, weight, capacity and (when running) its server."""

    endpoint: str
    name: str
    model_name: str
    container: dict[str, Any]
    weight: float = 1.0
    instance_type: str | None = None
    instance_count: int = 1
    serverless: dict[str, Any] | None = None
    config_name: str = ""  # the endpoint configuration it came from (a blue/green update has two)
    prepared: artifacts.PreparedModel | None = None
    process: ModelProcess | None = None
    log: storage.LogStream | None = None
    usage_event: usage.UsageEvent | None = None
    invocations: collections.deque = field(default_factory=lambda: collections.deque(maxlen=100_000))
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    last_used: float = 0.0
    cold_starts: list[float] = field(default_factory=list)
    mme_dirs: dict[str, str] = field(default_factory=dict)

    @property
    def log_stream_arn(self) -> str:
        return self.log.group_arn if self.log else ""

    def new_process(self) -> ModelProcess:
        p = self.prepared
        assert p is not None and self.log is not None
        return ModelProcess(p.model_dir, code_dir=p.code_dir, program=p.program, framework=p.framework,
                            env=p.env, log=self.log.write, multi_model=p.multi_model,
                            max_models=int(p.env.get("LABKIT_MME_MAX_MODELS", MME_MAX_LOADED)), workdir=p.workdir,
                            image=p.image)

    def invocations_in(self, seconds: float = 60.0, now: float | None = None) -> int:
        """How many requests this variant served in the last ``seconds``."""
        now = now or time.time()
        return sum(1 for t in self.invocations if t >= now - seconds)


@dataclass
class Endpoint:
    name: str
    config_name: str
    variants: dict[str, Variant]
    capture: DataCapture | None = None
    async_config: dict[str, Any] | None = None
    status: str = "Creating"
    failure: str | None = None
    rng: random.Random = field(default_factory=random.Random)
    async_queue: Any = None
    # Picks the variant of a request when set (a blue/green deployment shifting traffic); else choose_variant.
    router: Callable[[Endpoint, str | None], Variant] | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:endpoint/{self.name.lower()}"

    def log_group(self) -> str:
        return f"/aws/sagemaker/Endpoints/{self.name}"


def model_container(model_name: str) -> dict[str, Any]:
    model = moto_state.backend("sagemaker")._models.get(model_name)
    if model is None:
        raise AWSError("ValidationException",
                       f"Could not find model \"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:model/{model_name}\".")
    containers = model.containers or []
    return dict(model.primary_container or (containers[0] if containers else {}))


def variants_from_config(endpoint: str, config: dict[str, Any]) -> dict[str, Variant]:
    out = {}
    for pv in config["ProductionVariants"]:
        out[pv["VariantName"]] = Variant(
            endpoint=endpoint, name=pv["VariantName"], model_name=pv["ModelName"],
            container=model_container(pv["ModelName"]), weight=float(pv.get("InitialVariantWeight", 1.0)),
            instance_type=pv.get("InstanceType"), instance_count=int(pv.get("InitialInstanceCount", 1) or 1),
            serverless=pv.get("ServerlessConfig"), config_name=config["EndpointConfigName"])
    return out


class HostingEngine:
    """All endpoints of the offline backend."""

    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        self.lock = threading.RLock()
        # Called after each request that reached a model: (endpoint, variant, HTTP status, seconds).
        self.observers: list[Callable[[Endpoint, Variant, int, float], None]] = []
        self._stop = threading.Event()
        # Started with the first endpoint, not at import: the grader forks warm kernels from a
        # process that has imported this engine, and a process with threads must not fork.
        self._reaper: threading.Thread | None = None

    # lifecycle ---------------------------------------------------------------------------

    def create(self, name: str, config: dict[str, Any], on_status=None) -> Endpoint:
        """Register the endpoint as Creating and bring its variants up in the background."""
        capture = config.get("DataCaptureConfig")
        endpoint = Endpoint(name=name, config_name=config["EndpointConfigName"],
                            variants=variants_from_config(name, config),
                            capture=DataCapture(capture, name) if capture else None,
                            async_config=config.get("AsyncInferenceConfig"))
        with self.lock:
            self.endpoints[name] = endpoint
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap_serverless, name="labkit-serverless-reaper",
                                                daemon=True)
                self._reaper.start()
        threading.Thread(target=self._bring_up, args=(endpoint, endpoint.variants, on_status),
                         name=f"labkit-endpoint-{name}", daemon=True).start()
        return endpoint

    def adopt_failed(self, name: str, config_name: str, reason: str | None) -> Endpoint:
        """Register an endpoint that is Failed, with no server (the account restored after a stop):
        UpdateEndpoint and DeleteEndpoint then work on it as they did before the stop."""
        endpoint = Endpoint(name=name, config_name=config_name, variants={}, status="Failed", failure=reason)
        with self.lock:
            self.endpoints[name] = endpoint
        return endpoint

    def _start_variant(self, endpoint: Endpoint, variant: Variant) -> None:
        variant.log = storage.LogStream(endpoint.log_group(), f"{variant.name}/i-{uuid.uuid4().hex[:17]}")
        variant.prepared = artifacts.prepare(variant.container)
        if variant.serverless is None:
            variant.process = variant.new_process().start()

    def _bring_up(self, endpoint: Endpoint, variants: dict[str, Variant], on_status) -> bool:
        """Start ``variants``; True when all serve. Sets the endpoint's status unless updating."""
        failure = None
        for variant in variants.values():
            try:
                self._start_variant(endpoint, variant)
            except AWSError as err:
                failure = err.message
                break
            except Exception as err:  # noqa: BLE001 - anything else is the endpoint's failure
                failure = f"{type(err).__name__}: {err}"
                break
        if failure is None:
            for variant in variants.values():
                if variant.process is not None and not variant.process.wait(START_TIMEOUT_S):
                    failure = (f"The primary container for production variant {variant.name} did not pass the "
                               "ping health check. Please check CloudWatch logs for this endpoint. "
                               f"(model server: {variant.process.root_cause})")[:1024]
                    break
        if endpoint.status == "Deleting":  # deleted while these servers started: none may outlive it
            for variant in variants.values():
                self._stop_variant(variant)
            return False
        if failure is not None:
            for variant in variants.values():
                self._stop_variant(variant)
        if failure:
            runlog.failed("Endpoint", endpoint.name, failure)
        if endpoint.status == "Creating":
            endpoint.status, endpoint.failure = ("Failed", failure) if failure else ("InService", None)
            if not failure:
                for variant in variants.values():
                    self._open_usage(variant)
            if on_status:
                on_status(endpoint)
        elif failure:
            endpoint.failure = failure
        return failure is None

    def update(self, name: str, config: dict[str, Any], on_status=None) -> None:
        """Bring up the new config's variants, then swap: old ones serve until the new are ready."""
        endpoint = self.get(name)
        if endpoint.status not in ("InService", "Failed"):
            raise AWSError("ValidationException",
                           f"Cannot update in-progress endpoint \"{endpoint.arn}\".")
        new = variants_from_config(name, config)
        capture = config.get("DataCaptureConfig")
        endpoint.status, endpoint.failure = "Updating", None

        def run() -> None:
            ok = self._bring_up(endpoint, new, None)
            with self.lock:
                if endpoint.status == "Deleting":  # DeleteEndpoint stopped the old fleet; the new one goes too
                    for variant in new.values():
                        self._stop_variant(variant)
                    return
                old = endpoint.variants
                if ok:
                    endpoint.variants = new
            if ok:
                endpoint.config_name = config["EndpointConfigName"]
                endpoint.capture = DataCapture(capture, name) if capture else None
                endpoint.async_config = config.get("AsyncInferenceConfig")
                for variant in new.values():
                    self._open_usage(variant)
                deadline = time.time() + 60
                while any(v.in_flight for v in old.values()) and time.time() < deadline:
                    time.sleep(0.01)
                for variant in old.values():
                    self._stop_variant(variant)
            endpoint.status = "InService" if ok or endpoint.variants else "Failed"
            if on_status:
                on_status(endpoint)

        threading.Thread(target=run, name=f"labkit-endpoint-update-{name}", daemon=True).start()

    def delete(self, name: str, on_gone=None, linger: float = DELETING_S) -> None:
        """Stop the endpoint's servers now; it stays ``Deleting`` for ``linger`` s, then is gone.

        ``on_gone(endpoint)`` runs once it is gone (the API layer drops moto's record then).
        """
        with self.lock:
            endpoint = self.endpoints.get(name)
            if endpoint is None or endpoint.status == "Deleting":
                return
            endpoint.status = "Deleting"
        if endpoint.async_queue is not None:
            endpoint.async_queue.put(None)
        for variant in endpoint.variants.values():
            self._stop_variant(variant)

        def gone() -> None:
            with self.lock:
                if self.endpoints.get(name) is endpoint:
                    del self.endpoints[name]
            if on_gone:
                on_gone(endpoint)

        if linger > 0:
            timer = threading.Timer(linger, gone)
            timer.daemon = True
            timer.start()
        else:
            gone()

    def stop_all(self) -> None:
        """Stop and forget every endpoint now (a backend reset), those still Deleting included."""
        for name in list(self.endpoints):
            self.delete(name, linger=0)
        with self.lock:
            self.endpoints.clear()

    def get(self, name: str) -> Endpoint:
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            raise runtime_error(f"Endpoint {name} of account {ACCOUNT_ID} not found.")
        return endpoint

    def wait(self, name: str, timeout: float = 60.0) -> str:
        """Block until the endpoint leaves Creating/Updating; returns its status ("Deleted" once gone)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            endpoint = self.endpoints.get(name)
            if endpoint is None or endpoint.status not in ("Creating", "Updating"):
                return endpoint.status if endpoint else "Deleted"
            time.sleep(0.02)
        return self.endpoints[name].status

    # usage ------------------------------------------------------------------------------

    def _open_usage(self, variant: Variant) -> None:
        now = time.time()
        if variant.serverless is not None:
            variant.usage_event = usage.record(
                "sagemaker:serverless", variant.endpoint, variant=variant.name,
                memory_mb=int(variant.serverless["MemorySizeInMB"]),
                max_concurrency=int(variant.serverless.get("MaxConcurrency", 1)),
                seconds=0.0, requests=0, bytes_in=0, bytes_out=0, start=now, end=None)
        else:
            assert variant.instance_type is not None  # a variant has an instance type unless it is serverless
            variant.usage_event = usage.record(
                "sagemaker:hosting", variant.endpoint, variant=variant.name, instance_type=variant.instance_type,
                instance_count=variant.instance_count, start=now, end=None)

    def _close_usage(self, variant: Variant) -> None:
        if variant.usage_event is not None and variant.usage_event.get("end") is None:
            variant.usage_event["end"] = time.time()

    def set_capacity(self, name: str, variant_name: str, *, weight: float | None = None,
                     instance_count: int | None = None) -> None:
        """Apply UpdateEndpointWeightsAndCapacities: new weight, and a new billed interval."""
        variant = self.get(name).variants[variant_name]
        if weight is not None:
            variant.weight = float(weight)
        if instance_count is not None and instance_count != variant.instance_count:
            variant.instance_count = int(instance_count)
            if variant.serverless is None and variant.usage_event is not None:
                self._close_usage(variant)
                self._open_usage(variant)

    def _stop_variant(self, variant: Variant) -> None:
        self._close_usage(variant)
        if variant.process is not None:
            variant.process.stop()
            variant.process = None
        if variant.prepared is not None:
            variant.prepared.cleanup()

    # invocation ---------------------------------------------------------------------------

    def choose_variant(self, endpoint: Endpoint, target: str | None) -> Variant:
        if target:
            if target not in endpoint.variants:
                raise runtime_error(f"The variant \"{target}\" is not present in endpoint {endpoint.name}: "
                                    f"its variants are {sorted(endpoint.variants)}.")
            return endpoint.variants[target]
        variants = [v for v in endpoint.variants.values() if v.weight > 0]
        if not variants:
            raise runtime_error(f"All variants of endpoint {endpoint.name} have weight 0: route with "
                                "TargetVariant or give a variant a positive weight.")
        return endpoint.rng.choices(variants, weights=[v.weight for v in variants])[0]

    def _ensure_serverless(self, endpoint: Endpoint, variant: Variant) -> None:
        with variant.lock:
            if variant.process is not None and variant.process.alive:
                return
            started = time.perf_counter()
            variant.process = variant.new_process().start()
            ok = variant.process.wait(START_TIMEOUT_S)
            cold = time.perf_counter() - started
            variant.cold_starts.append(cold)
            if variant.log and variant.serverless is not None:
                variant.log.write(f"Cold start: the model container started in {1000 * cold:.0f} ms "
                                  f"(serverless, MemorySizeInMB={variant.serverless['MemorySizeInMB']})")
            if not ok:
                failure = variant.process.failure
                variant.process = None
                raise AWSError("ModelError", f"Received server error (500) from {variant.name} with message "
                               f"\"the model container failed to start\". See {self._logs_url(endpoint)} "
                               "for more information.", 424, OriginalStatusCode=500,
                               OriginalMessage=failure, LogStreamArn=variant.log_stream_arn)

    def _mme_dir(self, variant: Variant, target: str) -> str:
        with variant.lock:
            if target in variant.mme_dirs:
                return variant.mme_dirs[target]
            assert variant.prepared is not None
            safe = re.sub(r"[^A-Za-z0-9._-]", "_", target)
            dest = os.path.join(variant.prepared.workdir, "mme", safe)
            uri = variant.prepared.model_prefix + target.lstrip("/")
            try:
                artifacts.fetch_model_data(uri, dest)
            except AWSError as err:
                raise runtime_error(err.message) from err
            variant.mme_dirs[target] = dest
            return dest

    @staticmethod
    def _logs_url(endpoint: Endpoint) -> str:
        return (f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#logEventViewer:"
                f"group={endpoint.log_group()} in account {ACCOUNT_ID}")

    def invoke(self, name: str, body: bytes, *, content_type: str | None = None, accept: str | None = None,
               target_variant: str | None = None, target_model: str | None = None,
               custom_attributes: str | None = None, inference_id: str | None = None,
               asynchronous: bool = False) -> dict[str, Any]:
        """Serve one request; returns ``Body`` (bytes), ``ContentType``, ``InvokedProductionVariant``."""
        endpoint = self.get(name)
        if endpoint.status not in ("InService", "Updating"):
            raise runtime_error(f"Endpoint {name} of account {ACCOUNT_ID} is not in service "
                                f"(status {endpoint.status}): wait for InService "
                                "(sagemaker client: get_waiter('endpoint_in_service')).")
        if len(body) > MAX_PAYLOAD and not asynchronous:
            raise runtime_error(f"Request body of {len(body)} bytes exceeds the InvokeEndpoint limit of 6 MB "
                                f"({MAX_PAYLOAD} bytes). Send larger payloads with asynchronous inference "
                                "(invoke_endpoint_async, up to 1 GB) or batch transform.")
        if endpoint.async_config and not asynchronous:
            raise runtime_error(f"Endpoint {name} is an asynchronous endpoint (AsyncInferenceConfig): "
                                "call invoke_endpoint_async with an InputLocation in S3.")
        with self.lock:
            variant = (endpoint.router or self.choose_variant)(endpoint, target_variant)
            limit = int(variant.serverless.get("MaxConcurrency", 1)) if variant.serverless else None
            if limit is not None and variant.in_flight >= limit:
                raise AWSError("ThrottlingException", f"Endpoint {name} is serving {limit} concurrent requests, "
                               "its MaxConcurrency. Retry with backoff or raise MaxConcurrency.", 429)
            variant.in_flight += 1
        started, status = time.perf_counter(), 0  # 0: the request did not reach the model
        try:
            result = self._invoke_variant(endpoint, variant, body, content_type, accept, custom_attributes,
                                          inference_id, target_model)
            status = 200
            return result
        except AWSError as err:
            status = int(err.extra.get("OriginalStatusCode", 0))
            raise
        finally:
            with self.lock:
                variant.in_flight -= 1
            if status:
                for observe in self.observers:
                    observe(endpoint, variant, status, time.perf_counter() - started)

    def _invoke_variant(self, endpoint: Endpoint, variant: Variant, body: bytes, content_type: str | None,
                        accept: str | None, custom_attributes: str | None, inference_id: str | None,
                        target_model: str | None) -> dict[str, Any]:
        name = endpoint.name
        headers = {}
        if content_type:
            headers["Content-Type"] = content_type
        if accept:
            headers["Accept"] = accept
        if custom_attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
        if inference_id:
            headers["X-Amzn-SageMaker-Inference-Id"] = inference_id
        assert variant.prepared is not None
        if variant.prepared.multi_model:
            if not target_model:
                raise runtime_error(f"Endpoint {name} is a multi-model endpoint: pass TargetModel, the key of the "
                                    f"model's .tar.gz under {variant.prepared.model_prefix}.")
            headers["X-Amzn-SageMaker-Target-Model"] = target_model
            headers["X-Labkit-Model-Dir"] = self._mme_dir(variant, target_model)
        elif target_model:
            raise runtime_error(f"TargetModel is only for multi-model endpoints; endpoint {name} serves one "
                                "model (its container's Mode is SingleModel).")
        serverless = variant.serverless
        started = time.perf_counter()
        out = b""
        try:
            if serverless is not None:
                self._ensure_serverless(endpoint, variant)
            process = variant.process
            if process is None:
                raise ContainerError("the model server is not running")
            status, out, out_type = process.invoke(body, headers)
        except ContainerError as err:
            raise AWSError("ModelError", f"Received server error (500) from primary with message \"{err}\". "
                           f"See {self._logs_url(endpoint)} for more information.", 424,
                           OriginalStatusCode=500, OriginalMessage=str(err),
                           LogStreamArn=variant.log_stream_arn) from err
        finally:
            elapsed = time.perf_counter() - started
            variant.last_used = time.time()
            variant.invocations.append(variant.last_used)
            if serverless is not None and variant.usage_event is not None:  # billed: duration and data
                event = variant.usage_event
                event["seconds"] = event.get("seconds", 0.0) + elapsed
                event["requests"] = event.get("requests", 0) + 1
                event["bytes_in"] = event.get("bytes_in", 0) + len(body)
                event["bytes_out"] = event.get("bytes_out", 0) + len(out)
        if status >= 400:
            text = out.decode("utf-8", "replace")
            kind = "client" if status < 500 else "server"
            raise AWSError("ModelError", f"Received {kind} error ({status}) from primary with message \"{text}\". "
                           f"See {self._logs_url(endpoint)} for more information.", 424,
                           OriginalStatusCode=status, OriginalMessage=text, LogStreamArn=variant.log_stream_arn)
        if endpoint.capture is not None:
            endpoint.capture.record(variant.name, body, content_type or "", out, out_type, inference_id)
        return {"Body": out, "ContentType": out_type, "InvokedProductionVariant": variant.name}

    # serverless idling ----------------------------------------------------------------------

    def _reap_serverless(self) -> None:
        while not self._stop.wait(1.0):
            now = time.time()
            for endpoint in list(self.endpoints.values()):
                for variant in list(endpoint.variants.values()):
                    if (variant.serverless is not None and variant.process is not None and variant.in_flight == 0
                            and now - variant.last_used > SERVERLESS_IDLE_S):
                        with variant.lock:
                            process, variant.process = variant.process, None
                        if process is not None:
                            process.stop()
                            if variant.log:
                                variant.log.write("Scaled to zero after "
                                                  f"{SERVERLESS_IDLE_S:.0f} s without requests")
