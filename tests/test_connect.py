"""labkit.connect(): backends, routing of every client to the offline AWS, the guard."""

from __future__ import annotations

import json
import os

import boto3
import pytest
from botocore.exceptions import ClientError

import labkit
from labkit.offline import dispatch
from labkit.offline.dispatch import AWSError, NotEmulatedError


def test_offline_is_the_default(lab, monkeypatch):
    monkeypatch.delenv("LABKIT_BACKEND", raising=False)
    again = labkit.connect("tests", quiet=True)
    assert again.backend == "offline"
    assert again.role_arn.startswith("arn:aws:iam::123456789012:role/")
    assert again.bucket == "sagemaker-us-east-1-123456789012"
    assert boto3.client("s3").head_bucket(Bucket=again.bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_unknown_backend_is_refused():
    with pytest.raises(labkit.BackendError, match="Unknown backend 'cloud'"):
        labkit.connect(backend="cloud")


def test_sandbox_without_credentials_names_the_fix(monkeypatch):
    from labkit import sandbox

    class NoCredentials:
        region_name = "us-east-1"

        def client(self, name):
            raise RuntimeError("Unable to locate credentials")

    monkeypatch.setattr("boto3.Session", lambda: NoCredentials())
    with pytest.raises(labkit.BackendError, match="aws configure"):
        sandbox.start("00-setup")


def test_sandbox_refuses_a_pinned_other_account(monkeypatch, capsys):
    from labkit import sandbox

    class Sts:
        def get_caller_identity(self):
            return {"Account": "999999999999", "Arn": "arn:aws:iam::999999999999:user/me"}

    class Session:
        region_name = "eu-west-1"

        def client(self, name):
            assert name == "sts", "nothing but STS may be called before the pin is checked"
            return Sts()

    monkeypatch.setattr("boto3.Session", Session)
    monkeypatch.setenv("LABKIT_SANDBOX_ACCOUNT", "111111111111")
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):  # the region then comes from the shared config
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(labkit.BackendError, match="pins 111111111111"):
        sandbox.start("00-setup")
    assert "about to use AWS account 999999999999 in eu-west-1" in capsys.readouterr().out


def test_sandbox_takes_the_region_from_aws_region(monkeypatch, capsys):
    """AWS_REGION alone (which boto3 ignores) chooses the sandbox's region, as AWS's CLI and SDKs do."""
    from labkit import sandbox

    class Sts:
        def get_caller_identity(self):
            return {"Account": "999999999999", "Arn": "arn:aws:iam::999999999999:user/me"}

    class Session:
        region_name = None  # no region in the shared config

        def client(self, name):
            return Sts()

    monkeypatch.setattr("boto3.Session", Session)
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("LABKIT_SANDBOX_ACCOUNT", "111111111111")
    with pytest.raises(labkit.BackendError, match="pins 111111111111"):
        sandbox.start("00-setup")
    assert "in eu-central-1 as" in capsys.readouterr().out
    assert os.environ["AWS_DEFAULT_REGION"] == "eu-central-1"


def test_sandbox_without_a_region_names_every_way_to_set_one(monkeypatch):
    from labkit import sandbox

    class Session:
        region_name = None

    monkeypatch.setattr("boto3.Session", Session)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(labkit.BackendError, match="AWS_REGION.*aws configure set region"):
        sandbox.start("00-setup")


def test_sdk_style_regional_sts_client_reaches_offline(lab):
    sts = boto3.client("sts", region_name="us-east-1", endpoint_url="https://sts.us-east-1.amazonaws.com")
    assert sts.get_caller_identity()["Account"] == "123456789012"


def test_sagemaker_v3_session_sees_offline_account(lab):
    from sagemaker.core.helper.session_helper import Session

    session = Session()
    assert session.account_id() == "123456789012"
    assert session.default_bucket() == lab.bucket


def test_unemulated_call_is_refused_not_sent(lab):
    # A service moto lacks (on *.api.aws or *.amazonaws.com), and an operation it lacks of a
    # service it has: each is refused with the same message, as a ClientError with code
    # NotImplemented (501), whether the call was answered in-process or over HTTP.
    for call in (lambda: boto3.client("qbusiness", region_name="us-east-1").list_applications(),
                 lambda: boto3.client("braket", region_name="us-east-1").search_devices(filters=[]),
                 lambda: boto3.client("sagemaker").list_hubs()):
        with pytest.raises(NotEmulatedError, match="Nothing was sent to AWS") as info:
            call()
        assert isinstance(info.value, ClientError)
        assert info.value.response["Error"]["Code"] == "NotImplemented"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501


def test_engine_handler_and_error_shape(lab):
    calls = []

    @dispatch.operation("sagemaker-runtime", "InvokeEndpointWithResponseStream")
    def fake(params):
        calls.append(params)
        raise AWSError("ValidationError", "Endpoint nope of account 123456789012 not found.")

    try:
        client = boto3.client("sagemaker-runtime")
        with pytest.raises(ClientError) as info:
            client.invoke_endpoint_with_response_stream(EndpointName="nope", Body=b"{}")
        assert info.value.response["Error"]["Code"] == "ValidationError"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert calls[0]["EndpointName"] == "nope"
    finally:
        dispatch._handlers.pop(("sagemaker-runtime", "InvokeEndpointWithResponseStream"))


def test_reconnect_gives_a_fresh_account(lab):
    boto3.client("s3").create_bucket(Bucket="leftover-from-another-lab")
    labkit.connect("tests", quiet=True)
    names = [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
    assert names == [lab.bucket]


def test_seeded_role_can_be_used_by_sagemaker(lab):
    role = boto3.client("iam").get_role(RoleName=lab.role_arn.rsplit("/", 1)[1])["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"]["Service"] == "sagemaker.amazonaws.com"


@pytest.mark.parametrize("rule, code", [
    ({"ID": "a", "Status": "Enabled", "Filter": {"Prefix": "m/"},
      "Transitions": [{"Days": 10, "StorageClass": "GLACIER_FLEXIBLE_RETRIEVAL"}]}, "MalformedXML"),
    ({"ID": "a", "Status": "Enabled", "Filter": {"Prefix": "m/"},
      "Transitions": [{"Days": 10, "StorageClass": "STANDARD_IA"}]}, "InvalidArgument"),
    ({"ID": "a", "Status": "Enabled", "Filter": {"Prefix": "m/"}, "Expiration": {"Days": 30},
      "Transitions": [{"Days": 90, "StorageClass": "GLACIER"}]}, "InvalidArgument"),
])
def test_lifecycle_rules_aws_rejects_are_rejected(lab, rule, code):
    with pytest.raises(ClientError) as info:
        boto3.client("s3").put_bucket_lifecycle_configuration(
            Bucket=lab.bucket, LifecycleConfiguration={"Rules": [rule]})
    assert info.value.response["Error"]["Code"] == code


def test_valid_lifecycle_rules_are_stored(lab):
    rule = {"ID": "ok", "Status": "Enabled", "Filter": {"Prefix": "m/"},
            "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}]}
    s3 = boto3.client("s3")
    s3.put_bucket_lifecycle_configuration(Bucket=lab.bucket, LifecycleConfiguration={"Rules": [rule]})
    assert s3.get_bucket_lifecycle_configuration(Bucket=lab.bucket)["Rules"][0]["ID"] == "ok"


def _labkit_imports(path, package: list[str]) -> set[str]:
    """The labkit modules ``path`` imports, at module level or inside functions."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found |= {module} | {f"{module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.startswith("labkit")}


def test_offline_engines_never_import_the_connect_layer():
    """The engines run in the backend process, where no lab is connected: nothing under labkit.offline
    reaches labkit.connect or the sandbox, directly or through another labkit module (the package's
    own __init__, which every import runs, apart)."""
    from pathlib import Path

    root = Path(labkit.__file__).parent
    graph = {}
    for path in root.rglob("*.py"):
        parts = ["labkit", *path.relative_to(root).with_suffix("").parts]
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[name] = _labkit_imports(path, package=parts[:-1])  # what a relative import starts from
    forbidden = {"labkit.connect", "labkit.sandbox", "labkit.current"}
    for start in (m for m in graph if m.startswith("labkit.offline")):
        seen, todo, via = {start}, [start], {start: [start]}
        while todo:
            module = todo.pop()
            for dep in graph.get(module, set()) - {"labkit"}:
                path = [*via[module], dep]
                assert dep not in forbidden, " -> ".join(path)
                if dep in graph and dep not in seen:
                    seen.add(dep)
                    via[dep] = path
                    todo.append(dep)
