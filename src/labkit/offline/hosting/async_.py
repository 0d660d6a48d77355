"""Asynchronous inference: InvokeEndpointAsync queues a request, a worker serves it.

The request body is read from ``InputLocation`` (S3) when the worker picks it up; the
container's answer goes to ``<S3OutputPath>/<InferenceId>.out`` (or, when the container
fails, its message to ``<S3FailurePath>/<InferenceId>-error.out``). SNS notifications of
``NotificationConfig`` are not sent offline: poll the output location instead.
"""

from __future__ import annotations

import queue
import threading
import uuid
from typing import Any

from .. import s3_location, storage
from ..dispatch import AWSError
from .endpoints import Endpoint, HostingEngine, runtime_error


def _worker(engine: HostingEngine, endpoint: Endpoint, jobs: queue.Queue) -> None:
    while True:
        job = jobs.get()
        if job is None:
            return
        try:
            body = storage.get(job["input"])
        except KeyError:
            body = None
        try:
            if body is None:
                raise AWSError("ValidationError", f"Could not read the input {job['input']}: no such object.")
            result = engine.invoke(endpoint.name, body, content_type=job.get("content_type"),
                                   accept=job.get("accept"), custom_attributes=job.get("custom_attributes"),
                                   inference_id=job["id"], asynchronous=True)
            storage.put(job["output"], result["Body"], result["ContentType"])
        except AWSError as err:
            message = err.extra.get("OriginalMessage") or err.message
            storage.put(job["failure"] or job["output"] + ".error", str(message).encode(), "text/plain")
        finally:
            jobs.task_done()


def invoke_async(engine: HostingEngine, name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Queue one request; returns ``InferenceId``, ``OutputLocation`` and maybe ``FailureLocation``."""
    endpoint = engine.get(name)
    if not endpoint.async_config:
        raise runtime_error(f"Endpoint {name} is not an asynchronous endpoint: its endpoint configuration has "
                            "no AsyncInferenceConfig. Use invoke_endpoint, or create an async endpoint.")
    location = params.get("InputLocation")
    if not location:
        raise runtime_error("InputLocation is required: upload the request body to S3 and pass its s3:// URI.")
    try:
        s3_location.parse(location)
    except s3_location.InvalidS3Location as err:
        raise runtime_error(f"InputLocation: {err}") from err
    output = endpoint.async_config.get("OutputConfig") or {}
    inference_id = params.get("InferenceId") or str(uuid.uuid4())
    out_id = str(uuid.uuid4())
    out_path = output["S3OutputPath"].rstrip("/")
    if params.get("S3OutputPathExtension"):
        out_path += "/" + params["S3OutputPathExtension"].strip("/")
    failure_path = (output.get("S3FailurePath") or "").rstrip("/")
    job = {"id": inference_id, "input": location, "content_type": params.get("ContentType"),
           "accept": params.get("Accept"), "custom_attributes": params.get("CustomAttributes"),
           "output": f"{out_path}/{params.get('Filename') or out_id + '.out'}",
           "failure": f"{failure_path}/{out_id}-error.out" if failure_path else None}
    with engine.lock:
        if endpoint.async_queue is None:
            endpoint.async_queue = queue.Queue()
            threading.Thread(target=_worker, args=(engine, endpoint, endpoint.async_queue),
                             name=f"labkit-async-{name}", daemon=True).start()
    endpoint.async_queue.put(job)
    response = {"InferenceId": inference_id, "OutputLocation": job["output"], "_status": 202}
    if job["failure"]:
        response["FailureLocation"] = job["failure"]
    return response
