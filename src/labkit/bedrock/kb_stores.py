"""Where a knowledge base keeps its chunks: an S3 Vectors index, or an OpenSearch Serverless index.

Both stores take the same chunk records from ingestion and answer the same searches, in the
shape each service really holds them:

* :class:`S3VectorsStore` (``storageConfiguration.type`` ``S3_VECTORS``): one vector per chunk,
  written with PutVectors; the metadata keys Bedrock writes are ``AMAZON_BEDROCK_TEXT``,
  ``AMAZON_BEDROCK_METADATA``, ``x-amz-bedrock-kb-source-uri``, ``x-amz-bedrock-kb-data-source-id``
  and the document's own attributes. Searched with QueryVectors (score: cosine similarity, or
  ``1 / (1 + distance)`` for a euclidean index).
* :class:`OpenSearchStore` (``OPENSEARCH_SERVERLESS``): one document per chunk in the
  collection's index, with the ``fieldMapping``'s vector, text and metadata fields (the
  metadata field holds ``{"source": uri}`` as JSON text, as Bedrock writes it), the
  ``x-amz-bedrock-kb-*`` fields and the document's attributes as fields. Searched with a
  ``knn`` query (``SEMANTIC``, the default) or, for ``overrideSearchType`` ``HYBRID``, the
  k-NN and BM25 text scores, each scaled to [0, 1] and averaged. The score is OpenSearch's.
  Bedrock reaches the collection with the knowledge base's service role, so the role must be
  granted the index in a data access policy; the store checks that as the collection does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import ClientError

from .errors import validation

TEXT_KEY = "AMAZON_BEDROCK_TEXT"
METADATA_KEY = "AMAZON_BEDROCK_METADATA"
SOURCE_KEY = "x-amz-bedrock-kb-source-uri"
DATA_SOURCE_KEY = "x-amz-bedrock-kb-data-source-id"
CHUNK_KEY = "x-amz-bedrock-kb-chunk-id"
_KB_FILTER_OPS = {"equals": "$eq", "notEquals": "$ne", "greaterThan": "$gt", "greaterThanOrEquals": "$gte",
                  "lessThan": "$lt", "lessThanOrEquals": "$lte", "in": "$in", "notIn": "$nin",
                  "listContains": "$eq"}


@dataclass
class Chunk:
    key: str
    vector: list[float]
    text: str
    uri: str
    data_source_id: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Hit:
    key: str
    score: float
    text: str
    uri: str
    metadata: dict[str, Any]


class Store(Protocol):
    dimension: int

    def put(self, chunks: list[Chunk]) -> None: ...

    def delete(self, keys: list[str]) -> None: ...

    def search(self, vector: list[float], text: str, k: int, kb_filter: dict[str, Any] | None,
               search_type: str | None) -> list[Hit]: ...


def s3_vectors_filter(f: dict[str, Any]) -> dict[str, Any]:
    """A Knowledge Base ``RetrievalFilter`` as an S3 Vectors metadata filter."""
    if len(f) != 1:
        raise validation("A retrieval filter must have exactly one operator at each level.")
    (op, arg), = f.items()
    if op in ("andAll", "orAll"):
        return {"$and" if op == "andAll" else "$or": [s3_vectors_filter(x) for x in arg]}
    if op in _KB_FILTER_OPS:
        return {arg["key"]: {_KB_FILTER_OPS[op]: arg["value"]}}
    raise validation(f"The filter operator {op} is not supported for S3 vector stores.")


def opensearch_filter(f: dict[str, Any]) -> dict[str, Any]:
    """A Knowledge Base ``RetrievalFilter`` as an OpenSearch bool query."""
    if len(f) != 1:
        raise validation("A retrieval filter must have exactly one operator at each level.")
    (op, arg), = f.items()
    if op == "andAll":
        return {"bool": {"filter": [opensearch_filter(x) for x in arg]}}
    if op == "orAll":
        return {"bool": {"should": [opensearch_filter(x) for x in arg], "minimum_should_match": 1}}
    key, value = arg["key"], arg["value"]
    field_name = f"{key}.keyword" if isinstance(value, str) or (isinstance(value, list) and value
                                                                 and isinstance(value[0], str)) else key
    if op in ("equals", "listContains"):
        return {"term": {field_name: value}}
    if op == "notEquals":
        return {"bool": {"must_not": [{"term": {field_name: value}}]}}
    if op == "in":
        return {"terms": {field_name: value}}
    if op == "notIn":
        return {"bool": {"must_not": [{"terms": {field_name: value}}]}}
    ranges = {"greaterThan": "gt", "greaterThanOrEquals": "gte", "lessThan": "lt", "lessThanOrEquals": "lte"}
    if op in ranges:
        return {"range": {key: {ranges[op]: value}}}
    if op == "startsWith":
        return {"prefix": {field_name: value}}
    raise validation(f"The filter operator {op} is not supported offline.")


class S3VectorsStore:
    def __init__(self, vectors: Any, config: dict[str, Any], region: str):
        self.vectors = vectors
        self.region = region
        bucket = config.get("vectorBucketArn", "").rsplit("/", 1)[-1] or None
        self.index = vectors.moto_index(bucket, config.get("indexName"), config.get("indexArn"))
        self.dimension = self.index.dimension

    def _client(self) -> Any:
        import boto3

        return boto3.client("s3vectors", region_name=self.region)

    def put(self, chunks: list[Chunk]) -> None:
        client = self._client()
        for i in range(0, len(chunks), 500):
            batch = chunks[i:i + 500]
            vectors = [{"key": c.key, "data": {"float32": c.vector}, "metadata": {
                **c.attributes, TEXT_KEY: c.text, METADATA_KEY: json.dumps({"source": c.uri}), SOURCE_KEY: c.uri,
                DATA_SOURCE_KEY: c.data_source_id}} for c in batch]
            try:
                client.put_vectors(indexArn=self.index.index_arn, vectors=vectors)
            except ClientError as err:  # e.g. chunk text over the 2 KB of filterable metadata
                message = err.response["Error"]["Message"]
                uri = next((c.uri for c in batch if c.key in message), batch[0].uri)
                raise validation(f"{uri}: the vector index refused the chunks: {message} (Bedrock writes the chunk "
                                 f"text to {TEXT_KEY}: make it and {METADATA_KEY} non-filterable keys of the "
                                 "index).") from None

    def delete(self, keys: list[str]) -> None:
        client = self._client()
        for i in range(0, len(keys), 500):
            client.delete_vectors(indexArn=self.index.index_arn, keys=keys[i:i + 500])

    def search(self, vector: list[float], text: str, k: int, kb_filter: dict[str, Any] | None,
               search_type: str | None) -> list[Hit]:
        if search_type == "HYBRID":
            raise validation("HYBRID search is not supported for S3 vector stores; use SEMANTIC.")
        params: dict[str, Any] = {"indexArn": self.index.index_arn, "topK": min(k, 100),
                                  "queryVector": {"float32": vector}, "returnMetadata": True, "returnDistance": True}
        if kb_filter:
            params["filter"] = s3_vectors_filter(kb_filter)
        out = []
        for hit in self.vectors.query(params)["vectors"]:
            md = dict(hit.get("metadata") or {})
            chunk = md.pop(TEXT_KEY, "")
            md.pop(METADATA_KEY, None)
            d = hit["distance"]
            score = 1.0 - d if self.index.distance_metric == "cosine" else 1.0 / (1.0 + d)
            out.append(Hit(hit["key"], score, chunk, md.get(SOURCE_KEY, ""), md))
        return out


class OpenSearchStore:
    WRITE = ("aoss:WriteDocument", "aoss:ReadDocument", "aoss:DescribeIndex")

    def __init__(self, serverless: Any, store: Any, config: dict[str, Any], role_arn: str):
        self.config = config
        collection = serverless.by_arn(config.get("collectionArn", ""))
        if collection is None:
            raise validation(f"The knowledge base storage configuration provided is invalid... The OpenSearch "
                             f"Serverless collection {config.get('collectionArn')} does not exist.")
        serverless.settle()
        name = config.get("vectorIndexName", "")
        mapping = config.get("fieldMapping") or {}
        self.vector_field = mapping.get("vectorField", "")
        self.text_field = mapping.get("textField", "")
        self.metadata_field = mapping.get("metadataField", "")
        if not serverless.reachable(collection):
            raise validation("The knowledge base storage configuration provided is invalid... Request failed: "
                             f"403 Forbidden: no network policy lets Bedrock reach the collection {collection.name}.")
        missing = [p for p in self.WRITE if not serverless.allowed(role_arn, collection, p, name)]
        if missing:
            raise validation("The knowledge base storage configuration provided is invalid... Request failed: "
                             f"[security_exception] 403 Forbidden: the role {role_arn} is not granted "
                             f"{', '.join(missing)} on index/{collection.name}/{name} by a data access policy.")
        try:
            self.index = store.index(collection.collection_id, name)
        except Exception:
            raise validation("The knowledge base storage configuration provided is invalid... Dependency error "
                             f"document status code: 404, error message: no such index [{name}]") from None
        field_ = self.index.vectors.get(self.vector_field)
        if field_ is None:
            raise validation(f"The knowledge base storage configuration provided is invalid... The field "
                             f"{self.vector_field} of index {name} is not a knn_vector field.")
        self.dimension = field_.dimension

    def put(self, chunks: list[Chunk]) -> None:
        for c in chunks:
            self.index.put(c.key, {**c.attributes, self.vector_field: c.vector, self.text_field: c.text,
                                   self.metadata_field: json.dumps({"source": c.uri, "parentText": None}),
                                   SOURCE_KEY: c.uri, DATA_SOURCE_KEY: c.data_source_id})

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.index.delete(key)

    def search(self, vector: list[float], text: str, k: int, kb_filter: dict[str, Any] | None,
               search_type: str | None) -> list[Hit]:
        knn: dict[str, Any] = {"vector": vector, "k": k}
        if kb_filter:
            knn["filter"] = opensearch_filter(kb_filter)
        scores = self.index.evaluate({"knn": {self.vector_field: knn}})
        if search_type == "HYBRID":
            lexical: dict[str, Any] = {"match": {self.text_field: text}}
            if kb_filter:
                lexical = {"bool": {"must": [lexical], "filter": [opensearch_filter(kb_filter)]}}
            scores = _hybrid(scores, self.index.evaluate(lexical))
        best = sorted(scores.items(), key=lambda kv: -kv[1])[:k]
        out = []
        skip = {self.vector_field, self.text_field, self.metadata_field}
        for key, score in best:
            doc = self.index.docs[key]
            md = {name: value for name, value in doc.items() if name not in skip}
            out.append(Hit(key, score, str(doc.get(self.text_field, "")), str(doc.get(SOURCE_KEY, "")), md))
        return out


def _scaled(scores: dict[str, float]) -> dict[str, float]:
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    return {d: (s - lo) / (hi - lo) if hi > lo else 1.0 for d, s in scores.items()}


def _hybrid(semantic: dict[str, float], lexical: dict[str, float]) -> dict[str, float]:
    a, b = _scaled(semantic), _scaled(lexical)
    return {d: (a.get(d, 0.0) + b.get(d, 0.0)) / 2 for d in set(a) | set(b)}
