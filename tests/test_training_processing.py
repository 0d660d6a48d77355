"""Processing jobs: a script runs with its inputs and outputs under /opt/ml/processing."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import boto3
import botocore.exceptions
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "training"))
import jobkit  # noqa: E402

from labkit.offline import usage  # noqa: E402


@pytest.fixture(scope="module")
def aws(lab):
    s3, sm = boto3.client("s3"), boto3.client("sagemaker")
    s3.put_object(Bucket=lab.bucket, Key="proc/raw/data.csv", Body="\n".join(f"{i},{i * 2}" for i in range(8)).encode())
    s3.upload_file(str(jobkit.HERE / "preprocess.py"), lab.bucket, "proc/code/preprocess.py")
    return lab, s3, sm


def request(lab, name, **extra):
    req = {
        "ProcessingJobName": name, "RoleArn": lab.role_arn,
        "AppSpecification": {"ImageUri": jobkit.SKLEARN_IMAGE,
                             "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/preprocess.py"],
                             "ContainerArguments": ["--test-every", "4"]},
        "ProcessingInputs": [
            {"InputName": "data", "S3Input": {"S3Uri": f"s3://{lab.bucket}/proc/raw", "LocalPath": "/opt/ml/processing/input/data",
                                              "S3DataType": "S3Prefix", "S3InputMode": "File"}},
            {"InputName": "code", "S3Input": {"S3Uri": f"s3://{lab.bucket}/proc/code/preprocess.py",
                                              "LocalPath": "/opt/ml/processing/input/code",
                                              "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        "ProcessingOutputConfig": {"Outputs": [
            {"OutputName": o, "S3Output": {"S3Uri": f"s3://{lab.bucket}/proc/{name}/{o}", "LocalPath": f"/opt/ml/processing/{o}",
                                           "S3UploadMode": "EndOfJob"}} for o in ("train", "test")]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}},
        "StoppingCondition": {"MaxRuntimeInSeconds": 120},
    }
    req.update(extra)
    return req


def wait(sm, name):
    deadline = time.time() + 300  # only catches a hang
    while time.time() < deadline:
        job = sm.describe_processing_job(ProcessingJobName=name)
        if job["ProcessingJobStatus"] in ("Completed", "Failed", "Stopped"):
            return job
        time.sleep(0.05)
    raise AssertionError(name)


def test_processing_job_runs_the_script_and_uploads_outputs(aws):
    lab, s3, sm = aws
    sm.create_processing_job(**request(lab, "split", Environment={"MODE": "ok"}))
    assert sm.describe_processing_job(ProcessingJobName="split")["ProcessingJobStatus"] in ("InProgress", "Completed")
    job = wait(sm, "split")
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["ProcessingStartTime"] <= job["ProcessingEndTime"]
    test = s3.get_object(Bucket=lab.bucket, Key="proc/split/test/test.csv")["Body"].read().decode().split()
    train = s3.get_object(Bucket=lab.bucket, Key="proc/split/train/train.csv")["Body"].read().decode().split()
    assert test == ["0,0", "4,8"] and len(train) == 6
    logs = boto3.client("logs")
    (stream,) = logs.describe_log_streams(logGroupName="/aws/sagemaker/ProcessingJobs",
                                          logStreamNamePrefix="split/")["logStreams"]
    events = logs.get_log_events(logGroupName="/aws/sagemaker/ProcessingJobs", logStreamName=stream["logStreamName"])
    assert "rows=8 train=6 test=2 mode=ok" in [e["message"] for e in events["events"]]
    (event,) = [e for e in usage.events("sagemaker:processing") if e["resource"] == "split"]
    assert event["instance_type"] == "ml.m5.large" and event["seconds"] >= 1


def test_failing_processing_script_reports_its_error(aws):
    lab, _, sm = aws
    sm.create_processing_job(**request(lab, "split-crash", Environment={"MODE": "crash"}))
    job = wait(sm, "split-crash")
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("AlgorithmError: See job logs for more information\n")
    assert "RuntimeError: processing failed on purpose" in job["FailureReason"]
    assert 'File "/opt/ml/processing/input/code/preprocess.py", line 20, in <module>' in job["FailureReason"]
    assert "RuntimeError: processing failed on purpose" in job["ExitMessage"]


def test_local_path_outside_opt_ml_processing_is_rejected(aws):
    lab, _, sm = aws
    req = request(lab, "bad-path")
    req["ProcessingInputs"][0]["S3Input"]["LocalPath"] = "/data"
    with pytest.raises(botocore.exceptions.ClientError, match="/opt/ml/processing"):
        sm.create_processing_job(**req)
