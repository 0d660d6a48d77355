"""Usage the meter measures itself, where no engine recorded it: S3 storage from object
listings (both backends), and on the sandbox backend the SageMaker jobs and endpoints of a lab,
rebuilt from describe/list calls on the resources tagged ``labkit:lab=<lab>``.

Both give the same usage events the offline engines record (:mod:`labkit.offline.usage`), for
:func:`labkit.cost.meter.price_events` to price.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .cleanup import TAG_KEY

if TYPE_CHECKING:
    from ..offline.usage import UsageEvent

# --- S3 measured by the meter -----------------------------------------------------------


def s3_storage_events(s3: Any, buckets: Iterable[str], *, since: float, now: float,
                      prefix: str = "") -> list[UsageEvent]:
    """``s3:storage`` events for the objects in ``buckets`` (under ``prefix``), per bucket and class.

    An object is billed from when it was last modified (or the lab start, whichever is
    later) to now: AWS accrues S3 storage in byte-hours.
    """
    events: list[UsageEvent] = []
    for bucket in buckets:
        totals: dict[str, list[float]] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                born = max(since, obj["LastModified"].timestamp())
                acc = totals.setdefault(obj.get("StorageClass") or "STANDARD", [0.0, 0.0, 0])
                acc[0] += obj["Size"]
                acc[1] += obj["Size"] * max(0.0, now - born)
                acc[2] += 1
        for storage_class, (size, byte_seconds, _) in totals.items():
            if size:
                events.append({"kind": "s3:storage", "resource": f"s3://{bucket}/{prefix}", "bytes": size,
                               "seconds": byte_seconds / size, "storage_class": storage_class})
    return events


# --- the sandbox: events from describe/list calls -------------------------------------------


def _ts(value: Any) -> float | None:
    return value.timestamp() if hasattr(value, "timestamp") else None


def _tagged(sm: Any, arn: str, lab_name: str) -> bool:
    try:
        tags = sm.list_tags(ResourceArn=arn).get("Tags", [])
    except Exception:
        return False
    return any(t.get("Key") == TAG_KEY and t.get("Value") == lab_name for t in tags)


def sandbox_events(sm: Any, lab_name: str, *, since: float, now: float | None = None) -> list[UsageEvent]:
    """Usage events rebuilt from SageMaker describe calls on resources tagged with ``lab_name``.

    Training uses ``BillableTimeInSeconds`` (AWS's own figure, spot included); processing
    and transform jobs their start and end times; endpoints are billed from creation to
    now while they exist (a deleted endpoint's past hours are not visible to describe
    calls, so the sandbox bill of a lab that already deleted its endpoint is incomplete
    for hosting: Cost Explorer shows it a day later).
    """
    now = time.time() if now is None else now
    after = {"CreationTimeAfter": since - 60}
    events: list[UsageEvent] = []
    for page in sm.get_paginator("list_training_jobs").paginate(**after):
        for job in page["TrainingJobSummaries"]:
            if not _tagged(sm, job["TrainingJobArn"], lab_name):
                continue
            d = sm.describe_training_job(TrainingJobName=job["TrainingJobName"])
            rc = d.get("ResourceConfig", {})
            start, end = _ts(d.get("TrainingStartTime")), _ts(d.get("TrainingEndTime"))
            seconds = d.get("TrainingTimeInSeconds") or ((end or now) - start if start else 0)
            event: UsageEvent = {"kind": "sagemaker:training", "resource": d["TrainingJobName"],
                     "instance_type": rc.get("InstanceType"), "instance_count": rc.get("InstanceCount", 1),
                     "seconds": seconds, "spot": bool(d.get("EnableManagedSpotTraining"))}
            if d.get("BillableTimeInSeconds") is not None:
                event["billable_seconds"] = d["BillableTimeInSeconds"]
                if not event["spot"]:
                    event["seconds"] = d["BillableTimeInSeconds"]
            events.append(event)
    for page in sm.get_paginator("list_processing_jobs").paginate(**after):
        for job in page["ProcessingJobSummaries"]:
            if not _tagged(sm, job["ProcessingJobArn"], lab_name):
                continue
            d = sm.describe_processing_job(ProcessingJobName=job["ProcessingJobName"])
            cc = d.get("ProcessingResources", {}).get("ClusterConfig", {})
            start, end = _ts(d.get("ProcessingStartTime")), _ts(d.get("ProcessingEndTime"))
            events.append({"kind": "sagemaker:processing", "resource": d["ProcessingJobName"],
                           "instance_type": cc.get("InstanceType"), "instance_count": cc.get("InstanceCount", 1),
                           "seconds": ((end or now) - start) if start else 0})
    for page in sm.get_paginator("list_transform_jobs").paginate(**after):
        for job in page["TransformJobSummaries"]:
            if not _tagged(sm, job["TransformJobArn"], lab_name):
                continue
            d = sm.describe_transform_job(TransformJobName=job["TransformJobName"])
            tr = d.get("TransformResources", {})
            start, end = _ts(d.get("TransformStartTime")), _ts(d.get("TransformEndTime"))
            events.append({"kind": "sagemaker:transform", "resource": d["TransformJobName"],
                           "instance_type": tr.get("InstanceType"), "instance_count": tr.get("InstanceCount", 1),
                           "seconds": ((end or now) - start) if start else 0})
    for page in sm.get_paginator("list_endpoints").paginate():
        for ep in page["Endpoints"]:
            if not _tagged(sm, ep["EndpointArn"], lab_name):
                continue
            d = sm.describe_endpoint(EndpointName=ep["EndpointName"])
            config = sm.describe_endpoint_config(EndpointConfigName=d["EndpointConfigName"])
            start = _ts(d.get("CreationTime")) or since
            for variant in config.get("ProductionVariants", []):
                if variant.get("InstanceType"):
                    events.append({"kind": "sagemaker:hosting", "resource": ep["EndpointName"],
                                   "instance_type": variant["InstanceType"],
                                   "instance_count": variant.get("InitialInstanceCount", 1),
                                   "start": start, "end": now})
    return events
