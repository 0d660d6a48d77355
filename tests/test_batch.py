"""AWS Batch offline: jobs run their command, queues by priority, array jobs, retries with evaluateOnExit."""

from __future__ import annotations

import time

import boto3
import pytest

from labkit.offline.batch import Attempt, should_retry, simulate_spot_reclaim  # noqa: I001


@pytest.fixture(scope="module")
def batch(lab):
    iam, ec2 = boto3.client("iam"), boto3.client("ec2")
    role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    profile = iam.create_instance_profile(InstanceProfileName="ecsInstanceRole")["InstanceProfile"]["Arn"]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    group = ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]
    client = boto3.client("batch")
    for name, kind, cpus in (("ce-spot", "SPOT", 4), ("ce-ondemand", "EC2", 2)):
        client.create_compute_environment(computeEnvironmentName=name, type="MANAGED", state="ENABLED", serviceRole=role, computeResources={
            "type": kind, "minvCpus": 0, "maxvCpus": cpus, "instanceTypes": ["m5.large"], "subnets": [subnet],
            "securityGroupIds": [group], "instanceRole": profile, "allocationStrategy": "SPOT_CAPACITY_OPTIMIZED"
            if kind == "SPOT" else "BEST_FIT_PROGRESSIVE"})
    client.create_job_queue(jobQueueName="high", state="ENABLED", priority=10, computeEnvironmentOrder=[
        {"order": 1, "computeEnvironment": "ce-ondemand"}])
    client.create_job_queue(jobQueueName="spot", state="ENABLED", priority=1, computeEnvironmentOrder=[
        {"order": 1, "computeEnvironment": "ce-spot"}])
    client.register_job_definition(jobDefinitionName="shard", type="container", parameters={"scale": "2"}, containerProperties={
        "image": "public.ecr.aws/docker/library/python:3.12-slim", "command": [
            "python", "-c", "import os, sys; i = int(os.environ.get('AWS_BATCH_JOB_ARRAY_INDEX', '0')); "
            "print('shard', i, 'attempt', os.environ['AWS_BATCH_JOB_ATTEMPT'], 'x', i * int(sys.argv[1])); "
            "sys.exit(int(os.environ.get('FAIL', '0')))", "Ref::scale"],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}]})
    return client


def _wait(batch, job_id: str, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while (job := batch.describe_jobs(jobs=[job_id])["jobs"][0])["status"] not in ("SUCCEEDED", "FAILED"):
        assert time.time() < deadline, job["status"]
        time.sleep(0.1)
    return job


def _logs(stream: str) -> list[str]:
    events = boto3.client("logs").get_log_events(logGroupName="/aws/batch/job", logStreamName=stream)["events"]
    return [e["message"] for e in events]


def test_an_array_job_runs_each_index_with_parameters(batch):
    job = batch.submit_job(jobName="shards", jobQueue="spot", jobDefinition="shard", arrayProperties={"size": 3})
    done = _wait(batch, job["jobId"])
    assert done["status"] == "SUCCEEDED" and done["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 3
    children = batch.list_jobs(arrayJobId=job["jobId"], jobStatus="SUCCEEDED")["jobSummaryList"]
    assert sorted(c["jobId"] for c in children) == [f"{job['jobId']}:{i}" for i in range(3)]
    child = batch.describe_jobs(jobs=[f"{job['jobId']}:2"])["jobs"][0]
    time.sleep(0.3)  # the log reader thread
    assert "shard 2 attempt 1 x 4" in _logs(child["container"]["logStreamName"])


def test_retries_follow_evaluate_on_exit(batch):
    strategy = {"attempts": 3, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "RETRY"},
                                                  {"onReason": "*", "action": "EXIT"}]}
    failing = batch.submit_job(jobName="bug", jobQueue="spot", jobDefinition="shard", retryStrategy=strategy,
                               containerOverrides={"environment": [{"name": "FAIL", "value": "3"}]})
    done = _wait(batch, failing["jobId"])
    assert done["status"] == "FAILED" and len(done["attempts"]) == 1, "a bug is not retried"
    assert done["attempts"][0]["container"]["exitCode"] == 3
    simulate_spot_reclaim("reclaimed", after_seconds=0.2)
    reclaimed = batch.submit_job(jobName="reclaimed", jobQueue="spot", jobDefinition="shard", retryStrategy=strategy,
                                 containerOverrides={"command": ["python", "-c", "import time; time.sleep(1.5)"]})
    done = _wait(batch, reclaimed["jobId"])
    assert done["status"] == "SUCCEEDED" and len(done["attempts"]) == 2
    assert done["attempts"][0]["statusReason"].startswith("Host EC2 (instance i-")


def test_retry_decision_rules():
    from types import SimpleNamespace

    job = SimpleNamespace(retry=lambda: {"attempts": 2}, attempts=[1])
    assert should_retry(job, Attempt(0, "i", "s", exit_code=1))
    job.attempts = [1, 2]
    assert not should_retry(job, Attempt(0, "i", "s", exit_code=1))
    job = SimpleNamespace(retry=lambda: {"attempts": 5, "evaluateOnExit": [{"onExitCode": "13*", "action": "exit"}]},
                          attempts=[1])
    assert not should_retry(job, Attempt(0, "i", "s", exit_code=137)) and should_retry(job, Attempt(0, "i", "s", exit_code=1))


def test_priority_and_capacity(batch):
    ids = [batch.submit_job(jobName=f"p{i}", jobQueue="high", jobDefinition="shard",
                            containerOverrides={"command": ["python", "-c", "import time; time.sleep(0.3)"],
                                                "resourceRequirements": [{"type": "VCPU", "value": "2"}]})["jobId"]
           for i in range(2)]
    time.sleep(0.2)
    states = [batch.describe_jobs(jobs=[i])["jobs"][0]["status"] for i in ids]
    assert states.count("RUNNABLE") == 1, f"maxvCpus 2 runs one 2-vCPU job at a time: {states}"
    assert all(_wait(batch, i)["status"] == "SUCCEEDED" for i in ids)


def test_bad_submissions_and_termination(batch):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="not found"):
        batch.submit_job(jobName="x", jobQueue="nope", jobDefinition="shard")
    with pytest.raises(ClientError, match="between 2 and 10,000"):
        batch.submit_job(jobName="x", jobQueue="spot", jobDefinition="shard", arrayProperties={"size": 1})
    job = batch.submit_job(jobName="long", jobQueue="spot", jobDefinition="shard",
                           containerOverrides={"command": ["python", "-c", "import time; time.sleep(30)"]})
    time.sleep(0.3)
    batch.terminate_job(jobId=job["jobId"], reason="not needed")
    done = _wait(batch, job["jobId"], timeout=10)
    assert done["status"] == "FAILED" and done["statusReason"] == "not needed"
