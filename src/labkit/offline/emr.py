"""EMR ``RunJobFlow`` checked as AWS checks it, and instance fleets kept.

moto accepts any ``Instances`` structure: the seed's configuration, which sets
``MasterInstanceType``/``SlaveInstanceType``/``InstanceCount`` *and* ``InstanceFleets``,
creates a cluster offline, while AWS refuses it: a cluster's instances are described in
exactly one of three ways (uniform instance groups from the three scalar fields, a list of
``InstanceGroups``, or a list of ``InstanceFleets``). moto also ignores ``InstanceFleets``
altogether. This module refuses what AWS refuses with AWS's code ``ValidationException``
(messages are the course's, naming the fix), keeps the fleets of the clusters it let
through and answers ``ListInstanceFleets`` for them; ``ListInstanceGroups`` on a fleet
cluster fails as on AWS.

Rules checked (EMR Management Guide, "Instance fleets" and "Instance groups"): one MASTER
group (1 or 3 instances) or fleet (target capacity 1); at most one CORE group or fleet;
at most 48 TASK groups or one TASK fleet; ``Market`` ``ON_DEMAND``/``SPOT`` and
``BidPrice`` only with ``SPOT``; at most 5 instance types per fleet (30 with an allocation
strategy); ``BidPrice`` and ``BidPriceAsPercentageOfOnDemandPrice`` not together; fleets
need release 4.8.0 or later (not 5.0.x).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from . import dispatch, on_reset, persistence
from .dispatch import AWSError

_lock = threading.Lock()
_fleets: dict[str, list[dict[str, Any]]] = {}  # cluster id -> fleets as ListInstanceFleets shows them
_pending: dict[str, list[dict[str, Any]]] = {}  # "fleets" -> those of the RunJobFlow being answered
persistence.keep_contents("emr instance fleets", _fleets)
SCALAR_FIELDS = ("MasterInstanceType", "SlaveInstanceType", "InstanceCount")
ROLES = ("MASTER", "CORE", "TASK")
MARKETS = ("ON_DEMAND", "SPOT")


@on_reset
def _reset() -> None:
    with _lock:
        _fleets.clear()
        _pending.clear()


def _bad(message: str) -> AWSError:
    return AWSError("ValidationException", message)


def _release(label: str | None) -> tuple[int, ...] | None:
    match = re.fullmatch(r"emr-(\d+)\.(\d+)\.(\d+)", label or "")
    return tuple(int(g) for g in match.groups()) if match else None


def _check_groups(groups: list[dict[str, Any]]) -> None:
    roles = [g.get("InstanceRole") for g in groups]
    for g in groups:
        where = f"Instance group {g.get('Name') or g.get('InstanceRole')!r}"
        if g.get("InstanceRole") not in ROLES:
            raise _bad(f"{where}: InstanceRole must be MASTER, CORE or TASK.")
        market = g.get("Market", "ON_DEMAND")
        if market not in MARKETS:
            raise _bad(f"{where}: Market must be ON_DEMAND or SPOT, not {market!r}.")
        if "BidPrice" in g and market != "SPOT":
            raise _bad(f"{where}: BidPrice applies only to SPOT instance groups.")
        if g.get("InstanceCount", 0) < 0:
            raise _bad(f"{where}: InstanceCount cannot be negative.")
    if roles.count("MASTER") != 1:
        raise _bad(f"A cluster has exactly one MASTER instance group ({roles.count('MASTER')} given).")
    master = groups[roles.index("MASTER")]
    if master.get("InstanceCount") not in (1, 3):
        raise _bad("The MASTER instance group has 1 instance, or 3 for a cluster with multiple primary nodes.")
    if roles.count("CORE") > 1:
        raise _bad("A cluster has at most one CORE instance group; add capacity with TASK groups.")
    if roles.count("TASK") > 48:
        raise _bad("A cluster has at most 48 TASK instance groups.")


def _check_fleets(fleets: list[dict[str, Any]], release: tuple[int, ...] | None) -> None:
    if release is not None and (release < (4, 8, 0) or release[:2] == (5, 0)):
        raise _bad("Instance fleets need Amazon EMR release 4.8.0 or later (not 5.0.x).")
    types = [f.get("InstanceFleetType") for f in fleets]
    for f in fleets:
        where = f"Instance fleet {f.get('Name') or f.get('InstanceFleetType')!r}"
        if f.get("InstanceFleetType") not in ROLES:
            raise _bad(f"{where}: InstanceFleetType must be MASTER, CORE or TASK.")
        configs = f.get("InstanceTypeConfigs") or []
        strategy = any(f.get("LaunchSpecifications", {}).get(k, {}).get("AllocationStrategy")
                       for k in ("OnDemandSpecification", "SpotSpecification"))
        limit = 30 if strategy else 5
        if not 1 <= len(configs) <= limit:
            raise _bad(f"{where}: give 1 to {limit} InstanceTypeConfigs ({len(configs)} given"
                       f"{'' if strategy else '; 30 are allowed with an allocation strategy'}).")
        for c in configs:
            if "BidPrice" in c and "BidPriceAsPercentageOfOnDemandPrice" in c:
                raise _bad(f"{where}, {c.get('InstanceType')}: give BidPrice or "
                           "BidPriceAsPercentageOfOnDemandPrice, not both.")
    if types.count("MASTER") != 1:
        raise _bad(f"A cluster has exactly one MASTER instance fleet ({types.count('MASTER')} given).")
    master = fleets[types.index("MASTER")]
    on_demand, spot = master.get("TargetOnDemandCapacity", 0), master.get("TargetSpotCapacity", 0)
    if sorted((on_demand, spot)) != [0, 1]:
        raise _bad("The MASTER instance fleet has a target capacity of 1: set TargetOnDemandCapacity=1 or "
                   "TargetSpotCapacity=1, and the other to 0.")
    for kind in ("CORE", "TASK"):
        if types.count(kind) > 1:
            raise _bad(f"A cluster has at most one {kind} instance fleet.")


@dispatch.validate("emr", "RunJobFlow")
def check_run_job_flow(params: dict[str, Any]) -> None:
    instances = params.get("Instances") or {}
    scalar = [k for k in SCALAR_FIELDS if k in instances]
    ways = [name for name, used in (("InstanceGroups", "InstanceGroups" in instances),
                                    ("InstanceFleets", "InstanceFleets" in instances),
                                    ("MasterInstanceType/SlaveInstanceType/InstanceCount", bool(scalar))) if used]
    if len(ways) > 1:
        raise _bad(f"Instances uses {' and '.join(ways)}: describe the cluster's instances in exactly one way. "
                   "Remove MasterInstanceType, SlaveInstanceType and InstanceCount when you give InstanceFleets "
                   "or InstanceGroups; instance fleets and instance groups cannot be mixed in one cluster.")
    if not ways:
        raise _bad("Instances must describe the cluster's nodes: InstanceGroups, InstanceFleets, or "
                   "MasterInstanceType with InstanceCount.")
    if "InstanceGroups" in instances:
        _check_groups(instances["InstanceGroups"])
    elif "InstanceFleets" in instances:
        _check_fleets(instances["InstanceFleets"], _release(params.get("ReleaseLabel")))
        for key in ("Ec2SubnetId", "Placement"):
            if key in instances and (key != "Placement" or "AvailabilityZone" in instances[key]):
                raise _bad(f"With instance fleets use Ec2SubnetIds and Placement.AvailabilityZones, not {key}"
                           f"{'.AvailabilityZone' if key == 'Placement' else ''}.")
    elif instances.get("InstanceCount", 1) < 1:
        raise _bad("InstanceCount must be at least 1.")
    with _lock:  # a failed request leaves nothing behind: the next validation overwrites it
        _pending["fleets"] = [dict(f) for f in instances.get("InstanceFleets") or []]


@dispatch.after("emr", "RunJobFlow")
def keep_fleets(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    with _lock:
        fleets = _pending.pop("fleets", [])
        if not fleets:
            return
        cluster = parsed["JobFlowId"]
        _fleets[cluster] = [{
            "Id": f"if-{cluster[2:]}{i:02d}",
            "Name": f.get("Name", f["InstanceFleetType"]),
            "Status": {"State": "RUNNING", "StateChangeReason": {}},
            "InstanceFleetType": f["InstanceFleetType"],
            "TargetOnDemandCapacity": f.get("TargetOnDemandCapacity", 0),
            "TargetSpotCapacity": f.get("TargetSpotCapacity", 0),
            "ProvisionedOnDemandCapacity": f.get("TargetOnDemandCapacity", 0),
            "ProvisionedSpotCapacity": f.get("TargetSpotCapacity", 0),
            "InstanceTypeSpecifications": [
                {k: v for k, v in c.items() if k in ("InstanceType", "WeightedCapacity", "BidPrice",
                                                      "BidPriceAsPercentageOfOnDemandPrice", "Configurations",
                                                      "EbsBlockDevices")} | {"WeightedCapacity": c.get("WeightedCapacity", 1)}
                for c in f.get("InstanceTypeConfigs", [])],
            **({"LaunchSpecifications": f["LaunchSpecifications"]} if "LaunchSpecifications" in f else {}),
        } for i, f in enumerate(fleets)]


@dispatch.after("emr", "DescribeCluster")
def fleet_collection_type(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    cluster = parsed.get("Cluster") or {}
    if cluster.get("Id") in _fleets:
        cluster["InstanceCollectionType"] = "INSTANCE_FLEET"


@dispatch.operation("emr", "ListInstanceFleets")
def list_instance_fleets(params: dict[str, Any]) -> dict[str, Any]:
    cluster = params["ClusterId"]
    if cluster not in _fleets:
        raise AWSError("InvalidRequestException", "Instance fleets and instance groups are mutually exclusive. "
                       "The EMR cluster specified in the request uses instance groups. The ListInstanceFleets "
                       "operation does not support clusters that use instance groups. Use the ListInstanceGroups "
                       "operation instead.")
    return {"InstanceFleets": _fleets[cluster]}


@dispatch.validate("emr", "ListInstanceGroups")
def groups_of_fleet_cluster(params: dict[str, Any]) -> None:
    if params.get("ClusterId") in _fleets:
        raise AWSError("InvalidRequestException", "Instance fleets and instance groups are mutually exclusive. "
                       "The EMR cluster specified in the request uses instance fleets. The ListInstanceGroups "
                       "operation does not support clusters that use instance fleets. Use the ListInstanceFleets "
                       "operation instead.")
