"""Model Monitor offline: the analyzer's statistics and checks, baselines, monitoring runs on captured traffic."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3
import botocore.exceptions
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "hosting"))
import models as hm  # noqa: E402

from labkit.offline import hosting  # noqa: E402
from labkit.offline.mlops.monitor import api as monitor_api  # noqa: E402
from labkit.offline.mlops.monitor import statistics as st  # noqa: E402

ANALYZER = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"


# --- the computations, without HTTP --------------------------------------------------------

def test_statistics_have_the_documented_shape():
    rng = np.random.default_rng(0)
    columns = {"x": list(rng.normal(size=500)), "n": [str(i % 7) for i in range(500)],
               "s": ["a", "b", None, "a"] * 125}
    stats = st.statistics(columns)
    by = {f["name"]: f for f in stats["features"]}
    assert stats["dataset"]["item_count"] == 500
    assert by["x"]["inferred_type"] == "Fractional" and by["n"]["inferred_type"] == "Integral"
    assert by["s"]["inferred_type"] == "String"
    num = by["x"]["numerical_statistics"]
    assert num["common"] == {"num_present": 500, "num_missing": 0}
    assert num["mean"] == pytest.approx(np.mean(columns["x"])) and num["std_dev"] == pytest.approx(np.std(columns["x"]))
    assert sum(b["count"] for b in num["distribution"]["kll"]["buckets"]) == 500
    assert len(num["distribution"]["kll"]["sketch"]["data"][0]) == 500
    assert by["s"]["string_statistics"]["common"]["num_missing"] == 125
    constraints = st.suggest_constraints(stats)
    feats = {f["name"]: f for f in constraints["features"]}
    assert feats["s"]["completeness"] == 0.75 and feats["s"]["string_constraints"]["domains"] == ["a", "b"]
    assert feats["x"]["num_constraints"]["is_non_negative"] is False
    assert constraints["monitoring_config"]["distribution_constraints"]["comparison_threshold"] == 0.1


def _violations(current, base_columns):
    stats = st.statistics(base_columns)
    return {(v["feature_name"], v["constraint_check_type"]) for v in
            st.check(current, stats, st.suggest_constraints(stats))}


def test_drift_is_flagged_on_shifted_data_and_not_on_a_fresh_sample():
    rng = np.random.default_rng(1)
    base = {"x": list(rng.normal(size=1000)), "c": list(rng.choice(["a", "b"], 1000))}
    same = {"x": list(rng.normal(size=300)), "c": list(rng.choice(["a", "b"], 300))}
    shifted = {"x": list(rng.normal(1.0, 1.0, size=300)), "c": list(rng.choice(["a", "b"], 300, p=[0.9, 0.1]))}
    assert _violations(same, base) == set()
    assert _violations(shifted, base) == {("x", "baseline_drift_check"), ("c", "baseline_drift_check")}


def test_type_completeness_domain_and_column_checks():
    base = {"n": [str(i) for i in range(100)], "c": ["a", "b"] * 50, "f": [0.5] * 100}
    current = {"n": ["1.5"] * 10 + ["2"] * 90, "c": ["a"] * 95 + ["zzz"] * 5, "f": [None] * 50 + [0.5] * 50}
    found = _violations(current, base)
    assert ("n", "data_type_check") in found and ("c", "categorical_values_check") in found
    assert ("f", "completeness_check") in found
    assert ("c,f", "missing_column_check") in _violations({"n": base["n"]}, base)
    assert ("_c3", "extra_column_check") in _violations({**base, "_c3": [1] * 100}, base)


def test_ks_distance_is_the_l_infinity_distance_of_the_cdfs():
    assert st.ks_distance(np.array([0.0, 1.0]), np.array([0.0, 1.0])) == 0
    assert st.ks_distance(np.array([0.0, 0.0]), np.array([5.0, 5.0])) == 1


# --- through the API ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws(lab):
    s3, sm = boto3.client("s3"), boto3.client("sagemaker")
    x, _ = hm.data(400)
    body = "a,b,c\n" + "\n".join(",".join(f"{v:.6f}" for v in row) for row in x)
    s3.put_object(Bucket=lab.bucket, Key="mon/baseline/base.csv", Body=body.encode())
    _, tarball = hm.sklearn_model()
    url = hm.upload(lab.bucket, "mon/model.tar.gz", tarball)
    sm.create_model(ModelName="mon", ExecutionRoleArn=lab.role_arn, PrimaryContainer={
        "Image": hm.SKLEARN_IMAGE, "ModelDataUrl": url, "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}})
    sm.create_endpoint_config(EndpointConfigName="mon", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "mon", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
        DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 100,
                           "DestinationS3Uri": f"s3://{lab.bucket}/mon/capture",
                           "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]})
    sm.create_endpoint(EndpointName="mon", EndpointConfigName="mon")
    hosting.wait_for_endpoint("mon")
    yield lab, s3, sm
    sm.delete_endpoint(EndpointName="mon")


def wait_job(sm, name):
    import time

    deadline = time.time() + 300  # only catches a hang (a loaded machine is slow, not wrong)
    while time.time() < deadline:
        job = sm.describe_processing_job(ProcessingJobName=name)
        if job["ProcessingJobStatus"] in ("Completed", "Failed", "Stopped"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"processing job {name} did not end in 300 s")


def read_json(s3, uri):
    bucket, key = uri[5:].split("/", 1)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_baseline_job_with_the_analyzer_image(aws):
    lab, s3, sm = aws
    sm.create_processing_job(
        ProcessingJobName="baseline", RoleArn=lab.role_arn, AppSpecification={"ImageUri": ANALYZER},
        Environment={"dataset_format": json.dumps({"csv": {"header": True}}),
                     "dataset_source": "/opt/ml/processing/input/baseline_dataset_input",
                     "output_path": "/opt/ml/processing/output", "publish_cloudwatch_metrics": "Disabled"},
        ProcessingInputs=[{"InputName": "baseline_dataset_input", "S3Input": {
            "S3Uri": f"s3://{lab.bucket}/mon/baseline/base.csv", "LocalPath": "/opt/ml/processing/input/baseline_dataset_input",
            "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        ProcessingOutputConfig={"Outputs": [{"OutputName": "monitoring_output", "S3Output": {
            "S3Uri": f"s3://{lab.bucket}/mon/baseline-out", "LocalPath": "/opt/ml/processing/output",
            "S3UploadMode": "EndOfJob"}}]},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}})
    job = wait_job(sm, "baseline")
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    stats = read_json(s3, f"s3://{lab.bucket}/mon/baseline-out/statistics.json")
    constraints = read_json(s3, f"s3://{lab.bucket}/mon/baseline-out/constraints.json")
    assert [f["name"] for f in stats["features"]] == ["a", "b", "c"] and stats["dataset"]["item_count"] == 400
    assert all(f["inferred_type"] == "Fractional" for f in constraints["features"])


def _traffic(shift: float, seed: int, n: int = 200) -> None:
    rt = boto3.client("sagemaker-runtime")
    x, _ = hm.data(n, seed=seed)
    x = x * (1 + shift) + shift
    for i in range(0, n, 20):
        rt.invoke_endpoint(EndpointName="mon", ContentType="text/csv",
                           Body="\n".join(",".join(f"{v:.6f}" for v in r) for r in x[i:i + 20]))


def _schedule(lab, name, **extra):
    config = {"ScheduleConfig": {"ScheduleExpression": "NOW", "DataAnalysisStartTime": "-PT1H",
                                 "DataAnalysisEndTime": "-PT0H"},
              "MonitoringJobDefinition": {
                  "BaselineConfig": {"ConstraintsResource": {"S3Uri": f"s3://{lab.bucket}/mon/baseline-out/constraints.json"},
                                     "StatisticsResource": {"S3Uri": f"s3://{lab.bucket}/mon/baseline-out/statistics.json"}},
                  "MonitoringInputs": [{"EndpointInput": {"EndpointName": "mon", "LocalPath": "/opt/ml/processing/input/endpoint"}}],
                  "MonitoringOutputConfig": {"MonitoringOutputs": [{"S3Output": {
                      "S3Uri": f"s3://{lab.bucket}/mon/reports", "LocalPath": "/opt/ml/processing/output"}}]},
                  "MonitoringResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                            "VolumeSizeInGB": 5}},
                  "MonitoringAppSpecification": {"ImageUri": ANALYZER}, "RoleArn": lab.role_arn}}
    config.update(extra)
    return {"MonitoringScheduleName": name, "MonitoringScheduleConfig": config}


def test_monitoring_run_without_traffic_fails_with_a_reason(aws):
    lab, _, sm = aws
    sm.create_monitoring_schedule(**_schedule(lab, "empty"))
    (summary,) = monitor_api.wait_for_executions("empty")
    assert summary["MonitoringExecutionStatus"] == "Failed" and "no data" in summary["FailureReason"]
    sm.delete_monitoring_schedule(MonitoringScheduleName="empty")


def test_monitoring_flags_drift_only_on_shifted_traffic(aws):
    lab, s3, sm = aws
    _traffic(0.0, seed=3)
    sm.create_monitoring_schedule(**_schedule(lab, "clean"))
    (clean,) = monitor_api.wait_for_executions("clean")
    assert clean["MonitoringExecutionStatus"] == "Completed", clean
    _traffic(0.8, seed=4, n=400)
    sm.create_monitoring_schedule(**_schedule(lab, "drifted"))
    (drifted,) = monitor_api.wait_for_executions("drifted")
    assert drifted["MonitoringExecutionStatus"] == "CompletedWithViolations", drifted
    described = sm.describe_monitoring_schedule(MonitoringScheduleName="drifted")
    assert described["LastMonitoringExecutionSummary"]["ProcessingJobArn"] == drifted["ProcessingJobArn"]
    job = sm.describe_processing_job(ProcessingJobName=drifted["ProcessingJobArn"].rsplit("/", 1)[-1])
    out = job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    assert out.startswith(f"s3://{lab.bucket}/mon/reports/mon/drifted/")
    report = read_json(s3, out + "/constraint_violations.json")
    assert {v["feature_name"] for v in report["violations"] if v["constraint_check_type"] == "baseline_drift_check"} \
        == {"a", "b", "c"}
    listed = sm.list_monitoring_executions(EndpointName="mon")["MonitoringExecutionSummaries"]
    assert {e["MonitoringScheduleName"] for e in listed} >= {"clean", "drifted"}


@pytest.mark.parametrize("change, code", [
    ({"ScheduleConfig": {"ScheduleExpression": "every hour"}}, "ValidationException"),
    ({"MonitoringJobDefinitionName": "missing"}, "ValidationException"),
    ({"ScheduleConfig": {"ScheduleExpression": "NOW", "DataAnalysisStartTime": "yesterday"}}, "ValidationException"),
])
def test_invalid_schedules_are_refused(aws, change, code):
    lab, _, sm = aws
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sm.create_monitoring_schedule(**_schedule(lab, "bad", **change))
    assert err.value.response["Error"]["Code"] == code


def test_endpoint_without_capture_cannot_be_monitored(aws):
    lab, _, sm = aws
    request = _schedule(lab, "nocapture")
    request["MonitoringScheduleConfig"]["MonitoringJobDefinition"]["MonitoringInputs"][0]["EndpointInput"][
        "EndpointName"] = "missing-endpoint"
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sm.create_monitoring_schedule(**request)
    assert "endpoint" in err.value.response["Error"]["Message"].lower()


def test_sdk_v3_default_model_monitor_baseline_and_one_time_schedule(aws):
    from sagemaker.core.model_monitor import CronExpressionGenerator, DefaultModelMonitor
    from sagemaker.core.model_monitor.dataset_format import DatasetFormat

    lab, _, sm = aws
    monitor = DefaultModelMonitor(role=lab.role_arn, instance_count=1, instance_type="ml.m5.large")
    monitor.suggest_baseline(baseline_dataset=f"s3://{lab.bucket}/mon/baseline/base.csv",
                             dataset_format=DatasetFormat.csv(header=True),
                             output_s3_uri=f"s3://{lab.bucket}/mon/sdk-baseline", wait=True, logs=False)
    assert [f["name"] for f in monitor.suggested_constraints().body_dict["features"]] == ["a", "b", "c"]
    monitor.create_monitoring_schedule(
        monitor_schedule_name="sdk-now", endpoint_input="mon", output_s3_uri=f"s3://{lab.bucket}/mon/sdk-reports",
        statistics=monitor.baseline_statistics(), constraints=monitor.suggested_constraints(),
        schedule_cron_expression=CronExpressionGenerator.now(), data_analysis_start_time="-PT1H",
        data_analysis_end_time="-PT0H")
    (summary,) = monitor_api.wait_for_executions("sdk-now")
    assert summary["MonitoringExecutionStatus"] in ("Completed", "CompletedWithViolations")
    violations = monitor.latest_monitoring_constraint_violations().body_dict["violations"]
    assert any(v["constraint_check_type"] == "baseline_drift_check" for v in violations)
