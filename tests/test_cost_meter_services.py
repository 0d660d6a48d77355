"""The meter for Athena, Kinesis, CloudWatch, KMS, Glue, CloudTrail, EMR, Bedrock Guardrails and S3 Vectors.

Figures are computed by hand from data/pricing/services.json (recalled us-east-1 prices):
Athena $5/TB, 10 MB minimum; Kinesis $0.015/shard-hour, $0.014 per million PUT payload
units; CloudWatch $0.30 per metric-month, $0.10/$0.30 per alarm metric-month, $3 per
dashboard-month, $0.01 per 1,000 requests; KMS $1 per key-month, $0.03 per 10,000 requests;
guardrails $0.15 (content, topics), $0.10 (PII) per 1,000 text units; S3 Vectors $0.06 per
GB-month, $0.20 per GB put, $2.50 per million queries, $0.004/$0.002 per TB processed.
The second half drives the offline engines through boto3 and checks the events they record.
"""

from __future__ import annotations

import json

import boto3
import pytest

from labkit.cost import catalogue as cat
from labkit.cost import meter
from labkit.offline import usage

NOW = 1_800_000_000.0
MB, GB, TB = 2**20, 2**30, 2**40
MONTH_H = 730


def _rows(events):
    rows, unpriced = meter.price_events(events, now=NOW)
    return {(r.resource, r.kind): r for r in rows}, unpriced


# --- hand-computed figures ------------------------------------------------------------------------


def test_athena_rounds_up_to_the_megabyte_with_a_ten_megabyte_minimum():
    rows, unpriced = _rows([
        {"kind": "athena:query", "resource": "q1", "bytes_scanned": 3 * MB, "workgroup": "primary"},  # bills 10 MB
        {"kind": "athena:query", "resource": "q2", "bytes_scanned": 0, "workgroup": "primary"},  # bills 10 MB
        {"kind": "athena:query", "resource": "q3", "bytes_scanned": 25 * MB + 1, "workgroup": "primary"},  # 26 MB
        {"kind": "athena:query", "resource": "q4", "bytes_scanned": 3 * TB, "workgroup": "etl"},
    ])
    assert not unpriced
    primary = rows["athena workgroup primary", "athena"]
    assert primary.quantity == pytest.approx(46 * MB / TB)
    assert primary.cost == pytest.approx(46 / 2**20 * 5.00)  # $0.000219
    assert "3 queries" in primary.note and "46 MB" in primary.note
    assert rows["athena workgroup etl", "athena"].cost == pytest.approx(15.00)  # 3 TB x $5
    [one] = meter.price_events([{"kind": "athena:query", "resource": "q", "bytes_scanned": 3 * MB}], now=NOW)[0]
    assert one.cost == pytest.approx(10 * MB / TB * 5.00)  # a query scanning 3 MB bills 10 MB: $0.0000477


def test_kinesis_shard_hours_and_put_payload_units():
    rows, unpriced = _rows([
        # a 2-shard stream for 30 minutes: 1 shard-hour
        {"kind": "kinesis:stream", "resource": "clicks", "mode": "PROVISIONED", "shard_count": 2,
         "start": NOW - 3600, "end": NOW - 1800},
        # resharded to 4, still open: 4 shards x 0.25 h to now
        {"kind": "kinesis:stream", "resource": "clicks", "mode": "PROVISIONED", "shard_count": 4,
         "start": NOW - 900, "end": None},
        {"kind": "kinesis:put", "resource": "clicks", "mode": "PROVISIONED", "records": 600_000,
         "payload_units": 1_000_000, "billed_bytes": 0},
        {"kind": "kinesis:get", "resource": "clicks", "mode": "PROVISIONED", "records": 600_000,
         "billed_bytes": 10 * GB},  # free in provisioned mode
    ])
    assert not unpriced
    shards = rows["clicks", "kinesis shards"]
    assert shards.quantity == pytest.approx(2.0) and shards.cost == pytest.approx(2 * 0.015)
    assert rows["clicks", "kinesis PUT payload units"].cost == pytest.approx(0.014)
    assert ("clicks", "kinesis data out") not in rows


def test_kinesis_on_demand_stream_hours_and_data():
    rows, _ = _rows([
        {"kind": "kinesis:stream", "resource": "od", "mode": "ON_DEMAND", "shard_count": 4,
         "start": NOW - 7200, "end": NOW - 3600},
        {"kind": "kinesis:put", "resource": "od", "mode": "ON_DEMAND", "records": 1000, "payload_units": 1000,
         "billed_bytes": 2 * GB},
        {"kind": "kinesis:get", "resource": "od", "mode": "ON_DEMAND", "records": 1000, "billed_bytes": GB},
    ])
    assert rows["od", "kinesis stream (on-demand)"].cost == pytest.approx(0.04)  # per stream, not per shard
    assert rows["od", "kinesis data in"].cost == pytest.approx(2 * 0.08)
    assert rows["od", "kinesis data out"].cost == pytest.approx(0.04)


def test_cloudwatch_metrics_alarms_dashboards_and_requests():
    rows, unpriced = _rows([
        # 3 custom metrics sent during one hour: 3 metric-hours = 3/730 metric-month
        *[{"kind": "cloudwatch:metric", "resource": f"ML/Models/{m}", "namespace": "ML/Models", "hours": 1}
          for m in ("ModelAccuracy", "InferenceLatency", "Throughput")],
        # a standard alarm for 73 hours: 0.1 alarm metric-month
        {"kind": "cloudwatch:alarm", "resource": "std", "alarm_type": "metric", "alarm_metrics": 1,
         "high_resolution": False, "start": NOW - 73 * 3600, "end": NOW},
        # a high-resolution alarm for 73 hours
        {"kind": "cloudwatch:alarm", "resource": "fast", "alarm_type": "metric", "alarm_metrics": 1,
         "high_resolution": True, "start": NOW - 73 * 3600, "end": NOW},
        # a metric-math alarm on two metrics, still open: 2 alarm metrics for 73 hours
        {"kind": "cloudwatch:alarm", "resource": "math", "alarm_type": "metric", "alarm_metrics": 2,
         "high_resolution": False, "start": NOW - 73 * 3600, "end": None},
        {"kind": "cloudwatch:dashboard", "resource": "ops", "start": NOW - 730 * 3600, "end": NOW},
        *[{"kind": "cloudwatch:requests", "resource": "CloudWatch API", "operation": "PutMetricData",
           "requests": 1}] * 1000,
        {"kind": "cloudwatch:metrics-requested", "resource": "CloudWatch API", "operation": "GetMetricData",
         "metrics": 2000},
    ])
    assert not unpriced
    metrics = rows["cloudwatch ML/Models", "cloudwatch metrics"]
    assert metrics.quantity == pytest.approx(3 / MONTH_H)
    assert metrics.cost == pytest.approx(3 * 0.30 / 730)  # $0.00123
    assert rows["std", "cloudwatch alarm"].cost == pytest.approx(0.010)
    assert rows["fast", "cloudwatch alarm"].cost == pytest.approx(0.030)
    assert rows["math", "cloudwatch alarm"].cost == pytest.approx(0.020)
    assert rows["ops", "cloudwatch dashboard"].cost == pytest.approx(3.00)
    requests = rows["CloudWatch API", "cloudwatch requests"]
    assert requests.quantity == 1000 and requests.cost == pytest.approx(0.01)
    assert rows["CloudWatch API", "cloudwatch GetMetricData"].cost == pytest.approx(0.02)


def test_custom_metric_volume_tiers():
    price = cat.load().service("AmazonCloudWatch", "custom-metric")
    assert price.cost_of(10_000) == pytest.approx(3000.0)
    assert price.cost_of(20_000) == pytest.approx(10_000 * 0.30 + 10_000 * 0.10)


def test_kms_keys_prorated_and_requests():
    rows, _ = _rows([
        {"kind": "kms:key", "resource": "k1", "start": NOW - 7.3 * 3600, "end": NOW},  # 0.01 key-month
        {"kind": "kms:key", "resource": "k2", "start": NOW - 73 * 3600, "end": None},  # open: to now
        *[{"kind": "kms:requests", "resource": "KMS API", "operation": "Decrypt", "requests": 1}] * 10_000,
    ])
    assert rows["k1", "kms key"].cost == pytest.approx(0.01)
    assert rows["k2", "kms key"].cost == pytest.approx(0.10)
    assert rows["KMS API", "kms requests"].cost == pytest.approx(0.03)
    assert rows["k1", "kms key"].source == "https://aws.amazon.com/kms/pricing/"


def test_glue_objects_and_requests():
    rows, _ = _rows([
        *[{"kind": "glue:object", "resource": name, "database": "lake", "start": NOW - 730 * 3600, "end": NOW}
          for name in ("lake", "lake.t", "lake.t/2024")],
        *[{"kind": "glue:requests", "resource": "Glue Data Catalog API", "operation": "GetTable"}] * 5000,
    ])
    objects = rows["glue database lake", "glue catalog objects"]
    assert objects.quantity == pytest.approx(3.0) and objects.cost == pytest.approx(3 / 100_000)
    assert rows["Glue Data Catalog API", "glue catalog requests"].cost == pytest.approx(5000 / 1_000_000)


def test_cloudtrail_first_copy_is_free_and_what_cannot_be_counted_is_named():
    rows, unpriced = _rows([
        {"kind": "cloudtrail:trail", "resource": "t1", "copy": 1, "data_events": False,
         "start": NOW - 3600, "end": NOW},
        {"kind": "cloudtrail:trail", "resource": "t2", "copy": 1, "data_events": True,
         "start": NOW - 3600, "end": NOW},
    ])
    assert rows["t1", "cloudtrail"].cost == 0.0 and rows["t1", "cloudtrail"].quantity == pytest.approx(1.0)
    assert ("t2", "cloudtrail") not in rows
    assert any(u.startswith("t2 (cloudtrail): data events") and "$0.1 per 100K events" in u for u in unpriced)


def test_emr_cluster_is_named_with_its_rate_not_billed():
    rows, unpriced = _rows([{"kind": "emr:cluster", "resource": "j-1", "start": NOW - 600, "end": NOW,
                             "nodes": [{"role": "MASTER", "instance_type": "m5.xlarge", "count": 1,
                                        "market": "ON_DEMAND"}]}])
    assert not rows
    [note] = unpriced
    assert "j-1" in note and "not run offline" in note
    ec2 = cat.load().ec2_instance("m5.xlarge").price_usd
    assert f"${ec2 + 0.048:.2f} per hour" in note  # EC2 plus the EMR charge ($0.048/h for m5.xlarge)


def test_guardrail_text_units_per_policy():
    # one assessment of 1,500 characters: 2 text units for each policy the guardrail has
    units = {"topicPolicyUnits": 2, "contentPolicyUnits": 2, "wordPolicyUnits": 2,
             "sensitiveInformationPolicyUnits": 2, "sensitiveInformationPolicyFreeUnits": 2,
             "contextualGroundingPolicyUnits": 0}
    rows, unpriced = _rows([{"kind": "bedrock:guardrail", "resource": "g1", "guardrail_id": "g1", **units}])
    assert not unpriced
    assert rows["guardrail g1", "guardrail content filters"].cost == pytest.approx(2 * 0.15 / 1000)
    assert rows["guardrail g1", "guardrail denied topics"].cost == pytest.approx(2 * 0.15 / 1000)
    assert rows["guardrail g1", "guardrail PII"].cost == pytest.approx(2 * 0.10 / 1000)
    assert rows["guardrail g1", "guardrail word filters"].cost == 0.0  # free
    assert rows["guardrail g1", "guardrail regexes"].cost == 0.0  # free
    assert ("guardrail g1", "guardrail contextual grounding") not in rows
    total = sum(r.cost for r in rows.values())
    assert total == pytest.approx(0.0008)


def test_s3_vectors_storage_puts_queries_and_data_processed():
    arn = "arn:aws:s3vectors:us-east-1:123456789012:bucket/b/index/i"
    events = [
        {"kind": "s3vectors:storage", "resource": arn, "bytes": GB, "start": NOW - 730 * 3600, "end": NOW},
        {"kind": "s3vectors:put", "resource": arn, "bytes": GB, "vectors": 250_000},
        # one query of an index of 200,000 vectors of 1 KB on average: 100,000 in each tier
        {"kind": "s3vectors:query", "resource": arn, "vectors": 200_000, "bytes_processed": 200_000 * 1024},
    ]
    rows, _ = _rows(events)
    assert rows["s3vectors b/i", "s3vectors storage"].cost == pytest.approx(0.06)
    assert rows["s3vectors b/i", "s3vectors put"].cost == pytest.approx(0.20)
    assert rows["s3vectors b/i", "s3vectors queries"].cost == pytest.approx(2.50 / 1_000_000)
    data = [r for r in meter.price_events(events, now=NOW)[0] if r.kind == "s3vectors query data"]
    tier1, tier2 = sorted(data, key=lambda r: -r.unit_price)
    assert tier1.quantity == pytest.approx(100_000 * 1024 / TB) and tier1.unit_price == 0.004
    assert tier2.quantity == pytest.approx(100_000 * 1024 / TB) and tier2.unit_price == 0.002
    thousand, _ = _rows([{"kind": "s3vectors:query", "resource": arn, "vectors": 0, "bytes_processed": 0}] * 1000)
    assert thousand["s3vectors b/i", "s3vectors queries"].cost == pytest.approx(1000 * 2.50 / 1_000_000)


# --- the engines record the events ---------------------------------------------------------------


def _events(kind):
    return usage.events(kind)


def test_kinesis_engine_records_the_stream_and_its_puts(lab):
    usage.reset()
    k = boto3.client("kinesis")
    k.create_stream(StreamName="meter-s", ShardCount=2)
    k.put_records(StreamName="meter-s", Records=[{"Data": b"x" * 30_000, "PartitionKey": "a"},
                                                 {"Data": b"y" * 10, "PartitionKey": "b"}])
    k.put_record(StreamName="meter-s", Data=b"z" * 100, PartitionKey="c")
    [stream] = _events("kinesis:stream")
    assert (stream["mode"], stream["shard_count"], stream["end"]) == ("PROVISIONED", 2, None)
    k.update_shard_count(StreamName="meter-s", TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    k.delete_stream(StreamName="meter-s")
    intervals = _events("kinesis:stream")
    assert [e["shard_count"] for e in intervals] == [2, 4] and all(e["end"] for e in intervals)
    puts = _events("kinesis:put")
    assert sum(e["records"] for e in puts) == 3
    assert sum(e["payload_units"] for e in puts) == 2 + 1 + 1  # 30,001 bytes is two 25 KB units


def test_cloudwatch_engine_records_metric_hours_alarms_and_dashboards(lab):
    usage.reset()
    cw = boto3.client("cloudwatch")
    data = [{"MetricName": m, "Value": 1.0, "Dimensions": [{"Name": "ModelName", "Value": "m1"}]}
            for m in ("A", "B", "C")]
    cw.put_metric_data(Namespace="Meter/Test", MetricData=data)
    cw.put_metric_data(Namespace="Meter/Test", MetricData=data)  # same hour, same metrics: no new metric-hours
    assert len(_events("cloudwatch:metric")) in (3, 6)  # 6 only if the clock hour turned between the calls
    assert len(_events("cloudwatch:requests")) == 2
    cw.put_metric_alarm(AlarmName="meter-hr", Namespace="Meter/Test", MetricName="A", Statistic="Average",
                        Period=10, EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold",
                        Dimensions=[{"Name": "ModelName", "Value": "m1"}])
    cw.put_metric_alarm(AlarmName="meter-p90", Namespace="Meter/Test", MetricName="B", ExtendedStatistic="p90",
                        Period=60, EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold")
    cw.put_dashboard(DashboardName="meter-d", DashboardBody=json.dumps(
        {"widgets": [{"type": "text", "properties": {"markdown": "x"}}]}))
    cw.put_dashboard(DashboardName="meter-d", DashboardBody=json.dumps(  # an update, not a second dashboard
        {"widgets": [{"type": "text", "properties": {"markdown": "y"}}]}))
    alarms = {e["resource"]: e for e in _events("cloudwatch:alarm")}
    assert alarms["meter-hr"]["high_resolution"] is True and alarms["meter-p90"]["high_resolution"] is False
    assert alarms["meter-p90"]["statistic"] == "p90"
    cw.delete_alarms(AlarmNames=["meter-hr", "meter-p90"])
    cw.delete_dashboards(DashboardNames=["meter-d"])
    assert all(e["end"] for e in _events("cloudwatch:alarm"))
    [dashboard] = _events("cloudwatch:dashboard")
    assert dashboard["end"] is not None
    describe = len(_events("cloudwatch:requests"))
    cw.describe_alarms()  # alarm API calls are not billed requests
    assert len(_events("cloudwatch:requests")) == describe


def test_kms_engine_bills_a_key_until_it_is_scheduled_for_deletion(lab):
    usage.reset()
    kms = boto3.client("kms")
    key = kms.create_key(Description="meter")["KeyMetadata"]["KeyId"]
    [open_key] = _events("kms:key")
    assert open_key["resource"] == key and open_key["end"] is None
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    assert _events("kms:key")[0]["end"] is not None
    kms.cancel_key_deletion(KeyId=key)  # billed again from now
    assert [e["end"] is None for e in _events("kms:key")] == [False, True]
    assert {e["operation"] for e in _events("kms:requests")} == {"CreateKey", "ScheduleKeyDeletion",
                                                                 "CancelKeyDeletion"}


def test_glue_engine_objects_close_with_their_database(lab):
    usage.reset()
    glue = boto3.client("glue")
    glue.create_database(DatabaseInput={"Name": "meterdb"})
    glue.create_table(DatabaseName="meterdb", TableInput={"Name": "t", "PartitionKeys": [
        {"Name": "dt", "Type": "string"}]})
    glue.batch_create_partition(DatabaseName="meterdb", TableName="t",
                                PartitionInputList=[{"Values": ["a"]}, {"Values": ["b"]}])
    assert sorted(e["resource"] for e in _events("glue:object")) == ["meterdb", "meterdb.t", "meterdb.t/a",
                                                                     "meterdb.t/b"]
    glue.delete_database(Name="meterdb")
    assert all(e["end"] is not None for e in _events("glue:object"))
    assert len(_events("glue:requests")) == 4


def test_emr_and_cloudtrail_engines_record_intervals(lab):
    usage.reset()
    emr = boto3.client("emr")
    cluster = emr.run_job_flow(Name="meter", ReleaseLabel="emr-7.5.0", ServiceRole="EMR_DefaultRole",
                               JobFlowRole="EMR_EC2_DefaultRole", Instances={"InstanceGroups": [
                                   {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
                                   {"InstanceRole": "TASK", "InstanceType": "m5.2xlarge", "InstanceCount": 4,
                                    "Market": "SPOT"}]})["JobFlowId"]
    emr.terminate_job_flows(JobFlowIds=[cluster])
    [recorded] = _events("emr:cluster")
    assert recorded["end"] is not None and [n["count"] for n in recorded["nodes"]] == [1, 4]
    s3, ct = boto3.client("s3"), boto3.client("cloudtrail")
    s3.create_bucket(Bucket="meter-trail")
    s3.put_bucket_policy(Bucket="meter-trail", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "s3:GetBucketAcl",
         "Resource": "arn:aws:s3:::meter-trail"},
        {"Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "s3:PutObject",
         "Resource": "arn:aws:s3:::meter-trail/AWSLogs/*"}]}))
    ct.create_trail(Name="meter-trail", S3BucketName="meter-trail")
    assert not _events("cloudtrail:trail")  # billed from when it logs
    ct.start_logging(Name="meter-trail")
    ct.stop_logging(Name="meter-trail")
    ct.delete_trail(Name="meter-trail")
    [trail] = _events("cloudtrail:trail")
    assert trail["copy"] == 1 and trail["end"] is not None


def test_athena_engine_records_bytes_scanned_of_queries_only(lab):
    usage.reset()
    s3, glue, athena = boto3.client("s3"), boto3.client("glue"), boto3.client("athena")
    s3.put_object(Bucket=lab.bucket, Key="meter/users/u.csv", Body=b"id,n\nu1,1\nu2,2\n")
    glue.create_database(DatabaseInput={"Name": "meterathena"})
    glue.create_table(DatabaseName="meterathena", TableInput={
        "Name": "users", "Parameters": {"skip.header.line.count": "1"},
        "StorageDescriptor": {"Columns": [{"Name": "id", "Type": "string"}, {"Name": "n", "Type": "int"}],
                              "Location": f"s3://{lab.bucket}/meter/users/",
                              "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
                                            "Parameters": {"field.delim": ","}}}})

    def run(sql):
        qid = athena.start_query_execution(QueryString=sql, QueryExecutionContext={"Database": "meterathena"},
                                           ResultConfiguration={"OutputLocation": f"s3://{lab.bucket}/meter/out/"})
        return athena.get_query_execution(QueryExecutionId=qid["QueryExecutionId"])["QueryExecution"]

    ok = run("SELECT sum(n) FROM users")
    run("SELECT * FROM no_such_table")  # failed: free
    [event] = _events("athena:query")
    assert event["resource"] == ok["QueryExecutionId"]
    assert event["bytes_scanned"] == ok["Statistics"]["DataScannedInBytes"] > 0
    rows, _ = meter.price_events([event], now=NOW)
    assert rows[0].cost == pytest.approx(10 * MB / TB * 5.00)  # a few bytes bill the 10 MB minimum


def test_guardrail_assessments_are_metered_per_policy(lab):
    usage.reset()
    bedrock, runtime = boto3.client("bedrock"), boto3.client("bedrock-runtime")
    created = bedrock.create_guardrail(
        name="meter-guardrail", blockedInputMessaging="no", blockedOutputsMessaging="no",
        contentPolicyConfig={"filtersConfig": [{"type": "HATE", "inputStrength": "HIGH", "outputStrength": "HIGH"}]},
        wordPolicyConfig={"managedWordListsConfig": [{"type": "PROFANITY"}]},
        sensitiveInformationPolicyConfig={"piiEntitiesConfig": [{"type": "EMAIL", "action": "BLOCK"}]})
    text = ("The endpoint scales out when the queue grows. " * 40)[:1500]  # 1,500 characters: 2 text units
    out = runtime.apply_guardrail(guardrailIdentifier=created["guardrailId"], guardrailVersion="DRAFT",
                                  source="INPUT", content=[{"text": {"text": text}}])
    assert out["usage"]["contentPolicyUnits"] == 2 and out["usage"]["wordPolicyUnits"] == 2
    assert out["usage"]["sensitiveInformationPolicyUnits"] == 2  # PII entity types are the billed units
    assert out["usage"]["sensitiveInformationPolicyFreeUnits"] == 0  # regexes are the free ones
    [event] = _events("bedrock:guardrail")
    assert event["resource"] == created["guardrailId"] and event["operation"] == "ApplyGuardrail"
    rows, _ = meter.price_events([event], now=NOW)
    assert sum(r.cost for r in rows) == pytest.approx(2 * 0.15 / 1000 + 2 * 0.10 / 1000)  # words are free
    runtime.converse(modelId="anthropic.claude-3-haiku-20240307-v1:0",
                     messages=[{"role": "user", "content": [{"text": "How do endpoints scale?"}]}],
                     guardrailConfig={"guardrailIdentifier": created["guardrailId"], "guardrailVersion": "DRAFT"})
    sources = [e["source"] for e in _events("bedrock:guardrail")]
    assert sources == ["INPUT", "INPUT", "OUTPUT"]  # an invocation is assessed on the way in and out
    bedrock.delete_guardrail(guardrailIdentifier=created["guardrailId"])


def test_s3_vectors_engine_meters_puts_storage_and_queries(lab):
    usage.reset()
    s3v = boto3.client("s3vectors")
    s3v.create_vector_bucket(vectorBucketName="meter-vectors")
    s3v.create_index(vectorBucketName="meter-vectors", indexName="idx", dataType="float32", dimension=4,
                     distanceMetric="cosine")
    s3v.put_vectors(vectorBucketName="meter-vectors", indexName="idx", vectors=[
        {"key": f"k{i}", "data": {"float32": [1.0, float(i), 0.0, 0.5]}} for i in range(10)])
    [put] = _events("s3vectors:put")
    assert put["vectors"] == 10 and put["bytes"] == 10 * (4 * 4 + 2)  # 4 bytes a dimension, plus the key
    [stored] = _events("s3vectors:storage")
    assert stored["bytes"] == 180 and stored["end"] is None
    s3v.query_vectors(vectorBucketName="meter-vectors", indexName="idx", topK=3,
                      queryVector={"float32": [1.0, 1.0, 0.0, 0.5]})
    [query] = _events("s3vectors:query")
    assert query["resource"] == put["resource"] and (query["vectors"], query["bytes_processed"]) == (10, 180)
    s3v.delete_vectors(vectorBucketName="meter-vectors", indexName="idx", keys=["k0"])
    assert [e["bytes"] for e in _events("s3vectors:storage")] == [180, 162]
    s3v.delete_index(vectorBucketName="meter-vectors", indexName="idx")
    s3v.delete_vector_bucket(vectorBucketName="meter-vectors")
    assert all(e["end"] is not None for e in _events("s3vectors:storage"))
