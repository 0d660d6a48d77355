"""SDK v3 (sagemaker-core resources) against the offline hosting engine."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "hosting"))
import models as hm  # noqa: E402


def test_sagemaker_core_model_endpoint_invoke(lab):
    from sagemaker.core.resources import Endpoint, EndpointConfig, Model
    from sagemaker.core.shapes import ContainerDefinition, ProductionVariant

    fitted, tarball = hm.sklearn_model()
    url = hm.upload(lab.bucket, "sdk/model.tar.gz", tarball)
    model = Model.create(model_name="sdk-model", execution_role_arn=lab.role_arn,
                         primary_container=ContainerDefinition(image=hm.SKLEARN_IMAGE, model_data_url=url,
                                                               environment={"SAGEMAKER_PROGRAM": "inference.py"}))
    config = EndpointConfig.create(endpoint_config_name="sdk", production_variants=[ProductionVariant(
        variant_name="AllTraffic", model_name=model.model_name, instance_type="ml.m5.large",
        initial_instance_count=1)])
    endpoint = Endpoint.create(endpoint_name="sdk", endpoint_config_name=config.endpoint_config_name)
    endpoint.wait_for_status("InService", poll=1, timeout=120)
    assert endpoint.endpoint_status == "InService"
    response = endpoint.invoke(body=json.dumps({"instances": [[0.2, 0.9, 0.4]]}), content_type="application/json")
    assert response.content_type == "application/json"
    got = json.loads(response.body.read())["predictions"][0]
    assert got == pytest.approx(fitted.predict_proba([[0.2, 0.9, 0.4]])[0, 1], abs=1e-5)
    endpoint.delete()


def _sleeps(monkeypatch) -> list[float]:
    """Every time.sleep of this process from now on (the SDK's polls included), in seconds."""
    import time

    seen: list[float] = []
    real = time.sleep

    def record(seconds: float) -> None:
        seen.append(seconds)
        real(seconds)

    monkeypatch.setattr(time, "sleep", record)
    return seen


def test_model_builder_deploys_the_learners_inference_code_promptly(lab, tmp_path, monkeypatch):
    import io

    import boto3
    import joblib
    from sagemaker.core.model_monitor.data_capture_config import DataCaptureConfig
    from sagemaker.core.training.configs import SourceCode
    from sagemaker.serve.model_builder import ModelBuilder

    fitted, _ = hm.sklearn_model(seed=4)
    buf = io.BytesIO()
    joblib.dump(fitted, buf)
    url = hm.upload(lab.bucket, "sdk/mb/model.tar.gz", hm.pack({"model.joblib": buf.getvalue()}))
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_bytes((hm.HERE / "sklearn_inference.py").read_bytes())
    sleeps = _sleeps(monkeypatch)
    builder = ModelBuilder(s3_model_data_url=url, image_uri=hm.SKLEARN_IMAGE, role_arn=lab.role_arn,
                           source_code=SourceCode(source_dir=str(code), entry_script="inference.py"),
                           instance_type="ml.m5.large")
    builder.build(model_name="mb-model")
    container = boto3.client("sagemaker").describe_model(ModelName="mb-model")["PrimaryContainer"]
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"  # the SDK repacked code/ in
    endpoint = builder.deploy(endpoint_name="mb", initial_instance_count=1, data_capture_config=DataCaptureConfig(
        enable_capture=True, sampling_percentage=100, destination_s3_uri=f"s3://{lab.bucket}/sdk/capture"))
    assert endpoint.endpoint_status == "InService"
    response = endpoint.invoke(body="0.1,0.8,0.3", content_type="text/csv", accept="text/csv")
    assert float(response.body.read()) == pytest.approx(fitted.predict_proba([[0.1, 0.8, 0.3]])[0, 1], abs=1e-5)
    keys = boto3.client("s3").list_objects_v2(Bucket=lab.bucket, Prefix="sdk/capture/mb/AllTraffic/")
    assert keys["KeyCount"] == 1
    endpoint.delete()
    endpoint.wait_for_delete()  # default poll=5
    assert sleeps and max(sleeps) < 1, f"the SDK slept {max(sleeps)} s between polls of the offline backend"


def test_model_builder_serverless_and_a_failed_endpoint(lab, monkeypatch):
    from sagemaker.core.exceptions import UnexpectedStatusException
    from sagemaker.core.inference_config import ServerlessInferenceConfig
    from sagemaker.core.resources import Endpoint
    from sagemaker.core.utils.exceptions import FailedStatusError
    from sagemaker.serve.model_builder import ModelBuilder

    fitted, tarball = hm.sklearn_model(seed=5)
    url = hm.upload(lab.bucket, "sdk/sls/model.tar.gz", tarball)
    sleeps = _sleeps(monkeypatch)
    builder = ModelBuilder(s3_model_data_url=url, image_uri=hm.SKLEARN_IMAGE, role_arn=lab.role_arn,
                           env_vars={"SAGEMAKER_PROGRAM": "inference.py"})
    builder.build(model_name="mb-sls")
    endpoint = builder.deploy(endpoint_name="mb-sls", inference_config=ServerlessInferenceConfig(
        memory_size_in_mb=2048, max_concurrency=2))
    got = json.loads(endpoint.invoke(body=json.dumps({"instances": [[0.5, 0.5, 0.5]]}),
                                     content_type="application/json").body.read())["predictions"][0]
    assert got == pytest.approx(fitted.predict_proba([[0.5, 0.5, 0.5]])[0, 1], abs=1e-5)
    endpoint.delete()

    _, broken = hm.sklearn_model(code="broken_inference.py")
    broken_url = hm.upload(lab.bucket, "sdk/broken/model.tar.gz", broken)
    builder = ModelBuilder(s3_model_data_url=broken_url, image_uri=hm.SKLEARN_IMAGE, role_arn=lab.role_arn,
                           instance_type="ml.m5.large", env_vars={"SAGEMAKER_PROGRAM": "inference.py"})
    builder.build(model_name="mb-broken")
    with pytest.raises(UnexpectedStatusException, match="weights.bin"):
        builder.deploy(endpoint_name="mb-broken", initial_instance_count=1)
    with pytest.raises(FailedStatusError):
        Endpoint.get(endpoint_name="mb-broken").wait_for_status("InService")
    Endpoint.get(endpoint_name="mb-broken").delete()
    assert max(sleeps) < 1, f"the SDK slept {max(sleeps)} s between polls of the offline backend"


def test_sdk_config_is_still_validated():
    import jsonschema
    from sagemaker.core.config.config_manager import SageMakerConfig

    good = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
    bad = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": "yes"}}}}
    for _ in range(2):  # the first check, then the remembered validator
        SageMakerConfig.validate_sagemaker_config(good)
        with pytest.raises(jsonschema.ValidationError, match="yes"):
            SageMakerConfig().validate_sagemaker_config(bad)


def test_sdk_v3_module_config_function_checks_the_schema_once_and_still_validates(lab):
    """v3's trainers and resources load their defaults through sagemaker.core.config.config, whose module function
    re-checked the constant schema on every call (six times per tuning run in lab 03): now once, as for v2."""
    import jsonschema
    from sagemaker.core.config import config

    assert getattr(config.validate_sagemaker_config, "_labkit_prompt", False)
    good = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
    bad = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": "yes"}}}}
    for _ in range(2):
        config.validate_sagemaker_config(good)
        with pytest.raises(jsonschema.ValidationError, match="yes"):
            config.validate_sagemaker_config(bad)


def test_a_schema_checked_ahead_is_not_checked_again_by_either_v3_function(lab, monkeypatch):
    """The grader's warm process checks the SDK's constant schema before it forks kernels
    (patches.check_sdk_config_schemas): a kernel's config lookups then validate configs only."""
    import jsonschema
    from sagemaker.core.config import config
    from sagemaker.core.config.config_manager import SageMakerConfig

    from labkit.offline import patches

    patches.check_sdk_config_schemas()
    assert id(config.SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA) in patches._checked_schemas

    def full_check(*args, **kwargs):
        raise AssertionError("the schema was checked again")

    monkeypatch.setattr(jsonschema, "validate", full_check)
    good = {"SchemaVersion": "1.0"}
    bad = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": "yes"}}}}
    for validate in (config.validate_sagemaker_config, SageMakerConfig.validate_sagemaker_config):
        validate(good)
        with pytest.raises(jsonschema.ValidationError, match="yes"):
            validate(bad)


def test_model_builder_deploys_an_inference_spec(lab, tmp_path):
    """SDK v3's TorchServe path: the SDK's own inference.py opens /opt/ml/model/code/serve.pkl in the server."""
    import torch
    from sagemaker.serve.builder.schema_builder import SchemaBuilder
    from sagemaker.serve.model_builder import ModelBuilder
    from sagemaker.serve.spec.inference_spec import InferenceSpec
    from sagemaker.serve.utils.types import ModelServer

    net, _ = hm.torchscript_model()
    torch.jit.save(net, str(tmp_path / "model.pth"))

    class Spec(InferenceSpec):
        def load(self, model_dir):
            return torch.jit.load(f"{model_dir}/model.pth", map_location="cpu")

        def invoke(self, input_object, model):
            with torch.no_grad():
                return model(torch.tensor(input_object, dtype=torch.float32)).tolist()

    # image_uri given: the SDK cannot auto-detect a DLC for this torch; dependencies not captured: the SDK
    # runs that step in a subprocess with an emptied environment, whose region comes from ~/.aws/config only
    # (written for a learner's kernels, never by tests: test_user_config.py).
    builder = ModelBuilder(inference_spec=Spec(), model_path=str(tmp_path), model_server=ModelServer.TORCHSERVE,
                           schema_builder=SchemaBuilder([[0.1, 0.2, 0.3]], [[0.5]]), role_arn=lab.role_arn,
                           image_uri=hm.PYTORCH_IMAGE, instance_type="ml.m5.large", dependencies={"auto": False})
    builder.build(model_name="spec-model")
    endpoint = builder.deploy(endpoint_name="spec")
    body = endpoint.invoke(body=json.dumps([[0.2, 0.9, 0.4]]), content_type="application/json").body.read()
    with torch.no_grad():
        expected = net(torch.tensor([[0.2, 0.9, 0.4]])).tolist()
    assert json.loads(body)[0] == pytest.approx(expected[0], abs=1e-5)
    endpoint.delete()


def test_model_builder_refuses_a_torch_without_a_dlc_before_any_request_as_on_aws(lab, tmp_path):
    """The SDK's InferenceSpec example without ``image_uri``: the SDK picks the image from the local torch
    and Python with its own bundled config, client-side. The course's torch and Python have no PyTorch
    inference DLC there, so the SDK refuses, as it would on AWS in this environment; offline adds nothing."""
    import platform

    import boto3
    import torch
    from sagemaker.serve.builder.schema_builder import SchemaBuilder
    from sagemaker.serve.model_builder import ModelBuilder
    from sagemaker.serve.spec.inference_spec import InferenceSpec
    from sagemaker.serve.utils.types import ModelServer

    class Spec(InferenceSpec):
        def load(self, model_dir):
            return torch.nn.Linear(3, 1)

        def invoke(self, input_object, model):
            return model(torch.tensor(input_object)).tolist()

    builder = ModelBuilder(inference_spec=Spec(), model_path=str(tmp_path), model_server=ModelServer.TORCHSERVE,
                           schema_builder=SchemaBuilder([[0.1, 0.2, 0.3]], [[0.5]]), role_arn=lab.role_arn,
                           instance_type="ml.m5.large", dependencies={"auto": False})
    version, python = torch.__version__.split("+")[0], "py" + "".join(platform.python_version_tuple()[:2])
    with pytest.raises(ValueError, match=f"Unable to auto detect a DLC for framework pytorch, framework version "
                                         f"{version} and python version {python}"):
        builder.build(model_name="no-dlc-model")
    assert boto3.client("sagemaker").list_models(NameContains="no-dlc")["Models"] == []


def test_sdk_v2_config_is_still_validated_with_the_schema_checked_once():
    """SDK v2's module function (sagemaker.config.config), patched by the same rule as v3's method."""
    import types

    import jsonschema

    from labkit.offline import patches

    module = types.ModuleType("sagemaker.config.config")
    module.SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA = {"type": "object", "properties": {"SchemaVersion": {"enum": ["1.0"]}}}
    full_checks = []

    def validate_sagemaker_config(sagemaker_config=None):  # v2's: jsonschema.validate re-checks the schema
        full_checks.append(sagemaker_config)
        jsonschema.validate(sagemaker_config, module.SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA)

    module.validate_sagemaker_config = validate_sagemaker_config
    patches._patch_module("sagemaker.config.config", module)
    for _ in range(3):
        module.validate_sagemaker_config({"SchemaVersion": "1.0"})
        with pytest.raises(jsonschema.ValidationError, match="2.0"):
            module.validate_sagemaker_config({"SchemaVersion": "2.0"})
    assert len(full_checks) == 1, "the schema itself is checked once"
