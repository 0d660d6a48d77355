"""Feature Store offline: feature groups, the runtime API (online store), the Parquet offline store."""

from __future__ import annotations

import io

import boto3
import botocore.exceptions
import pyarrow.parquet as pq
import pytest

from labkit.offline.mlops.featurestore import api as fs_api

DEFS = [{"FeatureName": "customer_id", "FeatureType": "String"},
        {"FeatureName": "event_time", "FeatureType": "String"},
        {"FeatureName": "calls", "FeatureType": "Integral"},
        {"FeatureName": "spend", "FeatureType": "Fractional"}]


@pytest.fixture(scope="module")
def aws(lab):
    sm, rt = boto3.client("sagemaker"), boto3.client("sagemaker-featurestore-runtime")
    sm.create_feature_group(
        FeatureGroupName="customers", RecordIdentifierFeatureName="customer_id", EventTimeFeatureName="event_time",
        FeatureDefinitions=DEFS, OnlineStoreConfig={"EnableOnlineStore": True},
        OfflineStoreConfig={"S3StorageConfig": {"S3Uri": f"s3://{lab.bucket}/fs"}}, RoleArn=lab.role_arn)
    return lab, sm, rt


def rec(cid, when, calls, spend):
    return [{"FeatureName": "customer_id", "ValueAsString": cid}, {"FeatureName": "event_time", "ValueAsString": when},
            {"FeatureName": "calls", "ValueAsString": str(calls)}, {"FeatureName": "spend", "ValueAsString": str(spend)}]


def test_create_feature_group_without_offline_store_does_not_crash(lab):
    sm = boto3.client("sagemaker")
    sm.create_feature_group(FeatureGroupName="online-only", RecordIdentifierFeatureName="customer_id",
                            EventTimeFeatureName="event_time", FeatureDefinitions=DEFS,
                            OnlineStoreConfig={"EnableOnlineStore": True})
    described = sm.describe_feature_group(FeatureGroupName="online-only")
    assert described["FeatureGroupStatus"] == "Created" and "OfflineStoreConfig" not in described
    sm.delete_feature_group(FeatureGroupName="online-only")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sm.describe_feature_group(FeatureGroupName="online-only")
    assert err.value.response["Error"]["Code"] == "ResourceNotFound"


def test_offline_store_layout_and_glue_table(aws):
    lab, sm, _ = aws
    described = sm.describe_feature_group(FeatureGroupName="customers")
    s3 = described["OfflineStoreConfig"]["S3StorageConfig"]
    assert s3["ResolvedOutputS3Uri"].startswith(f"s3://{lab.bucket}/fs/123456789012/sagemaker/us-east-1/"
                                                "offline-store/customers-")
    assert s3["ResolvedOutputS3Uri"].endswith("/data")
    catalog = described["OfflineStoreConfig"]["DataCatalogConfig"]
    table = boto3.client("glue").get_table(DatabaseName=catalog["Database"], Name=catalog["TableName"])["Table"]
    assert table["StorageDescriptor"]["Location"] == s3["ResolvedOutputS3Uri"]
    assert {"Name": "calls", "Type": "bigint"} in table["StorageDescriptor"]["Columns"]
    assert [p["Name"] for p in table["PartitionKeys"]] == ["year", "month", "day", "hour"]


@pytest.mark.parametrize("change, code", [
    ({"EventTimeFeatureName": "missing"}, "ValidationException"),
    ({"FeatureDefinitions": DEFS + [{"FeatureName": "write_time", "FeatureType": "String"}]}, "ValidationException"),
    ({"OnlineStoreConfig": {"EnableOnlineStore": False}}, "ValidationException"),
    ({"FeatureGroupName": "customers"}, "ResourceInUse"),
])
def test_invalid_feature_groups_are_refused(aws, change, code):
    _, sm, _ = aws
    request = {"FeatureGroupName": "bad", "RecordIdentifierFeatureName": "customer_id",
               "EventTimeFeatureName": "event_time", "FeatureDefinitions": DEFS,
               "OnlineStoreConfig": {"EnableOnlineStore": True}}
    request.update(change)
    if change.get("FeatureGroupName") == "customers":
        request["OfflineStoreConfig"] = {"S3StorageConfig": {"S3Uri": "s3://b/x"}}
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sm.create_feature_group(**request)
    assert err.value.response["Error"]["Code"] == code


def test_put_get_round_trip_keeps_the_latest_event(aws):
    _, _, rt = aws
    rt.put_record(FeatureGroupName="customers", Record=rec("c1", "2024-01-01T00:00:00Z", 3, 10.5))
    rt.put_record(FeatureGroupName="customers", Record=rec("c1", "2024-03-01T00:00:00Z", 5, 12.25))
    rt.put_record(FeatureGroupName="customers", Record=rec("c1", "2023-12-01T00:00:00Z", 9, 1.0))  # older: ignored online
    got = {f["FeatureName"]: f["ValueAsString"] for f in rt.get_record(
        FeatureGroupName="customers", RecordIdentifierValueAsString="c1")["Record"]}
    assert got == {"customer_id": "c1", "event_time": "2024-03-01T00:00:00Z", "calls": "5", "spend": "12.25"}
    some = rt.get_record(FeatureGroupName="customers", RecordIdentifierValueAsString="c1", FeatureNames=["spend"])
    assert some["Record"] == [{"FeatureName": "spend", "ValueAsString": "12.25"}]
    assert "Record" not in rt.get_record(FeatureGroupName="customers", RecordIdentifierValueAsString="nobody")


@pytest.mark.parametrize("record, needle", [
    (rec("c2", "yesterday", 1, 1.0), "format"),
    (rec("c2", "2024-01-01T00:00:00Z", "many", 1.0), "Integral"),
    ([{"FeatureName": "customer_id", "ValueAsString": "c2"}], "event_time"),
    (rec("c2", "2024-01-01T00:00:00Z", 1, 1.0) + [{"FeatureName": "age", "ValueAsString": "3"}], "not defined"),
])
def test_invalid_records_are_refused(aws, record, needle):
    _, _, rt = aws
    with pytest.raises(botocore.exceptions.ClientError) as err:
        rt.put_record(FeatureGroupName="customers", Record=record)
    assert err.value.response["Error"]["Code"] == "ValidationError"
    assert needle in err.value.response["Error"]["Message"]


def test_unknown_group_is_not_found(aws):
    _, _, rt = aws
    with pytest.raises(botocore.exceptions.ClientError) as err:
        rt.get_record(FeatureGroupName="nope", RecordIdentifierValueAsString="c1")
    assert err.value.response["Error"]["Code"] == "ResourceNotFound"


def test_delete_and_batch_get(aws):
    _, _, rt = aws
    rt.put_record(FeatureGroupName="customers", Record=rec("c3", "2024-02-01T00:00:00Z", 1, 2.0))
    rt.put_record(FeatureGroupName="customers", Record=rec("c4", "2024-02-01T00:00:00Z", 2, 4.0))
    rt.delete_record(FeatureGroupName="customers", RecordIdentifierValueAsString="c3",
                     EventTime="2024-02-02T00:00:00Z")
    batch = rt.batch_get_record(Identifiers=[
        {"FeatureGroupName": "customers", "RecordIdentifiersValueAsString": ["c3", "c4"]},
        {"FeatureGroupName": "nope", "RecordIdentifiersValueAsString": ["x"]}])
    assert [r["RecordIdentifierValueAsString"] for r in batch["Records"]] == ["c4"]
    assert batch["Errors"][0]["ErrorCode"] == "ResourceNotFound"


def test_offline_store_has_every_write_as_parquet(aws):
    lab, sm, rt = aws
    fs_api.flush_offline_stores()
    uri = sm.describe_feature_group(FeatureGroupName="customers")["OfflineStoreConfig"]["S3StorageConfig"][
        "ResolvedOutputS3Uri"]
    s3 = boto3.client("s3")
    prefix = uri.split("/", 3)[3]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=lab.bucket, Prefix=prefix)["Contents"]]
    assert all(k.endswith(".parquet") and "/year=" in k and "/hour=" in k for k in keys)
    assert any("/year=2023/month=12/day=01/hour=00/20231201T000000Z_" in k for k in keys)
    tables = [pq.read_table(io.BytesIO(s3.get_object(Bucket=lab.bucket, Key=k)["Body"].read())) for k in keys]
    rows = [r for t in tables for r in t.to_pylist()]
    c1 = sorted((r["event_time"], r["calls"]) for r in rows if r["customer_id"] == "c1")
    assert c1 == [("2023-12-01T00:00:00Z", 9), ("2024-01-01T00:00:00Z", 3), ("2024-03-01T00:00:00Z", 5)]
    deleted = [r for r in rows if r["customer_id"] == "c3" and r["is_deleted"]]
    assert len(deleted) == 1 and deleted[0]["event_time"] == "2024-02-02T00:00:00Z"
    assert tables[0].schema.field("spend").type == "double" and tables[0].schema.field("calls").type == "int64"
    assert str(tables[0].schema.field("write_time").type).startswith("timestamp")


def test_ttl_expires_online_records(aws):
    _, sm, rt = aws
    sm.create_feature_group(FeatureGroupName="ttl", RecordIdentifierFeatureName="customer_id",
                            EventTimeFeatureName="event_time", FeatureDefinitions=DEFS,
                            OnlineStoreConfig={"EnableOnlineStore": True, "TtlDuration": {"Unit": "Days", "Value": 1}})
    rt.put_record(FeatureGroupName="ttl", Record=rec("old", "2020-01-01T00:00:00Z", 1, 1.0))
    assert "Record" not in rt.get_record(FeatureGroupName="ttl", RecordIdentifierValueAsString="old")


def test_sdk_v3_ingest_dataframe_puts_records(aws):
    import pandas as pd
    from sagemaker.mlops.feature_store.feature_utils import ingest_dataframe

    _, _, rt = aws
    frame = pd.DataFrame({"customer_id": ["s1", "s2"], "event_time": ["2024-05-01T00:00:00Z"] * 2,
                          "calls": [1, 2], "spend": [0.5, 1.5]})
    ingest_dataframe("customers", frame, max_workers=1, wait=True)
    got = rt.get_record(FeatureGroupName="customers", RecordIdentifierValueAsString="s2")["Record"]
    assert {"FeatureName": "spend", "ValueAsString": "1.5"} in got
