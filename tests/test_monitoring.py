"""Offline CloudWatch alarm evaluation and request checks; CloudTrail's bucket-policy check."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError

NS, DIMS = "ML/Models", [{"Name": "ModelName", "Value": "fraud-v1"}]


def put(values, name="InferenceLatency", dims=DIMS, unit="Milliseconds", step=60):
    now = datetime.now(UTC)
    boto3.client("cloudwatch").put_metric_data(Namespace=NS, MetricData=[
        {"MetricName": name, "Dimensions": dims, "Value": v, "Unit": unit,
         "Timestamp": now - timedelta(seconds=step * i)} for i, v in enumerate(values)])


def alarm(name, **kw):
    cw = boto3.client("cloudwatch")
    args = {"AlarmName": name, "Namespace": NS, "MetricName": "InferenceLatency", "Dimensions": DIMS,
            "Statistic": "Average", "Period": 60, "EvaluationPeriods": 3, "Threshold": 100.0,
            "ComparisonOperator": "GreaterThanThreshold"} | kw
    cw.put_metric_alarm(**{k: v for k, v in args.items() if v is not None})
    return cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]


def test_new_alarm_without_data_is_insufficient(lab):
    a = alarm("empty", MetricName="Nothing")
    assert a["StateValue"] == "INSUFFICIENT_DATA"


def test_alarm_goes_to_alarm_and_back(lab):
    put([250, 240, 260])
    a = alarm("latency")
    assert a["StateValue"] == "ALARM"
    assert a["StateReason"].startswith("Threshold Crossed: 3 out of the last 3 datapoints")
    data = json.loads(a["StateReasonData"])
    assert data["threshold"] == 100.0 and len(data["evaluatedDatapoints"]) == 3
    cw = boto3.client("cloudwatch")
    now = datetime.now(UTC)
    cw.put_metric_data(Namespace=NS, MetricData=[  # 100 fast requests in each period: averages fall to ~3.5
        {"MetricName": "InferenceLatency", "Dimensions": DIMS, "Values": [1.0], "Counts": [100.0],
         "Unit": "Milliseconds", "Timestamp": now - timedelta(seconds=60 * i)} for i in range(3)])
    after = cw.describe_alarms(AlarmNames=["latency"])["MetricAlarms"][0]
    assert after["StateValue"] == "OK"
    history = cw.describe_alarm_history(AlarmName="latency")["AlarmHistoryItems"]
    assert history  # the transitions are recorded


def test_dimensions_must_match_exactly(lab):
    put([500, 500, 500], name="Other", dims=[{"Name": "ModelName", "Value": "m2"}])
    seed_like = alarm("no-dims", MetricName="Other", Dimensions=[])
    assert seed_like["StateValue"] == "INSUFFICIENT_DATA"  # watches the metric without dimensions
    right = alarm("dims", MetricName="Other", Dimensions=[{"Name": "ModelName", "Value": "m2"}])
    assert right["StateValue"] == "ALARM"


def test_m_out_of_n_and_missing_data(lab):
    dims = [{"Name": "ModelName", "Value": "mofn"}]
    put([500, 10, 500], name="Lat", dims=dims)
    assert alarm("two-of-three", MetricName="Lat", Dimensions=dims, DatapointsToAlarm=2)["StateValue"] == "ALARM"
    assert alarm("three-of-three", MetricName="Lat", Dimensions=dims)["StateValue"] == "OK"
    quiet = [{"Name": "ModelName", "Value": "quiet"}]
    assert alarm("missing-bad", MetricName="Lat", Dimensions=quiet, TreatMissingData="breaching")["StateValue"] == "ALARM"
    assert alarm("missing-ok", MetricName="Lat", Dimensions=quiet, TreatMissingData="notBreaching")["StateValue"] == "OK"


def test_percentile_and_less_than(lab):
    dims = [{"Name": "ModelName", "Value": "pct"}]
    now = datetime.now(UTC)
    boto3.client("cloudwatch").put_metric_data(Namespace=NS, MetricData=[
        {"MetricName": "Lat", "Dimensions": dims, "Value": float(v), "Timestamp": now} for v in range(1, 101)])
    p90 = alarm("p90", MetricName="Lat", Dimensions=dims, Statistic=None, ExtendedStatistic="p90",
                EvaluationPeriods=1, Threshold=80.0)
    assert p90["StateValue"] == "ALARM"  # average is 50.5, p90 is ~90
    avg = alarm("avg", MetricName="Lat", Dimensions=dims, EvaluationPeriods=1, Threshold=80.0)
    assert avg["StateValue"] == "OK"
    low = alarm("low", MetricName="Lat", Dimensions=dims, EvaluationPeriods=1, Threshold=60.0,
                ComparisonOperator="LessThanThreshold")
    assert low["StateValue"] == "ALARM"


def test_statistics_and_percentiles_are_read_back(lab):
    dims = [{"Name": "ModelName", "Value": "stats"}]
    cw = boto3.client("cloudwatch")
    now = datetime.now(UTC)
    cw.put_metric_data(Namespace=NS, MetricData=[{"MetricName": "Lat", "Dimensions": dims, "Unit": "Milliseconds",
                                                  "Values": [float(v) for v in range(1, 101)], "Timestamp": now}])
    window = {"Namespace": NS, "MetricName": "Lat", "StartTime": now - timedelta(minutes=5),
              "EndTime": now + timedelta(minutes=1), "Period": 60}
    (point,) = cw.get_metric_statistics(**window, Dimensions=dims, Statistics=["Average", "Maximum"],
                                        ExtendedStatistics=["p90", "p99.9"])["Datapoints"]
    assert point["Average"] == 50.5 and point["Maximum"] == 100 and point["Unit"] == "Milliseconds"
    assert 89 < point["ExtendedStatistics"]["p90"] < 91 and point["ExtendedStatistics"]["p99.9"] > 99
    assert cw.get_metric_statistics(**window, Statistics=["Average"])["Datapoints"] == []  # other dimensions
    assert cw.get_metric_statistics(**window, Dimensions=dims, Statistics=["Sum"], Unit="Seconds")["Datapoints"] == []
    for bad, code in (({}, "InvalidParameterCombination"), ({"ExtendedStatistics": ["median"]}, "InvalidParameterValue")):
        with pytest.raises(ClientError) as err:
            cw.get_metric_statistics(**window, Dimensions=dims, **bad)
        assert err.value.response["Error"]["Code"] == code


@pytest.mark.parametrize("kw, code", [
    ({"Period": 45}, "InvalidParameterValue"),
    ({"Statistic": None}, "InvalidParameterCombination"),
    ({"ExtendedStatistic": "p99"}, "InvalidParameterCombination"),
    ({"DatapointsToAlarm": 5}, "ValidationError"),
    ({"TreatMissingData": "zero"}, "ValidationError"),
    ({"Unit": "ms"}, "InvalidParameterValue"),
    ({"ComparisonOperator": ">"}, "InvalidParameterValue"),
])
def test_bad_alarms_are_refused(lab, kw, code):
    with pytest.raises(ClientError) as err:
        alarm("bad", **kw)
    assert err.value.response["Error"]["Code"] == code


@pytest.mark.parametrize("datum, fragment", [
    ({"Unit": "ms"}, "Unit must be a value in the set"),
    ({"Timestamp": datetime.now(UTC) - timedelta(days=15)}, "two weeks"),
])
def test_bad_metric_data_is_refused(lab, datum, fragment):
    with pytest.raises(ClientError) as err:
        boto3.client("cloudwatch").put_metric_data(Namespace=NS, MetricData=[
            {"MetricName": "X", "Value": 1.0, **datum}])
    assert fragment in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError):
        boto3.client("cloudwatch").put_metric_data(Namespace="AWS/SageMaker", MetricData=[{"MetricName": "X", "Value": 1.0}])


def test_dashboard_bodies_are_validated(lab):
    cw = boto3.client("cloudwatch")
    good = {"widgets": [
        {"type": "metric", "x": 0, "y": 0, "width": 12, "height": 6,
         "properties": {"metrics": [[NS, "InferenceLatency", "ModelName", "fraud-v1"]], "region": "us-east-1",
                        "stat": "p90", "period": 60, "title": "latency"}},
        {"type": "text", "x": 12, "y": 0, "width": 12, "height": 6, "properties": {"markdown": "# fraud"}}]}
    assert cw.put_dashboard(DashboardName="ml", DashboardBody=json.dumps(good))["DashboardValidationMessages"] == []
    for bad in ({"widgets": [{"type": "metric", "properties": {"metrics": [[NS, "X"]]}}]},
                {"widgets": [{"type": "graph", "properties": {}}]},
                {"widgets": [{"type": "text", "width": 30, "properties": {"markdown": "x"}}]},
                {"panels": []}):
        with pytest.raises(ClientError) as err:
            cw.put_dashboard(DashboardName="bad", DashboardBody=json.dumps(bad))
        assert err.value.response["Error"]["Code"] == "InvalidParameterInput"


def _trail_policy(bucket: str, account: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "AclCheck", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:GetBucketAcl", "Resource": f"arn:aws:s3:::{bucket}"},
        {"Sid": "Write", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/AWSLogs/{account}/*",
         "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}}}]}


def test_trail_needs_a_bucket_policy_for_cloudtrail(lab):
    s3, ct = boto3.client("s3"), boto3.client("cloudtrail")
    s3.create_bucket(Bucket="labkit-trail-logs")
    with pytest.raises(ClientError) as err:
        ct.create_trail(Name="ml-trail", S3BucketName="labkit-trail-logs")
    assert err.value.response["Error"]["Code"] == "InsufficientS3BucketPolicyException"
    policy = _trail_policy("labkit-trail-logs", lab.account_id)
    policy["Statement"] = policy["Statement"][:1]  # ACL check only: writing is still denied
    s3.put_bucket_policy(Bucket="labkit-trail-logs", Policy=json.dumps(policy))
    with pytest.raises(ClientError) as err:
        ct.create_trail(Name="ml-trail", S3BucketName="labkit-trail-logs")
    assert "s3:PutObject" in err.value.response["Error"]["Message"]
    s3.put_bucket_policy(Bucket="labkit-trail-logs", Policy=json.dumps(_trail_policy("labkit-trail-logs", lab.account_id)))
    trail = ct.create_trail(Name="ml-trail", S3BucketName="labkit-trail-logs", IsMultiRegionTrail=True,
                            EnableLogFileValidation=True)
    assert trail["LogFileValidationEnabled"] is True
    with pytest.raises(ClientError):  # the policy allows AWSLogs/ at the root, not under a prefix
        ct.update_trail(Name="ml-trail", S3KeyPrefix="trails")
    ct.delete_trail(Name="ml-trail")
