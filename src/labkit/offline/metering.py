"""Usage events for the services moto answers alone: Kinesis, KMS, Glue, CloudWatch, CloudTrail, EMR, S3 Vectors.

moto keeps these services' records but bills nothing, and a lab deletes what it created
before it asks for its bill, so the meter cannot measure them at the end as it measures
S3. This module watches the calls as they succeed (``dispatch.after`` hooks) and records
usage events (:mod:`labkit.offline.usage`) that :mod:`labkit.cost.meter` prices:

- resources billed while they exist are *open intervals* (``start``, ``end`` None until
  deleted, like an endpoint's InService interval): a Kinesis stream's shards
  (``kinesis:stream``), a KMS customer managed key until it is scheduled for deletion
  (``kms:key``), CloudWatch alarms (``cloudwatch:alarm``) and dashboards
  (``cloudwatch:dashboard``), Glue Data Catalog objects (``glue:object``), a trail while it
  logs (``cloudtrail:trail``), an S3 Vectors index's stored bytes (``s3vectors:storage``,
  a new interval at every change), an EMR cluster (``emr:cluster``, recorded only: nothing
  runs offline, so the meter names it and does not price it);
- a CloudWatch custom metric is recorded once for each clock hour in which data is sent
  to it (``cloudwatch:metric``): AWS prorates custom metrics by the hour they are sent;
- uses: records put on and read from a stream (``kinesis:put``, ``kinesis:get``, with the
  stream's capacity mode, so that each event prices on its own), vectors put
  (``s3vectors:put``), and the billed API requests of CloudWatch, KMS and the Glue Data
  Catalog (``cloudwatch:requests``, ``cloudwatch:metrics-requested``, ``kms:requests``,
  ``glue:requests``).

Only successful calls are hooked (``dispatch.after`` runs on 2xx answers), as AWS bills
them. Athena queries are metered by :mod:`labkit.offline.athena`, Bedrock guardrail
assessments and S3 Vectors queries by :mod:`labkit.bedrock`.
"""

from __future__ import annotations

import math
import re
import threading
import time
from typing import Any, Unpack

from . import ACCOUNT_ID, REGION, dispatch, on_reset, persistence, usage

_lock = threading.Lock()
_open: dict[tuple[str, str], usage.UsageEvent] = {}  # (kind, resource) -> the open interval event
_metric_hours: set[tuple[Any, ...]] = set()  # (namespace, name, dimensions, hour) already recorded
_streams: dict[str, str] = {}  # stream name -> capacity mode
_trails: dict[str, dict[str, Any]] = {}  # trail name -> {"data_events": bool}
# Open intervals (_open) end at a stop (persistence closes them in the meter); the rest is kept.
persistence.keep_contents("metering", _metric_hours, _streams, _trails)

# CloudWatch requests billed per 1,000 (the pricing page's list); GetMetricData per metric requested.
CLOUDWATCH_BILLED = ("GetMetricStatistics", "ListMetrics", "PutMetricData", "GetDashboard", "ListDashboards",
                     "PutDashboard", "DeleteDashboards")
GLUE_CATALOG = re.compile(r"(Database|Table|Partition|Catalog|UserDefinedFunction|ColumnStatistics|Connection)")


@on_reset
def _reset() -> None:
    with _lock:
        _open.clear()
        _metric_hours.clear()
        _streams.clear()
        _trails.clear()


def _operations(service: str) -> list[str]:
    from botocore.session import get_session

    return list(get_session().get_service_model(service).operation_names)


def open_interval(kind: str, resource: str, **fields: Unpack[usage.UsageFields]) -> usage.UsageEvent:
    """Start billing ``resource`` (closing an interval it already has open)."""
    close_interval(kind, resource)
    fields["start"], fields["end"] = time.time(), None
    event = usage.record(kind, resource, **fields)
    with _lock:
        _open[(kind, resource)] = event
    return event


def close_interval(kind: str, resource: str) -> usage.UsageEvent | None:
    """Stop billing ``resource``; the closed event, or None when none was open."""
    with _lock:
        event = _open.pop((kind, resource), None)
    if event is not None and event.get("end") is None:
        event["end"] = time.time()
    return event


def is_open(kind: str, resource: str) -> bool:
    with _lock:
        return (kind, resource) in _open


def open_resources(kind: str) -> list[str]:
    with _lock:
        return [r for k, r in _open if k == kind]


# --- Kinesis Data Streams ---------------------------------------------------------------------------


def _stream_name(params: dict[str, Any]) -> str:
    return params.get("StreamName") or str(params.get("StreamARN", "")).rsplit("/", 1)[-1]


def _record_size(record: dict[str, Any]) -> int:
    data = record.get("Data") or b""
    data = data.encode() if isinstance(data, str) else bytes(data)
    return len(data) + len(str(record.get("PartitionKey", "")).encode())


def _open_stream(name: str, mode: str, shards: int) -> None:
    with _lock:
        _streams[name] = mode
    open_interval("kinesis:stream", name, mode=mode, shard_count=shards)


@dispatch.after("kinesis", "CreateStream")
def _kinesis_created(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    mode = (params.get("StreamModeDetails") or {}).get("StreamMode") or "PROVISIONED"
    _open_stream(params["StreamName"], mode, int(params.get("ShardCount") or (4 if mode == "ON_DEMAND" else 1)))


@dispatch.after("kinesis", "DeleteStream")
def _kinesis_deleted(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    close_interval("kinesis:stream", _stream_name(params))


@dispatch.after("kinesis", "UpdateShardCount")
def _kinesis_resharded(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    name = _stream_name(params)
    _open_stream(name, _streams.get(name, "PROVISIONED"), int(parsed.get("TargetShardCount")
                                                               or params["TargetShardCount"]))


@dispatch.after("kinesis", "UpdateStreamMode")
def _kinesis_mode(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    import boto3

    name = _stream_name(params)
    summary = boto3.client("kinesis", region_name=REGION).describe_stream_summary(StreamName=name)
    _open_stream(name, params["StreamModeDetails"]["StreamMode"],
                 int(summary["StreamDescriptionSummary"].get("OpenShardCount") or 1))


def _record_puts(name: str, sizes: list[int]) -> None:
    if not sizes:
        return
    usage.record("kinesis:put", name, mode=_streams.get(name, "PROVISIONED"), records=len(sizes),
                 payload_units=sum(max(1, math.ceil(s / (25 * 1024))) for s in sizes),
                 billed_bytes=sum(max(1, math.ceil(s / 1024)) * 1024 for s in sizes), bytes=sum(sizes))


@dispatch.after("kinesis", "PutRecord")
def _kinesis_put(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    _record_puts(_stream_name(params), [_record_size(params)])


@dispatch.after("kinesis", "PutRecords")
def _kinesis_put_many(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    results = parsed.get("Records") or [{}] * len(params.get("Records") or [])
    sizes = [_record_size(r) for r, out in zip(params.get("Records") or [], results, strict=False)
             if not out.get("ErrorCode")]
    _record_puts(_stream_name(params), sizes)


@dispatch.after("kinesis", "GetRecords")
def _kinesis_get(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    records = parsed.get("Records") or []
    if not records:
        return
    name = _stream_name(params)
    if not name:
        from moto.kinesis.utils import decompose_shard_iterator

        name = decompose_shard_iterator(params["ShardIterator"])[0]
    sizes = [len(r.get("Data") or b"") + len(str(r.get("PartitionKey", "")).encode()) for r in records]
    usage.record("kinesis:get", name, mode=_streams.get(name, "PROVISIONED"), records=len(sizes),
                 billed_bytes=sum(max(1, math.ceil(s / 1024)) * 1024 for s in sizes), bytes=sum(sizes))


# --- KMS -------------------------------------------------------------------------------------------


def _key_id(value: str) -> str:
    return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value


@dispatch.after("kms", "CreateKey")
def _kms_created(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    meta = parsed.get("KeyMetadata") or {}
    open_interval("kms:key", meta["KeyId"], key_spec=meta.get("KeySpec") or params.get("KeySpec", "SYMMETRIC_DEFAULT"),
                  description=meta.get("Description", ""))


@dispatch.after("kms", "ScheduleKeyDeletion")
def _kms_scheduled(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    key = _key_id(params["KeyId"])  # no charge for a key pending deletion
    close_interval("kms:key", key)
    for resource in open_resources("kms:key"):
        if resource.startswith(f"{key} (rotation "):
            close_interval("kms:key", resource)


@dispatch.after("kms", "CancelKeyDeletion")
def _kms_cancelled(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    open_interval("kms:key", _key_id(params["KeyId"]))


@dispatch.after("kms", "RotateKeyOnDemand")
def _kms_rotated(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    key = _key_id(params["KeyId"])  # the first two rotations each add a key-month (May 2024 pricing)
    done = sum(1 for r in open_resources("kms:key") if r.startswith(f"{key} (rotation "))
    if done < 2:
        open_interval("kms:key", f"{key} (rotation {done + 1})", rotation=done + 1)


def _counter(kind: str, resource: str, operation: str) -> Any:
    def hook(params: dict[str, Any], parsed: dict[str, Any]) -> None:
        usage.record(kind, resource, operation=operation, requests=1)

    return hook


for _name in _operations("kms"):
    dispatch.after("kms", _name)(_counter("kms:requests", "KMS API", _name))


# --- Glue Data Catalog ----------------------------------------------------------------------------


def _glue_object(kind: str, *parts: str) -> str:
    return {"database": "{0}", "table": "{0}.{1}", "partition": "{0}.{1}/{2}"}[kind].format(*parts)


def _partition(values: list[str]) -> str:
    return "/".join(values)


def _close_under(prefix: str) -> None:
    for resource in open_resources("glue:object"):
        if resource == prefix or resource.startswith(prefix + ".") or resource.startswith(prefix + "/"):
            close_interval("glue:object", resource)


@dispatch.after("glue", "CreateDatabase")
def _glue_db(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    name = params["DatabaseInput"]["Name"].lower()
    open_interval("glue:object", name, object_type="database", database=name)


@dispatch.after("glue", "CreateTable")
def _glue_table(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    db, name = params["DatabaseName"].lower(), params["TableInput"]["Name"].lower()
    open_interval("glue:object", _glue_object("table", db, name), object_type="table", database=db)


def _open_partitions(db: str, table: str, values_list: list[list[str]]) -> None:
    for values in values_list:
        open_interval("glue:object", _glue_object("partition", db, table, _partition(values)),
                      object_type="partition", database=db)


@dispatch.after("glue", "CreatePartition")
def _glue_partition(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    _open_partitions(params["DatabaseName"].lower(), params["TableName"].lower(),
                     [params["PartitionInput"]["Values"]])


@dispatch.after("glue", "BatchCreatePartition")
def _glue_partitions(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    failed = {tuple(e.get("PartitionValues") or []) for e in parsed.get("Errors") or []}
    _open_partitions(params["DatabaseName"].lower(), params["TableName"].lower(),
                     [p["Values"] for p in params["PartitionInputList"] if tuple(p["Values"]) not in failed])


@dispatch.after("glue", "DeletePartition")
def _glue_partition_deleted(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    close_interval("glue:object", _glue_object("partition", params["DatabaseName"].lower(),
                                               params["TableName"].lower(), _partition(params["PartitionValues"])))


@dispatch.after("glue", "BatchDeletePartition")
def _glue_partitions_deleted(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    for p in params["PartitionsToDelete"]:
        close_interval("glue:object", _glue_object("partition", params["DatabaseName"].lower(),
                                                   params["TableName"].lower(), _partition(p["Values"])))


@dispatch.after("glue", "DeleteTable")
def _glue_table_deleted(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    _close_under(_glue_object("table", params["DatabaseName"].lower(), params["Name"].lower()))


@dispatch.after("glue", "BatchDeleteTable")
def _glue_tables_deleted(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    for name in params["TablesToDelete"]:
        _close_under(_glue_object("table", params["DatabaseName"].lower(), name.lower()))


@dispatch.after("glue", "DeleteDatabase")
def _glue_db_deleted(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    _close_under(params["Name"].lower())  # AWS deletes the database's tables and partitions with it


for _name in _operations("glue"):
    if GLUE_CATALOG.search(_name):
        dispatch.after("glue", _name)(_counter("glue:requests", "Glue Data Catalog API", _name))


# --- CloudWatch ------------------------------------------------------------------------------------


def _dims(dimensions: list[dict[str, str]] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((d["Name"], d["Value"]) for d in dimensions or []))


@dispatch.after("cloudwatch", "PutMetricData")
def _cw_metric_data(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    hour = int(time.time() // 3600)
    namespace = params["Namespace"]
    for datum in params.get("MetricData") or []:
        key = (namespace, datum["MetricName"], _dims(datum.get("Dimensions")), hour)
        with _lock:
            if key in _metric_hours:
                continue
            _metric_hours.add(key)
        dims = ",".join(f"{k}={v}" for k, v in key[2])
        usage.record("cloudwatch:metric", f"{namespace}/{datum['MetricName']}" + (f"[{dims}]" if dims else ""),
                     namespace=namespace, hour=hour, hours=1)


def _alarm_metrics(params: dict[str, Any]) -> tuple[int, int]:
    """(alarm metrics, shortest period) of a PutMetricAlarm request."""
    queries = params.get("Metrics")
    if not queries:
        return 1, int(params.get("Period") or 60)
    stats = [q for q in queries if "MetricStat" in q]
    periods = [int(q["MetricStat"].get("Period") or 60) for q in stats] + [int(q["Period"]) for q in queries
                                                                          if q.get("Period")]
    metrics = max(1, len(stats))
    if any("ANOMALY_DETECTION_BAND" in str(q.get("Expression", "")) for q in queries):
        metrics *= 3  # the metric and the band's two bounds
    return metrics, min(periods or [60])


@dispatch.after("cloudwatch", "PutMetricAlarm")
def _cw_alarm(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    metrics, period = _alarm_metrics(params)
    open_interval("cloudwatch:alarm", params["AlarmName"], alarm_type="metric", alarm_metrics=metrics,
                  period=period, high_resolution=period < 60,
                  statistic=params.get("ExtendedStatistic") or params.get("Statistic") or "metric math")


@dispatch.after("cloudwatch", "PutCompositeAlarm")
def _cw_composite(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    open_interval("cloudwatch:alarm", params["AlarmName"], alarm_type="composite", alarm_metrics=1,
                  period=60, high_resolution=False)


@dispatch.after("cloudwatch", "DeleteAlarms")
def _cw_alarms_deleted(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    for name in params.get("AlarmNames") or []:
        close_interval("cloudwatch:alarm", name)


@dispatch.after("cloudwatch", "PutDashboard")
def _cw_dashboard(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    if not is_open("cloudwatch:dashboard", params["DashboardName"]):  # an update is the same dashboard
        open_interval("cloudwatch:dashboard", params["DashboardName"])


@dispatch.after("cloudwatch", "DeleteDashboards")
def _cw_dashboards_deleted(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    for name in params.get("DashboardNames") or []:
        close_interval("cloudwatch:dashboard", name)


for _name in CLOUDWATCH_BILLED:
    dispatch.after("cloudwatch", _name)(_counter("cloudwatch:requests", "CloudWatch API", _name))


@dispatch.after("cloudwatch", "GetMetricData")
def _cw_get_metric_data(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    queries = params.get("MetricDataQueries") or []
    usage.record("cloudwatch:metrics-requested", "CloudWatch API", operation="GetMetricData",
                 metrics=max(1, sum(1 for q in queries if "MetricStat" in q)))


# --- CloudTrail ------------------------------------------------------------------------------------


def _trail_name(value: str) -> str:
    return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value


def _start_trail(name: str) -> None:
    logging_others = [r for r in open_resources("cloudtrail:trail") if r != name]
    info = _trails.setdefault(name, {"data_events": False})
    open_interval("cloudtrail:trail", name, management_events=True, data_events=info["data_events"],
                  copy=1 + len(logging_others))


@dispatch.after("cloudtrail", "CreateTrail")
def _trail_created(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    with _lock:
        _trails[params["Name"]] = {"data_events": False}


@dispatch.after("cloudtrail", "StartLogging")
def _trail_started(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    _start_trail(_trail_name(params["Name"]))


@dispatch.after("cloudtrail", "StopLogging")
def _trail_stopped(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    close_interval("cloudtrail:trail", _trail_name(params["Name"]))


@dispatch.after("cloudtrail", "DeleteTrail")
def _trail_deleted(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    name = _trail_name(params["Name"])
    close_interval("cloudtrail:trail", name)
    with _lock:
        _trails.pop(name, None)


@dispatch.after("cloudtrail", "PutEventSelectors")
def _trail_selectors(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    name = _trail_name(params["TrailName"])
    data = any(s.get("DataResources") for s in params.get("EventSelectors") or []) or any(
        f.get("Field") == "eventCategory" and "Data" in (f.get("Equals") or [])
        for s in params.get("AdvancedEventSelectors") or [] for f in s.get("FieldSelectors") or [])
    with _lock:
        _trails.setdefault(name, {})["data_events"] = data
    if is_open("cloudtrail:trail", name):
        _start_trail(name)


# --- EMR (recorded, not run) -----------------------------------------------------------------------


def _emr_nodes(instances: dict[str, Any]) -> list[dict[str, Any]]:
    if instances.get("InstanceGroups"):
        return [{"role": g["InstanceRole"], "instance_type": g["InstanceType"], "count": int(g["InstanceCount"]),
                 "market": g.get("Market", "ON_DEMAND")} for g in instances["InstanceGroups"]]
    if instances.get("InstanceFleets"):
        nodes = []
        for f in instances["InstanceFleets"]:
            first = (f.get("InstanceTypeConfigs") or [{}])[0]
            for market, target in (("ON_DEMAND", f.get("TargetOnDemandCapacity")), ("SPOT", f.get("TargetSpotCapacity"))):
                if target:
                    nodes.append({"role": f["InstanceFleetType"], "instance_type": first.get("InstanceType"),
                                  "count": math.ceil(int(target) / int(first.get("WeightedCapacity") or 1)),
                                  "market": market})
        return nodes
    count = int(instances.get("InstanceCount") or 1)
    nodes = [{"role": "MASTER", "instance_type": instances.get("MasterInstanceType"), "count": 1,
              "market": "ON_DEMAND"}]
    if count > 1:
        nodes.append({"role": "CORE", "instance_type": instances.get("SlaveInstanceType"), "count": count - 1,
                      "market": "ON_DEMAND"})
    return nodes


@dispatch.after("emr", "RunJobFlow")
def _emr_started(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    open_interval("emr:cluster", parsed["JobFlowId"], name=params.get("Name", ""),
                  nodes=_emr_nodes(params.get("Instances") or {}))


@dispatch.after("emr", "TerminateJobFlows")
def _emr_terminated(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    for cluster in params.get("JobFlowIds") or []:
        close_interval("emr:cluster", cluster)


# --- S3 Vectors: stored bytes and puts --------------------------------------------------------------


def _index_arn(params: dict[str, Any]) -> str:
    if params.get("indexArn"):
        return params["indexArn"]
    return f"arn:aws:s3vectors:{REGION}:{ACCOUNT_ID}:bucket/{params.get('vectorBucketName')}/index/{params.get('indexName')}"


def vector_bytes(key: str, dimension: int, metadata: Any) -> int:
    """Logical size of one vector as S3 Vectors bills it: 4 bytes per dimension, the key, the metadata."""
    from labkit.bedrock.vectors import _size

    return 4 * int(dimension) + len(key.encode()) + (_size(metadata) if metadata else 0)


def _index_state(params: dict[str, Any]) -> None:
    """Re-open the index's storage interval at its bytes now (moto's records are the truth)."""
    from labkit.bedrock.vectors import moto_backend

    arn = _index_arn(params)
    try:
        idx = moto_backend().get_index(params.get("vectorBucketName"), params.get("indexName"),
                                        params.get("indexArn"))
    except Exception:
        close_interval("s3vectors:storage", arn)
        return
    stored = sum(vector_bytes(k, idx.dimension, v.metadata) for k, v in idx.vectors.items())
    open_interval("s3vectors:storage", idx.index_arn, bytes=stored, vectors=len(idx.vectors))


@dispatch.after("s3vectors", "PutVectors")
def _vectors_put(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    from labkit.bedrock.vectors import moto_backend

    idx = moto_backend().get_index(params.get("vectorBucketName"), params.get("indexName"), params.get("indexArn"))
    vectors = params.get("vectors") or []
    usage.record("s3vectors:put", idx.index_arn, vectors=len(vectors),
                 bytes=sum(vector_bytes(v["key"], idx.dimension, v.get("metadata")) for v in vectors))
    _index_state(params)


@dispatch.after("s3vectors", "DeleteVectors")
def _vectors_deleted(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    _index_state(params)


@dispatch.after("s3vectors", "DeleteIndex")
def _index_deleted(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    close_interval("s3vectors:storage", _index_arn(params))
