"""S3 and CloudWatch Logs as the hosting engine sees them: moto's backends, in-process.

The engine acts as the SageMaker service: it reads model artifacts and writes capture
files, async results and transform outputs straight into the embedded S3, and the model
server's output into CloudWatch Logs, without going through botocore (so a model
server's log line or a captured record costs microseconds, not a request).
"""

from __future__ import annotations

import threading
import time

from .. import ACCOUNT_ID, REGION, runlog, s3_location


def _s3():
    from moto.s3.models import s3_backends

    return s3_backends[ACCOUNT_ID]["aws"]


def get(uri: str) -> bytes:
    """The object's bytes; ``KeyError`` naming the URI when it does not exist."""
    bucket, key = s3_location.split(uri)
    try:
        obj = _s3().get_object(bucket, key)
    except Exception as err:  # moto's MissingBucket
        raise KeyError(uri) from err
    if obj is None:
        raise KeyError(uri)
    return obj.value


def put(uri: str, data: bytes, content_type: str | None = None) -> None:
    bucket, key = s3_location.split(uri)
    obj = _s3().put_object(bucket, key, data)
    if content_type:
        obj.set_metadata({"Content-Type": content_type})


def list_keys(uri: str) -> list[str]:
    """Keys under an ``s3://bucket/prefix`` (sorted)."""
    bucket, prefix = s3_location.split(uri)
    try:
        keys = _s3().get_bucket(bucket).keys
    except Exception as err:
        raise KeyError(uri) from err
    return sorted(k for k in keys if k.startswith(prefix) and not k.endswith("/"))


class LogStream:
    """One CloudWatch Logs stream (``/aws/sagemaker/Endpoints/<name>``, ``<variant>/<id>``)."""

    def __init__(self, group: str, stream: str):
        self.group, self.stream = group, stream
        self._lock = threading.Lock()
        self._ready = False

    @property
    def group_arn(self) -> str:
        return f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{self.group}"

    def _backend(self):
        from moto.logs.models import logs_backends

        return logs_backends[ACCOUNT_ID][REGION]

    def write(self, message: str) -> None:
        message = message.rstrip("\n")
        if not message:
            return
        runlog.mirror(self.group, self.stream, message)
        with self._lock:
            backend = self._backend()
            try:
                if not self._ready:
                    if self.group not in backend.groups:
                        backend.create_log_group(self.group, {})
                    if self.stream not in backend.groups[self.group].streams:
                        backend.create_log_stream(self.group, self.stream)
                    self._ready = True
                backend.put_log_events(self.group, self.stream,
                                       [{"timestamp": int(time.time() * 1000), "message": message}])
            except Exception:  # noqa: BLE001 - the backend was reset under us: start again
                self._ready = False
