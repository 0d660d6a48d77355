"""Training warm pools and Inference Recommender, offline."""

from __future__ import annotations

import io
import tarfile
import time

import botocore.exceptions
import numpy as np
import pytest


@pytest.fixture(scope="module")
def image(lab, s3):
    from sagemaker.core import image_uris

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    rows = [f"{int(a + b > 0)},{a:.3f},{b:.3f},{c:.3f}" for a, b, c in x]
    s3.put_object(Bucket=lab.bucket, Key="wp/train/train.csv", Body="\n".join(rows).encode())
    return image_uris.retrieve("xgboost", lab.region, version="1.7-1")


def _train(sm, lab, image, name, keep=None, instance_type="ml.m5.large"):
    resources = {"InstanceType": instance_type, "InstanceCount": 1, "VolumeSizeInGB": 5}
    if keep is not None:
        resources["KeepAlivePeriodInSeconds"] = keep
    sm.create_training_job(
        TrainingJobName=name, RoleArn=lab.role_arn,
        AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
        HyperParameters={"objective": "binary:logistic", "num_round": "5"},
        InputDataConfig=[{"ChannelName": "train", "ContentType": "text/csv", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{lab.bucket}/wp/train/"}}}],
        OutputDataConfig={"S3OutputPath": f"s3://{lab.bucket}/wp/out/"}, ResourceConfig=resources,
        StoppingCondition={"MaxRuntimeInSeconds": 300})
    while (job := sm.describe_training_job(TrainingJobName=name))["TrainingJobStatus"] == "InProgress":
        time.sleep(0.2)
    return job


def test_a_warm_pool_is_kept_reused_billed_and_ended(lab, sm, image):
    first = _train(sm, lab, image, "wp-first", keep=600)
    assert first["WarmPoolStatus"]["Status"] == "Available"
    _train(sm, lab, image, "wp-other-type", keep=600, instance_type="ml.m5.xlarge")
    assert sm.describe_training_job(TrainingJobName="wp-first")["WarmPoolStatus"]["Status"] == "Available", \
        "a job on other resources does not take the pool"
    second = _train(sm, lab, image, "wp-second", keep=600)
    pool = sm.describe_training_job(TrainingJobName="wp-first")["WarmPoolStatus"]
    assert pool["Status"] == "Reused" and pool["ReusedByJob"] == "wp-second"
    assert second["WarmPoolStatus"]["Status"] == "Available"
    for name in ("wp-second", "wp-other-type"):
        sm.update_training_job(TrainingJobName=name, ResourceConfig={"KeepAlivePeriodInSeconds": 0})
    ended = sm.describe_training_job(TrainingJobName="wp-second")["WarmPoolStatus"]
    assert ended["Status"] == "Terminated" and ended["ResourceRetainedBillableTimeInSeconds"] >= 0
    from labkit.offline import usage

    assert {e["resource"] for e in usage.events("sagemaker:training") if e.get("warm_pool")} == {
        "wp-first (warm pool)", "wp-second (warm pool)", "wp-other-type (warm pool)"}
    with pytest.raises(botocore.exceptions.ClientError, match="only an Available pool"):
        sm.update_training_job(TrainingJobName="wp-second", ResourceConfig={"KeepAlivePeriodInSeconds": 10})


def test_inference_recommender_load_tests_each_candidate(lab, sm, s3, image):
    job = _train(sm, lab, image, "ir-model")
    sm.create_model(ModelName="ir-model", ExecutionRoleArn=lab.role_arn, PrimaryContainer={
        "Image": image, "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"]})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for i in range(3):
            body = f"{i * 0.1:.1f},0.5,-0.2\n".encode()
            info = tarfile.TarInfo(f"payload-{i}.csv")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    s3.put_object(Bucket=lab.bucket, Key="wp/payloads.tar.gz", Body=buffer.getvalue())
    sm.create_inference_recommendations_job(
        JobName="ir-test", JobType="Default", RoleArn=lab.role_arn,
        InputConfig={"ModelName": "ir-model", "ContainerConfig": {
            "SupportedInstanceTypes": ["ml.m5.xlarge", "ml.c5.large"],
            "PayloadConfig": {"SamplePayloadUrl": f"s3://{lab.bucket}/wp/payloads.tar.gz",
                              "SupportedContentTypes": ["text/csv"]}}},
        StoppingConditions={"ModelLatencyThresholds": [{"Percentile": "P95", "ValueInMilliseconds": 2000}]})
    while (result := sm.describe_inference_recommendations_job(JobName="ir-test"))["Status"] == "IN_PROGRESS":
        time.sleep(0.3)
    assert result["Status"] == "COMPLETED", result.get("FailureReason")
    recs = result["InferenceRecommendations"]
    assert {r["EndpointConfiguration"]["InstanceType"] for r in recs} == {"ml.c5.large", "ml.m5.xlarge"}
    assert all(r["Metrics"]["MaxInvocations"] > 0 and r["Metrics"]["CostPerHour"] > 0 for r in recs)
    costs = [r["Metrics"]["CostPerInference"] for r in recs]
    assert costs == sorted(costs), "cheapest per inference first"
    assert not [e for e in sm.list_endpoints()["Endpoints"] if e["EndpointName"].startswith("sm-ir-")]
