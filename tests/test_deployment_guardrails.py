"""Deployment guardrails: blue/green with traffic shifting, alarms on real invocation metrics, rollback."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import boto3
import botocore.exceptions
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "hosting"))
import models as hm  # noqa: E402

from labkit.offline.hosting import deployment  # noqa: E402
from labkit.offline.hosting.metrics import data as metric_data  # noqa: E402

BODY = json.dumps({"instances": [[0.1, 0.2, 0.3]]})


def canary(alarms: list[str], kind: str = "CANARY", **routing) -> dict:
    traffic = {"Type": kind, "WaitIntervalInSeconds": 200, **routing}
    if kind == "CANARY" and "CanarySize" not in routing:
        traffic["CanarySize"] = {"Type": "INSTANCE_COUNT", "Value": 1}
    config = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": traffic, "TerminationWaitInSeconds": 30,
                                        "MaximumExecutionTimeoutInSeconds": 1800}}
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in alarms]}
    return config


def errors_alarm(cw, name: str, endpoint: str, config: str) -> None:
    cw.put_metric_alarm(AlarmName=name, Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors",
                        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                        ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching",
                        Dimensions=[{"Name": "EndpointName", "Value": endpoint},
                                    {"Name": "VariantName", "Value": "AllTraffic"},
                                    {"Name": "EndpointConfigName", "Value": config}])


def drive(sm, rt, endpoint: str) -> dict:
    """Send requests while the update runs; what each fleet answered and the statuses seen."""
    seen = {"ok": 0, "errors": 0, "statuses": set()}
    while True:
        status = sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"]
        seen["statuses"].add(status)
        if status not in ("Updating", "RollingBack"):
            return seen
        try:
            rt.invoke_endpoint(EndpointName=endpoint, Body=BODY, ContentType="application/json")
            seen["ok"] += 1
        except rt.exceptions.ModelError:
            seen["errors"] += 1


@pytest.fixture(scope="module")
def cw(lab):
    return boto3.client("cloudwatch")


@pytest.fixture(scope="module")
def models(lab):
    _, good = hm.sklearn_model()
    _, bad = hm.sklearn_model("broken_predict.py")
    for name, tarball in (("gr-good", good), ("gr-bad", bad)):
        hm.create_model(lab, name, hm.upload(lab.bucket, f"gr/{name}.tar.gz", tarball),
                        env={"SAGEMAKER_PROGRAM": "inference.py"})
    sm = boto3.client("sagemaker")
    for config, model in (("gr-v1", "gr-good"), ("gr-v2", "gr-bad"), ("gr-v3", "gr-good")):
        sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[hm.variant(model, count=4)])
    return sm


@pytest.fixture(scope="module")
def endpoint(models, sm, rt):
    sm.create_endpoint(EndpointName="gr", EndpointConfigName="gr-v1")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="gr")
    for _ in range(10):
        rt.invoke_endpoint(EndpointName="gr", Body=BODY, ContentType="application/json")
    return "gr"


def test_every_request_publishes_invocation_metrics(cw, endpoint):
    stats = cw.get_metric_statistics(Namespace="AWS/SageMaker", MetricName="Invocations", Period=60,
                                     StartTime=time.time() - 600, EndTime=time.time() + 60, Statistics=["Sum"],
                                     Dimensions=[{"Name": "EndpointName", "Value": "gr"},
                                                 {"Name": "VariantName", "Value": "AllTraffic"}])
    assert sum(p["Sum"] for p in stats["Datapoints"]) == 10  # exact dimensions: not twice
    latency = cw.get_metric_statistics(Namespace="AWS/SageMaker", MetricName="ModelLatency", Period=60,
                                       StartTime=time.time() - 600, EndTime=time.time() + 60,
                                       Statistics=["Average"], Dimensions=[
                                           {"Name": "EndpointName", "Value": "gr"},
                                           {"Name": "VariantName", "Value": "AllTraffic"},
                                           {"Name": "EndpointConfigName", "Value": "gr-v1"}])
    point = latency["Datapoints"][0]
    assert point["Unit"] == "Microseconds" and 0 < point["Average"] < 5e6


def test_metric_data_shapes():
    rows = metric_data("ep", "AllTraffic", "cfg", 503, 0.0042, instance_count=4)
    by_name = {r["MetricName"]: r for r in rows if len(r["Dimensions"]) == 2}
    assert by_name["Invocation5XXErrors"]["Value"] == 1.0 and by_name["Invocation4XXErrors"]["Value"] == 0.0
    assert by_name["ModelLatency"]["Value"] == 4200.0 and by_name["InvocationsPerInstance"]["Value"] == 0.25
    assert len(rows) == 10


@pytest.mark.parametrize("config, message", [
    ({"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": 60}}},
     "needs a CanarySize"),
    (canary([], CanarySize={"Type": "CAPACITY_PERCENT", "Value": 75}), "at most 50%"),
    (canary([], kind="LINEAR", LinearStepSize={"Type": "CAPACITY_PERCENT", "Value": 5}), "between 10% and 50%"),
    (canary([], kind="ALL_AT_ONCE", CanarySize={"Type": "INSTANCE_COUNT", "Value": 1}), "only valid with the CANARY"),
    ({"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 600},
                                "TerminationWaitInSeconds": 600, "MaximumExecutionTimeoutInSeconds": 1000}},
     "must be larger than the total waiting time"),
    ({"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a"}]}}, "needs a BlueGreenUpdatePolicy"),
])
def test_invalid_deployment_configs_are_refused(config, message):
    with pytest.raises(Exception, match=message):
        deployment.plan(config, {"ProductionVariants": [{"VariantName": "A", "InitialInstanceCount": 4}]})


def test_plans_shift_traffic_in_documented_steps():
    config = {"ProductionVariants": [{"VariantName": "A", "InitialInstanceCount": 4}]}
    assert deployment.plan(canary([]), config).steps == [0.25, 1.0]
    linear = deployment.plan(canary([], kind="LINEAR", LinearStepSize={"Type": "CAPACITY_PERCENT", "Value": 30}),
                             config)
    assert linear.steps == pytest.approx([0.3, 0.6, 0.9, 1.0])
    rolling = deployment.plan({"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 2},
                                                       "WaitIntervalInSeconds": 60}}, config)
    assert rolling.rolling and rolling.steps == [0.5, 1.0]


def test_missing_alarm_and_renamed_variant_are_refused(sm, endpoint):
    with pytest.raises(botocore.exceptions.ClientError, match="do not exist"):
        sm.update_endpoint(EndpointName="gr", EndpointConfigName="gr-v3", DeploymentConfig=canary(["no-such-alarm"]))
    sm.create_endpoint_config(EndpointConfigName="gr-renamed",
                              ProductionVariants=[hm.variant("gr-good", name="Other", count=4)])
    with pytest.raises(botocore.exceptions.ClientError, match="same variant names"):
        sm.update_endpoint(EndpointName="gr", EndpointConfigName="gr-renamed", DeploymentConfig=canary([]))


def test_broken_version_rolls_back_on_its_alarm(sm, rt, cw, endpoint):
    errors_alarm(cw, "gr-v2-5xx", "gr", "gr-v2")
    sm.update_endpoint(EndpointName="gr", EndpointConfigName="gr-v2", DeploymentConfig=canary(["gr-v2-5xx"]))
    seen = drive(sm, rt, "gr")
    described = sm.describe_endpoint(EndpointName="gr")
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == "gr-v1"  # the old fleet serves again
    assert "rolled back" in described["FailureReason"] and "gr-v2-5xx" in described["FailureReason"]
    assert described["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "CANARY"
    assert "Updating" in seen["statuses"] and seen["errors"] >= 1
    assert cw.describe_alarms(AlarmNames=["gr-v2-5xx"])["MetricAlarms"][0]["StateValue"] == "ALARM"
    rt.invoke_endpoint(EndpointName="gr", Body=BODY, ContentType="application/json")  # v1 answers again


def test_good_version_completes_with_linear_shifting(sm, rt, cw, endpoint):
    errors_alarm(cw, "gr-v3-5xx", "gr", "gr-v3")
    config = canary(["gr-v3-5xx"], kind="LINEAR", LinearStepSize={"Type": "CAPACITY_PERCENT", "Value": 50})
    sm.update_endpoint(EndpointName="gr", EndpointConfigName="gr-v3", DeploymentConfig=config)
    pending = sm.describe_endpoint(EndpointName="gr").get("PendingDeploymentSummary")
    assert pending is None or pending["EndpointConfigName"] == "gr-v3"
    seen = drive(sm, rt, "gr")
    described = sm.describe_endpoint(EndpointName="gr")
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", "gr-v3")
    assert "FailureReason" not in described and "PendingDeploymentSummary" not in described
    assert seen["errors"] == 0 and seen["ok"] > 0


def test_retain_deployment_config_reuses_the_last_one(sm, rt, cw, endpoint):
    errors_alarm(cw, "gr-v1-5xx", "gr", "gr-v1")
    sm.update_endpoint(EndpointName="gr", EndpointConfigName="gr-v1", RetainDeploymentConfig=True)
    assert sm.describe_endpoint(EndpointName="gr")["EndpointStatus"] == "Updating"
    assert deployment.deployment_for("gr") is not None
    drive(sm, rt, "gr")
    assert sm.describe_endpoint(EndpointName="gr")["EndpointConfigName"] == "gr-v1"


def test_both_fleets_are_billed_during_the_deployment(lab, endpoint):
    from labkit.offline import usage

    hosting = [e for e in usage.events("sagemaker:hosting") if e["resource"] == "gr"]
    assert len(hosting) >= 4  # v1, v2 (rolled back), v3, v1 again: each fleet its own interval
    overlapping = [(a, b) for a in hosting for b in hosting if a is not b and a["start"] < (b["end"] or 1e18)
                   and b["start"] < (a["end"] or 1e18)]
    assert overlapping, "blue and green run (and are billed) side by side"


def test_shadow_variants_are_refused_not_ignored(sm):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        sm.create_endpoint_config(EndpointConfigName="gr-shadow", ProductionVariants=[hm.variant("gr-good")],
                                  ShadowProductionVariants=[hm.variant("gr-bad", name="Shadow")])
    assert info.value.response["Error"]["Code"] == "NotImplemented"
    assert "ShadowProductionVariants" in info.value.response["Error"]["Message"]
