"""Shape a response as botocore would have parsed it from AWS.

moto's records carry extra attributes and empty structures AWS never returns. Filtering
a record through the operation's output shape keeps exactly the members AWS documents,
drops empty optional values, and gives timestamps a time zone as botocore does.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def sagemaker_model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


def output_shape(operation: str) -> Any:
    return sagemaker_model().operation_model(operation).output_shape


def conform(value: Any, shape: Any) -> Any:
    """``value`` restricted to ``shape``; ``None`` when it is empty or does not fit."""
    if value is None:
        return None
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return None
        out = {}
        for name, member in shape.members.items():
            if name in value:
                v = conform(value[name], member)
                if v is not None and v != {} and v != []:
                    out[name] = v
        return out
    if kind == "list":
        if not isinstance(value, list):
            return None
        return [x for x in (conform(v, shape.member) for v in value) if x is not None]
    if kind == "map":
        if not isinstance(value, dict):
            return None
        return {k: conform(v, shape.value) for k, v in value.items()}
    if kind == "timestamp":
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        if isinstance(value, int | float):
            return dt.datetime.fromtimestamp(value, dt.UTC)
        if isinstance(value, str):
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return None
    if kind in ("integer", "long"):
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if kind in ("double", "float"):
        return float(value) if isinstance(value, int | float) else None
    if kind == "boolean":
        return bool(value)
    if kind == "string":
        return value if isinstance(value, str) else None
    return value


def describe(operation: str, record: dict[str, Any]) -> dict[str, Any]:
    return conform(record, output_shape(operation))


def validation_enum(value: str, path: str, shape: Any) -> str | None:
    """AWS's message for a value outside an enum, or ``None`` when it is allowed."""
    allowed = list(shape.enum or [])
    if not allowed or value in allowed:
        return None
    return (f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: "
            f"Member must satisfy enum value set: [{', '.join(allowed)}]")
