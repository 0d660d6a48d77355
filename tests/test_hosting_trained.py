"""Every endpoint kind serving models that the training engine really trained.

Two tenants' training jobs run ``train_sklearn.py`` on opposite labelings (tenant ``a``:
label is x0 > x2; tenant ``b``: x0 < x2), so each model's answers say which one served.
The artifacts hold only ``model.joblib``; the inference code comes as the v2 SDK ships it,
a ``sourcedir.tar.gz`` named by ``SAGEMAKER_SUBMIT_DIRECTORY``.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import boto3
import joblib
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "hosting"))
sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "training"))
import jobkit  # noqa: E402
import models as hm  # noqa: E402

from labkit.offline import hosting  # noqa: E402

POSITIVE, NEGATIVE = [2.0, 0.0, -2.0], [-2.0, 0.0, 2.0]


@pytest.fixture(scope="module")
def trained(lab):
    """{tenant: (artifact S3 URI, fitted model)}, and the models ``trained-a``/``trained-b`` that serve them."""
    sm, s3 = boto3.client("sagemaker"), boto3.client("s3")
    code = jobkit.upload_code(s3, lab.bucket, "train_sklearn.py")
    rng = np.random.RandomState(0)
    x = rng.normal(size=(200, 3))
    for tenant, y in (("a", x[:, 0] > x[:, 2]), ("b", x[:, 0] < x[:, 2])):
        body = "\n".join(",".join(map(str, [int(label), *row])) for label, row in zip(y, x, strict=True))
        s3.put_object(Bucket=lab.bucket, Key=f"trained/{tenant}/train.csv", Body=body.encode())
        sm.create_training_job(**jobkit.script_request(
            lab, f"tenant-{tenant}", "train_sklearn.py", code, image=jobkit.SKLEARN_IMAGE,
            channels={"train": f"s3://{lab.bucket}/trained/{tenant}/"}))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(hm.HERE / "sklearn_inference.py", arcname="inference.py")
    source = hm.upload(lab.bucket, "trained/code/sourcedir.tar.gz", buf.getvalue())
    env = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": source}
    out = {}
    for tenant in ("a", "b"):
        job = jobkit.wait(sm, f"tenant-{tenant}")
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        uri = job["ModelArtifacts"]["S3ModelArtifacts"]
        fitted = joblib.load(io.BytesIO(jobkit.read_tar(s3, uri)["model.joblib"]))
        hm.create_model(lab, f"trained-{tenant}", uri, env=env)
        out[tenant] = (uri, fitted)
    return {"tenants": out, "env": env}


def _proba(fitted, rows) -> np.ndarray:
    return fitted.predict_proba(np.asarray(rows, dtype=float))[:, 1]


def test_real_time_endpoint_serves_the_trained_artifact(lab, trained):
    rt = boto3.client("sagemaker-runtime")
    hm.deploy(lab, "tr-rt", [hm.variant("trained-a")])
    r = rt.invoke_endpoint(EndpointName="tr-rt", Body=json.dumps({"instances": [POSITIVE, NEGATIVE]}),
                           ContentType="application/json")
    got = json.loads(r["Body"].read())["predictions"]
    assert np.allclose(got, _proba(trained["tenants"]["a"][1], [POSITIVE, NEGATIVE]), atol=1e-5)
    assert got[0] > 0.5 > got[1]
    boto3.client("sagemaker").delete_endpoint(EndpointName="tr-rt")


def test_serverless_and_async_serve_the_trained_artifact(lab, trained):
    rt, s3 = boto3.client("sagemaker-runtime"), boto3.client("s3")
    hm.deploy(lab, "tr-sls", [{"VariantName": "AllTraffic", "ModelName": "trained-b",
                               "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 1}}])
    r = rt.invoke_endpoint(EndpointName="tr-sls", Body=",".join(map(str, NEGATIVE)), ContentType="text/csv",
                           Accept="text/csv")
    assert float(r["Body"].read()) == pytest.approx(_proba(trained["tenants"]["b"][1], [NEGATIVE])[0], abs=1e-5)
    hm.deploy(lab, "tr-async", [hm.variant("trained-b")],
              AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": f"s3://{lab.bucket}/trained/async-out"}})
    s3.put_object(Bucket=lab.bucket, Key="trained/async-in.csv", Body=",".join(map(str, POSITIVE)).encode())
    response = rt.invoke_endpoint_async(EndpointName="tr-async", InputLocation=f"s3://{lab.bucket}/trained/async-in.csv",
                                        ContentType="text/csv", Accept="text/csv")
    hosting.engine.get("tr-async").async_queue.join()
    key = response["OutputLocation"].split("/", 3)[3]
    got = float(s3.get_object(Bucket=lab.bucket, Key=key)["Body"].read())
    assert got == pytest.approx(_proba(trained["tenants"]["b"][1], [POSITIVE])[0], abs=1e-5)
    for name in ("tr-sls", "tr-async"):
        boto3.client("sagemaker").delete_endpoint(EndpointName=name)


def test_multi_model_endpoint_routes_each_tenant_to_its_trained_model(lab, trained):
    rt, s3 = boto3.client("sagemaker-runtime"), boto3.client("s3")
    for tenant, (uri, _) in trained["tenants"].items():
        bucket, key = uri[5:].split("/", 1)
        s3.copy_object(Bucket=lab.bucket, Key=f"trained/tenants/{tenant}.tar.gz",
                       CopySource={"Bucket": bucket, "Key": key})
    hm.create_model(lab, "trained-mme", f"s3://{lab.bucket}/trained/tenants/", env=trained["env"], mode="MultiModel")
    hm.deploy(lab, "tr-mme", [hm.variant("trained-mme")])
    for tenant in ("a", "b", "a"):
        r = rt.invoke_endpoint(EndpointName="tr-mme", TargetModel=f"{tenant}.tar.gz", Body=",".join(map(str, POSITIVE)),
                               ContentType="text/csv", Accept="text/csv")
        expected = _proba(trained["tenants"][tenant][1], [POSITIVE])[0]
        assert float(r["Body"].read()) == pytest.approx(expected, abs=1e-5)
    assert hosting.loaded_models("tr-mme") == ["b.tar.gz", "a.tar.gz"]
    boto3.client("sagemaker").delete_endpoint(EndpointName="tr-mme")


def test_batch_transform_scores_a_file_with_the_trained_model(lab, trained):
    sm, s3 = boto3.client("sagemaker"), boto3.client("s3")
    rows = [POSITIVE, NEGATIVE, [0.5, 0.1, -0.3], [0.0, 1.0, 0.4]]
    s3.put_object(Bucket=lab.bucket, Key="trained/batch/in.csv",
                  Body="".join(",".join(map(str, r)) + "\n" for r in rows).encode())
    sm.create_transform_job(
        TransformJobName="tr-batch", ModelName="trained-a", BatchStrategy="MultiRecord", MaxPayloadInMB=1,
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                        "S3Uri": f"s3://{lab.bucket}/trained/batch/in.csv"}},
                        "ContentType": "text/csv", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": f"s3://{lab.bucket}/trained/batch/out", "Accept": "text/csv",
                         "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        DataProcessing={"JoinSource": "Input"})
    sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName="tr-batch")
    job = sm.describe_transform_job(TransformJobName="tr-batch")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    lines = s3.get_object(Bucket=lab.bucket, Key="trained/batch/out/in.csv.out")["Body"].read().decode().split()
    joined = np.array([[float(v) for v in line.split(",")] for line in lines])
    assert np.allclose(joined[:, :3], rows)
    assert np.allclose(joined[:, 3], _proba(trained["tenants"]["a"][1], rows), atol=1e-5)
