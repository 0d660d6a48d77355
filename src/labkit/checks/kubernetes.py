"""Judge Kubernetes manifests and pod placement the way the API server and kube-scheduler do.

No Kubernetes cluster runs offline: the EKS control plane is emulated (moto plus
:mod:`labkit.offline.eks`), pods are never scheduled. This module applies the rules instead:

- **Schema validity** (:func:`validate_manifest`): built-in kinds against Kubernetes' published
  OpenAPI schemas (``kubernetes-validate``, strict: unknown fields are errors, as ``kubectl``'s
  default field validation makes them); custom resources (PyTorchJob, Karpenter NodePool and
  EC2NodeClass) against their CRDs' ``openAPIV3Schema`` in ``data/k8s-crds/``, with defaults
  applied first and unknown fields rejected, as the API server does. A few API-server rules that
  no schema states are added (toleration operators and effects, extended-resource requests equal
  to limits, label syntax). CEL ``x-kubernetes-validations`` rules are counted, not evaluated.
- **Scheduling** (:func:`explain`): kube-scheduler's filter plugins in their order:
  TaintToleration (``NoSchedule``/``NoExecute`` taints need a toleration; ``Equal`` and ``Exists``,
  empty key, empty effect), NodeAffinity (``nodeSelector`` and required node affinity with ``In``,
  ``NotIn``, ``Exists``, ``DoesNotExist``, ``Gt``, ``Lt``), NodeResourcesFit (the pod's effective
  requests against the node's allocatable, after the DaemonSets every EKS node runs). The message
  has the scheduler's ``FailedScheduling`` form: ``0/3 nodes are available: ...``.
- **Nodes** (:func:`node_templates`): what a node of a managed node group, an eksctl node group or
  a Karpenter NodePool would look like: labels (the group's and the well-known ones EKS and
  Karpenter set), taints, and allocatable resources computed as the EKS-optimised AMIs compute
  them, from the instance type's vCPUs, memory, GPUs, Neuron devices and ENI limits (from EC2
  ``DescribeInstanceTypes`` where it has the type, else the price catalogue).
- **Storage** (:func:`pvc_problems`, :func:`efs_problems`, :func:`fsx_lustre_problems`): claim to
  volume binding, and the parameters the EFS and FSx CSI drivers accept.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

DEFAULT_K8S_VERSION = "1.33"
GPU = "nvidia.com/gpu"
NEURON = "aws.amazon.com/neuron"
NEURON_CORE = "aws.amazon.com/neuroncore"
EXTENDED_PREFIXES = ("nvidia.com/", "aws.amazon.com/", "amd.com/", "habana.ai/")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
EKS_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
# Requests of the DaemonSets every EKS node runs (the add-ons' default manifests): kube-proxy
# 100m CPU, the VPC CNI (aws-node) 25m CPU. A pod must fit beside them.
EKS_DAEMONSETS = {"kube-proxy": {"cpu": Decimal("0.1")}, "aws-node": {"cpu": Decimal("0.025")}}
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
CRD_DIR_PARTS = ("k8s-crds",)
REF_KEY = "x-labkit-k8s-ref"
DEFS_URI = "https://kubernetes.io/api/_definitions.json"


class ManifestError(ValueError):
    """A manifest that cannot be judged (not a mapping, no kind); the message says what to fix."""


# --- quantities ---------------------------------------------------------------------------

_SUFFIX: dict[str, int | Decimal] = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
           "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|"
                       r"[eE][+-]?[0-9]+)?$")


def quantity(value: Any) -> Decimal:
    """A Kubernetes resource quantity (``"500m"``, ``"240Gi"``, ``8``, ``"1e3"``) as a number."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a quantity")
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 2, 16Gi, 1.5G)")
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return number * Decimal(10) ** int(suffix[1:])
    return number * Decimal(_SUFFIX[suffix])


def _fmt(resource: str, value: Decimal) -> str:
    if resource == "cpu":
        return f"{value * 1000:.0f}m"
    if resource in ("memory", "ephemeral-storage"):
        return f"{value / 2**30:.1f}Gi"
    return f"{value.normalize():f}"


# --- schema validation ----------------------------------------------------------------------


def crd_dir() -> Path:
    from .. import data_path

    return data_path(*CRD_DIR_PARTS)


@functools.lru_cache(maxsize=8)
def _crds() -> dict[tuple[str, str, str], dict[str, Any]]:
    """``{(group, version, kind): openAPIV3Schema}`` of every CRD in ``data/k8s-crds/``."""
    import yaml

    out = {}
    for path in sorted(crd_dir().glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                out[(spec["group"], version["name"], spec["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return out


def known_custom_kinds() -> list[str]:
    return sorted(f"{g}/{v} {k}" for g, v, k in _crds())


def _to_json_schema(node: Any, root: bool = True) -> Any:
    """An API server's view of a CRD schema as JSON Schema: references resolved, unknown fields closed."""
    if isinstance(node, list):
        return [_to_json_schema(n, False) for n in node]
    if not isinstance(node, dict):
        return node
    if REF_KEY in node:
        return {"$ref": f"{DEFS_URI}#/$defs/{node[REF_KEY]}"}
    out = {k: _to_json_schema(v, False) for k, v in node.items()
           if k not in ("x-kubernetes-validations", "default")}
    if node.get("nullable"):
        out.pop("nullable", None)
        if "type" in out:
            out["type"] = [out["type"], "null"]
    if "properties" in out and "additionalProperties" not in out \
            and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if root and "properties" in out and "metadata" in out["properties"]:
        out["properties"]["metadata"] = {"$ref": f"{DEFS_URI}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    return out


def _apply_defaults(schema: dict[str, Any], obj: Any) -> Any:
    """Fill absent fields that have a ``default``, as the API server does before validating."""
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        for name, sub in props.items():
            if name not in obj and "default" in sub:
                obj[name] = copy.deepcopy(sub["default"])
            if name in obj:
                obj[name] = _apply_defaults(sub, obj[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in obj:
                if name not in props:
                    obj[name] = _apply_defaults(extra, obj[name])
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        return [_apply_defaults(schema["items"], o) for o in obj]
    return obj


def _count_cel(schema: Any, obj: Any) -> int:
    if not isinstance(schema, dict):
        return 0
    count = len(schema.get("x-kubernetes-validations") or [])
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for name, value in obj.items():
            sub = props.get(name, extra if isinstance(extra, dict) else None)
            count += _count_cel(sub, value)
    elif isinstance(obj, list):
        count += sum(_count_cel(schema.get("items"), o) for o in obj)
    return count


@functools.lru_cache(maxsize=4)
def _definitions(version: str) -> dict[str, Any]:
    from importlib.resources import files

    base = files("kubernetes_validate").joinpath(f"kubernetes-json-schema/v{version}.0-local-strict")
    return json.loads(base.joinpath("_definitions.json").read_text())


def _schema_version(k8s_version: str) -> str:
    import kubernetes_validate.utils as kv
    from packaging.version import Version

    wanted = Version(k8s_version.lstrip("v"))
    versions = [v for v in kv.all_versions() if Version(v) <= wanted]
    if not versions:
        raise ManifestError(f"kubernetes-validate has no schemas for Kubernetes {k8s_version} "
                            f"(it has {kv.all_versions()[0]} to {kv.latest_version()})")
    return ".".join(versions[-1].split(".")[:2])


def _path(error: Any) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _schema_errors(schema: dict[str, Any], obj: dict[str, Any], version: str) -> list[str]:
    import jsonschema
    from referencing import Registry, Resource

    registry = Resource.from_contents(_definitions(version)) @ Registry()
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    found = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    return [f"{_path(e)}: {_short(e.message)}" for e in found[:20]]


def _short(message: str) -> str:
    return message if len(message) < 300 else message[:300] + " ..."


@dataclass
class ValidationResult:
    """What validating one manifest found."""

    kind: str
    name: str
    schema: str  # where the schema came from
    errors: list[str] = field(default_factory=list)
    cel_rules_not_evaluated: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def __str__(self) -> str:
        head = f"{self.kind}/{self.name}: {'valid' if self.ok else 'INVALID'} ({self.schema})"
        extra = (f"; {self.cel_rules_not_evaluated} CEL rule(s) not evaluated offline"
                 if self.cel_rules_not_evaluated else "")
        return "\n  ".join([head + extra, *self.errors])


def validate_manifest(manifest: dict[str, Any], k8s_version: str = DEFAULT_K8S_VERSION) -> ValidationResult:
    """Validate one manifest (a dict, as ``yaml.safe_load`` gives it) as the API server would on create."""
    if not isinstance(manifest, dict):
        raise ManifestError(f"a manifest is a mapping (dict), not {type(manifest).__name__}")
    kind, api_version = manifest.get("kind"), manifest.get("apiVersion")
    if not kind or not api_version:
        raise ManifestError("a manifest needs 'apiVersion' and 'kind' (e.g. apiVersion: v1, kind: Pod)")
    name = str((manifest.get("metadata") or {}).get("name", "?"))
    version = _schema_version(k8s_version)
    group, _, ver = api_version.rpartition("/")
    crd = _crds().get((group, ver, kind))
    if crd is not None:
        obj = _apply_defaults(crd, copy.deepcopy(manifest))
        result = ValidationResult(kind, name, f"CRD {group}/{ver} in data/k8s-crds + Kubernetes {version} types")
        result.errors = _schema_errors(_to_json_schema(crd), obj, version)
        result.cel_rules_not_evaluated = _count_cel(crd, obj)
    else:
        import kubernetes_validate
        from kubernetes_validate.utils import SchemaNotFoundError

        result = ValidationResult(kind, name, f"Kubernetes {version} OpenAPI (kubernetes-validate, strict)")
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            result.errors = [f"{_path(err)}: {_short(err.message)}"]
        except SchemaNotFoundError:
            result.errors = [f"no schema for {api_version} {kind}: neither a Kubernetes {version} kind nor a CRD in "
                             f"data/k8s-crds ({', '.join(known_custom_kinds())}). Check apiVersion and kind."]
    if not result.errors:
        result.errors = semantic_problems(manifest)
    return result


# --- rules the API server applies that no schema states ------------------------------------


def _pod_specs(manifest: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(path, PodSpec) of every pod a manifest makes: Pod, templates of workloads, PyTorchJob replicas."""
    kind, spec = manifest.get("kind"), manifest.get("spec") or {}
    if kind == "Pod":
        return [("spec", spec)]
    if kind == "PyTorchJob":
        return [(f"spec.pytorchReplicaSpecs.{role}.template.spec", (r.get("template") or {}).get("spec") or {})
                for role, r in (spec.get("pytorchReplicaSpecs") or {}).items()]
    if kind == "CronJob":
        tmpl = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        return [("spec.jobTemplate.spec.template.spec", tmpl.get("spec") or {})]
    if isinstance(spec.get("template"), dict) and kind in ("Deployment", "StatefulSet", "DaemonSet", "Job",
                                                           "ReplicaSet", "PodTemplate"):
        return [("spec.template.spec", spec["template"].get("spec") or {})]
    return []


def label_problems(labels: dict[str, Any], where: str) -> list[str]:
    """Label keys and values as ``metav1validation.ValidateLabels`` checks them."""
    out = []
    for key, value in (labels or {}).items():
        prefix, _, name = str(key).rpartition("/")
        if not name or len(name) > 63 or not LABEL_NAME.match(name) or (prefix and (
                len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix))):
            out.append(f"{where}: label key {key!r} is invalid (an optional DNS-subdomain prefix and '/', then "
                       "a name of at most 63 alphanumerics, '-', '_' or '.')")
        if not isinstance(value, str):
            out.append(f"{where}.{key}: label values are strings; quote {value!r} in YAML")
        elif value and (len(value) > 63 or not LABEL_NAME.match(value)):
            out.append(f"{where}.{key}: label value {value!r} is invalid (at most 63 alphanumerics, '-', '_', '.')")
    return out


def toleration_problems(tolerations: list[dict[str, Any]], where: str) -> list[str]:
    """Tolerations as ``validation.ValidateTolerations`` checks them."""
    out = []
    for i, t in enumerate(tolerations or []):
        at = f"{where}[{i}]"
        operator = t.get("operator") or "Equal"
        if operator not in ("Equal", "Exists"):
            out.append(f"{at}.operator: {operator!r} is not supported: use Equal or Exists")
        if not t.get("key") and operator != "Exists":
            out.append(f"{at}: an empty key needs operator Exists (it then tolerates every taint)")
        if operator == "Exists" and t.get("value"):
            out.append(f"{at}.value: must be empty when operator is Exists")
        effect = t.get("effect")
        if effect and effect not in TAINT_EFFECTS:
            hint = f" (EKS's API spells it {effect}; Kubernetes spells it {EKS_EFFECTS[effect]})" \
                if effect in EKS_EFFECTS else ""
            out.append(f"{at}.effect: {effect!r} is not supported: use NoSchedule, PreferNoSchedule or "
                       f"NoExecute{hint}")
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            out.append(f"{at}.tolerationSeconds: only valid with effect NoExecute")
    return out


def _resource_problems(container: dict[str, Any], where: str) -> list[str]:
    out = []
    res = container.get("resources") or {}
    requests, limits = res.get("requests") or {}, res.get("limits") or {}
    for name in set(requests) | set(limits):
        try:
            req = quantity(requests[name]) if name in requests else None
            lim = quantity(limits[name]) if name in limits else None
        except ValueError as err:
            out.append(f"{where}.resources.{name}: {err}")
            continue
        extended = name.startswith(EXTENDED_PREFIXES)
        if extended:
            if lim is None:
                out.append(f"{where}.resources.limits[{name}]: an extended resource needs a limit "
                           "(requests alone are rejected); set limits equal to requests")
            elif req is not None and req != lim:
                out.append(f"{where}.resources.requests[{name}]: must equal limits for an extended resource "
                           f"(requests {req:f}, limits {lim:f}): devices are not overcommitted")
            for value in (req, lim):
                if value is not None and value != value.to_integral_value():
                    out.append(f"{where}.resources[{name}]: devices come whole: {value:f} must be an integer")
                    break
        elif req is not None and lim is not None and req > lim:
            out.append(f"{where}.resources.requests[{name}]: {requests[name]} is more than the limit "
                       f"{limits[name]}")
    return out


def semantic_problems(manifest: dict[str, Any]) -> list[str]:
    """API-server validation beyond the schema, for the pods a manifest makes and its labels."""
    out = label_problems((manifest.get("metadata") or {}).get("labels") or {}, "metadata.labels")
    for path, spec in _pod_specs(manifest):
        out += label_problems(spec.get("nodeSelector") or {}, f"{path}.nodeSelector")
        out += toleration_problems(spec.get("tolerations") or [], f"{path}.tolerations")
        for group in ("containers", "initContainers"):
            for i, c in enumerate(spec.get(group) or []):
                out += _resource_problems(c, f"{path}.{group}[{i}]")
    return out


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
    from ..cost import catalogue

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


# --- the scheduler's filters ------------------------------------------------------------------


def tolerates(toleration: dict[str, Any], taint: dict[str, str]) -> bool:
    """``Toleration.ToleratesTaint`` of k8s.io/api/core/v1."""
    if toleration.get("effect") and toleration["effect"] != taint["effect"]:
        return False
    if toleration.get("key") and toleration["key"] != taint["key"]:
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return str(toleration.get("value") or "") == str(taint.get("value") or "")
    return False


def untolerated_taints(pod_spec: dict[str, Any], taints: list[dict[str, str]]) -> list[dict[str, str]]:
    """Taints with effect NoSchedule or NoExecute that no toleration of the pod tolerates."""
    tolerations = pod_spec.get("tolerations") or []
    return [t for t in taints if t["effect"] in ("NoSchedule", "NoExecute")
            and not any(tolerates(tol, t) for tol in tolerations)]


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


def matches_node_affinity(pod_spec: dict[str, Any], labels: dict[str, str]) -> bool:
    """nodeSelector AND required node affinity (terms ORed, expressions ANDed), as NodeAffinity filters."""
    if any(labels.get(k) != str(v) for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if not required:
        return True
    terms = required.get("nodeSelectorTerms") or []
    for term in terms:
        exprs = term.get("matchExpressions") or []
        if not exprs and not term.get("matchFields"):
            continue  # an empty term matches no node
        if all(_requirement_matches(e, labels) for e in exprs):
            return True
    return False


def pod_requests(pod_spec: dict[str, Any]) -> dict[str, Decimal]:
    """Effective requests: max(sum of containers, each init container) + overhead; limits stand in
    for missing requests, as the API server defaults them."""

    def of(container: dict[str, Any]) -> dict[str, Decimal]:
        res = container.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        return {k: quantity(v) for k, v in merged.items()}

    total: dict[str, Decimal] = {}
    for c in pod_spec.get("containers") or []:
        for k, v in of(c).items():
            total[k] = total.get(k, Decimal(0)) + v
    for c in pod_spec.get("initContainers") or []:
        for k, v in of(c).items():
            total[k] = max(total.get(k, Decimal(0)), v)
    for k, v in (pod_spec.get("overhead") or {}).items():
        total[k] = total.get(k, Decimal(0)) + quantity(v)
    total["pods"] = Decimal(1)
    return dict(total)


def insufficient(pod_spec: dict[str, Any], node: NodeTemplate,
                 daemonsets: dict[str, dict[str, Decimal]] | None = None) -> list[str]:
    """Resources the pod requests beyond what ``node`` has left after its DaemonSets (NodeResourcesFit)."""
    daemonsets = EKS_DAEMONSETS if daemonsets is None else daemonsets
    used: dict[str, Decimal] = {}
    for requests in daemonsets.values():
        for k, v in requests.items():
            used[k] = used.get(k, Decimal(0)) + v
    used["pods"] = Decimal(len(daemonsets))
    out: list[str] = []
    for name, want in sorted(pod_requests(pod_spec).items()):
        if want <= 0:
            continue
        free = node.allocatable.get(name, Decimal(0)) - used.get(name, Decimal(0))
        if want > free:
            out.append(name)
    return out


@dataclass
class NodeVerdict:
    node: NodeTemplate
    reasons: list[str]  # every failing filter, in the scheduler's order

    @property
    def fits(self) -> bool:
        return not self.reasons


@dataclass
class SchedulingReport:
    """Where a pod could run among ``verdicts``' nodes, and why not elsewhere."""

    pod: str
    requests: dict[str, Decimal]
    verdicts: list[NodeVerdict]

    @property
    def schedulable(self) -> bool:
        return any(v.fits for v in self.verdicts)

    @property
    def fits(self) -> list[str]:
        return [v.node.name for v in self.verdicts if v.fits]

    @property
    def message(self) -> str:
        """The scheduler's ``FailedScheduling`` message (first failing filter per node)."""
        if self.schedulable:
            return f"{self.pod}: fits {len(self.fits)} of {len(self.verdicts)} node type(s): {', '.join(self.fits)}"
        counts = Counter(v.reasons[0] for v in self.verdicts)
        parts = ", ".join(f"{n} {reason}" if reason.startswith("Insufficient") else f"{n} node(s) {reason}"
                          for reason, n in sorted(counts.items()))
        return f"{self.pod}: 0/{len(self.verdicts)} nodes are available: {parts}."

    def explain(self) -> str:
        """One line per node type with every reason, and the pod's effective requests."""
        reqs = ", ".join(f"{k}={_fmt(k, v)}" for k, v in sorted(self.requests.items()) if k != "pods")
        lines = [self.message, f"  requests: {reqs}"]
        for v in self.verdicts:
            alloc = ", ".join(f"{k}={_fmt(k, x)}" for k, x in sorted(v.node.allocatable.items()) if k != "pods")
            lines.append(f"  {v.node.name}: {'fits' if v.fits else '; '.join(v.reasons)}  [allocatable {alloc}]")
        return "\n".join(lines)

    __str__ = explain


def explain(pod_spec: dict[str, Any], nodes: list[NodeTemplate], pod: str = "pod",
            daemonsets: dict[str, dict[str, Decimal]] | None = None) -> SchedulingReport:
    """Run the scheduler's filters for ``pod_spec`` on every node template."""
    verdicts = []
    for node in nodes:
        reasons = []
        bad = untolerated_taints(pod_spec, node.taints)
        if bad:
            shown = ", ".join(f"{t['key']}: {t['value']}" for t in bad)
            reasons.append(f"had untolerated taint {{{shown}}}")
        if not matches_node_affinity(pod_spec, node.labels):
            reasons.append("didn't match Pod's node affinity/selector")
        for name in insufficient(pod_spec, node, daemonsets):
            reasons.append(f"Insufficient {name}")
        verdicts.append(NodeVerdict(node, reasons))
    return SchedulingReport(pod, pod_requests(pod_spec), verdicts)


def explain_manifest(manifest: dict[str, Any], nodes: list[NodeTemplate]) -> dict[str, SchedulingReport]:
    """A :class:`SchedulingReport` for each pod template of a manifest (each PyTorchJob replica type)."""
    name = (manifest.get("metadata") or {}).get("name", manifest.get("kind", "?"))
    return {path: explain(spec, nodes, pod=f"{name} {path.split('.')[2] if 'Replica' in path else path}")
            for path, spec in _pod_specs(manifest)}


def mixed_capacity(nodes: list[NodeTemplate]) -> list[str]:
    """Node groups whose instance types differ in CPU, memory or accelerators.

    Cluster Autoscaler simulates a scale-up with the group's *first* instance type, so a pod that
    only fits a later one never triggers a scale-up; AWS's guidance is one shape per group.
    """
    by_group: dict[str, list[NodeTemplate]] = {}
    for n in nodes:
        by_group.setdefault(n.source, []).append(n)
    out = []
    for group, members in by_group.items():
        shapes = {(n.allocatable.get("cpu"), n.allocatable.get(GPU), n.allocatable.get(NEURON)) for n in members}
        if len(shapes) > 1:
            out.append(f"{group}: {', '.join(n.instance_type for n in members)} differ in vCPUs/GPUs; Cluster "
                       f"Autoscaler plans with the first ({members[0].instance_type})")
    return out


# --- storage ----------------------------------------------------------------------------------


def pvc_problems(pvc: dict[str, Any], pv: dict[str, Any] | None = None) -> list[str]:
    """Why ``pvc`` would not bind to ``pv`` (static provisioning), following the PV controller."""
    spec = pvc.get("spec") or {}
    out: list[str] = []
    if pv is None:
        return out if spec.get("storageClassName") else ["the claim names no storageClassName and no volume: it "
                                                         "uses the default StorageClass, if the cluster has one"]
    pv_spec = pv.get("spec") or {}
    if spec.get("volumeName") and spec["volumeName"] != (pv.get("metadata") or {}).get("name"):
        out.append(f"volumeName {spec['volumeName']!r} is not the volume's name")
    if (spec.get("storageClassName") or "") != (pv_spec.get("storageClassName") or ""):
        out.append(f"storageClassName differs: claim {spec.get('storageClassName')!r}, volume "
                   f"{pv_spec.get('storageClassName')!r}")
    missing = set(spec.get("accessModes") or []) - set(pv_spec.get("accessModes") or [])
    if missing:
        out.append(f"the volume does not offer access mode(s) {sorted(missing)}")
    if (spec.get("volumeMode") or "Filesystem") != (pv_spec.get("volumeMode") or "Filesystem"):
        out.append("volumeMode differs")
    want = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    have = (pv_spec.get("capacity") or {}).get("storage")
    if want and have and quantity(want) > quantity(have):
        out.append(f"the claim asks {want}, the volume has {have}")
    return out


EFS_PV_ATTRIBUTES = {"encryptInTransit", "mounttargetip"}
EFS_SC_PARAMETERS = {"provisioningMode", "fileSystemId", "directoryPerms", "gidRangeStart", "gidRangeEnd",
                     "basePath", "subPathPattern", "ensureUniqueDirectory", "uid", "gid", "az", "reuseAccessPoint",
                     "csi.storage.k8s.io/provisioner-secret-name", "csi.storage.k8s.io/provisioner-secret-namespace"}


def efs_problems(obj: dict[str, Any]) -> list[str]:
    """What the EFS CSI driver (efs.csi.aws.com) would reject or ignore in a PV or StorageClass."""
    out = []
    if obj.get("kind") == "PersistentVolume":
        csi = (obj.get("spec") or {}).get("csi") or {}
        if csi.get("driver") != "efs.csi.aws.com":
            return [f"csi.driver is {csi.get('driver')!r}, not efs.csi.aws.com"]
        if not re.match(r"^fs-[0-9a-f]+(:[^:]*(:fsap-[0-9a-f]+)?)?$", str(csi.get("volumeHandle", ""))):
            out.append("volumeHandle must be fs-<id>, fs-<id>:<path> or fs-<id>::fsap-<access point id>")
        extra = set(csi.get("volumeAttributes") or {}) - EFS_PV_ATTRIBUTES
        if extra:
            out.append(f"volumeAttributes {sorted(extra)} are StorageClass parameters of dynamic provisioning; a "
                       "static volume ignores them (put the path in volumeHandle, fs-<id>:/path)")
    elif obj.get("kind") == "StorageClass":
        if obj.get("provisioner") != "efs.csi.aws.com":
            return [f"provisioner is {obj.get('provisioner')!r}, not efs.csi.aws.com"]
        params = obj.get("parameters") or {}
        if params.get("provisioningMode") != "efs-ap":
            out.append("parameters.provisioningMode must be efs-ap (one access point per volume)")
        if not params.get("fileSystemId"):
            out.append("parameters.fileSystemId is required")
        unknown = set(params) - EFS_SC_PARAMETERS
        if unknown:
            out.append(f"unknown parameters {sorted(unknown)}")
        if any(not isinstance(v, str) for v in params.values()):
            out.append("StorageClass parameters are strings: quote numbers in YAML")
    return out


FSX_THROUGHPUT = {"PERSISTENT_1": (50, 100, 200), "PERSISTENT_2": (125, 250, 500, 1000)}
FSX_DEPLOYMENTS = ("SCRATCH_1", "SCRATCH_2", "PERSISTENT_1", "PERSISTENT_2")


def fsx_lustre_sizes(deployment_type: str, limit_gib: int = 100_000) -> list[int]:
    """Storage capacities FSx for Lustre (SSD) accepts: 1200, 2400, then steps of 2400 (3600 for SCRATCH_1)."""
    step = 3600 if deployment_type == "SCRATCH_1" else 2400
    return [1200, 2400, *range(2400 + step, limit_gib + 1, step)]


def fsx_lustre_problems(storage_class: dict[str, Any], claim_gib: float | None = None) -> list[str]:
    """What FSx for Lustre (via fsx.csi.aws.com) would reject in a StorageClass and claim size."""
    if storage_class.get("provisioner") != "fsx.csi.aws.com":
        return [f"provisioner is {storage_class.get('provisioner')!r}, not fsx.csi.aws.com"]
    params = storage_class.get("parameters") or {}
    out = []
    if any(not isinstance(v, str) for v in params.values()):
        out.append("StorageClass parameters are strings: quote numbers in YAML")
    deployment = str(params.get("deploymentType", "SCRATCH_1"))
    if deployment not in FSX_DEPLOYMENTS:
        out.append(f"deploymentType {deployment!r} is not one of {', '.join(FSX_DEPLOYMENTS)}")
    if not params.get("subnetId"):
        out.append("parameters.subnetId is required (FSx for Lustre lives in one subnet, one AZ)")
    if not params.get("securityGroupIds"):
        out.append("parameters.securityGroupIds is required (allow TCP 988 and 1018-1023 from the nodes)")
    throughput = params.get("perUnitStorageThroughput")
    if deployment.startswith("SCRATCH") and throughput is not None:
        out.append("perUnitStorageThroughput is only for PERSISTENT deployments: FSx rejects it for "
                   f"{deployment}")
    elif deployment in FSX_THROUGHPUT:
        allowed = FSX_THROUGHPUT[deployment]
        if throughput is None or int(str(throughput)) not in allowed:
            out.append(f"perUnitStorageThroughput for {deployment} must be one of {allowed} (MB/s per TiB)")
    if claim_gib is not None and deployment in FSX_DEPLOYMENTS:
        sizes = fsx_lustre_sizes(deployment)
        if claim_gib not in sizes:
            nxt = next((s for s in sizes if s >= claim_gib), None)
            out.append(f"{claim_gib:g} GiB is not an FSx for Lustre size for {deployment}; valid sizes are "
                       f"1200, 2400, then steps of {sizes[2] - sizes[1]} GiB (next: {nxt})")
    return out


def parse_quantity_gib(value: Any) -> float:
    """A storage quantity in GiB (``"1200Gi"`` -> 1200.0)."""
    try:
        return float(quantity(value) / 2**30)
    except (ValueError, InvalidOperation) as err:
        raise ValueError(f"{value!r} is not a storage quantity") from err
