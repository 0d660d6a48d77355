"""The dated price catalogue in ``data/pricing/``.

Each JSON file holds the prices of one area (``sagemaker.json``, ``ec2.json``,
``bedrock.json``, ``storage.json``, ``spot.json``, and ``services.json`` for the other services the
labs use: Athena, Kinesis, CloudWatch, KMS, CloudTrail, Glue, EMR, Bedrock Guardrails, S3 Vectors). Every price names its region, unit,
source (the public pricing page and the Pricing API offer file where AWS publishes it),
the date it entered the catalogue (``read_on``), how it got there (``method``: ``recalled``
``stored-page``: read from a stored copy of the pricing page, or ``pricing-api``) and whether it was read from AWS (``verified``). ``labkit cost refresh``
replaces recalled figures with values read from the Pricing API (see :mod:`labkit.cost.refresh`).

This module only looks prices up; the arithmetic of a bill is in :mod:`labkit.cost.meter`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

DEFAULT_REGION = "us-east-1"
FILES = ("sagemaker", "ec2", "bedrock", "storage", "spot", "services")
# Where a model id names a cross-region inference profile ("us.anthropic..."), the price
# is that of the model in the source region (Bedrock pricing page, "Cross-region inference").
INFERENCE_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "global.", "us-gov.", "ca.", "jp.", "au.")
SAGEMAKER_USAGES = ("training", "processing", "transform", "hosting", "notebook")


class PriceNotFound(KeyError):
    """No catalogue price for what was asked; the message says what is known and what to do."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0]) if self.args else ""


def pricing_dir() -> Path:
    """``$LABKIT_PRICING_DIR`` or ``data/pricing`` of the checkout this package runs from."""
    env = os.environ.get("LABKIT_PRICING_DIR")
    if env:
        return Path(env)
    return _checkout_pricing_dir()


@lru_cache(maxsize=1)
def _checkout_pricing_dir() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "data" / "pricing"
        if (candidate / "sagemaker.json").is_file():
            return candidate
    raise FileNotFoundError("data/pricing/ not found: set LABKIT_PRICING_DIR to the price catalogue folder.")


@dataclass(frozen=True)
class Price:
    """One catalogue price and where it came from."""

    sku: str
    service_code: str
    region: str
    unit: str
    price_usd: float
    source: str
    read_on: str
    verified: bool
    method: str
    notes: str = ""
    confidence: str = ""
    offer_file: str = ""
    file: str = ""
    attrs: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def get(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    @property
    def provenance(self) -> str:
        """Short source and date, e.g. ``aws.amazon.com/bedrock/pricing 2026-11-22 (recalled, unverified)``."""
        page = self.source.split("://", 1)[-1].rstrip("/")
        how = "read from AWS" if self.verified else f"{self.method}, unverified"
        return f"{page} {self.read_on} ({how})"

    @property
    def unit_size(self) -> float:
        """How many units one priced unit holds: 1,000 for ``1K requests``, 1 for ``Hrs`` or ``GB-Mo``."""
        return float(self.attrs.get("unit_size") or 1)

    def tiered_cost(self, quantity: float) -> float:
        """Cost of ``quantity`` priced units, walking the volume tiers where the price has them.

        Tiers are ``{"begin", "end", "price_usd"}`` (``begin_gb``/``end_gb`` for storage), in
        priced units; ``end`` None is the last, open tier.
        """
        tiers = self.attrs.get("tiers")
        if not tiers:
            return quantity * self.price_usd
        cost, left = 0.0, quantity
        for tier in tiers:
            begin, end = tier_bounds(tier)
            width = left if end is None else min(left, end - begin)
            cost += max(width, 0) * tier["price_usd"]
            left -= max(width, 0)
            if left <= 0:
                break
        return cost

    def cost_of(self, quantity: float) -> float:
        """Cost of ``quantity`` units (``unit_size`` of them make one priced unit), tiers included."""
        return self.tiered_cost(quantity / self.unit_size)


def tier_bounds(tier: dict[str, Any]) -> tuple[float, float | None]:
    """(begin, end) of a volume tier, whichever key names it uses."""
    begin = tier.get("begin", tier.get("begin_gb", 0))
    end = tier["end"] if "end" in tier else tier.get("end_gb")
    return float(begin), (None if end is None else float(end))


_FIELDS = {"sku", "service_code", "region", "unit", "price_usd", "source", "read_on", "verified", "method",
           "notes", "confidence", "offer_file"}


class Catalogue:
    """All prices of ``data/pricing/``, with the look-ups the meter and the guard need."""

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory) if directory else pricing_dir()
        self.documents: dict[str, dict[str, Any]] = {}
        self.prices: list[Price] = []
        self.spot: dict[str, dict[str, Any]] = {}
        for name in FILES:
            path = self.directory / f"{name}.json"
            if not path.is_file():
                continue
            doc = json.loads(path.read_text())
            self.documents[name] = doc
            for raw in doc["prices"]:
                if name == "spot":
                    self.spot[raw["family"]] = raw
                    continue
                self.prices.append(self._price(raw, doc, name))
        self._memo: dict[tuple[Any, ...], Price] = {}

    @staticmethod
    def _price(raw: dict[str, Any], doc: dict[str, Any], file: str) -> Price:
        return Price(
            sku=raw["sku"], service_code=raw.get("service_code") or doc["service_code"],
            region=raw.get("region") or doc.get("region", DEFAULT_REGION), unit=raw["unit"],
            price_usd=float(raw["price_usd"]), source=raw["source"], read_on=raw["read_on"],
            verified=bool(raw.get("verified")), method=raw.get("method", ""), notes=raw.get("notes", ""),
            confidence=raw.get("confidence", ""), offer_file=raw.get("offer_file", ""), file=file,
            attrs={k: v for k, v in raw.items() if k not in _FIELDS},
        )

    # --- generic --------------------------------------------------------------------

    def find(self, service_code: str | None = None, region: str | None = None, **attrs: Any) -> list[Price]:
        """Prices whose service, region and attributes match exactly."""
        found = []
        for price in self.prices:
            if service_code and price.service_code != service_code:
                continue
            if region and price.region != region:
                continue
            if all(price.attrs.get(k) == v for k, v in attrs.items()):
                found.append(price)
        return found

    def _one(self, what: str, file: str, region: str, service_code: str, **attrs: Any) -> Price:
        key = (region, service_code, *sorted(attrs.items()))
        if key in self._memo:
            return self._memo[key]
        for reg in dict.fromkeys((region, DEFAULT_REGION)):
            hits = self.find(service_code, reg, **attrs)
            if hits:
                self._memo[key] = hits[0]
                return hits[0]
        known = sorted({str(p.attrs.get(next(iter(attrs)))) for p in self.find(service_code)})
        raise PriceNotFound(
            f"No price for {what} in data/pricing/{file}.json (region {region}). "
            f"Known: {', '.join(known[:40])}{' ...' if len(known) > 40 else ''}. Add it with its source and "
            "date, or run `labkit cost refresh` where AWS credentials exist.")

    # --- look-ups ---------------------------------------------------------------------

    def sagemaker_instance(self, instance_type: str, usage: str = "training", region: str = DEFAULT_REGION) -> Price:
        """Hourly price of a SageMaker ML instance (``ml.g5.xlarge``) for a usage."""
        if usage not in SAGEMAKER_USAGES:
            raise ValueError(f"usage must be one of {', '.join(SAGEMAKER_USAGES)}, not {usage!r}")
        if not instance_type.startswith("ml."):
            raise PriceNotFound(f"SageMaker instance types start with 'ml.' ({instance_type!r} given: "
                                f"did you mean 'ml.{instance_type}'?)")
        return self._one(f"{instance_type} ({usage})", "sagemaker", region, "AmazonSageMaker",
                         instance_type=instance_type, usage=usage)

    def ec2_instance(self, instance_type: str, region: str = DEFAULT_REGION) -> Price:
        """Hourly Linux on-demand price of an EC2 instance type (``g5.xlarge``)."""
        if instance_type.startswith("ml."):
            raise PriceNotFound(f"{instance_type!r} is a SageMaker type: EC2 names it {instance_type[3:]!r}.")
        return self._one(instance_type, "ec2", region, "AmazonEC2", instance_type=instance_type, usage="on-demand")

    def serverless(self, memory_mb: int, region: str = DEFAULT_REGION) -> Price:
        """Per-second price of serverless inference at ``memory_mb`` (1024..6144 in 1 GB steps)."""
        if memory_mb not in (1024, 2048, 3072, 4096, 5120, 6144):
            raise ValueError(f"Serverless MemorySizeInMB must be 1024, 2048, 3072, 4096, 5120 or 6144, not {memory_mb}.")
        return self._one(f"serverless {memory_mb} MB", "sagemaker", region, "AmazonSageMaker",
                         usage="serverless", memory_mb=memory_mb)

    def sagemaker_other(self, usage: str, region: str = DEFAULT_REGION) -> Price:
        """Non-instance SageMaker prices: ``serverless-data``, ``hosting-data``, ``ml-storage``."""
        return self._one(usage, "sagemaker", region, "AmazonSageMaker", usage=usage)

    @staticmethod
    def base_model_id(model_id: str) -> str:
        """``us.anthropic.claude-3-haiku...`` -> ``anthropic.claude-3-haiku...``; ARNs to their model id."""
        if model_id.startswith("arn:"):
            model_id = model_id.rsplit("/", 1)[-1]
        for prefix in INFERENCE_PROFILE_PREFIXES:
            if model_id.startswith(prefix):
                return model_id[len(prefix):]
        return model_id

    def bedrock(self, model_id: str, usage: str = "input-tokens", region: str = DEFAULT_REGION) -> Price:
        """Per-1K-token (or per-image) on-demand price of a Bedrock model."""
        base = self.base_model_id(model_id)
        return self._one(f"{base} ({usage})", "bedrock", region, "AmazonBedrock", model_id=base, usage=usage)

    def s3_storage(self, storage_class: str = "STANDARD", region: str = DEFAULT_REGION) -> Price:
        """GB-month price of an S3 storage class (``STANDARD``, ``GLACIER_IR``...)."""
        storage_class = {"REDUCED_REDUNDANCY": "STANDARD", "OUTPOSTS": "STANDARD"}.get(storage_class, storage_class)
        return self._one(f"S3 {storage_class}", "storage", region, "AmazonS3", service="s3",
                         storage_class=storage_class, usage="storage")

    def service(self, service_code: str, usage: str, region: str = DEFAULT_REGION) -> Price:
        """A price of ``services.json`` by service code and usage (``"AmazonAthena"``, ``"data-scanned"``)."""
        return self._one(f"{service_code} {usage}", "services", region, service_code, usage=usage)

    def emr_uplift(self, instance_type: str, region: str = DEFAULT_REGION) -> Price:
        """The EMR per-instance hourly charge added to the EC2 price of ``instance_type``."""
        return self._one(f"EMR {instance_type}", "services", region, "ElasticMapReduce",
                         instance_type=instance_type, usage="emr-uplift")

    def spot_savings(self, instance_type: str) -> tuple[float, dict[str, Any]]:
        """Typical spot saving (fraction of on-demand) for an instance's family, and its record."""
        family = instance_type.removeprefix("ml.").split(".", 1)[0]
        record = self.spot.get(family)
        if record is None:
            raise PriceNotFound(f"No spot savings recorded for the {family} family in data/pricing/spot.json "
                                f"(known: {', '.join(sorted(self.spot))}).")
        return float(record["savings"]), record

    def instance_specs(self, instance_type: str) -> dict[str, Any]:
        """vCPUs, memory and accelerators of an instance type (EC2 or ``ml.`` name)."""
        name = instance_type.removeprefix("ml.")
        for price in self.find("AmazonEC2", instance_type=name):
            return {k: price.attrs.get(k) for k in ("vcpu", "memory_gib", "accelerators", "accelerator")}
        raise PriceNotFound(f"No specs for {instance_type} in data/pricing/ec2.json.")

    def unverified(self) -> list[Price]:
        return [p for p in self.prices if not p.verified]


@lru_cache(maxsize=4)
def _load(directory: str) -> Catalogue:
    return Catalogue(directory)


def load(directory: str | Path | None = None) -> Catalogue:
    """The catalogue (cached per folder; :func:`reload` after editing the files)."""
    return _load(str(Path(directory) if directory else pricing_dir()))


def reload() -> None:
    _load.cache_clear()
