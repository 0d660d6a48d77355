"""Benchmark of the offline Bedrock: embeddings per second, QueryVectors latency and recall.

Run: ``python -m bench.run bedrock``. Three parts:

1. **Embeddings**: passages of the course's own documents (``data/rag/docs``, ~100 words
   each) embedded with Titan Text Embeddings V2 (512 dimensions) through plain boto3,
   one text per ``InvokeModel`` call as the model takes them, sequentially and from 8
   threads; Cohere Embed (96 texts per call); and the model alone (all-MiniLM-L6-v2,
   batches of 32). The model's cache is emptied before each measure.
2. **QueryVectors at 10k and 100k vectors** (512-d, cosine): through boto3 against the
   faiss HNSW index of the offline S3 Vectors, beside the brute-force baseline (exact
   search: one matrix-vector product over every vector, numpy, the same queries) in the
   same run; and the HNSW index alone without the botocore round trip.
3. **Recall@10** of the HNSW answers against the exact ones, per size.
4. **OpenSearch Serverless k-NN** at 10k vectors through opensearch-py, as the Bedrock
   workshop reaches a collection (SigV4-signed requests to ``*.aoss.amazonaws.com``, routed to
   the local endpoint): ``_bulk`` indexing rate, ``knn`` query latency, recall@10 against
   exact search, with the same synthetic vectors.

The vectors are synthetic, drawn around 1,000 random centres (cosine ~0.8 to their
centre), so that they have neighbourhoods as embeddings do; queries are fresh draws, not
indexed vectors. The first 10k vectors go in through boto3 ``PutVectors`` (500 per
call; its rate is reported); the other 90k are written into moto's records directly,
because botocore's own request serializer (client-side, the same on AWS) spends
minutes on 90k x 512 floats; the index then catches up as it does after any PutVectors.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

DIM = 512
SIZES = (10_000, 100_000)
QUERIES = 200
TOP_K = 10
CENTRES = 1000
PASSAGES = 96


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def _passages(n: int) -> list[str]:
    import labkit

    words: list[str] = []
    for path in sorted(labkit.data_path("rag", "docs").glob("*.md")):
        words += path.read_text().split()
    return [" ".join(words[i:i + 100]) for i in range(0, 100 * n, 100)]


def _embeddings() -> list[tuple[str, str, str]]:
    import json

    import boto3

    from labkit.bedrock import embeddings, tokens

    rt = boto3.client("bedrock-runtime")
    texts = _passages(PASSAGES)
    pieces = sum(min(tokens.count(t), embeddings.MAX_WORD_PIECES) for t in texts)
    model = embeddings.model()
    model.raw(["warm up"])

    def titan(text: str) -> list[float]:
        body = json.dumps({"inputText": text, "dimensions": DIM})
        return json.loads(rt.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=body)["body"].read())["embedding"]

    def cohere(batch: list[str]) -> list[list[float]]:
        body = json.dumps({"texts": [t[:2048] for t in batch], "input_type": "search_document"})  # Cohere's limit
        return json.loads(rt.invoke_model(modelId="cohere.embed-english-v3", body=body)["body"].read())["embeddings"]

    def timed(fn) -> float:
        model._cache.clear()
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started

    runs = {
        "Titan V2 InvokeModel, one call at a time": timed(lambda: [titan(t) for t in texts]),
        "Titan V2 InvokeModel, 8 threads": timed(lambda: list(ThreadPoolExecutor(8).map(titan, texts))),
        "Cohere Embed InvokeModel, 96 texts a call": timed(lambda: cohere(texts)),
        "all-MiniLM-L6-v2 alone, batches of 32": timed(lambda: model.raw(texts)),
    }
    return [(name, f"{len(texts) / s:.1f} passages/s", f"{pieces / s:,.0f} word pieces/s")
            for name, s in runs.items()]


def _clustered(rng: np.random.Generator, n: int, centres: np.ndarray) -> np.ndarray:
    pick = centres[rng.integers(0, len(centres), n)]
    x = pick + rng.standard_normal((n, DIM)).astype(np.float32) * (0.75 / np.sqrt(DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _vectors() -> list[tuple[str, ...]]:
    import boto3
    from moto.s3vectors.models import Vector

    from labkit.bedrock import vectors as vec
    from labkit.offline import bedrock as offline_bedrock

    s3v = boto3.client("s3vectors")
    s3v.create_vector_bucket(vectorBucketName="bench-vectors")
    s3v.create_index(vectorBucketName="bench-vectors", indexName="bench", dataType="float32", dimension=DIM,
                     distanceMetric="cosine")
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((CENTRES, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    data = _clustered(rng, max(SIZES), centres)
    queries = _clustered(rng, QUERIES, centres)
    store = offline_bedrock.state.vectors
    rows: list[tuple[str, ...]] = []
    loaded = 0
    for size in SIZES:
        started = time.perf_counter()
        if loaded == 0:
            for start in range(0, size, 500):
                s3v.put_vectors(vectorBucketName="bench-vectors", indexName="bench", vectors=[
                    {"key": f"v{i}", "data": {"float32": data[i].tolist()}} for i in range(start, start + 500)])
            rows.append((f"PutVectors through boto3, {size:,} vectors (500 a call)",
                         f"{size / (time.perf_counter() - started):,.0f} vectors/s", "", "", ""))
        else:
            index = store.moto_index("bench-vectors", "bench", None)
            for i in range(loaded, size):
                index.vectors[f"v{i}"] = Vector.from_dict({"key": f"v{i}", "data": {"float32": data[i].tolist()}})
            started = time.perf_counter()
            store.sync("bench-vectors", "bench", None)
            rows.append((f"HNSW catch-up after {size - loaded:,} new vectors (faiss, M={vec.HNSW_M}, "
                         f"efConstruction={vec.EF_CONSTRUCTION})", f"{time.perf_counter() - started:.1f} s",
                         "", "", ""))
        loaded = size
        _, ann = store.ann("bench-vectors", "bench", None)
        matrix = data[:size]
        api, hnsw, brute, recalls = [], [], [], []
        for q in queries:
            t0 = time.perf_counter()
            hits = s3v.query_vectors(vectorBucketName="bench-vectors", indexName="bench", topK=TOP_K,
                                     queryVector={"float32": q.tolist()})["vectors"]
            api.append(1000 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            ann.search(q, TOP_K)
            hnsw.append(1000 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            scores = matrix @ q
            exact = np.argpartition(-scores, TOP_K)[:TOP_K]
            brute.append(1000 * (time.perf_counter() - t0))
            found = {int(h["key"][1:]) for h in hits}
            recalls.append(len(found & {int(i) for i in exact}) / TOP_K)
        rows.append((f"QueryVectors through boto3, {size:,} vectors, topK={TOP_K} (HNSW)",
                     f"{statistics.median(api):.2f} ms", f"{_percentile(api, 99):.2f} ms",
                     f"{statistics.mean(recalls):.3f}", ""))
        rows.append((f"HNSW search alone, {size:,} vectors (efSearch={vec.EF_SEARCH})",
                     f"{statistics.median(hnsw):.3f} ms", f"{_percentile(hnsw, 99):.3f} ms", "", ""))
        rows.append((f"Brute force (exact, numpy), {size:,} vectors", f"{statistics.median(brute):.3f} ms",
                     f"{_percentile(brute, 99):.3f} ms", "1 (by definition)",
                     f"HNSW {statistics.median(brute) / statistics.median(hnsw):.1f}x faster"))
    s3v.delete_index(vectorBucketName="bench-vectors", indexName="bench")
    s3v.delete_vector_bucket(vectorBucketName="bench-vectors")
    return rows


OPENSEARCH_SIZE = 10_000


def _opensearch() -> list[tuple[str, ...]]:
    import json

    import boto3
    from opensearchpy import AWSV4SignerAuth, OpenSearch, RequestsHttpConnection, helpers

    aoss = boto3.client("opensearchserverless")
    me = boto3.client("sts").get_caller_identity()["Arn"]
    rules = [{"Resource": ["collection/bench"], "ResourceType": "collection"}]
    aoss.create_security_policy(name="bench-enc", type="encryption", policy=json.dumps({"Rules": rules,
                                                                                        "AWSOwnedKey": True}))
    aoss.create_security_policy(name="bench-net", type="network", policy=json.dumps([{"Rules": rules,
                                                                                      "AllowFromPublic": True}]))
    aoss.create_access_policy(name="bench-data", type="data", policy=json.dumps([{"Principal": [me], "Rules": [
        {"Resource": ["index/bench/*"], "ResourceType": "index", "Permission": ["aoss:*"]}]}]))
    cid = aoss.create_collection(name="bench", type="VECTORSEARCH")["createCollectionDetail"]["id"]
    aoss.batch_get_collection(ids=[cid])
    client = OpenSearch(hosts=[{"host": f"{cid}.us-east-1.aoss.amazonaws.com", "port": 443}],
                        http_auth=AWSV4SignerAuth(boto3.Session().get_credentials(), "us-east-1", "aoss"),
                        use_ssl=True, verify_certs=True, connection_class=RequestsHttpConnection, timeout=300)
    client.indices.create(index="bench", body={"settings": {"index.knn": True}, "mappings": {"properties": {
        "v": {"type": "knn_vector", "dimension": DIM,
              "method": {"name": "hnsw", "engine": "faiss", "space_type": "innerproduct"}}}}})
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((CENTRES, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    data = _clustered(rng, OPENSEARCH_SIZE, centres)
    queries = _clustered(rng, QUERIES, centres)
    started = time.perf_counter()
    helpers.bulk(client, ({"_index": "bench", "_id": str(i), "v": data[i].tolist()} for i in range(len(data))),
                 chunk_size=500)
    rate = len(data) / (time.perf_counter() - started)
    latency, recalls = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = client.search(index="bench", body={"size": TOP_K, "_source": False, "query": {"knn": {"v": {
            "vector": q.tolist(), "k": TOP_K}}}})["hits"]["hits"]
        latency.append(1000 * (time.perf_counter() - t0))
        exact = set(np.argpartition(-(data @ q), TOP_K)[:TOP_K].tolist())
        recalls.append(len({int(h["_id"]) for h in hits} & exact) / TOP_K)
    client.indices.delete(index="bench")
    aoss.delete_collection(id=cid)
    return [(f"_bulk through opensearch-py, {len(data):,} vectors (500 a request)", f"{rate:,.0f} vectors/s", "",
             "", ""),
            (f"knn query through opensearch-py, {len(data):,} vectors, k={TOP_K} (faiss HNSW, innerproduct)",
             f"{statistics.median(latency):.2f} ms", f"{_percentile(latency, 99):.2f} ms",
             f"{statistics.mean(recalls):.3f}", "SigV4-signed, over the loopback endpoint")]


def main() -> str:
    import labkit

    labkit.connect("bench-bedrock", backend="offline", quiet=True)
    embed_rows = _embeddings()
    print(embed_rows, flush=True)
    vector_rows = _vectors()
    opensearch_rows = _opensearch()
    import os

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = ["### Offline Bedrock", "",
             f"Load average at the end of the run: {load:.1f} on {os.cpu_count()} cores (a shared machine: "
             "the figures move with it).", "",
             f"Embeddings of {PASSAGES} passages of `data/rag/docs` (~100 words each; Titan V2 at {DIM} dimensions):",
             "", "| path | passages | word pieces |", "|---|---|---|",
             *[f"| {a} | {b} | {c} |" for a, b, c in embed_rows], "",
             f"S3 Vectors QueryVectors, {DIM}-d cosine, {QUERIES} queries, synthetic clustered vectors "
             f"({CENTRES:,} centres); recall@{TOP_K} against exact search:", "",
             "| measure | p50 / value | p99 | recall@10 | note |", "|---|---|---|---|---|",
             *[f"| {' | '.join(r)} |" for r in vector_rows], "",
             f"OpenSearch Serverless k-NN, {DIM}-d, {QUERIES} queries, the same kind of vectors; recall@{TOP_K} "
             "against exact search:", "",
             "| measure | p50 / value | p99 | recall@10 | note |", "|---|---|---|---|---|",
             *[f"| {' | '.join(r)} |" for r in opensearch_rows]]
    table = "\n".join(lines)
    print(table)
    return table


if __name__ == "__main__":
    main()
