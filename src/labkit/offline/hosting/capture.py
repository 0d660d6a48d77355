"""Endpoint data capture: the JSON Lines records SageMaker writes for Model Monitor.

Each sampled request becomes one line (``captureData.endpointInput/endpointOutput`` with
``observedContentType``, ``mode``, ``data``, ``encoding``; ``eventMetadata`` with
``eventId``, ``inferenceTime`` and ``inferenceId``; ``eventVersion`` ``"0"``) in
``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-mmm>-<uuid>.jsonl``.
AWS buffers records for a few minutes before writing a file; here each record is
written at once: the current file is rewritten with the new line appended, and a new
file begins every :data:`MAX_FILE_RECORDS` records or :data:`MAX_FILE_BYTES` (so a
request never rewrites more than that), and at each new hour.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
import threading
import uuid
from typing import Any

from .. import storage

MAX_FILE_RECORDS = 100
MAX_FILE_BYTES = 256 * 1024
DEFAULT_CSV = ("text/csv",)
DEFAULT_JSON = ("application/json",)


class DataCapture:
    """Sampling and writing for one endpoint's ``DataCaptureConfig``."""

    def __init__(self, config: dict[str, Any], endpoint: str, rng: random.Random | None = None):
        self.enabled = bool(config.get("EnableCapture", True))
        self.percentage = int(config.get("InitialSamplingPercentage", 0))
        self.destination = config["DestinationS3Uri"].rstrip("/")
        modes = {o["CaptureMode"] for o in config.get("CaptureOptions") or []}
        self.capture_input, self.capture_output = "Input" in modes, "Output" in modes
        header = config.get("CaptureContentTypeHeader") or {}
        self.csv_types = tuple(header.get("CsvContentTypes") or DEFAULT_CSV)
        self.json_types = tuple(header.get("JsonContentTypes") or DEFAULT_JSON)
        self.kms_key_id = config.get("KmsKeyId")
        self.endpoint = endpoint
        self.rng = rng or random.Random()
        self._lock = threading.Lock()
        self._current: str | None = None  # the file being written, its lines and size
        self._lines: list[str] = []
        self._bytes = 0
        self.records_written = 0

    def describe(self) -> dict[str, Any]:
        """The ``DataCaptureConfig`` summary DescribeEndpoint returns."""
        out = {"EnableCapture": self.enabled, "CaptureStatus": "Started" if self.enabled else "Stopped",
               "CurrentSamplingPercentage": self.percentage, "DestinationS3Uri": self.destination}
        if self.kms_key_id:
            out["KmsKeyId"] = self.kms_key_id
        return out

    def sampled(self) -> bool:
        return self.enabled and self.rng.random() * 100 < self.percentage

    def _encode(self, data: bytes, content_type: str, mode: str) -> dict[str, str]:
        base = (content_type or "").split(";")[0].strip()
        if base in self.csv_types or base in self.json_types:
            try:
                text, encoding = data.decode("utf-8"), ("CSV" if base in self.csv_types else "JSON")
            except UnicodeDecodeError:
                text, encoding = base64.b64encode(data).decode(), "BASE64"
        else:
            text, encoding = base64.b64encode(data).decode(), "BASE64"
        return {"observedContentType": content_type or "", "mode": mode, "data": text, "encoding": encoding}

    def record(self, variant: str, request: bytes, request_type: str, response: bytes, response_type: str,
               inference_id: str | None = None, when: dt.datetime | None = None) -> str | None:
        """Write one capture record (if sampled); returns the S3 URI it went to."""
        if not self.sampled():
            return None
        when = when or dt.datetime.now(dt.UTC)
        capture: dict[str, Any] = {}
        if self.capture_input:
            capture["endpointInput"] = self._encode(request, request_type, "INPUT")
        if self.capture_output:
            capture["endpointOutput"] = self._encode(response, response_type, "OUTPUT")
        meta = {"eventId": str(uuid.uuid4()), "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
        if inference_id:
            meta["inferenceId"] = inference_id
        line = json.dumps({"captureData": capture, "eventMetadata": meta, "eventVersion": "0"})
        folder = f"{self.destination}/{self.endpoint}/{variant}/{when:%Y/%m/%d/%H}"
        with self._lock:
            current = self._current if self._current and self._current.startswith(folder + "/") else None
            if current is not None and (len(self._lines) >= MAX_FILE_RECORDS or self._bytes + len(line) > MAX_FILE_BYTES):
                current = None
            if current is None:
                current = f"{folder}/{when:%M-%S}-{when.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
                self._current, self._lines, self._bytes = current, [], 0
            self._lines.append(line)
            self._bytes += len(line) + 1
            storage.put(current, ("\n".join(self._lines) + "\n").encode(), "application/jsonl")
            self.records_written += 1
        return current
