"""Judge an IAM policy by what it allows, through the IAM policy simulator API.

``simulate`` calls ``iam.simulate_custom_policy``: on the offline backend it is
answered by :mod:`labkit.offline.iam`, on the sandbox backend by IAM itself, so the
same test grades on both.
"""

from __future__ import annotations

import json
from typing import Any

import boto3


def decision(policy: dict[str, Any] | str, action: str, resource: str = "*",
             context: dict[str, list[str]] | None = None) -> str:
    """``allowed``, ``explicitDeny`` or ``implicitDeny`` for one action on one resource."""
    document = policy if isinstance(policy, str) else json.dumps(policy)
    entries = [{"ContextKeyName": k, "ContextKeyValues": v, "ContextKeyType": "stringList"}
               for k, v in (context or {}).items()]
    kwargs: dict[str, Any] = {"PolicyInputList": [document], "ActionNames": [action],
                              "ResourceArns": [resource]}
    if entries:
        kwargs["ContextEntries"] = entries
    result = boto3.client("iam").simulate_custom_policy(**kwargs)
    return result["EvaluationResults"][0]["EvalDecision"]


def allowed(policy: dict[str, Any] | str, action: str, resource: str = "*",
            context: dict[str, list[str]] | None = None) -> bool:
    return decision(policy, action, resource, context) == "allowed"
