"""CloudTrail ``CreateTrail``/``UpdateTrail`` checked against the log bucket's policy, as AWS does.

moto creates a trail for any existing bucket. AWS first checks that the bucket policy lets
the CloudTrail service principal read the bucket ACL and write log files under
``<prefix>/AWSLogs/<account>/``, and fails with ``InsufficientS3BucketPolicyException``
otherwise, the most common reason a learner's first trail is refused. The check evaluates
the bucket policy's statements for the principal ``cloudtrail.amazonaws.com`` with
:mod:`labkit.offline.iam` (Deny wins, conditions such as ``aws:SourceArn`` are given the
trail's ARN and ``s3:x-amz-acl`` the ``bucket-owner-full-control`` that CloudTrail sends).

Not emulated: delivery of log files and ``LookupEvents`` (moto has no event history).
"""

from __future__ import annotations

import json
from typing import Any

from . import ACCOUNT_ID, REGION, dispatch
from .dispatch import AWSError
from .iam import Policy, evaluate

SERVICE = "cloudtrail.amazonaws.com"


def _for_service(statement: dict[str, Any]) -> bool:
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if isinstance(principal, dict):
        services = principal.get("Service")
        services = services if isinstance(services, list) else [services]
        return SERVICE in services or principal.get("AWS") == "*"
    return False


def bucket_policy_problems(policy_text: str | None, bucket: str, prefix: str | None, trail_arn: str) -> list[str]:
    """What the bucket policy does not allow CloudTrail to do (empty when it is enough)."""
    if not policy_text:
        return [f"bucket {bucket} has no bucket policy"]
    doc = json.loads(policy_text)
    statements = [s for s in (doc.get("Statement") or []) if _for_service(s)]
    policy = Policy({"Version": "2012-10-17", "Statement": statements or [
        {"Effect": "Deny", "Action": "none:None", "Resource": "*"}]})
    context = {"aws:SourceArn": [trail_arn], "aws:SourceAccount": [ACCOUNT_ID],
               "s3:x-amz-acl": ["bucket-owner-full-control"]}
    key_prefix = f"{prefix.strip('/')}/" if prefix else ""
    needs = [("s3:GetBucketAcl", f"arn:aws:s3:::{bucket}"),
             ("s3:PutObject", f"arn:aws:s3:::{bucket}/{key_prefix}AWSLogs/{ACCOUNT_ID}/CloudTrail/{REGION}/x.json.gz")]
    return [f"{action} on {resource} is {d.decision} for {SERVICE}" for action, resource in needs
            if not (d := evaluate([policy], action, resource, context)).allowed]


def _check(name: str, bucket: str | None, prefix: str | None) -> None:
    if not bucket:
        return
    import boto3

    s3 = boto3.client("s3", region_name=REGION)
    try:
        text = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    except s3.exceptions.ClientError as err:
        if err.response["Error"]["Code"] == "NoSuchBucket":
            return  # moto answers S3BucketDoesNotExistException
        text = None
    trail_arn = name if name.startswith("arn:") else f"arn:aws:cloudtrail:{REGION}:{ACCOUNT_ID}:trail/{name}"
    found = bucket_policy_problems(text, bucket, prefix, trail_arn)
    if found:
        raise AWSError("InsufficientS3BucketPolicyException",
                       f"Incorrect S3 bucket policy is detected for bucket: {bucket} ({'; '.join(found)}). "
                       f"Allow {SERVICE} s3:GetBucketAcl on the bucket and s3:PutObject on "
                       f"{bucket}/{(prefix.strip('/') + '/') if prefix else ''}AWSLogs/{ACCOUNT_ID}/* "
                       "with the condition s3:x-amz-acl = bucket-owner-full-control.")


@dispatch.validate("cloudtrail", "CreateTrail")
def check_create_trail(params: dict[str, Any]) -> None:
    _check(params["Name"], params.get("S3BucketName"), params.get("S3KeyPrefix"))


@dispatch.validate("cloudtrail", "UpdateTrail")
def check_update_trail(params: dict[str, Any]) -> None:
    if "S3BucketName" in params or "S3KeyPrefix" in params:
        bucket = params.get("S3BucketName")
        if not bucket:
            import boto3

            trail = boto3.client("cloudtrail", region_name=REGION).get_trail(Name=params["Name"])["Trail"]
            bucket = trail["S3BucketName"]
        _check(params["Name"], bucket, params.get("S3KeyPrefix"))
