"""Offline EKS: moto's clusters and managed node groups, with the checks AWS makes.

moto records EKS clusters and node groups but accepts requests AWS refuses, and reports
defaults of 2021 (Kubernetes 1.19, AL2 AMIs). This module adds, as validators before moto
records a request:

- ``CreateCluster``: the Kubernetes version must be one EKS still supports (``VERSIONS``: past
  the end of extended support EKS refuses it); the subnets must exist and lie in at least two
  Availability Zones; the cluster role must exist and trust ``eks.amazonaws.com``.
- ``CreateNodegroup``: scaling sizes consistent (``minSize <= desiredSize <= maxSize``); taint
  effects in EKS's spelling (``NO_SCHEDULE``, ``NO_EXECUTE``, ``PREFER_NO_SCHEDULE``: the
  Kubernetes spelling ``NoSchedule`` is refused), at most 50 taints; Kubernetes label syntax;
  ``capacityType`` and ``amiType`` from EKS's lists, no AL2 AMI for Kubernetes 1.33 or later,
  an architecture that suits the instance types; instance types that exist; the node role must
  exist, trust ``ec2.amazonaws.com`` and carry the worker-node policies.
- ``UpdateNodegroupConfig``: the resulting sizes consistent, as above.

and, after moto answered, the defaults AWS applies: a node group runs the cluster's version and
an AMI type chosen from its instance types (AL2023 standard, NVIDIA or Neuron), disk size 20 GiB.

What does not exist offline: the Kubernetes API server. A cluster is ``ACTIVE`` at once and has
an endpoint, but nothing listens there and no node joins; ``labkit.checks.kubernetes`` applies
the scheduler's rules to the node groups instead.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from urllib.parse import unquote

from . import ACCOUNT_ID, REGION, dispatch, moto_state
from .dispatch import AWSError

# EKS's Kubernetes versions: (released on EKS, end of standard support, end of extended support).
# Source: the EKS user guide, "Understand the Kubernetes version lifecycle on EKS", as tabulated by
# endoflife.date/amazon-eks (read 2026-12-02). 1.36 is listed by the EKS user guide; its dates
# were not in the copy read, so it is taken as in standard support.
VERSIONS: dict[str, tuple[str, str | None, str | None]] = {
    "1.28": ("2023-09-26", "2024-11-26", "2025-11-26"),
    "1.29": ("2024-01-23", "2025-03-23", "2026-03-23"),
    "1.30": ("2024-05-23", "2025-07-23", "2026-07-23"),
    "1.31": ("2024-09-26", "2025-11-26", "2026-11-26"),
    "1.32": ("2025-01-25", "2026-03-23", "2027-03-23"),
    "1.33": ("2025-05-28", "2026-07-29", "2027-07-29"),
    "1.34": ("2025-10-06", "2026-12-02", "2027-12-02"),
    "1.35": ("2026-01-28", "2027-03-27", "2028-03-27"),
    "1.36": ("2026", None, None),
}
DEFAULT_VERSION = "1.35"
CAPACITY_TYPES = ("ON_DEMAND", "SPOT", "CAPACITY_BLOCK")
TAINT_EFFECTS = ("NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE")
K8S_EFFECTS = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE", "PreferNoSchedule": "PREFER_NO_SCHEDULE"}
WORKER_POLICIES = ("arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
                   "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly")
ARM_FAMILIES = re.compile(r"^(a1|[a-z]+[0-9]+g[a-z]*)\.")  # m7g, c6gn, r8g, t4g, g5g...
NEURON_FAMILIES = ("trn1", "trn1n", "trn2", "inf1", "inf2")
NVIDIA_FAMILIES = ("p3", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "p6", "g4dn", "g5", "g6", "g6e", "gr6")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def version_status(version: str, today: str | None = None) -> str:
    """``standard``, ``extended`` or ``unsupported`` (``unknown`` for a version EKS never had)."""
    if version not in VERSIONS:
        return "unknown"
    today = today or _today()
    _, standard_end, extended_end = VERSIONS[version]
    if extended_end and today >= extended_end:
        return "unsupported"
    if standard_end and today >= standard_end:
        return "extended"
    return "standard"


def _invalid(message: str, **extra: Any) -> AWSError:
    return AWSError("InvalidParameterException", message, 400, **extra)


# --- lookups in the rest of the offline account ----------------------------------------------------


def _role(arn: str) -> dict[str, Any] | None:
    import boto3
    from botocore.exceptions import ClientError

    name = arn.rsplit("/", 1)[-1]
    try:
        return boto3.client("iam", region_name=REGION).get_role(RoleName=name)["Role"]
    except ClientError:
        return None


def _trusts(role: dict[str, Any], service: str) -> bool:
    doc = role.get("AssumeRolePolicyDocument") or {}
    if isinstance(doc, str):
        doc = json.loads(unquote(doc))
    for stmt in doc.get("Statement") or []:
        principals = (stmt.get("Principal") or {}).get("Service") or []
        principals = [principals] if isinstance(principals, str) else principals
        actions = stmt.get("Action") or []
        actions = [actions] if isinstance(actions, str) else actions
        if stmt.get("Effect") == "Allow" and service in principals and any(a in ("sts:AssumeRole", "sts:*", "*")
                                                                          for a in actions):
            return True
    return False


def _check_role(arn: str, service: str) -> dict[str, Any]:
    role = _role(arn)
    if role is None or not _trusts(role, service):
        raise _invalid(f"Role with arn: {arn}, could not be assumed because it does not exist or the trusted "
                       f"entity is not correct (its trust policy must allow {service} to sts:AssumeRole)")
    return role


def _subnet_zones(subnet_ids: list[str]) -> dict[str, str]:
    import boto3
    from botocore.exceptions import ClientError

    ec2 = boto3.client("ec2", region_name=REGION)
    zones = {}
    for sid in subnet_ids:
        try:
            zones[sid] = ec2.describe_subnets(SubnetIds=[sid])["Subnets"][0]["AvailabilityZone"]
        except (ClientError, IndexError):
            raise _invalid(f"The subnet ID '{sid}' does not exist (Service: AmazonEC2; Error Code: "
                           "InvalidSubnetID.NotFound)") from None
    return zones


# AWS managed policies an EKS set-up attaches. moto's IAM leaves AWS managed policies out unless told
# to load all ~1,300 of them; these few are added from moto's copy of AWS's documents when first used.
EKS_MANAGED_POLICIES = ("AmazonEKSClusterPolicy", "AmazonEKSServicePolicy", "AmazonEKSWorkerNodePolicy",
                        "AmazonEC2ContainerRegistryReadOnly", "AmazonEKS_CNI_Policy", "AmazonEBSCSIDriverPolicy",
                        "AmazonEFSCSIDriverPolicy", "AmazonSSMManagedInstanceCore", "AmazonEKSVPCResourceController")


@dispatch.validate("iam", "AttachRolePolicy")
def _ensure_managed_policy(params: dict[str, Any]) -> None:
    arn = str(params.get("PolicyArn", ""))
    name = arn.rsplit("/", 1)[-1]
    if not arn.startswith("arn:aws:iam::aws:policy/") or name not in EKS_MANAGED_POLICIES:
        return
    from moto.iam.aws_managed_policies import aws_managed_policies_data
    from moto.iam.models import AWSManagedPolicy

    backend = moto_state.backend("iam")
    if arn in backend.managed_policies:
        return
    data = json.loads(aws_managed_policies_data).get(name)
    if data is not None:
        policy = AWSManagedPolicy.from_data(name, ACCOUNT_ID, "us-east-1", data)
        backend.managed_policies[policy.arn] = policy


def _cluster(name: str) -> Any:
    return moto_state.backend("eks").clusters.get(name)


# --- CreateCluster -----------------------------------------------------------------------------------


@dispatch.validate("eks", "CreateCluster")
def _create_cluster(params: dict[str, Any]) -> None:
    version = params.get("version") or DEFAULT_VERSION
    status = version_status(version)
    if status in ("unknown", "unsupported"):
        supported = ", ".join(v for v in VERSIONS if version_status(v) in ("standard", "extended"))
        raise _invalid(f"unsupported Kubernetes version {version}. Supported versions: {supported} "
                       "(versions past their end of extended support cannot be created)")
    subnets = list((params.get("resourcesVpcConfig") or {}).get("subnetIds") or [])
    if len(set(_subnet_zones(subnets).values())) < 2:
        raise _invalid("Subnets specified must be in at least two different AZs")
    _check_role(params["roleArn"], "eks.amazonaws.com")


@dispatch.after("eks", "CreateCluster")
def _cluster_defaults(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    cluster = _cluster(params["name"])
    version = params.get("version") or DEFAULT_VERSION
    if cluster is not None:
        cluster.version = version
    parsed.get("cluster", {})["version"] = version


# --- CreateNodegroup ---------------------------------------------------------------------------------


def _scaling_problem(scaling: dict[str, int]) -> str | None:
    low, want, high = scaling.get("minSize"), scaling.get("desiredSize"), scaling.get("maxSize")
    if low is not None and high is not None and low > high:
        return "minSize can't be greater than maxSize"
    if low is not None and want is not None and low > want:
        return "minSize can't be greater than desiredSize"
    if want is not None and high is not None and want > high:
        return "desiredSize can't be greater than maxSize"
    return None


def _label_problems(labels: dict[str, str]) -> list[str]:
    out = []
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if not LABEL_NAME.match(name) or len(name) > 63 or (prefix and not DNS_SUBDOMAIN.match(prefix)):
            out.append(f"label key {key!r}")
        if value and (len(value) > 63 or not LABEL_NAME.match(value)):
            out.append(f"label value {value!r} (of {key})")
    return out


def default_ami_type(instance_types: list[str]) -> str:
    """The AMI type EKS picks when a request names none (AL2023 for Kubernetes 1.30 and later)."""
    family = instance_types[0].split(".")[0] if instance_types else "t3"
    arm = bool(ARM_FAMILIES.match(instance_types[0])) if instance_types else False
    if family in NEURON_FAMILIES:
        return "AL2023_x86_64_NEURON"
    if family in NVIDIA_FAMILIES:
        return "AL2023_ARM_64_NVIDIA" if arm else "AL2023_x86_64_NVIDIA"
    return "AL2023_ARM_64_STANDARD" if arm else "AL2023_x86_64_STANDARD"


def _ami_types() -> list[str]:
    from botocore.session import get_session

    return list(get_session().get_service_model("eks").shape_for("AMITypes").enum)


def _instance_types() -> frozenset[str]:
    from .pricing import _ec2_instance_types

    return _ec2_instance_types()


@dispatch.validate("eks", "CreateNodegroup")
def _create_nodegroup(params: dict[str, Any]) -> None:
    cluster = _cluster(params["clusterName"])
    if cluster is None:
        return  # moto answers ResourceNotFoundException
    problem = _scaling_problem(params.get("scalingConfig") or {})
    if problem:
        raise _invalid(problem, clusterName=params["clusterName"], nodegroupName=params["nodegroupName"])
    taints = params.get("taints") or []
    if len(taints) > 50:
        raise _invalid("A node group can have at most 50 taints")
    for t in taints:
        effect = t.get("effect")
        if effect not in TAINT_EFFECTS:
            hint = (f" The EKS API spells Kubernetes' {effect} as {K8S_EFFECTS[effect]}."
                    if effect in K8S_EFFECTS else "")
            raise _invalid(f"Taint effect {effect!r} is not valid: use one of {', '.join(TAINT_EFFECTS)}.{hint}")
        if not t.get("key"):
            raise _invalid("Every taint needs a key")
    bad = _label_problems(dict(params.get("labels") or {}))
    if bad:
        raise _invalid(f"Invalid Kubernetes labels: {', '.join(bad)}. Keys are an optional DNS prefix and '/' "
                       "then a name of at most 63 alphanumerics, '-', '_', '.'; values the same")
    capacity = params.get("capacityType")
    if capacity and capacity not in CAPACITY_TYPES:
        raise _invalid(f"capacityType {capacity!r} is not valid: use one of {', '.join(CAPACITY_TYPES)}")
    types = list(params.get("instanceTypes") or [])
    unknown = [t for t in types if t not in _instance_types()]
    if unknown:
        raise _invalid(f"Instance type(s) {unknown} do not exist in EC2"
                       + (" (node groups take EC2 names, without the 'ml.' of SageMaker)" if any(
                           t.startswith("ml.") for t in unknown) else ""))
    version = params.get("version") or cluster.version
    ami = params.get("amiType")
    if ami:
        if ami not in _ami_types():
            raise _invalid(f"amiType {ami!r} is not valid: use one of {', '.join(_ami_types())}")
        if ami.startswith("AL2_") and version in VERSIONS and tuple(map(int, version.split("."))) >= (1, 33):
            raise _invalid(f"AMI type {ami} is not supported for Kubernetes {version}: EKS publishes no Amazon "
                           "Linux 2 AMIs for 1.33 and later; use an AL2023 or Bottlerocket AMI type")
        arm = "ARM" in ami
        mismatched = [t for t in types if bool(ARM_FAMILIES.match(t)) != arm]
        if mismatched and not ami.startswith(("CUSTOM", "WINDOWS")):
            raise _invalid(f"{mismatched} is not a valid instance type for requested amiType {ami}")
    role = _check_role(params["nodeRole"], "ec2.amazonaws.com")
    _check_worker_policies(role)
    if params.get("subnets"):
        _subnet_zones(list(params["subnets"]))


def _check_worker_policies(role: dict[str, Any]) -> None:
    import boto3

    attached = boto3.client("iam", region_name=REGION).list_attached_role_policies(RoleName=role["RoleName"])
    arns = {p["PolicyArn"] for p in attached["AttachedPolicies"]}
    missing = [p for p in WORKER_POLICIES if p not in arns]
    if missing:
        raise _invalid("The provided role doesn't have the Amazon EKS Managed Policies associated with it. Please "
                       f"ensure the following policies [{', '.join(WORKER_POLICIES)}] are attached")


@dispatch.after("eks", "CreateNodegroup")
def _nodegroup_defaults(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    cluster = _cluster(params["clusterName"])
    group = cluster.nodegroups.get(params["nodegroupName"]) if cluster is not None else None
    fixes = {"version": params.get("version") or (cluster.version if cluster is not None else DEFAULT_VERSION),
             "amiType": params.get("amiType") or default_ami_type(list(params.get("instanceTypes") or ["t3.medium"])),
             "diskSize": int(params.get("diskSize") or 20)}
    if params.get("launchTemplate"):
        fixes.pop("diskSize")
    if group is not None:
        group.version, group.ami_type = fixes["version"], fixes["amiType"]
        if "diskSize" in fixes:
            group.disk_size = fixes["diskSize"]
        if not params.get("remoteAccess"):
            group.remote_access = None
    parsed.get("nodegroup", {}).update(fixes)
    if not params.get("remoteAccess"):
        parsed.get("nodegroup", {}).pop("remoteAccess", None)


@dispatch.after("eks", "DescribeNodegroup")
def _describe_nodegroup(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    group = parsed.get("nodegroup", {})
    if group.get("remoteAccess") is None:
        group.pop("remoteAccess", None)
    if isinstance(group.get("diskSize"), str):
        group["diskSize"] = int(group["diskSize"])


# --- UpdateNodegroupConfig ---------------------------------------------------------------------------


@dispatch.validate("eks", "UpdateNodegroupConfig")
def _update_nodegroup(params: dict[str, Any]) -> None:
    cluster = _cluster(params["clusterName"])
    group = cluster.nodegroups.get(params["nodegroupName"]) if cluster is not None else None
    if group is None or not params.get("scalingConfig"):
        return
    merged = {**group.scaling_config, **params["scalingConfig"]}
    low, want, high = merged.get("minSize"), merged.get("desiredSize"), merged.get("maxSize")
    if low is not None and want is not None and low > want:
        raise _invalid(f"Minimum capacity {low} can't be greater than desired size {want}")
    if want is not None and high is not None and want > high:
        raise _invalid(f"Desired capacity {want} can't be greater than max size {high}")
    if low is not None and high is not None and low > high:
        raise _invalid(f"Minimum capacity {low} can't be greater than max size {high}")
    for t in (params.get("taints") or {}).get("addOrUpdateTaints") or []:
        if t.get("effect") not in TAINT_EFFECTS:
            raise _invalid(f"Taint effect {t.get('effect')!r} is not valid: use one of {', '.join(TAINT_EFFECTS)}")
