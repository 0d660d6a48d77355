"""Offline Cost Explorer and Budgets spend, from this session's metered usage at catalogue prices.

moto's ``ce.get_cost_and_usage`` returns whatever a test queued through its ``/moto-api`` (empty
otherwise) and its budgets report an actual spend of ``"0"`` whatever ran. Here both are
answered from the meter instead: every usage event the engines recorded in this session
(:mod:`labkit.offline.usage`) plus the S3 storage the lab holds, each priced with the price
catalogue exactly as ``lab.bill()`` prices it (:func:`labkit.cost.meter.price_events`).

- ``ce`` ``GetCostAndUsage``: ``DAILY`` or ``MONTHLY`` periods; metrics ``UnblendedCost``,
  ``BlendedCost``, ``AmortizedCost``, ``NetUnblendedCost``, ``NetAmortizedCost`` (all equal: no
  discounts, reservations or savings plans exist offline), ``UsageQuantity`` and
  ``NormalizedUsageAmount`` (instance-hours times AWS's size normalisation factor); up to two
  ``GroupBy`` of ``DIMENSION`` (``SERVICE``, ``USAGE_TYPE``, ``INSTANCE_TYPE``, ``REGION``,
  ``LINKED_ACCOUNT``, ``RECORD_TYPE``, ``PURCHASE_TYPE``) or ``TAG``; ``Filter`` expressions with
  ``Dimensions``, ``Tags``, ``And``, ``Or``, ``Not`` and the match options. Amounts are strings,
  periods are clipped to the request, the current month is ``Estimated``, as AWS answers.
- Tags: the tags a SageMaker training, processing or transform job, endpoint or notebook was
  created with (or given by ``AddTags``), and S3 bucket tags. As on AWS a user-defined tag only
  groups costs once it is activated as a cost allocation tag (``UpdateCostAllocationTagsStatus``;
  ``ListCostAllocationTags`` lists the keys seen); before that its costs fall under ``Key$``.
- ``budgets`` ``DescribeBudget(s)``: a ``COST`` budget's ``CalculatedSpend.ActualSpend`` is the
  session's cost in the budget's period under its ``CostFilters`` (``Service``, ``TagKeyValue``).
  No forecast is given (AWS gives none without enough history either).

Honest differences from AWS: the ledger is this session only, costs appear at once (AWS: up
to 24 hours later), tag activation applies to all of the session's usage (AWS: from activation
on, unless a backfill is requested), each usage is dated by when it was recorded (an endpoint:
when it came into service), and HOURLY granularity, cost categories and forecasts are refused.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from . import ACCOUNT_ID, REGION, account_created, dispatch, on_reset, persistence, usage
from .dispatch import AWSError

# The SERVICE dimension's values, as Cost Explorer spells them (S3 Vectors is billed under S3).
SERVICES = {"sagemaker": "Amazon SageMaker", "bedrock": "Amazon Bedrock", "s3": "Amazon Simple Storage Service",
            "s3vectors": "Amazon Simple Storage Service", "athena": "Amazon Athena", "kinesis": "Amazon Kinesis",
            "cloudwatch": "AmazonCloudWatch", "kms": "AWS Key Management Service", "glue": "AWS Glue",
            "cloudtrail": "AWS CloudTrail", "emr": "Amazon Elastic MapReduce"}
COST_METRICS = ("UnblendedCost", "BlendedCost", "AmortizedCost", "NetUnblendedCost", "NetAmortizedCost")
METRICS = (*COST_METRICS, "UsageQuantity", "NormalizedUsageAmount")
DIMENSIONS = ("SERVICE", "USAGE_TYPE", "INSTANCE_TYPE", "REGION", "LINKED_ACCOUNT", "RECORD_TYPE", "PURCHASE_TYPE")
# AWS's instance size normalisation factors (EC2 User Guide, "Instance size flexibility").
SIZE_FACTORS = {"nano": 0.25, "micro": 0.5, "small": 1, "medium": 2, "large": 4, "xlarge": 8}
TAGGED_CREATES = {"CreateTrainingJob": "TrainingJobName", "CreateProcessingJob": "ProcessingJobName",
                  "CreateTransformJob": "TransformJobName", "CreateEndpoint": "EndpointName",
                  "CreateNotebookInstance": "NotebookInstanceName", "CreateHyperParameterTuningJob":
                  "HyperParameterTuningJobName"}

_lock = threading.Lock()
_tags: dict[str, dict[str, str]] = {}  # resource name (lower case) -> tags
_tag_status: dict[str, dict[str, Any]] = {}  # tag key -> {"Status": ..., "LastUpdatedDate": ...}
persistence.keep_contents("cost explorer tags", _tags, _tag_status)


@on_reset
def _reset() -> None:
    with _lock:
        _tags.clear()
        _tag_status.clear()


def _remember(name: str, tags: list[dict[str, str]] | None) -> None:
    if not tags:
        return
    with _lock:
        _tags.setdefault(name.lower(), {}).update({t["Key"]: t["Value"] for t in tags})
        for t in tags:
            _tag_status.setdefault(t["Key"], {"Status": "Inactive", "LastUsedDate": _today().isoformat()})


def _register_tag_hooks() -> None:
    for operation, name_field in TAGGED_CREATES.items():
        def hook(params: dict[str, Any], parsed: dict[str, Any], _field: str = name_field) -> None:
            _remember(str(params.get(_field, "")), params.get("Tags"))

        dispatch.after("sagemaker", operation)(hook)


_register_tag_hooks()


@dispatch.after("sagemaker", "AddTags")
def _add_tags(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    _remember(str(params.get("ResourceArn", "")).rsplit("/", 1)[-1], params.get("Tags"))


@dispatch.after("s3", "PutBucketTagging")
def _bucket_tags(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    _remember(f"s3:{params.get('Bucket', '')}", (params.get("Tagging") or {}).get("TagSet"))


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


# --- the ledger ---------------------------------------------------------------------------------


@dataclass
class LineItem:
    """One priced use: what Cost Explorer aggregates."""

    day: dt.date
    service: str
    usage_type: str
    instance_type: str
    cost: float
    quantity: float
    unit: str
    resource: str
    tags: dict[str, str] = field(default_factory=dict)
    normalized: float = 0.0

    def dimension(self, key: str) -> str:
        return {"SERVICE": self.service, "USAGE_TYPE": self.usage_type, "INSTANCE_TYPE": self.instance_type,
                "REGION": REGION, "LINKED_ACCOUNT": ACCOUNT_ID, "RECORD_TYPE": "Usage",
                "PURCHASE_TYPE": "Spot" if "spot" in self.usage_type.lower() else "On Demand"}[key]


def _size_factor(instance_type: str) -> float:
    size = instance_type.rsplit(".", 1)[-1]
    if size in SIZE_FACTORS:
        return SIZE_FACTORS[size]
    match = re.fullmatch(r"([0-9]+)xlarge", size)
    return 8.0 * int(match.group(1)) if match else 0.0


def _usage_type(event: usage.UsageEvent, row: Any) -> str:
    from ..cost import catalogue as cat

    catalogue = cat.load()
    kind = event["kind"]
    try:
        if kind in ("sagemaker:training", "sagemaker:processing", "sagemaker:transform", "sagemaker:hosting",
                    "sagemaker:notebook"):
            usage_name = kind.split(":")[1]
            sku = catalogue.sagemaker_instance(event["instance_type"], usage_name).sku
            return sku + (" (spot)" if "spot" in row.kind else "")
        if kind == "sagemaker:serverless":
            return (catalogue.serverless(int(event["memory_mb"])).sku if row.kind == "serverless"
                    else catalogue.sagemaker_other("serverless-data").sku)
        if kind == "bedrock:tokens":
            usage_name = {"input tokens": "input-tokens", "output tokens": "output-tokens"}.get(row.unit, "images")
            return catalogue.bedrock(event["model_id"], usage_name).sku
        if kind == "s3:storage":
            return catalogue.s3_storage(event.get("storage_class") or "STANDARD").sku
    except (KeyError, cat.PriceNotFound):
        pass
    return row.unit


def ledger(now: float | None = None) -> list[LineItem]:
    """Every priced use of this account since it was created or reset, S3 storage included.

    The meter measures S3 storage itself, from the objects in every bucket (recorded
    ``s3:storage`` events would count it twice); it accrues from the account's creation.
    """
    import boto3

    from ..cost import measured, meter

    now = time.time() if now is None else now
    since = account_created()
    events = [e for e in usage.events() if e["kind"] != "s3:storage"]
    s3 = boto3.client("s3", region_name=REGION)
    buckets = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    for e in measured.s3_storage_events(s3, buckets, since=since, now=now):
        e.setdefault("at", since)
        events.append(e)
    items = []
    for event in events:
        rows, _ = meter.price_events([event], now=now)
        when = float(event.get("start") or event.get("at") or now)
        kind_service = event["kind"].split(":")[0]
        resource = str(event.get("resource", ""))
        tag_name = f"s3:{resource.removeprefix('s3://').split('/')[0]}" if kind_service == "s3" else resource
        with _lock:
            tags = dict(_tags.get(tag_name.lower(), {}))
        for row in rows:
            itype = str(event.get("instance_type") or "")
            item = LineItem(day=dt.datetime.fromtimestamp(when, dt.UTC).date(),
                            service=SERVICES.get(kind_service, kind_service), usage_type=_usage_type(event, row),
                            instance_type=itype, cost=row.cost, quantity=row.quantity, unit=_unit(row.unit),
                            resource=resource, tags=tags)
            item.normalized = item.quantity * _size_factor(itype) if itype and item.unit == "Hrs" else 0.0
            items.append(item)
    return items


def _unit(meter_unit: str) -> str:
    if "instance-hours" in meter_unit:
        return "Hrs"
    if meter_unit.startswith("seconds"):
        return "Second"
    if "GB-months" in meter_unit:
        return "GB-Mo"
    if meter_unit.startswith("GB"):
        return "GB"
    return "N/A"


# --- filters ------------------------------------------------------------------------------------


def _values_match(have: str | None, values: list[str], options: list[str]) -> bool:
    if "ABSENT" in options:
        return not have
    if have is None:
        return False
    insensitive = "CASE_INSENSITIVE" in options
    h = have.lower() if insensitive else have
    for v in values:
        v = v.lower() if insensitive else v
        if "STARTS_WITH" in options and h.startswith(v) or "ENDS_WITH" in options and h.endswith(v) \
                or "CONTAINS" in options and v in h:
            return True
        if not set(options) & {"STARTS_WITH", "ENDS_WITH", "CONTAINS"} and h == v:
            return True
    return False


def _active_tag(item: LineItem, key: str) -> str | None:
    if _tag_status.get(key, {}).get("Status") != "Active":
        return None
    return item.tags.get(key)


def _matches(item: LineItem, expr: dict[str, Any]) -> bool:
    keys = [k for k in ("Or", "And", "Not", "Dimensions", "Tags", "CostCategories") if expr.get(k)]
    if len(keys) != 1:
        raise AWSError("ValidationException", "Expression must have exactly one of Or, And, Not, Dimensions, Tags "
                       "or CostCategories at each level")
    key = keys[0]
    if key == "Or":
        return any(_matches(item, e) for e in expr["Or"])
    if key == "And":
        return all(_matches(item, e) for e in expr["And"])
    if key == "Not":
        return not _matches(item, expr["Not"])
    if key == "CostCategories":
        raise AWSError("ValidationException", "Cost categories are not emulated offline: filter by Dimensions or "
                       "Tags (on the sandbox backend cost categories work)")
    spec = expr[key]
    options = list(spec.get("MatchOptions") or ["EQUALS"])
    if key == "Dimensions":
        dim = spec.get("Key")
        if dim not in DIMENSIONS:
            raise AWSError("ValidationException", f"Dimension {dim} is not available offline; use one of "
                           f"{', '.join(DIMENSIONS)}")
        return _values_match(item.dimension(dim), list(spec.get("Values") or []), options)
    return _values_match(_active_tag(item, str(spec.get("Key", ""))), list(spec.get("Values") or []), options)


# --- periods ------------------------------------------------------------------------------------


def _date(value: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise AWSError("ValidationException", f"{name} {value!r} must be a date in the form YYYY-MM-DD") from None


def _periods(start: dt.date, end: dt.date, granularity: str) -> list[tuple[dt.date, dt.date]]:
    out = []
    cursor = start
    while cursor < end:
        if granularity == "DAILY":
            nxt = cursor + dt.timedelta(days=1)
        else:
            days = calendar.monthrange(cursor.year, cursor.month)[1]
            nxt = min(dt.date(cursor.year, cursor.month, days) + dt.timedelta(days=1), end)
        out.append((cursor, min(nxt, end)))
        cursor = nxt
    return out


def _amount(value: float) -> str:
    return f"{value:.10f}".rstrip("0").rstrip(".") or "0"


def _metrics(items: list[LineItem], metrics: list[str]) -> dict[str, dict[str, str]]:
    out = {}
    for m in metrics:
        if m in COST_METRICS:
            out[m] = {"Amount": _amount(sum(i.cost for i in items)), "Unit": "USD"}
        else:
            units = {i.unit for i in items}
            value = sum(i.normalized if m == "NormalizedUsageAmount" else i.quantity for i in items)
            out[m] = {"Amount": _amount(value), "Unit": units.pop() if len(units) == 1 else "N/A"}
    return out


def _group_key(item: LineItem, group: dict[str, str]) -> str:
    if group["Type"] == "DIMENSION":
        return item.dimension(group["Key"])
    return f"{group['Key']}${_active_tag(item, group['Key']) or ''}"


def _check_request(params: dict[str, Any]) -> tuple[dt.date, dt.date, str, list[str], list[dict[str, str]]]:
    period = params["TimePeriod"]
    start, end = _date(period["Start"], "Start"), _date(period["End"], "End")
    if start >= end:
        raise AWSError("ValidationException", "Start date (and hour) should be before end date (and hour)")
    granularity = params["Granularity"]
    if granularity == "HOURLY":
        raise AWSError("ValidationException", "HOURLY granularity is not emulated offline (on AWS it needs the "
                       "hourly opt-in in Cost Explorer's preferences); use DAILY or MONTHLY")
    if granularity not in ("DAILY", "MONTHLY"):
        raise AWSError("ValidationException", f"Granularity {granularity!r}: use DAILY, MONTHLY or HOURLY")
    metrics = list(params["Metrics"])
    bad = [m for m in metrics if m not in METRICS]
    if bad or not metrics:
        raise AWSError("ValidationException", f"Invalid metric(s) {bad or '[]'}: use {', '.join(METRICS)}")
    groups = list(params.get("GroupBy") or [])
    if len(groups) > 2:
        raise AWSError("ValidationException", "GroupBy accepts at most two groups (for example SERVICE and a tag)")
    for g in groups:
        if g.get("Type") not in ("DIMENSION", "TAG"):
            raise AWSError("ValidationException", f"GroupBy Type {g.get('Type')!r}: use DIMENSION or TAG "
                           "(COST_CATEGORY is not emulated offline)")
        if g["Type"] == "DIMENSION" and g.get("Key") not in DIMENSIONS:
            raise AWSError("ValidationException", f"GroupBy dimension {g.get('Key')!r} is not available offline; use "
                           f"one of {', '.join(DIMENSIONS)}")
        if not g.get("Key"):
            raise AWSError("ValidationException", "Every GroupBy needs a Key")
    return start, end, granularity, metrics, groups


@dispatch.operation("ce", "GetCostAndUsage")
def get_cost_and_usage(params: dict[str, Any]) -> dict[str, Any]:
    start, end, granularity, metrics, groups = _check_request(params)
    items = ledger()
    if params.get("Filter"):
        items = [i for i in items if _matches(i, params["Filter"])]
    today = _today()
    results = []
    for p_start, p_end in _periods(start, end, granularity):
        inside = [i for i in items if p_start <= i.day < p_end]
        result: dict[str, Any] = {"TimePeriod": {"Start": p_start.isoformat(), "End": p_end.isoformat()},
                                  "Total": {}, "Groups": [], "Estimated": p_end > today}
        if not groups:
            result["Total"] = _metrics(inside, metrics)
        else:
            buckets: dict[tuple[str, ...], list[LineItem]] = defaultdict(list)
            for i in inside:
                buckets[tuple(_group_key(i, g) for g in groups)].append(i)
            result["Groups"] = [{"Keys": list(k), "Metrics": _metrics(v, metrics)} for k, v in sorted(buckets.items())]
        results.append(result)
    out: dict[str, Any] = {"ResultsByTime": results, "DimensionValueAttributes": []}
    if groups:
        out["GroupDefinitions"] = [{"Type": g["Type"], "Key": g["Key"]} for g in groups]
    return out


@dispatch.operation("ce", "GetCostForecast")
def get_cost_forecast(params: dict[str, Any]) -> dict[str, Any]:
    raise AWSError("DataUnavailableException", "Cost forecasts need weeks of history; the offline backend has one "
                   "session and gives none (on AWS forecasts need about two weeks of data as well)")


# --- cost allocation tags -------------------------------------------------------------------------


@dispatch.operation("ce", "ListCostAllocationTags")
def list_cost_allocation_tags(params: dict[str, Any]) -> dict[str, Any]:
    wanted = set(params.get("TagKeys") or [])
    with _lock:
        tags = [{"TagKey": k, "Type": "UserDefined", **v} for k, v in sorted(_tag_status.items())
                if (not wanted or k in wanted) and (not params.get("Status") or v["Status"] == params["Status"])]
    if params.get("Type") == "AWSGenerated":
        tags = []
    return {"CostAllocationTags": tags}


@dispatch.operation("ce", "UpdateCostAllocationTagsStatus")
def update_cost_allocation_tags_status(params: dict[str, Any]) -> dict[str, Any]:
    errors = []
    with _lock:
        for entry in params["CostAllocationTagsStatus"]:
            key, status = entry["TagKey"], entry["Status"]
            if key not in _tag_status:
                errors.append({"TagKey": key, "Code": "TagKeysNotFoundException",
                               "Message": f"Tag key {key!r} has not been seen on any resource yet: tag a resource "
                                          "first (on AWS a new key appears up to 24 hours after it is applied)"})
                continue
            if status not in ("Active", "Inactive"):
                raise AWSError("ValidationException", f"Status {status!r}: use Active or Inactive")
            _tag_status[key].update(Status=status, LastUpdatedDate=_today().isoformat())
    return {"Errors": errors}


# --- budgets' actual spend ------------------------------------------------------------------------


def _budget_spend(budget: dict[str, Any]) -> float:
    period = budget.get("TimePeriod") or {}
    start = period.get("Start")
    start_day = start.date() if isinstance(start, dt.datetime) else _today().replace(day=1)
    if budget.get("TimeUnit", "MONTHLY") == "MONTHLY":
        start_day = max(start_day, _today().replace(day=1))
    filters = budget.get("CostFilters") or {}
    total = 0.0
    for item in ledger():
        if item.day < start_day:
            continue
        if filters.get("Service") and item.service not in filters["Service"]:
            continue
        pairs = [v.removeprefix("user:").split("$", 1) for v in filters.get("TagKeyValue") or []]
        if pairs and not any(item.tags.get(k) == v and _active_tag(item, k) for k, v in pairs):
            continue
        total += item.cost
    return total


def _fill_spend(budget: dict[str, Any]) -> None:
    if budget.get("BudgetType") != "COST":
        return
    unit = (budget.get("BudgetLimit") or {}).get("Unit", "USD")
    budget["CalculatedSpend"] = {"ActualSpend": {"Amount": _amount(_budget_spend(budget)), "Unit": unit}}


@dispatch.after("budgets", "DescribeBudget")
def _describe_budget(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    if "Budget" in parsed:
        _fill_spend(parsed["Budget"])


@dispatch.after("budgets", "DescribeBudgets")
def _describe_budgets(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    for budget in parsed.get("Budgets") or []:
        _fill_spend(budget)
