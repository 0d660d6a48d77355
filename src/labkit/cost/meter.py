"""The meter: what a lab's resources would cost on AWS, priced from the catalogue.

Offline, the engines record usage events (:mod:`labkit.offline.usage`); on the sandbox
backend the same events are rebuilt from describe/list calls on the resources tagged
``labkit:lab=<lab>`` (:func:`.measured.sandbox_events`). Either way :func:`price_events` turns them
into :class:`BillRow` s. The billing rules, as AWS states them on its pricing pages:

- SageMaker training, processing, transform, hosting and notebook instances are billed
  per second of instance time (no minimum here) at the hourly rate of the instance type,
  times the instance count. Hosting is billed from ``start`` to ``end`` of each
  InService interval (an endpoint still up is billed to now).
- Managed spot training: AWS bills ``BillableTimeInSeconds`` at the on-demand rate and
  reports the saving as ``1 - BillableTimeInSeconds / TrainingTimeInSeconds``. An event
  with ``billable_seconds`` is billed on those; one with ``spot`` and only ``seconds`` is
  billed on ``seconds x (1 - typical family saving)`` from ``data/pricing/spot.json``,
  and the row shows what on-demand would have cost.
- Serverless inference: per second of inference duration at the configured memory, plus
  data processed (``bytes_in`` + ``bytes_out``) per GB. There is no per-request fee; the
  request count is shown in the row's note.
- Bedrock: per 1,000 input and output tokens (per image for image models).
- S3 storage: GB-month by storage class, prorated over the lab's duration (a month is
  730 hours, a GB is 2^30 bytes, as AWS bills). Tiny, and shown so that it is seen.
- Athena: per TB scanned by each SELECT or CTAS, rounded up to the MB with a 10 MB minimum
  per query (DDL, partition management and failed queries are free).
- Kinesis Data Streams: provisioned shard-hours from creation to deletion (an open interval
  is billed to now) and PUT payload units (25 KB chunks per record); on-demand streams by
  stream-hour and GB in and out (records rounded up to 1 KB).
- Monthly charges (KMS customer managed keys, CloudWatch alarms and dashboards, Glue Data
  Catalog objects, S3 Vectors storage) are prorated over the seconds each existed, as S3
  storage is (a month is 730 hours). CloudWatch custom metrics are billed 1/730 of a
  metric-month for each hour in which data was sent to them.
- Requests (CloudWatch API, KMS, Glue Data Catalog, S3 Vectors queries), CloudTrail events,
  Bedrock guardrail text units (1,000 characters each, per policy type) and S3 Vectors data
  put and processed: per unit at the catalogue's rate. Free allowances (CloudWatch's 10
  metrics, KMS's 20,000 requests, Glue's first million objects...) are per account and month,
  not per lab: they are not deducted, and each row's note names the one that applies.
- An EMR cluster is recorded but not run offline: it is listed as not priced, with the
  hourly rate it would have on AWS.

Event kinds and fields (``usage.record(kind, resource, **fields)``):

==========================  =====================================================================
``sagemaker:training``      instance_type, instance_count, seconds, spot, and for spot either
                            billable_seconds (seconds = wall clock) or training_seconds
                            (seconds = billable, the training engine's form)
``sagemaker:processing``    instance_type, instance_count, seconds
``sagemaker:transform``     instance_type, instance_count, seconds
``sagemaker:notebook``      instance_type, seconds
``sagemaker:hosting``       instance_type, instance_count, start, [end] (epoch seconds)
``sagemaker:serverless``    memory_mb, seconds, requests, [bytes_in, bytes_out]
``bedrock:tokens``          model_id, input_tokens, output_tokens, [images]
``s3:storage``              bytes, seconds, [storage_class] (offline, the meter measures S3 itself
                            and ignores recorded s3:storage events)
``athena:query``            bytes_scanned, [workgroup]
``kinesis:stream``          mode (PROVISIONED | ON_DEMAND), shard_count, start, [end]
``kinesis:put``             mode, records, payload_units, billed_bytes (records rounded up to 1 KB)
``kinesis:get``             mode, records, billed_bytes (billed in on-demand mode only)
``cloudwatch:metric``       namespace, hours (one event per metric per clock hour data was sent)
``cloudwatch:alarm``        alarm_type (metric | composite), alarm_metrics, high_resolution, start, [end]
``cloudwatch:dashboard``    start, [end]
``cloudwatch:requests``     requests, operation; ``cloudwatch:metrics-requested``: metrics
``kms:key``                 start, [end] (end: scheduled for deletion); ``kms:requests``: requests
``glue:object``             object_type, database, start, [end]; ``glue:requests``: requests
``cloudtrail:trail``        copy (1: the free first copy of management events), data_events, start, [end]
``emr:cluster``             nodes [{role, instance_type, count, market}], start, [end] (not priced)
``ec2:instance``            instance_type, [instance_count], start, [end], [spot] (EC2 instances, Batch jobs)
``bedrock:guardrail``       guardrail_id and the assessment's units: topicPolicyUnits,
                            contentPolicyUnits, wordPolicyUnits, sensitiveInformationPolicyUnits,
                            sensitiveInformationPolicyFreeUnits, contextualGroundingPolicyUnits
``s3vectors:storage``       bytes, start, [end] (an index's logical bytes between two changes)
``s3vectors:put``           bytes, vectors; ``s3vectors:query``: vectors, bytes_processed
==========================  =====================================================================
"""

from __future__ import annotations

import html
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import catalogue as cat
from .measured import s3_storage_events, sandbox_events

if TYPE_CHECKING:
    from ..offline.usage import UsageEvent

HOURS_PER_MONTH = 730.0
MONTH_SECONDS = HOURS_PER_MONTH * 3600
GIB = 1024**3
MIB = 1024**2
TIB = 1024**4
INSTANCE_KINDS = {"sagemaker:training": "training", "sagemaker:processing": "processing",
                  "sagemaker:transform": "transform", "sagemaker:notebook": "notebook",
                  "sagemaker:hosting": "hosting"}


@dataclass
class BillRow:
    """One line of a bill."""

    resource: str
    kind: str
    quantity: float
    unit: str
    unit_price: float
    price_unit: str
    cost: float
    source: str
    read_on: str
    verified: bool
    on_demand_cost: float | None = None
    note: str = ""

    @property
    def savings(self) -> float:
        return 0.0 if self.on_demand_cost is None else self.on_demand_cost - self.cost


@dataclass(repr=False)
class Bill:
    """What a lab would have cost on AWS: rows, total, spot savings; a table and a chart."""

    lab: str
    backend: str
    region: str
    started_at: float
    ended_at: float
    rows: list[BillRow] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(r.cost for r in self.rows)

    @property
    def savings(self) -> float:
        return sum(r.savings for r in self.rows)

    def by_kind(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for row in self.rows:
            out[row.kind] = out.get(row.kind, 0.0) + row.cost
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"lab": self.lab, "backend": self.backend, "region": self.region, "started_at": self.started_at,
                "ended_at": self.ended_at, "total_usd": self.total, "spot_savings_usd": self.savings,
                "by_kind": self.by_kind(), "rows": [asdict(r) for r in self.rows], "unpriced": self.unpriced,
                "note": "Priced from data/pricing/ (on-demand, us-east-1 unless stated); rows marked "
                        "unverified use recalled prices. Per-second billing for instances."}

    def to_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, default=str) + "\n")
        return path

    # --- display ----------------------------------------------------------------------

    def _lines(self) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = []
        for r in self.rows:
            out.append((r.resource, r.kind, f"{_num(r.quantity)} {r.unit}", f"${r.unit_price:.8g}/{r.price_unit}",
                        _usd(r.cost), f"{_short(r.source)} {r.read_on}{'' if r.verified else ' (unverified)'}"))
        return out

    def __str__(self) -> str:
        head = ("resource", "kind", "quantity", "unit price", "cost", "price source, date")
        lines = [head, *self._lines()]
        widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
        text = [f"Bill for lab {self.lab!r} ({self.backend}, {self.region}, "
                f"{(self.ended_at - self.started_at) / 60:.1f} min)"]
        for i, line in enumerate(lines):
            text.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
            if i == 0:
                text.append("  ".join("-" * w for w in widths))
        text.append(f"Total: {_usd(self.total)}" + (f"  (spot saved {_usd(self.savings)})" if self.savings else ""))
        for item in self.unpriced:
            text.append(f"Not priced: {item}")
        return "\n".join(text)

    __repr__ = __str__  # a notebook cell that ends with ``lab.bill()`` shows the table, not a dataclass dump

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("resource", "kind", "quantity", "unit price", "cost", "price source"))
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in line) + "</tr>" for line in self._lines())
        extra = f" (spot saved {_usd(self.savings)})" if self.savings else ""
        unpriced = "".join(f"<p>Not priced: {html.escape(u)}</p>" for u in self.unpriced)
        return (f"<div><b>Bill for lab {html.escape(self.lab)}</b> ({self.backend}, {self.region})"
                f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
                f"<tfoot><tr><td colspan='4'><b>Total</b></td><td><b>{_usd(self.total)}</b>{extra}</td>"
                f"<td></td></tr></tfoot></table>{unpriced}</div>")

    def plot(self, ax: Any = None) -> Any:
        """A horizontal bar chart of cost per resource (matplotlib ``Axes``)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 0.4 * max(len(self.rows), 2) + 1))
        labels = [f"{r.resource} ({r.kind})" for r in self.rows] or ["(nothing billed)"]
        costs = [r.cost for r in self.rows] or [0.0]
        kinds = sorted({r.kind for r in self.rows})
        colours = {k: f"C{i % 10}" for i, k in enumerate(kinds)}
        ax.barh(labels, costs, color=[colours.get(r.kind, "C0") for r in self.rows] or ["C0"])
        ax.invert_yaxis()
        ax.set_xlabel("USD (on AWS, at catalogue prices)")
        ax.set_title(f"Lab {self.lab}: {_usd(self.total)}")
        for i, value in enumerate(costs):
            ax.text(value, i, f" {_usd(value)}", va="center", fontsize=8)
        return ax


def _usd(value: float) -> str:
    if value == 0:
        return "$0.00"
    if abs(value) < 0.000001:
        return f"${value:.2e}"
    if abs(value) < 0.01:
        return f"${value:.6f}"
    return f"${value:,.2f}"


def _short(url: str) -> str:
    return url.split("://", 1)[-1].rstrip("/")


def _num(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.6g}"


# --- pricing events ---------------------------------------------------------------------


def _row(resource: str, kind: str, quantity: float, unit: str, price: cat.Price, cost: float,
         **extra: Any) -> BillRow:
    return BillRow(resource=resource, kind=kind, quantity=quantity, unit=unit, unit_price=price.price_usd,
                   price_unit=price.unit, cost=cost, source=price.source, read_on=price.read_on,
                   verified=price.verified, **extra)


def _instance_rows(events: list[UsageEvent], catalogue: cat.Catalogue, region: str, now: float) -> list[BillRow]:
    rows = []
    grouped: dict[tuple[str, str, str, bool], dict[str, float]] = {}
    for e in events:
        usage = INSTANCE_KINDS[e["kind"]]
        count = int(e.get("instance_count") or 1)
        if usage == "hosting":
            end = e.get("end") or now
            seconds = max(0.0, float(end) - float(e["start"]))
        else:
            seconds = float(e.get("seconds") or 0.0)
        spot = bool(e.get("spot")) and usage == "training"
        key = (e["resource"], usage, e["instance_type"], spot)
        acc = grouped.setdefault(key, {"instance_seconds": 0.0, "billable": 0.0, "explicit": 0.0})
        if spot and e.get("billable_seconds") is not None:  # seconds: wall clock; billable: AWS's figure
            acc["instance_seconds"] += seconds * count
            acc["billable"] += float(e["billable_seconds"]) * count
            acc["explicit"] = 1.0
        elif spot and e.get("training_seconds") is not None:  # the engine's form: seconds already billable
            acc["instance_seconds"] += float(e["training_seconds"]) * count
            acc["billable"] += seconds * count
            acc["explicit"] = 1.0
        else:
            acc["instance_seconds"] += seconds * count
            acc["billable"] += seconds * count
    for (resource, usage, itype, spot), acc in grouped.items():
        price = catalogue.sagemaker_instance(itype, usage, region)
        hours = acc["instance_seconds"] / 3600
        if not spot:
            rows.append(_row(resource, usage, hours, f"{itype} instance-hours", price, hours * price.price_usd))
            continue
        on_demand = hours * price.price_usd
        if acc["explicit"]:
            billable_h = acc["billable"] / 3600
            note = "managed spot: BillableTimeInSeconds at the on-demand rate"
        else:
            savings, _ = catalogue.spot_savings(itype)
            billable_h = hours * (1 - savings)
            note = f"managed spot: typical {savings:.0%} saving for the family (data/pricing/spot.json)"
        rows.append(_row(resource, "training (spot)", billable_h, f"{itype} billable instance-hours", price,
                         billable_h * price.price_usd, on_demand_cost=on_demand, note=note))
    return rows


def _serverless_rows(events: list[UsageEvent], catalogue: cat.Catalogue, region: str) -> list[BillRow]:
    acc: dict[tuple[str, int], dict[str, float]] = {}
    for e in events:
        a = acc.setdefault((e["resource"], int(e["memory_mb"])), {"seconds": 0.0, "requests": 0, "bytes": 0.0})
        a["seconds"] += float(e.get("seconds") or 0.0)
        a["requests"] += int(e.get("requests") or 0)
        a["bytes"] += float(e.get("bytes_in") or 0) + float(e.get("bytes_out") or 0)
    rows = []
    for (resource, memory), a in acc.items():
        price = catalogue.serverless(memory, region)
        rows.append(_row(resource, "serverless", a["seconds"], f"seconds at {memory} MB", price,
                         a["seconds"] * price.price_usd, note=f"{a['requests']:.0f} requests (no per-request fee)"))
        if a["bytes"]:
            data = catalogue.sagemaker_other("serverless-data", region)
            gb = a["bytes"] / GIB
            rows.append(_row(resource, "serverless data", gb, "GB processed", data, gb * data.price_usd))
    return rows


def _bedrock_rows(events: list[UsageEvent], catalogue: cat.Catalogue, region: str) -> list[BillRow]:
    acc: dict[str, dict[str, float]] = {}
    for e in events:
        model = catalogue.base_model_id(e["model_id"])
        a = acc.setdefault(model, {"input": 0, "output": 0, "images": 0, "calls": 0})
        a["input"] += int(e.get("input_tokens") or 0)
        a["output"] += int(e.get("output_tokens") or 0)
        a["images"] += int(e.get("images") or 0)
        a["calls"] += 1
    rows = []
    for model, a in acc.items():
        for usage, qty, unit in (("input-tokens", a["input"], "input tokens"),
                                 ("output-tokens", a["output"], "output tokens"), ("images", a["images"], "images")):
            if not qty:
                continue
            price = catalogue.bedrock(model, usage, region)
            per = 1000.0 if price.unit == "1K tokens" else 1.0
            rows.append(_row(model, "bedrock", qty, unit, price, qty / per * price.price_usd,
                             note=f"{a['calls']:.0f} calls"))
    return rows


def _storage_rows(events: list[UsageEvent], catalogue: cat.Catalogue, region: str) -> list[BillRow]:
    rows = []
    for e in events:
        storage_class = e.get("storage_class") or "STANDARD"
        price = catalogue.s3_storage(storage_class, region)
        gb_month = float(e["bytes"]) / GIB * float(e["seconds"]) / 3600 / HOURS_PER_MONTH
        rows.append(_row(e["resource"], f"s3 {storage_class}", gb_month, "GB-months", price,
                         price.tiered_cost(gb_month), note=f"{int(e['bytes']):,} bytes for "
                                                           f"{float(e['seconds']) / 60:.1f} min"))
    return rows


# --- other services (data/pricing/services.json) ------------------------------------------------

Rule = Any  # (events, catalogue, region, now) -> list of BillRow, and str for what is named but not priced


def _seconds(e: UsageEvent, now: float) -> float:
    """Length of an interval event; one still open is billed to ``now``."""
    end = e.get("end") or now
    return max(0.0, float(end) - float(e["start"]))


def _size(n: float) -> str:
    for unit, size in (("TB", TIB), ("GB", GIB), ("MB", MIB), ("KB", 1024)):
        if n >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{n:,.0f} bytes"


def _athena_rows(events: list[UsageEvent], catalogue: cat.Catalogue, region: str, now: float) -> list[BillRow]:
    price = catalogue.service("AmazonAthena", "data-scanned", region)
    minimum, step = int(price.get("minimum_bytes", 10 * MIB)), int(price.get("round_bytes", MIB))
    acc: dict[str, list[float]] = {}
    for e in events:
        scanned = int(e.get("bytes_scanned") or 0)
        billed = max(minimum, -(-scanned // step) * step)
        a = acc.setdefault(e.get("workgroup") or "primary", [0, 0, 0])
        a[0] += 1
        a[1] += scanned
        a[2] += billed
    rows = []
    for workgroup, (queries, scanned_total, billed_total) in acc.items():
        tb = billed_total / TIB
        rows.append(_row(f"athena workgroup {workgroup}", "athena", tb, "TB scanned (billed)", price,
                         price.cost_of(tb), note=f"{queries:.0f} queries scanned {_size(scanned_total)}, billed "
                                                f"{billed_total / MIB:,.0f} MB (rounded up to the MB, 10 MB minimum "
                                                "per query)"))
    return rows


def _kinesis_stream_rows(events: list[UsageEvent], catalogue: cat.Catalogue, region: str,
                         now: float) -> list[BillRow]:
    acc: dict[tuple[str, str], float] = {}
    for e in events:
        mode = e.get("mode") or "PROVISIONED"
        hours = _seconds(e, now) / 3600 * (1 if mode == "ON_DEMAND" else int(e.get("shard_count") or 1))
        acc[(e["resource"], mode)] = acc.get((e["resource"], mode), 0.0) + hours
    rows = []
    for (stream, mode), hours in acc.items():
        if mode == "ON_DEMAND":
            price = catalogue.service("AmazonKinesis", "on-demand-stream-hour", region)
            rows.append(_row(stream, "kinesis stream (on-demand)", hours, "stream-hours", price, price.cost_of(hours)))
        else:
            price = catalogue.service("AmazonKinesis", "shard-hour", region)
            rows.append(_row(stream, "kinesis shards", hours, "shard-hours", price, price.cost_of(hours),
                             note="from creation to deletion (to now while the stream exists)"))
    return rows


def _kinesis_data_rows(events: list[UsageEvent], catalogue: cat.Catalogue, region: str,
                       now: float) -> list[BillRow]:
    acc: dict[tuple[str, str, str], list[float]] = {}
    for e in events:
        key = (e["resource"], e["kind"], e.get("mode") or "PROVISIONED")
        a = acc.setdefault(key, [0, 0, 0])
        a[0] += int(e.get("records") or 0)
        a[1] += int(e.get("payload_units") or 0)
        a[2] += int(e.get("billed_bytes") or 0)
    rows = []
    for (stream, kind, mode), (records, units, billed) in acc.items():
        if mode == "ON_DEMAND":
            usage_name = "on-demand-data-in" if kind == "kinesis:put" else "on-demand-data-out"
            price = catalogue.service("AmazonKinesis", usage_name, region)
            gb = billed / GIB
            rows.append(_row(stream, "kinesis data in" if kind == "kinesis:put" else "kinesis data out", gb, "GB",
                             price, price.cost_of(gb), note=f"{records:,.0f} records, each rounded up to 1 KB"))
        elif kind == "kinesis:put":
            price = catalogue.service("AmazonKinesis", "put-payload-units", region)
            rows.append(_row(stream, "kinesis PUT payload units", units, "PUT payload units", price,
                             price.cost_of(units), note=f"{records:,.0f} records in 25 KB units"))
        # provisioned GetRecords is free: no row
    return rows


def _cloudwatch_metric_rows(events: list[UsageEvent], catalogue: cat.Catalogue, region: str,
                            now: float) -> list[BillRow]:
    price = catalogue.service("AmazonCloudWatch", "custom-metric", region)
    acc: dict[str, tuple[set[str], float]] = {}
    for e in events:
        metrics, hours = acc.get(e.get("namespace") or "?", (set(), 0.0))
        metrics.add(e["resource"])
        acc[e.get("namespace") or "?"] = (metrics, hours + float(e.get("hours") or 1))
    rows = []
    for namespace, (metrics, hours) in acc.items():
        months = hours / HOURS_PER_MONTH
        rows.append(_row(f"cloudwatch {namespace}", "cloudwatch metrics", months, "metric-months", price,
                         price.cost_of(months), note=f"{len(metrics)} custom metrics, {hours:.0f} metric-hours "
                                                    "(billed for each hour data is sent; free tier: 10 metrics "
                                                    "per account)"))
    return rows


def _monthly_rows(label: str, unit: str, lookup: Rule, note: str = "") -> Rule:
    """A rule for resources billed per month while they exist, prorated by the second."""

    def rows_for(events: list[UsageEvent], catalogue: cat.Catalogue, region: str, now: float) -> list[BillRow]:
        acc: dict[tuple[str, str], tuple[cat.Price, float]] = {}
        for e in events:
            price, per = lookup(e, catalogue, region)
            _, months = acc.get((e["resource"], price.sku), (price, 0.0))
            acc[(e["resource"], price.sku)] = (price, months + _seconds(e, now) / MONTH_SECONDS * per)
        return [_row(resource, label, months, unit, price, price.cost_of(months), note=note)
                for (resource, _), (price, months) in acc.items()]

    return rows_for


def _alarm_price(e: UsageEvent, catalogue: cat.Catalogue, region: str) -> tuple[cat.Price, float]:
    if e.get("alarm_type") == "composite":
        return catalogue.service("AmazonCloudWatch", "alarm-composite", region), 1.0
    usage_name = "alarm-high-resolution" if e.get("high_resolution") else "alarm-standard"
    return catalogue.service("AmazonCloudWatch", usage_name, region), float(e.get("alarm_metrics") or 1)


def _request_rows(service_code: str, usage_name: str, label: str, what: str, field_name: str = "requests",
                  note: str = "") -> Rule:
    def rows_for(events: list[UsageEvent], catalogue: cat.Catalogue, region: str, now: float) -> list[BillRow]:
        price = catalogue.service(service_code, usage_name, region)
        acc: dict[str, dict[str, int]] = {}
        for e in events:
            ops = acc.setdefault(e["resource"], {})
            fields: Mapping[str, Any] = e  # field_name: which quantity this kind counts
            ops[e.get("operation") or "?"] = ops.get(e.get("operation") or "?", 0) + int(fields.get(field_name) or 1)
        rows = []
        for resource, ops in acc.items():
            n = sum(ops.values())
            top = ", ".join(f"{op} {c}" for op, c in sorted(ops.items(), key=lambda kv: -kv[1])[:4])
            rows.append(_row(resource, label, n, what, price, price.cost_of(n),
                             note=f"{top}{' ...' if len(ops) > 4 else ''}{'; ' + note if note else ''}"))
        return rows

    return rows_for


def _glue_object_rows(events: list[UsageEvent], catalogue: cat.Catalogue, region: str,
                      now: float) -> list[BillRow]:
    price = catalogue.service("AWSGlue", "catalog-objects", region)
    acc: dict[str, tuple[set[str], float]] = {}
    for e in events:
        objects, months = acc.get(e.get("database") or "?", (set(), 0.0))
        objects.add(e["resource"])
        acc[e.get("database") or "?"] = (objects, months + _seconds(e, now) / MONTH_SECONDS)
    return [_row(f"glue database {db}", "glue catalog objects", months, "object-months", price,
                 price.cost_of(months), note=f"{len(objects)} objects (database, tables, partitions); the first "
                                            "million objects per account and month are free")
            for db, (objects, months) in acc.items()]


def _trail_rows(events: list[UsageEvent], catalogue: cat.Catalogue, region: str,
                now: float) -> list[BillRow | str]:
    rows: list[BillRow | str] = []
    for e in events:
        if int(e.get("copy") or 1) == 1 and not e.get("data_events"):
            price = catalogue.service("AWSCloudTrail", "management-events-first-copy", region)
            hours = _seconds(e, now) / 3600
            rows.append(_row(e["resource"], "cloudtrail", hours, "hours logging", price, 0.0,
                             note="management events, first copy: free (S3 storage of the log files is billed "
                                  "as S3; offline no log files are delivered)"))
            continue
        what = "data events" if e.get("data_events") else "an additional copy of management events"
        usage_name = "data-events" if e.get("data_events") else "management-events-additional-copy"
        price = catalogue.service("AWSCloudTrail", usage_name, region)
        rows.append(f"{e['resource']} (cloudtrail): {what} are billed per event delivered "
                    f"(${price.price_usd:g} per {price.unit}); offline CloudTrail delivers no events, so they "
                    "cannot be counted")
    return rows


def _emr_rows(events: list[UsageEvent], catalogue: cat.Catalogue, region: str, now: float) -> list[str]:
    notes = []
    for e in events:
        hourly: float | None = 0.0
        parts = []
        for node in e.get("nodes") or []:
            itype, count = node.get("instance_type") or "?", int(node.get("count") or 0)
            parts.append(f"{count} {itype} {str(node.get('role', '')).lower()} "
                         f"({str(node.get('market', 'ON_DEMAND')).lower().replace('_', '-')})")
            try:
                ec2 = catalogue.ec2_instance(itype, region).price_usd
                if node.get("market") == "SPOT":
                    ec2 *= 1 - catalogue.spot_savings(itype)[0]
                if hourly is not None:
                    hourly += count * (ec2 + catalogue.emr_uplift(itype, region).price_usd)
            except cat.PriceNotFound:
                hourly = None
        rate = (f"about ${hourly:.2f} per hour (EC2 on-demand or typical Spot, plus the EMR charge per instance)"
                if hourly is not None else "EC2 plus the EMR charge per instance-hour")
        notes.append(f"EMR cluster {e['resource']} ({', '.join(parts) or 'no instances'}): recorded but not run "
                     f"offline (no instance starts, no Spark runs), so not billed. On AWS it would bill {rate}, "
                     "per second with a one-minute minimum, from provisioning until it terminates.")
    return notes


GUARDRAIL_POLICIES = (("topicPolicyUnits", "guardrail-denied-topics", "denied topics"),
                      ("contentPolicyUnits", "guardrail-content-filter", "content filters"),
                      ("wordPolicyUnits", "guardrail-word-filter", "word filters"),
                      ("sensitiveInformationPolicyUnits", "guardrail-sensitive-information", "PII"),
                      ("sensitiveInformationPolicyFreeUnits", "guardrail-sensitive-information-regex", "regexes"),
                      ("contextualGroundingPolicyUnits", "guardrail-contextual-grounding", "contextual grounding"))


def _guardrail_rows(events: list[UsageEvent], catalogue: cat.Catalogue, region: str,
                    now: float) -> list[BillRow]:
    acc: dict[str, dict[str, int]] = {}
    calls: dict[str, int] = {}
    for e in events:
        units = acc.setdefault(e["resource"], {})
        calls[e["resource"]] = calls.get(e["resource"], 0) + 1
        fields: Mapping[str, Any] = e  # the policies' units, by name
        for name, _, _ in GUARDRAIL_POLICIES:
            units[name] = units.get(name, 0) + int(fields.get(name) or 0)
    rows = []
    for guardrail, units in acc.items():
        for name, usage_name, label in GUARDRAIL_POLICIES:
            if not units[name]:
                continue
            price = catalogue.service("AmazonBedrock", usage_name, region)
            rows.append(_row(f"guardrail {guardrail}", f"guardrail {label}", units[name], "text units", price,
                             price.cost_of(units[name]),
                             note=f"{calls[guardrail]} assessments (1,000 characters a text unit)"))
    return rows


def _short_index(arn: str) -> str:
    return "s3vectors " + arn.split(":bucket/", 1)[-1].replace("/index/", "/")


def _vector_storage_rows(events: list[UsageEvent], catalogue: cat.Catalogue, region: str,
                         now: float) -> list[BillRow]:
    price = catalogue.service("AmazonS3", "vectors-storage", region)
    acc: dict[str, float] = {}
    for e in events:
        acc[e["resource"]] = acc.get(e["resource"], 0.0) + float(e.get("bytes") or 0) / GIB * _seconds(e, now) \
            / MONTH_SECONDS
    return [_row(_short_index(arn), "s3vectors storage", gb_months, "GB-months", price, price.cost_of(gb_months))
            for arn, gb_months in acc.items()]


def _vector_put_rows(events: list[UsageEvent], catalogue: cat.Catalogue, region: str,
                     now: float) -> list[BillRow]:
    price = catalogue.service("AmazonS3", "vectors-put", region)
    acc: dict[str, list[float]] = {}
    for e in events:
        a = acc.setdefault(e["resource"], [0, 0])
        a[0] += float(e.get("bytes") or 0)
        a[1] += int(e.get("vectors") or 0)
    return [_row(_short_index(arn), "s3vectors put", b / GIB, "GB put", price, price.cost_of(b / GIB),
                 note=f"{n:,.0f} vectors") for arn, (b, n) in acc.items()]


def _vector_query_rows(events: list[UsageEvent], catalogue: cat.Catalogue, region: str,
                       now: float) -> list[BillRow]:
    requests = catalogue.service("AmazonS3", "vectors-query-requests", region)
    tiers = [catalogue.service("AmazonS3", f"vectors-query-data-tier{i}", region) for i in (1, 2)]
    acc: dict[str, list[float]] = {}
    for e in events:
        a = acc.setdefault(e["resource"], [0, 0.0, 0.0])
        n, processed = int(e.get("vectors") or 0), float(e.get("bytes_processed") or 0)
        average = processed / n if n else 0.0
        split = int(tiers[0].get("vectors_to") or 100_000)
        a[0] += 1
        a[1] += average * min(n, split)
        a[2] += average * max(0, n - split)
    rows = []
    for arn, (queries, first, rest) in acc.items():
        rows.append(_row(_short_index(arn), "s3vectors queries", queries, "queries", requests,
                         requests.cost_of(queries)))
        for tier, processed in zip(tiers, (first, rest), strict=True):
            if processed:
                rows.append(_row(_short_index(arn), "s3vectors query data", processed / TIB, "TB processed", tier,
                                 tier.cost_of(processed / TIB),
                                 note=f"{tier.get('offer_attributes', {}).get('tier', '')} of the index"))
    return rows


def _ec2_instance_rows(events: list[UsageEvent], catalogue: cat.Catalogue, region: str,
                       now: float) -> list[BillRow]:
    """EC2 instances (and the instances behind AWS Batch jobs): per second from start to end (or now)
    at the on-demand rate; Spot at the family's typical saving (``data/pricing/spot.json``)."""
    rows = []
    for e in events:
        price = catalogue.ec2_instance(e["instance_type"], region)
        hours = _seconds(e, now) * float(e.get("instance_count") or 1) / 3600
        on_demand = hours * price.price_usd
        if e.get("spot"):
            saving, _ = catalogue.spot_savings(e["instance_type"])
            rows.append(_row(e["resource"], "ec2 (spot)", hours, f"{e['instance_type']} instance-hours", price,
                             on_demand * (1 - saving), on_demand_cost=on_demand,
                             note=f"typical {saving:.0%} Spot saving for the family (data/pricing/spot.json)"))
        else:
            rows.append(_row(e["resource"], "ec2", hours, f"{e['instance_type']} instance-hours", price, on_demand,
                             note=e.get("note", "")))
    return rows


SERVICE_RULES: dict[str, Rule] = {
    "ec2:instance": _ec2_instance_rows,
    "athena:query": _athena_rows,
    "kinesis:stream": _kinesis_stream_rows,
    "kinesis:put": _kinesis_data_rows,
    "kinesis:get": _kinesis_data_rows,
    "cloudwatch:metric": _cloudwatch_metric_rows,
    "cloudwatch:alarm": _monthly_rows("cloudwatch alarm", "alarm metric-months", _alarm_price,
                                      "prorated over the alarm's life; free tier: 10 standard alarm metrics"),
    "cloudwatch:dashboard": _monthly_rows(
        "cloudwatch dashboard", "dashboard-months",
        lambda e, c, r: (c.service("AmazonCloudWatch", "dashboard", r), 1.0),
        "prorated over the dashboard's life; free tier: 3 dashboards"),
    "cloudwatch:requests": _request_rows("AmazonCloudWatch", "api-requests", "cloudwatch requests", "requests",
                                         note="free tier: 1M requests per month"),
    "cloudwatch:metrics-requested": _request_rows("AmazonCloudWatch", "get-metric-data", "cloudwatch GetMetricData",
                                                  "metrics requested", "metrics"),
    "kms:key": _monthly_rows("kms key", "key-months",
                             lambda e, c, r: (c.service("awskms", "customer-managed-key", r), 1.0),
                             "billed until scheduled for deletion (no charge while pending deletion)"),
    "kms:requests": _request_rows("awskms", "requests", "kms requests", "requests",
                                  note="free tier: 20,000 requests per month"),
    "glue:object": _glue_object_rows,
    "glue:requests": _request_rows("AWSGlue", "catalog-requests", "glue catalog requests", "requests",
                                   note="the first million requests per month are free"),
    "cloudtrail:trail": _trail_rows,
    "emr:cluster": _emr_rows,
    "bedrock:guardrail": _guardrail_rows,
    "s3vectors:storage": _vector_storage_rows,
    "s3vectors:put": _vector_put_rows,
    "s3vectors:query": _vector_query_rows,
}


def price_events(events: Iterable[UsageEvent], catalogue: cat.Catalogue | None = None, *,
                 region: str = cat.DEFAULT_REGION, now: float | None = None) -> tuple[list[BillRow], list[str]]:
    """Bill rows for usage events, and a description of each event that has no price."""
    catalogue = catalogue or cat.load()
    now = time.time() if now is None else now
    by_kind: dict[str, list[UsageEvent]] = {}
    for e in events:
        by_kind.setdefault(e["kind"], []).append(e)
    rows: list[BillRow] = []
    unpriced: list[str] = []
    for kind, group in by_kind.items():
        try:
            if kind in INSTANCE_KINDS:
                rows += _instance_rows(group, catalogue, region, now)
            elif kind == "sagemaker:serverless":
                rows += _serverless_rows(group, catalogue, region)
            elif kind == "bedrock:tokens":
                rows += _bedrock_rows(group, catalogue, region)
            elif kind == "s3:storage":
                rows += _storage_rows(group, catalogue, region)
            elif kind in SERVICE_RULES:
                for item in SERVICE_RULES[kind](group, catalogue, region, now):
                    (unpriced if isinstance(item, str) else rows).append(item)
            else:
                unpriced.append(f"{len(group)} {kind} event(s): the meter has no rule for this kind")
        except (cat.PriceNotFound, ValueError) as err:
            # Price what can be priced, one event at a time, and name the rest.
            if len(group) > 1:
                for e in group:
                    more, missing = price_events([e], catalogue, region=region, now=now)
                    rows += more
                    unpriced += missing
            else:
                unpriced.append(f"{group[0]['resource']} ({kind}): {err}")
    return rows, unpriced


# --- the lab's bill -----------------------------------------------------------------------


def lab_events(lab: Any, now: float) -> list[UsageEvent]:
    """The usage events of ``lab`` on its backend, S3 storage included."""
    import boto3

    s3 = boto3.client("s3", region_name=lab.region)
    if lab.backend == "offline":
        from ..offline import usage

        # The meter measures S3 itself; recorded s3:storage events would count it twice. The shared
        # backend holds every notebook's usage: a lab's bill is what was used since it connected.
        events = [e for e in usage.events() if e["kind"] != "s3:storage" and e.get("at", 0) >= lab.started_at]
        buckets = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
        return events + s3_storage_events(s3, buckets, since=lab.started_at, now=now)
    sm = boto3.client("sagemaker", region_name=lab.region)
    events = sandbox_events(sm, lab.name, since=lab.started_at, now=now)
    return events + s3_storage_events(s3, [lab.bucket], since=lab.started_at, now=now, prefix=f"{lab.name}/")


def make_bill(lab: Any, events: Iterable[UsageEvent], *, now: float | None = None,
              catalogue: cat.Catalogue | None = None) -> Bill:
    now = time.time() if now is None else now
    rows, unpriced = price_events(events, catalogue, region=lab.region, now=now)
    return Bill(lab=lab.name, backend=lab.backend, region=lab.region, started_at=lab.started_at, ended_at=now,
                rows=rows, unpriced=unpriced)


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ in ("ZMQInteractiveShell", "Shell")


def bill_for(lab: Any, show: bool = True) -> Bill:
    """Price what ``lab`` used; write ``$LABKIT_REPORT_DIR/<lab>.bill.json``; show it if asked."""
    now = time.time()
    bill = make_bill(lab, lab_events(lab, now), now=now)
    if lab.backend != "offline":
        bill.unpriced.append("Bedrock tokens and serverless inference time are not visible per lab on a real "
                             "account (AWS reports them per account in CloudWatch and Cost Explorer, a day later).")
        bill.unpriced.append("Athena, Kinesis, CloudWatch, KMS, Glue, CloudTrail, EMR, guardrail and S3 Vectors "
                             "usage is metered on the offline backend only; on a real account see Cost Explorer.")
    report_dir = os.environ.get("LABKIT_REPORT_DIR")
    if report_dir:
        bill.to_json(Path(report_dir) / f"{lab.name}.bill.json")
    if show:
        if _in_notebook():
            import matplotlib.pyplot as plt
            from IPython.display import display

            display(bill)
            bill.plot()
            plt.show()
        else:
            print(bill)
    return bill


def total_reports(directory: str | Path) -> dict[str, float]:
    """``{lab: total_usd}`` of every ``*.bill.json`` in ``directory`` (the course summary uses it)."""
    out = {}
    for path in sorted(Path(directory).glob("*.bill.json")):
        data = json.loads(path.read_text())
        out[data["lab"]] = float(data["total_usd"])
    return out
