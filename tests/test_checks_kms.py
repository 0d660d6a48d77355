"""KMS key policies judged by KMS's rules: the key policy first, IAM only where the key policy delegates."""

from __future__ import annotations

import pytest

from labkit.checks import kms

ACCOUNT = "123456789012"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecution"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/KeyAdmin"
ROOT = {"Sid": "EnableIAM", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "kms:*", "Resource": "*"}
USE = {"Sid": "Use", "Effect": "Allow", "Principal": {"AWS": ROLE},
       "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*", "kms:DescribeKey"],
       "Resource": "*"}
GRANT = {"Sid": "Grants", "Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "kms:CreateGrant", "Resource": "*",
         "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}
ROLE_IAM = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": KEY}]}


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def needs():
    return kms.training_job_needs("us-east-1")


def test_a_key_policy_naming_the_role_lets_a_training_job_use_the_key():
    results = kms.explain(policy(USE, GRANT), KEY, ROLE, needs())
    assert [r.action for r in results] == ["kms:CreateGrant", "kms:GenerateDataKey", "kms:Decrypt"]
    assert all(r.allowed and "allows the caller" in r.reason for r in results)


def test_without_the_grant_statement_sagemaker_cannot_encrypt_the_volume():
    create_grant, *rest = kms.explain(policy(USE), KEY, ROLE, needs())
    assert not create_grant.allowed and "cannot help" in create_grant.reason
    assert all(r.allowed for r in rest)


def test_iam_helps_only_where_the_key_policy_delegates_to_the_account():
    assert not kms.access(policy(USE), KEY, ROLE, "kms:CreateGrant", [ROLE_IAM]).allowed
    delegated = kms.access(policy(ROOT), KEY, ROLE, "kms:CreateGrant", [ROLE_IAM])
    assert delegated.allowed and "delegates to IAM" in delegated.reason
    assert not kms.access(policy(ROOT), KEY, ROLE, "kms:CreateGrant").allowed


def test_conditions_and_denies():
    outside = kms.access(policy(GRANT), KEY, ROLE, "kms:CreateGrant", context={"kms:GrantIsForAWSResource": ["false"]})
    assert not outside.allowed
    deny = {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*",
            "Condition": {"StringNotEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}}
    direct = kms.access(policy(USE, deny), KEY, ROLE, "kms:Decrypt", context={"kms:ViaService": ["ec2.amazonaws.com"]})
    assert not direct.allowed and "explicit Deny" in direct.reason
    assert kms.access(policy(USE, deny), KEY, ROLE, "kms:Decrypt",
                      context={"kms:ViaService": ["s3.us-east-1.amazonaws.com"]}).allowed
    other = f"arn:aws:iam::999999999999:role/{ROLE.rsplit('/', 1)[1]}"
    assert not kms.access(policy(ROOT, USE), KEY, other, "kms:Decrypt", [ROLE_IAM]).allowed


def test_lockout_and_bad_documents():
    assert kms.lockout_problems(policy(USE, GRANT), KEY, [ADMIN])
    admin = {"Effect": "Allow", "Principal": {"AWS": ADMIN}, "Action": ["kms:PutKeyPolicy", "kms:Describe*"],
             "Resource": "*"}
    assert kms.lockout_problems(policy(USE, admin), KEY, [ADMIN]) == []
    with pytest.raises(ValueError, match="needs a Principal"):
        kms.access({"Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}, KEY, ROLE, "kms:Decrypt")
