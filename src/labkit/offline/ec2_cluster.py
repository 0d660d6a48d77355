"""The EC2 side of a training cluster offline: DLAMI parameters, placement groups, EFA, capacity.

moto runs instances and launch templates but has no placement groups, no Deep Learning AMI
parameters, no notion of which types support EFA, and unlimited capacity. This engine adds:

- the DLAMI SSM public parameters of ``data/ec2/dlami.json`` (GetParameter,
  GetParametersByPath under ``/aws/service/deeplearning`` and ``/aws/service/neuron``), and
  their AMIs registered in EC2 so that DescribeImages knows them;
- CreatePlacementGroup, DescribePlacementGroups, DeletePlacementGroup (:class:`PlacementGroups`,
  with AWS's rules: strategies ``cluster``, ``spread``, ``partition``; partition count 1-7;
  a group cannot be deleted while it holds instances);
- RunInstances checks AWS makes: the placement group exists; a ``cluster`` group keeps all its
  instances in one Availability Zone; a ``spread`` group holds at most 7 running instances per
  zone; an ``efa`` network interface needs an instance type that supports EFA (``data/ec2/efa.json``);
- **a capacity stand-in** (``data/ec2/capacity.json``, not AWS data): scarce types have a fixed
  number of free instances per zone, so that ``InsufficientInstanceCapacity`` can be met and
  handled; running instances take capacity and terminating them frees it;
- metering: every instance is billed from launch to termination at its EC2 on-demand price
  (usage kind ``ec2:instance``).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import ACCOUNT_ID, REGION, dispatch, moto_state, on_reset, usage
from .dispatch import AWSError

DATA = Path(__file__).resolve().parents[3] / "data" / "ec2"
STRATEGIES = ("cluster", "spread", "partition")
SPREAD_MAX_PER_ZONE = 7
_lock = threading.Lock()
_open_usage: dict[str, usage.UsageEvent] = {}  # instance id -> its usage event, until it is terminated


def _load(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text())


def efa_types() -> dict[str, dict[str, Any]]:
    return _load("efa")["instance_types"]


def free_capacity() -> dict[str, dict[str, int]]:
    return _load("capacity")["free_instances"]


# --- DLAMI parameters ---------------------------------------------------------------------------

def load_dlami_parameters(parameters: Any, key: str) -> None:
    """Teach moto's SSM the DLAMI parameters (loaded on first use, as moto loads its own).

    Called by :mod:`labkit.offline.patches` from moto's ``ParameterDict`` whenever a
    parameter is looked up.
    """
    from moto.core.utils import utcnow
    from moto.ssm.models import Parameter

    if str(key or "").startswith(("/aws/service/deeplearning", "/aws/service/neuron")) and \
            not getattr(parameters, "labkit_dlami_loaded", False):
        parameters.labkit_dlami_loaded = True
        for item in _load("dlami")["parameters"]:
            # moto's stubs declare CloudFormation hooks abstract on Parameter; moto builds them just so
            defaultdict.__getitem__(parameters, item["name"]).append(Parameter(  # type: ignore[abstract]
                account_id=parameters.account_id, name=item["name"], value=item["value"], parameter_type="String",
                description=item["ami_name"], allowed_pattern=None, keyid=None, last_modified_date=utcnow(),
                version=1, data_type="aws:ec2:image"))
        _register_amis()


def _register_amis() -> None:
    from moto.ec2.models.amis import Ami

    backend = moto_state.backend("ec2")
    for item in _load("dlami")["parameters"]:
        if item["value"] not in backend.amis:
            backend.amis[item["value"]] = Ami(backend, ami_id=item["value"], name=item["ami_name"],
                                              description=item["ami_name"], architecture=item["architecture"],
                                              owner_id="898082745236", owner_alias="amazon", public=True,
                                              virtualization_type="hvm", root_device_type="ebs")


# --- placement groups ---------------------------------------------------------------------------

@dataclass
class PlacementGroup:
    name: str
    strategy: str
    group_id: str
    partition_count: int | None = None
    spread_level: str | None = None
    tags: list[dict[str, str]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"GroupName": self.name, "State": "available", "Strategy": self.strategy,
                               "GroupId": self.group_id, "Tags": self.tags,
                               "GroupArn": f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}:placement-group/{self.name}"}
        if self.partition_count:
            out["PartitionCount"] = self.partition_count
        if self.spread_level:
            out["SpreadLevel"] = self.spread_level
        return out


class PlacementGroups:
    """The account's placement groups (plain Python; the API below drives it)."""

    def __init__(self) -> None:
        self.groups: dict[str, PlacementGroup] = {}
        self._next = 0

    def create(self, name: str, strategy: str, partition_count: int | None = None, spread_level: str | None = None,
               tags: list[dict[str, str]] | None = None) -> PlacementGroup:
        if name in self.groups:
            raise AWSError("InvalidPlacementGroup.Duplicate", f"The Placement Group '{name}' already exists.")
        if strategy not in STRATEGIES:
            raise AWSError("InvalidParameterValue", f"Value ({strategy}) for parameter strategy is invalid. "
                           f"Valid values are {', '.join(STRATEGIES)}.")
        if partition_count is not None and (strategy != "partition" or not 1 <= partition_count <= 7):
            raise AWSError("InvalidParameterValue", "PartitionCount is valid only for the partition strategy, "
                           "from 1 to 7.")
        self._next += 1
        group = PlacementGroup(name, strategy, f"pg-{self._next:017x}",
                               partition_count if strategy == "partition" else None,
                               spread_level if strategy == "spread" else None, list(tags or []))
        self.groups[name] = group
        return group

    def get(self, name: str) -> PlacementGroup:
        if name not in self.groups:
            raise AWSError("InvalidPlacementGroup.Unknown", f"The Placement Group '{name}' is unknown.")
        return self.groups[name]

    def delete(self, name: str) -> None:
        self.get(name)
        if _instances(group=name):
            raise AWSError("InvalidPlacementGroup.InUse", f"The Placement Group '{name}' is in use and cannot be "
                           "deleted: terminate its instances first.")
        del self.groups[name]


groups = PlacementGroups()


def _instances(*, group: str | None = None, instance_type: str | None = None, zone: str | None = None) -> list[Any]:
    """moto's pending or running instances that match."""
    out = []
    for reservation in moto_state.backend("ec2").reservations.values():
        for instance in reservation.instances:
            if instance._state.name not in ("pending", "running"):
                continue
            if group is not None and getattr(instance, "labkit_placement_group", None) != group:
                continue
            if instance_type is not None and instance.instance_type != instance_type:
                continue
            if zone is not None and instance._placement.zone != zone:
                continue
            out.append(instance)
    return out


# --- RunInstances ----------------------------------------------------------------------------------

def _launch_template_data(params: dict[str, Any]) -> dict[str, Any]:
    spec = params.get("LaunchTemplate")
    if not spec:
        return {}
    backend = moto_state.backend("ec2")
    template = None
    if spec.get("LaunchTemplateId"):
        template = backend.launch_templates.get(spec["LaunchTemplateId"])
    elif spec.get("LaunchTemplateName"):
        template_id = backend.launch_template_name_to_ids.get(spec["LaunchTemplateName"])
        template = backend.launch_templates.get(template_id) if template_id else None
    if template is None:
        return {}
    version = spec.get("Version", "$Default")
    chosen = (template.latest_version() if version == "$Latest" else template.default_version() if version ==
              "$Default" else template.get_version(version))
    return dict(chosen.data) if chosen is not None else {}


def _zone(params: dict[str, Any], template: dict[str, Any], group: PlacementGroup | None) -> str:
    placement = {**(template.get("Placement") or {}), **(params.get("Placement") or {})}
    if placement.get("AvailabilityZone"):
        return placement["AvailabilityZone"]
    subnet_id = params.get("SubnetId") or next((n.get("SubnetId") for n in params.get("NetworkInterfaces") or
                                                 template.get("NetworkInterfaces") or [] if n.get("SubnetId")), None)
    if subnet_id:
        subnet = moto_state.backend("ec2").subnets_by_id.get(subnet_id) if hasattr(moto_state.backend("ec2"), "subnets_by_id") else None
        if subnet is None:
            for zone_subnets in moto_state.backend("ec2").subnets.values():
                if subnet_id in zone_subnets:
                    subnet = zone_subnets[subnet_id]
        if subnet is not None:
            return subnet.availability_zone
    if group is not None and group.strategy == "cluster":
        members = _instances(group=group.name)
        if members:
            return members[0]._placement.zone
    return REGION + "a"


def capacity_error(instance_type: str, zone: str, wanted: int) -> AWSError | None:
    """``InsufficientInstanceCapacity`` when fewer than ``wanted`` instances are free in ``zone``."""
    table = free_capacity().get(instance_type)
    if table is None:
        return None
    free = table.get(zone, 0) - len(_instances(instance_type=instance_type, zone=zone))
    if free >= wanted:
        return None
    others = sorted(z for z, n in table.items()
                    if z != zone and n - len(_instances(instance_type=instance_type, zone=z)) >= wanted)
    hint = (f"You can currently get {instance_type} capacity by not specifying an Availability Zone in your "
            f"request or choosing {', '.join(others)}." if others else "")
    return AWSError("InsufficientInstanceCapacity", f"We currently do not have sufficient {instance_type} capacity "
                    f"in the Availability Zone you requested ({zone}). Our system will be working on provisioning "
                    f"additional capacity. {hint}".strip(), 500)


@functools.cache
def known_instance_types() -> frozenset[str]:
    """EC2's instance types, as the service model lists them (moto accepts any name)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("ec2")
    return frozenset(model.shape_for("InstanceType").enum)


@dispatch.validate("ec2", "RunInstances")
def validate_run_instances(params: dict[str, Any]) -> None:
    template = _launch_template_data(params)
    instance_type = params.get("InstanceType") or template.get("InstanceType") or "m1.small"
    if instance_type not in known_instance_types():
        raise AWSError("InvalidParameterValue", f"Invalid value '{instance_type}' for InstanceType.")
    placement = {**(template.get("Placement") or {}), **(params.get("Placement") or {})}
    group = groups.get(placement["GroupName"]) if placement.get("GroupName") else None
    interfaces = params.get("NetworkInterfaces") or template.get("NetworkInterfaces") or []
    efa = [n for n in interfaces if n.get("InterfaceType") == "efa"]
    if efa:
        supported = efa_types()
        if instance_type not in supported:
            raise AWSError("InvalidParameterCombination", f"EFA interfaces are not supported on {instance_type}. "
                           f"Choose an instance type that supports EFA (p4d.24xlarge, p5.48xlarge, trn1.32xlarge, "
                           f"g5.48xlarge...), or use InterfaceType 'interface'.")
        if len(efa) > supported[instance_type]["max_efa"]:
            raise AWSError("InvalidParameterValue", f"{instance_type} supports at most "
                           f"{supported[instance_type]['max_efa']} EFA interface(s); the request has {len(efa)}.")
    if params.get("DryRun"):
        return
    count = int(params.get("MinCount", 1))
    zone = _zone(params, template, group)
    if group is not None:
        members = _instances(group=group.name)
        if group.strategy == "cluster" and members and members[0]._placement.zone != zone:
            raise AWSError("InvalidParameterCombination", f"The cluster placement group '{group.name}' has instances "
                           f"in {members[0]._placement.zone}; all its instances must be in one Availability Zone.")
        if group.strategy == "spread" and len([m for m in members if m._placement.zone == zone]) + count > \
                SPREAD_MAX_PER_ZONE:
            raise AWSError("InsufficientInstanceCapacity", f"A spread placement group holds at most "
                           f"{SPREAD_MAX_PER_ZONE} running instances per Availability Zone.", 500)
    error = capacity_error(instance_type, zone, count)
    if error is not None:
        raise error


@dispatch.after("ec2", "RunInstances")
def _after_run_instances(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    template = _launch_template_data(params)
    placement = {**(template.get("Placement") or {}), **(params.get("Placement") or {})}
    market = (params.get("InstanceMarketOptions") or template.get("InstanceMarketOptions") or {}).get("MarketType")
    interfaces = params.get("NetworkInterfaces") or template.get("NetworkInterfaces") or []
    efa = {int(n.get("DeviceIndex", 0)) for n in interfaces if n.get("InterfaceType") == "efa"}
    group = groups.groups.get(placement.get("GroupName", ""))
    zone = _zone(params, template, None)  # moto ignores a launch template's subnet when it places instances
    by_id = {i.id: i for i in _instances()}
    for item in parsed.get("Instances", []):
        instance = by_id.get(item["InstanceId"])
        if instance is not None:
            instance.labkit_efa = efa  # moto records every interface as "interface"
            _mark_efa(item, efa)
            if zone != instance._placement.zone and (group is None or group.strategy == "cluster"):
                instance._placement.zone = zone
                item.setdefault("Placement", {})["AvailabilityZone"] = zone
        if placement.get("GroupName") and instance is not None:
            instance.labkit_placement_group = placement["GroupName"]
            item.setdefault("Placement", {})["GroupName"] = placement["GroupName"]
        with _lock:
            _open_usage[item["InstanceId"]] = usage.record(
                "ec2:instance", item["InstanceId"], instance_type=item["InstanceType"], instance_count=1,
                start=time.time(), end=None, spot=market == "spot")


def _mark_efa(item: dict[str, Any], devices: set[int]) -> None:
    for interface in item.get("NetworkInterfaces", []):
        if int((interface.get("Attachment") or {}).get("DeviceIndex", 0)) in devices:
            interface["InterfaceType"] = "efa"


@dispatch.after("ec2", "TerminateInstances")
def _after_terminate(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    with _lock:
        for instance_id in params.get("InstanceIds") or []:
            event = _open_usage.pop(instance_id, None)
            if event is not None:
                event["end"] = time.time()


@dispatch.after("ec2", "DescribeInstances")
def _after_describe(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    by_id = {i.id: i for r in moto_state.backend("ec2").reservations.values() for i in r.instances}
    for reservation in parsed.get("Reservations", []):
        for item in reservation.get("Instances", []):
            instance = by_id.get(item["InstanceId"])
            group = getattr(instance, "labkit_placement_group", None)
            if group:
                item.setdefault("Placement", {})["GroupName"] = group
            _mark_efa(item, getattr(instance, "labkit_efa", set()))


# --- the placement group API --------------------------------------------------------------------------

@dispatch.operation("ec2", "CreatePlacementGroup")
def create_placement_group(params: dict[str, Any]) -> dict[str, Any]:
    tags = [t for spec in params.get("TagSpecifications") or [] for t in spec.get("Tags", [])]
    if params.get("DryRun"):
        raise AWSError("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412)
    group = groups.create(params["GroupName"], params.get("Strategy", ""), params.get("PartitionCount"),
                          params.get("SpreadLevel"), tags)
    return {"PlacementGroup": group.describe()}


@dispatch.operation("ec2", "DescribePlacementGroups")
def describe_placement_groups(params: dict[str, Any]) -> dict[str, Any]:
    names = params.get("GroupNames")
    chosen = [groups.get(n) for n in names] if names else list(groups.groups.values())
    ids = params.get("GroupIds")
    if ids:
        chosen = [g for g in chosen if g.group_id in ids]
    for f in params.get("Filters") or []:
        key = {"group-name": "name", "strategy": "strategy", "state": None}.get(f["Name"])
        if key:
            chosen = [g for g in chosen if getattr(g, key) in f["Values"]]
    return {"PlacementGroups": [g.describe() for g in chosen]}


@dispatch.operation("ec2", "DeletePlacementGroup")
def delete_placement_group(params: dict[str, Any]) -> dict[str, Any]:
    groups.delete(params["GroupName"])
    return {}


@on_reset
def _reset() -> None:
    groups.groups.clear()
    _open_usage.clear()
