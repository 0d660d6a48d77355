"""The ``opensearchserverless`` API offline: policies, collections and indexes (moto's are replaced).

Thin: parameters in, :mod:`.collections` and :mod:`.engine` do the work, AWS's shapes out.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from labkit.bedrock import validation
from labkit.bedrock.errors import BedrockError

from .. import dispatch
from .engine import SearchError
from .http import current

SERVICE = "opensearchserverless"


def _op(name: str) -> Callable[[Callable[[dict[str, Any]], dict[str, Any]]], Any]:
    def register(fn: Callable[[dict[str, Any]], dict[str, Any]]):
        @functools.wraps(fn)
        def handler(params: dict[str, Any]) -> dict[str, Any]:
            try:
                validation.check(SERVICE, name, params)
                return fn(params)
            except BedrockError as err:
                raise dispatch.AWSError(err.code, err.message, err.status) from None
            except SearchError as err:
                raise dispatch.AWSError("ValidationException", err.reason, 400) from None

        dispatch.operation(SERVICE, name)(handler)
        return fn

    return register


# --- security (encryption, network) and data access policies ------------------------------------

@_op("CreateSecurityPolicy")
def create_security_policy(p: dict[str, Any]) -> dict[str, Any]:
    policy = current.serverless.create_policy(p["type"], p["name"], p["policy"], p.get("description"))
    return {"securityPolicyDetail": policy.detail()}


@_op("GetSecurityPolicy")
def get_security_policy(p: dict[str, Any]) -> dict[str, Any]:
    return {"securityPolicyDetail": current.serverless.get_policy(p["type"], p["name"]).detail()}


@_op("ListSecurityPolicies")
def list_security_policies(p: dict[str, Any]) -> dict[str, Any]:
    return {"securityPolicySummaries": [x.summary() for x in current.serverless.list_policies(p["type"],
                                                                                             p.get("resource"))]}


@_op("UpdateSecurityPolicy")
def update_security_policy(p: dict[str, Any]) -> dict[str, Any]:
    policy = current.serverless.update_policy(p["type"], p["name"], p["policyVersion"], p.get("policy"),
                                              p.get("description"))
    return {"securityPolicyDetail": policy.detail()}


@_op("DeleteSecurityPolicy")
def delete_security_policy(p: dict[str, Any]) -> dict[str, Any]:
    current.serverless.delete_policy(p["type"], p["name"])
    return {}


@_op("CreateAccessPolicy")
def create_access_policy(p: dict[str, Any]) -> dict[str, Any]:
    policy = current.serverless.create_policy(p["type"], p["name"], p["policy"], p.get("description"))
    return {"accessPolicyDetail": policy.detail()}


@_op("GetAccessPolicy")
def get_access_policy(p: dict[str, Any]) -> dict[str, Any]:
    return {"accessPolicyDetail": current.serverless.get_policy(p["type"], p["name"]).detail()}


@_op("ListAccessPolicies")
def list_access_policies(p: dict[str, Any]) -> dict[str, Any]:
    return {"accessPolicySummaries": [x.summary() for x in current.serverless.list_policies(p["type"],
                                                                                           p.get("resource"))]}


@_op("UpdateAccessPolicy")
def update_access_policy(p: dict[str, Any]) -> dict[str, Any]:
    policy = current.serverless.update_policy(p["type"], p["name"], p["policyVersion"], p.get("policy"),
                                              p.get("description"))
    return {"accessPolicyDetail": policy.detail()}


@_op("DeleteAccessPolicy")
def delete_access_policy(p: dict[str, Any]) -> dict[str, Any]:
    current.serverless.delete_policy(p["type"], p["name"])
    return {}


@_op("GetPoliciesStats")
def get_policies_stats(p: dict[str, Any]) -> dict[str, Any]:
    kinds = [k for k, _ in current.serverless.policies]
    return {"AccessPolicyStats": {"DataPolicyCount": kinds.count("data")},
            "SecurityPolicyStats": {"EncryptionPolicyCount": kinds.count("encryption"),
                                    "NetworkPolicyCount": kinds.count("network")},
            "SecurityConfigStats": {"SamlConfigCount": 0}, "LifecyclePolicyStats": {"RetentionPolicyCount": 0},
            "TotalPolicyCount": len(kinds)}


# --- collections -------------------------------------------------------------------------------------

@_op("CreateCollection")
def create_collection(p: dict[str, Any]) -> dict[str, Any]:
    c = current.serverless.create_collection(p["name"], p.get("type", "SEARCH"), p.get("description"),
                                             p.get("standbyReplicas"))
    for tag in p.get("tags") or []:
        current.tags.setdefault(c.arn, {})[tag["key"]] = tag["value"]
    return {"createCollectionDetail": c.detail()}


@_op("ListCollections")
def list_collections(p: dict[str, Any]) -> dict[str, Any]:
    s = current.serverless
    s.settle()
    filters = p.get("collectionFilters") or {}
    out = [c for c in s.collections.values()
           if (not filters.get("name") or c.name == filters["name"])
           and (not filters.get("status") or c.status == filters["status"])]
    return {"collectionSummaries": [{"id": c.collection_id, "name": c.name, "status": c.status, "arn": c.arn,
                                     "kmsKeyArn": c.kms_key} for c in out]}


@_op("BatchGetCollection")
def batch_get_collection(p: dict[str, Any]) -> dict[str, Any]:
    s = current.serverless
    if p.get("ids") and p.get("names"):
        raise BedrockError("ValidationException", "You need to provide IDs or names. You can't provide both IDs and "
                           "names in the same request")
    s.settle()
    details, errors = [], []
    for key, value in [("id", i) for i in p.get("ids") or []] + [("name", n) for n in p.get("names") or []]:
        found = [c for c in s.collections.values() if (c.collection_id if key == "id" else c.name) == value]
        if not found:
            errors.append({key: value, "errorCode": "NOT_FOUND", "errorMessage": "The specified Collection is not "
                                                                                 "found."})
        for c in found:
            details.append({**c.detail(), "collectionEndpoint": c.endpoint,
                            "dashboardEndpoint": f"{c.endpoint}/_dashboards"})
    return {"collectionDetails": details, "collectionErrorDetails": errors}


@_op("UpdateCollection")
def update_collection(p: dict[str, Any]) -> dict[str, Any]:
    c = current.serverless.collection(p["id"])
    if p.get("description") is not None:
        c.description = p["description"]
    d = c.detail()
    return {"updateCollectionDetail": {k: d[k] for k in ("id", "name", "status", "type", "arn", "createdDate",
                                                         "lastModifiedDate") if k in d}}


@_op("DeleteCollection")
def delete_collection(p: dict[str, Any]) -> dict[str, Any]:
    c = current.serverless.delete_collection(p["id"])
    current.store.forget(c.collection_id)
    current.tags.pop(c.arn, None)
    return {"deleteCollectionDetail": {"id": c.collection_id, "name": c.name, "status": "DELETING"}}


# --- indexes through the control plane (CreateIndex, GetIndex, DeleteIndex) -------------------------------

def _active(cid: str) -> str:
    current.serverless.settle()
    c = current.serverless.collection(cid)
    if c.status != "ACTIVE":
        raise BedrockError("ValidationException", f"Collection {cid} is not active.")
    return c.collection_id


@_op("CreateIndex")
def create_index(p: dict[str, Any]) -> dict[str, Any]:
    current.store.create(_active(p["id"]), p["indexName"], p.get("indexSchema") or {})
    return {}


@_op("GetIndex")
def get_index(p: dict[str, Any]) -> dict[str, Any]:
    idx = current.store.index(_active(p["id"]), p["indexName"])
    described = idx.describe()[idx.name]
    return {"indexSchema": {"settings": described["settings"], "mappings": described["mappings"]}}


@_op("DeleteIndex")
def delete_index(p: dict[str, Any]) -> dict[str, Any]:
    current.store.drop(_active(p["id"]), p["indexName"])
    return {}


# --- tags -------------------------------------------------------------------------------------------------

@_op("TagResource")
def tag_resource(p: dict[str, Any]) -> dict[str, Any]:
    for tag in p["tags"]:
        current.tags.setdefault(p["resourceArn"], {})[tag["key"]] = tag["value"]
    return {}


@_op("UntagResource")
def untag_resource(p: dict[str, Any]) -> dict[str, Any]:
    for key in p["tagKeys"]:
        current.tags.get(p["resourceArn"], {}).pop(key, None)
    return {}


@_op("ListTagsForResource")
def list_tags_for_resource(p: dict[str, Any]) -> dict[str, Any]:
    return {"tags": [{"key": k, "value": v} for k, v in current.tags.get(p["resourceArn"], {}).items()]}
