"""OpenSearch Serverless control plane: encryption, network and data access policies; collections.

moto 5.2.5 keeps security policies and collections, but ``create_collection`` crashes on the
encryption policy the workshop writes (``AWSOwnedKey: true`` has no ``KmsARN``, and a network
policy on the same collection is taken for an encryption policy), resource patterns such as
``collection/kb-*`` never match, and data access policies (CreateAccessPolicy) do not exist.
This module is the whole control plane instead, as plain classes:

* **Encryption policies** (``{"Rules": [...], "AWSOwnedKey": true}`` or ``"KmsARN"``) and
  **network policies** (a list of ``{"Rules", "AllowFromPublic", "SourceVPCEs"}``):
  CreateCollection needs an encryption policy whose rules match the collection's name, as on
  AWS; requests to the collection's endpoint need a network policy that allows public access.
* **Data access policies** (a list of ``{"Rules": [{"ResourceType": "collection"|"index",
  "Resource": [...], "Permission": [...]}], "Principal": [...]}``): every request to the
  collection's endpoint is allowed only when a rule grants its permission
  (``aoss:CreateIndex``, ``aoss:ReadDocument``...) on the collection or index to the caller.
* Resource patterns end in ``*`` or name a resource exactly (``collection/kb``, ``index/kb/*``).
* Collections: CreateCollection answers ``CREATING``; the next describe finds it ``ACTIVE``
  with AWS's ``collectionEndpoint`` (``https://<id>.<region>.aoss.amazonaws.com``).

Validation messages follow the service's (``Policy json is invalid, error: [...]``,
``No matching security policy of encryption type found for collection name: ...``).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import string
import threading
from dataclasses import dataclass, field
from typing import Any

from labkit.bedrock.errors import BedrockError

COLLECTION_PERMISSIONS = ("aoss:CreateCollectionItems", "aoss:DeleteCollectionItems", "aoss:UpdateCollectionItems",
                          "aoss:DescribeCollectionItems", "aoss:*")
INDEX_PERMISSIONS = ("aoss:CreateIndex", "aoss:DeleteIndex", "aoss:UpdateIndex", "aoss:DescribeIndex",
                     "aoss:ReadDocument", "aoss:WriteDocument", "aoss:*")


def _ms() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)


def invalid(message: str) -> BedrockError:
    return BedrockError("ValidationException", message)


def policy_invalid(problem: str) -> BedrockError:
    return invalid(f"Policy json is invalid, error: [{problem}]")


def matches(pattern: str, resource: str) -> bool:
    """AOSS resource patterns: exact, or a prefix followed by ``*``."""
    if pattern.endswith("*"):
        return resource.startswith(pattern[:-1])
    return pattern == resource


@dataclass
class Policy:
    kind: str  # encryption | network | data
    name: str
    document: Any
    description: str = ""
    version: str = field(default_factory=lambda: "MTY" + "".join(secrets.choice(string.ascii_letters + string.digits)
                                                                 for _ in range(17)))
    created: int = field(default_factory=_ms)
    modified: int = field(default_factory=_ms)

    def detail(self) -> dict[str, Any]:
        out = {"type": self.kind, "name": self.name, "policyVersion": self.version, "policy": self.document,
               "createdDate": self.created, "lastModifiedDate": self.modified}
        if self.description:
            out["description"] = self.description
        return out

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.detail().items() if k != "policy"}

    def rules(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(rule, the statement it belongs to) for every rule of the policy."""
        statements = [self.document] if isinstance(self.document, dict) else list(self.document)
        return [(rule, st) for st in statements for rule in st.get("Rules", [])]

    def covers(self, resource_type: str, resource: str) -> bool:
        return any(rule.get("ResourceType") == resource_type and any(matches(p, resource) for p in rule["Resource"])
                   for rule, _ in self.rules())


def _check_rules(rules: Any, path: str, types: tuple[str, ...], permissions: bool) -> None:
    if not isinstance(rules, list) or not rules:
        raise policy_invalid(f"{path}.Rules: is missing but it is required")
    for i, rule in enumerate(rules):
        where = f"{path}.Rules[{i}]"
        if not isinstance(rule, dict):
            raise policy_invalid(f"{where}: object expected")
        if rule.get("ResourceType") not in types:
            raise policy_invalid(f"{where}.ResourceType: does not have a value in the enumeration {list(types)}")
        resources = rule.get("Resource")
        if not isinstance(resources, list) or not resources:
            raise policy_invalid(f"{where}.Resource: is missing but it is required")
        prefix = "index/" if rule["ResourceType"] == "index" else "collection/"
        for r in resources:
            if not isinstance(r, str) or not r.startswith(prefix):
                raise policy_invalid(f"{where}.Resource: {r} must start with {prefix}")
            if prefix == "index/" and r.count("/") != 2:
                raise policy_invalid(f"{where}.Resource: {r} must be index/<collection>/<index>")
        if permissions:
            allowed = INDEX_PERMISSIONS if rule["ResourceType"] == "index" else COLLECTION_PERMISSIONS
            perms = rule.get("Permission")
            if not isinstance(perms, list) or not perms:
                raise policy_invalid(f"{where}.Permission: is missing but it is required")
            for perm in perms:
                if perm not in allowed:
                    raise invalid(f"Policy json is invalid, error: [{where}.Permission: {perm} is not a valid "
                                  f"permission for resource type {rule['ResourceType']}; use one of "
                                  f"{', '.join(allowed)}]")


def check_policy(kind: str, text: str) -> Any:
    """The policy document, or AWS's ValidationException for it."""
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise invalid(f"Policy json is invalid, error: [{err}]") from None
    if kind == "encryption":
        if not isinstance(doc, dict):
            raise policy_invalid("$: object expected")
        _check_rules(doc.get("Rules"), "$", ("collection",), False)
        if doc.get("AWSOwnedKey") is not True and not doc.get("KmsARN"):
            raise policy_invalid("$: one of AWSOwnedKey (true) or KmsARN is required")
        if doc.get("AWSOwnedKey") is True and doc.get("KmsARN"):
            raise policy_invalid("$: AWSOwnedKey and KmsARN cannot both be set")
        return doc
    if not isinstance(doc, list) or not doc:
        raise policy_invalid("$: array expected")
    for i, statement in enumerate(doc):
        path = f"$[{i}]"
        if not isinstance(statement, dict):
            raise policy_invalid(f"{path}: object expected")
        if kind == "network":
            _check_rules(statement.get("Rules"), path, ("collection", "dashboard"), False)
            if "AllowFromPublic" not in statement:
                raise policy_invalid(f"{path}.AllowFromPublic: is missing but it is required")
            if statement["AllowFromPublic"] is False and not (statement.get("SourceVPCEs")
                                                             or statement.get("SourceServices")):
                raise policy_invalid(f"{path}: SourceVPCEs or SourceServices is required when AllowFromPublic is "
                                     "false")
        else:
            _check_rules(statement.get("Rules"), path, ("collection", "index"), True)
            principals = statement.get("Principal")
            if not isinstance(principals, list) or not principals:
                raise policy_invalid(f"{path}.Principal: is missing but it is required")
            for p in principals:
                if not isinstance(p, str) or not (p.startswith("arn:aws:iam::") or p.startswith("arn:aws:sts::")
                                                  or p.startswith("saml/")):
                    raise policy_invalid(f"{path}.Principal: {p} is not an IAM or SAML principal ARN")
    return doc


@dataclass
class Collection:
    collection_id: str
    name: str
    kind: str
    arn: str
    kms_key: str
    region: str
    description: str = ""
    standby: str = "ENABLED"
    created: int = field(default_factory=_ms)
    status: str = "CREATING"

    @property
    def endpoint(self) -> str:
        return f"https://{self.collection_id}.{self.region}.aoss.amazonaws.com"

    def detail(self) -> dict[str, Any]:
        out = {"id": self.collection_id, "name": self.name, "status": self.status, "type": self.kind,
               "arn": self.arn, "kmsKeyArn": self.kms_key, "standbyReplicas": self.standby,
               "createdDate": self.created, "lastModifiedDate": self.created}
        if self.description:
            out["description"] = self.description
        return out


def _principal_matches(principal: str, caller: str) -> bool:
    if principal == caller:
        return True
    # A role session (arn:aws:sts::acct:assumed-role/Role/session) is the role (arn:aws:iam::acct:role/Role).
    if caller.startswith("arn:aws:sts::") and ":assumed-role/" in caller:
        account = caller.split(":")[4]
        role = caller.split(":assumed-role/", 1)[1].split("/", 1)[0]
        return principal == f"arn:aws:iam::{account}:role/{role}"
    return False


class Serverless:
    """The account's OpenSearch Serverless: policies and collections (the indexes are in :mod:`.engine`)."""

    def __init__(self, account_id: str, region: str):
        self.account_id = account_id
        self.region = region
        self.policies: dict[tuple[str, str], Policy] = {}
        self.collections: dict[str, Collection] = {}
        self.lock = threading.RLock()

    # --- policies ----------------------------------------------------------------------------
    def create_policy(self, kind: str, name: str, text: str, description: str | None) -> Policy:
        with self.lock:
            if (kind, name) in self.policies:
                raise BedrockError("ConflictException", f"Policy with name {name} and type {kind} already exists", 409)
            policy = Policy(kind, name, check_policy(kind, text), description or "")
            self.policies[(kind, name)] = policy
            return policy

    def get_policy(self, kind: str, name: str) -> Policy:
        policy = self.policies.get((kind, name))
        if policy is None:
            raise BedrockError("ResourceNotFoundException", f"Policy with name {name} and type {kind} is not found",
                               404)
        return policy

    def update_policy(self, kind: str, name: str, version: str, text: str | None,
                      description: str | None) -> Policy:
        with self.lock:
            policy = self.get_policy(kind, name)
            if version != policy.version:
                raise invalid("Policy version specified in the request refers to an older version and policy has "
                              "since changed")
            if text is not None:
                policy.document = check_policy(kind, text)
            if description is not None:
                policy.description = description
            policy.version = Policy(kind, name, None).version
            policy.modified = _ms()
            return policy

    def delete_policy(self, kind: str, name: str) -> None:
        with self.lock:
            self.get_policy(kind, name)
            del self.policies[(kind, name)]

    def list_policies(self, kind: str, resources: list[str] | None) -> list[Policy]:
        out = [p for (k, _), p in self.policies.items() if k == kind]
        if resources:
            out = [p for p in out if any(any(matches(pat, r) or matches(r, pat) for rule, _ in p.rules()
                                             for pat in rule["Resource"]) for r in resources)]
        return out

    # --- collections ---------------------------------------------------------------------------
    def create_collection(self, name: str, kind: str, description: str | None, standby: str | None) -> Collection:
        with self.lock:
            if any(c.name == name for c in self.collections.values()):
                raise BedrockError("ConflictException", f"Collection with name {name} already exists", 409)
            encryption = [p for (k, _), p in self.policies.items()
                          if k == "encryption" and p.covers("collection", f"collection/{name}")]
            if not encryption:
                raise invalid(f"No matching security policy of encryption type found for collection name: {name}. "
                              "Please create security policy of encryption type for this collection.")
            doc = encryption[0].document
            cid = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(20))
            c = Collection(cid, name, kind, f"arn:aws:aoss:{self.region}:{self.account_id}:collection/{cid}",
                           "auto" if doc.get("AWSOwnedKey") else doc["KmsARN"], self.region, description or "",
                           standby or "ENABLED")
            self.collections[cid] = c
            return c

    def settle(self) -> None:
        """What was CREATING a moment ago is ACTIVE now (AWS takes minutes; the offline backend one call)."""
        for c in self.collections.values():
            if c.status == "CREATING":
                c.status = "ACTIVE"

    def collection(self, cid: str) -> Collection:
        c = self.collections.get(cid)
        if c is None:
            raise BedrockError("ResourceNotFoundException", f"Collection with ID {cid} cannot be found.", 404)
        return c

    def by_arn(self, arn: str) -> Collection | None:
        return next((c for c in self.collections.values() if c.arn == arn), None)

    def delete_collection(self, cid: str) -> Collection:
        with self.lock:
            c = self.collection(cid)
            del self.collections[cid]
            c.status = "DELETING"
            return c

    # --- the data plane's checks ----------------------------------------------------------------
    def reachable(self, c: Collection) -> bool:
        """A network policy lets requests from outside a VPC reach the collection."""
        return any(st.get("AllowFromPublic") is True and rule.get("ResourceType") == "collection"
                   and any(matches(p, f"collection/{c.name}") for p in rule["Resource"])
                   for (k, _), pol in self.policies.items() if k == "network" for rule, st in pol.rules())

    def allowed(self, caller: str, c: Collection, permission: str, index: str | None) -> bool:
        """A data access policy grants ``permission`` on the collection (or ``index`` of it) to ``caller``."""
        rtype, resource = (("index", f"index/{c.name}/{index}") if index is not None
                           else ("collection", f"collection/{c.name}"))
        for (k, _), pol in self.policies.items():
            if k != "data":
                continue
            for rule, st in pol.rules():
                if rule.get("ResourceType") != rtype:
                    continue
                if not any(matches(p, resource) for p in rule["Resource"]):
                    continue
                if permission not in rule["Permission"] and "aoss:*" not in rule["Permission"]:
                    continue
                if any(_principal_matches(p, caller) for p in st.get("Principal", [])):
                    return True
        return False
