"""Request constraints AWS checks and botocore does not: enums, maximum lengths and values.

botocore validates a request against the service model before sending it, but only
types, required members and minimum lengths and values. AWS also rejects a value
outside a member's enum (``"SSN"`` as a guardrail PII type: seed 001 has it), a string
or list longer than its ``max`` and a number above its ``max``, with a
``ValidationException`` worded as::

    1 validation error detected: Value 'SSN' at
    'sensitiveInformationPolicyConfig.piiEntitiesConfig.3.member.type' failed to satisfy
    constraint: Member must satisfy enum value set: [ADDRESS, AGE, ...]

(list positions count from 1). S3 Vectors words the same checks with JSON-pointer paths
(``1 validation error detected. Value at '/distanceMetric' failed to satisfy constraint:
Member must satisfy enum value set: [euclidean, cosine]``, ranges as ``Member must be
between 1 and 4096, inclusive``), as moto's own S3 Vectors checks word them; the
engines use each service's style. The offline Bedrock engines run :func:`check` on every
request they answer, driven by the same botocore service models, so what AWS refuses
for these reasons is refused offline too. Regular-expression ``pattern`` constraints
are not checked: AWS writes them for Java's regex engine, and a translation that
refused a valid request would be worse than none; the engines check the formats that
matter (model ids, ARNs) themselves.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .errors import validation

MAX_REPORTED = 10


@lru_cache(maxsize=16)
def _service_model(service: str):
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def _unconstrained(shape: Any) -> bool:
    return shape.type_name in ("float", "double", "integer", "long", "boolean", "blob") and "max" not in shape.metadata


class _Style:
    """How a service words a path and a constraint."""

    def __init__(self, pointer: bool):
        self.pointer = pointer

    def join(self, path: str, name: str) -> str:
        if self.pointer:
            return f"{path}/{name}"
        return f"{path}.{name}" if path else name

    def item(self, path: str, i: int) -> str:
        return f"{path}/{i - 1}" if self.pointer else f"{path}.{i}.member"

    def value(self, value: Any, path: str) -> str:
        return f"Value at '{path}'" if self.pointer else f"Value '{value}' at '{path}'"

    def range(self, meta: dict[str, Any]) -> str:
        if self.pointer and "min" in meta:
            return f"Member must be between {meta['min']} and {meta['max']}, inclusive"
        return f"Member must have value less than or equal to {meta['max']}"


_STYLES = {"s3vectors": _Style(pointer=True)}
_DEFAULT = _Style(pointer=False)


def _walk(shape: Any, value: Any, path: str, problems: list[str], style: _Style = _DEFAULT) -> None:
    if value is None or shape is None:
        return
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                _walk(member, value[name], style.join(path, name), problems, style)
    elif kind == "list" and isinstance(value, list | tuple):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"Value at '{path}' failed to satisfy constraint: Member must have length less than "
                            f"or equal to {meta['max']}")
        if _unconstrained(shape.member):
            return  # a vector of floats, say: nothing to check per item
        for i, item in enumerate(value, 1):
            _walk(shape.member, item, style.item(path, i), problems, style)
    elif kind == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"Value at '{path}' failed to satisfy constraint: Member must have length less than "
                            f"or equal to {meta['max']}")
        for key, item in value.items():
            _walk(shape.value, item, style.join(path, str(key)), problems, style)
    elif kind == "string" and isinstance(value, str):
        enum = shape.enum
        if enum and value not in enum:
            problems.append(f"{style.value(value, path)} failed to satisfy constraint: Member must satisfy enum "
                            f"value set: [{', '.join(enum)}]")
        elif "max" in meta and len(value) > meta["max"]:
            shown = (f"Value at '{path}'" if meta.get("sensitive") or len(value) > 80
                     else style.value(value, path))
            problems.append(f"{shown} failed to satisfy constraint: Member must have length less than or equal to "
                            f"{meta['max']}")
    elif kind in ("integer", "long", "float", "double") and isinstance(value, int | float) \
            and not isinstance(value, bool) and "max" in meta and value > meta["max"]:
        problems.append(f"{style.value(value, path)} failed to satisfy constraint: {style.range(meta)}")


def operation_names(service: str) -> list[str]:
    """The operations of ``service`` in the installed botocore."""
    return list(_service_model(service).operation_names)


def problems(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    """What AWS would reject in ``params`` for these constraints (empty: nothing)."""
    model = _service_model(service)
    try:
        op = model.operation_model(operation)
    except Exception:  # an operation the installed botocore does not know: nothing to check against
        return []
    found: list[str] = []
    clean = {k: v for k, v in params.items() if not k.startswith("_")}
    _walk(op.input_shape, clean, "", found, _STYLES.get(service, _DEFAULT))
    return found


def check(service: str, operation: str, params: dict[str, Any]) -> None:
    """Raise AWS's ValidationException when ``params`` break an enum, a maximum length or value."""
    found = problems(service, operation, params)
    if found:
        shown = found[:MAX_REPORTED]
        noun = "error" if len(found) == 1 else "errors"
        sep = ". " if service in _STYLES else ": "  # S3 Vectors: "1 validation error detected. Value at ..."
        raise validation(f"{len(found)} validation {noun} detected{sep}" + "; ".join(shown))
