"""CloudFormation templates: parse, check as CloudFormation does, resolve intrinsic functions.

Plain Python, no AWS calls. :func:`load` reads JSON or YAML (with the short forms ``!Ref``,
``!GetAtt``, ``!Sub``...); :class:`Template` checks the structure, parameters, references and
resource types the way ``CreateStack``/``ValidateTemplate`` do (same ``ValidationError``
messages), evaluates conditions, and orders resources by their dependencies; :class:`Resolver`
resolves ``Ref``, ``Fn::GetAtt``, ``Fn::Sub``, ``Fn::Join``, ``Fn::Select``, ``Fn::Split``,
``Fn::If``, ``Fn::FindInMap``, ``Fn::Base64``, ``Fn::GetAZs``, ``Fn::ImportValue`` and
``Fn::ToJsonString`` against the stack's parameters and its resources as they are created.

Resource types and their attributes are checked against the CloudFormation resource provider
schemas that cfn-lint ships (``cfnlint.schema``), the same schemas CloudFormation publishes.
Not applied offline, and refused with a message: ``Transform`` (macros, ``AWS::Serverless``)
and ``Rules``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

import yaml

from ..dispatch import AWSError

SECTIONS = ("AWSTemplateFormatVersion", "Description", "Metadata", "Parameters", "Mappings", "Conditions",
            "Transform", "Resources", "Outputs", "Rules")
PARAMETER_TYPES = ("String", "Number", "List<Number>", "CommaDelimitedList")
CONDITION_FUNCTIONS = ("Fn::Equals", "Fn::And", "Fn::Or", "Fn::Not", "Condition")
NO_VALUE = object()  # AWS::NoValue: the property is removed


def invalid(message: str) -> AWSError:
    """CloudFormation's error for a bad template or request (code ``ValidationError``)."""
    return AWSError("ValidationError", message)


# --- loading: JSON, or YAML with CloudFormation's short forms ---------------------------------


class _Loader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else "Condition" if suffix == "Condition" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_Loader.add_multi_constructor("!", _tag)
# YAML 1.1 reads 'on', 'yes'... as booleans and timestamps as dates; CloudFormation keeps them text.
_Loader.yaml_implicit_resolvers = {k: [(tag, rx) for tag, rx in v if tag not in (
    "tag:yaml.org,2002:timestamp",)] for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def load(body: str) -> dict[str, Any]:
    """The template ``body`` (JSON or YAML) as a dict; a ``ValidationError`` when it is neither."""
    text = body.strip()
    try:
        template = json.loads(text) if text.startswith("{") else yaml.load(text, Loader=_Loader)  # noqa: S506
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise invalid(f"Template format error: {'JSON' if text.startswith('{') else 'YAML'} not well-formed. "
                      f"({str(err).splitlines()[0]})") from err
    if not isinstance(template, dict):
        raise invalid("Template format error: the template must be a JSON object or a YAML mapping.")
    return template


# --- schemas of resource types -----------------------------------------------------------------


def type_schema(resource_type: str) -> dict[str, Any] | None:
    """CloudFormation's provider schema of ``resource_type`` in us-east-1 (None: no such type)."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
    from cfnlint.schema.manager import ResourceNotFoundError

    try:
        return PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource_type).schema
    except ResourceNotFoundError:
        return None


def _paths(schema: dict[str, Any], key: str) -> set[str]:
    return {p.removeprefix("/properties/").split("/")[0] for p in schema.get(key) or []}


def create_only(resource_type: str) -> set[str]:
    """Top-level properties whose change replaces the resource (``createOnlyProperties``)."""
    return _paths(type_schema(resource_type) or {}, "createOnlyProperties")


def write_only(resource_type: str) -> set[str]:
    """Top-level properties AWS never reads back (``writeOnlyProperties``): left out of drift checks."""
    return _paths(type_schema(resource_type) or {}, "writeOnlyProperties")


def attributes(resource_type: str) -> set[str]:
    """The attributes ``Fn::GetAtt`` may read, as cfn-lint derives them from the schema."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    if type_schema(resource_type) is None:
        return set()
    return set(PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource_type).get_atts)


# --- references --------------------------------------------------------------------------------

_SUB = re.compile(r"\$\{([^!}][^}]*)\}")


def references(value: Any) -> set[str]:
    """Logical ids and parameters ``value`` refers to (Ref, GetAtt, Sub variables)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner.split(".", 1)[0] if isinstance(inner, str) else inner[0]
                found.add(target)
            elif key == "Fn::Sub":
                text, names = (inner, {}) if isinstance(inner, str) else (inner[0], inner[1])
                found |= {m.split(".", 1)[0] for m in _SUB.findall(text) if m not in names}
                found |= references(names)
            else:
                found |= references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= references(inner)
    return found


# --- the template ------------------------------------------------------------------------------


class Template:
    """A checked template with its parameter values: conditions, resources to create, their order."""

    def __init__(self, body: dict[str, Any], parameters: dict[str, str] | None = None, *,
                 stack_name: str = "", stack_id: str = "", account: str = "", region: str = ""):
        self.body = body
        unknown = [k for k in body if k not in SECTIONS]
        if unknown:
            raise invalid(f"Template format error: Invalid template property or properties {unknown}")
        if "Transform" in body:
            raise invalid("Template format error: Transform (macros, AWS::Serverless) is not applied by the "
                          "offline backend. Deploy the processed template (e.g. `sam build` / `cdk synth` "
                          "output), or use the sandbox backend.")
        if "Rules" in body:
            raise invalid("Template format error: Rules are not evaluated by the offline backend; remove the "
                          "Rules section (with the CDK: DefaultStackSynthesizer(generate_bootstrap_version_rule="
                          "False)) or use the sandbox backend.")
        resources = body.get("Resources")
        if not isinstance(resources, dict) or not resources:
            raise invalid("Template format error: At least one Resources member must be defined.")
        self.pseudo = {"AWS::StackName": stack_name, "AWS::StackId": stack_id, "AWS::AccountId": account,
                       "AWS::Region": region, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
                       "AWS::NotificationARNs": []}
        self.declared = body.get("Parameters") or {}
        self.parameters = self._parameters(parameters or {})
        self.mappings = body.get("Mappings") or {}
        self._check_resources(resources)
        self.conditions = self._conditions()
        self.resources = {k: v for k, v in resources.items()
                          if not v.get("Condition") or self.conditions[v["Condition"]]}
        self.order = self._order()
        self.outputs = body.get("Outputs") or {}

    # parameters -------------------------------------------------------------------------------

    def parameter_text(self) -> dict[str, str]:
        """The parameter values as DescribeStacks shows them (lists joined with commas)."""
        return {k: ",".join(v) if isinstance(v, list) else v for k, v in self.parameters.items()}

    def _parameters(self, given: dict[str, str]) -> dict[str, Any]:
        unknown = [k for k in given if k not in self.declared]
        if unknown:
            raise invalid(f"Parameters: {unknown} do not exist in the template")
        values: dict[str, Any] = {}
        missing = []
        for name, spec in self.declared.items():
            kind = spec.get("Type", "")
            if kind not in PARAMETER_TYPES:
                raise invalid(f"Template format error: Unrecognized parameter type: {kind} (parameter {name}); the "
                              f"offline backend supports {', '.join(PARAMETER_TYPES)}.")
            raw = given.get(name, spec.get("Default"))
            if raw is None:
                missing.append(name)
                continue
            raw = str(raw)
            allowed = [str(a) for a in spec.get("AllowedValues") or []]
            if allowed and raw not in allowed:
                raise invalid(f"Parameter '{name}' must be one of AllowedValues")
            pattern = spec.get("AllowedPattern")
            if pattern and kind == "String" and not re.fullmatch(pattern, raw):
                raise invalid(f"Parameter '{name}' must match pattern {pattern}")
            if kind == "Number":
                try:
                    float(raw)
                except ValueError:
                    raise invalid(f"Parameter '{name}' must be a number not {raw}") from None
                low, high = spec.get("MinValue"), spec.get("MaxValue")
                if (low is not None and float(raw) < float(low)) or (high is not None and float(raw) > float(high)):
                    raise invalid(f"Parameter '{name}' must be a number between {low} and {high}")
            values[name] = raw.split(",") if kind in ("List<Number>", "CommaDelimitedList") else raw
        if missing:
            raise invalid(f"Parameters: {missing} must have values")
        return values

    # resources --------------------------------------------------------------------------------

    def _check_resources(self, resources: dict[str, Any]) -> None:
        unknown_types = sorted({r.get("Type", "") for r in resources.values()
                                if not isinstance(r, dict) or type_schema(r.get("Type", "")) is None})
        if unknown_types:
            raise invalid(f"Template format error: Unrecognized resource types: {unknown_types}")
        known = set(resources) | set(self.declared) | set(self.pseudo)
        for spec in resources.values():
            refs = references(spec.get("Properties") or {})
            depends = spec.get("DependsOn") or []
            depends = [depends] if isinstance(depends, str) else depends
            missing = sorted((refs | set(depends)) - known)
            if missing:
                raise invalid(f"Template format error: Unresolved resource dependencies {missing} in the Resources "
                              "block of the template")
            self._check_getatt(spec.get("Properties") or {}, resources)

    def _check_getatt(self, value: Any, resources: dict[str, Any]) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key == "Fn::GetAtt":
                    target, attr = inner.split(".", 1) if isinstance(inner, str) else inner
                    if target in resources and attr not in attributes(resources[target]["Type"]):
                        raise invalid(f"Template error: resource {target} does not support attribute type {attr} "
                                      "in Fn::GetAtt")
                else:
                    self._check_getatt(inner, resources)
        elif isinstance(value, list):
            for inner in value:
                self._check_getatt(inner, resources)

    def dependencies(self, logical: str) -> set[str]:
        """The resources ``logical`` needs before it can be created (references and DependsOn)."""
        spec = self.resources[logical]
        depends = spec.get("DependsOn") or []
        depends = [depends] if isinstance(depends, str) else depends
        return (references(spec.get("Properties") or {}) | set(depends)) & set(self.resources)

    def _order(self) -> list[str]:
        order: list[str] = []
        state: dict[str, str] = {}

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                cycle = path[path.index(name):]
                raise invalid(f"Circular dependency between resources: {sorted(set(cycle))}")
            state[name] = "visiting"
            for dep in sorted(self.dependencies(name)):
                visit(dep, [*path, name])
            state[name] = "done"
            order.append(name)

        for name in self.resources:
            visit(name, [])
        return order

    # conditions -------------------------------------------------------------------------------

    def _conditions(self) -> dict[str, bool]:
        declared = self.body.get("Conditions") or {}
        values: dict[str, bool] = {}
        resolver = Resolver(self, lambda *_: None)

        def evaluate(name: str) -> bool:
            if name not in values:
                if name not in declared:
                    raise invalid(f"Template format error: Unresolved condition dependency {name}")
                values[name] = bool(condition(declared[name]))
            return values[name]

        def condition(expr: Any) -> Any:
            if isinstance(expr, dict) and len(expr) == 1:
                (key, arg), = expr.items()
                if key == "Condition":
                    return evaluate(arg)
                if key == "Fn::Equals":
                    a, b = (resolver.resolve(x) for x in arg)
                    return str(a) == str(b)
                if key == "Fn::Not":
                    return not condition(arg[0])
                if key == "Fn::And":
                    return all(condition(x) for x in arg)
                if key == "Fn::Or":
                    return any(condition(x) for x in arg)
            return resolver.resolve(expr)

        for name in declared:
            evaluate(name)
        return values


class Resolver:
    """Resolves a template's intrinsic functions; ``lookup(logical, attribute)`` reads resources.

    ``lookup(logical, None)`` is a resource's ``Ref`` value, ``lookup(logical, "Arn")`` an attribute.
    """

    def __init__(self, template: Template, lookup: Callable[[str, str | None], Any],
                 exports: dict[str, str] | None = None):
        self.template = template
        self.lookup = lookup
        self.exports = exports or {}

    def resolve(self, value: Any) -> Any:
        out = self._resolve(value)
        return None if out is NO_VALUE else out

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.template.pseudo:
            return self.template.pseudo[name]
        if name in self.template.parameters:
            return self.template.parameters[name]
        return self.lookup(name, None)

    def _getatt(self, arg: Any) -> Any:
        target, attr = arg.split(".", 1) if isinstance(arg, str) else (arg[0], self._resolve(arg[1]))
        return self.lookup(target, attr)

    def _sub(self, arg: Any) -> str:
        text, names = (arg, {}) if isinstance(arg, str) else (arg[0], {k: self._resolve(v) for k, v in arg[1].items()})

        def one(match: re.Match) -> str:
            name = match.group(1)
            if name in names:
                return str(names[name])
            value = self._getatt(name) if "." in name and name.split(".", 1)[0] in self.template.resources \
                else self._ref(name)
            return ",".join(value) if isinstance(value, list) else str(value)

        return re.sub(r"\$\{!", "${", _SUB.sub(one, text))

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self._resolve(x) for x in value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            function = self._functions().get(key)
            if function is not None:
                return function(arg)
        out = {}
        for key, inner in value.items():
            resolved = self._resolve(inner)
            if resolved is not NO_VALUE:
                out[key] = resolved
        return out

    def _functions(self) -> dict[str, Callable[[Any], Any]]:
        conditions = self.template.conditions if hasattr(self.template, "conditions") else {}
        return {
            "Ref": self._ref,
            "Fn::GetAtt": self._getatt,
            "Fn::Sub": self._sub,
            "Fn::Join": lambda a: str(a[0]).join(str(x) for x in self._resolve(a[1])),
            "Fn::Select": lambda a: self._resolve(a[1])[int(self._resolve(a[0]))],
            "Fn::Split": lambda a: str(self._resolve(a[1])).split(a[0]),
            "Fn::If": lambda a: self._resolve(a[1] if conditions[a[0]] else a[2]),
            "Fn::FindInMap": lambda a: self._find_in_map(*[self._resolve(x) for x in a[:3]]),
            "Fn::Base64": lambda a: base64.b64encode(str(self._resolve(a)).encode()).decode(),
            "Fn::GetAZs": lambda a: [f"{self.template.pseudo['AWS::Region']}{z}" for z in "abcdef"],
            "Fn::ImportValue": self._import,
            "Fn::ToJsonString": lambda a: json.dumps(self._resolve(a), separators=(",", ":")),
        }

    def _find_in_map(self, name: str, top: str, second: str) -> Any:
        try:
            return self.template.mappings[name][top][second]
        except KeyError:
            raise invalid(f"Template error: Unable to get mapping for {name}::{top}::{second}") from None

    def _import(self, arg: Any) -> str:
        name = self._resolve(arg)
        if name not in self.exports:
            raise invalid(f"No export named {name} found.")
        return self.exports[name]
