"""S3 objects and CloudWatch Logs streams, as every engine reaches them.

The engines act as the services they stand for: a training job stages its channels and
uploads ``model.tar.gz``, an endpoint reads its model and writes capture files, a
transform job writes its outputs. They all do it here, one way each:

- **S3 through the API**: one boto3 client shared by the engine's threads, answered
  in-process by moto (:func:`s3`). An engine gets S3's own behaviour (errors, metadata,
  multipart uploads, event notifications) and its bytes exactly as a learner's script
  would, and nothing depends on the signatures of moto's internal S3 model. A call costs
  about a millisecond, which no job or request notices.
- **Logs into moto's backend** (:class:`LogStream`): a job or a model server writes a line
  at a time, thousands of them, from the threads that read its output; moto's backend
  takes a line in microseconds, where a ``PutLogEvents`` call would cost a millisecond each.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

from . import ACCOUNT_ID, REGION, moto_state, on_reset, runlog, s3_location

LOG_GROUP_TRAINING = "/aws/sagemaker/TrainingJobs"
LOG_GROUP_PROCESSING = "/aws/sagemaker/ProcessingJobs"

_client_lock = threading.Lock()
_client: list[Any] = []


# --- S3 ----------------------------------------------------------------------------------------


def s3() -> Any:
    """One boto3 S3 client shared by the engine's threads (reaches moto in-process)."""
    with _client_lock:
        if not _client:
            import boto3

            _client.append(boto3.session.Session().client("s3", region_name=REGION))
        return _client[0]


@on_reset
def _forget_client() -> None:
    with _client_lock:
        _client.clear()


def _missing(err: Exception) -> bool:
    code = str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "NoSuchBucket", "404")


def get(uri: str) -> bytes:
    """The object's bytes; ``KeyError`` naming the URI when it (or its bucket) does not exist."""
    bucket, key = s3_location.split(uri)
    try:
        return s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as err:
        if _missing(err):
            raise KeyError(uri) from err
        raise


def put(uri: str, data: bytes, content_type: str | None = None) -> None:
    bucket, key = s3_location.split(uri)
    extra = {"ContentType": content_type} if content_type else {}
    s3().put_object(Bucket=bucket, Key=key, Body=data, **extra)


def list_keys(uri: str, *, strict: bool = False) -> list[str]:
    """Keys under an S3 prefix, sorted, folder markers (``.../``) left out.

    A bucket that does not exist has no keys, or, with ``strict``, raises ``KeyError``.
    """
    bucket, prefix = s3_location.split(uri)
    keys: list[str] = []
    try:
        for page in s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
    except s3().exceptions.NoSuchBucket as err:
        if strict:
            raise KeyError(uri) from err
        return []
    return sorted(keys)


def _relative(key: str, prefix: str) -> str:
    if key == prefix:
        return key.rsplit("/", 1)[-1]
    rel = key[len(prefix):]
    if not prefix.endswith("/") and prefix and not rel.startswith("/"):
        # s3://b/data/train matched data/train.csv: keep the object's own name.
        return key.rsplit("/", 1)[-1]
    return rel.lstrip("/")


def download_prefix(uri: str, dest: Path, *, shard: int = 0, shards: int = 1) -> list[str]:
    """Copy the objects under ``uri`` into ``dest``; with ``shards`` > 1 only every n-th key."""
    bucket, prefix = s3_location.split(uri)
    keys = list_keys(uri)[shard::shards]
    for key in keys:
        target = dest / _relative(key, prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        s3().download_file(bucket, key, str(target))
    return keys


def upload_file(path: Path, uri: str) -> None:
    bucket, key = s3_location.split(uri)
    s3().upload_file(str(path), bucket, key)


def sync_up(local: Path, uri: str) -> int:
    """Upload every file of ``local`` under the prefix ``uri`` (checkpoint sync).

    The script keeps writing while the sync runs: a file renamed or deleted after the
    listing (an atomic ``checkpoint.tmp`` -> ``checkpoint.pt``) is skipped, not an error;
    the next sync uploads what took its place.
    """
    bucket, prefix = s3_location.split(uri.rstrip("/") + "/")
    count = 0
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        try:
            s3().upload_file(str(path), bucket, prefix + path.relative_to(local).as_posix())
        except FileNotFoundError:
            continue
        count += 1
    return count


def pack(directory: Path, uri: str) -> None:
    """Upload ``directory``'s contents as a gzipped tar at ``uri`` (model.tar.gz layout)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=path.relative_to(directory).as_posix(), recursive=False)
    bucket, key = s3_location.split(uri)
    s3().put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())


def unpack(uri: str, dest: Path) -> None:
    """Download a tar.gz from S3 and extract it into ``dest`` (a v2 ``sourcedir.tar.gz``)."""
    bucket, key = s3_location.split(uri)
    data = s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        tar.extractall(dest, filter="data")


# --- CloudWatch Logs ---------------------------------------------------------------------------


class LogStream:
    """One CloudWatch Logs stream in moto's backend that a job, a model server or a transform writes to.

    A *job*'s stream (training, processing, Batch; ``job=True``) is created at once, so it
    is listed while the job starts, and takes lines as the training platform's log shipper
    writes them: a tab as ``#011`` (metric regexes written for AWS, ``#011validation-auc:...``,
    match) and an empty line as a space. Otherwise (endpoints, transform jobs) the stream
    appears with its first line and empty lines are dropped. A backend reset under a
    writer drops that line and makes the next write create the group and stream again.
    """

    def __init__(self, group: str, stream: str, *, job: bool = False):
        self.group, self.stream, self.job = group, stream, job
        self._lock = threading.Lock()
        self._ready = False
        if job:
            backend = moto_state.backend("logs")
            if group not in backend.groups:
                with contextlib.suppress(Exception):  # created concurrently by another job
                    backend.create_log_group(group, {})
            backend.create_log_stream(group, stream)
            self._ready = True

    @property
    def group_arn(self) -> str:
        return f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{self.group}"

    def write(self, line: str) -> str | None:
        """Write one line; returns its message (``None`` for an empty line dropped)."""
        message = line.rstrip("\n")
        if self.job:
            message = message.replace("\t", "#011")
        elif not message:
            return None
        runlog.mirror(self.group, self.stream, message)
        with self._lock:
            backend = moto_state.backend("logs")
            try:
                if not self._ready:
                    if self.group not in backend.groups:
                        backend.create_log_group(self.group, {})
                    if self.stream not in backend.groups[self.group].streams:
                        backend.create_log_stream(self.group, self.stream)
                    self._ready = True
                backend.put_log_events(self.group, self.stream,
                                       [{"timestamp": int(time.time() * 1000), "message": message or " "}])
            except Exception:  # noqa: BLE001 - the backend was reset under us: start again
                self._ready = False
        return message
