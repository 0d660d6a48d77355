"""What the offline engines used, for the cost meter.

Engines record one event per billable use as it happens (a training job's billable
seconds, an endpoint's InService interval, Bedrock tokens...). The meter in
:mod:`labkit.cost` prices these events; it does not need to know how an engine works.

An event is a :class:`UsageEvent`: ``kind`` (what is billed, e.g. ``"sagemaker:training"``,
``"sagemaker:hosting"``, ``"bedrock:tokens"``), ``resource`` (the name or ARN it belongs to),
``at`` (epoch seconds, added by :func:`record`) and the quantities that kind needs
(:class:`UsageFields`; which kind needs which: :mod:`labkit.cost.meter`'s docstring). It is a
``TypedDict``: a plain dict at run time, so it crosses the control API as JSON and is saved
with the account, and an engine may update an open interval's fields (``end``, ``seconds``).
"""

from __future__ import annotations

import threading
import time
from typing import Any, NotRequired, TypedDict, Unpack

from . import dispatch, persistence


class UsageFields(TypedDict, total=False):
    """The quantities an event may carry (each kind uses some)."""

    # Instances: SageMaker jobs, endpoints, EC2 instances and Batch jobs.
    instance_type: str
    instance_count: float  # a Batch job's share of an instance may be a fraction
    seconds: float
    billable_seconds: float
    training_seconds: float
    spot: bool
    warm_pool: bool
    status: str
    variant: str
    # Intervals (epoch seconds): open while ``end`` is None.
    start: float
    end: float | None
    # Serverless inference.
    memory_mb: int
    max_concurrency: int
    requests: int
    bytes_in: int
    bytes_out: int
    # Bedrock.
    model_id: str
    input_tokens: int
    output_tokens: int
    images: int
    operation: str
    guardrail_id: str
    version: str
    source: str
    topicPolicyUnits: int
    contentPolicyUnits: int
    wordPolicyUnits: int
    sensitiveInformationPolicyUnits: int
    sensitiveInformationPolicyFreeUnits: int
    contextualGroundingPolicyUnits: int
    # Storage, queries and streams.
    bytes: float
    storage_class: str
    bytes_scanned: int
    workgroup: str
    statement_type: str
    vectors: int
    bytes_processed: int
    mode: str
    shard_count: int
    records: int
    payload_units: int
    billed_bytes: int
    # CloudWatch, KMS, Glue, CloudTrail, EMR.
    namespace: str
    hour: int
    hours: float
    metrics: int
    alarm_type: str
    alarm_metrics: int
    period: int
    high_resolution: bool
    statistic: str
    key_spec: str
    description: str
    rotation: int
    object_type: str
    database: str
    management_events: bool
    data_events: bool
    copy: int
    name: str
    nodes: list[dict[str, Any]]
    # A line the bill shows with the row.
    note: str


class UsageEvent(UsageFields):
    """One billable use: what, of which resource, when, and its quantities."""

    kind: str
    resource: str
    at: NotRequired[float]  # when it was recorded; the usage the meter measures itself has none


_lock = threading.Lock()
_events: list[UsageEvent] = []


def record(kind: str, resource: str, **fields: Unpack[UsageFields]) -> UsageEvent:
    """Append a usage event and return it (callers may update an open interval's fields)."""
    event = UsageEvent(kind=kind, resource=resource, at=time.time(), **fields)
    with _lock:
        _events.append(event)
    return event


@dispatch.backend_function
def events(kind: str | None = None) -> list[UsageEvent]:
    """The recorded events (of ``kind``), read where the engines run (the shared backend too)."""
    with _lock:
        return [e.copy() for e in _events if kind is None or e["kind"] == kind]


def reset() -> None:
    with _lock:
        _events.clear()


def _restore(saved: list[UsageEvent]) -> None:
    with _lock:
        _events[:] = saved


@persistence.on_restore
def _close_open_intervals(stopped_at: float) -> None:
    """An interval still open when the backend stopped ends then: a stopped backend bills nothing."""
    with _lock:
        for event in _events:
            if "end" in event and event["end"] is None:
                event["end"] = stopped_at


persistence.keep("usage", lambda: events(), _restore)
