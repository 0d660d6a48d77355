"""Bedrock Knowledge Bases offline: data sources, ingestion, Retrieve, RetrieveAndGenerate.

moto keeps the knowledge bases themselves (CreateKnowledgeBase, GetKnowledgeBase...);
this module adds what it lacks. Ingestion really happens, synchronously inside
StartIngestionJob (so the job is ``COMPLETE`` or ``FAILED`` when the call returns):

1. list the data source's S3 objects (``bucketArn``, ``inclusionPrefixes``); read text
   documents (.txt .md .html .csv .json .xml) and PDFs; a ``<key>.metadata.json`` next to a
   document supplies its ``metadataAttributes``. Other formats (Word, images) cannot be
   parsed offline and count as failed documents, with the reason.
2. chunk each document: ``FIXED_SIZE`` with ``maxTokens`` and ``overlapPercentage``
   (tokens counted by :mod:`.tokens`), ``NONE`` (one chunk per document); without a
   chunking configuration, Bedrock's default (300 tokens, 20% overlap). ``HIERARCHICAL``
   and ``SEMANTIC`` are not emulated: the job fails and says so.
3. embed each chunk with the knowledge base's embedding model (:mod:`.embeddings`) and write
   it to the knowledge base's store (:mod:`.kb_stores`): an S3 Vectors index
   (``storageConfiguration`` ``S3_VECTORS``) or an OpenSearch Serverless index
   (``OPENSEARCH_SERVERLESS``, with the collection, index and ``fieldMapping`` checked at
   CreateKnowledgeBase as Bedrock checks them: the index exists, its vector field has the
   model's dimension, the service role is granted the index by a data access policy).
   Re-ingestion indexes new and changed documents (by ETag) and deletes vanished ones.
   PDFs are read with pypdf (their text layer); other binary formats fail with the reason.

Retrieve embeds the query and searches the store (``overrideSearchType`` ``HYBRID`` adds
BM25 text relevance on OpenSearch); RetrieveAndGenerate passes the
retrieved chunks as context to the labelled extractive stand-in and cites the chunks
its answer quotes.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import secrets
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import catalog, embeddings, kb_stores, responder, throttling, tokens
from .chat import ChatRequest
from .errors import BedrockError, not_found, validation

DEFAULT_MAX_TOKENS = 300
DEFAULT_OVERLAP = 20
TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".csv", ".json", ".xml", ".text", ".pdf")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _id() -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(10))


@dataclass
class DataSource:
    record: dict[str, Any]
    documents: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # uri -> (etag, vector keys)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)


def chunk_text(text: str, max_tokens: int, overlap_percentage: int) -> list[str]:
    """Fixed-size chunks of at most ``max_tokens`` word pieces overlapping by the percentage.

    Cuts fall on word boundaries (a word's pieces stay together), so a chunk may be a
    few pieces shorter than ``max_tokens``.
    """
    spans = tokens.pieces(text)
    if not spans:
        return []
    # Index of pieces that start a word (whitespace or start of text before them).
    starts = [i for i, p in enumerate(spans) if p.start == 0 or text[p.start - 1].isspace()
              or not text[p.start].isalnum() or not text[p.start - 1].isalnum()]
    step = max(1, int(max_tokens * (100 - overlap_percentage) / 100))
    out, first = [], 0
    while first < len(spans):
        last = min(first + max_tokens, len(spans))  # exclusive
        if last < len(spans):
            cut = max((s for s in starts if first < s <= last), default=last)
            last = cut
        out.append(text[spans[first].start:spans[last - 1].end].strip())
        if last >= len(spans):
            break
        nxt = first + step
        nxt = min((s for s in starts if s >= nxt), default=nxt) if nxt < last else last
        first = max(nxt, first + 1)
    return [c for c in out if c]


def extract_text(key: str, body: bytes) -> str:
    if key.lower().endswith(".pdf"):
        return _pdf_text(body)
    text = body.decode("utf-8", errors="replace")
    if key.lower().endswith((".html", ".htm", ".xml")):
        text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S | re.I)
        text = html.unescape(re.sub(r"<[^>]+>", " ", text))
        text = re.sub(r"[ \t]+", " ", text)
    return text.strip()


def _pdf_text(body: bytes) -> str:
    """The text of a PDF's pages (pypdf); scanned pages without a text layer give nothing."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(body))
        text = "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except (PdfReadError, ValueError, KeyError) as err:
        raise ValueError(f"the PDF could not be read ({err})") from None
    if not text.strip():
        raise ValueError("the PDF has no text layer (scanned pages need OCR, which is not emulated offline)")
    return text.strip()


class KnowledgeBases:
    def __init__(self, account_id: str, region: str, vectors: Any, runtime: Any,
                 opensearch: Callable[[], tuple[Any, Any]] | None = None):
        self.account_id = account_id
        self.region = region
        self.vectors = vectors
        self.runtime = runtime
        self.opensearch = opensearch  # () -> (the Serverless control plane, the index store), when emulated
        self.sources: dict[tuple[str, str], DataSource] = {}

    # --- knowledge bases (moto's records) ------------------------------------------------------
    def knowledge_base(self, kb_id: str) -> Any:
        from ..offline import moto_state

        kb = moto_state.backend("bedrockagent", region=self.region, account=self.account_id).knowledge_bases.get(kb_id)
        if kb is None:
            raise not_found(f"Knowledge base with id {kb_id} does not exist")
        return kb

    def create_knowledge_base(self, p: dict[str, Any]) -> dict[str, Any]:
        """CreateKnowledgeBase, recorded in moto's backend.

        moto 5.2.5 rejects the ``S3_VECTORS`` storage type and makes ids of the name plus
        random characters; the record is made through its backend and then given the
        real storage configuration, a 10-character id as AWS makes them and ``ACTIVE``.
        """
        from ..offline import moto_state

        backend = moto_state.backend("bedrockagent", region=self.region, account=self.account_id)
        storage = p.get("storageConfiguration") or {}
        config = p["knowledgeBaseConfiguration"]
        if config.get("type") != "VECTOR":
            raise validation(f"Knowledge base type {config.get('type')} is not emulated offline; use VECTOR.")
        vcfg = config.get("vectorKnowledgeBaseConfiguration") or {}
        model = catalog.find(vcfg.get("embeddingModelArn", ""))
        if model is None or not model.is_embedding:
            raise validation(f"The embedding model {vcfg.get('embeddingModelArn')} is not a Bedrock embedding model "
                             "(use amazon.titan-embed-text-v2:0, amazon.titan-embed-text-v1 or cohere.embed-*).")
        if storage.get("type") == "S3_VECTORS":
            s3v = storage.get("s3VectorsConfiguration") or {}
            if not (s3v.get("indexArn") or (s3v.get("vectorBucketArn") and s3v.get("indexName"))):
                raise validation("s3VectorsConfiguration needs indexArn, or vectorBucketArn and indexName.")
        elif storage.get("type") == "OPENSEARCH_SERVERLESS":
            oss = storage.get("opensearchServerlessConfiguration") or {}
            mapping = oss.get("fieldMapping") or {}
            if not (oss.get("collectionArn") and oss.get("vectorIndexName")
                    and all(mapping.get(k) for k in ("vectorField", "textField", "metadataField"))):
                raise validation("opensearchServerlessConfiguration needs collectionArn, vectorIndexName and a "
                                 "fieldMapping with vectorField, textField and metadataField.")
        else:
            raise validation(f"Storage type {storage.get('type')} is not emulated offline; use S3_VECTORS or "
                             "OPENSEARCH_SERVERLESS.")
        store = self._open_store(storage, p["roleArn"])
        dims = ((vcfg.get("embeddingModelConfiguration") or {}).get("bedrockEmbeddingModelConfiguration")
                or {}).get("dimensions") or model.embedding_dimension
        if store.dimension != dims:
            raise validation(f"The vector dimension of the index ({store.dimension}) does not match the embedding "
                             f"model's output dimension ({dims}).")
        if any(kb.name == p["name"] for kb in backend.knowledge_bases.values()):
            raise BedrockError("ConflictException", f"Knowledge base with name {p['name']} already exists.", 409)
        placeholder = {"type": "RDS"}
        kb = backend.create_knowledge_base(name=p["name"], role_arn=p["roleArn"], knowledge_base_configuration=config,
                                           storage_configuration=placeholder, client_token=p.get("clientToken"),
                                           description=p.get("description"), tags=None)
        del backend.knowledge_bases[kb.knowledge_base_id]
        kb.storage_configuration = storage
        kb.knowledge_base_id = _id()
        kb.knowledge_base_arn = kb.knowledge_base_arn.rsplit("/", 1)[0] + "/" + kb.knowledge_base_id
        kb.status = "ACTIVE"
        backend.knowledge_bases[kb.knowledge_base_id] = kb
        if p.get("tags"):
            backend.tag_resource(kb.knowledge_base_arn, p["tags"])
        return {"knowledgeBase": {k: v for k, v in kb.to_dict().items() if v not in (None, [])}, "_status": 202}

    def _source(self, kb_id: str, ds_id: str) -> DataSource:
        self.knowledge_base(kb_id)
        ds = self.sources.get((kb_id, ds_id))
        if ds is None:
            raise not_found(f"DataSource with id {ds_id} does not exist for knowledge base {kb_id}")
        return ds

    # --- data sources -------------------------------------------------------------------------
    def create_data_source(self, p: dict[str, Any]) -> dict[str, Any]:
        kb_id = p["knowledgeBaseId"]
        self.knowledge_base(kb_id)
        if any(k == kb_id and d.record["name"] == p["name"] for (k, _), d in self.sources.items()):
            raise BedrockError("ConflictException", f"DataSource with name {p['name']} already exists.", 409)
        cfg = p["dataSourceConfiguration"]
        if cfg["type"] != "S3":
            raise validation(f"Data source type {cfg['type']} is not emulated offline; use S3.")
        chunking = (p.get("vectorIngestionConfiguration") or {}).get("chunkingConfiguration")
        if chunking and chunking["chunkingStrategy"] == "FIXED_SIZE" and "fixedSizeChunkingConfiguration" not in chunking:
            raise validation("fixedSizeChunkingConfiguration is required when chunkingStrategy is FIXED_SIZE.")
        now = _now()
        record = {"knowledgeBaseId": kb_id, "dataSourceId": _id(), "name": p["name"], "status": "AVAILABLE",
                  "dataSourceConfiguration": cfg, "dataDeletionPolicy": p.get("dataDeletionPolicy", "DELETE"),
                  "createdAt": now, "updatedAt": now}
        if p.get("description"):
            record["description"] = p["description"]
        if p.get("vectorIngestionConfiguration"):
            record["vectorIngestionConfiguration"] = p["vectorIngestionConfiguration"]
        self.sources[(kb_id, record["dataSourceId"])] = DataSource(record)
        return {"dataSource": record}

    def get_data_source(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"dataSource": self._source(p["knowledgeBaseId"], p["dataSourceId"]).record}

    def list_data_sources(self, p: dict[str, Any]) -> dict[str, Any]:
        self.knowledge_base(p["knowledgeBaseId"])
        out = []
        for (kb_id, _), ds in self.sources.items():
            if kb_id == p["knowledgeBaseId"]:
                r = ds.record
                out.append({k: r[k] for k in ("knowledgeBaseId", "dataSourceId", "name", "status", "description",
                                              "updatedAt") if k in r})
        return {"dataSourceSummaries": out}

    def delete_data_source(self, p: dict[str, Any]) -> dict[str, Any]:
        ds = self._source(p["knowledgeBaseId"], p["dataSourceId"])
        if ds.record["dataDeletionPolicy"] == "DELETE":
            keys = [k for _, ks in ds.documents.values() for k in ks]
            if keys:
                self._store(p["knowledgeBaseId"]).delete(keys)
        del self.sources[(p["knowledgeBaseId"], p["dataSourceId"])]
        return {"knowledgeBaseId": p["knowledgeBaseId"], "dataSourceId": p["dataSourceId"], "status": "DELETING"}

    # --- the vector store of a knowledge base -------------------------------------------------
    def _open_store(self, storage: dict[str, Any], role_arn: str) -> kb_stores.Store:
        if storage.get("type") == "OPENSEARCH_SERVERLESS":
            if self.opensearch is None:
                raise validation("OpenSearch Serverless is not emulated in this backend.")
            serverless, index_store = self.opensearch()
            return kb_stores.OpenSearchStore(serverless, index_store, storage["opensearchServerlessConfiguration"],
                                             role_arn)
        if storage.get("type") == "S3_VECTORS":
            return kb_stores.S3VectorsStore(self.vectors, storage.get("s3VectorsConfiguration") or {}, self.region)
        raise validation(f"Storage type {storage.get('type')} is not emulated offline; use S3_VECTORS or "
                         "OPENSEARCH_SERVERLESS.")

    def _store(self, kb_id: str) -> kb_stores.Store:
        kb = self.knowledge_base(kb_id)
        return self._open_store(kb.storage_configuration or {}, kb.role_arn)

    def _embedding(self, kb_id: str) -> tuple[catalog.FoundationModel, int]:
        kb = self.knowledge_base(kb_id)
        vcfg = (kb.knowledge_base_configuration or {}).get("vectorKnowledgeBaseConfiguration") or {}
        model = catalog.find(vcfg.get("embeddingModelArn", ""))
        if model is None or not model.is_embedding:
            raise validation(f"The embedding model {vcfg.get('embeddingModelArn')} is not an embedding model "
                             "the offline backend knows.")
        dims = ((vcfg.get("embeddingModelConfiguration") or {}).get("bedrockEmbeddingModelConfiguration")
                or {}).get("dimensions") or model.embedding_dimension or 1024
        return model, int(dims)

    def _embed(self, kb_id: str, texts: list[str], operation: str) -> list[list[float]]:
        model, dims = self._embedding(kb_id)
        vecs = embeddings.embed(texts, dims, True)
        self.runtime.record("bedrock:tokens", model.model_id, model_id=model.model_id,
                            input_tokens=sum(tokens.count(t) for t in texts), output_tokens=0, operation=operation)
        return [[float(x) for x in v] for v in vecs]

    # --- ingestion ------------------------------------------------------------------------------
    def start_ingestion_job(self, p: dict[str, Any]) -> dict[str, Any]:
        kb_id, ds_id = p["knowledgeBaseId"], p["dataSourceId"]
        ds = self._source(kb_id, ds_id)
        now = _now()
        job: dict[str, Any] = {"knowledgeBaseId": kb_id, "dataSourceId": ds_id, "ingestionJobId": _id(),
                               "status": "IN_PROGRESS", "startedAt": now, "updatedAt": now}
        if p.get("description"):
            job["description"] = p["description"]
        stats = {k: 0 for k in ("numberOfDocumentsScanned", "numberOfMetadataDocumentsScanned",
                                "numberOfNewDocumentsIndexed", "numberOfModifiedDocumentsIndexed",
                                "numberOfMetadataDocumentsModified", "numberOfDocumentsDeleted",
                                "numberOfDocumentsFailed")}
        failures: list[str] = []
        try:
            self._ingest(kb_id, ds, stats, failures)
            job["status"] = "COMPLETE"
        except BedrockError as err:
            failures.append(err.message)
            job["status"] = "FAILED"
        job["statistics"] = stats
        if failures:
            job["failureReasons"] = failures
        job["updatedAt"] = _now()
        ds.jobs[job["ingestionJobId"]] = job
        return {"ingestionJob": job}

    def _chunking(self, ds: DataSource) -> tuple[str, int, int]:
        chunking = (ds.record.get("vectorIngestionConfiguration") or {}).get("chunkingConfiguration")
        if not chunking:
            return "FIXED_SIZE", DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP
        strategy = chunking["chunkingStrategy"]
        if strategy == "NONE":
            return "NONE", 0, 0
        if strategy != "FIXED_SIZE":
            raise validation(f"Chunking strategy {strategy} is not emulated offline; use FIXED_SIZE or NONE.")
        fixed = chunking["fixedSizeChunkingConfiguration"]
        return "FIXED_SIZE", fixed["maxTokens"], fixed["overlapPercentage"]

    def _ingest(self, kb_id: str, ds: DataSource, stats: dict[str, int], failures: list[str]) -> None:
        import boto3

        strategy, max_tokens, overlap = self._chunking(ds)
        store = self._store(kb_id)
        model, dims = self._embedding(kb_id)
        if store.dimension != dims:
            raise validation(f"The dimension of the vector index ({store.dimension}) does not match the embedding "
                             f"model's output dimension ({dims}).")
        s3cfg = ds.record["dataSourceConfiguration"]["s3Configuration"]
        bucket = s3cfg["bucketArn"].split(":::", 1)[-1]
        prefixes = s3cfg.get("inclusionPrefixes") or [""]
        s3 = boto3.client("s3", region_name=self.region)
        objects: dict[str, str] = {}
        try:
            for prefix in prefixes:
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                    for obj in page.get("Contents", []):
                        objects[obj["Key"]] = obj["ETag"]
        except s3.exceptions.NoSuchBucket:
            raise validation(f"The S3 bucket {bucket} of data source {ds.record['dataSourceId']} does not "
                             "exist.") from None
        docs = {k: e for k, e in objects.items() if not k.endswith(".metadata.json") and not k.endswith("/")}
        seen: set[str] = set()
        pending: list[kb_stores.Chunk] = []  # chunks not yet written, across documents (500 at a time)
        done: list[tuple[str, str, list[str], bool]] = []  # documents whose chunks are in ``pending``

        def flush() -> None:
            store.put(pending)
            pending.clear()
            for uri, version, keys, modified in done:
                ds.documents[uri] = (version, keys)
                stats["numberOfModifiedDocumentsIndexed" if modified else "numberOfNewDocumentsIndexed"] += 1
            done.clear()

        for key, etag in sorted(docs.items()):
            uri = f"s3://{bucket}/{key}"
            seen.add(uri)
            stats["numberOfDocumentsScanned"] += 1
            meta_key = key + ".metadata.json"
            attributes: dict[str, Any] = {}
            meta_etag = ""
            if meta_key in objects:
                stats["numberOfMetadataDocumentsScanned"] += 1
                meta_etag = objects[meta_key]
                try:
                    body = json.loads(s3.get_object(Bucket=bucket, Key=meta_key)["Body"].read())
                    attributes = dict(body.get("metadataAttributes") or {})
                except (ValueError, AttributeError):
                    failures.append(f"{meta_key}: not a valid metadata file (expects {{\"metadataAttributes\": "
                                    "{...}}).")
            version = etag + meta_etag
            previous = ds.documents.get(uri)
            if previous and previous[0] == version:
                continue
            if not key.lower().endswith(TEXT_SUFFIXES):
                stats["numberOfDocumentsFailed"] += 1
                failures.append(f"{uri}: this file type cannot be parsed offline (text formats and PDF only: "
                                f"{', '.join(TEXT_SUFFIXES)}).")
                continue
            try:
                text = extract_text(key, s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            except ValueError as err:
                stats["numberOfDocumentsFailed"] += 1
                failures.append(f"{uri}: {err}")
                continue
            chunks = [text] if strategy == "NONE" else chunk_text(text, max_tokens, overlap)
            if previous:
                store.delete(previous[1])
            keys = []
            if chunks:
                vectors = self._embed(kb_id, chunks, "KnowledgeBaseIngestion")
                for chunk, vector in zip(chunks, vectors, strict=True):
                    vkey = str(uuid.uuid4())
                    keys.append(vkey)
                    pending.append(kb_stores.Chunk(vkey, vector, chunk, uri, ds.record["dataSourceId"], attributes))
            done.append((uri, version, keys, bool(previous)))
            if len(pending) >= 500:
                flush()
        flush()
        for uri in [u for u in ds.documents if u not in seen]:
            _, keys = ds.documents.pop(uri)
            store.delete(keys)
            stats["numberOfDocumentsDeleted"] += 1

    def get_ingestion_job(self, p: dict[str, Any]) -> dict[str, Any]:
        ds = self._source(p["knowledgeBaseId"], p["dataSourceId"])
        job = ds.jobs.get(p["ingestionJobId"])
        if job is None:
            raise not_found(f"IngestionJob with id {p['ingestionJobId']} does not exist")
        return {"ingestionJob": job}

    def list_ingestion_jobs(self, p: dict[str, Any]) -> dict[str, Any]:
        ds = self._source(p["knowledgeBaseId"], p["dataSourceId"])
        return {"ingestionJobSummaries": [{k: v for k, v in j.items() if k != "failureReasons"}
                                          for j in ds.jobs.values()]}

    # --- retrieval ------------------------------------------------------------------------------
    def search(self, kb_id: str, text: str, config: dict[str, Any] | None) -> list[dict[str, Any]]:
        vcfg = (config or {}).get("vectorSearchConfiguration") or {}
        store = self._store(kb_id)
        query = self._embed(kb_id, [text], "Retrieve")[0]
        hits = store.search(query, text, vcfg.get("numberOfResults", 5), vcfg.get("filter"),
                            vcfg.get("overrideSearchType"))
        return [{"content": {"text": h.text, "type": "TEXT"}, "location": {"type": "S3", "s3Location": {"uri": h.uri}},
                 "score": h.score, "metadata": {**h.metadata, kb_stores.CHUNK_KEY: h.key}} for h in hits]

    def retrieve(self, p: dict[str, Any]) -> dict[str, Any]:
        throttling.check()
        text = (p.get("retrievalQuery") or {}).get("text")
        if not text:
            raise validation("retrievalQuery.text is required (image queries are not emulated offline).")
        return {"retrievalResults": self.search(p["knowledgeBaseId"], text, p.get("retrievalConfiguration"))}

    def retrieve_and_generate(self, p: dict[str, Any]) -> dict[str, Any]:
        throttling.check()
        cfg = p.get("retrieveAndGenerateConfiguration") or {}
        if cfg.get("type") != "KNOWLEDGE_BASE":
            raise validation(f"RetrieveAndGenerate type {cfg.get('type')} is not emulated offline; use "
                             "KNOWLEDGE_BASE.")
        kcfg = cfg["knowledgeBaseConfiguration"]
        model = self.runtime.resolve(kcfg["modelArn"])
        if not model.is_text:
            raise validation(f"The model {kcfg['modelArn']} is not a text model the offline backend knows.")
        query = p["input"]["text"]
        results = self.search(kcfg["knowledgeBaseId"], query, kcfg.get("retrievalConfiguration"))
        gcfg = kcfg.get("generationConfiguration") or {}
        icfg = (gcfg.get("inferenceConfig") or {}).get("textInferenceConfig") or {}
        request = ChatRequest.of_text(query, icfg.get("maxTokens") or 2048, list(icfg.get("stopSequences") or []),
                                      system=[r["content"]["text"] for r in results])
        guard = gcfg.get("guardrailConfiguration")
        ref = self.runtime.guardrail(guard["guardrailId"], guard["guardrailVersion"], None) if guard else None
        result = self.runtime.generate(model, request, "RetrieveAndGenerate", ref)
        text = result.gen.text
        citations = []
        for sentence in result.gen.sources:
            pos = text.find(sentence[: max(1, len(sentence) // 2)])
            if pos < 0:
                continue
            end = min(len(text), pos + len(sentence)) - 1
            refs = [{"content": r["content"], "location": r["location"], "metadata": r["metadata"]}
                    for r in results if responder.quoted_from(sentence, r["content"]["text"])]
            citations.append({"generatedResponsePart": {"textResponsePart": {"text": text[pos:end + 1],
                                                                             "span": {"start": pos, "end": end}}},
                              "retrievedReferences": refs})
        out: dict[str, Any] = {"sessionId": p.get("sessionId") or str(uuid.uuid4()), "output": {"text": text},
                               "citations": citations}
        if result.guardrail_action is not None:
            out["guardrailAction"] = "INTERVENED" if result.guardrail_action == "INTERVENED" else "NONE"
        return out
