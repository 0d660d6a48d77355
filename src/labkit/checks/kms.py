"""Judge whether a principal may use a KMS key, by KMS's rules for key policies and IAM policies.

AWS KMS authorises a request in this order (AWS KMS Developer Guide, "Determining access to a
KMS key"):

1. An explicit ``Deny`` in the key policy or in the caller's IAM policies refuses the request.
2. The key policy is the root of access: a statement whose ``Principal`` names the caller (its
   role or user ARN) and allows the action lets it through on its own.
3. A key policy statement that allows the *account* (``arn:aws:iam::<account>:root``) delegates
   to IAM: then an IAM policy of the caller that allows the action on the key lets it through.
   Without such a statement, IAM policies have no effect on the key, however broad.

Services use keys on a principal's behalf: SageMaker asks for ``kms:CreateGrant`` to hand the
training instances' EBS volumes a grant (the request carries ``kms:GrantIsForAWSResource`` =
true and ``kms:ViaService`` = ``sagemaker.<region>.amazonaws.com``), and S3 asks for
``kms:GenerateDataKey`` and ``kms:Decrypt`` (``kms:ViaService`` = ``s3.<region>.amazonaws.com``)
to write and read SSE-KMS objects such as a model artifact. :func:`training_job_needs` lists
these requests; :func:`explain` says, for each, whether the key lets the role through and why.

The offline backend stores key policies (moto) without enforcing them, and a training job
there never touches EBS: this module is how the lab judges a key policy offline. On AWS the same
policy is enforced by KMS itself, and a job whose role cannot use its keys fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..offline.iam import Policy, evaluate

_ARN_ACCOUNT = 4


def _as_list(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]


def _account(arn: str) -> str:
    parts = arn.split(":")
    return parts[_ARN_ACCOUNT] if len(parts) > _ARN_ACCOUNT else ""


def _principals(statement: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(AWS principals, service principals) a key policy statement names."""
    principal = statement.get("Principal")
    if principal == "*":
        return ["*"], []
    if not isinstance(principal, dict):
        return [], []
    return [str(p) for p in _as_list(principal.get("AWS"))], [str(p) for p in _as_list(principal.get("Service"))]


def _names_caller(aws: list[str], caller: str) -> bool:
    return "*" in aws or caller in aws


def _names_account(aws: list[str], account: str) -> bool:
    return f"arn:aws:iam::{account}:root" in aws or account in aws


@dataclass
class Access:
    """KMS's answer for one request: allowed or not, and which rule decided."""

    action: str
    allowed: bool
    reason: str


def _key_policy_statements(key_policy: dict[str, Any] | str) -> list[dict[str, Any]]:
    doc = json.loads(key_policy) if isinstance(key_policy, str) else key_policy
    if not isinstance(doc, dict) or "Statement" not in doc:
        raise ValueError("a key policy is a JSON object with a 'Statement' list")
    statements = _as_list(doc["Statement"])
    for i, st in enumerate(statements):
        if "Principal" not in st:
            raise ValueError(f"key policy statement {i}: a key policy statement needs a Principal")
    return statements


def _decide(statements: list[dict[str, Any]], action: str, key_arn: str,
            context: dict[str, list[str]]) -> str:
    """allowed / explicitDeny / implicitDeny of the given statements (principals already matched)."""
    if not statements:
        return "implicitDeny"
    doc = {"Version": "2012-10-17", "Statement": [{k: v for k, v in st.items() if k != "Principal"}
                                                  for st in statements]}
    return evaluate([Policy(doc, "key policy")], action, key_arn, context).decision


def access(key_policy: dict[str, Any] | str, key_arn: str, caller: str, action: str,
           identity_policies: list[dict[str, Any]] | None = None,
           context: dict[str, list[str]] | None = None) -> Access:
    """May ``caller`` (a role or user ARN) perform ``action`` on the key, by KMS's rules?"""
    statements = _key_policy_statements(key_policy)
    account = _account(caller)
    context = {"kms:CallerAccount": [account], **(context or {})}
    direct = [st for st in statements if _names_caller(_principals(st)[0], caller)]
    delegating = [st for st in statements if _names_account(_principals(st)[0], account)]
    identity = [Policy(p, "identity policy") for p in identity_policies or []]
    identity_decision = evaluate(identity, action, key_arn, context).decision if identity else "implicitDeny"
    direct_decision = _decide(direct, action, key_arn, context)
    delegated_decision = _decide(delegating, action, key_arn, context)
    if "explicitDeny" in (direct_decision, delegated_decision):
        return Access(action, False, "an explicit Deny in the key policy")
    if identity_decision == "explicitDeny":
        return Access(action, False, "an explicit Deny in the caller's IAM policies")
    if direct_decision == "allowed":
        return Access(action, True, "the key policy allows the caller")
    if delegated_decision == "allowed":
        if identity_decision == "allowed":
            return Access(action, True, "the key policy delegates to IAM (the account) and an IAM policy allows it")
        return Access(action, False, "the key policy delegates to IAM, but no IAM policy of the caller allows it")
    return Access(action, False, "the key policy neither allows the caller nor delegates this action to IAM "
                  "(no statement for the account), so IAM policies cannot help")


def training_job_needs(region: str, volume: bool = True, output: bool = True) -> list[tuple[str, dict[str, list[str]]]]:
    """The KMS requests made for a training job's role: (action, request context) pairs."""
    needs: list[tuple[str, dict[str, list[str]]]] = []
    if volume:
        needs.append(("kms:CreateGrant", {"kms:GrantIsForAWSResource": ["true"],
                                          "kms:ViaService": [f"sagemaker.{region}.amazonaws.com"]}))
    if output:
        via_s3 = {"kms:ViaService": [f"s3.{region}.amazonaws.com"]}
        needs += [("kms:GenerateDataKey", via_s3), ("kms:Decrypt", via_s3)]
    return needs


def explain(key_policy: dict[str, Any] | str, key_arn: str, caller: str,
            requests: list[tuple[str, dict[str, list[str]]]],
            identity_policies: list[dict[str, Any]] | None = None) -> list[Access]:
    """:func:`access` for each (action, context) request."""
    return [access(key_policy, key_arn, caller, action, identity_policies, context) for action, context in requests]


def lockout_problems(key_policy: dict[str, Any] | str, key_arn: str, admins: list[str]) -> list[str]:
    """Why the key could become unmanageable: KMS refuses a policy that lets no one change it.

    KMS's policy lockout safety check (``PutKeyPolicy``/``CreateKey`` without
    ``BypassPolicyLockoutSafetyCheck``) requires that the caller may still ``kms:PutKeyPolicy``.
    """
    statements = _key_policy_statements(key_policy)
    if any(access(statements_doc(statements), key_arn, admin, "kms:PutKeyPolicy").allowed for admin in admins):
        return []
    return ["no administrator may change the key policy afterwards (kms:PutKeyPolicy): KMS refuses such a "
            "policy unless the lockout safety check is bypassed, and a key nobody can manage can only be "
            "recovered by AWS Support"]


def statements_doc(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


__all__ = ["Access", "access", "explain", "lockout_problems", "training_job_needs"]
