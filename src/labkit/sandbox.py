"""The sandbox backend: a real AWS account, chosen explicitly, behind a guard.

Nothing here runs unless the learner set ``LABKIT_BACKEND=sandbox`` (or passed
``backend="sandbox"``). Before anything is created it prints the account, region and
identity it is about to use; ``LABKIT_SANDBOX_ACCOUNT`` pins the account so that stray
credentials are refused. Every resource a lab creates is tagged ``labkit:lab=<lab>``
(see :mod:`labkit.cost.guard` for the spending cap and the clean-up by tag).
"""

from __future__ import annotations

import os
from typing import Any

from .cost.cleanup import TAG_KEY
from .lab import SANDBOX, BackendError, Lab

# Create operations that take a ``Tags`` list of {Key, Value}: the guard adds the lab tag.
TAGGED_CREATES = {
    "sagemaker": ("CreateTrainingJob", "CreateProcessingJob", "CreateTransformJob", "CreateModel",
                  "CreateEndpointConfig", "CreateEndpoint", "CreateHyperParameterTuningJob",
                  "CreatePipeline", "CreateModelPackageGroup", "CreateFeatureGroup",
                  "CreateMonitoringSchedule", "CreateNotebookInstance"),
    "bedrock": ("CreateGuardrail",),
    "bedrock-agent": ("CreateKnowledgeBase",),
    "eks": (),
}


def _identity(session: Any) -> dict[str, str]:
    try:
        return session.client("sts").get_caller_identity()
    except Exception as err:  # botocore raises several kinds for missing credentials
        raise BackendError(
            "The sandbox backend needs AWS credentials and found none that work "
            f"({type(err).__name__}: {err}). Run `aws configure` or `aws sso login`, or export "
            "AWS_PROFILE, then connect again. To stay offline, unset LABKIT_BACKEND."
        ) from err


def _execution_role(session: Any, account: str) -> str:
    role = os.environ.get("LABKIT_ROLE_ARN")
    if role:
        return role
    iam = session.client("iam")
    try:
        return iam.get_role(RoleName="LabkitSageMakerExecutionRole")["Role"]["Arn"]
    except Exception:
        pass
    try:  # SageMaker Studio and notebook instances run as their execution role
        from sagemaker.core.helper.session_helper import get_execution_role

        return get_execution_role()
    except Exception as err:
        raise BackendError(
            "No SageMaker execution role found. Set LABKIT_ROLE_ARN to a role that "
            "sagemaker.amazonaws.com may assume, or create one named LabkitSageMakerExecutionRole "
            f"in account {account} (lab 00 shows how)."
        ) from err


def _tag_creates(lab_name: str):
    def add_tag(params: dict[str, Any], **_: Any) -> None:
        tags = params.setdefault("Tags", [])
        if isinstance(tags, list) and not any(t.get("Key") == TAG_KEY for t in tags):
            tags.append({"Key": TAG_KEY, "Value": lab_name})

    return add_tag


def start(lab_name: str, *, quiet: bool = False) -> Lab:
    import boto3

    # The region as AWS's tools resolve it: AWS_REGION, AWS_DEFAULT_REGION, then the shared config.
    # boto3 reads only AWS_DEFAULT_REGION, so it is set to the chosen region for boto3, the SDK
    # and every process the lab starts to agree.
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        os.environ["AWS_DEFAULT_REGION"] = region
    session = boto3.Session()
    region = region or session.region_name
    if not region:
        raise BackendError("No AWS region set for the sandbox backend: export AWS_REGION=us-east-1 (or the "
                           "region of your account's SageMaker quotas), or run `aws configure set region "
                           "us-east-1`, and connect again.")
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    ident = _identity(session)
    account = ident["Account"]
    print(f"labkit sandbox: about to use AWS account {account} in {region} as {ident['Arn']}.")
    pinned = os.environ.get("LABKIT_SANDBOX_ACCOUNT")
    if pinned and pinned != account:
        raise BackendError(f"These credentials belong to account {account}, but LABKIT_SANDBOX_ACCOUNT "
                           f"pins {pinned}. Nothing was created. Switch credentials or change the pin.")
    role = _execution_role(session, account)
    bucket = f"sagemaker-{region}-{account}"
    handler = _tag_creates(lab_name)
    from .offline import patches

    patches.add_botocore_handlers([(f"before-parameter-build.{service}.{op}", handler)
                                   for service, ops in TAGGED_CREATES.items() for op in ops])
    boto3.DEFAULT_SESSION = None
    s3 = boto3.client("s3", region_name=region)
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception:
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": TAG_KEY, "Value": "shared"}]})
    lab = Lab(name=lab_name, backend=SANDBOX, region=region, account_id=account, role_arn=role, bucket=bucket)
    try:
        from .cost import guard

        guard.install(lab)
    except ImportError:
        pass
    return lab
