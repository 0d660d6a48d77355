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
