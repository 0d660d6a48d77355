"""The meter: bills for known workloads, figures computed by hand from the catalogue."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from labkit.cost import catalogue as cat
from labkit.cost import measured, meter
from labkit.offline import usage

NOW = 1_800_000_000.0


def _rows(events):
    rows, unpriced = meter.price_events(events, now=NOW)
    return {(r.resource, r.kind): r for r in rows}, unpriced


def test_training_processing_transform_per_second():
    rows, unpriced = _rows([
        {"kind": "sagemaker:training", "resource": "xgb", "instance_type": "ml.m5.xlarge", "instance_count": 2,
         "seconds": 1800, "spot": False},
        {"kind": "sagemaker:processing", "resource": "split", "instance_type": "ml.c5.xlarge", "instance_count": 1,
         "seconds": 600},
        {"kind": "sagemaker:transform", "resource": "batch", "instance_type": "ml.m5.large", "instance_count": 2,
         "seconds": 900},
    ])
    assert not unpriced
    # 2 instances x 0.5 h x $0.23 = $0.23
    assert rows["xgb", "training"].cost == pytest.approx(0.23)
    assert rows["xgb", "training"].quantity == pytest.approx(1.0)
    # 1 x 600 s x $0.204/h = $0.034
    assert rows["split", "processing"].cost == pytest.approx(0.034)
    # 2 x 900 s x $0.115/h = $0.0575
    assert rows["batch", "transform"].cost == pytest.approx(0.0575)
    assert rows["xgb", "training"].source == "https://aws.amazon.com/sagemaker/ai/pricing/"
    assert rows["xgb", "training"].verified is False


def test_managed_spot_training_three_ways():
    rows, _ = _rows([
        # the training engine's form: seconds are billable, training_seconds the wall clock
        {"kind": "sagemaker:training", "resource": "engine", "instance_type": "ml.p3.2xlarge", "instance_count": 1,
         "seconds": 300, "spot": True, "training_seconds": 1000},
        # the sandbox form: AWS's BillableTimeInSeconds
        {"kind": "sagemaker:training", "resource": "aws", "instance_type": "ml.g5.xlarge", "instance_count": 2,
         "seconds": 3600, "spot": True, "billable_seconds": 1200},
        # only wall-clock seconds: the family's typical saving (p3: 70%)
        {"kind": "sagemaker:training", "resource": "typical", "instance_type": "ml.p3.2xlarge",
         "instance_count": 1, "seconds": 3600, "spot": True},
    ])
    engine = rows["engine", "training (spot)"]
    assert engine.cost == pytest.approx(300 / 3600 * 3.825)  # $0.31875
    assert engine.on_demand_cost == pytest.approx(1000 / 3600 * 3.825)
    assert engine.savings == pytest.approx(700 / 3600 * 3.825)
    aws = rows["aws", "training (spot)"]
    assert aws.cost == pytest.approx(2 * 1200 / 3600 * 1.408)
    assert aws.on_demand_cost == pytest.approx(2 * 1.408)
    typical = rows["typical", "training (spot)"]
    savings, _ = cat.load().spot_savings("ml.p3.2xlarge")
    assert savings == 0.70
    assert typical.cost == pytest.approx(3.825 * 0.30)
    assert "70%" in typical.note


def test_hosting_intervals_open_and_closed():
    rows, _ = _rows([
        {"kind": "sagemaker:hosting", "resource": "ep", "instance_type": "ml.g5.xlarge", "instance_count": 1,
         "start": NOW - 5400, "end": None},  # still InService: billed to now, 1.5 h
        {"kind": "sagemaker:hosting", "resource": "ep", "instance_type": "ml.g5.xlarge", "instance_count": 2,
         "start": NOW - 9000, "end": NOW - 7200},  # an earlier interval with 2 instances, 0.5 h each
    ])
    row = rows["ep", "hosting"]
    assert row.quantity == pytest.approx(2.5)
    assert row.cost == pytest.approx(2.5 * 1.408)


def test_serverless_is_per_second_of_memory_plus_data():
    rows, _ = _rows([{"kind": "sagemaker:serverless", "resource": "sv", "memory_mb": 2048, "seconds": 250.0,
                      "requests": 1000, "bytes_in": 2**30 // 2, "bytes_out": 2**30 // 2}])
    assert rows["sv", "serverless"].cost == pytest.approx(250 * 0.00004)  # 2 GB x $0.00002 per GB-second
    assert "1000 requests" in rows["sv", "serverless"].note
    assert rows["sv", "serverless data"].cost == pytest.approx(0.016)  # 1 GB in and out


def test_bedrock_tokens_and_inference_profiles():
    rows, unpriced = meter.price_events([
        {"kind": "bedrock:tokens", "resource": "chat", "model_id": "us.anthropic.claude-3-haiku-20240307-v1:0",
         "input_tokens": 10000, "output_tokens": 1000},
        {"kind": "bedrock:tokens", "resource": "chat", "model_id": "anthropic.claude-3-haiku-20240307-v1:0",
         "input_tokens": 2000, "output_tokens": 2000},
        {"kind": "bedrock:tokens", "resource": "embed", "model_id": "amazon.titan-embed-text-v2:0",
         "input_tokens": 50000, "output_tokens": 0},
    ], now=NOW)
    assert not unpriced
    haiku = [r for r in rows if r.resource == "anthropic.claude-3-haiku-20240307-v1:0"]
    assert [(r.unit, r.quantity) for r in haiku] == [("input tokens", 12000), ("output tokens", 3000)]
    assert haiku[0].cost == pytest.approx(12 * 0.00025)  # $0.003
    assert haiku[1].cost == pytest.approx(3 * 0.00125)  # $0.00375
    assert "2 calls" in haiku[0].note  # the profile id and the model id are one model
    [embed] = [r for r in rows if r.resource == "amazon.titan-embed-text-v2:0"]
    assert embed.cost == pytest.approx(50 * 0.00002)  # embeddings: input tokens only


def test_s3_storage_prorated():
    rows, _ = _rows([{"kind": "s3:storage", "resource": "s3://b/", "bytes": 2**30, "seconds": 730 * 3600}])
    row = rows["s3://b/", "s3 STANDARD"]
    assert row.quantity == pytest.approx(1.0) and row.cost == pytest.approx(0.023)  # one GB-month
    tiny, _ = _rows([{"kind": "s3:storage", "resource": "s3://b/", "bytes": 10_000_000, "seconds": 600,
                      "storage_class": "STANDARD_IA"}])
    expected = 10_000_000 / 2**30 * (600 / 3600) / 730 * 0.0125
    assert tiny["s3://b/", "s3 STANDARD_IA"].cost == pytest.approx(expected)


def test_unknown_prices_are_named_not_dropped():
    rows, unpriced = _rows([
        {"kind": "sagemaker:training", "resource": "ok", "instance_type": "ml.m5.large", "instance_count": 1,
         "seconds": 3600, "spot": False},
        {"kind": "sagemaker:training", "resource": "odd", "instance_type": "ml.x9.huge", "instance_count": 1,
         "seconds": 3600, "spot": False},
        {"kind": "sagemaker:warp-drive", "resource": "w"},
    ])
    assert rows["ok", "training"].cost == pytest.approx(0.115)
    assert any("odd" in u and "ml.x9.huge" in u for u in unpriced)
    assert any("sagemaker:warp-drive" in u for u in unpriced)


def test_lab_bill_end_to_end(lab, tmp_path, monkeypatch):
    """``lab.bill()``: engine events plus S3 measured by the meter; JSON report; table; chart."""
    import matplotlib

    matplotlib.use("Agg")
    usage.reset()
    monkeypatch.setenv("LABKIT_REPORT_DIR", str(tmp_path))
    lab.started_at = time.time() - 3600
    boto3.client("s3").put_object(Bucket=lab.bucket, Key="tests/data.csv", Body=b"x" * 1_000_000)
    usage.record("sagemaker:training", "job", instance_type="ml.m5.xlarge", instance_count=1, seconds=3600,
                 spot=False)
    usage.record("bedrock:tokens", "chat", model_id="amazon.titan-text-express-v1", input_tokens=1000,
                 output_tokens=1000)
    bill = lab.bill(show=False)
    assert bill.by_kind()["training"] == pytest.approx(0.23)
    assert bill.by_kind()["bedrock"] == pytest.approx(0.0002 + 0.0006)
    s3_rows = [r for r in bill.rows if r.kind == "s3 STANDARD"]
    assert len(s3_rows) == 1 and 0 < s3_rows[0].cost < 1e-6  # a MB for under an hour: tiny, and shown
    assert bill.total == pytest.approx(0.23 + 0.0008 + s3_rows[0].cost)
    report = json.loads((tmp_path / "tests.bill.json").read_text())
    assert report["total_usd"] == pytest.approx(bill.total) and report["lab"] == "tests"
    assert len(report["rows"]) == len(bill.rows)
    assert meter.total_reports(tmp_path) == {"tests": pytest.approx(bill.total)}
    text = str(bill)
    assert "Total: $0.23" in text and "(unverified)" in text
    assert "<table>" in bill._repr_html_()
    ax = bill.plot()
    assert len(ax.patches) == len(bill.rows)
    usage.reset()


def test_sandbox_events_from_describe_calls():
    """On the sandbox the meter rebuilds events from SageMaker describe calls (stubbed, AWS's shapes)."""
    sm = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    t0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/spot-job"
    other = "arn:aws:sagemaker:us-east-1:123456789012:training-job/not-mine"
    with Stubber(sm) as stub:
        stub.add_response("list_training_jobs", {"TrainingJobSummaries": [
            {"TrainingJobName": "spot-job", "TrainingJobArn": arn, "CreationTime": t0, "TrainingJobStatus": "Completed"},
            {"TrainingJobName": "not-mine", "TrainingJobArn": other, "CreationTime": t0,
             "TrainingJobStatus": "Completed"}]})
        stub.add_response("list_tags", {"Tags": [{"Key": "labkit:lab", "Value": "02-gpu"}]}, {"ResourceArn": arn})
        stub.add_response("describe_training_job", {
            "TrainingJobName": "spot-job", "TrainingJobArn": arn, "TrainingJobStatus": "Completed",
            "SecondaryStatus": "Completed", "CreationTime": t0, "ModelArtifacts": {"S3ModelArtifacts": "s3://b/m"},
            "AlgorithmSpecification": {"TrainingInputMode": "File"},
            "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600}, "EnableManagedSpotTraining": True,
            "TrainingStartTime": t0, "TrainingTimeInSeconds": 3000, "BillableTimeInSeconds": 900})
        stub.add_response("list_tags", {"Tags": [{"Key": "labkit:lab", "Value": "someone-else"}]},
                          {"ResourceArn": other})
        stub.add_response("list_processing_jobs", {"ProcessingJobSummaries": []})
        stub.add_response("list_transform_jobs", {"TransformJobSummaries": []})
        stub.add_response("list_endpoints", {"Endpoints": []})
        events = measured.sandbox_events(sm, "02-gpu", since=t0.timestamp() - 10, now=t0.timestamp() + 4000)
        stub.assert_no_pending_responses()
    assert events == [{"kind": "sagemaker:training", "resource": "spot-job", "instance_type": "ml.g5.xlarge",
                       "instance_count": 2, "seconds": 3000, "spot": True, "billable_seconds": 900}]
    [row], _ = meter.price_events(events)
    assert row.cost == pytest.approx(2 * 900 / 3600 * 1.408)
    assert row.savings == pytest.approx(2 * 2100 / 3600 * 1.408)


def test_a_real_offline_training_job_is_billed_the_same_both_ways(lab):
    """A spot job really runs on the offline engine; its usage events and AWS's describe fields
    (the sandbox path) give the same bill, and the guard admitted it within the cap."""
    import sys
    from pathlib import Path

    from labkit.cost import guard as guard_mod

    sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "training"))
    import jobkit

    usage.reset()
    s3, sm = boto3.client("s3"), boto3.client("sagemaker")
    s3.put_object(Bucket=lab.bucket, Key="bill/train/part-0.csv", Body=b"1,1\n2,2\n")
    code = jobkit.upload_code(s3, lab.bucket, "train_sleep.py")
    since = time.time()
    g = guard_mod.install(lab, cap_usd=1.0)
    sm = boto3.client("sagemaker")  # clients made after install() are guarded
    try:
        request = jobkit.script_request(
            lab, "billed-spot", "train_sleep.py", code, hyperparameters={"seconds": "4"},
            channels={"train": f"s3://{lab.bucket}/bill/train"}, image=jobkit.SKLEARN_IMAGE,
            ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 5},
            EnableManagedSpotTraining=True, StoppingCondition={"MaxRuntimeInSeconds": 120, "MaxWaitTimeInSeconds": 240},
            Tags=[{"Key": "labkit:lab", "Value": "tests"}])
        sm.create_training_job(**request)
        assert g.committed == pytest.approx(0.23 * 2 * 120 / 3600)  # on-demand worst case
        job = jobkit.wait(sm, "billed-spot")
    finally:
        guard_mod.uninstall()
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    offline_rows, _ = meter.price_events([e for e in usage.events() if e["kind"] == "sagemaker:training"])
    sandbox_rows, _ = meter.price_events(measured.sandbox_events(sm, "tests", since=since))
    [offline], [sandbox] = offline_rows, sandbox_rows
    expected = 2 * job["BillableTimeInSeconds"] / 3600 * 0.23
    assert offline.kind == sandbox.kind == "training (spot)"
    assert offline.cost == pytest.approx(expected) and sandbox.cost == pytest.approx(expected)
    assert offline.on_demand_cost == pytest.approx(2 * job["TrainingTimeInSeconds"] / 3600 * 0.23)
    assert job["BillableTimeInSeconds"] < job["TrainingTimeInSeconds"] and offline.savings > 0
    usage.reset()
