"""Storage: claim-to-volume binding, and the parameters the EFS and FSx CSI drivers accept.

Part of :mod:`labkit.checks.kubernetes`.
"""

from __future__ import annotations

import re
from decimal import InvalidOperation
from typing import Any

from .quantities import quantity

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
