"""Cost: how long the offline Pricing API, spot history and the meter take."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


def _time(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> str:
    import boto3

    import labkit
    from labkit.cost import meter
    from labkit.offline import usage

    labkit.connect("bench-cost", backend="offline", quiet=True)
    pricing, ec2 = boto3.client("pricing", region_name="us-east-1"), boto3.client("ec2")
    events = [{"kind": "sagemaker:training", "resource": f"job-{i}", "instance_type": "ml.m5.xlarge",
               "instance_count": 2, "seconds": 600, "spot": i % 2 == 0} for i in range(500)]
    events += [{"kind": "bedrock:tokens", "resource": "m", "model_id": "anthropic.claude-3-haiku-20240307-v1:0",
                "input_tokens": 1000, "output_tokens": 200} for _ in range(500)]
    now = datetime.now(UTC)
    cases = [
        ("pricing.get_products (EC2, one instance type)", lambda: pricing.get_products(
            ServiceCode="AmazonEC2", Filters=[{"Type": "TERM_MATCH", "Field": "instanceType", "Value": "g5.xlarge"}])),
        ("pricing.get_products (SageMaker, all pages)", lambda: list(pricing.get_paginator("get_products").paginate(
            ServiceCode="AmazonSageMaker"))),
        ("ec2.describe_spot_price_history (3 types, 7 days)", lambda: ec2.describe_spot_price_history(
            InstanceTypes=["p3.8xlarge", "p4d.24xlarge", "g5.12xlarge"], StartTime=now - timedelta(days=7))),
        ("meter.price_events (1,000 events)", lambda: meter.price_events(events)),
    ]
    rows = ["### Cost: offline Pricing API, spot history, the meter", "",
            "| operation | best of 5 (ms) |", "|---|---|"]
    for name, fn in cases:
        rows.append(f"| {name} | {_time(fn) * 1000:.1f} |")
    usage.reset()
    return "\n".join(rows)


if __name__ == "__main__":
    print(main())
