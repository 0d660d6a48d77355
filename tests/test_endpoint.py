"""The local AWS endpoint: what processes a lab starts reach, over HTTP, and what they get.

The test process runs an embedded backend (``labkit.connect`` with
``LABKIT_OFFLINE_MODE=embedded``, as in grading), served on a private loopback port. Its own
clients are answered in-process; the AWS CLI, subprocesses and jobs go through the endpoint.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import urllib.request
import zipfile
from pathlib import Path

import boto3
import pytest

import labkit
from labkit.offline import dispatch, endpoint, patches

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "training"))
import jobkit  # noqa: E402

AWS = str(Path(sys.executable).parent / "aws")


def aws(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The AWS CLI (awscli from PyPI, in the course environment) as a ``!aws`` cell runs it."""
    out = subprocess.run([AWS, *args], capture_output=True, text=True, timeout=120, env=dict(os.environ))
    if check:
        assert out.returncode == 0, out.stderr
    return out


def over_http(code: str) -> dict:
    """Run ``code`` in a fresh Python (its boto3 reaches the backend only through the endpoint)."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=180,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_aws_tool_is_configured_for_the_endpoint(lab):
    url = os.environ["AWS_ENDPOINT_URL"]
    assert url.startswith("http://127.0.0.1:") and url == labkit.offline.endpoint_url()
    config = Path(os.environ["AWS_CONFIG_FILE"]).read_text()
    assert f"endpoint_url = {url}" in config and "region = us-east-1" in config
    assert "127.0.0.1" in os.environ["NO_PROXY"].split(",")
    assert labkit.offline.subprocess_environment()["AWS_ENDPOINT_URL"] == url


def test_aws_cli_lists_the_labs_bucket(lab):
    boto3.client("s3").put_object(Bucket=lab.bucket, Key="cli/hello.txt", Body=b"hello")
    assert lab.bucket in aws("s3", "ls").stdout
    assert "hello.txt" in aws("s3", "ls", f"s3://{lab.bucket}/cli/").stdout
    copied = subprocess.run([AWS, "s3", "cp", "-", f"s3://{lab.bucket}/cli/from-cli.txt"], input="written by the CLI",
                            capture_output=True, text=True, timeout=120)
    assert copied.returncode == 0, copied.stderr
    body = boto3.client("s3").get_object(Bucket=lab.bucket, Key="cli/from-cli.txt")["Body"].read()
    assert body == b"written by the CLI"


def test_caller_is_the_execution_role_as_in_studio(lab):
    arn = f"arn:aws:sts::123456789012:assumed-role/{lab.role_arn.rsplit('/', 1)[1]}/SageMaker"
    assert boto3.client("sts").get_caller_identity()["Arn"] == arn
    assert json.loads(aws("sts", "get-caller-identity").stdout)["Arn"] == arn
    assert aws("configure", "get", "region").stdout.strip() == "us-east-1"
    from sagemaker.core.helper.session_helper import get_execution_role

    assert get_execution_role() == lab.role_arn


def test_identity_survives_a_reset(lab):
    before = os.environ["AWS_ACCESS_KEY_ID"]
    again = labkit.connect("tests", quiet=True)
    assert os.environ["AWS_ACCESS_KEY_ID"] == before
    assert boto3.client("sts").get_caller_identity()["Arn"].endswith(f"{again.role_arn.rsplit('/', 1)[1]}/SageMaker")


def test_engines_answer_over_http_with_awss_wire_format(lab):
    """Handlers, validators, moto and after hooks, parsed and serialized per protocol, over HTTP."""
    got = over_http('''
        import json, boto3
        from botocore.exceptions import ClientError
        out = {}
        br = boto3.client("bedrock-runtime")
        messages = [{"role": "user", "content": [{"text": "Context: Paris is the capital of France. "
                                                          "Question: what is the capital of France?"}]}]
        reply = br.converse(modelId="anthropic.claude-3-haiku-20240307-v1:0", messages=messages)
        out["converse"] = reply["output"]["message"]["content"][0]["text"]
        stream = br.converse_stream(modelId="anthropic.claude-3-haiku-20240307-v1:0", messages=messages)
        out["stream"] = [next(iter(e)) for e in stream["stream"]]
        try:
            br.invoke_model(modelId="no-such-model", body=b"{}")
        except ClientError as err:
            out["invalid_model"] = [err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"]]
        try:  # a validator (S3, rest-xml): AWS's code
            boto3.client("s3").put_bucket_lifecycle_configuration(Bucket="sagemaker-us-east-1-123456789012",
                LifecycleConfiguration={"Rules": [{"ID": "a", "Status": "Enabled", "Filter": {"Prefix": "m/"},
                    "Transitions": [{"Days": 10, "StorageClass": "STANDARD_IA"}]}]})
        except ClientError as err:
            out["lifecycle"] = err.response["Error"]["Code"]
        products = boto3.client("pricing", region_name="us-east-1").describe_services(ServiceCode="AmazonSageMaker")
        out["pricing"] = products["Services"][0]["ServiceCode"]
        decision = boto3.client("iam").simulate_custom_policy(PolicyInputList=[json.dumps({"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})],
            ActionNames=["s3:GetObject", "s3:PutObject"])
        out["iam"] = [r["EvalDecision"] for r in decision["EvaluationResults"]]
        try:
            boto3.client("sagemaker").list_hubs()
        except ClientError as err:
            out["refused"] = [err.response["Error"]["Code"], err.response["Error"]["Message"]]
        print(json.dumps(out))
    ''')
    assert got["converse"].startswith("(offline stand-in)") and "Paris" in got["converse"]
    assert got["stream"][0] == "messageStart" and got["stream"][-1] == "metadata"
    assert got["invalid_model"] == ["ValidationException", 400]
    assert got["lifecycle"] == "InvalidArgument"
    assert got["pricing"] == "AmazonSageMaker"
    assert got["iam"] == ["allowed", "implicitDeny"]
    assert got["refused"][0] == "NotImplemented" and "Nothing was sent to AWS" in got["refused"][1]


def test_invoke_endpoint_over_http_answers_the_models_own_content_type(lab):
    """The model's ``ContentType`` reaches the caller, not the protocol's JSON: SDK v2's SKLearnPredictor asks
    for ``application/x-npy`` and picks its deserializer by the type it gets (AWS's scikit-learn example)."""
    import joblib

    sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "hosting"))
    import models as hm

    fitted, _ = hm.sklearn_model()
    buf = io.BytesIO()
    joblib.dump(fitted, buf)
    code = b"import os, joblib\ndef model_fn(model_dir):\n    return joblib.load(os.path.join(model_dir, 'model.joblib'))\n"
    url = hm.upload(lab.bucket, "endpoint/types/model.tar.gz",
                    hm.pack({"model.joblib": buf.getvalue(), "code/inference.py": code}))
    hm.create_model(lab, "types", url, env={"SAGEMAKER_PROGRAM": "inference.py",
                                           "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"})
    hm.deploy(lab, "types", [hm.variant("types")])
    got = over_http('''
        import io, json, boto3, numpy as np
        rt = boto3.client("sagemaker-runtime")
        rows = np.array([[0.1, 0.9, 0.4], [0.9, 0.1, 0.1]])
        out = {}
        for accept in ("application/x-npy", "text/csv", "application/json"):
            buf = io.BytesIO()
            np.save(buf, rows)
            reply = rt.invoke_endpoint(EndpointName="types", Body=buf.getvalue(), ContentType="application/x-npy",
                                       Accept=accept)
            body = reply["Body"].read()
            value = np.load(io.BytesIO(body)) if accept == "application/x-npy" else body.decode()
            out[accept] = [reply["ContentType"], np.asarray(value).tolist() if accept == "application/x-npy" else value]
        print(json.dumps(out))
    ''')
    expected = fitted.predict([[0.1, 0.9, 0.4], [0.9, 0.1, 0.1]]).tolist()
    assert got["application/x-npy"] == ["application/x-npy", expected]
    assert got["text/csv"][0] == "text/csv" and [int(float(v)) for v in got["text/csv"][1].split()] == expected
    assert got["application/json"][0] == "application/json" and json.loads(got["application/json"][1]) == expected
    boto3.client("sagemaker").delete_endpoint(EndpointName="types")


def test_cli_refuses_what_is_not_emulated(lab):
    out = aws("qbusiness", "list-applications", check=False)
    assert out.returncode != 0
    assert "(NotImplemented)" in out.stderr and "Nothing was sent to AWS" in out.stderr


def test_training_job_script_calls_s3_itself(lab, tmp_path):
    s3, sm = boto3.client("s3"), boto3.client("sagemaker")
    script = tmp_path / "train_s3.py"
    script.write_text(textwrap.dedent('''
        import os, boto3
        s3 = boto3.client("s3")
        body = s3.get_object(Bucket=os.environ["BUCKET"], Key="selfcall/input.txt")["Body"].read()
        s3.put_object(Bucket=os.environ["BUCKET"], Key="selfcall/output.txt", Body=body.upper())
        open(os.path.join(os.environ["SM_MODEL_DIR"], "done"), "w").write("ok")
    '''))
    s3.put_object(Bucket=lab.bucket, Key="selfcall/input.txt", Body=b"from the notebook")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(script, arcname=script.name)
    s3.put_object(Bucket=lab.bucket, Key="selfcall/sourcedir.tar.gz", Body=buffer.getvalue())
    code = f"s3://{lab.bucket}/selfcall/sourcedir.tar.gz"
    sm.create_training_job(**jobkit.script_request(lab, "self-s3", script.name, code,
                                                   Environment={"BUCKET": lab.bucket}))
    job = jobkit.wait(sm, "self-s3", timeout=120)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert s3.get_object(Bucket=lab.bucket, Key="selfcall/output.txt")["Body"].read() == b"FROM THE NOTEBOOK"


def _wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel, made here (no download): ``import <name>`` gives its version."""
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": f"__version__ = {version!r}\n",
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: labkit-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    target = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w") as whl:
        for path, text in files.items():
            whl.writestr(path, text)
        whl.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return target


def _requirements_job(lab, tmp_path: Path, name: str, requirements: str) -> dict:
    s3, sm = boto3.client("s3"), boto3.client("sagemaker")
    buffer = io.BytesIO()
    script = "import labkitdemo, sklearn, sys; print('labkitdemo', labkitdemo.__version__, sys.prefix)\n"
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for arcname, text in (("train.py", script), ("requirements.txt", requirements)):
            info = tarfile.TarInfo(arcname)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    s3.put_object(Bucket=lab.bucket, Key=f"{name}/sourcedir.tar.gz", Body=buffer.getvalue())
    sm.create_training_job(**jobkit.script_request(lab, name, "train.py", f"s3://{lab.bucket}/{name}/sourcedir.tar.gz"))
    return jobkit.wait(sm, name, timeout=180)


def test_requirements_install_into_the_jobs_own_environment(lab, tmp_path, monkeypatch):
    cache = tmp_path / "wheels"
    cache.mkdir()
    monkeypatch.setenv("LABKIT_WHEEL_CACHE", str(cache))
    missing = _requirements_job(lab, tmp_path, "reqs-missing", "labkitdemo==0.2\nscikit-learn\n")
    assert missing["TrainingJobStatus"] == "Failed"
    reason = missing["FailureReason"]
    assert "requirements.txt could not be installed offline" in reason and "labkitdemo==0.2" in reason
    assert str(cache) in reason and "pip download" in reason
    _wheel(cache, "labkitdemo", "0.2")
    job = _requirements_job(lab, tmp_path, "reqs-cached", "labkitdemo==0.2\nscikit-learn\n")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    logs = jobkit.log_messages(boto3.client("logs"), "reqs-cached")
    printed = [m for messages in logs.values() for m in messages if m.startswith("labkitdemo")]
    assert printed and printed[0].split()[1] == "0.2" and "/deps" in printed[0]
    course = subprocess.run([sys.executable, "-c", "import labkitdemo"], capture_output=True, text=True)
    assert course.returncode != 0, "the course environment must not get a job's requirements"


def test_model_trainer_without_a_role_uses_the_execution_role(lab, tmp_path):
    import numpy as np
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData, SourceCode

    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    body = "\n".join(",".join(map(str, [label, *row])) for label, row in zip(y, X, strict=True))
    boto3.client("s3").put_object(Bucket=lab.bucket, Key="norole/train/train.csv", Body=body.encode())
    (tmp_path / "train_sklearn.py").write_text((jobkit.HERE / "train_sklearn.py").read_text())
    trainer = ModelTrainer(training_image=jobkit.SKLEARN_IMAGE, base_job_name="no-role",
                           source_code=SourceCode(source_dir=str(tmp_path), entry_script="train_sklearn.py"),
                           compute=Compute(instance_type="ml.m5.large", instance_count=1))
    assert trainer.role == lab.role_arn
    trainer.train(input_data_config=[InputData(channel_name="train", data_source=f"s3://{lab.bucket}/norole/train")],
                  wait=True, logs=False)
    assert trainer._latest_training_job.training_job_status == "Completed"


def test_data_plane_gets_its_prefix_with_the_full_path(lab):
    seen = []

    @dispatch.data_plane("_labkit_test")
    def app(environ, start_response):
        seen.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"ok": true}']

    try:
        url = f"{labkit.offline.endpoint_url()}/_labkit_test/index/_search"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(urllib.request.Request(url, data=b"{}", method="POST"), timeout=30) as resp:
            assert json.loads(resp.read()) == {"ok": True}
        assert seen == ["/_labkit_test/index/_search"]
    finally:
        dispatch._data_planes.pop("_labkit_test")


def test_control_api_needs_the_token_and_runs_backend_functions(lab):
    url = labkit.offline.endpoint_url()
    with pytest.raises(RuntimeError, match="403"):
        endpoint.control(url, "wrong-token", "status")
    status = endpoint.control(url, labkit.offline._token, "status")
    assert status["pid"] == os.getpid() and status["caller_arn"].endswith("/SageMaker")
    from labkit.offline import usage

    usage.record("sagemaker:training", "http-meter", instance_type="ml.m5.large", instance_count=1, seconds=1,
                 spot=False)
    name = "labkit.offline.usage.events"
    got = endpoint.control(url, labkit.offline._token, f"call/{name}", {"args": ["sagemaker:training"]})
    assert any(e["resource"] == "http-meter" for e in got["result"])


def test_patches_install_and_uninstall(lab):
    from botocore.handlers import BUILTIN_HANDLERS

    assert ("before-send", patches.before_send) in BUILTIN_HANDLERS
    labkit.offline.stop()
    try:
        assert ("before-send", patches.before_send) not in BUILTIN_HANDLERS
        assert not any(entry[1] is dispatch.answer for entry in BUILTIN_HANDLERS)
        import botocore.waiter

        assert not getattr(botocore.waiter.Waiter.wait, "_labkit_prompt", False)
        assert "AWS_ENDPOINT_URL" not in os.environ
    finally:
        labkit.connect("tests", quiet=True)
    assert ("before-send", patches.before_send) in BUILTIN_HANDLERS


def test_a_list_the_query_string_does_not_carry_is_left_out_not_sent_empty(lab):
    """GetRecord without FeatureNames (a querystring list) over HTTP: every feature, as on AWS; moto's parser
    read the missing list as [] and validation refused it as too short (lab 05 in the shared backend)."""
    sm = boto3.client("sagemaker")
    sm.create_feature_group(
        FeatureGroupName="over-http", RecordIdentifierFeatureName="id", EventTimeFeatureName="at",
        FeatureDefinitions=[{"FeatureName": "id", "FeatureType": "String"},
                            {"FeatureName": "at", "FeatureType": "String"},
                            {"FeatureName": "calls", "FeatureType": "Integral"}],
        OnlineStoreConfig={"EnableOnlineStore": True}, RoleArn=lab.role_arn)
    got = over_http('''
        import json, boto3
        from botocore.exceptions import ClientError
        rt = boto3.client("sagemaker-featurestore-runtime")
        rt.put_record(FeatureGroupName="over-http", Record=[
            {"FeatureName": "id", "ValueAsString": "c1"}, {"FeatureName": "at", "ValueAsString": "2024-01-01T00:00:00Z"},
            {"FeatureName": "calls", "ValueAsString": "3"}])
        every = rt.get_record(FeatureGroupName="over-http", RecordIdentifierValueAsString="c1")["Record"]
        some = rt.get_record(FeatureGroupName="over-http", RecordIdentifierValueAsString="c1",
                             FeatureNames=["calls"])["Record"]
        try:
            rt.get_record(FeatureGroupName="over-http", RecordIdentifierValueAsString="c1", FeatureNames=[])
            empty = "accepted"
        except Exception as err:  # botocore's own validation, before any request
            empty = type(err).__name__
        print(json.dumps({"every": sorted(f["FeatureName"] for f in every),
                          "some": [f["FeatureName"] for f in some], "empty": empty}))
    ''')
    assert got == {"every": ["at", "calls", "id"], "some": ["calls"], "empty": "ParamValidationError"}


# Functions of the offline package that the labs call which only compute (no engine state): they run in the kernel.
PURE_HELPERS = {"labkit.offline.eks.version_status", "labkit.offline.cloudtrail.bucket_policy_problems",
                "labkit.offline.clarify.kernel_shap.explain"}


def _offline_functions_the_notebooks_call() -> set[str]:
    import ast
    import importlib

    import nbformat

    from labkit.authoring import REPO
    from labkit.grading.pysource import parse_cell

    found: set[str] = set()
    for path in [*REPO.glob("solutions/*/*.ipynb"), *REPO.glob("notebooks/*.ipynb")]:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            tree = parse_cell(cell.source)  # magics blanked, as the kernel runs them
            assert tree is not None, f"{path}: a code cell that is not Python"
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("labkit.offline"):
                    for alias in node.names:
                        module = importlib.import_module(node.module)
                        target = getattr(module, alias.name, None) or importlib.import_module(
                            f"{node.module}.{alias.name}")
                        if isinstance(target, type(importlib)):  # a module: its functions the cells call
                            found |= {_name(getattr(target, a.attr)) for a in ast.walk(tree)
                                      if isinstance(a, ast.Attribute) and isinstance(a.value, ast.Name)
                                      and a.value.id == (alias.asname or alias.name)}
                        else:
                            found.add(_name(target))
    return found


def _name(function) -> str:
    """Where a function is defined (what dispatch.backend_function registers it as)."""
    return f"{function.__module__}.{function.__qualname__}"


def test_every_offline_function_a_lab_calls_runs_where_the_engines_run():
    """A lab's kernel attached to the learner's shared backend has no engines of its own: a function that
    changes or reads their state must run in the backend (dispatch.backend_function), or it acts on
    nothing (lab 15's simulated Spot reclaim never reached the Batch scheduler)."""
    called = _offline_functions_the_notebooks_call()
    assert "labkit.offline.batch.simulate_spot_reclaim" in called  # the scan sees what the labs call
    stateful = called - PURE_HELPERS
    missing = sorted(name for name in stateful if name not in dispatch._backend_functions)
    assert not missing, f"called from notebooks but not backend functions: {missing}"


def test_botocore_parses_each_model_file_once_per_process(lab):
    """Every session has its own loader; the offline patches read each data file once and parse it fast
    (moto's, the engines' and the learner's sessions parsed EC2's model up to six times in lab 00). Each
    loader still gets its own objects: botocore edits a session's S3 model in place, which must not reach
    moto's router."""
    import pickle

    import botocore.loaders
    import botocore.session

    assert patches.preload_models(["ec2", "s3"]) >= 0  # installed (connect did) and filled
    path = next(p for p in patches._parsed_files if p.endswith("ec2/2016-11-15/service-2"))
    first = botocore.session.get_session().get_service_model("ec2")
    second = boto3.Session(region_name="us-east-1").client("ec2")._service_model
    assert first._service_description == second._service_description
    assert first._service_description is not second._service_description
    assert pickle.loads(patches._parsed_files[path]) == first._service_description  # parsed once, kept pickled
    boto3.Session(region_name="us-east-1").client("s3")  # strips {Bucket} from its own model's URIs
    fresh = botocore.session.get_session().get_service_model("s3").operation_model("PutBucketLifecycleConfiguration")
    assert fresh.http["requestUri"].startswith("/{Bucket}")
    # The data folders are listed once per process too (each loader listed ~400 services before its first model).
    loaders = [botocore.loaders.create_loader(), botocore.session.get_session().get_component("data_loader")]
    listed = [loader.list_available_services("service-2") for loader in loaders]
    assert listed[0] == listed[1] and listed[0] is not listed[1] and {"ec2", "s3", "sagemaker"} <= set(listed[0])
    assert ("service-2", tuple(loaders[0].search_paths), botocore.loaders.JSONFileLoader) in patches._service_lists
    labkit.offline.stop()
    try:
        assert not getattr(botocore.loaders.JSONFileLoader.load_file, "_labkit_shared", False)
        assert botocore.loaders.create_loader().list_available_services("service-2") == listed[0]  # botocore's own
    finally:
        labkit.connect("tests", quiet=True)
    assert getattr(botocore.loaders.JSONFileLoader.load_file, "_labkit_shared", False)


def test_a_client_class_is_built_from_methods_made_once_per_session_and_service(lab):
    """botocore made one method and one docstring per operation for every client (30 ms for EC2; lab 00's
    tests make two dozen): they are now made once per session, and each client still has its own class."""
    import botocore.client

    session = boto3.Session(region_name="us-east-1")
    first, second = session.client("ec2"), session.client("ec2", region_name="eu-west-1")
    assert type(first) is not type(second)  # a class per client, as botocore makes them
    assert type(first).describe_instances is type(second).describe_instances  # built once
    other = boto3.Session(region_name="us-east-1").client("ec2")  # another session: its own methods
    assert type(other).describe_instances is not type(first).describe_instances
    assert second.meta.region_name == "eu-west-1" and first.meta.method_to_api_mapping["describe_instances"] == (
        "DescribeInstances")
    s3 = session.client("s3")
    assert hasattr(s3, "upload_file")  # boto3's creating-client-class handler still adds its methods
    assert not hasattr(first, "upload_file")
    labkit.offline.stop()
    try:
        assert not getattr(botocore.client.ClientCreator._create_methods, "_labkit_prompt", False)
    finally:
        labkit.connect("tests", quiet=True)


def test_endpoint_discovery_is_read_from_the_model_with_botocores_answer(lab):
    """botocore built an OperationModel for every operation of a service to learn whether one of them is its
    endpoint discovery operation (a third of an EC2 client's CPU); the flag is read from the JSON now, and the
    answer is botocore's, for services with discovery and without."""
    import botocore.model
    import botocore.session

    patched = vars(botocore.model.ServiceModel)["endpoint_discovery_operation"]
    assert getattr(patched._fget, "_labkit_prompt", False)
    session = botocore.session.get_session()
    discovered = set()
    with_discovery = ("dynamodb", "timestream-query", "timestream-write")
    for service in (*with_discovery, "ec2", "s3", "iam", "sagemaker", "bedrock-runtime", "s3vectors", "logs"):
        model = session.get_service_model(service)
        ours = model.endpoint_discovery_operation
        theirs = next((model.operation_model(name) for name in model.operation_names
                       if model.operation_model(name).is_endpoint_discovery_operation), None)
        assert ours is theirs, service  # the same cached OperationModel, or None for both
        if ours is not None:
            discovered.add(service)
    assert discovered == set(with_discovery)
    client = boto3.client("dynamodb")
    assert client.meta.service_model.endpoint_discovery_operation.name == "DescribeEndpoints"
    labkit.offline.stop()
    try:
        assert not getattr(getattr(vars(botocore.model.ServiceModel)["endpoint_discovery_operation"], "_fget", None),
                           "_labkit_prompt", False)
    finally:
        labkit.connect("tests", quiet=True)


def test_moto_makes_a_regions_public_amis_when_images_or_snapshots_are_first_read(lab):
    """moto made ~1,300 public AMIs and their snapshots whenever a Region's EC2 was first touched (0.1 s each):
    now on first read of images or snapshots, with the same answers."""
    from moto.ec2.models.amis import AmiBackend

    ec2 = boto3.client("ec2", region_name="ap-south-1")
    assert ec2.describe_instance_type_offerings(LocationType="region")["InstanceTypeOfferings"]
    from moto.backends import get_backend

    backend = get_backend("ec2")[lab.account_id]["ap-south-1"]
    assert backend.__dict__.get("_labkit_amis_pending")  # not made yet
    # The tagging API (every lab's clean-up) walks the Region's resources without making them: they carry no tags.
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16", TagSpecifications=[
        {"ResourceType": "vpc", "Tags": [{"Key": "labkit:lab", "Value": "amis"}]}])["Vpc"]["VpcId"]
    tagging = boto3.client("resourcegroupstaggingapi", region_name="ap-south-1")
    found = tagging.get_resources(TagFilters=[{"Key": "labkit:lab"}])["ResourceTagMappingList"]
    assert [m["ResourceARN"].rsplit("/", 1)[1] for m in found] == [vpc]
    assert backend.__dict__.get("_labkit_amis_pending")
    snapshots = ec2.describe_snapshots(OwnerIds=["amazon"])["Snapshots"]  # snapshots first: the AMIs come too
    assert snapshots and not backend.__dict__.get("_labkit_amis_pending")
    images = ec2.describe_images(Owners=["amazon"])["Images"]
    assert len(images) == len(snapshots) and {i["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"] for i in images} == {
        s["SnapshotId"] for s in snapshots}
    ec2w = boto3.client("ec2", region_name="sa-east-1")
    image_id = ec2w.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]  # images first
    assert ec2w.describe_images(ImageIds=[image_id])["Images"][0]["ImageId"] == image_id
    assert ec2w.describe_snapshots(OwnerIds=["amazon"])["Snapshots"]
    labkit.offline.stop()
    try:
        assert not isinstance(vars(AmiBackend).get("amis"), property)
    finally:
        labkit.connect("tests", quiet=True)
    assert isinstance(vars(AmiBackend).get("amis"), property)
