"""OpenSearch Serverless offline, and the Bedrock workshop's Knowledge Base flow on it.

The flow is the one of aws-samples/amazon-bedrock-workshop, 02_Knowledge_Bases_and_RAG
(notebooks 1-3), written here in our own words with plain boto3 and opensearch-py.
"""

from __future__ import annotations

import io
import json

import boto3
import pytest
from botocore.exceptions import ClientError
from opensearchpy import (
    AWSV4SignerAuth,
    OpenSearch,
    RequestsHttpConnection,
    Urllib3AWSV4SignerAuth,
    Urllib3HttpConnection,
    helpers,
)
from opensearchpy.exceptions import AuthorizationException, NotFoundError, RequestError

from labkit.offline import dispatch

REGION = "us-east-1"
HAIKU_45 = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
EMBED = "amazon.titan-embed-text-v2:0"
DOCS = {
    "spot.md": "# Managed Spot Training\n\nManaged Spot Training uses spare EC2 capacity and can reduce training "
               "cost by up to 90 percent. SageMaker saves checkpoints to Amazon S3 so that an interrupted job "
               "resumes where it stopped.\n",
    "endpoints.md": "# Endpoints\n\nA serverless endpoint scales to zero when idle and bills per millisecond of "
                    "inference. Multi-model endpoints host thousands of models behind one endpoint.\n",
    "eks.md": "# EKS\n\nKarpenter launches right-sized nodes for pending pods in seconds. A PyTorchJob runs "
              "distributed training on Kubernetes.\n",
}


def _policies(aoss, name: str, principals: list[str], permissions: list[str] | None = None) -> None:
    aoss.create_security_policy(name=f"{name}-enc", type="encryption", policy=json.dumps(
        {"Rules": [{"Resource": [f"collection/{name}"], "ResourceType": "collection"}], "AWSOwnedKey": True}))
    aoss.create_security_policy(name=f"{name}-net", type="network", policy=json.dumps(
        [{"Rules": [{"Resource": [f"collection/{name}"], "ResourceType": "collection"}], "AllowFromPublic": True}]))
    aoss.create_access_policy(name=f"{name}-data", type="data", policy=json.dumps([{
        "Rules": [{"Resource": [f"collection/{name}"], "ResourceType": "collection",
                   "Permission": ["aoss:CreateCollectionItems", "aoss:DescribeCollectionItems"]},
                  {"Resource": [f"index/{name}/*"], "ResourceType": "index",
                   "Permission": permissions or ["aoss:CreateIndex", "aoss:DeleteIndex", "aoss:UpdateIndex",
                                                 "aoss:DescribeIndex", "aoss:ReadDocument", "aoss:WriteDocument"]}],
        "Principal": principals, "Description": "test"}]))


def _client(collection_id: str, connection=RequestsHttpConnection) -> OpenSearch:
    credentials = boto3.Session().get_credentials()
    auth = (AWSV4SignerAuth if connection is RequestsHttpConnection else Urllib3AWSV4SignerAuth)(
        credentials, REGION, "aoss")
    return OpenSearch(hosts=[{"host": f"{collection_id}.{REGION}.aoss.amazonaws.com", "port": 443}], http_auth=auth,
                      use_ssl=True, verify_certs=True, connection_class=connection, timeout=60)


@pytest.fixture(scope="module")
def aoss(lab):
    return boto3.client("opensearchserverless")


@pytest.fixture(scope="module")
def me(lab):
    return boto3.client("sts").get_caller_identity()["Arn"]


# --- the control plane --------------------------------------------------------------------------


def test_create_collection_needs_a_matching_encryption_policy(aoss):
    with pytest.raises(ClientError) as err:
        aoss.create_collection(name="nopolicy", type="VECTORSEARCH")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "No matching security policy of encryption type" in err.value.response["Error"]["Message"]
    # A wildcard rule matches, as AWS's resource patterns do; the network policy is not an encryption policy.
    aoss.create_security_policy(name="wild-net", type="network", policy=json.dumps(
        [{"Rules": [{"Resource": ["collection/wild-*"], "ResourceType": "collection"}], "AllowFromPublic": True}]))
    with pytest.raises(ClientError):
        aoss.create_collection(name="wild-one", type="VECTORSEARCH")
    aoss.create_security_policy(name="wild-enc", type="encryption", policy=json.dumps(
        {"Rules": [{"Resource": ["collection/wild-*"], "ResourceType": "collection"}], "AWSOwnedKey": True}))
    created = aoss.create_collection(name="wild-one", type="VECTORSEARCH")["createCollectionDetail"]
    assert created["status"] == "CREATING" and created["kmsKeyArn"] == "auto"
    assert len(created["id"]) == 20 and created["arn"].endswith(f":collection/{created['id']}")
    listed = aoss.list_collections(collectionFilters={"name": "wild-one"})["collectionSummaries"]
    assert [c["status"] for c in listed] == ["ACTIVE"]
    detail = aoss.batch_get_collection(names=["wild-one", "absent"])
    (found,) = detail["collectionDetails"]
    assert found["collectionEndpoint"] == f"https://{created['id']}.{REGION}.aoss.amazonaws.com"
    assert found["dashboardEndpoint"].endswith("/_dashboards")
    assert detail["collectionErrorDetails"] == [{"name": "absent", "errorCode": "NOT_FOUND",
                                                 "errorMessage": "The specified Collection is not found."}]
    with pytest.raises(ClientError) as err:
        aoss.create_collection(name="wild-one", type="VECTORSEARCH")
    assert err.value.response["Error"]["Code"] == "ConflictException"
    assert aoss.delete_collection(id=created["id"])["deleteCollectionDetail"]["status"] == "DELETING"


@pytest.mark.parametrize("kind,policy,problem", [
    ("encryption", {"Rules": [{"Resource": ["collection/x"], "ResourceType": "collection"}]}, "AWSOwnedKey"),
    ("encryption", {"AWSOwnedKey": True}, "Rules"),
    ("network", {"Rules": []}, "array expected"),
    ("network", [{"Rules": [{"Resource": ["collection/x"], "ResourceType": "collection"}]}], "AllowFromPublic"),
    ("network", [{"Rules": [{"Resource": ["index/x/*"], "ResourceType": "collection"}], "AllowFromPublic": True}],
     "must start with collection/"),
])
def test_security_policies_are_validated(aoss, kind, policy, problem):
    with pytest.raises(ClientError) as err:
        aoss.create_security_policy(name="bad-policy", type=kind, policy=json.dumps(policy))
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "Policy json is invalid" in err.value.response["Error"]["Message"]
    assert problem in err.value.response["Error"]["Message"]


def test_access_policies_create_get_update_list_delete(aoss, me):
    doc = [{"Rules": [{"Resource": ["index/acc/*"], "ResourceType": "index", "Permission": ["aoss:ReadDocument"]}],
            "Principal": [me]}]
    created = aoss.create_access_policy(name="acc-data", type="data", policy=json.dumps(doc))["accessPolicyDetail"]
    assert created["policy"] == doc and created["type"] == "data"
    with pytest.raises(ClientError) as err:
        aoss.create_access_policy(name="acc-data", type="data", policy=json.dumps(doc))
    assert err.value.response["Error"]["Code"] == "ConflictException"
    with pytest.raises(ClientError) as err:
        aoss.create_access_policy(name="acc-bad", type="data", policy=json.dumps(
            [{"Rules": [{"Resource": ["index/acc/*"], "ResourceType": "index", "Permission": ["aoss:Nope"]}],
              "Principal": [me]}]))
    assert "not a valid permission" in err.value.response["Error"]["Message"]
    doc[0]["Rules"][0]["Permission"].append("aoss:WriteDocument")
    with pytest.raises(ClientError):  # an old policyVersion is refused
        aoss.update_access_policy(name="acc-data", type="data", policyVersion="MTY" + "0" * 17, policy=json.dumps(doc))
    updated = aoss.update_access_policy(name="acc-data", type="data", policyVersion=created["policyVersion"],
                                        policy=json.dumps(doc))["accessPolicyDetail"]
    assert updated["policyVersion"] != created["policyVersion"] and "aoss:WriteDocument" in json.dumps(updated)
    names = [p["name"] for p in aoss.list_access_policies(type="data")["accessPolicySummaries"]]
    assert "acc-data" in names
    assert aoss.list_access_policies(type="data", resource=["index/acc/x"])["accessPolicySummaries"]
    aoss.delete_access_policy(name="acc-data", type="data")
    with pytest.raises(ClientError) as err:
        aoss.get_access_policy(name="acc-data", type="data")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


# --- the collection endpoint, through opensearch-py -----------------------------------------------


@pytest.fixture(scope="module")
def collection(aoss, me):
    _policies(aoss, "vectors", [me])
    return aoss.create_collection(name="vectors", type="VECTORSEARCH")["createCollectionDetail"]["id"]


KNN_INDEX = {"settings": {"index.knn": True, "knn.algo_param.ef_search": 128},
             "mappings": {"properties": {
                 "vector": {"type": "knn_vector", "dimension": 4,
                            "method": {"name": "hnsw", "engine": "faiss", "space_type": "l2",
                                       "parameters": {"m": 16, "ef_construction": 128}}},
                 "text": {"type": "text"}, "team": {"type": "keyword"}, "year": {"type": "integer"}}}}


@pytest.mark.parametrize("connection", [RequestsHttpConnection, Urllib3HttpConnection])
def test_knn_index_documents_and_search(collection, connection):
    client = _client(collection, connection)
    name = f"docs-{connection.__name__.lower()}"
    assert client.indices.create(index=name, body=KNN_INDEX)["acknowledged"] is True
    assert client.indices.exists(index=name)
    with pytest.raises(RequestError) as err:
        client.indices.create(index=name, body=KNN_INDEX)
    assert err.value.error == "resource_already_exists_exception"
    rows = [("a", [1, 0, 0, 0], "red apple orchard", "fruit", 2020), ("b", [0, 1, 0, 0], "green pear tree", "fruit", 2021),
            ("c", [0, 0, 1, 0], "blue sky above", "sky", 2022), ("d", [0.9, 0.1, 0, 0], "red cherry", "fruit", 2023)]
    assert client.index(index=name, id="a", body={"vector": rows[0][1], "text": rows[0][2], "team": rows[0][3],
                                                  "year": rows[0][4]})["result"] == "created"
    ok, errors = helpers.bulk(client, [{"_index": name, "_id": r[0], "vector": r[1], "text": r[2], "team": r[3],
                                        "year": r[4]} for r in rows[1:]])
    assert ok == 3 and not errors
    assert client.get(index=name, id="b")["_source"]["text"] == "green pear tree"
    hits = client.search(index=name, body={"size": 2, "query": {"knn": {"vector": {"vector": [1, 0, 0, 0], "k": 2}}}})
    ids = [h["_id"] for h in hits["hits"]["hits"]]
    assert ids == ["a", "d"]
    assert hits["hits"]["hits"][0]["_score"] == pytest.approx(1.0)  # l2: 1 / (1 + d^2)
    assert hits["hits"]["hits"][1]["_score"] == pytest.approx(1 / (1 + 0.01 + 0.01), rel=1e-4)
    filtered = client.search(index=name, body={"query": {"knn": {"vector": {
        "vector": [1, 0, 0, 0], "k": 3, "filter": {"range": {"year": {"gte": 2021}}}}}}})
    assert [h["_id"] for h in filtered["hits"]["hits"]][0] == "d"
    assert "a" not in [h["_id"] for h in filtered["hits"]["hits"]]
    text = client.search(index=name, body={"query": {"match": {"text": "red"}}, "_source": ["text"]})
    assert {h["_id"] for h in text["hits"]["hits"]} == {"a", "d"}
    assert set(text["hits"]["hits"][0]["_source"]) == {"text"}
    both = client.search(index=name, body={"query": {"bool": {"must": [{"match": {"text": "red"}}],
                                                             "filter": [{"term": {"team": "fruit"}}],
                                                             "must_not": [{"term": {"year": 2020}}]}}})
    assert [h["_id"] for h in both["hits"]["hits"]] == ["d"]
    assert client.count(index=name)["count"] == 4
    with pytest.raises(RequestError) as err:
        client.index(index=name, body={"vector": [1, 2], "text": "short"})
    assert "Vector dimension mismatch. Expected: 4, Given: 2" in str(err.value.info)
    assert client.delete(index=name, id="c")["result"] == "deleted"
    with pytest.raises(NotFoundError):
        client.get(index=name, id="c")
    with pytest.raises(NotFoundError) as err:
        client.search(index="nothing-here", body={"query": {"match_all": {}}})
    assert err.value.error == "index_not_found_exception"
    assert client.indices.delete(index=name)["acknowledged"] is True


@pytest.mark.parametrize("space,engine,expected", [
    ("cosinesimil", "faiss", (1 + 0.6) / 2), ("cosinesimil", "nmslib", 1 / (2 - 0.6)),
    ("innerproduct", "faiss", 1 + 0.6),
])
def test_knn_scores_follow_opensearch_space_types(collection, space, engine, expected):
    client = _client(collection)
    name = f"space-{space}-{engine}"
    client.indices.create(index=name, body={"settings": {"index": {"knn": True}}, "mappings": {"properties": {
        "v": {"type": "knn_vector", "dimension": 2, "method": {"name": "hnsw", "engine": engine,
                                                               "space_type": space}}}}})
    client.index(index=name, id="x", body={"v": [0.6, 0.8]})
    (hit,) = client.search(index=name, body={"query": {"knn": {"v": {"vector": [1, 0], "k": 1}}}})["hits"]["hits"]
    assert hit["_score"] == pytest.approx(expected, rel=1e-5)


def test_mappings_are_checked_as_opensearch_checks_them(collection):
    client = _client(collection)
    for body, problem in [
        ({"mappings": {"properties": {"v": {"type": "knn_vector", "dimension": 0}}}}, "Dimension value"),
        ({"settings": {"index.knn": True}, "mappings": {"properties": {
            "v": {"type": "knn_vector", "dimension": 3, "method": {"name": "hnsw", "engine": "annoy"}}}}},
         "Invalid engine"),
        ({"settings": {"index.knn": True}, "mappings": {"properties": {
            "v": {"type": "knn_vector", "dimension": 3, "method": {"name": "hnsw", "space_type": "hamming2"}}}}},
         "Invalid space type"),
        ({"mappings": {"properties": {"v": {"type": "knn_vector", "dimension": 3,
                                            "method": {"name": "hnsw", "engine": "faiss"}}}}}, "index.knn"),
        ({"mappings": {"properties": {"t": {"type": "texte"}}}}, "No handler for type [texte]"),
    ]:
        with pytest.raises(RequestError) as err:
            client.indices.create(index="bad-mapping", body=body)
        assert problem in str(err.value.info), (problem, err.value.info)
    with pytest.raises(RequestError) as err:
        client.indices.create(index="Upper", body={})
    assert err.value.error == "invalid_index_name_exception"


def test_the_endpoint_checks_signature_network_and_data_access(aoss, me, collection):
    import requests

    from labkit.offline import opensearch_client as route

    host, port = route.endpoint()
    unsigned = requests.get(f"http://{host}:{port}/_aoss/{collection}/", timeout=10)
    assert unsigned.status_code == 403
    # Without a data access policy for this caller nothing is allowed, with AWS's security_exception.
    _policies(aoss, "locked", ["arn:aws:iam::123456789012:role/SomeoneElse"])
    locked = aoss.create_collection(name="locked", type="VECTORSEARCH")["createCollectionDetail"]["id"]
    aoss.list_collections()
    with pytest.raises(AuthorizationException) as err:
        _client(locked).indices.create(index="mine", body=KNN_INDEX)
    assert err.value.error == "security_exception" and "aoss:CreateIndex" in str(err.value.info)
    # Read-only access: reading works, writing does not.
    aoss.create_security_policy(name="readonly-enc", type="encryption", policy=json.dumps(
        {"Rules": [{"Resource": ["collection/readonly"], "ResourceType": "collection"}], "AWSOwnedKey": True}))
    ro = aoss.create_collection(name="readonly", type="VECTORSEARCH")["createCollectionDetail"]["id"]
    aoss.list_collections()
    with pytest.raises(AuthorizationException):  # no network policy: 403 Forbidden
        _client(ro).indices.exists(index="x")
    aoss.create_security_policy(name="readonly-net", type="network", policy=json.dumps(
        [{"Rules": [{"Resource": ["collection/readonly"], "ResourceType": "collection"}], "AllowFromPublic": True}]))
    aoss.create_access_policy(name="readonly-data", type="data", policy=json.dumps([{"Rules": [
        {"Resource": ["index/readonly/*"], "ResourceType": "index", "Permission": ["aoss:DescribeIndex",
                                                                            "aoss:ReadDocument"]}],
        "Principal": [me]}]))
    client = _client(ro)
    assert client.indices.exists(index="x") is False
    with pytest.raises(AuthorizationException):
        client.indices.create(index="x", body={})


def test_requests_aws4auth_signs_for_the_collection_as_the_workshop_does(collection):
    """The Bedrock workshop signs with requests-aws4auth's ``AWS4Auth``, not opensearch-py's signer."""
    from requests_aws4auth import AWS4Auth

    credentials = boto3.Session().get_credentials()

    def client(service: str) -> OpenSearch:
        auth = AWS4Auth(credentials.access_key, credentials.secret_key, REGION, service,
                        session_token=credentials.token)
        return OpenSearch(hosts=[{"host": f"{collection}.{REGION}.aoss.amazonaws.com", "port": 443}],
                          http_auth=auth, use_ssl=True, verify_certs=True,
                          connection_class=RequestsHttpConnection, timeout=60)

    signed = client("aoss")
    assert signed.indices.create(index="aws4auth", body=KNN_INDEX)["acknowledged"] is True
    signed.index(index="aws4auth", id="a", body={"vector": [1, 0, 0, 0], "text": "signed by AWS4Auth"})
    hits = signed.search(index="aws4auth", body={"query": {"knn": {"vector": {"vector": [1, 0, 0, 0], "k": 1}}}})
    assert [h["_source"]["text"] for h in hits["hits"]["hits"]] == ["signed by AWS4Auth"]
    with pytest.raises(AuthorizationException) as err:  # scoped to another service: refused as AWS refuses it
        client("es").search(index="aws4auth", body={"query": {"match_all": {}}})
    assert "scoped to correct service: 'aoss'" in str(err.value.info)
    signed.indices.delete(index="aws4auth")


def test_other_aws_hosts_are_refused_and_nothing_leaves_the_machine(lab):
    with pytest.raises(dispatch.NotEmulatedError, match="Nothing was sent to AWS"):
        OpenSearch(hosts=[{"host": "search-domain-abc.us-east-1.es.amazonaws.com", "port": 443}], use_ssl=True,
                   connection_class=RequestsHttpConnection)


def test_control_plane_create_index(aoss, collection):
    aoss.create_index(id=collection, indexName="from-api", indexSchema=KNN_INDEX)
    schema = aoss.get_index(id=collection, indexName="from-api")["indexSchema"]
    assert schema["mappings"]["properties"]["vector"]["dimension"] == 4
    assert schema["settings"]["index"]["knn"] == "true"
    aoss.delete_index(id=collection, indexName="from-api")
    with pytest.raises(ClientError):
        aoss.get_index(id=collection, indexName="from-api")


# --- the workshop's Knowledge Base flow -------------------------------------------------------------


def _pdf(text: str) -> bytes:
    """A one-page PDF with a real text layer (matplotlib's PDF backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(8.5, 11))
    fig.text(0.05, 0.9, text, fontsize=9, wrap=True)
    out = io.BytesIO()
    fig.savefig(out, format="pdf")
    plt.close(fig)
    return out.getvalue()


def test_workshop_knowledge_base_flow_on_opensearch_serverless(lab, aoss, me):
    s3, iam = boto3.client("s3"), boto3.client("iam")
    agent, agent_runtime = boto3.client("bedrock-agent"), boto3.client("bedrock-agent-runtime")
    bucket, collection_name, index_name = "bedrock-kb-us-east-1-4242", "bedrock-kb-collection-4242", "bedrock-kb-index"
    s3.create_bucket(Bucket=bucket)
    for key, text in DOCS.items():
        s3.put_object(Bucket=bucket, Key=key, Body=text.encode())
    s3.put_object(Bucket=bucket, Key="letter.pdf", Body=_pdf("Amazon Bedrock Guardrails block denied topics and "
                                                               "mask personal information in prompts and answers."))
    role = iam.create_role(RoleName="AmazonBedrockExecutionRoleForKnowledgeBase_4242", AssumeRolePolicyDocument=
                           json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
                               "Service": "bedrock.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    # 1. The three policies, then the collection.
    _policies(aoss, collection_name, [me, role], ["aoss:CreateIndex", "aoss:DeleteIndex", "aoss:UpdateIndex",
                                                  "aoss:DescribeIndex", "aoss:ReadDocument", "aoss:WriteDocument"])
    collection = aoss.create_collection(name=collection_name, type="VECTORSEARCH")["createCollectionDetail"]
    while aoss.list_collections(collectionFilters={"name": collection_name})["collectionSummaries"][0]["status"] \
            not in ("ACTIVE", "FAILED"):
        pass
    # 2. The vector index, with opensearch-py, as the workshop writes it.
    client = _client(collection["id"])
    client.indices.create(index=index_name, body={
        "settings": {"index.knn": "true", "number_of_shards": 1, "knn.algo_param.ef_search": 512,
                     "number_of_replicas": 0},
        "mappings": {"properties": {
            "vector": {"type": "knn_vector", "dimension": 1024,
                       "method": {"name": "hnsw", "engine": "faiss", "space_type": "l2"}},
            "text": {"type": "text"}, "text-metadata": {"type": "text"}}}})
    storage = {"type": "OPENSEARCH_SERVERLESS", "opensearchServerlessConfiguration": {
        "collectionArn": collection["arn"], "vectorIndexName": index_name,
        "fieldMapping": {"vectorField": "vector", "textField": "text", "metadataField": "text-metadata"}}}
    kb_config = {"type": "VECTOR", "vectorKnowledgeBaseConfiguration": {
        "embeddingModelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{EMBED}"}}
    # A wrong index name fails as Bedrock fails it.
    with pytest.raises(ClientError) as err:
        agent.create_knowledge_base(name="kb-wrong", roleArn=role, knowledgeBaseConfiguration=kb_config,
                                    storageConfiguration={**storage, "opensearchServerlessConfiguration": {
                                        **storage["opensearchServerlessConfiguration"], "vectorIndexName": "nope"}})
    assert "no such index [nope]" in err.value.response["Error"]["Message"]
    # 3. The knowledge base, its S3 data source, the ingestion job.
    kb = agent.create_knowledge_base(name="bedrock-kb-4242", description="Course notes", roleArn=role,
                                     knowledgeBaseConfiguration=kb_config, storageConfiguration=storage)["knowledgeBase"]
    assert agent.get_knowledge_base(knowledgeBaseId=kb["knowledgeBaseId"])["knowledgeBase"]["status"] == "ACTIVE"
    ds = agent.create_data_source(knowledgeBaseId=kb["knowledgeBaseId"], name="bedrock-kb-4242",
                                  dataSourceConfiguration={"type": "S3", "s3Configuration": {
                                      "bucketArn": f"arn:aws:s3:::{bucket}"}},
                                  vectorIngestionConfiguration={"chunkingConfiguration": {
                                      "chunkingStrategy": "FIXED_SIZE",
                                      "fixedSizeChunkingConfiguration": {"maxTokens": 512,
                                                                         "overlapPercentage": 20}}})["dataSource"]
    job = agent.start_ingestion_job(knowledgeBaseId=kb["knowledgeBaseId"], dataSourceId=ds["dataSourceId"])
    job = agent.get_ingestion_job(knowledgeBaseId=kb["knowledgeBaseId"], dataSourceId=ds["dataSourceId"],
                                  ingestionJobId=job["ingestionJob"]["ingestionJobId"])["ingestionJob"]
    assert job["status"] == "COMPLETE", job.get("failureReasons")
    assert job["statistics"]["numberOfDocumentsScanned"] == 4 and job["statistics"]["numberOfNewDocumentsIndexed"] == 4
    # The chunks are documents of the learner's index, in the mapped fields.
    docs = client.search(index=index_name, body={"size": 10, "query": {"match_all": {}}})["hits"]["hits"]
    assert len(docs) == 4
    source = docs[0]["_source"]
    assert len(source["vector"]) == 1024 and source["text"]
    assert json.loads(source["text-metadata"])["source"].startswith(f"s3://{bucket}/")
    # 4. Retrieve (semantic and hybrid) and RetrieveAndGenerate with a current Claude model.
    question = "How much can managed spot training save?"
    results = agent_runtime.retrieve(knowledgeBaseId=kb["knowledgeBaseId"], retrievalQuery={"text": question},
                                     retrievalConfiguration={"vectorSearchConfiguration": {
                                         "numberOfResults": 3}})["retrievalResults"]
    assert results[0]["location"]["s3Location"]["uri"] == f"s3://{bucket}/spot.md"
    assert "90 percent" in results[0]["content"]["text"] and 0 < results[0]["score"] <= 1
    hybrid = agent_runtime.retrieve(knowledgeBaseId=kb["knowledgeBaseId"], retrievalQuery={"text": question},
                                    retrievalConfiguration={"vectorSearchConfiguration": {
                                        "numberOfResults": 3, "overrideSearchType": "HYBRID"}})["retrievalResults"]
    assert hybrid[0]["location"]["s3Location"]["uri"] == f"s3://{bucket}/spot.md"
    pdf = agent_runtime.retrieve(knowledgeBaseId=kb["knowledgeBaseId"],
                                 retrievalQuery={"text": "What do guardrails mask?"})["retrievalResults"]
    assert pdf[0]["location"]["s3Location"]["uri"].endswith("letter.pdf")
    answer = agent_runtime.retrieve_and_generate(input={"text": question}, retrieveAndGenerateConfiguration={
        "type": "KNOWLEDGE_BASE", "knowledgeBaseConfiguration": {"knowledgeBaseId": kb["knowledgeBaseId"],
                                                                 "modelArn": HAIKU_45}})
    assert "90 percent" in answer["output"]["text"]
    cited = [r["location"]["s3Location"]["uri"] for c in answer["citations"] for r in c["retrievedReferences"]]
    assert f"s3://{bucket}/spot.md" in cited
    # The Claude 4.5 model is profile-only: its base id is refused here too.
    with pytest.raises(ClientError) as err:
        agent_runtime.retrieve_and_generate(input={"text": question}, retrieveAndGenerateConfiguration={
            "type": "KNOWLEDGE_BASE", "knowledgeBaseConfiguration": {
                "knowledgeBaseId": kb["knowledgeBaseId"],
                "modelArn": f"arn:aws:bedrock:{REGION}::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0"}})
    assert "on-demand throughput isn’t supported" in err.value.response["Error"]["Message"]
    # 5. Clean up, as the workshop's last notebook does.
    agent.delete_data_source(knowledgeBaseId=kb["knowledgeBaseId"], dataSourceId=ds["dataSourceId"])
    assert client.count(index=index_name)["count"] == 0  # dataDeletionPolicy DELETE removes the chunks
    agent.delete_knowledge_base(knowledgeBaseId=kb["knowledgeBaseId"])
    client.indices.delete(index=index_name)
    aoss.delete_collection(id=collection["id"])
    for kind, suffix in (("encryption", "enc"), ("network", "net")):
        aoss.delete_security_policy(type=kind, name=f"{collection_name}-{suffix}")
    aoss.delete_access_policy(type="data", name=f"{collection_name}-data")
    assert not aoss.list_collections(collectionFilters={"name": collection_name})["collectionSummaries"]


def test_knowledge_base_role_needs_the_index_in_a_data_access_policy(lab, aoss, me):
    iam, agent = boto3.client("iam"), boto3.client("bedrock-agent")
    role = iam.create_role(RoleName="kb-role-without-access", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    _policies(aoss, "noaccess", [me])
    c = aoss.create_collection(name="noaccess", type="VECTORSEARCH")["createCollectionDetail"]
    aoss.list_collections()
    _client(c["id"]).indices.create(index="idx", body={"settings": {"index.knn": True}, "mappings": {"properties": {
        "v": {"type": "knn_vector", "dimension": 1024}, "t": {"type": "text"}, "m": {"type": "text"}}}})
    with pytest.raises(ClientError) as err:
        agent.create_knowledge_base(
            name="kb-noaccess", roleArn=role, knowledgeBaseConfiguration={
                "type": "VECTOR", "vectorKnowledgeBaseConfiguration": {
                    "embeddingModelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{EMBED}"}},
            storageConfiguration={"type": "OPENSEARCH_SERVERLESS", "opensearchServerlessConfiguration": {
                "collectionArn": c["arn"], "vectorIndexName": "idx",
                "fieldMapping": {"vectorField": "v", "textField": "t", "metadataField": "m"}}})
    message = err.value.response["Error"]["Message"]
    assert "security_exception" in message and role in message
