"""Schema validity: built-in kinds against Kubernetes' OpenAPI schemas, custom resources against their
CRDs, and the API-server rules no schema states.

Part of :mod:`labkit.checks.kubernetes`.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .quantities import (
    CRD_DIR_PARTS,
    DEFAULT_K8S_VERSION,
    DEFS_URI,
    DNS_SUBDOMAIN,
    EKS_EFFECTS,
    EXTENDED_PREFIXES,
    LABEL_NAME,
    REF_KEY,
    TAINT_EFFECTS,
    ManifestError,
    quantity,
)

# --- schema validation ----------------------------------------------------------------------


def crd_dir() -> Path:
    from ... import data_path

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
