"""Pipeline expressions: ``Get`` references, ``Std:Join``, ``Std:JsonGet`` and conditions.

A :class:`Scope` knows the execution's parameter values, its execution variables and,
through callbacks, each finished step's properties (the Describe* response of its job)
and property files. :meth:`Scope.resolve` replaces every expression inside a value with
what it stands for; :meth:`Scope.condition` evaluates one ``Conditions`` entry.

Property paths follow the SDK's ``Properties`` objects: ``Steps.Train.ModelArtifacts.
S3ModelArtifacts``, ``Steps.Prep.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri``
(a list indexed by a string picks the element whose ``...Name`` member equals it),
``Steps.Train.FinalMetricDataList['validation:accuracy'].Value``, ``[0]`` for positions.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


class ExpressionError(ValueError):
    """An expression could not be evaluated; the message becomes the step's FailureReason."""


def tokens(path: str) -> list[str | int]:
    """``"a.b['c'][0]"`` -> ``["a", "b", "c", 0]`` (string keys stay strings, positions ints)."""
    out: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m or m.end() == pos:
            raise ExpressionError(f"Cannot parse the path {path!r} at position {pos}.")
        name, index, key1, key2 = m.groups()
        if name is not None:
            out.append(name)
        elif index is not None:
            out.append(int(index))
        else:
            out.append(key1 if key1 is not None else key2)
        pos = m.end()
    return out


def _by_name(items: list[Any], key: str) -> Any:
    for item in items:
        if isinstance(item, dict) and any(k.endswith("Name") and v == key for k, v in item.items()):
            return item
    raise KeyError(key)


def walk(value: Any, path: list[str | int], where: str) -> Any:
    """Follow ``path`` into ``value`` (dicts by key, lists by position or by name)."""
    current = value
    done: list[str] = []
    for token in path:
        try:
            if isinstance(current, list):
                current = current[token] if isinstance(token, int) else _by_name(current, token)
            elif isinstance(current, dict):
                current = current[token]
            else:
                raise KeyError(token)
        except (KeyError, IndexError, TypeError) as err:
            shown = ".".join(done) or "(top)"
            raise ExpressionError(f"{where}: no value at {token!r} after {shown}.") from err
        done.append(str(token))
    return current


def render(value: Any) -> str:
    """A resolved value as it appears inside a Join."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


@dataclass
class Scope:
    """What expressions in one pipeline execution can see."""

    parameters: dict[str, Any]
    execution: dict[str, Any]
    properties: Callable[[str], dict[str, Any]]  # step name -> its properties
    property_file: Callable[[str, str], Any]  # (step name, property file name) -> parsed JSON
    cache: dict[str, Any] = field(default_factory=dict)

    def get(self, path: str) -> Any:
        head, _, rest = path.partition(".")
        if head == "Parameters":
            if rest not in self.parameters:
                raise ExpressionError(f"Parameter {rest!r} is not defined.")
            return self.parameters[rest]
        if head == "Execution":
            if rest == "CurrentDateTime":
                return dt.datetime.now(dt.UTC)
            if rest not in self.execution:
                raise ExpressionError(f"Execution variable {rest!r} is not available here.")
            return self.execution[rest]
        if head == "Steps":
            parts = tokens(rest)
            step = str(parts[0])
            if len(parts) >= 3 and parts[1] == "PropertyFiles":
                return {"__property_file__": (step, str(parts[2]))}
            return walk(self.properties(step), parts[1:], f"Steps.{step}")
        raise ExpressionError(f"Invalid reference {path!r}.")

    def resolve(self, value: Any) -> Any:
        """``value`` with every expression replaced by its value."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Get"} and isinstance(value["Get"], str):
            return self.get(value["Get"])
        if set(value) == {"Std:Join"}:
            spec = value["Std:Join"]
            on = self.resolve(spec.get("On", ""))
            return render(on).join(render(self.resolve(v)) for v in spec.get("Values", []))
        if set(value) == {"Std:JsonGet"}:
            return self.json_get(value["Std:JsonGet"])
        return {k: self.resolve(v) for k, v in value.items()}

    def json_get(self, spec: dict[str, Any]) -> Any:
        path = spec.get("Path")
        if not isinstance(path, str) or not path:
            raise ExpressionError("Std:JsonGet needs a Path (for example metrics.accuracy.value).")
        if "PropertyFile" in spec:
            ref = self.resolve(spec["PropertyFile"])
            if not (isinstance(ref, dict) and "__property_file__" in ref):
                raise ExpressionError("Std:JsonGet PropertyFile must be {'Get': 'Steps.<step>.PropertyFiles.<name>'}.")
            step, name = ref["__property_file__"]
            document = self.property_file(step, name)
            where = f"JsonGet of property file {name!r} of step {step!r}"
        else:
            raise ExpressionError("Std:JsonGet needs a PropertyFile: the offline backend resolves property files "
                                  "of processing steps (S3Uri-based JsonGet of @step functions is not emulated).")
        return walk(document, tokens(path), f"{where}, path {path!r}")

    # --- conditions ---------------------------------------------------------------
    def condition(self, cond: dict[str, Any]) -> bool:
        kind = cond.get("Type")
        if kind == "Not":
            return not self.condition(cond["Expression"] if "Expression" in cond else cond["Condition"])
        if kind == "Or":
            return any(self.condition(c) for c in cond.get("Conditions", []))
        if kind == "In":
            query = self.resolve(cond.get("QueryValue"))
            return any(_equal(query, self.resolve(v)) for v in cond.get("Values", []))
        if kind not in COMPARISONS:
            raise ExpressionError(f"Unknown condition Type {kind!r}; use one of {', '.join(sorted(COMPARISONS))}, "
                                  "In, Not or Or.")
        left, right = self.resolve(cond.get("LeftValue")), self.resolve(cond.get("RightValue"))
        return COMPARISONS[kind](left, right)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _equal(a: Any, b: Any) -> bool:
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        return na == nb
    return render(a) == render(b)


def _ordered(op: Callable[[float, float], bool], name: str) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        na, nb = _number(a), _number(b)
        if na is None or nb is None:
            raise ExpressionError(f"Condition {name}: cannot compare {a!r} with {b!r}; both sides must be numbers.")
        return op(na, nb)

    return compare


COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": _equal,
    "GreaterThan": _ordered(lambda a, b: a > b, "GreaterThan"),
    "GreaterThanOrEqualTo": _ordered(lambda a, b: a >= b, "GreaterThanOrEqualTo"),
    "LessThan": _ordered(lambda a, b: a < b, "LessThan"),
    "LessThanOrEqualTo": _ordered(lambda a, b: a <= b, "LessThanOrEqualTo"),
}
