"""EC2 for training clusters offline: DLAMI parameters, placement groups, EFA, the capacity stand-in, billing."""

from __future__ import annotations

import base64

import boto3
import botocore.exceptions
import pytest

DLAMI = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-ubuntu-22.04/latest/ami-id"


@pytest.fixture(scope="module")
def ec2(lab):
    return boto3.client("ec2")


def test_dlami_parameters_and_their_images(lab, ec2):
    ssm = boto3.client("ssm")
    ami = ssm.get_parameter(Name=DLAMI)["Parameter"]["Value"]
    assert ami == "ami-09ee1a996ac214ce7"
    names = [p["Name"] for p in ssm.get_parameters_by_path(Path="/aws/service/deeplearning/ami/x86_64",
                                                           Recursive=True)["Parameters"]]
    assert DLAMI in names and all(n.startswith("/aws/service/deeplearning/ami/x86_64/") for n in names)
    image = ec2.describe_images(ImageIds=[ami])["Images"][0]
    assert "Deep Learning" in image["Name"] and image["Architecture"] == "x86_64"


def test_placement_groups(lab, ec2):
    group = ec2.create_placement_group(GroupName="pg-cluster", Strategy="cluster")["PlacementGroup"]
    assert group["Strategy"] == "cluster" and group["State"] == "available"
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidPlacementGroup.Duplicate"):
        ec2.create_placement_group(GroupName="pg-cluster", Strategy="cluster")
    with pytest.raises(botocore.exceptions.ClientError, match="PartitionCount"):
        ec2.create_placement_group(GroupName="pg-x", Strategy="cluster", PartitionCount=3)
    ec2.create_placement_group(GroupName="pg-part", Strategy="partition", PartitionCount=3)
    listed = {g["GroupName"]: g for g in ec2.describe_placement_groups()["PlacementGroups"]}
    assert listed["pg-part"]["PartitionCount"] == 3
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidPlacementGroup.Unknown"):
        ec2.run_instances(ImageId="ami-09ee1a996ac214ce7", MinCount=1, MaxCount=1, InstanceType="g5.xlarge",
                          Placement={"GroupName": "nope"})
    with pytest.raises(botocore.exceptions.ParamValidationError, match="Strategy"):
        ec2.run_instances(ImageId="ami-09ee1a996ac214ce7", MinCount=1, MaxCount=1, InstanceType="g5.xlarge",
                          Placement={"GroupName": "pg-cluster", "Strategy": "cluster"})  # seed 000's request


def test_unknown_instance_types_are_refused(lab, ec2):
    with pytest.raises(botocore.exceptions.ClientError, match="Invalid value 'p5.huge' for InstanceType"):
        ec2.run_instances(ImageId="ami-09ee1a996ac214ce7", MinCount=1, MaxCount=1, InstanceType="p5.huge")


def test_efa_needs_a_supporting_type(lab, ec2):
    efa = [{"DeviceIndex": 0, "InterfaceType": "efa"}]
    with pytest.raises(botocore.exceptions.ClientError, match="EFA interfaces are not supported on g5.xlarge"):
        ec2.run_instances(ImageId="ami-09ee1a996ac214ce7", MinCount=1, MaxCount=1, InstanceType="g5.xlarge",
                          NetworkInterfaces=efa, DryRun=True)
    with pytest.raises(botocore.exceptions.ClientError, match="DryRunOperation"):
        ec2.run_instances(ImageId="ami-09ee1a996ac214ce7", MinCount=1, MaxCount=1, InstanceType="p4d.24xlarge",
                          NetworkInterfaces=efa, DryRun=True)


def test_capacity_stand_in_and_a_cluster_in_one_zone(lab, ec2):
    lt = ec2.create_launch_template(LaunchTemplateName="trainer", LaunchTemplateData={
        "ImageId": "ami-09ee1a996ac214ce7", "InstanceType": "p4d.24xlarge",
        "UserData": base64.b64encode(b"#!/bin/bash\necho hi\n").decode()})["LaunchTemplate"]
    request = {"MinCount": 3, "MaxCount": 3, "LaunchTemplate": {"LaunchTemplateId": lt["LaunchTemplateId"]},
               "Placement": {"GroupName": "pg-cluster", "AvailabilityZone": "us-east-1a"}}
    with pytest.raises(botocore.exceptions.ClientError) as err:
        ec2.run_instances(**request)
    assert err.value.response["Error"]["Code"] == "InsufficientInstanceCapacity"
    assert "us-east-1c" in err.value.response["Error"]["Message"]
    request["Placement"]["AvailabilityZone"] = "us-east-1c"
    ids = [i["InstanceId"] for i in ec2.run_instances(**request)["Instances"]]
    described = ec2.describe_instances(InstanceIds=ids)["Reservations"][0]["Instances"]
    assert {i["Placement"]["GroupName"] for i in described} == {"pg-cluster"}
    with pytest.raises(botocore.exceptions.ClientError, match="one Availability Zone"):
        ec2.run_instances(**dict(request, MinCount=1, MaxCount=1, Placement={"GroupName": "pg-cluster",
                                                                            "AvailabilityZone": "us-east-1d"}))
    with pytest.raises(botocore.exceptions.ClientError, match="InsufficientInstanceCapacity"):
        ec2.run_instances(**dict(request, MinCount=4, MaxCount=4))  # 6 free in 1c, 3 taken
    with pytest.raises(botocore.exceptions.ClientError, match="InUse"):
        ec2.delete_placement_group(GroupName="pg-cluster")
    ec2.terminate_instances(InstanceIds=ids)
    ec2.delete_placement_group(GroupName="pg-cluster")
    from labkit.offline import usage

    billed = [e for e in usage.events("ec2:instance") if e["resource"] in ids]
    assert len(billed) == 3 and all(e["end"] is not None and e["instance_type"] == "p4d.24xlarge" for e in billed)
    bill = lab.bill(show=False)
    assert any(r.kind == "ec2" and "p4d.24xlarge" in r.unit for r in bill.rows)
