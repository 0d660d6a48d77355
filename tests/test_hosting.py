"""Real-time endpoints of the offline backend: real models served by the learner's code."""

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


@pytest.fixture(scope="module")
def sklearn_endpoint(lab, sm):
    model, tarball = hm.sklearn_model()
    url = hm.upload(lab.bucket, "hosting/sk/model.tar.gz", tarball)
    hm.create_model(lab, "sk-model", url, env={"SAGEMAKER_PROGRAM": "inference.py"})
    created = time.time()
    sm.create_endpoint_config(EndpointConfigName="sk", ProductionVariants=[hm.variant("sk-model")])
    sm.create_endpoint(EndpointName="sk", EndpointConfigName="sk")
    first = sm.describe_endpoint(EndpointName="sk")["EndpointStatus"]
    sm.get_waiter("endpoint_in_service").wait(EndpointName="sk")
    return {"model": model, "first_status": first, "created": created}


def test_endpoint_goes_creating_then_in_service(sm, sklearn_endpoint):
    assert sklearn_endpoint["first_status"] == "Creating"
    described = sm.describe_endpoint(EndpointName="sk")
    assert described["EndpointStatus"] == "InService"
    assert described["ProductionVariants"][0]["VariantName"] == "AllTraffic"
    assert "DataCaptureConfig" not in described


def test_invoke_runs_the_learners_code(rt, sklearn_endpoint):
    x, _ = hm.data(5, seed=3)
    response = rt.invoke_endpoint(EndpointName="sk", Body=json.dumps({"instances": x.tolist()}),
                                  ContentType="application/json")
    assert response["ContentType"] == "application/json"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    got = json.loads(response["Body"].read())["predictions"]
    expected = sklearn_endpoint["model"].predict_proba(x)[:, 1]
    assert np.allclose(got, expected, atol=1e-5)


def test_accept_selects_the_output_encoding(rt, sklearn_endpoint):
    response = rt.invoke_endpoint(EndpointName="sk", Body="0.9,0.9,0.1\n0.0,0.1,0.2", ContentType="text/csv",
                                  Accept="text/csv")
    assert response["ContentType"] == "text/csv"
    values = [float(v) for v in response["Body"].read().decode().split()]
    assert len(values) == 2 and values[0] > 0.5 > values[1]


def test_learner_error_is_model_error_with_original_status(rt, sklearn_endpoint):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        rt.invoke_endpoint(EndpointName="sk", Body=json.dumps([[1, 2, 3]]), ContentType="application/json")
    err = info.value.response
    assert err["Error"]["Code"] == "ModelError"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert err["OriginalStatusCode"] == 400
    assert "instances" in err["OriginalMessage"]
    assert err["LogStreamArn"].endswith("log-group:/aws/sagemaker/Endpoints/sk")
    assert "Received client error (400) from primary" in err["Error"]["Message"]


def test_unsupported_content_type_is_415_from_the_container(rt, sklearn_endpoint):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        rt.invoke_endpoint(EndpointName="sk", Body=b"\x00\x01", ContentType="application/x-npy")
    assert info.value.response["OriginalStatusCode"] == 415


def test_unknown_endpoint_is_validation_error(rt, lab):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        rt.invoke_endpoint(EndpointName="missing", Body=b"1", ContentType="text/csv")
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert info.value.response["Error"]["Message"] == f"Endpoint missing of account {lab.account_id} not found."


def test_body_over_6_mb_is_rejected(rt, sklearn_endpoint):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        rt.invoke_endpoint(EndpointName="sk", Body=b"1" * (6 * 1024 * 1024 + 1), ContentType="text/csv")
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert "6 MB" in info.value.response["Error"]["Message"]


def test_logs_go_to_cloudwatch(sklearn_endpoint):
    logs = boto3.client("logs")
    group = "/aws/sagemaker/Endpoints/sk"
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert streams and streams[0]["logStreamName"].startswith("AllTraffic/i-")
    messages = [e["message"] for e in logs.get_log_events(logGroupName=group,
                                                          logStreamName=streams[0]["logStreamName"])["events"]]
    assert any("loading model.joblib" in m for m in messages)


def test_hosting_usage_is_an_open_interval(sklearn_endpoint):
    events = [e for e in usage.events("sagemaker:hosting") if e["resource"] == "sk"]
    assert len(events) == 1
    assert events[0]["instance_type"] == "ml.m5.large" and events[0]["instance_count"] == 1
    assert events[0]["end"] is None and events[0]["start"] >= sklearn_endpoint["created"]
    assert events[0]["variant"] == "AllTraffic"


def test_duplicate_endpoint_is_rejected(sm, sklearn_endpoint):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        sm.create_endpoint(EndpointName="sk", EndpointConfigName="sk")
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "already existing endpoint" in info.value.response["Error"]["Message"]


def test_update_endpoint_swaps_without_downtime(lab, sm, rt, sklearn_endpoint):
    model2, tarball = hm.sklearn_model(seed=7)
    hm.create_model(lab, "sk-model-2", hm.upload(lab.bucket, "hosting/sk2/model.tar.gz", tarball),
                    env={"SAGEMAKER_PROGRAM": "inference.py"})
    sm.create_endpoint_config(EndpointConfigName="sk-v2", ProductionVariants=[hm.variant("sk-model-2", "Blue")])
    sm.update_endpoint(EndpointName="sk", EndpointConfigName="sk-v2")
    assert sm.describe_endpoint(EndpointName="sk")["EndpointStatus"] == "Updating"
    served = set()
    while sm.describe_endpoint(EndpointName="sk")["EndpointStatus"] == "Updating":
        r = rt.invoke_endpoint(EndpointName="sk", Body="0.5,0.5,0.5", ContentType="text/csv", Accept="text/csv")
        served.add(r["InvokedProductionVariant"])
        time.sleep(0.02)
    described = sm.describe_endpoint(EndpointName="sk")
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == "sk-v2"
    assert served <= {"AllTraffic", "Blue"}
    r = rt.invoke_endpoint(EndpointName="sk", Body="0.5,0.5,0.5", ContentType="text/csv", Accept="text/csv")
    assert r["InvokedProductionVariant"] == "Blue"
    old = [e for e in usage.events("sagemaker:hosting") if e["resource"] == "sk" and e["variant"] == "AllTraffic"]
    assert old[0]["end"] is not None


def test_delete_endpoint_stops_the_server(sm, rt, sklearn_endpoint):
    process = hosting.engine.get("sk").variants["Blue"].process
    assert process is not None and process.proc.poll() is None
    sm.delete_endpoint(EndpointName="sk")
    assert process.proc.poll() is not None
    assert sm.describe_endpoint(EndpointName="sk")["EndpointStatus"] == "Deleting"  # for a short while, as on AWS
    assert "sk" in [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]
    with pytest.raises(botocore.exceptions.ClientError, match="Cannot create already existing endpoint"):
        sm.create_endpoint(EndpointName="sk", EndpointConfigName="sk-v2")
    sm.get_waiter("endpoint_deleted").wait(EndpointName="sk")
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        sm.describe_endpoint(EndpointName="sk")
    assert gone.value.response["Error"]["Code"] == "ValidationException"
    assert "Could not find endpoint" in gone.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        rt.invoke_endpoint(EndpointName="sk", Body="1,2,3", ContentType="text/csv")
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert all(e["end"] is not None for e in usage.events("sagemaker:hosting") if e["resource"] == "sk")


def test_failing_model_fn_fails_the_endpoint(lab, sm):
    _, tarball = hm.sklearn_model(code="broken_inference.py")
    hm.create_model(lab, "broken", hm.upload(lab.bucket, "hosting/broken/model.tar.gz", tarball))
    sm.create_endpoint_config(EndpointConfigName="broken", ProductionVariants=[hm.variant("broken")])
    sm.create_endpoint(EndpointName="broken", EndpointConfigName="broken")
    with pytest.raises(botocore.exceptions.WaiterError):
        sm.get_waiter("endpoint_in_service").wait(EndpointName="broken")
    described = sm.describe_endpoint(EndpointName="broken")
    assert described["EndpointStatus"] == "Failed"
    assert "did not pass the ping health check" in described["FailureReason"]
    # The root cause from the model server's log: the learner's exception and the line that raised it.
    assert "RuntimeError: model_fn could not find weights.bin" in described["FailureReason"]
    assert 'File "/opt/ml/model/code/inference.py", line 5, in model_fn' in described["FailureReason"]
    sm.delete_endpoint(EndpointName="broken")


def test_missing_model_data_is_refused_by_create_model(lab, sm):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        hm.create_model(lab, "nodata", f"s3://{lab.bucket}/hosting/none/model.tar.gz")
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert info.value.response["Error"]["Message"] == (
        f"Could not find model data at s3://{lab.bucket}/hosting/none/model.tar.gz.")


def test_model_data_deleted_after_create_model_fails_the_endpoint(lab, sm, s3):
    _, tarball = hm.sklearn_model()
    url = hm.upload(lab.bucket, "hosting/gone/model.tar.gz", tarball)
    hm.create_model(lab, "nodata", url)
    s3.delete_object(Bucket=lab.bucket, Key="hosting/gone/model.tar.gz")
    hm.deploy(lab, "nodata", [hm.variant("nodata")], wait=False)
    assert hosting.wait_for_endpoint("nodata") == "Failed"
    assert "Failed to download model data" in sm.describe_endpoint(EndpointName="nodata")["FailureReason"]
    sm.delete_endpoint(EndpointName="nodata")


def test_xgboost_container_defaults_serve_xgboost_model(lab, rt):
    import xgboost as xgb

    booster, tarball = hm.xgboost_model()
    hm.create_model(lab, "xgb", hm.upload(lab.bucket, "hosting/xgb/model.tar.gz", tarball), image=hm.XGBOOST_IMAGE)
    hm.deploy(lab, "xgb", [hm.variant("xgb")])
    x, _ = hm.data(4, seed=5)
    body = "\n".join(",".join(str(v) for v in row) for row in x)
    response = rt.invoke_endpoint(EndpointName="xgb", Body=body, ContentType="text/csv", Accept="text/csv")
    assert response["ContentType"] == "text/csv; charset=utf-8"  # Flask's, in the container
    got = [float(v) for v in response["Body"].read().decode().split()]  # one prediction per line
    assert np.allclose(got, booster.predict(xgb.DMatrix(x)), atol=1e-6)
    boto3.client("sagemaker").delete_endpoint(EndpointName="xgb")


def test_pytorch_container_defaults_serve_torchscript(lab, rt):
    import torch

    net, tarball = hm.torchscript_model()
    hm.create_model(lab, "pt", hm.upload(lab.bucket, "hosting/pt/model.tar.gz", tarball), image=hm.PYTORCH_IMAGE)
    hm.deploy(lab, "pt", [hm.variant("pt")])
    x, _ = hm.data(3, seed=9)
    response = rt.invoke_endpoint(EndpointName="pt", Body=json.dumps(x.tolist()), ContentType="application/json")
    assert response["ContentType"] == "application/json"
    got = np.array(json.loads(response["Body"].read()))
    with torch.no_grad():
        expected = net(torch.tensor(x, dtype=torch.float32)).numpy()
    assert np.allclose(got, expected, atol=1e-5)
    boto3.client("sagemaker").delete_endpoint(EndpointName="pt")


def test_reset_stops_every_model_server(lab):
    import labkit

    hm.create_model(lab, "tmp", hm.upload(lab.bucket, "hosting/tmp/model.tar.gz", hm.sklearn_model()[1]))
    hm.deploy(lab, "tmp", [hm.variant("tmp")])
    process = hosting.engine.get("tmp").variants["AllTraffic"].process
    labkit.connect("tests", backend="offline", quiet=True)
    assert process.proc.poll() is not None
    assert hosting.engine.endpoints == {}


def test_list_models_filters_sorts_and_pages_as_aws(lab, sm):
    _, tarball = hm.sklearn_model()
    url = hm.upload(lab.bucket, "hosting/listing/model.tar.gz", tarball)
    before = sm.list_models()["Models"]
    for name in ("listing-b", "listing-a", "other-team-listing"):
        hm.create_model(lab, name, url)
        time.sleep(0.01)
    mine = sm.list_models(NameContains="listing-")["Models"]
    assert [m["ModelName"] for m in mine] == ["listing-a", "listing-b"]  # newest first by default
    by_name = sm.list_models(NameContains="listing", SortBy="Name", SortOrder="Ascending")["Models"]
    assert [m["ModelName"] for m in by_name] == ["listing-a", "listing-b", "other-team-listing"]
    first = sm.list_models(NameContains="listing", SortBy="Name", SortOrder="Ascending", MaxResults=2)
    second = sm.list_models(NameContains="listing", SortBy="Name", SortOrder="Ascending", MaxResults=2,
                            NextToken=first["NextToken"])
    assert [m["ModelName"] for m in first["Models"] + second["Models"]] == [m["ModelName"] for m in by_name]
    assert "NextToken" not in second
    pages = sm.get_paginator("list_models").paginate(NameContains="listing", PaginationConfig={"PageSize": 1})
    assert sorted(m["ModelName"] for p in pages for m in p["Models"]) == sorted(m["ModelName"] for m in by_name)
    after = sm.list_models(CreationTimeAfter=mine[0]["CreationTime"])["Models"]
    assert [m["ModelName"] for m in after] == ["other-team-listing", "listing-a"]
    assert len(sm.list_models()["Models"]) == len(before) + 3
    for name in ("listing-b", "listing-a", "other-team-listing"):
        sm.delete_model(ModelName=name)
