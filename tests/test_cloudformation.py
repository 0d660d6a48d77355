"""The offline CloudFormation: templates checked as AWS checks them, stacks whose resources are real."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3
import botocore.exceptions
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "hosting"))
import models as hm  # noqa: E402

from labkit.offline.cloudformation import stacks as stack_module  # noqa: E402
from labkit.offline.cloudformation.template import Template, load  # noqa: E402
from labkit.offline.dispatch import AWSError  # noqa: E402

TEMPLATE = """
AWSTemplateFormatVersion: '2010-09-09'
Description: an endpoint, its autoscaling and an alarm
Parameters:
  ModelDataUrl: {Type: String}
  RoleArn: {Type: String}
  EndpointName: {Type: String}
  InstanceType: {Type: String, Default: ml.m5.large, AllowedValues: [ml.m5.large, ml.m5.xlarge]}
  MaxInstances: {Type: Number, Default: 4}
Resources:
  Model:
    Type: AWS::SageMaker::Model
    Properties:
      ExecutionRoleArn: !Ref RoleArn
      PrimaryContainer:
        Image: IMAGE
        ModelDataUrl: !Ref ModelDataUrl
        Environment: {SAGEMAKER_PROGRAM: inference.py}
  Config:
    Type: AWS::SageMaker::EndpointConfig
    Properties:
      ProductionVariants:
        - {VariantName: AllTraffic, ModelName: !GetAtt Model.ModelName, InstanceType: !Ref InstanceType,
           InitialInstanceCount: '1'}
  Endpoint:
    Type: AWS::SageMaker::Endpoint
    Properties:
      EndpointName: !Ref EndpointName
      EndpointConfigName: !GetAtt Config.EndpointConfigName
  Target:
    Type: AWS::ApplicationAutoScaling::ScalableTarget
    Properties:
      ServiceNamespace: sagemaker
      ResourceId: TARGET_ID
      ScalableDimension: sagemaker:variant:DesiredInstanceCount
      MinCapacity: 1
      MaxCapacity: !Ref MaxInstances
  Policy:
    Type: AWS::ApplicationAutoScaling::ScalingPolicy
    Properties:
      PolicyName: invocations
      PolicyType: TargetTrackingScaling
      ScalingTargetId: !Ref Target
      TargetTrackingScalingPolicyConfiguration:
        TargetValue: 700
        PredefinedMetricSpecification: {PredefinedMetricType: SageMakerVariantInvocationsPerInstance}
  Errors:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: !Sub ${EndpointName}-5xx
      Namespace: AWS/SageMaker
      MetricName: Invocation5XXErrors
      Dimensions:
        - {Name: EndpointName, Value: !GetAtt Endpoint.EndpointName}
        - {Name: VariantName, Value: AllTraffic}
      Statistic: Sum
      Period: 60
      EvaluationPeriods: 1
      Threshold: 1
      ComparisonOperator: GreaterThanOrEqualToThreshold
      TreatMissingData: notBreaching
Outputs:
  EndpointName: {Value: !GetAtt Endpoint.EndpointName, Export: {Name: !Sub '${AWS::StackName}-endpoint'}}
  AlarmArn: {Value: !GetAtt Errors.Arn}
"""
GOOD_TARGET = "!Sub endpoint/${Endpoint.EndpointName}/variant/AllTraffic"


def template(endpoint: str, target: str = GOOD_TARGET) -> str:
    return TEMPLATE.replace("IMAGE", hm.SKLEARN_IMAGE).replace("TARGET_ID", target.replace("EP", endpoint))


@pytest.fixture(scope="module")
def cf(lab):
    return boto3.client("cloudformation")


@pytest.fixture(scope="module")
def model_url(lab):
    _, tarball = hm.sklearn_model()
    return hm.upload(lab.bucket, "cfn/model.tar.gz", tarball)


def parameters(lab, model_url: str, endpoint: str, **more: str) -> list[dict[str, str]]:
    values = {"ModelDataUrl": model_url, "RoleArn": lab.role_arn, "EndpointName": endpoint, **more}
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


def events(cf, stack: str) -> list[tuple[str, str, str]]:
    return [(e["LogicalResourceId"], e["ResourceStatus"], e.get("ResourceStatusReason", ""))
            for e in reversed(cf.describe_stack_events(StackName=stack)["StackEvents"])]


@pytest.fixture(scope="module")
def stack(lab, cf, model_url):
    cf.create_stack(StackName="cfn-ep", TemplateBody=template("cfn-ep"),
                    Parameters=parameters(lab, model_url, "cfn-ep"))
    first = cf.describe_stacks(StackName="cfn-ep")["Stacks"][0]["StackStatus"]
    cf.get_waiter("stack_create_complete").wait(StackName="cfn-ep")
    return {"first": first}


# --- templates, checked without AWS ---------------------------------------------------------------


def test_short_forms_and_json_load_alike():
    yaml_form = load("Resources:\n  A:\n    Type: AWS::CloudWatch::Alarm\n    Properties:\n"
                     "      AlarmName: !Sub '${AWS::StackName}-x'\n      Threshold: !GetAtt B.Arn\n")
    props = yaml_form["Resources"]["A"]["Properties"]
    assert props["AlarmName"] == {"Fn::Sub": "${AWS::StackName}-x"}
    assert props["Threshold"] == {"Fn::GetAtt": ["B", "Arn"]}
    assert load(json.dumps(yaml_form)) == yaml_form


@pytest.mark.parametrize("body, message", [
    ({"Resources": {}}, "At least one Resources member must be defined"),
    ({"Resources": {"A": {"Type": "AWS::Foo::Bar"}}}, "Unrecognized resource types: ['AWS::Foo::Bar']"),
    ({"Resources": {"A": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"AlarmName": {"Ref": "Nope"}}}}},
     "Unresolved resource dependencies ['Nope']"),
    ({"Resources": {"A": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"AlarmName": {"Fn::GetAtt": ["B", "Name"]}}},
                    "B": {"Type": "AWS::CloudWatch::Alarm"}}}, "resource B does not support attribute type Name"),
    ({"Resources": {"A": {"Type": "AWS::CloudWatch::Alarm", "DependsOn": "B"},
                    "B": {"Type": "AWS::CloudWatch::Alarm", "DependsOn": "A"}}}, "Circular dependency between resources"),
    ({"Resources": {"A": {"Type": "AWS::CloudWatch::Alarm"}}, "Outputz": {}}, "Invalid template property"),
    ({"Transform": "AWS::Serverless-2016-10-31", "Resources": {"A": {"Type": "AWS::CloudWatch::Alarm"}}},
     "Transform"),
])
def test_bad_templates_fail_as_cloudformation_says(body, message):
    with pytest.raises(AWSError) as info:
        Template(body)
    assert info.value.code == "ValidationError"
    assert message in info.value.message


def test_parameters_are_checked():
    body = {"Parameters": {"Size": {"Type": "String", "AllowedValues": ["a", "b"]}, "N": {"Type": "Number"}},
            "Resources": {"A": {"Type": "AWS::CloudWatch::Alarm"}}}
    with pytest.raises(AWSError, match=r"Parameters: \['N'\] must have values"):
        Template(body, {"Size": "a"})
    with pytest.raises(AWSError, match="must be one of AllowedValues"):
        Template(body, {"Size": "c", "N": "1"})
    with pytest.raises(AWSError, match="must be a number"):
        Template(body, {"Size": "a", "N": "x"})
    with pytest.raises(AWSError, match=r"\['Other'\] do not exist"):
        Template(body, {"Size": "a", "N": "1", "Other": "1"})


def test_dependencies_come_from_refs_getatts_subs_and_depends_on():
    t = Template(load(template("ep")), {"ModelDataUrl": "s3://b/k", "RoleArn": "r", "EndpointName": "ep"})
    assert t.dependencies("Config") == {"Model"}
    assert t.dependencies("Target") == {"Endpoint"}  # through ${Endpoint.EndpointName} in a Sub
    assert t.order.index("Model") < t.order.index("Config") < t.order.index("Endpoint") < t.order.index("Target")


def test_conditions_choose_resources():
    body = {"Parameters": {"Env": {"Type": "String"}},
            "Conditions": {"Prod": {"Fn::Equals": [{"Ref": "Env"}, "prod"]}},
            "Resources": {"A": {"Type": "AWS::CloudWatch::Alarm", "Condition": "Prod"},
                          "B": {"Type": "AWS::CloudWatch::Alarm"}}}
    assert set(Template(body, {"Env": "prod"}).resources) == {"A", "B"}
    assert set(Template(body, {"Env": "dev"}).resources) == {"B"}


# --- stacks ---------------------------------------------------------------------------------------


def test_stack_creates_a_serving_endpoint(cf, stack, sm, rt):
    assert stack["first"] == "CREATE_IN_PROGRESS"
    described = cf.describe_stacks(StackName="cfn-ep")["Stacks"][0]
    assert described["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
    assert outputs["EndpointName"] == "cfn-ep"
    assert outputs["AlarmArn"].endswith(":alarm:cfn-ep-5xx")
    assert sm.describe_endpoint(EndpointName="cfn-ep")["EndpointStatus"] == "InService"
    body = rt.invoke_endpoint(EndpointName="cfn-ep", Body=json.dumps({"instances": [[0.9, 0.9, 0.1]]}),
                              ContentType="application/json")["Body"].read()
    assert json.loads(body)["predictions"][0] > 0.5  # the hosting engine ran inference.py


def test_stack_resources_are_the_engines_own(cf, stack, lab):
    kinds = {r["LogicalResourceId"]: r for r in cf.describe_stack_resources(StackName="cfn-ep")["StackResources"]}
    assert {r["ResourceStatus"] for r in kinds.values()} == {"CREATE_COMPLETE"}
    target = boto3.client("application-autoscaling").describe_scalable_targets(ServiceNamespace="sagemaker")
    assert [(t["ResourceId"], t["MaxCapacity"]) for t in target["ScalableTargets"]] == [
        ("endpoint/cfn-ep/variant/AllTraffic", 4)]
    assert kinds["Target"]["PhysicalResourceId"] == (
        "endpoint/cfn-ep/variant/AllTraffic|sagemaker:variant:DesiredInstanceCount|sagemaker")
    alarm = boto3.client("cloudwatch").describe_alarms(AlarmNames=["cfn-ep-5xx"])["MetricAlarms"][0]
    assert alarm["StateValue"] in ("OK", "INSUFFICIENT_DATA") and alarm["Threshold"] == 1.0
    exports = cf.list_exports()["Exports"]
    assert [(e["Name"], e["Value"]) for e in exports] == [("cfn-ep-endpoint", "cfn-ep")]


def test_events_tell_the_story(cf, stack):
    story = events(cf, "cfn-ep")
    assert story[0] == ("cfn-ep", "CREATE_IN_PROGRESS", "User Initiated")
    assert story[-1][:2] == ("cfn-ep", "CREATE_COMPLETE")
    endpoint = [e[1] for e in story if e[0] == "Endpoint"]
    assert endpoint == ["CREATE_IN_PROGRESS", "CREATE_IN_PROGRESS", "CREATE_COMPLETE"]


def test_a_missing_dependency_fails_and_rolls_back(lab, cf, model_url, sm):
    literal = "endpoint/cfn-race/variant/AllTraffic"  # no reference: nothing says wait for the endpoint
    cf.create_stack(StackName="cfn-race", TemplateBody=template("cfn-race", literal),
                    Parameters=parameters(lab, model_url, "cfn-race"))
    with pytest.raises(botocore.exceptions.WaiterError):
        cf.get_waiter("stack_create_complete").wait(StackName="cfn-race")
    story = events(cf, "cfn-race")
    failed = [e for e in story if e[1] == "CREATE_FAILED"]
    assert failed[0][0] == "Target" and "does not exist" in failed[0][2]
    assert ("cfn-race", "ROLLBACK_IN_PROGRESS",
            "The following resource(s) failed to create: [Target]. Rollback requested by user.") in story
    assert story[-1][:2] == ("cfn-race", "ROLLBACK_COMPLETE")
    assert not [m for m in sm.list_models()["Models"] if m["ModelName"].startswith("cfn-race")]


def test_unsupported_resource_type_is_refused_with_a_reason(cf):
    body = json.dumps({"Resources": {"Bucket": {"Type": "AWS::S3::Bucket"}}})
    cf.create_stack(StackName="cfn-s3", TemplateBody=body, DisableRollback=True)
    with pytest.raises(botocore.exceptions.WaiterError):
        cf.get_waiter("stack_create_complete").wait(StackName="cfn-s3")
    reason = [e for e in events(cf, "cfn-s3") if e[1] == "CREATE_FAILED" and e[0] == "Bucket"][0][2]
    assert "AWS::S3::Bucket is not supported by the offline backend" in reason
    assert cf.describe_stacks(StackName="cfn-s3")["Stacks"][0]["StackStatus"] == "CREATE_FAILED"
    cf.delete_stack(StackName="cfn-s3")
    cf.get_waiter("stack_delete_complete").wait(StackName="cfn-s3")


def test_create_stack_checks_the_template_synchronously(cf):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        cf.create_stack(StackName="cfn-bad", TemplateBody=json.dumps({"Resources": {"A": {"Type": "AWS::No::Such"}}}))
    assert info.value.response["Error"]["Code"] == "ValidationError"
    with pytest.raises(botocore.exceptions.ClientError) as info:
        cf.create_stack(StackName="cfn-ep", TemplateBody=template("x"))
    assert info.value.response["Error"]["Code"] == "AlreadyExistsException"


def test_drift_detection_finds_a_manual_change(cf, stack):
    aas = boto3.client("application-autoscaling")
    aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId="endpoint/cfn-ep/variant/AllTraffic",
                                 ScalableDimension="sagemaker:variant:DesiredInstanceCount", MinCapacity=1,
                                 MaxCapacity=10)
    detection = cf.detect_stack_drift(StackName="cfn-ep")["StackDriftDetectionId"]
    status = cf.describe_stack_drift_detection_status(StackDriftDetectionId=detection)
    assert (status["DetectionStatus"], status["StackDriftStatus"], status["DriftedStackResourceCount"]) == (
        "DETECTION_COMPLETE", "DRIFTED", 1)
    drifts = {d["LogicalResourceId"]: d for d in cf.describe_stack_resource_drifts(StackName="cfn-ep")[
        "StackResourceDrifts"]}
    assert drifts["Target"]["StackResourceDriftStatus"] == "MODIFIED"
    assert drifts["Target"]["PropertyDifferences"] == [{"PropertyPath": "/MaxCapacity", "ExpectedValue": "4",
                                                        "ActualValue": "10", "DifferenceType": "NOT_EQUAL"}]
    assert drifts["Endpoint"]["StackResourceDriftStatus"] == "IN_SYNC"
    boto3.client("cloudwatch").delete_alarms(AlarmNames=["cfn-ep-5xx"])
    gone = cf.detect_stack_resource_drift(StackName="cfn-ep", LogicalResourceId="Errors")["StackResourceDrift"]
    assert gone["StackResourceDriftStatus"] == "DELETED"


def test_change_set_shows_replacement_then_executes(lab, cf, stack, model_url, sm):
    params = parameters(lab, model_url, "cfn-ep", InstanceType="ml.m5.xlarge", MaxInstances="4")
    cf.create_change_set(StackName="cfn-ep", ChangeSetName="bigger", TemplateBody=template("cfn-ep"),
                         Parameters=params)
    cf.get_waiter("change_set_create_complete").wait(StackName="cfn-ep", ChangeSetName="bigger")
    changes = {c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"]
               for c in cf.describe_change_set(StackName="cfn-ep", ChangeSetName="bigger")["Changes"]}
    assert set(changes) == {"Config", "Endpoint"}
    assert changes["Config"]["Replacement"] == "True"
    assert changes["Config"]["Details"][0]["Target"] == {"Attribute": "Properties", "Name": "ProductionVariants",
                                                         "RequiresRecreation": "Always"}
    assert changes["Endpoint"]["Replacement"] == "False"  # a new config name: UpdateEndpoint, in place
    assert changes["Endpoint"]["Details"][0]["ChangeSource"] == "ResourceAttribute"
    before = sm.describe_endpoint(EndpointName="cfn-ep")["EndpointConfigName"]
    cf.execute_change_set(StackName="cfn-ep", ChangeSetName="bigger")
    cf.get_waiter("stack_update_complete").wait(StackName="cfn-ep")
    after = sm.describe_endpoint(EndpointName="cfn-ep")
    assert after["EndpointConfigName"] != before and after["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=after["EndpointConfigName"])
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.m5.xlarge"
    with pytest.raises(botocore.exceptions.ClientError):  # the old configuration was cleaned up
        sm.describe_endpoint_config(EndpointConfigName=before)
    statuses = [e[1] for e in events(cf, "cfn-ep") if e[0] == "cfn-ep"]
    assert statuses[-3:] == ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_COMPLETE"]


def test_an_empty_change_set_fails_with_aws_reason(lab, cf, stack, model_url):
    params = parameters(lab, model_url, "cfn-ep", InstanceType="ml.m5.xlarge")
    cf.create_change_set(StackName="cfn-ep", ChangeSetName="same", TemplateBody=template("cfn-ep"),
                         Parameters=params)
    described = cf.describe_change_set(StackName="cfn-ep", ChangeSetName="same")
    assert described["Status"] == "FAILED"
    assert "didn't contain changes" in described["StatusReason"]


def test_failed_update_rolls_back(lab, cf, stack, model_url, sm):
    before = sm.describe_endpoint(EndpointName="cfn-ep")["EndpointConfigName"]
    broken = template("cfn-ep").replace("InitialInstanceCount: '1'", "InitialInstanceCount: '1', "
                                        "InitialVariantWeight: -1")
    cf.update_stack(StackName="cfn-ep", TemplateBody=broken, Parameters=parameters(lab, model_url, "cfn-ep"))
    with pytest.raises(botocore.exceptions.WaiterError):
        cf.get_waiter("stack_update_complete").wait(StackName="cfn-ep")
    assert cf.describe_stacks(StackName="cfn-ep")["Stacks"][0]["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert sm.describe_endpoint(EndpointName="cfn-ep")["EndpointConfigName"] == before


def test_delete_stack_deletes_everything(cf, stack, sm):
    cf.delete_stack(StackName="cfn-ep")
    cf.get_waiter("stack_delete_complete").wait(StackName="cfn-ep")
    assert not sm.list_endpoints()["Endpoints"]
    assert not [c for c in sm.list_endpoint_configs()["EndpointConfigs"] if c["EndpointConfigName"].startswith("cfn-ep")]
    assert not boto3.client("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="sagemaker")["ScalableTargets"]
    deleted = cf.list_stacks(StackStatusFilter=["DELETE_COMPLETE"])["StackSummaries"]
    assert "cfn-ep" in [s["StackName"] for s in deleted]
    with pytest.raises(botocore.exceptions.ClientError, match="does not exist"):
        cf.describe_stacks(StackName="cfn-ep")


def test_operations_not_emulated_are_refused(cf):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        cf.list_stack_sets()
    assert info.value.response["Error"]["Code"] == "NotImplemented"


def test_generated_names_follow_cloudformation():
    name = stack_module.generated_name("my-stack", "Model")
    assert name.startswith("my-stack-Model-") and len(name.rsplit("-", 1)[1]) == 12


def test_properties_are_checked_against_the_type_schema(cf):
    body = json.dumps({"Resources": {"Errors": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "Namespace": "T", "MetricName": "m", "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 1,
        "Threshold": 1, "ComparisonOperator": "GreaterThanThreshold", "Treshold": 2}}}})
    cf.create_stack(StackName="cfn-typo", TemplateBody=body)
    with pytest.raises(botocore.exceptions.WaiterError):
        cf.get_waiter("stack_create_complete").wait(StackName="cfn-typo")
    reason = [e for e in events(cf, "cfn-typo") if e[1] == "CREATE_FAILED"][0][2]
    assert reason == ("Properties validation failed for resource Errors with message: "
                      "#: extraneous key [Treshold] is not permitted")
    assert cf.describe_stacks(StackName="cfn-typo")["Stacks"][0]["StackStatus"] == "ROLLBACK_COMPLETE"
