"""Kubernetes resource quantities, the resource names the rules use, and the error for a manifest that
cannot be judged.

Part of :mod:`labkit.checks.kubernetes`.
"""

from __future__ import annotations

import re
from decimal import Decimal
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
