"""IAM policy evaluation, and the policy simulator API built on it.

moto stores IAM policies but cannot simulate them (``SimulatePrincipalPolicy`` is not
implemented, and SDK v3's ``ModelTrainer`` calls it to check the execution role). This
module evaluates identity policies the way IAM's documented logic does: an explicit
``Deny`` wins, then any ``Allow``, otherwise the request is implicitly denied.
Supported: ``Action``/``NotAction``, ``Resource``/``NotResource`` with ``*`` and ``?``
wildcards, and the common condition operators (String*, Arn*, Numeric*, Bool, Null,
the ``IfExists`` suffix and the ``ForAnyValue:``/``ForAllValues:`` set prefixes).
Not modelled: resource policies, permission boundaries, SCPs, session policies and
policy variables; the simulator on AWS considers those too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from . import dispatch
from .dispatch import AWSError

ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY = "allowed", "explicitDeny", "implicitDeny"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _wildcard(pattern: str, value: str, *, case_sensitive: bool) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.fullmatch(regex, value, flags | re.DOTALL) is not None


def _numeric(a: str, b: str, op: str) -> bool:
    x, y = float(a), float(b)
    return {"Equals": x == y, "NotEquals": x != y, "LessThan": x < y, "LessThanEquals": x <= y,
            "GreaterThan": x > y, "GreaterThanEquals": x >= y}[op]


def _match_one(op: str, actual: str, expected: str) -> bool:
    if op in ("StringEquals", "ArnEquals"):
        return actual == expected
    if op == "StringNotEquals" or op == "ArnNotEquals":
        return actual != expected
    if op == "StringEqualsIgnoreCase":
        return actual.lower() == expected.lower()
    if op == "StringNotEqualsIgnoreCase":
        return actual.lower() != expected.lower()
    if op in ("StringLike", "ArnLike"):
        return _wildcard(expected, actual, case_sensitive=True)
    if op in ("StringNotLike", "ArnNotLike"):
        return not _wildcard(expected, actual, case_sensitive=True)
    if op == "Bool":
        return actual.lower() == str(expected).lower()
    if op.startswith("Numeric"):
        return _numeric(actual, expected, op[len("Numeric"):])
    if op == "IpAddress":
        import ipaddress

        return ipaddress.ip_address(actual) in ipaddress.ip_network(expected, strict=False)
    if op == "NotIpAddress":
        import ipaddress

        return ipaddress.ip_address(actual) not in ipaddress.ip_network(expected, strict=False)
    raise ValueError(f"condition operator {op!r} is not supported by the offline evaluator")


_NEGATED = ("StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals",
            "ArnNotLike", "NotIpAddress")


@dataclass
class Decision:
    """The outcome for one action on one resource."""

    action: str
    resource: str
    decision: str
    matched: list[int] = field(default_factory=list)  # indexes of the statements that decided
    missing_context: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return self.decision == ALLOWED


class Policy:
    """One identity-based policy document."""

    def __init__(self, document: str | dict[str, Any], source: str = "policy"):
        doc = json.loads(document) if isinstance(document, str) else document
        if not isinstance(doc, dict) or "Statement" not in doc:
            raise ValueError("a policy document is a JSON object with a 'Statement' element")
        self.document = doc
        self.source = source
        self.statements: list[dict[str, Any]] = _as_list(doc["Statement"])
        for i, st in enumerate(self.statements):
            if st.get("Effect") not in ("Allow", "Deny"):
                raise ValueError(f"statement {i}: Effect must be 'Allow' or 'Deny'")
            if ("Action" in st) == ("NotAction" in st):
                raise ValueError(f"statement {i}: needs exactly one of Action or NotAction")
            if ("Resource" in st) == ("NotResource" in st):
                raise ValueError(f"statement {i}: needs exactly one of Resource or NotResource")

    def _applies(self, st: dict[str, Any], action: str, resource: str,
                 context: dict[str, list[str]], missing: set[str]) -> bool:
        if "Action" in st:
            if not any(_wildcard(p, action, case_sensitive=False) for p in _as_list(st["Action"])):
                return False
        elif any(_wildcard(p, action, case_sensitive=False) for p in _as_list(st["NotAction"])):
            return False
        if "Resource" in st:
            if not any(_wildcard(p, resource, case_sensitive=True) for p in _as_list(st["Resource"])):
                return False
        elif any(_wildcard(p, resource, case_sensitive=True) for p in _as_list(st["NotResource"])):
            return False
        return self._conditions_hold(st.get("Condition") or {}, context, missing)

    @staticmethod
    def _conditions_hold(conditions: dict[str, Any], context: dict[str, list[str]],
                         missing: set[str]) -> bool:
        lowered = {k.lower(): v for k, v in context.items()}
        for raw_op, clauses in conditions.items():
            quantifier, _, op = raw_op.rpartition(":")
            if_exists = op.endswith("IfExists")
            op = op.removesuffix("IfExists")
            for key, expected in clauses.items():
                expected_values = [str(e) for e in _as_list(expected)]
                actual = lowered.get(key.lower())
                if op == "Null":
                    want_absent = expected_values[0].lower() == "true"
                    if (actual is None) != want_absent:
                        return False
                    continue
                if actual is None:
                    if if_exists:
                        continue
                    missing.add(key)
                    if quantifier == "ForAllValues":
                        continue  # vacuously true on an empty set, as in IAM
                    return False
                if quantifier == "ForAllValues":
                    ok = all(any(_match_one(op, a, e) for e in expected_values) for a in actual)
                elif op in _NEGATED:
                    ok = any(all(_match_one(op, a, e) for e in expected_values) for a in actual)
                else:
                    ok = any(_match_one(op, a, e) for a in actual for e in expected_values)
                if not ok:
                    return False
        return True


def evaluate(policies: list[Policy], action: str, resource: str = "*",
             context: dict[str, list[str]] | None = None) -> Decision:
    """Evaluate ``action`` on ``resource`` against identity ``policies``."""
    context = context or {}
    missing: set[str] = set()
    allows: list[int] = []
    denies: list[int] = []
    index = 0
    for policy in policies:
        for st in policy.statements:
            if policy._applies(st, action, resource, context, missing):
                (denies if st["Effect"] == "Deny" else allows).append(index)
            index += 1
    if denies:
        decision, matched = EXPLICIT_DENY, denies
    elif allows:
        decision, matched = ALLOWED, allows
    else:
        decision, matched = IMPLICIT_DENY, []
    return Decision(action, resource, decision, matched, sorted(missing))


# --- the simulator API on the offline backend -----------------------------------------


def _context(entries: list[dict[str, Any]] | None) -> dict[str, list[str]]:
    return {e["ContextKeyName"]: [str(v) for v in e.get("ContextKeyValues", [])] for e in entries or []}


def _simulate(policies: list[Policy], params: dict[str, Any]) -> dict[str, Any]:
    context = _context(params.get("ContextEntries"))
    results = []
    for action in params["ActionNames"]:
        for resource in params.get("ResourceArns") or ["*"]:
            d = evaluate(policies, action, resource, context)
            results.append({
                "EvalActionName": action,
                "EvalResourceName": resource,
                "EvalDecision": d.decision,
                "MatchedStatements": [
                    {"SourcePolicyId": f"PolicyInputList.{i + 1}", "SourcePolicyType": "IAM Policy"}
                    for i in d.matched
                ],
                "MissingContextValues": d.missing_context,
            })
    return {"EvaluationResults": results, "IsTruncated": False}


def _parse_inputs(documents: list[str]) -> list[Policy]:
    policies = []
    for i, doc in enumerate(documents, start=1):
        try:
            policies.append(Policy(doc, source=f"PolicyInputList.{i}"))
        except (ValueError, json.JSONDecodeError) as err:
            raise AWSError("MalformedPolicyDocument", f"PolicyInputList.{i}: {err}") from err
    return policies


@dispatch.operation("iam", "SimulateCustomPolicy")
def simulate_custom_policy(params: dict[str, Any]) -> dict[str, Any]:
    return _simulate(_parse_inputs(params["PolicyInputList"]), params)


def principal_policies(principal_arn: str) -> list[Policy]:
    """The identity policies moto holds for a user or role (inline and attached)."""
    from . import moto_state

    backend = moto_state.backend("iam")
    name = principal_arn.rsplit("/", 1)[-1]
    if ":role/" in principal_arn:
        try:
            entity = backend.get_role(name)
        except Exception as err:
            raise AWSError("NoSuchEntity", f"The role with name {name} cannot be found.", 404) from err
    elif ":user/" in principal_arn:
        try:
            entity = backend.get_user(name)
        except Exception as err:
            raise AWSError("NoSuchEntity", f"The user with name {name} cannot be found.", 404) from err
    else:
        raise AWSError("InvalidInput", f"Invalid ARN {principal_arn}: a user or role ARN is required.")
    documents: list[Any] = list(entity.policies.values())
    for managed in entity.managed_policies.values():
        documents.append(managed.default_version.document)
    return [Policy(doc) for doc in documents]


@dispatch.operation("iam", "SimulatePrincipalPolicy")
def simulate_principal_policy(params: dict[str, Any]) -> dict[str, Any]:
    policies = principal_policies(params["PolicySourceArn"])
    policies += _parse_inputs(params.get("PolicyInputList") or [])
    return _simulate(policies, params)


__all__ = ["Decision", "Policy", "evaluate"]
