"""Moving data between S3 (moto's) and a job's local folders, and writing its logs.

Channels are staged in File mode: every object under the channel's S3 prefix is copied
to ``input/data/<channel>``, a distinct shard per host for ``ShardedByS3Key``. Outputs are
packed as the platform packs them (``model.tar.gz``, ``output.tar.gz``), checkpoints
synced file by file. Logs go to moto's CloudWatch Logs backend directly.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

from .. import ACCOUNT_ID, REGION, on_reset, runlog, s3_location

LOG_GROUP_TRAINING = "/aws/sagemaker/TrainingJobs"
LOG_GROUP_PROCESSING = "/aws/sagemaker/ProcessingJobs"

_client_lock = threading.Lock()
_client: list[Any] = []


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


def list_objects(uri: str) -> list[str]:
    """Keys under an S3 prefix (empty if the bucket or the prefix does not exist)."""
    bucket, prefix = s3_location.split(uri)
    keys: list[str] = []
    try:
        for page in s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
    except s3().exceptions.NoSuchBucket:
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
    keys = list_objects(uri)[shard::shards]
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


class LogStream:
    """A CloudWatch Logs stream in moto's backend that a job writes its lines to.

    Tabs are written as ``#011``, as the training platform's log shipper writes them,
    so metric regexes written for AWS (``#011validation-auc:...``) match.
    """

    def __init__(self, group: str, stream: str):
        from moto.logs.models import logs_backends

        self.group, self.stream = group, stream
        self._backend = logs_backends[ACCOUNT_ID][REGION]
        self._lock = threading.Lock()
        if group not in self._backend.groups:
            with contextlib.suppress(Exception):  # created concurrently by another job
                self._backend.create_log_group(group, {})
        self._backend.create_log_stream(group, stream)

    def write(self, line: str) -> str:
        message = line.rstrip("\n").replace("\t", "#011")
        runlog.mirror(self.group, self.stream, message)
        event = {"timestamp": int(time.time() * 1000), "message": message or " "}
        with self._lock:
            self._backend.put_log_events(self.group, self.stream, [event])
        return message
