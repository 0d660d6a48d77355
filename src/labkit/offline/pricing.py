"""Offline AWS Price List API and EC2 spot price history, served from ``data/pricing/``.

``pricing`` GetProducts / DescribeServices / GetAttributeValues answer in the Price List
shape (each ``PriceList`` item a JSON string with ``product``, ``serviceCode`` and
``terms.OnDemand.<sku>.<term>.priceDimensions.<rate>.pricePerUnit.USD``), so lab code
that queries the Pricing API runs unchanged. The products are the catalogue's prices,
with the attribute names of AWS's offer files (``instanceType``, ``operatingSystem``,
``regionCode``, ``usagetype``...). Only what the catalogue holds exists: a query for a
product it lacks returns no items, as AWS does for a filter that matches nothing. The
services of ``services.json`` (AmazonAthena, AmazonKinesis, AmazonCloudWatch, awskms,
AWSCloudTrail, AWSGlue, ElasticMapReduce, and Bedrock Guardrails and S3 Vectors under
AmazonBedrock and AmazonS3) carry their product family and offer attributes in the entry
(``product_family``, ``offer_attributes``); like their prices, those names are recalled.

``ec2`` DescribeSpotPriceHistory replaces moto's placeholder (0.00001 dated 2006) with a
deterministic, documented history: for each instance type in ``data/pricing/ec2.json``
and availability zone, a price that changes every few hours around
``on-demand x (1 - typical family saving)`` from ``data/pricing/spot.json``, within 8%.
Real spot prices are set by long-term supply and demand per AZ; these are plausible, not
observed, and say so in the catalogue. Only the ``Linux/UNIX`` product descriptions exist.
Pages as AWS's do: newest record first, at most 1000 per page (the default), the rest behind a
``NextToken``, so a week of a dozen instance types (about 2,000 records) takes three pages and
code that reads only the first response sees the last two or three days.
"""

from __future__ import annotations

import base64
import fnmatch
import functools
import hashlib
import json
import math
from datetime import UTC, datetime
from typing import Any

from botocore.utils import parse_timestamp

from ..cost import catalogue as cat
from . import dispatch
from .dispatch import AWSError

LOCATIONS = {"us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)", "us-west-2": "US West (Oregon)",
             "eu-west-1": "EU (Ireland)", "eu-central-1": "EU (Frankfurt)"}
ON_DEMAND_TERM = "JRTCKXETXF"  # the offer term code of every On-Demand term in AWS's offer files
RATE_CODE = "6YS6EN2CT7"  # the On-Demand price dimension code
SERVICE_NAMES = {"AmazonEC2": "Amazon Elastic Compute Cloud", "AmazonSageMaker": "Amazon SageMaker",
                 "AmazonBedrock": "Amazon Bedrock", "AmazonS3": "Amazon Simple Storage Service",
                 "AmazonEFS": "Amazon Elastic File System", "AmazonFSx": "Amazon FSx",
                 "AmazonAthena": "Amazon Athena", "AmazonKinesis": "Amazon Kinesis",
                 "AmazonCloudWatch": "AmazonCloudWatch", "awskms": "AWS Key Management Service",
                 "AWSCloudTrail": "AWS CloudTrail", "AWSGlue": "AWS Glue",
                 "ElasticMapReduce": "Amazon Elastic MapReduce"}
FAMILIES = {"t3": "General purpose", "m5": "General purpose", "c5": "Compute optimized", "g4dn": "GPU instance",
            "g5": "GPU instance", "p3": "GPU instance", "p4d": "GPU instance", "p5": "GPU instance",
            "trn1": "Machine Learning ASIC Instances", "inf2": "Machine Learning ASIC Instances"}
S3_CLASSES = {  # storage_class -> (storageClass, volumeType) as in the AmazonS3 offer file
    "STANDARD": ("General Purpose", "Standard"),
    "INTELLIGENT_TIERING": ("Intelligent-Tiering", "IntelligentTieringFrequentAccess"),
    "INTELLIGENT_TIERING_IA": ("Intelligent-Tiering", "IntelligentTieringInfrequentAccess"),
    "INTELLIGENT_TIERING_AIA": ("Intelligent-Tiering", "IntelligentTieringArchiveInstantAccess"),
    "STANDARD_IA": ("Infrequent Access", "Standard - Infrequent Access"),
    "ONEZONE_IA": ("Infrequent Access", "One Zone - Infrequent Access"),
    "GLACIER_IR": ("Archive Instant Retrieval", "Glacier Instant Retrieval"),
    "GLACIER": ("Archive", "Amazon Glacier"),
    "DEEP_ARCHIVE": ("Archive", "Glacier Deep Archive"),
    "EXPRESS_ONEZONE": ("High Performance", "Express One Zone"),
}


# --- Price List products ---------------------------------------------------------------


def _sku(price: cat.Price) -> str:
    digest = hashlib.sha256(f"{price.service_code}|{price.region}|{price.sku}".encode()).digest()
    return base64.b32encode(digest).decode()[:16]


def _attributes(price: cat.Price) -> tuple[str, dict[str, str]]:
    """(productFamily, attributes) of a catalogue price, named as in AWS's offer files."""
    a = price.attrs
    attrs = {"servicecode": price.service_code, "servicename": SERVICE_NAMES.get(price.service_code, price.service_code),
             "location": LOCATIONS.get(price.region, price.region), "locationType": "AWS Region",
             "regionCode": price.region, "usagetype": price.sku}
    if "product_family" in a:  # services.json: the entry names its product family and offer attributes
        attrs.update({k: str(v) for k, v in (a.get("offer_attributes") or {}).items()})
        return str(a["product_family"]), attrs
    if price.service_code == "AmazonEC2" and "instance_type" in a:
        family = a["instance_type"].split(".")[0]
        attrs.update(instanceType=a["instance_type"], instanceFamily=FAMILIES.get(family, "General purpose"),
                     vcpu=str(a["vcpu"]), memory=f"{a['memory_gib']:g} GiB", operatingSystem="Linux",
                     tenancy="Shared", preInstalledSw="NA", licenseModel="No License required",
                     capacitystatus="Used", operation="RunInstances", currentGeneration="Yes")
        if str(a.get("accelerator") or "").startswith("NVIDIA"):
            attrs["gpu"] = str(a["accelerators"])
        return "Compute Instance", attrs
    if price.service_code == "AmazonEC2":  # EBS
        attrs.update(volumeApiName=str(a.get("volume_type")), usageFamily="Storage", operation="")
        return "Storage" if "VolumeUsage" in price.sku else "System Operation" if "IOPS" in price.sku \
            else "Provisioned Throughput" if "Throughput" in price.sku else "Storage Snapshot", attrs
    if price.service_code == "AmazonSageMaker":
        if "instance_type" in a:
            attrs.update(instanceName=a["instance_type"], instanceType=a["instance_type"], component=a["component"],
                         vCpu=str(a["vcpu"]), memory=f"{a['memory_gib']:g} GiB", gpu=str(a.get("accelerators") or 0),
                         computeType="GPU" if str(a.get("accelerator", "")).startswith("NVIDIA") else
                         "Accelerated" if a.get("accelerators") else "CPU", operation="RunInstance")
            return "ML Instance", attrs
        if a.get("usage") == "serverless":
            attrs.update(component="Serverless Inference", memorySize=f"{a['memory_mb']} MB")
            return "ML Serverless Inference", attrs
        attrs.update(component={"ml-storage": "ML Storage", "serverless-data": "Serverless Inference",
                                "hosting-data": "Hosting"}.get(a.get("usage", ""), ""))
        return "ML Storage" if a.get("usage") == "ml-storage" else "Data Transfer", attrs
    if price.service_code == "AmazonBedrock":
        attrs.update(model=a["model_name"], modelId=a["model_id"], provider=a["provider"],
                     inferenceType={"input-tokens": "Input tokens", "output-tokens": "Output tokens",
                                    "images": "Image generation"}[a["usage"]], feature="On-demand Inference")
        return "Amazon Bedrock", attrs
    if price.service_code == "AmazonS3":
        if a.get("usage") == "storage":
            storage_class, volume_type = S3_CLASSES.get(a["storage_class"], (a["storage_class"], a["storage_class"]))
            attrs.update(storageClass=storage_class, volumeType=volume_type, availability="99.99%")
            return "Storage", attrs
        attrs.update(group="S3-API-Tier1" if a.get("usage") == "requests-put" else "S3-API-Tier2")
        return "API Request", attrs
    if price.service_code == "AmazonEFS":
        attrs.update(storageClass=str(a.get("storage_class")))
        return "Storage", attrs
    if price.service_code == "AmazonFSx":
        attrs.update(fileSystemType="Lustre", deploymentOption=str(a.get("deployment_type")))
        return "Storage", attrs
    return "Other", attrs


def _range(value: float) -> str:
    """A tier bound as the offer files write it: ``1000000``, ``0.5``."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:g}"


def _dimensions(price: cat.Price, sku: str, attrs: dict[str, str]) -> dict[str, Any]:
    where = attrs["location"]
    tiers = price.attrs.get("tiers") or [{"begin": 0, "end": None, "price_usd": price.price_usd}]
    dims = {}
    for i, tier in enumerate(tiers):
        code = f"{sku}.{ON_DEMAND_TERM}.{RATE_CODE if i == 0 else f'{RATE_CODE[:-1]}{i}'}"
        begin, stop = cat.tier_bounds(tier)
        end = "Inf" if stop is None else _range(stop)
        dims[code] = {
            "unit": price.unit, "endRange": end, "beginRange": _range(begin), "appliesTo": [],
            "rateCode": code,
            "description": f"${tier['price_usd']:.10f} per {price.unit} for {price.sku} in {where}",
            "pricePerUnit": {"USD": f"{tier['price_usd']:.10f}"},
        }
    return dims


def product(price: cat.Price) -> dict[str, Any]:
    """One Price List item (as a dict) for a catalogue price."""
    sku = _sku(price)
    family, attrs = _attributes(price)
    effective = f"{price.read_on}T00:00:00Z"
    return {
        "product": {"productFamily": family, "attributes": attrs, "sku": sku},
        "serviceCode": price.service_code,
        "terms": {"OnDemand": {f"{sku}.{ON_DEMAND_TERM}": {
            "priceDimensions": _dimensions(price, sku, attrs), "sku": sku, "effectiveDate": effective,
            "offerTermCode": ON_DEMAND_TERM, "termAttributes": {}}}},
        "version": price.read_on.replace("-", "") + "000000",
        "publicationDate": effective,
        # Not in AWS's shape: where the figure came from, so a learner can see it is recalled.
        "labkitProvenance": {"source": price.source, "readOn": price.read_on, "verified": price.verified,
                             "method": price.method},
    }


def _products(service_code: str) -> list[dict[str, Any]]:
    return [product(p) for p in cat.load().prices if p.service_code == service_code]


def _service_codes() -> list[str]:
    return sorted({p.service_code for p in cat.load().prices})


# --- filters and pages -----------------------------------------------------------------


def _matches(attrs: dict[str, str], flt: dict[str, Any]) -> bool:
    kind, fld, value = flt.get("Type"), flt.get("Field"), str(flt.get("Value", ""))
    if kind not in ("TERM_MATCH", "EQUALS", "CONTAINS", "ANY_OF", "NONE_OF"):
        raise AWSError("InvalidParameterException", f"Invalid filter type {kind!r}: use TERM_MATCH, EQUALS, "
                       "CONTAINS, ANY_OF or NONE_OF.")
    lowered = {k.lower(): v for k, v in attrs.items()}
    have = lowered.get(str(fld).lower())
    if kind == "NONE_OF":
        return have is None or have.lower() not in {v.strip().lower() for v in value.split(",")}
    if have is None:
        return False
    if kind in ("TERM_MATCH", "EQUALS"):
        return have.lower() == value.lower()
    if kind == "CONTAINS":
        return value.lower() in have.lower()
    return have.lower() in {v.strip().lower() for v in value.split(",")}


def _page(items: list[Any], params: dict[str, Any], limit: int,
          errors: tuple[str, str] = ("InvalidNextTokenException", "InvalidParameterException"),
          ) -> tuple[list[Any], str | None]:
    """One page of ``items``: ``MaxResults`` (1 to ``limit``, default ``limit``) from ``NextToken`` on.

    ``errors``: the service's codes for a bad token and a bad page size (Pricing's by default).
    """
    token = params.get("NextToken")
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except ValueError:
            raise AWSError(errors[0], "The NextToken is not valid.") from None
    size = params.get("MaxResults") or limit
    if size < 1 or size > limit:
        raise AWSError(errors[1], f"MaxResults must be between 1 and {limit}.")
    chunk = items[start:start + size]
    nxt = start + size
    return chunk, (base64.urlsafe_b64encode(str(nxt).encode()).decode() if nxt < len(items) else None)


def _format_version(params: dict[str, Any]) -> str:
    version = params.get("FormatVersion") or "aws_v1"
    if version != "aws_v1":
        raise AWSError("InvalidParameterException", f"Invalid FormatVersion {version!r}: the only version is aws_v1.")
    return version


def _known_service(code: str) -> None:
    if code not in _service_codes():
        raise AWSError("NotFoundException", f"Service code {code!r} not found. The offline Price List holds "
                       f"{', '.join(_service_codes())} (data/pricing/).")


# --- pricing handlers ------------------------------------------------------------------


@dispatch.operation("pricing", "DescribeServices")
def describe_services(params: dict[str, Any]) -> dict[str, Any]:
    version = _format_version(params)
    codes = _service_codes()
    if params.get("ServiceCode"):
        _known_service(params["ServiceCode"])
        codes = [params["ServiceCode"]]
    services = []
    for code in codes:
        names = sorted({k for item in _products(code) for k in item["product"]["attributes"]})
        services.append({"ServiceCode": code, "AttributeNames": names})
    page, token = _page(services, params, 100)
    out: dict[str, Any] = {"Services": page, "FormatVersion": version}
    if token:
        out["NextToken"] = token
    return out


@dispatch.operation("pricing", "GetAttributeValues")
def get_attribute_values(params: dict[str, Any]) -> dict[str, Any]:
    _known_service(params["ServiceCode"])
    name = params["AttributeName"].lower()
    values = sorted({v for item in _products(params["ServiceCode"])
                     for k, v in item["product"]["attributes"].items() if k.lower() == name and v})
    page, token = _page([{"Value": v} for v in values], params, 100)
    out: dict[str, Any] = {"AttributeValues": page}
    if token:
        out["NextToken"] = token
    return out


@dispatch.operation("pricing", "GetProducts")
def get_products(params: dict[str, Any]) -> dict[str, Any]:
    version = _format_version(params)
    _known_service(params["ServiceCode"])
    items = []
    for item in _products(params["ServiceCode"]):
        attrs = dict(item["product"]["attributes"], productFamily=item["product"]["productFamily"],
                     sku=item["product"]["sku"])
        if all(_matches(attrs, f) for f in params.get("Filters") or []):
            items.append(json.dumps(item))
    page, token = _page(items, params, 100)
    out: dict[str, Any] = {"FormatVersion": version, "PriceList": page}
    if token:
        out["NextToken"] = token
    return out


# --- EC2 spot price history --------------------------------------------------------------

SPOT_PRODUCTS = ("Linux/UNIX", "Linux/UNIX (Amazon VPC)")
ALL_ZONES = ("us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1f")
SCARCE_ZONES = ("us-east-1a", "us-east-1c")  # p4d, p5 and trn1 are offered in few zones
SCARCE_FAMILIES = ("p4d", "p5", "trn1")
ZONE_IDS = {"us-east-1a": "use1-az1", "us-east-1b": "use1-az2", "us-east-1c": "use1-az4",
            "us-east-1d": "use1-az6", "us-east-1f": "use1-az5"}
SEGMENT_S = 4 * 3600  # a price holds for a few hours; each (type, zone) is offset in phase
HISTORY_DAYS = 90  # AWS keeps 90 days of spot price history
# DescribeSpotPriceHistory's MaxResults: 1 to 1000, and 1000 when omitted (EC2 API reference, recalled
# 2026-12); the last page carries an empty NextToken, as AWS's does.
SPOT_PAGE = 1000
SPREAD = 0.08


def _unit(*parts: Any) -> float:
    """A deterministic number in [-1, 1) from the parts."""
    h = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**63 - 1.0


def spot_price(instance_type: str, zone: str, segment: int) -> float:
    """The offline spot price of ``instance_type`` in ``zone`` during ``segment``."""
    catalogue = cat.load()
    on_demand = catalogue.ec2_instance(instance_type).price_usd
    savings, _ = catalogue.spot_savings(instance_type)
    return round(on_demand * (1 - savings) * (1 + SPREAD * _unit(instance_type, zone, segment)), 6)


def zones_for(instance_type: str) -> tuple[str, ...]:
    return SCARCE_ZONES if instance_type.split(".")[0] in SCARCE_FAMILIES else ALL_ZONES


def _phase(instance_type: str, zone: str) -> int:
    return int((_unit("phase", instance_type, zone) + 1) / 2 * SEGMENT_S)


def _segments(instance_type: str, zone: str, start: float, end: float) -> list[tuple[int, float]]:
    """(segment index, start time) of every price in effect between ``start`` and ``end``."""
    phase = _phase(instance_type, zone)
    first = math.floor((start - phase) / SEGMENT_S)
    last = math.floor((end - phase) / SEGMENT_S)
    return [(k, k * SEGMENT_S + phase) for k in range(first, last + 1)]


def _time(value: Any) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float):
        return float(value)
    return parse_timestamp(value).timestamp()


def _filter_values(params: dict[str, Any], name: str) -> list[str] | None:
    for flt in params.get("Filters") or []:
        if flt.get("Name") == name:
            return list(flt.get("Values") or [])
    return None


def _wild(value: str, patterns: list[str] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(value, p) for p in patterns)


@functools.lru_cache(maxsize=1)
def _ec2_instance_types() -> frozenset[str]:
    """Every instance type name EC2's service model knows (what AWS would accept)."""
    from botocore.session import get_session

    return frozenset(get_session().get_service_model("ec2").shape_for("InstanceType").enum)


@dispatch.operation("ec2", "DescribeSpotPriceHistory")
def describe_spot_price_history(params: dict[str, Any]) -> dict[str, Any]:
    if params.get("DryRun"):
        raise AWSError("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412)
    known = _ec2_instance_types()
    wanted = list(params.get("InstanceTypes") or [])
    bad = [t for t in wanted if t not in known]
    if bad:
        hint = " (SageMaker's ml. types have no EC2 spot market)" if any(t.startswith("ml.") for t in bad) else ""
        raise AWSError("InvalidParameterValue", f"The following supplied instance types do not exist: "
                       f"[{', '.join(bad)}]{hint}")
    catalogue = cat.load()
    priced = [p.attrs["instance_type"] for p in catalogue.find("AmazonEC2", usage="on-demand")]
    types = [t for t in (wanted or priced) if t in priced]
    type_filter = _filter_values(params, "instance-type")
    products = [p for p in (params.get("ProductDescriptions") or SPOT_PRODUCTS[:1])
                if p in SPOT_PRODUCTS and _wild(p, _filter_values(params, "product-description"))]
    zone_filter = _filter_values(params, "availability-zone")
    now = datetime.now(UTC).timestamp()
    end = min(_time(params["EndTime"]), now) if params.get("EndTime") else now
    start = _time(params["StartTime"]) if params.get("StartTime") else end
    start = max(start, now - HISTORY_DAYS * 86400)
    if start > end:
        raise AWSError("InvalidParameterValue", "The StartTime must be earlier than the EndTime.")
    rows = []
    for itype in types:
        if not _wild(itype, type_filter):
            continue
        for zone in zones_for(itype):
            if params.get("AvailabilityZone") and zone != params["AvailabilityZone"]:
                continue
            if params.get("AvailabilityZoneId") and ZONE_IDS[zone] != params["AvailabilityZoneId"]:
                continue
            if not _wild(zone, zone_filter):
                continue
            for segment, begins in _segments(itype, zone, start, end):
                price = spot_price(itype, zone, segment)
                for product_description in products:
                    rows.append({"AvailabilityZone": zone, "AvailabilityZoneId": ZONE_IDS[zone],
                                 "InstanceType": itype, "ProductDescription": product_description,
                                 "SpotPrice": f"{price:.6f}",
                                 "Timestamp": datetime.fromtimestamp(begins, UTC)})
    rows.sort(key=lambda r: (r["Timestamp"], r["InstanceType"], r["AvailabilityZone"]), reverse=True)
    page, token = _page(rows, params, SPOT_PAGE, ("InvalidPaginationToken", "InvalidParameterValue"))
    return {"SpotPriceHistory": page, "NextToken": token or ""}

