"""The IAM policy evaluator behind the offline policy simulator."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from labkit.offline.iam import ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY, Policy, evaluate

BUCKET = "arn:aws:s3:::data"
POLICY = Policy({
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "s3:Get*", "Resource": f"{BUCKET}/datasets/*"},
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": BUCKET,
         "Condition": {"StringLike": {"s3:prefix": ["datasets/*"]}}},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": f"{BUCKET}/datasets/secret/*"},
        {"Effect": "Allow", "NotAction": ["iam:*", "s3:*"], "Resource": "*"},
    ],
})


@pytest.mark.parametrize("action, resource, context, expected", [
    ("s3:GetObject", f"{BUCKET}/datasets/a.csv", None, ALLOWED),
    ("S3:getobject", f"{BUCKET}/datasets/a.csv", None, ALLOWED),  # actions are case-insensitive
    ("s3:GetObject", f"{BUCKET}/Datasets/a.csv", None, IMPLICIT_DENY),  # resources are not
    ("s3:GetObject", f"{BUCKET}/datasets/secret/k", None, EXPLICIT_DENY),  # deny wins
    ("s3:PutObject", f"{BUCKET}/datasets/a.csv", None, IMPLICIT_DENY),
    ("s3:ListBucket", BUCKET, {"s3:prefix": ["datasets/x"]}, ALLOWED),
    ("s3:ListBucket", BUCKET, {"s3:prefix": ["other/"]}, IMPLICIT_DENY),
    ("s3:ListBucket", BUCKET, None, IMPLICIT_DENY),  # missing key: condition fails
    ("ec2:RunInstances", "*", None, ALLOWED),  # NotAction
    ("iam:CreateUser", "*", None, IMPLICIT_DENY),
])
def test_evaluate(action, resource, context, expected):
    assert evaluate([POLICY], action, resource, context).decision == expected


def test_missing_context_is_reported():
    d = evaluate([POLICY], "s3:ListBucket", BUCKET)
    assert d.missing_context == ["s3:prefix"]


def test_if_exists_and_null_and_set_operators():
    p = Policy({"Statement": [
        {"Effect": "Allow", "Action": "sagemaker:CreateTrainingJob", "Resource": "*",
         "Condition": {"StringEqualsIfExists": {"sagemaker:InstanceTypes": "ml.m5.large"},
                       "Null": {"sagemaker:VolumeKmsKey": "false"},
                       "ForAllValues:StringLike": {"aws:TagKeys": ["team*"]}}},
    ]})
    ok = {"sagemaker:VolumeKmsKey": ["k"], "aws:TagKeys": ["team-a"]}
    assert evaluate([p], "sagemaker:CreateTrainingJob", "*", ok).allowed
    assert not evaluate([p], "sagemaker:CreateTrainingJob", "*", {**ok, "sagemaker:InstanceTypes": ["ml.p4d.24xlarge"]}).allowed
    assert not evaluate([p], "sagemaker:CreateTrainingJob", "*", {"aws:TagKeys": ["team-a"]}).allowed
    assert not evaluate([p], "sagemaker:CreateTrainingJob", "*", {**ok, "aws:TagKeys": ["team-a", "cost"]}).allowed


def test_malformed_policies_are_rejected():
    for doc in ({"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]},
                {"Statement": [{"Effect": "Allow", "Resource": "*"}]},
                {"Version": "2012-10-17"}):
        with pytest.raises(ValueError):
            Policy(doc)


def test_simulate_custom_policy_api(lab):
    iam = boto3.client("iam")
    result = iam.simulate_custom_policy(
        PolicyInputList=[json.dumps(POLICY.document)],
        ActionNames=["s3:GetObject", "s3:PutObject"],
        ResourceArns=[f"{BUCKET}/datasets/secret/k", f"{BUCKET}/datasets/a"],
    )
    decisions = {(r["EvalActionName"], r["EvalResourceName"]): r["EvalDecision"]
                 for r in result["EvaluationResults"]}
    assert decisions == {
        ("s3:GetObject", f"{BUCKET}/datasets/secret/k"): EXPLICIT_DENY,
        ("s3:GetObject", f"{BUCKET}/datasets/a"): ALLOWED,
        ("s3:PutObject", f"{BUCKET}/datasets/secret/k"): IMPLICIT_DENY,
        ("s3:PutObject", f"{BUCKET}/datasets/a"): IMPLICIT_DENY,
    }
    with pytest.raises(ClientError) as info:
        iam.simulate_custom_policy(PolicyInputList=["not json"], ActionNames=["s3:GetObject"])
    assert info.value.response["Error"]["Code"] == "MalformedPolicyDocument"


def test_checks_ask_the_simulator_through_one_client_per_default_session(lab):
    """labkit.checks.iam answers through the simulator API, with one client per boto3 default session (a
    lab's test asks dozens of questions): a new default session (another backend, other credentials) gets
    a client of its own."""
    from labkit.checks import iam

    assert iam.decision(POLICY.document, "s3:GetObject", f"{BUCKET}/datasets/secret/k") == EXPLICIT_DENY
    assert iam.allowed(POLICY.document, "ec2:RunInstances")
    first = iam._iam()
    assert iam._iam() is first and first.meta.service_model.service_name == "iam"
    saved = boto3.DEFAULT_SESSION
    boto3.setup_default_session(region_name="eu-west-1")
    try:
        assert iam._iam() is not first
        assert iam.decision(json.dumps(POLICY.document), "iam:CreateUser") == IMPLICIT_DENY
    finally:
        boto3.DEFAULT_SESSION = saved


def test_simulate_principal_policy_reads_the_roles_policies(lab):
    iam = boto3.client("iam")
    iam.create_role(RoleName="reader", AssumeRolePolicyDocument=json.dumps({"Statement": []}))
    iam.put_role_policy(RoleName="reader", PolicyName="p", PolicyDocument=json.dumps(POLICY.document))
    arn = iam.get_role(RoleName="reader")["Role"]["Arn"]
    result = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["s3:GetObject"],
                                           ResourceArns=[f"{BUCKET}/datasets/a"])
    assert result["EvaluationResults"][0]["EvalDecision"] == ALLOWED
    with pytest.raises(ClientError) as info:
        iam.simulate_principal_policy(PolicySourceArn="arn:aws:iam::123456789012:role/none",
                                      ActionNames=["s3:GetObject"])
    assert info.value.response["Error"]["Code"] == "NoSuchEntity"
