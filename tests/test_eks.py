"""Offline EKS: what AWS refuses is refused, the defaults AWS applies are applied (plain boto3)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from labkit.offline import eks as offline_eks


def trust(service: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})


@pytest.fixture(scope="module")
def env(lab):
    ec2, iam, eks = boto3.client("ec2"), boto3.client("iam"), boto3.client("eks")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{z}")
               ["Subnet"]["SubnetId"] for i, z in ((1, "a"), (2, "b"), (3, "a"))]
    cluster_role = iam.create_role(RoleName="t-eks-cluster", AssumeRolePolicyDocument=trust("eks.amazonaws.com"))
    node_role = iam.create_role(RoleName="t-eks-node", AssumeRolePolicyDocument=trust("ec2.amazonaws.com"))
    wrong_trust = iam.create_role(RoleName="t-eks-wrong", AssumeRolePolicyDocument=trust("sagemaker.amazonaws.com"))
    iam.attach_role_policy(RoleName="t-eks-cluster", PolicyArn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy")
    bare_node = iam.create_role(RoleName="t-eks-bare", AssumeRolePolicyDocument=trust("ec2.amazonaws.com"))
    for name in ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly", "AmazonEKS_CNI_Policy"):
        iam.attach_role_policy(RoleName="t-eks-node", PolicyArn=f"arn:aws:iam::aws:policy/{name}")
    eks.create_cluster(name="ml", version="1.35", roleArn=cluster_role["Role"]["Arn"],
                       resourcesVpcConfig={"subnetIds": subnets[:2]})
    return {"eks": eks, "subnets": subnets, "cluster_role": cluster_role["Role"]["Arn"],
            "node_role": node_role["Role"]["Arn"], "wrong": wrong_trust["Role"]["Arn"],
            "bare": bare_node["Role"]["Arn"]}


def error(fn, **kwargs) -> dict:
    with pytest.raises(ClientError) as info:
        fn(**kwargs)
    return info.value.response["Error"]


def nodegroup(env, **overrides) -> dict:
    request = {"clusterName": "ml", "nodegroupName": "gpu", "nodeRole": env["node_role"],
               "subnets": env["subnets"][:2], "instanceTypes": ["p4d.24xlarge"], "capacityType": "SPOT",
               "scalingConfig": {"minSize": 0, "maxSize": 4, "desiredSize": 0},
               "labels": {"workload-type": "training"},
               "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]}
    request.update(overrides)
    return request


# --- clusters ---------------------------------------------------------------------------------------

def test_cluster_reports_the_requested_version(env):
    assert env["eks"].describe_cluster(name="ml")["cluster"]["version"] == "1.35"


def test_versions_past_extended_support_are_refused(env):
    err = error(env["eks"].create_cluster, name="old", version="1.28", roleArn=env["cluster_role"],
                resourcesVpcConfig={"subnetIds": env["subnets"][:2]})
    assert err["Code"] == "InvalidParameterException" and "unsupported Kubernetes version 1.28" in err["Message"]
    assert offline_eks.version_status("1.31", today="2026-12-02") == "unsupported"
    assert offline_eks.version_status("1.34", today="2026-12-02") == "extended"
    assert offline_eks.version_status("1.35", today="2026-12-02") == "standard"
    assert offline_eks.version_status("1.19") == "unknown"


def test_cluster_needs_two_zones_real_subnets_and_a_role_eks_can_assume(env):
    one_zone = [env["subnets"][0], env["subnets"][2]]
    err = error(env["eks"].create_cluster, name="x", roleArn=env["cluster_role"],
                resourcesVpcConfig={"subnetIds": one_zone})
    assert "at least two different AZs" in err["Message"]
    err = error(env["eks"].create_cluster, name="x", roleArn=env["cluster_role"],
                resourcesVpcConfig={"subnetIds": ["subnet-12345", env["subnets"][1]]})
    assert "subnet-12345" in err["Message"]
    err = error(env["eks"].create_cluster, name="x", roleArn=env["wrong"],
                resourcesVpcConfig={"subnetIds": env["subnets"][:2]})
    assert "could not be assumed" in err["Message"]


# --- node groups ------------------------------------------------------------------------------------

def test_a_valid_gpu_nodegroup_gets_aws_defaults(env):
    group = env["eks"].create_nodegroup(**nodegroup(env))["nodegroup"]
    assert group["amiType"] == "AL2023_x86_64_NVIDIA" and group["version"] == "1.35" and group["diskSize"] == 20
    assert "remoteAccess" not in group
    described = env["eks"].describe_nodegroup(clusterName="ml", nodegroupName="gpu")["nodegroup"]
    assert described["taints"][0]["effect"] == "NO_SCHEDULE" and described["capacityType"] == "SPOT"
    env["eks"].delete_nodegroup(clusterName="ml", nodegroupName="gpu")
    assert offline_eks.default_ami_type(["trn1.32xlarge"]) == "AL2023_x86_64_NEURON"
    assert offline_eks.default_ami_type(["m5.2xlarge"]) == "AL2023_x86_64_STANDARD"
    assert offline_eks.default_ami_type(["m7g.large"]) == "AL2023_ARM_64_STANDARD"


@pytest.mark.parametrize("overrides,words", [
    ({"taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]}, "NO_SCHEDULE"),
    ({"scalingConfig": {"minSize": 3, "maxSize": 4, "desiredSize": 2}}, "minSize can't be greater than desiredSize"),
    ({"scalingConfig": {"minSize": 0, "maxSize": 4, "desiredSize": 5}}, "desiredSize can't be greater than maxSize"),
    ({"scalingConfig": {"minSize": 5, "maxSize": 4, "desiredSize": 5}}, "minSize can't be greater than maxSize"),
    ({"amiType": "AL2_x86_64_GPU"}, "no Amazon Linux 2 AMIs"),
    ({"amiType": "AL2023_ARM_64_STANDARD"}, "not a valid instance type for requested amiType"),
    ({"amiType": "AL2023_GPU"}, "amiType 'AL2023_GPU' is not valid"),
    ({"instanceTypes": ["ml.p4d.24xlarge"]}, "without the 'ml.'"),
    ({"capacityType": "PREEMPTIBLE"}, "capacityType"),
    ({"labels": {"bad key!": "x"}}, "Invalid Kubernetes labels"),
    ({"taints": [{"key": f"k{i}", "effect": "NO_SCHEDULE"} for i in range(51)]}, "at most 50 taints"),
])
def test_nodegroup_requests_aws_refuses(env, overrides, words):
    err = error(env["eks"].create_nodegroup, **nodegroup(env, nodegroupName="bad", **overrides))
    assert err["Code"] == "InvalidParameterException" and words in err["Message"]


def test_node_role_needs_ec2_trust_and_the_worker_policies(env):
    err = error(env["eks"].create_nodegroup, **nodegroup(env, nodegroupName="bad", nodeRole=env["cluster_role"]))
    assert "ec2.amazonaws.com" in err["Message"]
    err = error(env["eks"].create_nodegroup, **nodegroup(env, nodegroupName="bad", nodeRole=env["bare"]))
    assert "AmazonEKSWorkerNodePolicy" in err["Message"]


def test_scaling_updates_are_checked_against_the_current_sizes(env):
    env["eks"].create_nodegroup(**nodegroup(env, nodegroupName="cpu", instanceTypes=["m5.2xlarge"], taints=[],
                                            scalingConfig={"minSize": 2, "maxSize": 10, "desiredSize": 3}))
    err = error(env["eks"].update_nodegroup_config, clusterName="ml", nodegroupName="cpu",
                scalingConfig={"minSize": 4})
    assert err["Message"] == "Minimum capacity 4 can't be greater than desired size 3"
    env["eks"].update_nodegroup_config(clusterName="ml", nodegroupName="cpu",
                                       scalingConfig={"minSize": 4, "desiredSize": 4})
    group = env["eks"].describe_nodegroup(clusterName="ml", nodegroupName="cpu")["nodegroup"]
    assert group["scalingConfig"] == {"minSize": 4, "maxSize": 10, "desiredSize": 4}
    assert error(env["eks"].delete_cluster, name="ml")["Code"] == "ResourceInUseException"
    env["eks"].delete_nodegroup(clusterName="ml", nodegroupName="cpu")
