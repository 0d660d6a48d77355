"""Nodes: what a node of a managed node group, an eksctl node group or a Karpenter NodePool would look
like (labels, taints, allocatable resources).

Part of :mod:`labkit.checks.kubernetes`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .quantities import EKS_EFFECTS, GPU, NEURON, NEURON_CORE, ManifestError

# --- nodes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceShape:
    """What an instance type brings to a node (from EC2 DescribeInstanceTypes or the catalogue)."""

    instance_type: str
    vcpus: int
    memory_mib: int
    gpus: int = 0
    gpu_name: str = ""
    neuron_devices: int = 0
    neuron_cores: int = 0
    max_enis: int = 0
    ips_per_eni: int = 0
    source: str = ""

    @property
    def max_pods(self) -> int:
        """The EKS AMIs' default: ENIs x (IPv4 addresses per ENI - 1) + 2 (eni-max-pods.txt)."""
        if not self.max_enis:
            return 110
        return self.max_enis * (self.ips_per_eni - 1) + 2


def shape_from_ec2(info: dict[str, Any]) -> InstanceShape:
    """An :class:`InstanceShape` from one item of ``ec2.describe_instance_types()['InstanceTypes']``."""
    gpus = (info.get("GpuInfo") or {}).get("Gpus") or []
    neuron = (info.get("NeuronInfo") or {}).get("NeuronDevices") or []
    net = info.get("NetworkInfo") or {}
    cards = net.get("NetworkCards") or []
    # The VPC CNI uses the ENIs of the default network card (p4d: 15 of its 60): eni-max-pods.txt.
    enis = int((cards[0].get("MaximumNetworkInterfaces") if cards else None) or net.get("MaximumNetworkInterfaces") or 0)
    return InstanceShape(
        instance_type=info["InstanceType"], vcpus=int(info["VCpuInfo"]["DefaultVCpus"]),
        memory_mib=int(info["MemoryInfo"]["SizeInMiB"]), gpus=sum(int(g.get("Count", 0)) for g in gpus),
        gpu_name=gpus[0].get("Name", "") if gpus else "",
        neuron_devices=sum(int(d.get("Count", 0)) for d in neuron),
        neuron_cores=sum(int(d.get("Count", 0)) * int((d.get("CoreInfo") or {}).get("Count", 0)) for d in neuron),
        max_enis=enis, ips_per_eni=int(net.get("Ipv4AddressesPerInterface") or 0),
        source="EC2 DescribeInstanceTypes")


# ENI limits of the types the catalogue has and EC2's offline instance list lacks (p3), from
# the EC2 documentation's "IP addresses per network interface per instance type" table.
_ENI_LIMITS = {"p3.2xlarge": (4, 15), "p3.8xlarge": (8, 30), "p3.16xlarge": (8, 30)}


def shape_from_catalogue(instance_type: str) -> InstanceShape:
    """An :class:`InstanceShape` from ``data/pricing/ec2.json`` (vCPUs, memory, accelerators)."""
    from ...cost import catalogue

    specs = catalogue.load().instance_specs(instance_type)
    acc, count = str(specs.get("accelerator") or ""), int(specs.get("accelerators") or 0)
    neuron = acc.startswith("AWS")
    enis, ips = _ENI_LIMITS.get(instance_type, (0, 0))
    return InstanceShape(instance_type=instance_type, vcpus=int(specs["vcpu"]),
                         memory_mib=int(float(specs["memory_gib"]) * 1024),
                         gpus=0 if neuron else count, gpu_name=acc.replace("NVIDIA ", "") if not neuron else "",
                         neuron_devices=count if neuron else 0, neuron_cores=2 * count if neuron else 0,
                         max_enis=enis, ips_per_eni=ips, source="data/pricing/ec2.json")


def instance_shapes(instance_types: list[str], ec2: Any = None) -> dict[str, InstanceShape]:
    """Shapes of ``instance_types``: EC2 DescribeInstanceTypes first, the catalogue for what it lacks."""
    out: dict[str, InstanceShape] = {}
    wanted = sorted(set(instance_types))
    if ec2 is not None:
        for itype in wanted:
            try:
                found = ec2.describe_instance_types(InstanceTypes=[itype])["InstanceTypes"]
            except Exception:  # noqa: BLE001 - an unknown type is looked up in the catalogue below
                found = []
            if found:
                out[itype] = shape_from_ec2(found[0])
    for itype in wanted:
        if itype not in out:
            out[itype] = shape_from_catalogue(itype)
    return out


def allocatable(shape: InstanceShape, device_plugins: bool = True) -> dict[str, Decimal]:
    """Allocatable resources of a node of ``shape`` as the EKS-optimised AMIs configure kubelet.

    kube-reserved CPU: 6% of the first core, 1% of the second, 0.5% of the next two, 0.25% of
    the rest; kube-reserved memory: 255 MiB + 11 MiB per pod of ``max_pods``; eviction
    threshold ``memory.available<100Mi``. GPUs and Neuron devices appear once the NVIDIA and
    Neuron device plugins run (``device_plugins``).
    """
    millicores = shape.vcpus * 1000
    reserved = 0.0
    for start, end, share in ((0, 1000, 0.06), (1000, 2000, 0.01), (2000, 4000, 0.005), (4000, 10**9, 0.0025)):
        reserved += max(0, min(millicores, end) - start) * share
    memory_reserved_mib = 255 + 11 * shape.max_pods + 100
    out = {"cpu": Decimal(millicores - int(reserved)) / 1000,
           "memory": Decimal((shape.memory_mib - memory_reserved_mib) * 2**20),
           "pods": Decimal(shape.max_pods)}
    if device_plugins and shape.gpus:
        out[GPU] = Decimal(shape.gpus)
    if device_plugins and shape.neuron_devices:
        out[NEURON] = Decimal(shape.neuron_devices)
        out[NEURON_CORE] = Decimal(shape.neuron_cores)
    return out


@dataclass
class NodeTemplate:
    """A node that a node group or NodePool would start: what the scheduler would see."""

    source: str  # node group or NodePool name
    instance_type: str
    labels: dict[str, str]
    taints: list[dict[str, str]]
    allocatable: dict[str, Decimal]
    capacity_type: str = "ON_DEMAND"

    @property
    def name(self) -> str:
        return f"{self.source}/{self.instance_type}"


def _taints(taints: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    return [{"key": t["key"], "value": str(t.get("value") or ""),
             "effect": EKS_EFFECTS.get(t.get("effect", ""), t.get("effect", ""))} for t in taints or []]


def _templates(source: str, instance_types: list[str], labels: dict[str, str], taints: list[dict[str, str]],
               capacity_type: str, shapes: dict[str, InstanceShape], label_key: str) -> list[NodeTemplate]:
    out = []
    for itype in instance_types:
        shape = shapes[itype]
        node_labels = {"kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux",
                       "node.kubernetes.io/instance-type": itype, "topology.kubernetes.io/region": "us-east-1",
                       label_key: source, **labels}
        if label_key == "eks.amazonaws.com/nodegroup":
            node_labels["eks.amazonaws.com/capacityType"] = capacity_type
        out.append(NodeTemplate(source, itype, node_labels, taints, allocatable(shape), capacity_type))
    return out


def templates_from_nodegroup(nodegroup: dict[str, Any], shapes: dict[str, InstanceShape]) -> list[NodeTemplate]:
    """Node templates of an EKS managed node group (``eks.describe_nodegroup()['nodegroup']``)."""
    return _templates(nodegroup["nodegroupName"], list(nodegroup.get("instanceTypes") or ["t3.medium"]),
                      dict(nodegroup.get("labels") or {}), _taints(nodegroup.get("taints")),
                      nodegroup.get("capacityType", "ON_DEMAND"), shapes, "eks.amazonaws.com/nodegroup")


def templates_from_eksctl(node_group: dict[str, Any], shapes: dict[str, InstanceShape]) -> list[NodeTemplate]:
    """Node templates of one entry of an eksctl ClusterConfig's ``managedNodeGroups``."""
    types = node_group.get("instanceTypes") or ([node_group["instanceType"]] if node_group.get("instanceType") else [])
    return _templates(node_group["name"], list(types or ["m5.large"]), dict(node_group.get("labels") or {}),
                      _taints(node_group.get("taints")), "SPOT" if node_group.get("spot") else "ON_DEMAND", shapes,
                      "eks.amazonaws.com/nodegroup")


def karpenter_labels(shape: InstanceShape) -> dict[str, str]:
    """The well-known labels Karpenter (AWS provider) puts on a node of this instance type."""
    family, _, size = shape.instance_type.partition(".")
    category = re.match(r"^[a-z]+", family).group(0)  # type: ignore[union-attr]
    generation = re.search(r"[0-9]+", family)
    labels = {"node.kubernetes.io/instance-type": shape.instance_type, "kubernetes.io/arch": "amd64",
              "kubernetes.io/os": "linux", "karpenter.k8s.aws/instance-family": family,
              "karpenter.k8s.aws/instance-category": category, "karpenter.k8s.aws/instance-size": size,
              "karpenter.k8s.aws/instance-generation": generation.group(0) if generation else "",
              "karpenter.k8s.aws/instance-cpu": str(shape.vcpus),
              "karpenter.k8s.aws/instance-memory": str(shape.memory_mib)}
    if shape.gpus:
        labels.update({"karpenter.k8s.aws/instance-gpu-count": str(shape.gpus),
                       "karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia",
                       "karpenter.k8s.aws/instance-gpu-name": shape.gpu_name.lower()})
    if shape.neuron_devices:
        labels.update({"karpenter.k8s.aws/instance-accelerator-count": str(shape.neuron_devices),
                       "karpenter.k8s.aws/instance-accelerator-manufacturer": "aws",
                       "karpenter.k8s.aws/instance-accelerator-name":
                           "trainium" if shape.instance_type.startswith("trn") else "inferentia"})
    return labels


def _requirement_matches(req: dict[str, Any], labels: dict[str, str]) -> bool:
    key, op, values = str(req.get("key", "")), req.get("operator"), list(req.get("values") or [])
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        try:
            have, want = int(labels[key]), int(values[0])
        except (KeyError, ValueError, IndexError):
            return False
        return have > want if op == "Gt" else have < want
    raise ManifestError(f"node selector operator {op!r} is not one of In, NotIn, Exists, DoesNotExist, Gt, Lt")


def templates_from_nodepool(nodepool: dict[str, Any], shapes: dict[str, InstanceShape]) -> list[NodeTemplate]:
    """Nodes a Karpenter NodePool may launch: each instance type of ``shapes`` its requirements allow.

    ``shapes`` is the universe of instance types Karpenter could choose from (on AWS: every type
    the region offers; here: what the caller passes). Each allowed capacity type gives a template.
    """
    spec = (nodepool.get("spec") or {}).get("template") or {}
    reqs = (spec.get("spec") or {}).get("requirements") or []
    labels = dict((spec.get("metadata") or {}).get("labels") or {})
    taints = _taints((spec.get("spec") or {}).get("taints"))
    name = (nodepool.get("metadata") or {}).get("name", "nodepool")
    capacity = next((r.get("values") or [] for r in reqs if r.get("key") == "karpenter.sh/capacity-type"
                     and r.get("operator") == "In"), ["on-demand"])
    out = []
    for shape in shapes.values():
        for cap in capacity:
            node_labels = {**karpenter_labels(shape), **labels, "karpenter.sh/capacity-type": cap,
                           "karpenter.sh/nodepool": name}
            if all(_requirement_matches(r, node_labels) for r in reqs):
                out.append(NodeTemplate(name, shape.instance_type, node_labels, taints, allocatable(shape),
                                        "SPOT" if cap == "spot" else "ON_DEMAND"))
    return out
