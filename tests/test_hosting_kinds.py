"""The other endpoint kinds: data capture, variants, batch transform, async, multi-model,
serverless, and autoscaling of variants. One scikit-learn model serves them all."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import boto3
import botocore.exceptions
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "hosting"))
import models as hm  # noqa: E402

from labkit.offline import hosting, usage  # noqa: E402
from labkit.offline.hosting import transform  # noqa: E402


@pytest.fixture(scope="module")
def model(lab):
    """The fitted model; SageMaker model ``sk`` serves it with the learner's inference.py."""
    fitted, tarball = hm.sklearn_model()
    hm.create_model(lab, "sk", hm.upload(lab.bucket, "kinds/sk/model.tar.gz", tarball),
                    env={"SAGEMAKER_PROGRAM": "inference.py"})
    return fitted


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(("variant", "needle"), [
    ({"ServerlessConfig": {"MemorySizeInMB": 1500, "MaxConcurrency": 2}}, "MemorySizeInMB"),
    ({"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 500}}, "MaxConcurrency"),
    ({"InstanceType": "ml.m5.large"}, "InitialInstanceCount"),
])
def test_endpoint_config_validation(sm, model, variant, needle):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        sm.create_endpoint_config(EndpointConfigName="bad", ProductionVariants=[
            {"VariantName": "v", "ModelName": "sk", **variant}])
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert needle in info.value.response["Error"]["Message"]


def test_capture_sampling_percentage_is_validated(sm, model, lab):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        sm.create_endpoint_config(EndpointConfigName="bad", ProductionVariants=[hm.variant("sk")],
                                  DataCaptureConfig={"InitialSamplingPercentage": 150,
                                                     "DestinationS3Uri": f"s3://{lab.bucket}/capture",
                                                     "CaptureOptions": [{"CaptureMode": "Input"}]})
    assert "InitialSamplingPercentage" in info.value.response["Error"]["Message"]


# --- data capture and variants -------------------------------------------------------------


def test_data_capture_writes_documented_records(sm, rt, s3, lab, model):
    dest = f"s3://{lab.bucket}/kinds/capture"
    described = hm.deploy(lab, "cap", [hm.variant("sk")], DataCaptureConfig={
        "EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": dest,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]})
    assert described["DataCaptureConfig"] == {"EnableCapture": True, "CaptureStatus": "Started",
                                              "CurrentSamplingPercentage": 100, "DestinationS3Uri": dest}
    for i in range(3):
        rt.invoke_endpoint(EndpointName="cap", Body=f"0.{i},0.5,0.5", ContentType="text/csv", Accept="text/csv",
                           InferenceId=f"req-{i}")
    keys = _keys(s3, lab.bucket, "kinds/capture/cap/AllTraffic/")
    assert len(keys) == 1 and keys[0].endswith(".jsonl")
    assert keys[0].split("/")[4:8] == time.strftime("%Y/%m/%d/%H", time.gmtime()).split("/")
    lines = s3.get_object(Bucket=lab.bucket, Key=keys[0])["Body"].read().decode().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 3
    first = records[0]
    assert first["eventVersion"] == "0"
    assert first["captureData"]["endpointInput"] == {"observedContentType": "text/csv", "mode": "INPUT",
                                                     "data": "0.0,0.5,0.5", "encoding": "CSV"}
    out = first["captureData"]["endpointOutput"]
    assert out["mode"] == "OUTPUT" and out["encoding"] == "CSV"
    assert float(out["data"]) == pytest.approx(model.predict_proba([[0.0, 0.5, 0.5]])[0, 1], abs=1e-5)
    assert first["eventMetadata"]["inferenceId"] == "req-0" and first["eventMetadata"]["eventId"]
    sm.delete_endpoint(EndpointName="cap")


def test_sampling_percentage_is_honoured(lab):
    import random

    from labkit.offline.hosting.capture import DataCapture

    capture = DataCapture({"InitialSamplingPercentage": 30, "DestinationS3Uri": f"s3://{lab.bucket}/sampled",
                           "CaptureOptions": [{"CaptureMode": "Input"}]}, "ep", rng=random.Random(1))
    written = sum(capture.record("v", b"1", "text/csv", b"2", "text/csv") is not None for _ in range(400))
    assert 90 <= written <= 150


def test_variant_weights_split_traffic_and_target_variant(sm, rt, lab, model):
    hm.deploy(lab, "ab", [hm.variant("sk", "A", weight=3.0), hm.variant("sk", "B", weight=1.0)])
    counts = {"A": 0, "B": 0}
    for _ in range(200):
        r = rt.invoke_endpoint(EndpointName="ab", Body="0.1,0.2,0.3", ContentType="text/csv", Accept="text/csv")
        counts[r["InvokedProductionVariant"]] += 1
    assert 0.62 <= counts["A"] / 200 <= 0.88
    r = rt.invoke_endpoint(EndpointName="ab", Body="0.1,0.2,0.3", ContentType="text/csv", TargetVariant="B")
    assert r["InvokedProductionVariant"] == "B"
    with pytest.raises(botocore.exceptions.ClientError) as info:
        rt.invoke_endpoint(EndpointName="ab", Body="0.1,0.2,0.3", ContentType="text/csv", TargetVariant="C")
    assert info.value.response["Error"]["Code"] == "ValidationError"


def test_autoscaling_target_and_policy_are_validated(lab):
    aas = boto3.client("application-autoscaling")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId="endpoint/nope/variant/A",
                                     ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                                     MinCapacity=1, MaxCapacity=4)
    assert "nope does not exist" in info.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId="endpoint/ab/variant/A",
                                     ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                                     MinCapacity=5, MaxCapacity=2)
    assert "cannot be greater" in info.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        aas.put_scaling_policy(PolicyName="p", ServiceNamespace="sagemaker", ResourceId="endpoint/ab/variant/A",
                               ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                               PolicyType="TargetTrackingScaling",
                               TargetTrackingScalingPolicyConfiguration={"TargetValue": 100.0, "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}})
    assert info.value.response["Error"]["Code"] == "ObjectNotFoundException"


def test_target_tracking_sets_the_desired_count(sm, rt, lab, model):
    aas = boto3.client("application-autoscaling")
    resource = "endpoint/ab/variant/A"
    aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource,
                                 ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                                 MinCapacity=1, MaxCapacity=4)
    aas.put_scaling_policy(PolicyName="ipi", ServiceNamespace="sagemaker", ResourceId=resource,
                           ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                           PolicyType="TargetTrackingScaling",
                           TargetTrackingScalingPolicyConfiguration={
                               "TargetValue": 50.0,
                               "PredefinedMetricSpecification": {
                                   "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}})
    served = hosting.engine.get("ab").variants["A"].invocations_in(60)
    decision = hosting.simulate_target_tracking("ab", "A", apply=True)
    assert decision["invocations_per_minute"] == served
    assert decision["desired"] == min(4, max(1, -(-served // 50)))
    assert hosting.simulate_target_tracking("ab", "A", invocations_per_minute=10_000)["desired"] == 4
    assert hosting.simulate_target_tracking("ab", "A", invocations_per_minute=0)["desired"] == 1
    variants = {v["VariantName"]: v for v in sm.describe_endpoint(EndpointName="ab")["ProductionVariants"]}
    assert variants["A"]["CurrentInstanceCount"] == decision["desired"]
    intervals = [e for e in usage.events("sagemaker:hosting") if e["resource"] == "ab" and e["variant"] == "A"]
    assert intervals[-1]["instance_count"] == decision["desired"]
    aas.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource,
                                   ScalableDimension="sagemaker:variant:DesiredInstanceCount")
    assert aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource)["ScalingPolicies"] == []
    sm.delete_endpoint(EndpointName="ab")


def test_desired_instance_count_arithmetic():
    assert hosting.desired_instance_count(1000, 250, current=1, min_capacity=1, max_capacity=10) == 4
    assert hosting.desired_instance_count(1001, 250, current=1, min_capacity=1, max_capacity=10) == 5
    assert hosting.desired_instance_count(5000, 250, current=1, min_capacity=1, max_capacity=10) == 10
    assert hosting.desired_instance_count(10, 250, current=6, min_capacity=2, max_capacity=10) == 2
    assert hosting.desired_instance_count(10, 250, current=6, min_capacity=2, max_capacity=10,
                                          disable_scale_in=True) == 6


# --- batch transform -------------------------------------------------------------------------


def test_batch_transform_line_split_multi_record_join_and_filters(sm, s3, lab, model):
    x, _ = hm.data(7, seed=11)
    rows = [f"id{i}," + ",".join(f"{v:.4f}" for v in row) for i, row in enumerate(x)]
    s3.put_object(Bucket=lab.bucket, Key="kinds/bt/in/a.csv", Body="\n".join(rows[:4]) + "\n")
    s3.put_object(Bucket=lab.bucket, Key="kinds/bt/in/b.csv", Body="\n".join(rows[4:]) + "\n")
    sm.create_transform_job(
        TransformJobName="bt", ModelName="sk", BatchStrategy="MultiRecord", MaxPayloadInMB=1,
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                        "S3Uri": f"s3://{lab.bucket}/kinds/bt/in"}},
                        "ContentType": "text/csv", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": f"s3://{lab.bucket}/kinds/bt/out", "Accept": "text/csv",
                         "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"})
    sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName="bt")
    job = sm.describe_transform_job(TransformJobName="bt")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert _keys(s3, lab.bucket, "kinds/bt/out/") == ["kinds/bt/out/a.csv.out", "kinds/bt/out/b.csv.out"]
    out = []
    for key in ("a", "b"):
        out += s3.get_object(Bucket=lab.bucket, Key=f"kinds/bt/out/{key}.csv.out")["Body"].read().decode().splitlines()
    assert [line.split(",")[0] for line in out] == [f"id{i}" for i in range(7)]
    expected = model.predict_proba(np.round(x, 4))[:, 1]
    assert np.allclose([float(line.split(",")[1]) for line in out], expected, atol=1e-5)
    event = [e for e in usage.events("sagemaker:transform") if e["resource"] == "bt"][0]
    assert event["instance_type"] == "ml.m5.large" and event["seconds"] > 0


def test_batch_transform_single_record_without_split(sm, s3, lab, model):
    s3.put_object(Bucket=lab.bucket, Key="kinds/bt1/in/x.json", Body=json.dumps({"instances": [[0.9, 0.9, 0.9]]}))
    sm.create_transform_job(
        TransformJobName="bt1", ModelName="sk", BatchStrategy="SingleRecord",
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                        "S3Uri": f"s3://{lab.bucket}/kinds/bt1/in/"}},
                        "ContentType": "application/json", "SplitType": "None"},
        TransformOutput={"S3OutputPath": f"s3://{lab.bucket}/kinds/bt1/out"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1})
    assert transform.wait("bt1") == "Completed"
    body = json.loads(s3.get_object(Bucket=lab.bucket, Key="kinds/bt1/out/x.json.out")["Body"].read())
    assert body["predictions"][0] == pytest.approx(model.predict_proba([[0.9, 0.9, 0.9]])[0, 1], abs=1e-5)


def test_batch_transform_bad_records_fail_the_job(sm, s3, lab, model):
    s3.put_object(Bucket=lab.bucket, Key="kinds/bt2/in/x.csv", Body="1,2\n3,4\n")
    sm.create_transform_job(
        TransformJobName="bt2", ModelName="sk",
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                        "S3Uri": f"s3://{lab.bucket}/kinds/bt2/in"}},
                        "ContentType": "text/csv", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": f"s3://{lab.bucket}/kinds/bt2/out"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1})
    assert transform.wait("bt2") == "Failed"
    reason = sm.describe_transform_job(TransformJobName="bt2")["FailureReason"]
    assert "3 features" in reason
    assert 'File "/opt/ml/model/code/inference.py", line 27, in input_fn' in reason, "the learner's line"


def test_batch_transform_rejects_unsupported_jsonpath(sm, lab, model):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        sm.create_transform_job(
            TransformJobName="bt3", ModelName="sk",
            TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                            "S3Uri": f"s3://{lab.bucket}/x"}}},
            TransformOutput={"S3OutputPath": f"s3://{lab.bucket}/y"},
            TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
            DataProcessing={"InputFilter": "$..features[?(@ > 1)]"})
    assert info.value.response["Error"]["Code"] == "ValidationException"


# --- async, multi-model, serverless ------------------------------------------------------------


def test_async_inference_writes_output_to_s3(sm, rt, s3, lab, model):
    hm.deploy(lab, "async", [hm.variant("sk")], AsyncInferenceConfig={
        "OutputConfig": {"S3OutputPath": f"s3://{lab.bucket}/kinds/async/out",
                         "S3FailurePath": f"s3://{lab.bucket}/kinds/async/failed"}})
    s3.put_object(Bucket=lab.bucket, Key="kinds/async/in.json", Body=json.dumps({"instances": [[0.1, 0.2, 0.3]]}))
    response = rt.invoke_endpoint_async(EndpointName="async", InputLocation=f"s3://{lab.bucket}/kinds/async/in.json",
                                        ContentType="application/json", InferenceId="job-1")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert response["InferenceId"] == "job-1"
    assert response["OutputLocation"].startswith(f"s3://{lab.bucket}/kinds/async/out/")
    assert response["FailureLocation"].startswith(f"s3://{lab.bucket}/kinds/async/failed/")
    bad = rt.invoke_endpoint_async(EndpointName="async", InputLocation=f"s3://{lab.bucket}/kinds/async/in.json",
                                   ContentType="text/plain")
    hosting.engine.get("async").async_queue.join()
    key = response["OutputLocation"].split("/", 3)[3]
    body = json.loads(s3.get_object(Bucket=lab.bucket, Key=key)["Body"].read())
    assert body["predictions"][0] == pytest.approx(model.predict_proba([[0.1, 0.2, 0.3]])[0, 1], abs=1e-5)
    failure = s3.get_object(Bucket=lab.bucket, Key=bad["FailureLocation"].split("/", 3)[3])["Body"].read()
    assert b"Unsupported content type" in failure
    with pytest.raises(botocore.exceptions.ClientError) as info:
        rt.invoke_endpoint(EndpointName="async", Body="1,2,3", ContentType="text/csv")
    assert "invoke_endpoint_async" in info.value.response["Error"]["Message"]
    sm.delete_endpoint(EndpointName="async")


def test_multi_model_endpoint_loads_on_first_call_and_unloads_lru(sm, rt, lab):
    fitted = {}
    for i in range(4):
        fitted[i], tarball = hm.sklearn_model(seed=i)
        hm.upload(lab.bucket, f"kinds/mme/m{i}.tar.gz", tarball)
    hm.create_model(lab, "mme", f"s3://{lab.bucket}/kinds/mme/", mode="MultiModel",
                    env={"SAGEMAKER_PROGRAM": "inference.py", "LABKIT_MME_MAX_MODELS": "3"})
    hm.deploy(lab, "mme", [hm.variant("mme")])
    assert hosting.loaded_models("mme") == []
    for i in (0, 1, 2, 3, 1):
        r = rt.invoke_endpoint(EndpointName="mme", TargetModel=f"m{i}.tar.gz", Body="0.3,0.6,0.2",
                               ContentType="text/csv", Accept="text/csv")
        assert float(r["Body"].read()) == pytest.approx(fitted[i].predict_proba([[0.3, 0.6, 0.2]])[0, 1], abs=1e-5)
    assert hosting.loaded_models("mme") == ["m2.tar.gz", "m3.tar.gz", "m1.tar.gz"]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        rt.invoke_endpoint(EndpointName="mme", TargetModel="m9.tar.gz", Body="1,2,3", ContentType="text/csv")
    assert "Failed to download model data" in info.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        rt.invoke_endpoint(EndpointName="mme", Body="1,2,3", ContentType="text/csv")
    assert "TargetModel" in info.value.response["Error"]["Message"]
    sm.delete_endpoint(EndpointName="mme")


def test_serverless_endpoint_cold_start_and_usage(sm, rt, lab, model):
    described = hm.deploy(lab, "sls", [{"VariantName": "AllTraffic", "ModelName": "sk",
                                        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 2}}])
    assert described["ProductionVariants"][0]["CurrentServerlessConfig"]["MemorySizeInMB"] == 2048
    assert hosting.engine.get("sls").variants["AllTraffic"].process is None
    for _ in range(3):
        r = rt.invoke_endpoint(EndpointName="sls", Body="0.1,0.2,0.3", ContentType="text/csv", Accept="text/csv")
        assert 0 < float(r["Body"].read()) < 1
    variant = hosting.engine.get("sls").variants["AllTraffic"]
    assert len(variant.cold_starts) == 1
    logs = boto3.client("logs")
    stream = logs.describe_log_streams(logGroupName="/aws/sagemaker/Endpoints/sls")["logStreams"][0]
    events = logs.get_log_events(logGroupName="/aws/sagemaker/Endpoints/sls",
                                 logStreamName=stream["logStreamName"])["events"]
    assert any(e["message"].startswith("Cold start:") for e in events)
    event = [e for e in usage.events("sagemaker:serverless") if e["resource"] == "sls"][0]
    assert event["memory_mb"] == 2048 and event["requests"] == 3 and event["seconds"] > 0
    assert event["bytes_in"] == 3 * len("0.1,0.2,0.3") and event["bytes_out"] > 0  # data processed is billed
    sm.delete_endpoint(EndpointName="sls")
    assert [e for e in usage.events("sagemaker:serverless") if e["resource"] == "sls"][0]["end"] is not None
