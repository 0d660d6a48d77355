"""An OpenSearch Serverless collection's indexes: mappings, documents, and search on a real ANN index.

Plain Python, no HTTP (:mod:`.http` is the REST layer). What a vector-search collection does
for the course's and the workshop's code:

* **Indexes** with ``settings`` (``index.knn``, ``knn.algo_param.ef_search``...) and
  ``mappings.properties`` of ``knn_vector`` (``dimension``; ``method``: ``hnsw`` with engine
  ``faiss``, ``nmslib`` or ``lucene``; ``space_type`` ``l2``, ``innerproduct`` or
  ``cosinesimil``; ``parameters.m``, ``ef_construction``, ``ef_search``), ``text``,
  ``keyword``, numbers, ``boolean``, ``date`` and ``object`` fields; fields not mapped are
  added as documents bring them (dynamic mapping: strings as ``text`` with a ``.keyword``).
* **Documents**: index, create, get, delete, ``_bulk``; vectors are checked against the
  field's dimension as OpenSearch checks them.
* **Search**: ``knn`` (with ``k`` and an efficient ``filter``), ``match``, ``multi_match``,
  ``match_all``, ``term``, ``terms``, ``range``, ``exists``, ``ids`` and ``bool``
  (``must``, ``filter``, ``should``, ``must_not``); ``size``, ``from`` and ``_source``.
  Text relevance is BM25 (k1 = 1.2, b = 0.75) over lower-cased word tokens.

Every ``knn_vector`` field has its own faiss HNSW graph (:class:`labkit.bedrock.vectors.AnnIndex`,
with the mapping's ``m`` and ``ef_construction`` and the ``ef_search`` of the mapping or the
index settings). ``nmslib`` and ``lucene`` mappings run on the same faiss HNSW: the algorithm
is the one those engines implement, the library is not. Scores follow OpenSearch's
k-NN formulas: ``l2`` -> ``1 / (1 + d²)``; ``cosinesimil`` -> ``(1 + cos) / 2`` (nmslib:
``1 / (2 - cos)``); ``innerproduct`` -> ``1 + ip`` for ``ip >= 0``, else ``1 / (1 - ip)``.
Documents are searchable as soon as they are written (AOSS makes them visible within seconds).
"""

from __future__ import annotations

import copy
import math
import re
import threading
import uuid
from collections import Counter
from typing import Any

import numpy as np

from labkit.bedrock.vectors import AnnIndex

MAX_DIMENSION = 16000
ENGINES = ("faiss", "nmslib", "lucene")
SPACES = ("l2", "innerproduct", "cosinesimil")
_METRIC = {"l2": "euclidean", "innerproduct": "innerproduct", "cosinesimil": "cosine"}
_TOKEN = re.compile(r"\w+", re.U)
K1, B = 1.2, 0.75


class SearchError(Exception):
    """An error OpenSearch answers with: ``kind`` (``index_not_found_exception``...), HTTP ``status``."""

    def __init__(self, status: int, kind: str, reason: str, **extra: Any):
        super().__init__(reason)
        self.status = status
        self.kind = kind
        self.reason = reason
        self.extra = extra

    def body(self) -> dict[str, Any]:
        cause = {"type": self.kind, "reason": self.reason, **self.extra}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


def bad_request(reason: str, kind: str = "illegal_argument_exception") -> SearchError:
    return SearchError(400, kind, reason)


def tokens(text: Any) -> list[str]:
    return _TOKEN.findall(str(text).lower())


def flatten_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (settings or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_settings(value, name + "."))
        else:
            out[name if name.startswith("index.") else f"index.{name}"] = value
    return out


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def get_path(source: dict[str, Any], path: str) -> Any:
    cur: Any = source
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return None
    return cur


class VectorField:
    def __init__(self, name: str, spec: dict[str, Any], settings: dict[str, Any]):
        dim = spec.get("dimension")
        if not isinstance(dim, int) or not 1 <= dim <= MAX_DIMENSION:
            raise SearchError(400, "mapper_parsing_exception",
                              f"Dimension value must be between 1 and {MAX_DIMENSION} for field [{name}]")
        method = spec.get("method") or {}
        self.name = name
        self.dimension = dim
        self.method = method.get("name", "hnsw")
        self.engine = method.get("engine", "faiss")
        self.space = method.get("space_type", spec.get("space_type", "l2"))
        if self.method != "hnsw":
            raise SearchError(400, "mapper_parsing_exception", f"The method [{self.method}] of field [{name}] is "
                              "not emulated offline (it needs training); use hnsw.")
        if self.engine not in ENGINES:
            raise SearchError(400, "mapper_parsing_exception", f"Invalid engine [{self.engine}] for field [{name}]; "
                              f"choose one of {list(ENGINES)}")
        if self.space not in SPACES:
            raise SearchError(400, "mapper_parsing_exception", f"Unable to parse mapping into KNNMethodContext. "
                              f"Invalid space type [{self.space}] for field [{name}]")
        params = method.get("parameters") or {}
        ef_search = int(params.get("ef_search") or settings.get("index.knn.algo_param.ef_search") or 100)
        self.ann = AnnIndex(dim, _METRIC[self.space], m=int(params.get("m", 16)),
                            ef_construction=int(params.get("ef_construction", 100)), ef_search=ef_search)

    def vector(self, value: Any) -> np.ndarray:
        try:
            vec = np.asarray(value, dtype=np.float32) if isinstance(value, list) else None
        except (TypeError, ValueError):
            vec = None
        if vec is None or vec.ndim != 1 or not np.isfinite(vec).all():
            raise SearchError(400, "mapper_parsing_exception", f"failed to parse field [{self.name}] of type "
                              "[knn_vector]: the value must be an array of numbers")
        if len(vec) != self.dimension:
            raise SearchError(400, "mapper_parsing_exception", f"Vector dimension mismatch. Expected: "
                              f"{self.dimension}, Given: {len(vec)}")
        return vec

    def score(self, distance: float) -> float:
        if self.space == "l2":
            return 1.0 / (1.0 + distance * distance)
        if self.space == "cosinesimil":
            cos = 1.0 - distance
            return 1.0 / (2.0 - cos) if self.engine == "nmslib" else (1.0 + cos) / 2.0
        ip = -distance
        return 1.0 + ip if ip >= 0 else 1.0 / (1.0 - ip)


TYPES = ("text", "keyword", "integer", "long", "float", "double", "short", "byte", "half_float", "boolean", "date",
         "object", "nested", "knn_vector", "flat_object")


class Index:
    def __init__(self, name: str, body: dict[str, Any]):
        self.name = name
        self.uuid = uuid.uuid4().hex[:22]
        self.settings = flatten_settings(body.get("settings") or {})
        self.knn = _truthy(self.settings.get("index.knn", False))
        self.mappings: dict[str, Any] = {"properties": {}}
        self.types: dict[str, str] = {}  # dotted path -> type
        self.vectors: dict[str, VectorField] = {}
        self.docs: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, int] = {}
        self.order: dict[str, int] = {}  # when each document was first written (ties in scores keep it)
        self.seq = 0
        self.text_stats: dict[str, dict[str, Counter]] = {}  # field -> doc id -> term counts
        self.lock = threading.RLock()
        self.add_mappings((body.get("mappings") or {}).get("properties") or {})

    # --- mappings -------------------------------------------------------------------------------
    def add_mappings(self, properties: dict[str, Any], prefix: str = "", target: dict[str, Any] | None = None) -> None:
        target = self.mappings["properties"] if target is None else target
        for name, spec in properties.items():
            path = f"{prefix}{name}"
            kind = spec.get("type", "object" if "properties" in spec else None)
            if kind not in TYPES:
                raise SearchError(400, "mapper_parsing_exception", f"No handler for type [{kind}] declared on field "
                                  f"[{path}]")
            if path in self.types and self.types[path] != kind:
                raise bad_request(f"mapper [{path}] cannot be changed from type [{self.types[path]}] to [{kind}]")
            if kind == "knn_vector":
                if not self.knn and spec.get("method"):
                    raise SearchError(400, "mapper_parsing_exception", f"Cannot set method for field [{path}]: "
                                      "index.knn is not true in the index settings")
                if path not in self.vectors:
                    self.vectors[path] = VectorField(path, spec, self.settings)
            self.types[path] = kind
            if kind in ("object", "nested"):
                inner = target.setdefault(name, {"properties": {}})
                inner.setdefault("properties", {})
                self.add_mappings(spec.get("properties") or {}, path + ".", inner["properties"])
            else:
                target[name] = copy.deepcopy(spec)

    def _dynamic(self, source: dict[str, Any], prefix: str = "") -> None:
        for key, value in source.items():
            path = f"{prefix}{key}"
            if path in self.types:
                if self.types[path] in ("object", "nested") and isinstance(value, dict):
                    self._dynamic(value, path + ".")
                continue
            if isinstance(value, dict):
                self.add_mappings({key: {"type": "object"}}, prefix, self._target(prefix))
                self._dynamic(value, path + ".")
            elif isinstance(value, bool):
                self.add_mappings({key: {"type": "boolean"}}, prefix, self._target(prefix))
            elif isinstance(value, int):
                self.add_mappings({key: {"type": "long"}}, prefix, self._target(prefix))
            elif isinstance(value, float):
                self.add_mappings({key: {"type": "float"}}, prefix, self._target(prefix))
            elif isinstance(value, str) or (isinstance(value, list) and value and isinstance(value[0], str)):
                self.add_mappings({key: {"type": "text", "fields": {"keyword": {"type": "keyword",
                                                                               "ignore_above": 256}}}},
                                  prefix, self._target(prefix))
            elif isinstance(value, list) and value and isinstance(value[0], int | float):
                self.add_mappings({key: {"type": "float"}}, prefix, self._target(prefix))

    def _target(self, prefix: str) -> dict[str, Any]:
        target = self.mappings["properties"]
        for part in [p for p in prefix.split(".") if p]:
            target = target[part]["properties"]
        return target

    def describe(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"index": {"number_of_shards": "2", "number_of_replicas": "0",
                                              "uuid": self.uuid, "provided_name": self.name}}
        if self.knn:
            settings["index"]["knn"] = "true"
        for key, value in self.settings.items():
            parts = key.split(".")[1:]
            cur = settings["index"]
            while len(parts) > 1 and isinstance(cur.get(parts[0], {}), dict):
                cur = cur.setdefault(parts.pop(0), {})
            cur[".".join(parts)] = str(value).lower() if isinstance(value, bool) else str(value)
        return {self.name: {"aliases": {}, "mappings": copy.deepcopy(self.mappings), "settings": settings}}

    # --- documents -------------------------------------------------------------------------------
    def put(self, doc_id: str | None, source: Any, op: str = "index") -> tuple[dict[str, Any], int]:
        if not isinstance(source, dict):
            raise SearchError(400, "mapper_parsing_exception", "failed to parse, document is empty")
        with self.lock:
            doc_id = doc_id or uuid.uuid4().hex[:20]
            if op == "create" and doc_id in self.docs:
                raise SearchError(409, "version_conflict_engine_exception",
                                  f"[{doc_id}]: version conflict, document already exists (current version "
                                  f"[{self.versions[doc_id]}])", index=self.name, shard="0")
            vectors = {}
            for path, field in self.vectors.items():
                value = get_path(source, path)
                if value is not None:
                    vectors[path] = field.vector(value)
            self._dynamic({k: v for k, v in source.items() if k not in self.vectors})
            created = doc_id not in self.docs
            if not created:
                self._unindex(doc_id)
            self.docs[doc_id] = source  # a fresh object from the request: copied on the way out, not in
            self.order.setdefault(doc_id, self.seq)
            self.versions[doc_id] = self.versions.get(doc_id, 0) + 1
            for path, vec in vectors.items():
                self.vectors[path].ann.upsert([doc_id], vec.reshape(1, -1), [None])
            for path, kind in self.types.items():
                if kind == "text":
                    value = get_path(source, path)
                    if value is not None:
                        text = " ".join(map(str, value)) if isinstance(value, list) else str(value)
                        self.text_stats.setdefault(path, {})[doc_id] = Counter(tokens(text))
            self.seq += 1
            return {"_index": self.name, "_id": doc_id, "_version": self.versions[doc_id],
                    "result": "created" if created else "updated", "_shards": {"total": 0, "successful": 0,
                                                                               "failed": 0},
                    "_seq_no": self.seq, "_primary_term": 1}, 201 if created else 200

    def _unindex(self, doc_id: str) -> None:
        for field in self.vectors.values():
            field.ann.delete([doc_id])
        for stats in self.text_stats.values():
            stats.pop(doc_id, None)

    def get(self, doc_id: str) -> tuple[dict[str, Any], int]:
        doc = self.docs.get(doc_id)
        if doc is None:
            return {"_index": self.name, "_id": doc_id, "found": False}, 404
        return {"_index": self.name, "_id": doc_id, "_version": self.versions[doc_id], "_seq_no": self.seq,
                "_primary_term": 1, "found": True, "_source": copy.deepcopy(doc)}, 200

    def delete(self, doc_id: str) -> tuple[dict[str, Any], int]:
        with self.lock:
            found = doc_id in self.docs
            if found:
                self._unindex(doc_id)
                del self.docs[doc_id]
                self.order.pop(doc_id, None)
                self.versions[doc_id] += 1
                self.seq += 1
            return {"_index": self.name, "_id": doc_id, "_version": self.versions.get(doc_id, 1),
                    "result": "deleted" if found else "not_found", "_shards": {"total": 0, "successful": 0,
                                                                               "failed": 0},
                    "_seq_no": self.seq, "_primary_term": 1}, 200 if found else 404

    def update(self, doc_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        doc = self.docs.get(doc_id)
        if doc is None:
            if body.get("doc_as_upsert") or "upsert" in body:
                return self.put(doc_id, body.get("upsert") or body.get("doc") or {})
            raise SearchError(404, "document_missing_exception", f"[{doc_id}]: document missing", index=self.name)
        merged = _merge(copy.deepcopy(doc), body.get("doc") or {})
        out, _ = self.put(doc_id, merged)
        return out, 200

    # --- search ------------------------------------------------------------------------------------
    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            query = body.get("query") or {"match_all": {}}
            scores = self.evaluate(query)
            size = int(body.get("size", 10))
            start = int(body.get("from", 0))
            order = sorted(scores.items(), key=lambda kv: (-kv[1], self._position(kv[0])))
            hits = []
            for doc_id, score in order[start:start + size]:
                hit: dict[str, Any] = {"_index": self.name, "_id": doc_id, "_score": score}
                source = _filter_source(self.docs[doc_id], body.get("_source", True))
                if source is not None:
                    hit["_source"] = source
                hits.append(hit)
            return {"took": 1, "timed_out": False,
                    "_shards": {"total": 0, "successful": 0, "skipped": 0, "failed": 0},
                    "hits": {"total": {"value": len(scores), "relation": "eq"},
                             "max_score": max(scores.values()) if scores else None, "hits": hits}}

    def _position(self, doc_id: str) -> int:
        return self.order.get(doc_id, 0)

    def evaluate(self, query: dict[str, Any]) -> dict[str, float]:
        """The documents ``query`` matches, with their scores."""
        if not isinstance(query, dict) or len(query) != 1:
            raise SearchError(400, "parsing_exception", "[query] malformed query, expected a single query clause")
        (kind, arg), = query.items()
        method = getattr(self, f"_q_{kind}", None)
        if method is None:
            raise SearchError(400, "parsing_exception", f"unknown query [{kind}]")
        return method(arg)

    def _q_match_all(self, arg: Any) -> dict[str, float]:
        return {d: float((arg or {}).get("boost", 1.0)) for d in self.docs}

    def _q_ids(self, arg: dict[str, Any]) -> dict[str, float]:
        return {d: 1.0 for d in arg.get("values", []) if d in self.docs}

    def _q_exists(self, arg: dict[str, Any]) -> dict[str, float]:
        return {d: 1.0 for d, src in self.docs.items() if get_path(src, arg["field"]) is not None}

    def _values(self, source: dict[str, Any], field: str) -> list[Any]:
        value = get_path(source, field.removesuffix(".keyword"))
        if value is None:
            return []
        return value if isinstance(value, list) else [value]

    def _q_term(self, arg: dict[str, Any]) -> dict[str, float]:
        (field, spec), = arg.items()
        value = spec.get("value") if isinstance(spec, dict) else spec
        exact = field.endswith(".keyword") or self.types.get(field) != "text"
        out = {}
        for d, src in self.docs.items():
            vals = self._values(src, field)
            if any(v == value if exact else str(value).lower() in tokens(v) for v in vals):
                out[d] = 1.0
        return out

    def _q_terms(self, arg: dict[str, Any]) -> dict[str, float]:
        (field, values), = ((k, v) for k, v in arg.items() if k != "boost")
        out: dict[str, float] = {}
        for value in values:
            out.update(self._q_term({field: value}))
        return out

    def _q_range(self, arg: dict[str, Any]) -> dict[str, float]:
        (field, bounds), = arg.items()
        ops = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b,
               "lte": lambda a, b: a <= b}
        out = {}
        for d, src in self.docs.items():
            for v in self._values(src, field):
                try:
                    if all(ops[op](v, b) for op, b in bounds.items() if op in ops):
                        out[d] = 1.0
                        break
                except TypeError:
                    continue
        return out

    def _bm25(self, field: str, query_terms: list[str], operator: str) -> dict[str, float]:
        stats = self.text_stats.get(field, {})
        if not stats or not query_terms:
            return {}
        n = len(stats)
        avg = sum(sum(c.values()) for c in stats.values()) / n
        out: dict[str, float] = {}
        for d, counts in stats.items():
            present = [t for t in query_terms if counts.get(t)]
            if not present or (operator == "and" and len(set(present)) < len(set(query_terms))):
                continue
            length = sum(counts.values())
            score = 0.0
            for t in set(present):
                df = sum(1 for c in stats.values() if c.get(t))
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                tf = counts[t]
                score += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / avg))
            out[d] = score
        return out

    def _q_match(self, arg: dict[str, Any]) -> dict[str, float]:
        (field, spec), = arg.items()
        query = spec.get("query") if isinstance(spec, dict) else spec
        operator = (spec.get("operator", "or") if isinstance(spec, dict) else "or").lower()
        if self.types.get(field) == "text":
            return self._bm25(field, tokens(query), operator)
        return self._q_term({field: query})

    def _q_match_phrase(self, arg: dict[str, Any]) -> dict[str, float]:
        (field, spec), = arg.items()
        phrase = " ".join(tokens(spec.get("query") if isinstance(spec, dict) else spec))
        scores = self._q_match({field: {"query": phrase, "operator": "and"}})
        return {d: s for d, s in scores.items()
                if phrase in " ".join(tokens(" ".join(map(str, self._values(self.docs[d], field)))))}

    def _q_multi_match(self, arg: dict[str, Any]) -> dict[str, float]:
        fields = [f.split("^")[0] for f in arg.get("fields") or [p for p, k in self.types.items() if k == "text"]]
        out: dict[str, float] = {}
        for f in fields:
            for d, s in self._q_match({f: {"query": arg["query"], "operator": arg.get("operator", "or")}}).items():
                out[d] = max(out.get(d, 0.0), s)
        return out

    def _q_knn(self, arg: dict[str, Any]) -> dict[str, float]:
        (field, spec), = arg.items()
        vf = self.vectors.get(field)
        if vf is None:
            raise bad_request(f"Field '{field}' is not knn_vector type.")
        if not isinstance(spec, dict) or "vector" not in spec:
            raise SearchError(400, "parsing_exception", f"[knn] requires [vector] for field [{field}]")
        k = spec.get("k")
        if not isinstance(k, int) or k < 1:
            raise SearchError(400, "parsing_exception", "[knn] requires k > 0")
        query = vf.vector(spec["vector"])
        candidates = None
        if spec.get("filter"):
            allowed = self.evaluate(spec["filter"])
            rows = [vf.ann.row_of[d] for d in allowed if d in vf.ann.row_of]
            candidates = rows
            if not rows:
                return {}
        found = vf.ann.search(query, min(k, max(len(vf.ann), 1)), candidates)
        return {vf.ann.keys[row]: vf.score(dist) for row, dist in found}

    def _q_bool(self, arg: dict[str, Any]) -> dict[str, float]:
        def clauses(key: str) -> list[dict[str, Any]]:
            value = arg.get(key) or []
            return value if isinstance(value, list) else [value]

        must, filters, should, must_not = (clauses(k) for k in ("must", "filter", "should", "must_not"))
        result: dict[str, float] | None = None
        for q in must:
            scored = self.evaluate(q)
            result = scored if result is None else {d: result[d] + s for d, s in scored.items() if d in result}
        for q in filters:
            matched = self.evaluate(q)
            base = result if result is not None else {d: 0.0 for d in self.docs}
            result = {d: s for d, s in base.items() if d in matched}
        should_scores = [self.evaluate(q) for q in should]
        if result is None:
            result = {}
            for scored in should_scores:
                for d, s in scored.items():
                    result[d] = result.get(d, 0.0) + s
            minimum = int(arg.get("minimum_should_match", 1 if should else 0))
            if should and minimum > 1:
                result = {d: s for d, s in result.items()
                          if sum(1 for sc in should_scores if d in sc) >= minimum}
        else:
            for scored in should_scores:
                for d, s in scored.items():
                    if d in result:
                        result[d] += s
        for q in must_not:
            excluded = self.evaluate(q)
            result = {d: s for d, s in result.items() if d not in excluded}
        return result


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for k, v in patch.items():
        base[k] = _merge(base.get(k) or {}, v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return base


def _filter_source(source: dict[str, Any], spec: Any) -> dict[str, Any] | None:
    if spec is False:
        return None
    if spec is True or spec is None:
        return copy.deepcopy(source)
    includes = [spec] if isinstance(spec, str) else spec if isinstance(spec, list) else spec.get("includes") or []
    excludes = [] if not isinstance(spec, dict) else spec.get("excludes") or []

    def keep(path: str) -> bool:
        import fnmatch

        inc = not includes or any(fnmatch.fnmatch(path, p) or path.startswith(p + ".") for p in includes)
        return inc and not any(fnmatch.fnmatch(path, p) for p in excludes)

    return {k: copy.deepcopy(v) for k, v in source.items() if keep(k)}


INVALID_INDEX_CHARS = set('\\/*?"<>| ,#:')


def check_index_name(name: str) -> None:
    if (name != name.lower() or any(c in INVALID_INDEX_CHARS for c in name) or name.startswith(("_", "-", "+"))
            or name in (".", "..") or len(name.encode()) > 255 or not name):
        raise SearchError(400, "invalid_index_name_exception",
                          f"Invalid index name [{name}], must be lowercase, must not contain "
                          '\\, /, *, ?, ", <, >, |, space, comma or #, and must not start with _, - or +',
                          index=name)


class Store:
    """The indexes of every collection, by collection id."""

    def __init__(self) -> None:
        self.collections: dict[str, dict[str, Index]] = {}
        self.lock = threading.RLock()

    def indexes(self, collection_id: str) -> dict[str, Index]:
        return self.collections.setdefault(collection_id, {})

    def index(self, collection_id: str, name: str) -> Index:
        idx = self.indexes(collection_id).get(name)
        if idx is None:
            raise SearchError(404, "index_not_found_exception", f"no such index [{name}]", index=name,
                              **{"resource.type": "index_or_alias", "resource.id": name})
        return idx

    def create(self, collection_id: str, name: str, body: dict[str, Any]) -> Index:
        check_index_name(name)
        with self.lock:
            indexes = self.indexes(collection_id)
            if name in indexes:
                raise SearchError(400, "resource_already_exists_exception",
                                  f"index [{name}/{indexes[name].uuid}] already exists", index=name)
            idx = Index(name, body or {})
            indexes[name] = idx
            return idx

    def drop(self, collection_id: str, name: str) -> None:
        with self.lock:
            self.index(collection_id, name)
            del self.indexes(collection_id)[name]

    def forget(self, collection_id: str) -> None:
        self.collections.pop(collection_id, None)
