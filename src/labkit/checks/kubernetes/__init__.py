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

The rules live in one module each, in the order they build on one another: quantities,
schema, nodes, scheduling, storage; this package exports their public names.
"""

from __future__ import annotations

from .nodes import (
    InstanceShape,
    NodeTemplate,
    allocatable,
    instance_shapes,
    karpenter_labels,
    shape_from_catalogue,
    shape_from_ec2,
    templates_from_eksctl,
    templates_from_nodegroup,
    templates_from_nodepool,
)
from .quantities import (
    CRD_DIR_PARTS,
    DEFAULT_K8S_VERSION,
    DEFS_URI,
    DNS_SUBDOMAIN,
    EKS_DAEMONSETS,
    EKS_EFFECTS,
    EXTENDED_PREFIXES,
    GPU,
    LABEL_NAME,
    NEURON,
    NEURON_CORE,
    REF_KEY,
    TAINT_EFFECTS,
    ManifestError,
    quantity,
)
from .scheduling import (
    NodeVerdict,
    SchedulingReport,
    explain,
    explain_manifest,
    insufficient,
    matches_node_affinity,
    mixed_capacity,
    pod_requests,
    tolerates,
    untolerated_taints,
)
from .schema import (
    ValidationResult,
    crd_dir,
    known_custom_kinds,
    label_problems,
    semantic_problems,
    toleration_problems,
    validate_manifest,
)
from .storage import (
    EFS_PV_ATTRIBUTES,
    EFS_SC_PARAMETERS,
    FSX_DEPLOYMENTS,
    FSX_THROUGHPUT,
    efs_problems,
    fsx_lustre_problems,
    fsx_lustre_sizes,
    parse_quantity_gib,
    pvc_problems,
)

__all__ = [
    "CRD_DIR_PARTS",
    "DEFAULT_K8S_VERSION",
    "DEFS_URI",
    "DNS_SUBDOMAIN",
    "EFS_PV_ATTRIBUTES",
    "EFS_SC_PARAMETERS",
    "EKS_DAEMONSETS",
    "EKS_EFFECTS",
    "EXTENDED_PREFIXES",
    "FSX_DEPLOYMENTS",
    "FSX_THROUGHPUT",
    "GPU",
    "InstanceShape",
    "LABEL_NAME",
    "ManifestError",
    "NEURON",
    "NEURON_CORE",
    "NodeTemplate",
    "NodeVerdict",
    "REF_KEY",
    "SchedulingReport",
    "TAINT_EFFECTS",
    "ValidationResult",
    "allocatable",
    "crd_dir",
    "efs_problems",
    "explain",
    "explain_manifest",
    "fsx_lustre_problems",
    "fsx_lustre_sizes",
    "instance_shapes",
    "insufficient",
    "karpenter_labels",
    "known_custom_kinds",
    "label_problems",
    "matches_node_affinity",
    "mixed_capacity",
    "parse_quantity_gib",
    "pod_requests",
    "pvc_problems",
    "quantity",
    "semantic_problems",
    "shape_from_catalogue",
    "shape_from_ec2",
    "templates_from_eksctl",
    "templates_from_nodegroup",
    "templates_from_nodepool",
    "tolerates",
    "toleration_problems",
    "untolerated_taints",
    "validate_manifest",
]
