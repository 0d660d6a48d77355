"""EMR RunJobFlow: what AWS refuses is refused offline; instance fleets are kept."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

BASE = {"Name": "ml-prep", "ReleaseLabel": "emr-7.5.0", "Applications": [{"Name": "Spark"}],
        "ServiceRole": "EMR_DefaultRole", "JobFlowRole": "EMR_EC2_DefaultRole"}
GROUPS = [
    {"Name": "primary", "InstanceRole": "MASTER", "Market": "ON_DEMAND", "InstanceType": "m5.xlarge", "InstanceCount": 1},
    {"Name": "core", "InstanceRole": "CORE", "Market": "ON_DEMAND", "InstanceType": "m5.2xlarge", "InstanceCount": 2},
    {"Name": "task", "InstanceRole": "TASK", "Market": "SPOT", "InstanceType": "m5.2xlarge", "InstanceCount": 6},
]
FLEETS = [
    {"Name": "primary", "InstanceFleetType": "MASTER", "TargetOnDemandCapacity": 1,
     "InstanceTypeConfigs": [{"InstanceType": "m5.xlarge"}]},
    {"Name": "core", "InstanceFleetType": "CORE", "TargetOnDemandCapacity": 2,
     "InstanceTypeConfigs": [{"InstanceType": "m5.2xlarge"}]},
    {"Name": "task", "InstanceFleetType": "TASK", "TargetSpotCapacity": 8, "InstanceTypeConfigs": [
        {"InstanceType": "m5.2xlarge", "WeightedCapacity": 1, "BidPriceAsPercentageOfOnDemandPrice": 100},
        {"InstanceType": "m5.4xlarge", "WeightedCapacity": 2, "BidPriceAsPercentageOfOnDemandPrice": 100}]},
]


def run(instances, **extra):
    return boto3.client("emr").run_job_flow(**{**BASE, **extra}, Instances={"KeepJobFlowAliveWhenNoSteps": True, **instances})


def code(instances, **extra) -> tuple[str, str]:
    with pytest.raises(ClientError) as err:
        run(instances, **extra)
    return err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]


def test_seed_mix_of_scalar_fields_and_fleets_is_refused(lab):
    seed = {"MasterInstanceType": "m5.xlarge", "SlaveInstanceType": "m5.2xlarge", "InstanceCount": 10,
            "InstanceFleets": FLEETS}
    c, message = code(seed)
    assert c == "ValidationException" and "exactly one way" in message
    assert code({"InstanceGroups": GROUPS, "InstanceFleets": FLEETS})[0] == "ValidationException"


@pytest.mark.parametrize("groups, fragment", [
    ([g for g in GROUPS if g["InstanceRole"] != "MASTER"], "exactly one MASTER"),
    ([{**GROUPS[0], "InstanceCount": 2}, *GROUPS[1:]], "MASTER instance group has 1 instance"),
    ([*GROUPS, {**GROUPS[1], "Name": "core2"}], "at most one CORE"),
    ([GROUPS[0], {**GROUPS[1], "BidPrice": "0.1"}], "BidPrice applies only to SPOT"),
    ([GROUPS[0], {**GROUPS[2], "Market": "RESERVED"}], "Market must be"),
])
def test_instance_group_rules(lab, groups, fragment):
    c, message = code({"InstanceGroups": groups})
    assert c == "ValidationException" and fragment in message


def test_groups_cluster_with_spot_task_nodes(lab):
    cluster = run({"InstanceGroups": GROUPS})["JobFlowId"]
    emr = boto3.client("emr")
    groups = {g["InstanceGroupType"]: g for g in emr.list_instance_groups(ClusterId=cluster)["InstanceGroups"]}
    assert groups["TASK"]["Market"] == "SPOT" and groups["CORE"]["Market"] == "ON_DEMAND"
    with pytest.raises(ClientError) as err:
        emr.list_instance_fleets(ClusterId=cluster)
    assert err.value.response["Error"]["Code"] == "InvalidRequestException"
    emr.terminate_job_flows(JobFlowIds=[cluster])


def test_fleets_are_kept_and_listed(lab):
    cluster = run({"InstanceFleets": FLEETS, "Ec2SubnetIds": ["subnet-1", "subnet-2"]})["JobFlowId"]
    emr = boto3.client("emr")
    fleets = {f["InstanceFleetType"]: f for f in emr.list_instance_fleets(ClusterId=cluster)["InstanceFleets"]}
    assert fleets["TASK"]["TargetSpotCapacity"] == 8
    assert [s["InstanceType"] for s in fleets["TASK"]["InstanceTypeSpecifications"]] == ["m5.2xlarge", "m5.4xlarge"]
    assert emr.describe_cluster(ClusterId=cluster)["Cluster"]["InstanceCollectionType"] == "INSTANCE_FLEET"
    with pytest.raises(ClientError) as err:
        emr.list_instance_groups(ClusterId=cluster)
    assert "mutually exclusive" in err.value.response["Error"]["Message"]
    emr.terminate_job_flows(JobFlowIds=[cluster])


@pytest.mark.parametrize("fleets, extra, fragment", [
    ([{**FLEETS[0], "TargetOnDemandCapacity": 2}, *FLEETS[1:]], {}, "target capacity of 1"),
    ([FLEETS[0], FLEETS[1], {**FLEETS[2], "InstanceTypeConfigs": [{"InstanceType": "m5.large"}] * 6}], {}, "1 to 5"),
    ([FLEETS[0], {**FLEETS[1], "InstanceTypeConfigs": [{"InstanceType": "m5.large", "BidPrice": "1",
                                                        "BidPriceAsPercentageOfOnDemandPrice": 50}]}], {}, "not both"),
    (FLEETS, {"ReleaseLabel": "emr-4.7.0"}, "4.8.0"),
])
def test_fleet_rules(lab, fleets, extra, fragment):
    c, message = code({"InstanceFleets": fleets}, **extra)
    assert c == "ValidationException" and fragment in message
