"""``labkit cost refresh``: replace recalled catalogue prices with values read from the Pricing API.

For each price that names how to find it (EC2 and SageMaker instances by ``usagetype``
and, for EC2, Linux/shared/no software; or any price with an explicit
``refresh_filters`` object), GetProducts is asked for exactly that product. When it
answers with one On-Demand USD price, the entry gets that price, ``read_on`` = today,
``method`` = ``pricing-api``, ``verified`` = true, and ``source`` the offer file. When it
answers with none or several, the entry is left as it is and reported: a refresh never
guesses. The Pricing API is served from us-east-1 (also eu-central-1, ap-south-1).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from . import catalogue as cat

EC2_FIXED = {"operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}


def filters_for(raw: dict[str, Any], service_code: str) -> dict[str, str] | None:
    """The attribute filters that pick exactly this price's product, or None if unknown."""
    if raw.get("refresh_filters"):
        return dict(raw["refresh_filters"])
    region = raw.get("region", cat.DEFAULT_REGION)
    if service_code == "AmazonEC2" and raw.get("usage") == "on-demand":
        return {"regionCode": region, "instanceType": raw["instance_type"], **EC2_FIXED}
    if service_code == "AmazonSageMaker" and raw.get("instance_type"):
        return {"regionCode": region, "usagetype": raw["sku"]}
    return None


def on_demand_usd(item: dict[str, Any]) -> list[float]:
    """Every On-Demand USD price in a Price List item (one per price dimension)."""
    out = []
    for term in item.get("terms", {}).get("OnDemand", {}).values():
        for dim in term.get("priceDimensions", {}).values():
            usd = dim.get("pricePerUnit", {}).get("USD")
            if usd is not None:
                out.append(float(usd))
    return out


def refresh(pricing: Any, directory: str | Path | None = None, *, write: bool = True,
            today: str | None = None, only: str | None = None) -> dict[str, list[str]]:
    """Refresh the catalogue through ``pricing`` (a boto3 Pricing client); a report of what changed."""
    directory = Path(directory) if directory else cat.pricing_dir()
    today = today or dt.date.today().isoformat()
    report: dict[str, list[str]] = {"updated": [], "unchanged": [], "skipped": [], "ambiguous": []}
    for name in cat.FILES:
        path = directory / f"{name}.json"
        if not path.is_file() or (only and only != name):
            continue
        doc = json.loads(path.read_text())
        changed = False
        for raw in doc["prices"]:
            code = raw.get("service_code") or doc["service_code"]
            filters = filters_for(raw, code) if raw.get("price_usd") is not None else None
            label = f"{name}:{raw.get('sku')}"
            if filters is None:
                report["skipped"].append(label)
                continue
            response = pricing.get_products(
                ServiceCode=code, FormatVersion="aws_v1", MaxResults=10,
                Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()])
            prices = {p for item in response.get("PriceList", []) for p in on_demand_usd(json.loads(item))}
            if len(prices) != 1:
                report["ambiguous"].append(f"{label}: {len(prices)} prices found")
                continue
            price = prices.pop()
            if abs(price - float(raw["price_usd"])) > 1e-9:
                report["updated"].append(f"{label}: {raw['price_usd']} -> {price}")
            else:
                report["unchanged"].append(label)
            raw.update(price_usd=price, read_on=today, method="pricing-api", verified=True,
                       source=raw.get("offer_file") or raw.get("source"))
            changed = True
        if changed and write:
            path.write_text(json.dumps(doc, indent=1) + "\n")
    cat.reload()
    return report
