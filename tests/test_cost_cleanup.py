"""``labkit cleanup`` and ``lab.cleanup()``: tagged leftovers go, nothing else does."""

from __future__ import annotations

import boto3
import pytest

import labkit
from labkit.cost import cleanup
from labkit.cost.cli import main_cleanup, main_cost

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def _tags(lab_name):
    return [{"Key": "labkit:lab", "Value": lab_name}] if lab_name else []


@pytest.fixture
def leftovers():
    """A fresh backend with resources of lab 'tests', of another lab, untagged ones and the shared bucket."""
    lab = labkit.connect("tests", backend="offline", quiet=True)
    sm = boto3.client("sagemaker")
    s3 = boto3.client("s3")
    for name, owner in (("m-mine", "tests"), ("m-other", "04-endpoints"), ("m-untagged", None)):
        sm.create_model(ModelName=name, ExecutionRoleArn=lab.role_arn, PrimaryContainer={"Image": IMAGE},
                        Tags=_tags(owner))
    for name, owner in (("c-mine", "tests"), ("c-untagged", None)):
        sm.create_endpoint_config(EndpointConfigName=name, Tags=_tags(owner), ProductionVariants=[{
            "VariantName": "v", "ModelName": "m-mine", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    for name, owner in (("nb-mine", "tests"), ("nb-other", "04-endpoints")):
        sm.create_notebook_instance(NotebookInstanceName=name, InstanceType="ml.t3.medium", RoleArn=lab.role_arn,
                                    Tags=_tags(owner))
    s3.create_bucket(Bucket="tests-scratch-bucket")
    s3.put_bucket_tagging(Bucket="tests-scratch-bucket", Tagging={"TagSet": _tags("tests")})
    s3.put_object(Bucket="tests-scratch-bucket", Key="a/b.txt", Body=b"left behind")
    s3.create_bucket(Bucket="someone-elses-bucket")
    s3.put_object(Bucket="someone-elses-bucket", Key="keep.txt", Body=b"keep")
    s3.put_bucket_tagging(Bucket=lab.bucket, Tagging={"TagSet": _tags("shared")})
    return lab


def _real(found):
    """Leftovers, without the notes on kinds the backend cannot list (moto lacks monitoring schedules)."""
    return [x for x in found if x.action != "skip"]


def _state():
    sm = boto3.client("sagemaker")
    return {
        "models": {m["ModelName"] for m in sm.list_models()["Models"]},
        "configs": {c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]},
        "notebooks": {n["NotebookInstanceName"] for n in sm.list_notebook_instances()["NotebookInstances"]},
        "buckets": {b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]},
    }


def test_find_leftovers_by_tag(leftovers):
    lab = leftovers
    found = _real(cleanup.find_leftovers("tests", region=lab.region))
    names = {(x.kind, x.name) for x in found}
    assert names == {("model", "m-mine"), ("endpoint-config", "c-mine"), ("notebook-instance", "nb-mine"),
                     ("s3-bucket", "tests-scratch-bucket")}
    every_lab = {(x.kind, x.name) for x in _real(cleanup.find_leftovers(None, region=lab.region))}
    assert ("model", "m-other") in every_lab and ("notebook-instance", "nb-other") in every_lab
    assert not any(name in (lab.bucket, "m-untagged", "c-untagged", "someone-elses-bucket")
                   for _, name in every_lab)  # untagged and 'shared' are never leftovers


def test_dry_run_changes_nothing(leftovers):
    lab = leftovers
    before = _state()
    would = lab.cleanup(dry_run=True)
    assert set(would) == {"model m-mine", "endpoint-config c-mine", "notebook-instance nb-mine",
                          "s3-bucket tests-scratch-bucket"}
    assert _state() == before


def test_cleanup_removes_tagged_leftovers_and_nothing_else(leftovers):
    lab = leftovers
    before = _state()
    removed = lab.cleanup()
    assert set(removed) == {"model m-mine", "endpoint-config c-mine", "notebook-instance nb-mine",
                            "s3-bucket tests-scratch-bucket"}
    after = _state()
    assert after["models"] == before["models"] - {"m-mine"}
    assert after["configs"] == before["configs"] - {"c-mine"}
    assert after["notebooks"] == before["notebooks"] - {"nb-mine"}
    assert after["buckets"] == before["buckets"] - {"tests-scratch-bucket"}
    assert {"m-other", "m-untagged"} <= after["models"] and "nb-other" in after["notebooks"]
    assert boto3.client("s3").get_object(Bucket="someone-elses-bucket", Key="keep.txt")["Body"].read() == b"keep"
    assert _real(cleanup.find_leftovers("tests", region=lab.region)) == []


def test_cli_is_a_dry_run_unless_yes(leftovers, capsys):
    lab = leftovers
    before = _state()
    assert main_cleanup(["--lab", "04-endpoints", "--region", lab.region]) == 0
    out = capsys.readouterr().out
    assert "m-other" in out and "nb-other" in out and "Dry run" in out and "m-mine" not in out
    assert _state() == before
    assert main_cleanup(["--lab", "04-endpoints", "--region", lab.region, "--yes"]) == 0
    out = capsys.readouterr().out
    assert "removed model m-other" in out
    after = _state()
    assert "m-other" not in after["models"] and "nb-other" not in after["notebooks"]
    assert "m-mine" in after["models"]  # another lab's resources stay


def test_cost_cli_show_and_summary(tmp_path, capsys):
    assert main_cost(["show", "--service", "bedrock", "--match", "haiku"]) == 0
    out = capsys.readouterr().out
    assert "anthropic.claude-3-haiku-20240307-v1:0:input" in out and "(unverified)" in out
    (tmp_path / "a.bill.json").write_text('{"lab": "a", "total_usd": 1.5}')
    (tmp_path / "b.bill.json").write_text('{"lab": "b", "total_usd": 0.25}')
    assert main_cost(["summary", str(tmp_path)]) == 0
    assert "$1.7500" in capsys.readouterr().out
    assert main_cost(["refresh"]) == 2  # the offline backend has no real Pricing API to read
