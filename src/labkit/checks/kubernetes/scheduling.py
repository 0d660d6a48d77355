"""Scheduling: kube-scheduler's filter plugins (TaintToleration, NodeAffinity, NodeResourcesFit) and
its FailedScheduling message.

Part of :mod:`labkit.checks.kubernetes`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .nodes import NodeTemplate, _requirement_matches
from .quantities import EKS_DAEMONSETS, GPU, NEURON, _fmt, quantity
from .schema import _pod_specs

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
