"""S3 Vectors queries and Bedrock Knowledge Bases offline, through plain boto3."""

from __future__ import annotations

import json

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError

from labkit.offline import usage

EMBED_ARN = "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
DOCS = {
    "kb/spot.txt": "Managed Spot Training uses spare EC2 capacity. It can reduce training cost by up to 90 percent "
                   "compared with on-demand instances. Jobs may be interrupted, so save checkpoints to S3.",
    "kb/endpoints.md": "# Endpoints\nReal-time endpoints serve predictions over HTTPS. Serverless inference scales "
                       "to zero when idle, and you pay per request.",
    "kb/pipelines.html": "<html><body><p>SageMaker Pipelines chains processing, training and registration steps "
                         "into a workflow.</p></body></html>",
}


def _error(call, **kw):
    with pytest.raises(ClientError) as err:
        call(**kw)
    return err.value.response["Error"]


@pytest.fixture(scope="module")
def s3v(lab):
    client = boto3.client("s3vectors")
    client.create_vector_bucket(vectorBucketName="course-vectors")
    return client


def test_query_vectors_nearest_neighbours_with_filters(s3v):
    s3v.create_index(vectorBucketName="course-vectors", indexName="movies", dataType="float32", dimension=8,
                     distanceMetric="cosine")
    rng = np.random.default_rng(1)
    data = rng.standard_normal((600, 8)).astype(np.float32)
    vectors = [{"key": f"m{i}", "data": {"float32": data[i].tolist()},
                "metadata": {"genre": ["drama", "comedy", "horror"][i % 3], "year": 2000 + i % 25}}
               for i in range(600)]
    for i in range(0, 600, 500):
        s3v.put_vectors(vectorBucketName="course-vectors", indexName="movies", vectors=vectors[i:i + 500])
    q = data[42] + 0.01
    r = s3v.query_vectors(vectorBucketName="course-vectors", indexName="movies", topK=5,
                          queryVector={"float32": q.tolist()}, returnDistance=True, returnMetadata=True)
    assert r["distanceMetric"] == "cosine" and r["vectors"][0]["key"] == "m42"
    normed = data / np.linalg.norm(data, axis=1, keepdims=True)
    exact = 1 - normed @ (q / np.linalg.norm(q))
    expected = [f"m{i}" for i in np.argsort(exact)[:5]]
    assert [v["key"] for v in r["vectors"]] == expected
    assert r["vectors"][0]["distance"] == pytest.approx(exact.min(), abs=1e-4)
    assert r["vectors"][0]["metadata"] == {"genre": "drama", "year": 2017}
    flt = {"$and": [{"genre": "comedy"}, {"year": {"$gte": 2020}}]}
    r = s3v.query_vectors(vectorBucketName="course-vectors", indexName="movies", topK=10,
                          queryVector={"float32": q.tolist()}, filter=flt, returnMetadata=True)
    assert len(r["vectors"]) == 10
    assert all(v["metadata"]["genre"] == "comedy" and v["metadata"]["year"] >= 2020 for v in r["vectors"])
    assert "distance" not in r["vectors"][0]
    s3v.delete_vectors(vectorBucketName="course-vectors", indexName="movies", keys=["m42"])
    r = s3v.query_vectors(vectorBucketName="course-vectors", indexName="movies", topK=1,
                          queryVector={"float32": q.tolist()})
    assert r["vectors"][0]["key"] != "m42"
    # overwriting a key moves it
    s3v.put_vectors(vectorBucketName="course-vectors", indexName="movies",
                    vectors=[{"key": "m7", "data": {"float32": q.tolist()}, "metadata": {"genre": "drama"}}])
    r = s3v.query_vectors(vectorBucketName="course-vectors", indexName="movies", topK=1,
                          queryVector={"float32": q.tolist()})
    assert r["vectors"][0]["key"] == "m7"


def test_query_vectors_euclidean_and_errors(s3v):
    s3v.create_index(vectorBucketName="course-vectors", indexName="points", dataType="float32", dimension=2,
                     distanceMetric="euclidean")
    s3v.put_vectors(vectorBucketName="course-vectors", indexName="points", vectors=[
        {"key": "origin", "data": {"float32": [0, 0]}}, {"key": "far", "data": {"float32": [3, 4]}}])
    r = s3v.query_vectors(vectorBucketName="course-vectors", indexName="points", topK=2,
                          queryVector={"float32": [0, 0]}, returnDistance=True)
    assert r["distanceMetric"] == "euclidean"
    assert [(v["key"], round(v["distance"], 4)) for v in r["vectors"]] == [("origin", 0.0), ("far", 5.0)]
    err = _error(s3v.query_vectors, vectorBucketName="course-vectors", indexName="points", topK=1,
                 queryVector={"float32": [0, 0, 0]})
    assert err["Code"] == "ValidationException" and "length 2" in err["Message"]
    err = _error(s3v.query_vectors, vectorBucketName="course-vectors", indexName="points", topK=1,
                 queryVector={"float32": [0, 0]}, filter={"x": {"$like": 1}})
    assert "unsupported operator" in err["Message"]
    err = _error(s3v.query_vectors, vectorBucketName="course-vectors", indexName="nope", topK=1,
                 queryVector={"float32": [0, 0]})
    assert err["Code"] == "NotFoundException"


def test_put_vectors_metadata_limits_and_non_filterable_keys(s3v):
    s3v.create_index(vectorBucketName="course-vectors", indexName="chunks", dataType="float32", dimension=2,
                     distanceMetric="cosine", metadataConfiguration={"nonFilterableMetadataKeys": ["text"]})
    index = s3v.get_index(vectorBucketName="course-vectors", indexName="chunks")["index"]
    assert index["metadataConfiguration"] == {"nonFilterableMetadataKeys": ["text"]}
    long_text = "spot training " * 300  # ~4 KB: too big to filter on, fine when non-filterable
    s3v.put_vectors(vectorBucketName="course-vectors", indexName="chunks", vectors=[
        {"key": "c1", "data": {"float32": [1, 0]}, "metadata": {"doc": "a.md", "text": long_text}}])
    err = _error(s3v.put_vectors, vectorBucketName="course-vectors", indexName="chunks", vectors=[
        {"key": "c2", "data": {"float32": [0, 1]}, "metadata": {"doc": "a.md", "body": long_text}}])
    assert err["Code"] == "ValidationException" and "2 KB" in err["Message"] and "nonFilterableMetadataKeys" in \
        err["Message"]
    err = _error(s3v.put_vectors, vectorBucketName="course-vectors", indexName="chunks", vectors=[
        {"key": "c3", "data": {"float32": [0, 1]}, "metadata": {f"k{i}": i for i in range(51)}}])
    assert "51 metadata keys" in err["Message"]
    err = _error(s3v.put_vectors, vectorBucketName="course-vectors", indexName="chunks", vectors=[
        {"key": "c4", "data": {"float32": [0, 1]}, "metadata": {"text": "x" * 41000}}])
    assert "40 KB" in err["Message"]
    hits = s3v.query_vectors(vectorBucketName="course-vectors", indexName="chunks", topK=3,
                             queryVector={"float32": [1, 0]}, returnMetadata=True)["vectors"]
    assert [h["key"] for h in hits] == ["c1"] and hits[0]["metadata"]["text"] == long_text
    s3v.delete_index(vectorBucketName="course-vectors", indexName="chunks")


@pytest.fixture(scope="module")
def kb(lab, s3v):
    s3 = boto3.client("s3")
    for key, text in DOCS.items():
        s3.put_object(Bucket=lab.bucket, Key=key, Body=text.encode())
    s3.put_object(Bucket=lab.bucket, Key="kb/spot.txt.metadata.json",
                  Body=json.dumps({"metadataAttributes": {"topic": "training"}}).encode())
    s3.put_object(Bucket=lab.bucket, Key="kb/manual.pdf", Body=b"%PDF-1.4 binary")
    s3v.create_index(vectorBucketName="course-vectors", indexName="kb-index", dataType="float32", dimension=512,
                     distanceMetric="cosine")
    index = s3v.get_index(vectorBucketName="course-vectors", indexName="kb-index")["index"]
    agent = boto3.client("bedrock-agent")
    base = agent.create_knowledge_base(
        name="course-kb", roleArn=lab.role_arn,
        knowledgeBaseConfiguration={"type": "VECTOR", "vectorKnowledgeBaseConfiguration": {
            "embeddingModelArn": EMBED_ARN,
            "embeddingModelConfiguration": {"bedrockEmbeddingModelConfiguration": {"dimensions": 512}}}},
        storageConfiguration={"type": "S3_VECTORS", "s3VectorsConfiguration": {"indexArn": index["indexArn"]}},
    )["knowledgeBase"]
    source = agent.create_data_source(
        knowledgeBaseId=base["knowledgeBaseId"], name="course-docs",
        dataSourceConfiguration={"type": "S3", "s3Configuration": {"bucketArn": f"arn:aws:s3:::{lab.bucket}",
                                                                   "inclusionPrefixes": ["kb/"]}},
        vectorIngestionConfiguration={"chunkingConfiguration": {
            "chunkingStrategy": "FIXED_SIZE",
            "fixedSizeChunkingConfiguration": {"maxTokens": 25, "overlapPercentage": 20}}},
    )["dataSource"]
    return {"agent": agent, "kb": base, "ds": source, "index": index}


def test_ingestion_chunks_embeds_and_indexes(kb, s3v, lab):
    agent, kb_id, ds_id = kb["agent"], kb["kb"]["knowledgeBaseId"], kb["ds"]["dataSourceId"]
    assert kb["kb"]["status"] == "ACTIVE" and len(kb_id) == 10
    usage.reset()
    job = agent.start_ingestion_job(knowledgeBaseId=kb_id, dataSourceId=ds_id)["ingestionJob"]
    got = agent.get_ingestion_job(knowledgeBaseId=kb_id, dataSourceId=ds_id,
                                  ingestionJobId=job["ingestionJobId"])["ingestionJob"]
    assert got["status"] == "COMPLETE"
    stats = got["statistics"]
    assert stats["numberOfDocumentsScanned"] == 4 and stats["numberOfNewDocumentsIndexed"] == 3
    assert stats["numberOfMetadataDocumentsScanned"] == 1 and stats["numberOfDocumentsFailed"] == 1
    assert any("manual.pdf" in reason for reason in got["failureReasons"])
    listed = s3v.list_vectors(vectorBucketName="course-vectors", indexName="kb-index", returnMetadata=True)["vectors"]
    texts = [v["metadata"]["AMAZON_BEDROCK_TEXT"] for v in listed]
    assert len(listed) >= 4 and all(len(t) > 0 for t in texts)
    assert not any("<p>" in t for t in texts)
    assert any(v["metadata"].get("topic") == "training" for v in listed)
    assert usage.events("bedrock:tokens")[0]["model_id"] == "amazon.titan-embed-text-v2:0"
    # re-ingesting unchanged documents does nothing; a changed one is re-indexed; a removed one deleted
    s3 = boto3.client("s3")
    s3.put_object(Bucket=lab.bucket, Key="kb/endpoints.md", Body=b"Endpoints serve predictions. Updated.")
    s3.delete_object(Bucket=lab.bucket, Key="kb/pipelines.html")
    job = agent.start_ingestion_job(knowledgeBaseId=kb_id, dataSourceId=ds_id)["ingestionJob"]
    stats = job["statistics"]
    assert (stats["numberOfNewDocumentsIndexed"], stats["numberOfModifiedDocumentsIndexed"],
            stats["numberOfDocumentsDeleted"]) == (0, 1, 1)
    assert len(agent.list_ingestion_jobs(knowledgeBaseId=kb_id, dataSourceId=ds_id)["ingestionJobSummaries"]) == 2
    assert agent.list_data_sources(knowledgeBaseId=kb_id)["dataSourceSummaries"][0]["name"] == "course-docs"


def test_retrieve_and_generate_with_citations(kb):
    runtime = boto3.client("bedrock-agent-runtime")
    kb_id = kb["kb"]["knowledgeBaseId"]
    r = runtime.retrieve(knowledgeBaseId=kb_id, retrievalQuery={"text": "How much does spot training save?"},
                         retrievalConfiguration={"vectorSearchConfiguration": {"numberOfResults": 3}})
    results = r["retrievalResults"]
    assert len(results) == 3 and results[0]["score"] >= results[1]["score"]
    assert results[0]["location"]["s3Location"]["uri"].endswith("kb/spot.txt")
    assert "90 percent" in " ".join(x["content"]["text"] for x in results[:2])
    filtered = runtime.retrieve(knowledgeBaseId=kb_id, retrievalQuery={"text": "endpoints"}, retrievalConfiguration={
        "vectorSearchConfiguration": {"numberOfResults": 5, "filter": {"equals": {"key": "topic", "value": "training"}}}})
    assert filtered["retrievalResults"]
    assert all(x["metadata"]["topic"] == "training" for x in filtered["retrievalResults"])
    r = runtime.retrieve_and_generate(
        input={"text": "How much can spot training reduce cost?"},
        retrieveAndGenerateConfiguration={"type": "KNOWLEDGE_BASE", "knowledgeBaseConfiguration": {
            "knowledgeBaseId": kb_id, "modelArn": HAIKU}})
    assert r["output"]["text"].startswith("(offline stand-in)") and "90 percent" in r["output"]["text"]
    (citation,) = r["citations"]
    part = citation["generatedResponsePart"]["textResponsePart"]
    assert r["output"]["text"][part["span"]["start"]:part["span"]["end"] + 1] == part["text"]
    assert citation["retrievedReferences"][0]["location"]["s3Location"]["uri"].endswith("kb/spot.txt")
    assert r["sessionId"]
    none = runtime.retrieve_and_generate(
        input={"text": "Who won the football world cup?"},
        retrieveAndGenerateConfiguration={"type": "KNOWLEDGE_BASE", "knowledgeBaseConfiguration": {
            "knowledgeBaseId": kb_id, "modelArn": HAIKU}})
    assert "cannot find" in none["output"]["text"] and none["citations"] == []


def test_knowledge_base_errors(kb, lab):
    agent = kb["agent"]
    runtime = boto3.client("bedrock-agent-runtime")
    assert _error(runtime.retrieve, knowledgeBaseId="NOSUCHKB00", retrievalQuery={"text": "x"})["Code"] == \
        "ResourceNotFoundException"
    err = _error(agent.create_knowledge_base, name="bad-kb", roleArn=lab.role_arn,
                 knowledgeBaseConfiguration={"type": "VECTOR", "vectorKnowledgeBaseConfiguration": {
                     "embeddingModelArn": "arn:aws:bedrock:us-east-1::foundation-model/" + HAIKU}},
                 storageConfiguration={"type": "S3_VECTORS", "s3VectorsConfiguration": {
                     "indexArn": kb["index"]["indexArn"]}})
    assert err["Code"] == "ValidationException"
    err = _error(agent.get_ingestion_job, knowledgeBaseId=kb["kb"]["knowledgeBaseId"],
                 dataSourceId=kb["ds"]["dataSourceId"], ingestionJobId="NOSUCHJOB0")
    assert err["Code"] == "ResourceNotFoundException"


def _kb_on(agent, s3v, lab, name, prefix, metadata_config=None):
    kwargs = {"metadataConfiguration": metadata_config} if metadata_config else {}
    s3v.create_index(vectorBucketName="course-vectors", indexName=f"{name}-index", dataType="float32", dimension=512,
                     distanceMetric="cosine", **kwargs)
    index = s3v.get_index(vectorBucketName="course-vectors", indexName=f"{name}-index")["index"]
    base = agent.create_knowledge_base(
        name=name, roleArn=lab.role_arn,
        knowledgeBaseConfiguration={"type": "VECTOR", "vectorKnowledgeBaseConfiguration": {
            "embeddingModelArn": EMBED_ARN,
            "embeddingModelConfiguration": {"bedrockEmbeddingModelConfiguration": {"dimensions": 512}}}},
        storageConfiguration={"type": "S3_VECTORS", "s3VectorsConfiguration": {"indexArn": index["indexArn"]}},
    )["knowledgeBase"]
    source = agent.create_data_source(
        knowledgeBaseId=base["knowledgeBaseId"], name=f"{name}-docs",
        dataSourceConfiguration={"type": "S3", "s3Configuration": {"bucketArn": f"arn:aws:s3:::{lab.bucket}",
                                                                   "inclusionPrefixes": [prefix]}},
        vectorIngestionConfiguration={"chunkingConfiguration": {"chunkingStrategy": "NONE"}})["dataSource"]
    job = agent.start_ingestion_job(knowledgeBaseId=base["knowledgeBaseId"], dataSourceId=source["dataSourceId"])
    return base, job["ingestionJob"]


def test_pre_chunked_ingestion_batches_and_large_chunks_need_non_filterable_text(kb, s3v, lab):
    s3 = boto3.client("s3")
    for i in range(620):  # more than one PutVectors call of 500
        s3.put_object(Bucket=lab.bucket, Key=f"chunks/c{i:03d}.md", Body=f"Chunk {i} of the course notes.".encode())
    s3.put_object(Bucket=lab.bucket, Key="chunks/c000.md.metadata.json",
                  Body=json.dumps({"metadataAttributes": {"chunk_id": "c000"}}).encode())
    agent = kb["agent"]
    base, job = _kb_on(agent, s3v, lab, "pre-chunked", "chunks/")
    assert job["status"] == "COMPLETE" and job["statistics"]["numberOfNewDocumentsIndexed"] == 620, job
    keys = [v["key"] for v in s3v.list_vectors(vectorBucketName="course-vectors", indexName="pre-chunked-index")[
        "vectors"]]
    assert len(keys) == 620
    hit = boto3.client("bedrock-agent-runtime").retrieve(
        knowledgeBaseId=base["knowledgeBaseId"], retrievalQuery={"text": "Chunk 0 of the course notes."},
        retrievalConfiguration={"vectorSearchConfiguration": {"numberOfResults": 1}})["retrievalResults"][0]
    assert hit["metadata"]["chunk_id"] == "c000" and hit["content"]["text"] == "Chunk 0 of the course notes."

    s3.put_object(Bucket=lab.bucket, Key="big/long.md", Body=("Spot training saves money. " * 120).encode())
    _, failed = _kb_on(agent, s3v, lab, "big-chunks", "big/")
    assert failed["status"] == "FAILED"
    assert "s3://" in failed["failureReasons"][0] and "AMAZON_BEDROCK_TEXT" in failed["failureReasons"][0]
    _, ok = _kb_on(agent, s3v, lab, "big-chunks-ok", "big/", {"nonFilterableMetadataKeys": [
        "AMAZON_BEDROCK_TEXT", "AMAZON_BEDROCK_METADATA"]})
    assert ok["status"] == "COMPLETE", ok


def test_citations_reference_passages_whose_sentences_wrap_across_lines(kb, s3v, lab):
    """A PDF's text layer breaks lines mid-sentence; the cited passage is still the reference (workshop nb 2)."""
    boto3.client("s3").put_object(Bucket=lab.bucket, Key="wrapped/letter.txt", Body=(
        b"Shareholder letter\nThis year the company invested heavily in its cloud computing\nservices and "
        b"thanked its customers, its employees and all of its\nshareholders for their trust.\n"))
    base, job = _kb_on(kb["agent"], s3v, lab, "wrapped", "wrapped/")
    assert job["status"] == "COMPLETE", job
    answer = boto3.client("bedrock-agent-runtime").retrieve_and_generate(
        input={"text": "What did the company invest in?"},
        retrieveAndGenerateConfiguration={"type": "KNOWLEDGE_BASE", "knowledgeBaseConfiguration": {
            "knowledgeBaseId": base["knowledgeBaseId"], "modelArn": HAIKU}})
    assert "invested heavily in its cloud computing services" in answer["output"]["text"]
    (citation,) = answer["citations"]
    (reference,) = citation["retrievedReferences"]
    assert reference["location"]["s3Location"]["uri"].endswith("wrapped/letter.txt")
    assert "cloud computing\nservices" in reference["content"]["text"]
