"""Batch transform: a model server over every record of an S3 prefix, outputs as ``.out``.

What runs is what SageMaker runs: the model's container (:mod:`.server`) behind a
client that reads each input object, splits it (``SplitType`` ``None`` or ``Line``),
batches records (``BatchStrategy`` ``SingleRecord`` or ``MultiRecord`` up to
``MaxPayloadInMB``), applies ``DataProcessing`` (``InputFilter``, ``JoinSource``,
``OutputFilter`` with the JSONPath operators SageMaker supports: ``$``, ``.name``,
``['name',...]``, ``[n,...]``, ``[start:end]``, ``*``) and writes
``<S3OutputPath>/<input key relative to the prefix>.out`` in input order, records joined
by newlines when ``AssembleWith`` is ``Line``. One instance is run whatever
``InstanceCount`` says; the count is billed. ``RecordIO``/``TFRecord`` splitting is not
emulated (the job is refused with a message).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import threading
import time
import uuid
from typing import Any

from .. import ACCOUNT_ID, REGION, failures, moto_state, runlog, s3_location, storage, usage
from ..dispatch import AWSError
from . import artifacts
from .endpoints import model_container
from .process import ContainerError, ModelProcess

MAX_TOTAL_PAYLOAD_MB = 100
_running: dict[str, threading.Event] = {}


def invalid(message: str) -> AWSError:
    return AWSError("ValidationException", message)


# --- JSONPath filters -----------------------------------------------------------------------

_SUPPORTED = re.compile(r"^\$(\.[A-Za-z_][\w-]*|\.\*|\[(\*|-?\d+(\s*,\s*-?\d+)*|-?\d*:-?\d*|'[^']*'(\s*,\s*'[^']*')*)\])*$")


def check_jsonpath(field: str, path: str | None) -> None:
    if path is not None and not _SUPPORTED.match(path.strip()):
        raise invalid(f"{field} {path!r} is not a JSONPath expression that batch transform supports: use $, "
                      "$.name, $['name'], $[0,2], $[1:] or $[*] (no filters or recursive descent).")


def apply_jsonpath(path: str | None, value: Any) -> Any:
    """Evaluate a supported JSONPath; several matches give a list, one match its value."""
    if path is None or path.strip() == "$":
        return value
    from jsonpath_ng import parse

    expr = path.strip()
    matches = [m.value for m in parse(expr).find(value)]
    many = any(token in expr for token in (":", ",", "*"))
    if many:
        return matches
    if not matches:
        raise ValueError(f"the path {path} matched nothing in {json.dumps(value)[:200]}")
    return matches[0]


def _csv_row(text: str) -> list[Any]:
    row = next(csv.reader([text]))
    out: list[Any] = []
    for cell in row:
        try:
            out.append(json.loads(cell) if cell.strip() and cell.strip()[0] in "-0123456789" else cell)
        except ValueError:
            out.append(cell)
    return out


def _to_csv(values: Any) -> str:
    values = values if isinstance(values, list) else [values]
    stream = io.StringIO()
    csv.writer(stream, lineterminator="").writerow(values)
    return stream.getvalue()


def _is_csv(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip() == "text/csv"


def _decode(record: str, content_type: str | None) -> Any:
    return _csv_row(record) if _is_csv(content_type) else json.loads(record)


def _encode(value: Any, content_type: str | None) -> str:
    return _to_csv(value) if _is_csv(content_type) else json.dumps(value)


def filter_input(record: str, path: str | None, content_type: str | None) -> str:
    if path is None or path.strip() == "$":
        return record
    return _encode(apply_jsonpath(path, _decode(record, content_type)), content_type)


def join(input_record: str, output_record: str, content_type: str | None, accept: str | None) -> Any:
    """``JoinSource: Input``: the input record with the prediction appended, as SageMaker joins them."""
    if _is_csv(content_type):
        out = _csv_row(output_record) if _is_csv(accept) or not output_record.strip().startswith(("{", "[")) \
            else [json.loads(output_record)]
        return _csv_row(input_record) + out
    source = json.loads(input_record)
    try:
        prediction = json.loads(output_record)
    except ValueError:
        prediction = output_record
    if isinstance(source, dict):
        return {**source, "SageMakerOutput": prediction}
    if isinstance(source, list):
        return [*source, prediction]
    raise ValueError("JoinSource Input needs JSON objects or arrays as input records")


# --- the job ----------------------------------------------------------------------------------


def validate(params: dict[str, Any]) -> None:
    name = params["TransformJobName"]
    if name in moto_state.backend("sagemaker").transform_jobs:
        arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:transform-job/{name.lower()}"
        raise invalid(f"Job name must be unique within an AWS account and region, and a job with this name "
                      f"already exists ({arn})")
    model_container(params["ModelName"])
    tin = params["TransformInput"]
    split = tin.get("SplitType", "None")
    if split not in ("None", "Line"):
        raise invalid(f"SplitType {split} is not emulated offline (RecordIO/TFRecord need the container's "
                      "framing); use Line or None.")
    source = tin["DataSource"].get("S3DataSource") or {}
    if source.get("S3DataType", "S3Prefix") not in ("S3Prefix", "ManifestFile"):
        raise invalid("S3DataType must be S3Prefix or ManifestFile.")
    s3_location.require(source.get("S3Uri", ""), "transformInput.dataSource.s3DataSource.s3Uri")
    s3_location.require(params["TransformOutput"]["S3OutputPath"], "transformOutput.s3OutputPath")
    payload = params.get("MaxPayloadInMB", 6)
    concurrency = params.get("MaxConcurrentTransforms", 1) or 1
    if payload > MAX_TOTAL_PAYLOAD_MB or payload * concurrency > MAX_TOTAL_PAYLOAD_MB:
        raise invalid(f"MaxPayloadInMB ({payload}) x MaxConcurrentTransforms ({concurrency}) must not exceed "
                      f"{MAX_TOTAL_PAYLOAD_MB} MB.")
    if params.get("BatchStrategy") == "MultiRecord" and split == "None":
        raise invalid("BatchStrategy MultiRecord needs SplitType Line: without splitting there is one record "
                      "per object.")
    dp = params.get("DataProcessing") or {}
    for key in ("InputFilter", "OutputFilter"):
        check_jsonpath(f"DataProcessing.{key}", dp.get(key))


def _inputs(source: dict[str, Any]) -> list[tuple[str, str]]:
    """``(uri, relative name)`` of every input object, in key order."""
    uri = source["S3Uri"]
    bucket, prefix = s3_location.split(uri)
    if source.get("S3DataType") == "ManifestFile":
        manifest = json.loads(storage.get(uri))
        base = manifest[0]["prefix"]
        return [(base + rel, rel) for rel in manifest[1:]]
    out = []
    for key in storage.list_keys(uri, strict=True):
        if key == prefix or not (prefix.endswith("/") or key.startswith(prefix + "/")):
            folder = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
            rel = key[len(folder):]
        else:
            rel = key[len(prefix):].lstrip("/")
        out.append((f"s3://{bucket}/{key}", rel))
    return out


def _batches(records: list[str], strategy: str, max_bytes: int) -> list[list[str]]:
    if strategy != "MultiRecord":
        return [[r] for r in records]
    batches: list[list[str]] = []
    current: list[str] = []
    size = 0
    for record in records:
        n = len(record.encode()) + 1
        if n > max_bytes:
            raise RuntimeError(f"a record of {n} bytes exceeds MaxPayloadInMB ({max_bytes} bytes)")
        if current and size + n > max_bytes:
            batches.append(current)
            current, size = [], 0
        current.append(record)
        size += n
    if current:
        batches.append(current)
    return batches


def _container_error(answer: str, model_dir: str) -> str:
    """An error answer, as its root cause (the learner's exception and line) when it is a traceback."""
    cause = failures.explain({"container": failures.timed(answer.splitlines())})
    return cause.replace(model_dir.rstrip("/"), "/opt/ml/model") if cause else answer[:500]


def run_job(params: dict[str, Any], log: storage.LogStream, stop: threading.Event) -> None:
    """Run the whole transform; raises RuntimeError with the failure reason."""
    container = model_container(params["ModelName"])
    container.setdefault("Environment", {})
    container["Environment"] = {**container["Environment"], **(params.get("Environment") or {})}
    prepared = artifacts.prepare(container)
    # Batch transform runs the container with SAGEMAKER_BATCH set (XGBoost answers line by line then).
    process = ModelProcess(prepared.model_dir, code_dir=prepared.code_dir, program=prepared.program,
                           framework=prepared.framework, env={**prepared.env, "SAGEMAKER_BATCH": "true"},
                           log=log.write, workdir=prepared.workdir, image=prepared.image).start()
    try:
        if not process.wait(120):
            raise RuntimeError("ClientError: the model container failed to start: " + process.root_cause)
        tin, tout = params["TransformInput"], params["TransformOutput"]
        dp = params.get("DataProcessing") or {}
        content_type, accept = tin.get("ContentType"), tout.get("Accept")
        split, strategy = tin.get("SplitType", "None"), params.get("BatchStrategy", "MultiRecord")
        max_bytes = int(params.get("MaxPayloadInMB", 6) * 1024 * 1024) or 6 * 1024 * 1024
        newline = tout.get("AssembleWith", "None") == "Line"
        headers = {k: v for k, v in (("Content-Type", content_type), ("Accept", accept)) if v}
        out_path = tout["S3OutputPath"].rstrip("/")
        for uri, rel in _inputs(tin["DataSource"]["S3DataSource"]):
            if stop.is_set():
                raise RuntimeError("Stopped")
            data = storage.get(uri)
            if tin.get("CompressionType") == "Gzip":
                data = gzip.decompress(data)
            text = data.decode("utf-8") if split == "Line" or dp else None
            records = [r for r in text.splitlines() if r.strip()] if split == "Line" and text is not None else None
            outputs: list[str] = []
            if records is None:
                batches_in: list[list[str]] = [[text]] if text is not None else []
                raw = [data] if text is None else None
            else:
                batches_in, raw = _batches(records, strategy, max_bytes), None
            if raw is not None:  # binary object, no processing: one request as is
                status, body, _ = process.invoke(raw[0], headers)
                if status >= 400:
                    raise RuntimeError(f"ClientError: {uri}: the container answered {status}: "
                                       f"{_container_error(body.decode('utf-8', 'replace'), prepared.model_dir)}")
                storage.put(f"{out_path}/{rel}.out", body)
                continue
            for batch in batches_in:
                sent = [filter_input(r, dp.get("InputFilter"), content_type) for r in batch]
                status, body, _ = process.invoke("\n".join(sent).encode(), headers)
                answer = body.decode("utf-8", "replace")
                if status >= 400:
                    raise RuntimeError(f"ClientError: {uri}: the container answered {status}: "
                                       f"{_container_error(answer, prepared.model_dir)}")
                if dp.get("JoinSource") == "Input" or dp.get("OutputFilter"):
                    lines = answer.splitlines() if len(batch) > 1 else [answer.strip()]
                    if len(lines) != len(batch):
                        raise RuntimeError(f"ClientError: {uri}: {len(batch)} records were sent but the container "
                                           f"answered {len(lines)} lines: cannot join them with their inputs.")
                    for record, line in zip(batch, lines, strict=True):
                        joined = join(record, line, content_type, accept) if dp.get("JoinSource") == "Input" \
                            else _decode(line, accept if not _is_csv(accept) else "text/csv")
                        kind = content_type if dp.get("JoinSource") == "Input" else accept
                        outputs.append(_encode(apply_jsonpath(dp.get("OutputFilter"), joined), kind))
                else:
                    outputs.append(answer.rstrip("\n") if newline else answer)
            sep = "\n" if newline else ""
            storage.put(f"{out_path}/{rel}.out", (sep.join(outputs) + sep).encode())
            log.write(f"Wrote {out_path}/{rel}.out ({len(outputs)} outputs)")
    except ContainerError as err:
        raise RuntimeError(f"ClientError: the model container stopped answering: {err}") from err
    finally:
        process.stop()
        prepared.cleanup()


def _execute(params: dict[str, Any], stop: threading.Event) -> None:
    from moto.core.utils import utcnow

    name = params["TransformJobName"]
    record = moto_state.backend("sagemaker").transform_jobs.get(name)
    log = storage.LogStream("/aws/sagemaker/TransformJobs", f"{name}/i-{uuid.uuid4().hex[:17]}")
    started = time.time()
    status, reason = "Completed", ""
    try:
        run_job(params, log, stop)
    except RuntimeError as err:
        status, reason = ("Stopped", "") if stop.is_set() else ("Failed", str(err))
        log.write(reason or "Stopped")
    except AWSError as err:
        status, reason = "Failed", f"ClientError: {err.message}"
    except Exception as err:  # noqa: BLE001 - the job fails with the reason, the kernel goes on
        status, reason = "Failed", f"AlgorithmError: {type(err).__name__}: {err}"
        log.write(reason)
    seconds = time.time() - started
    resources = params.get("TransformResources") or {}
    usage.record("sagemaker:transform", name, instance_type=resources["InstanceType"],  # required by the API
                 instance_count=int(resources.get("InstanceCount", 1)), seconds=seconds, start=started,
                 end=time.time())
    reason = reason[:1024]
    if status == "Failed":
        runlog.failed("TransformJob", name, reason)
    if record is not None:
        record.transform_job_status, record.failure_reason = status, reason or None
        record.transform_end_time = record.last_modified_time = utcnow()
    _running.pop(name, None)


def create_transform_job(params: dict[str, Any]) -> dict[str, Any]:
    """CreateTransformJob: validate, record in moto as InProgress, run in the background."""
    validate(params)
    backend = moto_state.backend("sagemaker")
    record = backend.create_transform_job(
        transform_job_name=params["TransformJobName"], model_name=params["ModelName"],
        max_concurrent_transforms=params.get("MaxConcurrentTransforms"),
        model_client_config=params.get("ModelClientConfig"), max_payload_in_mb=params.get("MaxPayloadInMB"),
        batch_strategy=params.get("BatchStrategy"), environment=params.get("Environment"),
        transform_input=params["TransformInput"], transform_output=params["TransformOutput"],
        data_capture_config=params.get("DataCaptureConfig"), transform_resources=params["TransformResources"],
        data_processing=params.get("DataProcessing"), tags=params.get("Tags"),
        experiment_config=params.get("ExperimentConfig"))
    record.transform_job_status = "InProgress"
    record.failure_reason = None
    record.transform_end_time = None
    stop = threading.Event()
    _running[params["TransformJobName"]] = stop
    threading.Thread(target=_execute, args=(params, stop), name=f"labkit-transform-{params['TransformJobName']}",
                     daemon=True).start()
    return {"TransformJobArn": record.arn}


def stop_transform_job(params: dict[str, Any]) -> dict[str, Any]:
    name = params["TransformJobName"]
    record = moto_state.backend("sagemaker").transform_jobs.get(name)
    if record is None:
        raise AWSError("ValidationException", f"Could not find job to update with name {name}")
    if name in _running:
        _running[name].set()
        record.transform_job_status = "Stopping"
    return {}


def wait(name: str, timeout: float = 120.0) -> str:
    """Block until a transform job ends; returns its status."""
    deadline = time.time() + timeout
    while name in _running and time.time() < deadline:
        time.sleep(0.02)
    return moto_state.backend("sagemaker").transform_jobs[name].transform_job_status
