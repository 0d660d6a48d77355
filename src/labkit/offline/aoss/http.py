"""The REST API of an OpenSearch Serverless collection, as a WSGI app of the local AWS endpoint.

Registered with ``@dispatch.data_plane("_aoss")``: the local endpoint hands it requests whose
path is ``/_aoss/<collection-id>/<OpenSearch path>``; :mod:`.client` makes opensearch-py send
the requests a learner addresses to ``https://<collection-id>.<region>.aoss.amazonaws.com``
there. Each request is checked as the collection's endpoint checks it:

1. the collection exists and is ``ACTIVE``;
2. the request is signed with SigV4 for the service ``aoss`` (``AWSV4SignerAuth(credentials,
   region, "aoss")`` or ``AWS4Auth(..., "aoss")``); unsigned or scoped to another service: 403;
3. a network policy allows access from outside a VPC to the collection: else 403 Forbidden;
4. a data access policy grants the caller (the identity of the request's access key, as STS
   names it) the permission the request needs on the collection or index
   (``aoss:CreateIndex``, ``aoss:DescribeIndex``, ``aoss:UpdateIndex``, ``aoss:DeleteIndex``,
   ``aoss:ReadDocument``, ``aoss:WriteDocument``): else 403 ``security_exception``.

Then :mod:`.engine` does the work. Responses are OpenSearch's JSON bodies and status codes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from werkzeug.wrappers import Request, Response

from .. import ACCOUNT_ID, REGION, dispatch, moto_state
from .engine import SearchError, Store

PREFIX = "_aoss"
_CREDENTIAL = re.compile(r"Credential=([^/]+)/(\d{8})/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _forbidden() -> Response:
    return _json({"status": 403, "request-id": "labkit-offline", "error": {"reason": "403 Forbidden",
                                                                           "type": "Forbidden"}}, 403)


def caller_of(access_key: str) -> str:
    """The ARN STS gives the identity of ``access_key`` (an assumed-role session, a user...)."""
    return moto_state.backend("sts").get_caller_identity(access_key, REGION)[1]


def _permission(method: str, index: str | None, action: str | None) -> tuple[str, str | None]:
    """(the permission a request needs, the index it is on, or None for the collection)."""
    if index is None:
        if action in ("_bulk", "_search", "_msearch"):
            return ("aoss:WriteDocument" if action == "_bulk" else "aoss:ReadDocument"), "*"
        return "aoss:DescribeCollectionItems", None
    if action is None:
        return {"PUT": "aoss:CreateIndex", "DELETE": "aoss:DeleteIndex"}.get(method, "aoss:DescribeIndex"), index
    if action in ("_mapping", "_settings"):
        return ("aoss:UpdateIndex" if method in ("PUT", "POST") else "aoss:DescribeIndex"), index
    if action in ("_search", "_count", "_msearch"):
        return "aoss:ReadDocument", index
    if action in ("_doc", "_create", "_update", "_bulk", "_delete_by_query", "_refresh"):
        return ("aoss:ReadDocument" if method in ("GET", "HEAD") else "aoss:WriteDocument"), index
    return "aoss:DescribeIndex", index


class DataPlane:
    """Routes a collection's REST requests to the engine, after the endpoint's checks."""

    def __init__(self, serverless_state: Any):
        self.state = serverless_state  # has .serverless (control plane) and .store (engine)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            response = self.handle(request)
        except SearchError as err:
            response = _json(err.body(), err.status)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if len(parts) < 2 or parts[0] != PREFIX:
            return _json({"message": "Not Found"}, 404)
        cid, rest = parts[1], [p for p in parts[2:] if p]
        serverless, store = self.state.serverless, self.state.store
        serverless.settle()
        collection = serverless.collections.get(cid)
        if collection is None or collection.status != "ACTIVE":
            return _json({"message": f"Collection {cid} not found"}, 404)
        auth = _CREDENTIAL.search(request.headers.get("Authorization", ""))
        if auth is None:
            return _forbidden()
        if auth.group(4) != "aoss":
            return _json({"message": "Credential should be scoped to correct service: 'aoss'. "}, 403)
        if not serverless.reachable(collection):
            return _forbidden()
        index = rest[0] if rest and not rest[0].startswith("_") else None
        action = (rest[1] if len(rest) > 1 else None) if index is not None else (rest[0] if rest else None)
        permission, resource = _permission(request.method, index, action)
        caller = caller_of(auth.group(1))
        checked = None if resource == "*" else resource
        if resource != "*" and not serverless.allowed(caller, collection, permission, checked):
            return self._denied(caller, permission)
        return self.route(request, cid, store, index, action, rest, caller, collection, permission)

    @staticmethod
    def _denied(caller: str, permission: str) -> Response:
        reason = (f"User does not have permissions for the requested resource: {permission} is not granted to "
                  f"{caller} by any data access policy of the collection")
        return _json({"error": {"root_cause": [{"type": "security_exception", "reason": reason}],
                                "type": "security_exception", "reason": reason}, "status": 403}, 403)

    def _body(self, request: Request) -> dict[str, Any]:
        data = request.get_data()
        if not data:
            return {}
        try:
            body = json.loads(data)
        except ValueError as err:
            raise SearchError(400, "parse_exception", f"request body is not valid JSON: {err}") from None
        if not isinstance(body, dict):
            raise SearchError(400, "parse_exception", "request body must be a JSON object")
        return body

    def route(self, request: Request, cid: str, store: Store, index: str | None, action: str | None,
              rest: list[str], caller: str, collection: Any, permission: str) -> Response:
        method = request.method
        if index is None:
            if action is None:
                return _json({"name": cid, "cluster_name": f"{ACCOUNT_ID}:{collection.name}",
                              "version": {"distribution": "opensearch", "number": "2.17.0",
                                          "build_flavor": "serverless"},
                              "tagline": "The OpenSearch Project: https://opensearch.org/"})
            if action == "_bulk":
                return self.bulk(request, cid, store, None, caller, collection)
            if action == "_cat" and rest[1:2] == ["indices"]:
                rows = [{"health": "green", "status": "open", "index": n, "uuid": i.uuid, "docs.count": str(len(i.docs))}
                        for n, i in store.indexes(cid).items()]
                if request.args.get("format") == "json":
                    return _json(rows)
                return Response("".join(f"green open {r['index']} {r['uuid']} {r['docs.count']}\n" for r in rows),
                                mimetype="text/plain")
            raise SearchError(400, "illegal_argument_exception", f"The path /{'/'.join(rest)} is not emulated "
                              "offline for OpenSearch Serverless.")
        if action is None:
            if method == "PUT":
                store.create(cid, index, self._body(request))
                return _json({"acknowledged": True, "shards_acknowledged": True, "index": index})
            if method == "HEAD":
                return Response(status=200 if index in store.indexes(cid) else 404)
            if method == "GET":
                return _json(store.index(cid, index).describe())
            if method == "DELETE":
                store.drop(cid, index)
                return _json({"acknowledged": True})
        idx = store.index(cid, index)
        doc_id = rest[2] if len(rest) > 2 else None
        if action == "_mapping":
            if method in ("PUT", "POST"):
                idx.add_mappings(self._body(request).get("properties") or {})
                return _json({"acknowledged": True})
            return _json({index: {"mappings": idx.describe()[index]["mappings"]}})
        if action == "_settings":
            return _json({index: {"settings": idx.describe()[index]["settings"]}})
        if action == "_search":
            return _json(idx.search(self._body(request)))
        if action == "_count":
            query = self._body(request).get("query") or {"match_all": {}}
            return _json({"count": len(idx.evaluate(query)), "_shards": {"total": 0, "successful": 0, "skipped": 0,
                                                                         "failed": 0}})
        if action == "_refresh":
            return _json({"_shards": {"total": 0, "successful": 0, "failed": 0}})
        if action == "_delete_by_query":
            matched = list(idx.evaluate(self._body(request).get("query") or {"match_all": {}}))
            for d in matched:
                idx.delete(d)
            return _json({"took": 1, "timed_out": False, "total": len(matched), "deleted": len(matched),
                          "batches": 1, "version_conflicts": 0, "noops": 0, "failures": []})
        if action == "_bulk":
            return self.bulk(request, cid, store, index, caller, collection)
        if action in ("_doc", "_create"):
            if method in ("PUT", "POST"):
                op = "create" if action == "_create" or request.args.get("op_type") == "create" else "index"
                out, status = idx.put(doc_id, self._body(request), op)
                return _json(out, status)
            if doc_id is None:
                raise SearchError(400, "illegal_argument_exception", "a document id is required")
            if method in ("GET", "HEAD"):
                out, status = idx.get(doc_id)
                return _json(out, status) if method == "GET" else Response(status=status)
            if method == "DELETE":
                out, status = idx.delete(doc_id)
                return _json(out, status)
        if action == "_update" and doc_id:
            out, status = idx.update(doc_id, self._body(request))
            return _json(out, status)
        raise SearchError(400, "illegal_argument_exception", f"{method} /{'/'.join(rest)} is not emulated offline "
                          "for OpenSearch Serverless.")

    def bulk(self, request: Request, cid: str, store: Store, default_index: str | None, caller: str,
             collection: Any) -> Response:
        lines = [line for line in request.get_data().decode("utf-8").splitlines() if line.strip()]
        items, errors, i = [], False, 0
        while i < len(lines):
            try:
                action_line = json.loads(lines[i])
            except ValueError:
                raise SearchError(400, "illegal_argument_exception", f"Malformed action/metadata line [{i + 1}]") \
                    from None
            (op, meta), = action_line.items()
            i += 1
            source = None
            if op in ("index", "create", "update"):
                if i >= len(lines):
                    raise SearchError(400, "illegal_argument_exception", "The bulk request must be terminated by a "
                                      "newline [\\n]")
                source = json.loads(lines[i])
                i += 1
            name = meta.get("_index", default_index)
            try:
                if name is None:
                    raise SearchError(400, "action_request_validation_exception",
                                      "Validation Failed: 1: index is missing;")
                if not self.state.serverless.allowed(caller, collection, "aoss:WriteDocument", name):
                    raise SearchError(403, "security_exception", f"no permissions for aoss:WriteDocument on index "
                                      f"[{name}] for {caller}")
                idx = store.index(cid, name)
                if op == "delete":
                    out, status = idx.delete(meta.get("_id", ""))
                elif op == "update":
                    out, status = idx.update(meta.get("_id", ""), source or {})
                else:
                    out, status = idx.put(meta.get("_id"), source, op)
                items.append({op: {**out, "status": status}})
            except SearchError as err:
                errors = True
                items.append({op: {"_index": name, "_id": meta.get("_id"), "status": err.status,
                                   "error": {"type": err.kind, "reason": err.reason}}})
        return _json({"took": 1, "errors": errors, "items": items})


class _State:
    """Set by :mod:`labkit.offline.aoss` to its live state (replaced on every reset)."""

    serverless: Any = None
    store: Any = None
    tags: dict[str, dict[str, str]] = {}


current = _State()
app = dispatch.data_plane(PREFIX)(DataPlane(current))
