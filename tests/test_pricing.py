"""The price catalogue, the offline Pricing API and the offline spot price history."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError

from labkit.cost import catalogue as cat
from labkit.cost.refresh import on_demand_usd, refresh
from labkit.offline import pricing as offline_pricing


@pytest.fixture(scope="module")
def pricing(lab):
    return boto3.client("pricing", region_name="us-east-1")


@pytest.fixture(scope="module")
def ec2(lab):
    return boto3.client("ec2", region_name="us-east-1")


# --- the catalogue ----------------------------------------------------------------------


def test_every_price_has_region_unit_source_and_date():
    catalogue = cat.load()
    assert len(catalogue.prices) > 200
    for p in catalogue.prices:
        assert p.region == "us-east-1", p.sku
        assert p.unit and p.price_usd >= 0, p.sku
        assert p.source.startswith("https://aws.amazon.com/"), p.sku
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", p.read_on), p.sku
        # stored-page: read from a stored (undated) copy of the public pricing page, not from AWS itself
        assert p.method in ("recalled", "stored-page", "pricing-api"), p.sku
        assert p.verified == (p.method == "pricing-api"), p.sku
        assert p.offer_file.startswith("https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/"), p.sku


def test_catalogue_covers_the_families_and_models_the_labs_use():
    catalogue = cat.load()
    for family in ("m5", "c5", "g4dn", "g5", "p3", "p4d", "p5", "trn1"):
        size = {"p4d": "24xlarge", "p5": "48xlarge", "trn1": "32xlarge"}.get(family, "2xlarge")
        assert catalogue.sagemaker_instance(f"ml.{family}.{size}", "training").price_usd > 0
        assert catalogue.ec2_instance(f"{family}.{size}").price_usd > 0
    assert catalogue.sagemaker_instance("ml.inf2.xlarge", "hosting").price_usd > 0
    for model in ("anthropic.claude-3-haiku-20240307-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1:0",
                  "anthropic.claude-3-5-haiku-20241022-v1:0", "amazon.titan-text-express-v1",
                  "amazon.titan-embed-text-v2:0", "cohere.embed-english-v3", "meta.llama3-70b-instruct-v1:0"):
        assert catalogue.bedrock(model).price_usd > 0
    assert catalogue.s3_storage("DEEP_ARCHIVE").price_usd < catalogue.s3_storage("STANDARD").price_usd
    assert catalogue.find("AmazonEC2", volume_type="gp3")
    assert catalogue.find("AmazonEFS") and catalogue.find("AmazonFSx")


def test_lookups_explain_what_is_missing():
    catalogue = cat.load()
    with pytest.raises(cat.PriceNotFound, match="ml.m5.large"):
        catalogue.sagemaker_instance("ml.m5.3xlarge")
    with pytest.raises(cat.PriceNotFound, match="'ml.g5.xlarge'"):
        catalogue.sagemaker_instance("g5.xlarge")
    with pytest.raises(ValueError, match="MemorySizeInMB"):
        catalogue.serverless(1500)
    # inference profiles and ARNs are priced as their model
    assert catalogue.bedrock("us.anthropic.claude-3-haiku-20240307-v1:0").price_usd == 0.00025
    assert catalogue.base_model_id(
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0") == "amazon.titan-embed-text-v2:0"


def test_seed_figures_agree_or_their_disagreement_is_recorded():
    """Seed 001 quotes EC2 prices; the catalogue agrees to the cent or says why not."""
    catalogue = cat.load()
    seed_001 = {"g5.48xlarge": 16.29, "g4dn.12xlarge": 3.91, "trn1.32xlarge": 21.50, "inf2.48xlarge": 12.98,
                "p3.8xlarge": 12.24, "g5.12xlarge": 5.67, "p4d.24xlarge": 32.77, "p5.48xlarge": 98.32}
    for itype, seed in seed_001.items():
        price = catalogue.ec2_instance(itype)
        if abs(price.price_usd - seed) > 0.01:
            assert str(seed) in price.notes, f"{itype}: seed says {seed}, catalogue {price.price_usd}, no note"
    assert catalogue.ec2_instance("p3.2xlarge").price_usd == 3.06  # seed 003's on-demand figure
    readme = (cat.pricing_dir() / "README.md").read_text()
    for figure in ("98.32", "32.77", "0.269", "0.7"):
        assert figure in readme


def test_tiered_storage_cost():
    standard = cat.load().s3_storage("STANDARD")
    assert standard.tiered_cost(100) == pytest.approx(2.3)
    assert standard.tiered_cost(51200 + 1000) == pytest.approx(51200 * 0.023 + 1000 * 0.022)


# --- the Pricing API --------------------------------------------------------------------------


def test_get_products_has_the_price_list_shape(pricing):
    response = pricing.get_products(ServiceCode="AmazonEC2", Filters=[
        {"Type": "TERM_MATCH", "Field": "instanceType", "Value": "g5.xlarge"},
        {"Type": "TERM_MATCH", "Field": "location", "Value": "US East (N. Virginia)"},
        {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
        {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
        {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
        {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"}])
    assert response["FormatVersion"] == "aws_v1"
    assert len(response["PriceList"]) == 1
    item = json.loads(response["PriceList"][0])  # AWS returns JSON strings
    assert item["serviceCode"] == "AmazonEC2"
    assert item["product"]["attributes"]["instanceType"] == "g5.xlarge"
    assert item["product"]["productFamily"] == "Compute Instance"
    term = next(iter(item["terms"]["OnDemand"].values()))
    dimension = next(iter(term["priceDimensions"].values()))
    assert dimension["unit"] == "Hrs"
    assert float(dimension["pricePerUnit"]["USD"]) == cat.load().ec2_instance("g5.xlarge").price_usd
    assert term["offerTermCode"] == "JRTCKXETXF" and term["sku"] == item["product"]["sku"]


def test_get_products_sagemaker_bedrock_and_filter_types(pricing):
    response = pricing.get_products(ServiceCode="AmazonSageMaker", Filters=[
        {"Type": "TERM_MATCH", "Field": "instanceName", "Value": "ml.p3.2xlarge"},
        {"Type": "EQUALS", "Field": "component", "Value": "Training"}])
    [item] = [json.loads(x) for x in response["PriceList"]]
    assert on_demand_usd(item) == [3.825]
    any_of = pricing.get_products(ServiceCode="AmazonSageMaker", Filters=[
        {"Type": "ANY_OF", "Field": "instanceName", "Value": "ml.g5.xlarge,ml.g4dn.xlarge"},
        {"Type": "TERM_MATCH", "Field": "component", "Value": "hosting"}])  # TERM_MATCH ignores case
    names = sorted(json.loads(x)["product"]["attributes"]["instanceName"] for x in any_of["PriceList"])
    assert names == ["ml.g4dn.xlarge", "ml.g5.xlarge"]
    contains = pricing.get_products(ServiceCode="AmazonBedrock", Filters=[
        {"Type": "CONTAINS", "Field": "model", "Value": "Claude 3 Haiku"},
        {"Type": "TERM_MATCH", "Field": "inferenceType", "Value": "Output tokens"}])
    [haiku] = [json.loads(x) for x in contains["PriceList"]]
    assert on_demand_usd(haiku) == [0.00125]
    none = pricing.get_products(ServiceCode="AmazonEC2", Filters=[
        {"Type": "TERM_MATCH", "Field": "instanceType", "Value": "x2idn.metal"}])
    assert none["PriceList"] == []


def test_get_products_pages(pricing):
    first = pricing.get_products(ServiceCode="AmazonEC2", MaxResults=10)
    assert len(first["PriceList"]) == 10 and first["NextToken"]
    second = pricing.get_products(ServiceCode="AmazonEC2", MaxResults=10, NextToken=first["NextToken"])
    assert set(first["PriceList"]).isdisjoint(second["PriceList"])
    everything = [x for page in pricing.get_paginator("get_products").paginate(ServiceCode="AmazonEC2")
                  for x in page["PriceList"]]
    assert len(everything) == len(cat.load().find("AmazonEC2"))


def test_pricing_errors_are_awss(pricing):
    with pytest.raises(ClientError) as err:
        pricing.get_products(ServiceCode="AmazonNoSuchThing")
    assert err.value.response["Error"]["Code"] == "NotFoundException"
    with pytest.raises(ClientError) as err:
        pricing.get_products(ServiceCode="AmazonEC2", FormatVersion="aws_v2")
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError) as err:
        pricing.get_products(ServiceCode="AmazonEC2", NextToken="not-a-token!")
    assert err.value.response["Error"]["Code"] == "InvalidNextTokenException"


def test_describe_services_and_attribute_values(pricing):
    services = {s["ServiceCode"]: s["AttributeNames"] for s in pricing.describe_services()["Services"]}
    assert {"AmazonEC2", "AmazonSageMaker", "AmazonBedrock", "AmazonS3", "AmazonEFS", "AmazonFSx"} <= set(services)
    assert "instanceType" in services["AmazonEC2"] and "component" in services["AmazonSageMaker"]
    one = pricing.describe_services(ServiceCode="AmazonSageMaker")["Services"]
    assert [s["ServiceCode"] for s in one] == ["AmazonSageMaker"]
    values = [v["Value"] for page in pricing.get_paginator("get_attribute_values").paginate(
        ServiceCode="AmazonSageMaker", AttributeName="instanceName") for v in page["AttributeValues"]]
    assert "ml.g5.xlarge" in values and values == sorted(set(values))
    classes = pricing.get_attribute_values(ServiceCode="AmazonS3", AttributeName="volumeType")["AttributeValues"]
    assert {"Value": "Glacier Deep Archive"} in classes


def _only(pricing, code: str, **terms: str) -> list[dict]:
    filters = [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in terms.items()]
    return [json.loads(x) for x in pricing.get_products(ServiceCode=code, Filters=filters)["PriceList"]]


def test_the_other_services_of_the_labs_are_in_the_price_list(pricing):
    """Athena, Kinesis, CloudWatch, KMS, CloudTrail, Glue, EMR (services.json) answer in the Price List shape."""
    services = {s["ServiceCode"] for s in pricing.describe_services()["Services"]}
    assert {"AmazonAthena", "AmazonKinesis", "AmazonCloudWatch", "awskms", "AWSCloudTrail", "AWSGlue",
            "ElasticMapReduce"} <= services
    [athena] = _only(pricing, "AmazonAthena", usagetype="USE1-DataScannedInTB")
    assert athena["serviceCode"] == "AmazonAthena" and athena["product"]["productFamily"] == "Athena Queries"
    assert athena["product"]["attributes"]["servicename"] == "Amazon Athena"
    assert athena["product"]["attributes"]["regionCode"] == "us-east-1"
    assert on_demand_usd(athena) == [5.0]
    [shards] = _only(pricing, "AmazonKinesis", group="Storage-ShardHour")
    assert on_demand_usd(shards) == [0.015]
    [key] = _only(pricing, "awskms", usagetype="KMS-Keys")
    assert on_demand_usd(key) == [1.0] and key["labkitProvenance"]["method"] == "stored-page"
    [metric] = _only(pricing, "AmazonCloudWatch", usagetype="CW:MetricMonitorUsage")
    dims = sorted(next(iter(metric["terms"]["OnDemand"].values()))["priceDimensions"].values(),
                  key=lambda d: float(d["beginRange"]))
    assert [(d["beginRange"], d["endRange"], float(d["pricePerUnit"]["USD"])) for d in dims] == [
        ("0", "10000", 0.30), ("10000", "250000", 0.10), ("250000", "1000000", 0.05), ("1000000", "Inf", 0.02)]
    guardrails = _only(pricing, "AmazonBedrock", productFamily="Amazon Bedrock Guardrails")
    by_policy = {g["product"]["attributes"]["policyType"]: on_demand_usd(g)[0] for g in guardrails}
    assert by_policy["ContentPolicy"] == 0.15 and by_policy["TopicPolicy"] == 0.15
    assert by_policy["WordPolicy"] == 0.0 and by_policy["SensitiveInformationPolicy"] == 0.10
    [vectors] = _only(pricing, "AmazonS3", productFamily="Vector Storage")
    assert on_demand_usd(vectors) == [0.06]
    trail_types = [v["Value"] for v in pricing.get_attribute_values(
        ServiceCode="AWSCloudTrail", AttributeName="usagetype")["AttributeValues"]]
    assert "USE1-DataEventsRecorded" in trail_types
    emr = _only(pricing, "ElasticMapReduce", instanceType="m5.xlarge")
    assert [on_demand_usd(e) for e in emr] == [[0.048]]
    for code in ("AmazonAthena", "AmazonKinesis", "AmazonCloudWatch", "awskms", "AWSCloudTrail", "AWSGlue"):
        listed = [x for page in pricing.get_paginator("get_products").paginate(ServiceCode=code)
                  for x in page["PriceList"]]
        assert len(listed) == len(cat.load().find(code)), code


def test_refresh_reads_prices_through_the_pricing_api(pricing, tmp_path):
    """``labkit cost refresh`` against the offline API: a wrong figure is replaced and marked read."""
    for f in cat.pricing_dir().glob("*.json"):
        shutil.copy(f, tmp_path / f.name)
    doc = json.loads((tmp_path / "ec2.json").read_text())
    entry = next(p for p in doc["prices"] if p["instance_type"] == "m5.large")
    entry["price_usd"] = 9.99
    (tmp_path / "ec2.json").write_text(json.dumps(doc))
    report = refresh(pricing, tmp_path, today="2030-01-02", only="ec2")
    assert "ec2:BoxUsage:m5.large: 9.99 -> 0.096" in report["updated"]
    assert not report["ambiguous"]
    fresh = cat.Catalogue(tmp_path).ec2_instance("m5.large")
    assert (fresh.price_usd, fresh.read_on, fresh.verified, fresh.method) == (0.096, "2030-01-02", True, "pricing-api")
    assert fresh.source.startswith("https://pricing.us-east-1.amazonaws.com/")


# --- spot price history ------------------------------------------------------------------------


def test_spot_price_history_is_plausible_and_documented(ec2):
    now = datetime.now(UTC)
    response = ec2.describe_spot_price_history(
        InstanceTypes=["p3.8xlarge", "p4d.24xlarge", "g5.12xlarge"], ProductDescriptions=["Linux/UNIX"],
        StartTime=now - timedelta(hours=1), EndTime=now)
    history = response["SpotPriceHistory"]
    assert {h["InstanceType"] for h in history} == {"p3.8xlarge", "p4d.24xlarge", "g5.12xlarge"}
    catalogue = cat.load()
    for h in history:
        on_demand = catalogue.ec2_instance(h["InstanceType"]).price_usd
        savings, record = catalogue.spot_savings(h["InstanceType"])
        assert record["source"].startswith("https://aws.amazon.com/ec2/spot/")
        price = float(h["SpotPrice"])
        assert on_demand * (1 - savings) * 0.92 <= price <= on_demand * (1 - savings) * 1.08
        assert h["ProductDescription"] == "Linux/UNIX" and h["Timestamp"] <= now
        assert h["AvailabilityZone"].startswith("us-east-1")
    # every (type, zone) has the price in effect at StartTime
    assert len({(h["InstanceType"], h["AvailabilityZone"]) for h in history}) == 5 + 2 + 5
    again = ec2.describe_spot_price_history(
        InstanceTypes=["p3.8xlarge", "p4d.24xlarge", "g5.12xlarge"], ProductDescriptions=["Linux/UNIX"],
        StartTime=now - timedelta(hours=1), EndTime=now)["SpotPriceHistory"]
    assert again == history  # deterministic


def test_spot_history_over_days_changes_filters_and_pages(ec2):
    now = datetime.now(UTC)
    day = ec2.describe_spot_price_history(InstanceTypes=["g4dn.xlarge"], StartTime=now - timedelta(days=2),
                                          Filters=[{"Name": "availability-zone", "Values": ["us-east-1a"]}])
    history = day["SpotPriceHistory"]
    assert 12 <= len(history) <= 14  # a change every 4 hours
    assert {h["AvailabilityZone"] for h in history} == {"us-east-1a"}
    stamps = [h["Timestamp"] for h in history]
    assert stamps == sorted(stamps, reverse=True)
    assert len({h["SpotPrice"] for h in history}) > 1
    pages = list(ec2.get_paginator("describe_spot_price_history").paginate(
        InstanceTypes=["g4dn.xlarge"], StartTime=now - timedelta(days=2), PaginationConfig={"PageSize": 10}))
    assert len(pages) >= 6 and all(len(p["SpotPriceHistory"]) <= 10 for p in pages)
    total = sum(len(p["SpotPriceHistory"]) for p in pages)
    assert total == len(ec2.describe_spot_price_history(InstanceTypes=["g4dn.xlarge"],
                                                        StartTime=now - timedelta(days=2))["SpotPriceHistory"])
    current = ec2.describe_spot_price_history(InstanceTypes=["m5.large"])["SpotPriceHistory"]
    assert len(current) == len(offline_pricing.ALL_ZONES)  # no StartTime: the price in effect now


def test_spot_history_pages_as_aws_does_a_thousand_records_by_default(ec2):
    now = datetime.now(UTC)
    request = {"InstanceTypes": ["p4d.24xlarge", "p5.48xlarge", "g5.xlarge", "g5.12xlarge", "g4dn.xlarge",
                                 "trn1.32xlarge", "inf2.xlarge", "m5.large"],
               "ProductDescriptions": ["Linux/UNIX"], "StartTime": now - timedelta(days=7), "EndTime": now}
    first = ec2.describe_spot_price_history(**request)
    assert len(first["SpotPriceHistory"]) == 1000 and first["NextToken"]
    pages = list(ec2.get_paginator("describe_spot_price_history").paginate(**request))
    records = [r for page in pages for r in page["SpotPriceHistory"]]
    assert len(pages) >= 2 and len(records) > 1000 and pages[-1]["NextToken"] == ""
    assert len({(r["InstanceType"], r["AvailabilityZone"], r["Timestamp"]) for r in records}) == len(records)
    oldest_on_first_page = min(r["Timestamp"] for r in first["SpotPriceHistory"])
    assert oldest_on_first_page > now - timedelta(days=6), "the first page holds only the newest records"
    small = ec2.describe_spot_price_history(**request, MaxResults=5)
    assert len(small["SpotPriceHistory"]) == 5
    again = ec2.describe_spot_price_history(**request, MaxResults=5, NextToken=small["NextToken"])
    assert again["SpotPriceHistory"] == records[5:10]
    for bad, code in (({"MaxResults": 1001}, "InvalidParameterValue"), ({"NextToken": "nope!"}, "InvalidPaginationToken")):
        with pytest.raises(ClientError) as err:
            ec2.describe_spot_price_history(**request, **bad)
        assert err.value.response["Error"]["Code"] == code


def test_spot_history_rejects_what_aws_rejects(ec2):
    with pytest.raises(ClientError) as err:
        ec2.describe_spot_price_history(InstanceTypes=["ml.p3.2xlarge"])
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "ml." in err.value.response["Error"]["Message"]
    windows = ec2.describe_spot_price_history(InstanceTypes=["m5.large"], ProductDescriptions=["Windows"])
    assert windows["SpotPriceHistory"] == []  # only Linux/UNIX is in the catalogue
