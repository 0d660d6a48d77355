"""The offline backend: an embedded AWS in this Python process.

moto keeps the records of every service (its in-process ``mock_aws``); the engines in
this package add what moto only records (running jobs, serving endpoints, answering
Bedrock) through :mod:`labkit.offline.dispatch`. Every botocore client created after
:func:`start` reaches it, including the SDKs' STS clients with an explicit regional
``endpoint_url``; a request nothing here answers is refused, never sent to AWS.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from . import dispatch, usage

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
ROLE_NAME = "LabkitSageMakerExecutionRole"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/{ROLE_NAME}"
BUCKET = f"sagemaker-{REGION}-{ACCOUNT_ID}"

# Engine modules register their handlers on import. Each is optional so that the
# backend stays usable while an engine is being built; a missing one is reported by
# ``labkit doctor``.
ENGINE_MODULES = [
    "labkit.offline.iam",
    "labkit.offline.s3",
    "labkit.offline.sagemaker_fixes",
    "labkit.offline.sdk_timing",
    "labkit.offline.training",
    "labkit.offline.hosting",
    "labkit.offline.bedrock",
    "labkit.offline.pricing",
    "labkit.offline.mlops",
    "labkit.offline.athena",
    "labkit.offline.stepfunctions",
    "labkit.offline.emr",
    "labkit.offline.cloudwatch",
    "labkit.offline.cloudtrail",
    "labkit.offline.eks",
    "labkit.offline.cost_explorer",
    "labkit.offline.metering",
]

_lock = threading.Lock()
_mock = None
loaded_engines: dict[str, str] = {}
_reset_hooks: list[Callable[[], None]] = []


def on_reset(fn: Callable[[], None]) -> Callable[[], None]:
    """Register ``fn`` to run when the backend is reset or stopped (stop servers, jobs)."""
    _reset_hooks.append(fn)
    return fn


def _run_reset_hooks() -> None:
    for hook in _reset_hooks:
        hook()

# The execution role's trust and permissions: what a SageMaker job needs, no more.
TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}
ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["sagemaker:*"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket",
                                       "s3:GetBucketLocation", "s3:CreateBucket"],
         "Resource": ["arn:aws:s3:::sagemaker-*", "arn:aws:s3:::sagemaker-*/*"]},
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                                       "logs:DescribeLogStreams", "logs:GetLogEvents"],
         "Resource": "arn:aws:logs:*:*:log-group:/aws/sagemaker/*"},
        {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken", "ecr:BatchGetImage",
                                       "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
         "Resource": "*"},
        {"Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": "*"},
        # Jobs in a VPC (SDK v3's ModelTrainer checks these before it submits a job).
        {"Effect": "Allow", "Action": ["ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission",
                                       "ec2:DeleteNetworkInterface", "ec2:DeleteNetworkInterfacePermission",
                                       "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DescribeDhcpOptions",
                                       "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["iam:PassRole"], "Resource": ROLE_ARN,
         "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}},
    ],
}

SDK_CONFIG = """\
SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""


def _set_environment() -> None:
    """Fake credentials and a fixed region, so no real profile is ever used."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
                "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        os.environ.pop(var, None)
    os.environ.update({
        "AWS_ACCESS_KEY_ID": "labkit-offline",
        "AWS_SECRET_ACCESS_KEY": "labkit-offline",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "MOTO_ALLOW_NONEXISTENT_REGION": "false",
    })
    config = Path(tempfile.gettempdir()) / "labkit-sagemaker-config.yaml"
    if not config.exists() or config.read_text() != SDK_CONFIG:
        # Every backend on this machine (kernels, test workers) shares this file: replace it whole,
        # never truncate it under a reader, which would see an empty or partial config.
        fd, tmp = tempfile.mkstemp(dir=config.parent, prefix=".labkit-sagemaker-config-")
        with os.fdopen(fd, "w") as f:
            f.write(SDK_CONFIG)
        os.chmod(tmp, 0o644)
        os.replace(tmp, config)
    os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"] = str(config)
    os.environ["SAGEMAKER_ADMIN_CONFIG_OVERRIDE"] = str(config)


def subprocess_environment() -> dict[str, str]:
    """Environment for processes the engines start (training scripts, model servers).

    They get the same fake credentials and an endpoint that goes nowhere, so a stray
    boto3 call in a learner's script fails fast instead of reaching AWS.
    """
    env = dict(os.environ)
    env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"
    return env


def _load_engines() -> None:
    for name in ENGINE_MODULES:
        if name in loaded_engines:
            continue
        try:
            importlib.import_module(name)
            loaded_engines[name] = "loaded"
        except ModuleNotFoundError as err:
            if err.name == name:
                loaded_engines[name] = "not built yet"
            else:
                raise


def _seed() -> None:
    """The account a lab starts from: the execution role and the default bucket."""
    import boto3

    iam = boto3.client("iam", region_name=REGION)
    iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
                    Description="SageMaker execution role of the offline backend")
    iam.put_role_policy(RoleName=ROLE_NAME, PolicyName="labkit-execution",
                        PolicyDocument=json.dumps(ROLE_POLICY))
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)


def start() -> None:
    """Start the embedded AWS once per process, fresh; later calls reset it."""
    global _mock
    with _lock:
        _set_environment()
        dispatch.install()
        if _mock is None:
            from moto import mock_aws

            _mock = mock_aws(config={"core": {"mock_credentials": False, "reset_boto3_session": True}})
            _mock.start()
        else:
            _run_reset_hooks()
            _mock.reset()
        dispatch.enable()
        usage.reset()
        _load_engines()
        import boto3

        boto3.DEFAULT_SESSION = None
        _seed()


def stop() -> None:
    """Stop the embedded AWS (tests use this; a lab's kernel simply exits)."""
    global _mock
    with _lock:
        _run_reset_hooks()
        dispatch.disable()
        if _mock is not None:
            _mock.stop()
            _mock = None


def running() -> bool:
    return _mock is not None
