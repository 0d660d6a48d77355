"""S3 Vectors queries on a real nearest-neighbour index (faiss HNSW).

moto keeps the records of S3 Vectors (vector buckets, indexes, each vector's key, data
and metadata) but does not implement QueryVectors. Beside each moto index this module
keeps an :class:`AnnIndex`: a faiss ``IndexHNSWFlat`` (M=32) over the same vectors,
updated after every PutVectors/DeleteVectors, that answers QueryVectors.

* ``cosine``: vectors are L2-normalised and searched by inner product; the distance
  returned is ``1 - cosine similarity`` (0 for the same direction, up to 2).
* ``euclidean``: searched by L2; the distance returned is the Euclidean distance.
* ``innerproduct`` (OpenSearch's space of that name): raw inner product, distance ``-ip``.
* Metadata filters use S3 Vectors' operators (``$eq $ne $gt $gte $lt $lte $in $nin
  $exists $and $or``; a bare value means ``$eq``; an array value matches ``$eq`` when
  it contains the value). The filter is evaluated over the records first; a selective
  filter (at most :data:`EXACT_BELOW` candidates) is answered exactly over the
  candidates, a broad one by HNSW restricted to them (faiss ``IDSelectorBatch``).
* Overwritten or deleted vectors are tombstoned and excluded the same way; the graph
  is rebuilt when tombstones exceed a third of it.

* Metadata limits, as the S3 user guide states them ("Limitations and restrictions"):
  up to 40 KB of metadata and 50 keys per vector, of which at most 2 KB filterable;
  keys named in the index's ``metadataConfiguration.nonFilterableMetadataKeys`` (at
  most 10, set at CreateIndex) are stored and returned but not filterable. PutVectors
  over a limit is refused with a ValidationException (HTTP 400), as on AWS; sizes are
  measured as the UTF-8 JSON of the metadata.

HNSW is approximate, as S3 Vectors is: recall against exact search is measured in the
benchmark (``bench/bench_bedrock.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import BedrockError

EXACT_BELOW = 2048
MAX_METADATA_BYTES = 40 * 1024
MAX_FILTERABLE_METADATA_BYTES = 2 * 1024
MAX_METADATA_KEYS = 50
MAX_TOP_K = 100
HNSW_M = 32
EF_CONSTRUCTION = 64
EF_SEARCH = 128


def _error(code: str, message: str, status: int = 400) -> BedrockError:
    return BedrockError(code, message, status)


class AnnIndex:
    """One index: rows of vectors, a key per row, an HNSW graph over the live rows."""

    def __init__(self, dimension: int, metric: str, m: int = HNSW_M, ef_construction: int = EF_CONSTRUCTION,
                 ef_search: int = EF_SEARCH):
        import faiss

        self._faiss = faiss
        self.dimension = dimension
        self.metric = metric  # cosine | euclidean | innerproduct
        self.m, self.ef_construction, self.ef_search = m, ef_construction, ef_search
        self.keys: list[str] = []
        self.row_of: dict[str, int] = {}
        self.metadata: dict[int, Any] = {}
        self.source: dict[str, Any] = {}  # key -> the moto record the row was built from
        self.dead: set[int] = set()
        self._data = np.zeros((0, dimension), np.float32)
        self._n = 0
        self.lock = threading.RLock()
        self._graph = self._new_graph()

    def _new_graph(self):
        faiss = self._faiss
        m = faiss.METRIC_INNER_PRODUCT if self.metric in ("cosine", "innerproduct") else faiss.METRIC_L2
        g = faiss.IndexHNSWFlat(self.dimension, self.m, m)
        g.hnsw.efConstruction = self.ef_construction
        g.hnsw.efSearch = self.ef_search
        return g

    def __len__(self) -> int:
        return len(self.row_of)

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.metric == "cosine":
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-30)
        return vectors

    def upsert(self, keys: list[str], vectors: np.ndarray, metadata: list[Any]) -> None:
        with self.lock:
            for k in keys:
                old = self.row_of.pop(k, None)
                if old is not None:
                    self.dead.add(old)
                    self.metadata.pop(old, None)
            prepared = self._prepare(vectors)
            start = self._n
            need = start + len(keys)
            if need > len(self._data):
                grown = np.zeros((max(need, 2 * len(self._data), 1024), self.dimension), np.float32)
                grown[:start] = self._data[:start]
                self._data = grown
            self._data[start:need] = prepared
            for i, (k, md) in enumerate(zip(keys, metadata, strict=True)):
                self.keys.append(k)
                self.row_of[k] = start + i
                self.metadata[start + i] = md
            self._n = need
            self._graph.add(prepared)
            if len(self.dead) > max(1000, self._n // 3):
                self._rebuild()

    def delete(self, keys: Iterable[str]) -> None:
        with self.lock:
            for k in keys:
                row = self.row_of.pop(k, None)
                self.source.pop(k, None)
                if row is not None:
                    self.dead.add(row)
                    self.metadata.pop(row, None)

    def _rebuild(self) -> None:
        live = sorted(self.row_of.values())
        data = self._data[live].copy()
        keys = [self.keys[r] for r in live]
        md = [self.metadata[r] for r in live]
        self.keys, self.row_of, self.metadata, self.dead = [], {}, {}, set()
        self._data = np.zeros((0, self.dimension), np.float32)
        self._n = 0
        self._graph = self._new_graph()
        if keys:
            # Already normalised; _prepare is idempotent for cosine.
            self.upsert(keys, data, md)

    def _distances(self, scores: np.ndarray) -> np.ndarray:
        if self.metric == "cosine":
            return 1.0 - scores
        if self.metric == "innerproduct":
            return -scores
        return np.sqrt(np.maximum(scores, 0.0))

    def search(self, query: np.ndarray, k: int, candidates: list[int] | None = None,
               exact: bool = False) -> list[tuple[int, float]]:
        """(row, distance) of the ``k`` nearest live rows, optionally among ``candidates``."""
        with self.lock:
            q = self._prepare(query.reshape(1, -1))
            if candidates is not None and (exact or len(candidates) <= EXACT_BELOW):
                return self._exact(q[0], k, np.asarray(candidates, dtype=np.int64))
            if exact:
                return self._exact(q[0], k, np.asarray(sorted(self.row_of.values()), dtype=np.int64))
            faiss = self._faiss
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(self.ef_search, 2 * k)
            if candidates is not None:
                sel = faiss.IDSelectorBatch(np.asarray(candidates, dtype=np.int64))
                params.sel = sel
            elif self.dead:
                dead = faiss.IDSelectorBatch(np.asarray(sorted(self.dead), dtype=np.int64))
                sel = faiss.IDSelectorNot(dead)
                params.sel = sel
            scores, rows = self._graph.search(q, k, params=params)
            out = [(int(r), float(d)) for r, d in zip(rows[0], self._distances(scores[0]), strict=True) if r >= 0]
            return out

    def _exact(self, q: np.ndarray, k: int, rows: np.ndarray) -> list[tuple[int, float]]:
        if len(rows) == 0:
            return []
        data = self._data[rows]
        if self.metric == "cosine":
            d = 1.0 - data @ q
        elif self.metric == "innerproduct":
            d = -(data @ q)
        else:
            d = np.sqrt(np.maximum(((data - q) ** 2).sum(axis=1), 0.0))
        order = np.argsort(d, kind="stable")[:k]
        return [(int(rows[i]), float(d[i])) for i in order]


# --- metadata filters ---------------------------------------------------------------------------

_OPS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$and", "$or"}


def validate_filter(f: Any) -> None:
    if not isinstance(f, dict) or not f:
        raise _error("ValidationException", "Invalid query filter: the filter must be a non-empty JSON object.")
    for key, cond in f.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, list) or not cond:
                raise _error("ValidationException", f"Invalid query filter: {key} takes a non-empty array.")
            for sub in cond:
                validate_filter(sub)
        elif key.startswith("$"):
            raise _error("ValidationException", f"Invalid query filter: unsupported operator {key}.")
        elif isinstance(cond, dict):
            for op, value in cond.items():
                if op not in _OPS or op in ("$and", "$or"):
                    raise _error("ValidationException", f"Invalid query filter: unsupported operator {op} on "
                                                        f"key {key}.")
                if op in ("$in", "$nin") and not isinstance(value, list):
                    raise _error("ValidationException", f"Invalid query filter: {op} on key {key} takes an array.")
                if op == "$exists" and not isinstance(value, bool):
                    raise _error("ValidationException", f"Invalid query filter: $exists on key {key} takes a "
                                                        "boolean.")


def _compare(value: Any, op: str, arg: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    if op == "$eq":
        return arg in values
    if op == "$ne":
        return arg not in values
    if op == "$in":
        return any(v in arg for v in values)
    if op == "$nin":
        return not any(v in arg for v in values)
    try:
        if op == "$gt":
            return any(v > arg for v in values)
        if op == "$gte":
            return any(v >= arg for v in values)
        if op == "$lt":
            return any(v < arg for v in values)
        if op == "$lte":
            return any(v <= arg for v in values)
    except TypeError:
        return False
    raise AssertionError(op)


def matches(metadata: Any, f: dict[str, Any]) -> bool:
    md = metadata if isinstance(metadata, dict) else {}
    for key, cond in f.items():
        if key == "$and":
            if not all(matches(md, sub) for sub in cond):
                return False
        elif key == "$or":
            if not any(matches(md, sub) for sub in cond):
                return False
        elif isinstance(cond, dict):
            for op, arg in cond.items():
                if op == "$exists":
                    if (key in md) != arg:
                        return False
                elif key not in md:
                    if op not in ("$ne", "$nin"):
                        return False
                elif not _compare(md[key], op, arg):
                    return False
        elif key not in md or not _compare(md[key], "$eq", cond):
            return False
    return True


# --- metadata limits ---------------------------------------------------------------------------


def _size(value: Any) -> int:
    import json

    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def metadata_problem(key: str, metadata: Any, non_filterable: Iterable[str] = ()) -> str | None:
    """Why S3 Vectors would refuse ``metadata`` for vector ``key`` (None: it is within the limits)."""
    if not metadata:
        return None
    if not isinstance(metadata, dict):
        return f"Invalid metadata for vector {key}: metadata must be a JSON object."
    if len(metadata) > MAX_METADATA_KEYS:
        return (f"Invalid metadata for vector {key}: {len(metadata)} metadata keys, more than the "
                f"{MAX_METADATA_KEYS} allowed per vector.")
    total = _size(metadata)
    if total > MAX_METADATA_BYTES:
        return (f"Invalid metadata for vector {key}: {total} bytes of metadata, more than the "
                f"{MAX_METADATA_BYTES} bytes (40 KB) allowed per vector.")
    skip = set(non_filterable)
    filterable = {k: v for k, v in metadata.items() if k not in skip}
    size = _size(filterable) if filterable else 0
    if size > MAX_FILTERABLE_METADATA_BYTES:
        return (f"Invalid metadata for vector {key}: {size} bytes of filterable metadata, more than the "
                f"{MAX_FILTERABLE_METADATA_BYTES} bytes (2 KB) allowed per vector. Declare large keys (the "
                "chunk text, say) in metadataConfiguration.nonFilterableMetadataKeys when you create the index.")
    return None


# --- the store beside moto ---------------------------------------------------------------------


def moto_backend() -> Any:
    """moto's S3 Vectors backend, whose records (buckets, indexes) the store sits beside."""
    from ..offline import moto_state

    return moto_state.backend("s3vectors")


class VectorStore:
    """An :class:`AnnIndex` per moto S3 Vectors index, kept in step with moto's records."""

    def __init__(self, record: Any = None) -> None:
        self.indexes: dict[str, AnnIndex] = {}
        self.non_filterable: dict[str, list[str]] = {}  # index ARN -> its non-filterable metadata keys
        self._lock = threading.Lock()
        self.record = record  # usage.record: each query is metered (requests and data processed)

    def configure(self, bucket: str | None, name: str | None, arn: str | None, config: dict[str, Any] | None) -> None:
        """Remember an index's ``metadataConfiguration`` (moto ignores it)."""
        keys = list((config or {}).get("nonFilterableMetadataKeys") or [])
        if keys:
            self.non_filterable[self.moto_index(bucket, name, arn).index_arn] = keys

    def check_put(self, p: dict[str, Any]) -> None:
        """Refuse PutVectors whose metadata breaks S3 Vectors' limits (before moto records it)."""
        try:
            idx = self.moto_index(p.get("vectorBucketName"), p.get("indexName"), p.get("indexArn"))
        except BedrockError:
            return  # moto answers the missing index with its own error
        keys = self.non_filterable.get(idx.index_arn, [])
        for v in p.get("vectors", []):
            problem = metadata_problem(v.get("key", "?"), v.get("metadata"), keys)
            if problem:
                raise _error("ValidationException", problem)

    def moto_index(self, bucket: str | None, name: str | None, arn: str | None):
        from moto.core.exceptions import ServiceException

        try:
            return moto_backend().get_index(bucket, name, arn)
        except ServiceException as err:
            raise _error(err.code, err.message, 404) from None

    def ann(self, bucket: str | None, name: str | None, arn: str | None,
            keys: list[str] | None = None) -> tuple[Any, AnnIndex]:
        """The index and its ANN, brought in step with moto (only ``keys`` when given)."""
        idx = self.moto_index(bucket, name, arn)
        with self._lock:
            ann = self.indexes.get(idx.index_arn)
            if ann is None or ann.dimension != idx.dimension:
                ann = AnnIndex(idx.dimension, idx.distance_metric)
                self.indexes[idx.index_arn] = ann
        if keys is not None or len(idx.vectors) != len(ann):
            self._catch_up(idx, ann, keys)
        return idx, ann

    def _catch_up(self, idx: Any, ann: AnnIndex, keys: list[str] | None = None) -> None:
        """Bring ``ann`` in step with moto's records (new, overwritten and deleted keys)."""
        with ann.lock:
            records = idx.vectors
            if keys is None:
                gone = [k for k in ann.row_of if k not in records]
                changed = [k for k, v in records.items() if ann.source.get(k) is not v]
            else:
                gone = [k for k in keys if k not in records and k in ann.row_of]
                changed = [k for k in dict.fromkeys(keys) if k in records and ann.source.get(k) is not records[k]]
            if gone:
                ann.delete(gone)
            if changed:
                data = np.asarray([records[k].data[idx.data_type] for k in changed], dtype=np.float32)
                ann.upsert(changed, data, [records[k].metadata for k in changed])
                for k in changed:
                    ann.source[k] = records[k]

    def sync(self, bucket: str | None, name: str | None, arn: str | None, keys: list[str] | None = None) -> None:
        self.ann(bucket, name, arn, keys)

    def forget(self, bucket: str | None, name: str | None, arn: str | None) -> None:
        with self._lock:
            for table in (self.indexes, self.non_filterable):
                for key in list(table):
                    if (arn and key == arn) or (name and key.endswith(f"/{bucket}/index/{name}")):
                        del table[key]

    def processed_bytes(self, idx: Any) -> int:
        """What one query processes, as S3 Vectors bills it: every vector's data, key and filterable metadata."""
        skip = set(self.non_filterable.get(idx.index_arn, []))
        total = 0
        for key, vec in idx.vectors.items():
            md = {k: v for k, v in (vec.metadata or {}).items() if k not in skip} if isinstance(vec.metadata, dict) \
                else vec.metadata
            total += 4 * int(idx.dimension) + len(key.encode()) + (_size(md) if md else 0)
        return total

    def query(self, p: dict[str, Any]) -> dict[str, Any]:
        idx, ann = self.ann(p.get("vectorBucketName"), p.get("indexName"), p.get("indexArn"))
        k = p["topK"]
        if k > MAX_TOP_K:
            raise _error("ValidationException", f"1 validation error detected: Value '{k}' at 'topK' failed to "
                                                f"satisfy constraint: Member must be less than or equal to {MAX_TOP_K}")
        q = (p.get("queryVector") or {}).get("float32")
        if q is None:
            raise _error("ValidationException", "queryVector must contain float32 data.")
        if len(q) != idx.dimension:
            raise _error("ValidationException", f"Query vector must have length {idx.dimension}, but has length "
                                                f"{len(q)}")
        query = np.asarray(q, dtype=np.float32)
        candidates = None
        flt = p.get("filter")
        if flt is not None:
            validate_filter(flt)
            with ann.lock:
                candidates = [row for row, md in ann.metadata.items() if matches(md, flt)]
        hits = ann.search(query, k, candidates)
        if self.record is not None:
            self.record("s3vectors:query", idx.index_arn, vectors=len(idx.vectors),
                        bytes_processed=self.processed_bytes(idx))
        out = []
        for row, distance in hits:
            item: dict[str, Any] = {"key": ann.keys[row]}
            if p.get("returnDistance"):
                item["distance"] = distance
            if p.get("returnMetadata"):
                md = ann.metadata.get(row)
                if md:
                    item["metadata"] = md
            out.append(item)
        return {"vectors": out, "distanceMetric": idx.distance_metric}
