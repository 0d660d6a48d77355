"""Every S3 location form AWS accepts, wherever the SageMaker API takes one, and AWS's error for the rest."""

from __future__ import annotations

import sys
from pathlib import Path

import botocore.exceptions
import pytest

from labkit.offline import s3_location

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "hosting"))
sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "training"))
import jobkit  # noqa: E402
import models as hm  # noqa: E402

FORMS = [
    ("s3://{b}/{k}", None),
    ("https://{b}.s3.amazonaws.com/{k}", None),
    ("https://{b}.s3.us-east-1.amazonaws.com/{k}", "us-east-1"),
    ("https://{b}.s3-us-east-1.amazonaws.com/{k}", "us-east-1"),
    ("https://{b}.s3.dualstack.us-east-1.amazonaws.com/{k}", "us-east-1"),
    ("https://s3.amazonaws.com/{b}/{k}", None),
    ("https://s3.us-east-1.amazonaws.com/{b}/{k}", "us-east-1"),
    ("https://s3-us-east-1.amazonaws.com/{b}/{k}", "us-east-1"),
    ("https://s3-external-1.amazonaws.com/{b}/{k}", "us-east-1"),
    ("https://s3.dualstack.us-east-1.amazonaws.com/{b}/{k}", "us-east-1"),
    ("https://{b}.s3.cn-north-1.amazonaws.com.cn/{k}", "cn-north-1"),
]


def forms(bucket: str, key: str) -> list[str]:
    return [form.format(b=bucket, k=key) for form, _ in FORMS]


@pytest.mark.parametrize(("form", "region"), FORMS)
def test_every_form_names_the_same_object(form, region):
    location = s3_location.parse(form.format(b="my-bucket", k="models/v1/model.tar.gz"))
    assert (location.bucket, location.key, location.region) == ("my-bucket", "models/v1/model.tar.gz", region)
    assert location.uri == "s3://my-bucket/models/v1/model.tar.gz"


def test_https_keys_are_percent_decoded_and_s3_keys_taken_as_written():
    assert s3_location.split("https://b.s3.amazonaws.com/a%20b/c%2Bd.csv") == ("b", "a b/c+d.csv")
    assert s3_location.split("https://s3.us-west-2.amazonaws.com/b/a%20b") == ("b", "a b")
    assert s3_location.split("s3://b/a%20b") == ("b", "a%20b")


def test_bucket_names_with_dots_and_bare_buckets():
    assert s3_location.split("https://my.dotted.bucket.s3.eu-west-1.amazonaws.com/k") == ("my.dotted.bucket", "k")
    assert s3_location.split("s3://bucket") == ("bucket", "")
    assert s3_location.split("https://s3.amazonaws.com/bucket/") == ("bucket", "")


@pytest.mark.parametrize("bad", [
    "gs://bucket/key", "bucket/key", "s3:/bucket/key", "http://bucket.s3.amazonaws.com/key", "",
    "https://example.com/model.tar.gz", "https://bucket.s3-website-us-east-1.amazonaws.com/key",
    "https://s3.amazonaws.com/", "https://s3.amazonaws.com/b/k?versionId=3",
])
def test_other_strings_are_not_s3_locations(bad):
    with pytest.raises(s3_location.InvalidS3Location):
        s3_location.parse(bad)


def test_require_answers_with_sagemakers_pattern_error():
    from labkit.offline.dispatch import AWSError

    with pytest.raises(AWSError) as info:
        s3_location.require("gs://b/k", "primaryContainer.modelDataUrl")
    assert info.value.code == "ValidationException"
    assert info.value.message == ("1 validation error detected: Value 'gs://b/k' at 'primaryContainer.modelDataUrl' "
                                  "failed to satisfy constraint: Member must satisfy regular expression pattern: "
                                  "(https|s3)://([^/]+)/?(.*)")
    with pytest.raises(AWSError, match="not an Amazon S3 one"):
        s3_location.require("https://example.com/m.tar.gz", "primaryContainer.modelDataUrl")


# --- through the API ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_url(lab):
    _, tarball = hm.sklearn_model()
    hm.upload(lab.bucket, "loc/model.tar.gz", tarball)
    return lab.bucket, "loc/model.tar.gz"


def test_create_model_accepts_every_form_of_model_data_url(lab, sm, model_url):
    for i, url in enumerate(forms(*model_url)):
        hm.create_model(lab, f"loc-{i}", url, env={"SAGEMAKER_PROGRAM": "inference.py"})
        assert sm.describe_model(ModelName=f"loc-{i}")["PrimaryContainer"]["ModelDataUrl"] == url


def test_create_model_refuses_what_aws_refuses(lab, sm, model_url):
    bucket, key = model_url
    cases = {"gs://b/model.tar.gz": "failed to satisfy constraint",
             "https://example.com/model.tar.gz": "not an Amazon S3 one",
             f"https://{bucket}.s3.amazonaws.com/loc/missing.tar.gz": "Could not find model data at https://"}
    for url, message in cases.items():
        with pytest.raises(botocore.exceptions.ClientError) as info:
            hm.create_model(lab, "loc-bad", url)
        assert info.value.response["Error"]["Code"] == "ValidationException"
        assert message in info.value.response["Error"]["Message"]


def test_endpoint_serves_a_model_given_by_a_legacy_path_style_url(lab, sm, rt, model_url):
    bucket, key = model_url
    hm.create_model(lab, "loc-legacy", f"https://s3-us-east-1.amazonaws.com/{bucket}/{key}",
                    env={"SAGEMAKER_PROGRAM": "inference.py"})
    hm.deploy(lab, "loc-legacy", [hm.variant("loc-legacy")])
    answer = rt.invoke_endpoint(EndpointName="loc-legacy", Body="0.1,0.8,0.3", ContentType="text/csv",
                                Accept="text/csv")["Body"].read()
    assert 0.0 <= float(answer) <= 1.0
    sm.delete_endpoint(EndpointName="loc-legacy")


def test_training_channels_output_and_checkpoints_take_https_forms(lab, sm, s3):
    s3.put_object(Bucket=lab.bucket, Key="loc/train/a.csv", Body=b"1,2\n3,4\n")
    code = jobkit.upload_code(s3, lab.bucket, "train_basic.py")
    request = jobkit.script_request(
        lab, "loc-train", "train_basic.py", code,
        channels={"train": f"https://s3.us-east-1.amazonaws.com/{lab.bucket}/loc/train"},
        OutputDataConfig={"S3OutputPath": f"https://{lab.bucket}.s3.amazonaws.com/loc/output"},
        CheckpointConfig={"S3Uri": f"https://{lab.bucket}.s3.dualstack.us-east-1.amazonaws.com/loc/ckpt"})
    sm.create_training_job(**request)
    job = jobkit.wait(sm, "loc-train")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=lab.bucket, Prefix="loc/output/")["Contents"]]
    assert "loc/output/loc-train/output/model.tar.gz" in keys


def test_training_refuses_an_invalid_channel_location_with_awss_error(lab, sm, s3):
    code = jobkit.upload_code(s3, lab.bucket, "train_basic.py")
    request = jobkit.script_request(lab, "loc-bad", "train_basic.py", code,
                                    channels={"train": f"file:///{lab.bucket}/loc/train"})
    with pytest.raises(botocore.exceptions.ClientError) as info:
        sm.create_training_job(**request)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "'inputDataConfig.1.member.dataSource.s3DataSource.s3Uri'" in info.value.response["Error"]["Message"]
    request = jobkit.script_request(lab, "loc-bad", "train_basic.py", code, channels={},
                                    OutputDataConfig={"S3OutputPath": "https://example.com/out"})
    with pytest.raises(botocore.exceptions.ClientError, match="outputDataConfig.s3OutputPath"):
        sm.create_training_job(**request)


def test_processing_inputs_and_outputs_take_https_forms(lab, sm, s3):
    s3.put_object(Bucket=lab.bucket, Key="loc/proc/in/data.txt", Body=b"hello\n")
    sm.create_processing_job(
        ProcessingJobName="loc-proc", RoleArn=lab.role_arn,
        AppSpecification={"ImageUri": jobkit.SKLEARN_IMAGE, "ContainerEntrypoint": [
            "python3", "-c", "import shutil; shutil.copy('/opt/ml/processing/in/data.txt', "
                             "'/opt/ml/processing/out/copy.txt')"]},
        ProcessingResources={"ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                               "VolumeSizeInGB": 5}},
        ProcessingInputs=[{"InputName": "in", "S3Input": {
            "S3Uri": f"https://{lab.bucket}.s3.us-east-1.amazonaws.com/loc/proc/in", "LocalPath": "/opt/ml/processing/in",
            "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        ProcessingOutputConfig={"Outputs": [{"OutputName": "out", "S3Output": {
            "S3Uri": f"https://s3.amazonaws.com/{lab.bucket}/loc/proc/out", "LocalPath": "/opt/ml/processing/out",
            "S3UploadMode": "EndOfJob"}}]})
    waiter = sm.get_waiter("processing_job_completed_or_stopped")
    waiter.wait(ProcessingJobName="loc-proc", WaiterConfig={"Delay": 0.1, "MaxAttempts": 600})
    job = sm.describe_processing_job(ProcessingJobName="loc-proc")
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert s3.get_object(Bucket=lab.bucket, Key="loc/proc/out/copy.txt")["Body"].read() == b"hello\n"


def test_transform_input_and_output_take_https_forms(lab, sm, s3, model_url):
    hm.create_model(lab, "loc-tf", f"https://{model_url[0]}.s3.amazonaws.com/{model_url[1]}",
                    env={"SAGEMAKER_PROGRAM": "inference.py"})
    s3.put_object(Bucket=lab.bucket, Key="loc/batch/in/rows.csv", Body=b"0.1,0.8,0.3\n0.9,0.1,0.2\n")
    sm.create_transform_job(
        TransformJobName="loc-tf", ModelName="loc-tf",
        TransformInput={"DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"https://s3-external-1.amazonaws.com/{lab.bucket}/loc/batch/in"}},
            "ContentType": "text/csv", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": f"https://{lab.bucket}.s3-us-east-1.amazonaws.com/loc/batch/out",
                         "Accept": "text/csv", "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1})
    sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName="loc-tf")
    job = sm.describe_transform_job(TransformJobName="loc-tf")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    lines = s3.get_object(Bucket=lab.bucket, Key="loc/batch/out/rows.csv.out")["Body"].read().decode().split()
    assert len(lines) == 2


def test_endpoint_config_capture_and_async_locations_are_checked(lab, sm, model_url):
    hm.create_model(lab, "loc-cfg", f"s3://{model_url[0]}/{model_url[1]}", env={"SAGEMAKER_PROGRAM": "inference.py"})
    sm.create_endpoint_config(EndpointConfigName="loc-cfg-ok", ProductionVariants=[hm.variant("loc-cfg")],
                              DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 100,
                                                 "DestinationS3Uri": f"https://{lab.bucket}.s3.amazonaws.com/cap",
                                                 "CaptureOptions": [{"CaptureMode": "Input"}]})
    with pytest.raises(botocore.exceptions.ClientError, match="dataCaptureConfig.destinationS3Uri"):
        sm.create_endpoint_config(EndpointConfigName="loc-cfg-bad", ProductionVariants=[hm.variant("loc-cfg")],
                                  DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 100,
                                                     "DestinationS3Uri": "ftp://x/cap",
                                                     "CaptureOptions": [{"CaptureMode": "Input"}]})
    with pytest.raises(botocore.exceptions.ClientError, match="asyncInferenceConfig.outputConfig.s3OutputPath"):
        sm.create_endpoint_config(EndpointConfigName="loc-cfg-bad", ProductionVariants=[hm.variant("loc-cfg")],
                                  AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "https://example.com/o"}})
