"""The sandbox guard, installed on the offline backend: cap, quotas, Bedrock model access."""

from __future__ import annotations

import time

import boto3
import pytest
from botocore.stub import Stubber

from labkit.cost import guard as guard_mod
from labkit.cost.guard import Guard, SpendingCapExceeded, UnpricedResource, cap_for
from labkit.cost.quotas import BedrockAccess, ModelAccessMissing, QuotaChecker, QuotaTooLow, quota_name

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


@pytest.fixture
def installed(lab):
    """Install a guard for the test; always remove it, so other tests' clients are unguarded."""
    guards = []

    def install(**kwargs):
        guards.append(guard_mod.install(lab, **kwargs))
        return guards[-1]

    yield install
    guard_mod.uninstall()


def _training(lab, name, itype, count=1, runtime=3600, **extra):
    return dict(TrainingJobName=name, AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
                RoleArn=lab.role_arn, OutputDataConfig={"S3OutputPath": f"s3://{lab.bucket}/out"},
                ResourceConfig={"InstanceType": itype, "InstanceCount": count, "VolumeSizeInGB": 10},
                StoppingCondition={"MaxRuntimeInSeconds": runtime}, **extra)


def test_caps(monkeypatch):
    monkeypatch.delenv("LABKIT_SPEND_CAP_USD", raising=False)
    assert cap_for("02-gpu-distributed") == 25.0
    assert cap_for("lab09") == 1.0
    assert cap_for("scratch") == guard_mod.DEFAULT_CAP_USD
    monkeypatch.setenv("LABKIT_SPEND_CAP_USD", "40")
    assert cap_for("02-gpu-distributed") == 40.0
    monkeypatch.setenv("LABKIT_SPEND_CAP_USD", "lots")
    with pytest.raises(guard_mod.GuardError, match="not a number"):
        cap_for("x")


def test_estimates_are_worst_cases(lab):
    g = Guard(lab, cap_usd=1000)
    est = g.estimate("CreateTrainingJob", _training(lab, "t", "ml.p3.2xlarge", count=2, runtime=5400))
    assert est.worst_usd == pytest.approx(3.825 * 2 * 1.5)
    assert est.quota_checks == [("ml.p3.2xlarge", "training", 2)]
    default = g.estimate("CreateTrainingJob", {"TrainingJobName": "d", "ResourceConfig": {
        "InstanceType": "ml.m5.large", "InstanceCount": 1}})
    assert default.worst_usd == pytest.approx(0.115 * 24)  # no StoppingCondition: AWS's 1 day
    spot = g.estimate("CreateTrainingJob", _training(lab, "s", "ml.g5.xlarge", EnableManagedSpotTraining=True))
    assert spot.worst_usd == pytest.approx(1.408) and spot.quota_checks[0][1] == "spot-training"
    tuning = g.estimate("CreateHyperParameterTuningJob", {
        "HyperParameterTuningJobName": "h",
        "HyperParameterTuningJobConfig": {"ResourceLimits": {"MaxNumberOfTrainingJobs": 20,
                                                             "MaxParallelTrainingJobs": 4}},
        "TrainingJobDefinition": {"ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
                                  "StoppingCondition": {"MaxRuntimeInSeconds": 900}}})
    assert tuning.worst_usd == pytest.approx(0.23 * 0.25 * 20)
    processing = g.estimate("CreateProcessingJob", {"ProcessingJobName": "p", "ProcessingResources": {
        "ClusterConfig": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 3, "VolumeSizeInGB": 5}},
        "StoppingCondition": {"MaxRuntimeInSeconds": 1200}})
    assert processing.worst_usd == pytest.approx(0.204 * 3 / 3)
    with pytest.raises(UnpricedResource, match="cannot price"):
        g.estimate("CreateTrainingJob", _training(lab, "u", "ml.x9.huge"))


def test_endpoint_estimates_use_the_config(lab, monkeypatch):
    monkeypatch.setenv("LABKIT_ASSUMED_HOURS", "3")
    configs = {
        "gpu": {"ProductionVariants": [{"VariantName": "a", "InstanceType": "ml.g5.xlarge",
                                        "InitialInstanceCount": 2}]},
        "sls": {"ProductionVariants": [{"VariantName": "a", "ServerlessConfig": {"MemorySizeInMB": 4096,
                                                                                 "MaxConcurrency": 5}}]},
    }
    g = Guard(lab, cap_usd=1000, describe_endpoint_config=configs.__getitem__)
    assert g.estimate("CreateEndpoint", {"EndpointName": "e", "EndpointConfigName": "gpu"}).worst_usd == \
        pytest.approx(1.408 * 2 * 3)
    assert g.estimate("CreateEndpoint", {"EndpointName": "e", "EndpointConfigName": "sls"}).worst_usd == \
        pytest.approx(0.00008 * 5 * 3 * 3600)


def test_over_cap_training_job_is_refused_before_aws(lab, installed):
    installed(cap_usd=5.0)
    sm = boto3.client("sagemaker")
    with pytest.raises(SpendingCapExceeded) as err:
        sm.create_training_job(**_training(lab, "too-big", "ml.p4d.24xlarge", count=2, runtime=3600))
    message = str(err.value)
    assert "$75.38" in message  # 37.688 x 2 x 1 h
    assert "ml.p4d.24xlarge $37.688/h x 2 instances x 1 h" in message
    assert "LABKIT_SPEND_CAP_USD=100" in message and "Nothing was created" in message
    assert sm.list_training_jobs()["TrainingJobSummaries"] == []


def test_commitments_add_up_across_calls(lab, installed):
    g = installed(cap_usd=0.25)
    sm = boto3.client("sagemaker")
    # ml.t3.medium notebook: $0.05/h x 2 h assumed = $0.10 each
    sm.create_notebook_instance(NotebookInstanceName="nb-1", InstanceType="ml.t3.medium", RoleArn=lab.role_arn)
    sm.create_notebook_instance(NotebookInstanceName="nb-2", InstanceType="ml.t3.medium", RoleArn=lab.role_arn)
    assert g.committed == pytest.approx(0.20)
    with pytest.raises(SpendingCapExceeded, match=r"\$0.05 left of its \$0.25"):
        sm.create_notebook_instance(NotebookInstanceName="nb-3", InstanceType="ml.t3.medium", RoleArn=lab.role_arn)
    names = {n["NotebookInstanceName"] for n in sm.list_notebook_instances()["NotebookInstances"]}
    assert {"nb-1", "nb-2"} <= names and "nb-3" not in names
    g.release("nb-2")
    sm.create_notebook_instance(NotebookInstanceName="nb-3", InstanceType="ml.t3.medium", RoleArn=lab.role_arn)
    g.set_cap(10)
    assert g.cap == 10


def test_over_cap_endpoint_is_refused(lab, installed):
    sm = boto3.client("sagemaker")
    sm.create_model(ModelName="guard-model", ExecutionRoleArn=lab.role_arn, PrimaryContainer={"Image": IMAGE})
    sm.create_endpoint_config(EndpointConfigName="guard-p3", ProductionVariants=[{
        "VariantName": "v", "ModelName": "guard-model", "InstanceType": "ml.p3.16xlarge",
        "InitialInstanceCount": 1}])
    installed(cap_usd=5.0)
    sm = boto3.client("sagemaker")
    with pytest.raises(SpendingCapExceeded, match="assumed lifetime"):
        sm.create_endpoint(EndpointName="guard-ep", EndpointConfigName="guard-p3")
    assert all(e["EndpointName"] != "guard-ep" for e in sm.list_endpoints()["Endpoints"])


def test_uninstalled_guard_lets_calls_through(lab, installed):
    installed(cap_usd=0.0)
    guard_mod.uninstall()
    sm = boto3.client("sagemaker")
    sm.create_notebook_instance(NotebookInstanceName="free", InstanceType="ml.t3.medium", RoleArn=lab.role_arn)


# --- quotas ------------------------------------------------------------------------------


def _quota_client(value: float):
    client = boto3.client("service-quotas", region_name="us-east-1")
    stub = Stubber(client)
    stub.add_response("list_service_quotas", {"Quotas": [
        {"ServiceCode": "sagemaker", "ServiceName": "Amazon SageMaker", "QuotaCode": "L-ABCD1234",
         "QuotaName": "ml.g5.xlarge for training job usage", "Value": value, "Unit": "None", "Adjustable": True,
         "QuotaArn": "arn:aws:servicequotas:us-east-1:123456789012:sagemaker/L-ABCD1234", "GlobalQuota": False}],
        "NextToken": "page-2"}, {"ServiceCode": "sagemaker", "MaxResults": 100})
    stub.add_response("list_service_quotas", {"Quotas": [
        {"ServiceCode": "sagemaker", "QuotaCode": "L-EEEE0000", "QuotaName": "ml.g5.xlarge for endpoint usage",
         "Value": 2.0, "Adjustable": True}]}, {"ServiceCode": "sagemaker", "MaxResults": 100, "NextToken": "page-2"})
    stub.activate()
    return client, stub


def test_quota_names():
    assert quota_name("ml.g5.xlarge", "training") == "ml.g5.xlarge for training job usage"
    assert quota_name("ml.p3.2xlarge", "spot-training") == "ml.p3.2xlarge for spot training job usage"
    assert quota_name("ml.m5.large", "hosting") == "ml.m5.large for endpoint usage"


def test_quota_checker_reads_pages_and_advises(lab):
    client, stub = _quota_client(0.0)
    checker = QuotaChecker(client, "us-east-1")
    with pytest.raises(QuotaTooLow) as err:
        checker.check("ml.g5.xlarge", "training", 1)
    text = str(err.value)
    assert "'ml.g5.xlarge for training job usage' (L-ABCD1234) in us-east-1 is 0" in text
    assert "ResourceLimitExceeded" in text
    assert "request-service-quota-increase --region us-east-1 --service-code sagemaker --quota-code L-ABCD1234 " \
           "--desired-value 1" in text
    assert "servicequotas/home/services/sagemaker/quotas/L-ABCD1234" in text
    assert checker.check("ml.g5.xlarge", "hosting", 2).value == 2.0
    assert checker.check("ml.m5.large", "training", 1) is None  # unknown quota: not blocked
    stub.assert_no_pending_responses()


def test_guard_refuses_a_training_job_over_quota(lab, installed):
    client, _ = _quota_client(0.0)
    installed(cap_usd=100.0, quotas=QuotaChecker(client, "us-east-1"))
    sm = boto3.client("sagemaker")
    with pytest.raises(QuotaTooLow, match="ml.g5.xlarge for training job usage"):
        sm.create_training_job(**_training(lab, "needs-gpu", "ml.g5.xlarge"))
    assert sm.list_training_jobs()["TrainingJobSummaries"] == []


def test_quota_lookup_failure_does_not_block():
    client = boto3.client("service-quotas", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("list_service_quotas", "AccessDeniedException", "no", 400)
        checker = QuotaChecker(client, "us-east-1")
        assert checker.check("ml.g5.xlarge", "training", 1) is None
        assert "AccessDenied" in checker.unavailable


# --- Bedrock model access ---------------------------------------------------------------------


def _availability(entitlement="AVAILABLE", agreement="AVAILABLE", authorization="AUTHORIZED"):
    return {"modelId": "anthropic.claude-3-haiku-20240307-v1:0",
            "agreementAvailability": {"status": agreement}, "authorizationStatus": authorization,
            "entitlementAvailability": entitlement, "regionAvailability": "AVAILABLE"}


def test_bedrock_access_refuses_a_model_not_enabled(lab, installed):
    client = boto3.client("bedrock", region_name="us-east-1")
    stub = Stubber(client)
    stub.add_response("get_foundation_model_availability", _availability(entitlement="NOT_AVAILABLE"),
                      {"modelId": "anthropic.claude-3-haiku-20240307-v1:0"})
    stub.activate()
    installed(cap_usd=5.0, bedrock=BedrockAccess(client, "us-east-1"))
    runtime = boto3.client("bedrock-runtime")
    with pytest.raises(ModelAccessMissing) as err:
        runtime.converse(modelId="us.anthropic.claude-3-haiku-20240307-v1:0",
                         messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert "model access is not enabled" in str(err.value)
    assert "#/modelaccess" in str(err.value)


def test_bedrock_access_passes_and_caches():
    client = boto3.client("bedrock", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response("get_foundation_model_availability", _availability())
        access = BedrockAccess(client, "us-east-1")
        access.check("anthropic.claude-3-haiku-20240307-v1:0")
        access.check("us.anthropic.claude-3-haiku-20240307-v1:0")  # cached: no second call
        stub.add_response("get_foundation_model_availability", _availability(agreement="PENDING"))
        with pytest.raises(ModelAccessMissing, match="pending"):
            access.check("anthropic.claude-3-sonnet-20240229-v1:0")


def test_finished_jobs_settle_at_their_actual_cost(lab, installed):
    """A job that has ended no longer holds its worst case: the guard describes it when short of cap."""
    g = installed(cap_usd=1.0)
    sm = boto3.client("sagemaker")

    def processing(name):
        sm.create_processing_job(
            ProcessingJobName=name, RoleArn=lab.role_arn,
            AppSpecification={"ImageUri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1"},
            ProcessingResources={"ClusterConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                                                   "VolumeSizeInGB": 5}},
            StoppingCondition={"MaxRuntimeInSeconds": 10800})

    processing("settle-1")  # worst case $0.23 x 3 h = $0.69
    assert g.committed == pytest.approx(0.69)
    deadline = time.time() + 60
    while sm.describe_processing_job(ProcessingJobName="settle-1")["ProcessingJobStatus"] in ("InProgress", "Stopping"):
        assert time.time() < deadline
        time.sleep(0.5)
    processing("settle-2")  # $0.69 more would pass the $1 cap, unless settle-1 is settled first
    first, second = g.commitments
    assert "(settled)" in first.estimate.detail and first.amount < 0.69
    assert second.amount == pytest.approx(0.69)
