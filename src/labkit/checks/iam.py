"""Judge an IAM policy by what it allows, through the IAM policy simulator API.

``simulate`` calls ``iam.simulate_custom_policy``: on the offline backend it is
answered by :mod:`labkit.offline.iam`, on the sandbox backend by IAM itself, so the
same test grades on both.
"""

from __future__ import annotations

import json
import weakref
from typing import Any

import boto3

# One IAM client per boto3 default session: a lab's test asks the simulator dozens of
# questions, and a new client costs more CPU than the question (botocore builds one per call).
_clients: weakref.WeakKeyDictionary[boto3.Session, Any] = weakref.WeakKeyDictionary()


def _iam() -> Any:
    session = boto3._get_default_session()
    client = _clients.get(session)
    if client is None:
        client = _clients[session] = session.client("iam")
    return client


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
    result = _iam().simulate_custom_policy(**kwargs)
    return result["EvaluationResults"][0]["EvalDecision"]


def allowed(policy: dict[str, Any] | str, action: str, resource: str = "*",
            context: dict[str, list[str]] | None = None) -> bool:
    return decision(policy, action, resource, context) == "allowed"
