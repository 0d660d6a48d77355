"""Bedrock Agents offline: agents, action groups, aliases, versions, and InvokeAgent with return control."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
INSTRUCTION = "You answer questions about the on-demand prices of SageMaker instance types."
FUNCTIONS = {"functions": [{"name": "get_instance_price",
                            "description": "Look up the on-demand hourly price in USD of a SageMaker instance type",
                            "parameters": {"instance_type": {"type": "string", "required": True,
                                                             "description": "an instance type, e.g. ml.m5.xlarge"}}}]}
PRICES = {"ml.g5.xlarge": 1.408, "ml.m5.xlarge": 0.23}


@pytest.fixture(scope="module")
def agents(lab):
    return boto3.client("bedrock-agent"), boto3.client("bedrock-agent-runtime")


def _error(call, **kw):
    with pytest.raises(ClientError) as err:
        call(**kw)
    return err.value.response["Error"]


def _agent(ag, lab, name, executor=None):
    a = ag.create_agent(agentName=name, foundationModel=MODEL, instruction=INSTRUCTION,
                        agentResourceRoleArn=lab.role_arn)["agent"]
    ag.create_agent_action_group(agentId=a["agentId"], agentVersion="DRAFT", actionGroupName="pricing",
                                 actionGroupExecutor=executor or {"customControl": "RETURN_CONTROL"},
                                 functionSchema=FUNCTIONS)
    ag.prepare_agent(agentId=a["agentId"])
    return a["agentId"]


def _events(response):
    return list(response["completion"])


def test_agent_lifecycle_as_aws_reports_it(agents, lab):
    ag, _ = agents
    created = ag.create_agent(agentName="lifecycle", foundationModel=MODEL, instruction=INSTRUCTION,
                              agentResourceRoleArn=lab.role_arn)["agent"]
    agent_id = created["agentId"]
    assert created["agentStatus"] == "CREATING" and created["agentVersion"] == "DRAFT"
    assert len(agent_id) == 10 and agent_id.isalnum() and agent_id.isupper()
    assert created["agentArn"] == f"arn:aws:bedrock:us-east-1:{lab.account_id}:agent/{agent_id}"
    assert ag.get_agent(agentId=agent_id)["agent"]["agentStatus"] == "NOT_PREPARED"
    with pytest.raises(ClientError):  # an alias needs a prepared agent
        ag.create_agent_alias(agentId=agent_id, agentAliasName="too-early")
    group = ag.create_agent_action_group(agentId=agent_id, agentVersion="DRAFT", actionGroupName="pricing",
                                         actionGroupExecutor={"customControl": "RETURN_CONTROL"},
                                         functionSchema=FUNCTIONS)["agentActionGroup"]
    assert group["actionGroupState"] == "ENABLED"
    prepared = ag.prepare_agent(agentId=agent_id)
    assert prepared["agentStatus"] == "PREPARING" and prepared["agentVersion"] == "DRAFT"
    assert ag.get_agent(agentId=agent_id)["agent"]["agentStatus"] == "PREPARED"
    alias = ag.create_agent_alias(agentId=agent_id, agentAliasName="live")["agentAlias"]
    assert alias["agentAliasStatus"] == "CREATING" and alias["routingConfiguration"] == [{"agentVersion": "1"}]
    assert ag.get_agent_alias(agentId=agent_id, agentAliasId=alias["agentAliasId"])["agentAlias"][
        "agentAliasStatus"] == "PREPARED"
    aliases = {a["agentAliasId"] for a in ag.list_agent_aliases(agentId=agent_id)["agentAliasSummaries"]}
    assert aliases == {"TSTALIASID", alias["agentAliasId"]}
    versions = {v["agentVersion"] for v in ag.list_agent_versions(agentId=agent_id)["agentVersionSummaries"]}
    assert versions == {"DRAFT", "1"}
    assert ag.list_agent_action_groups(agentId=agent_id, agentVersion="1")["actionGroupSummaries"][0][
        "actionGroupName"] == "pricing"
    # Changing DRAFT makes it NOT_PREPARED again; version 1 is frozen.
    ag.update_agent_action_group(agentId=agent_id, agentVersion="DRAFT", actionGroupId=group["actionGroupId"],
                                 actionGroupName="pricing", actionGroupState="DISABLED",
                                 actionGroupExecutor={"customControl": "RETURN_CONTROL"}, functionSchema=FUNCTIONS)
    assert ag.get_agent(agentId=agent_id)["agent"]["agentStatus"] == "NOT_PREPARED"
    assert ag.list_agent_action_groups(agentId=agent_id, agentVersion="1")["actionGroupSummaries"][0][
        "actionGroupState"] == "ENABLED", "a numbered version does not change with DRAFT"
    assert _error(ag.delete_agent, agentId=agent_id)["Code"] == "ConflictException"
    ag.delete_agent_alias(agentId=agent_id, agentAliasId=alias["agentAliasId"])
    ag.delete_agent(agentId=agent_id)
    assert _error(ag.get_agent, agentId=agent_id)["Code"] == "ResourceNotFoundException"


def test_prepare_checks_model_instruction_and_role(agents, lab):
    ag, _ = agents
    a = ag.create_agent(agentName="unfit", foundationModel="amazon.titan-text-express-v1",
                        instruction="Too short, but long enough for botocore to send it.")["agent"]
    err = _error(ag.prepare_agent, agentId=a["agentId"])
    assert "cannot orchestrate an agent" in err["Message"] and "agentResourceRoleArn" in err["Message"]
    ag.update_agent(agentId=a["agentId"], agentName="unfit", foundationModel="anthropic.claude-haiku-4-5-20251001-v1:0",
                    agentResourceRoleArn=lab.role_arn)
    assert "on-demand throughput" in _error(ag.prepare_agent, agentId=a["agentId"])["Message"]


def test_invoke_agent_returns_control_and_answers_from_the_result(agents, lab):
    ag, rt = agents
    agent_id = _agent(ag, lab, "pricing-agent")
    alias = ag.create_agent_alias(agentId=agent_id, agentAliasName="live")["agentAlias"]["agentAliasId"]
    session = str(uuid.uuid4())
    first = rt.invoke_agent(agentId=agent_id, agentAliasId=alias, sessionId=session, enableTrace=True,
                            inputText="What does an ml.g5.xlarge cost per hour?")
    assert first["sessionId"] == session and first["contentType"] == "application/json"
    events = _events(first)
    traces = [e["trace"]["trace"]["orchestrationTrace"] for e in events if "trace" in e]
    assert any("modelInvocationInput" in t for t in traces) and any("invocationInput" in t for t in traces)
    (control,) = [e["returnControl"] for e in events if "returnControl" in e]
    assert not any("chunk" in e for e in events), "the agent waits for the function's result"
    call = control["invocationInputs"][0]["functionInvocationInput"]
    assert (call["actionGroup"], call["function"]) == ("pricing", "get_instance_price")
    params = {p["name"]: p["value"] for p in call["parameters"]}
    assert params == {"instance_type": "ml.g5.xlarge"} and call["parameters"][0]["type"] == "string"
    result = json.dumps({"instance_type": params["instance_type"], "usd_per_hour": PRICES[params["instance_type"]]})
    second = rt.invoke_agent(agentId=agent_id, agentAliasId=alias, sessionId=session, sessionState={
        "invocationId": control["invocationId"],
        "returnControlInvocationResults": [{"functionResult": {
            "actionGroup": call["actionGroup"], "function": call["function"],
            "responseBody": {"TEXT": {"body": result}}}}]})
    chunks = [e["chunk"]["bytes"].decode() for e in _events(second) if "chunk" in e]
    assert len(chunks) == 1 and "1.408" in chunks[0] and "get_instance_price" in chunks[0]
    # The session remembers; a question no function fits is answered in text.
    third = rt.invoke_agent(agentId=agent_id, agentAliasId=alias, sessionId=session, inputText="Thanks, goodbye.",
                            endSession=True)
    assert [e for e in _events(third) if "chunk" in e]


def test_return_control_results_must_match_the_pending_call(agents, lab):
    ag, rt = agents
    agent_id = _agent(ag, lab, "strict-agent")
    session = str(uuid.uuid4())
    events = _events(rt.invoke_agent(agentId=agent_id, agentAliasId="TSTALIASID", sessionId=session,
                                     inputText="Price of ml.m5.xlarge?"))
    control = next(e["returnControl"] for e in events if "returnControl" in e)
    wrong = {"invocationId": str(uuid.uuid4()), "returnControlInvocationResults": [{"functionResult": {
        "actionGroup": "pricing", "function": "get_instance_price", "responseBody": {"TEXT": {"body": "0.23"}}}}]}
    with pytest.raises(ClientError) as err:
        _events(rt.invoke_agent(agentId=agent_id, agentAliasId="TSTALIASID", sessionId=session, sessionState=wrong))
    assert "does not match the pending invocation" in err.value.response["Error"]["Message"]
    failed = {"invocationId": control["invocationId"], "returnControlInvocationResults": [{"functionResult": {
        "actionGroup": "pricing", "function": "get_instance_price", "responseState": "FAILURE",
        "responseBody": {"TEXT": {"body": "price list unavailable"}}}}]}
    answer = [e["chunk"]["bytes"].decode() for e in _events(rt.invoke_agent(
        agentId=agent_id, agentAliasId="TSTALIASID", sessionId=session, sessionState=failed)) if "chunk" in e]
    assert "failed" in answer[0] and "price list unavailable" in answer[0]


def test_lambda_action_groups_do_not_run_offline(agents, lab):
    ag, rt = agents
    agent_id = _agent(ag, lab, "lambda-agent",
                      executor={"lambda": f"arn:aws:lambda:us-east-1:{lab.account_id}:function:prices"})
    with pytest.raises(ClientError) as err:
        _events(rt.invoke_agent(agentId=agent_id, agentAliasId="TSTALIASID", sessionId="s1",
                                inputText="Price of ml.m5.xlarge?"))
    assert err.value.response["Error"]["Code"] == "DependencyFailedException"
    assert "RETURN_CONTROL" in err.value.response["Error"]["Message"]


def test_unprepared_agents_cannot_be_invoked(agents, lab):
    ag, rt = agents
    a = ag.create_agent(agentName="raw", foundationModel=MODEL, instruction=INSTRUCTION,
                        agentResourceRoleArn=lab.role_arn)["agent"]
    with pytest.raises(ClientError) as err:
        _events(rt.invoke_agent(agentId=a["agentId"], agentAliasId="TSTALIASID", sessionId="s1", inputText="hi"))
    assert "not prepared" in err.value.response["Error"]["Message"]


def test_an_agent_with_a_knowledge_base_answers_from_it_with_citations(agents, lab):
    ag, rt = agents
    s3, s3v = boto3.client("s3"), boto3.client("s3vectors")
    s3.put_object(Bucket=lab.bucket, Key="agent-kb/spot.md", Body=b"Managed Spot Training can reduce training cost "
                  b"by up to 90 percent. Checkpoints let interrupted jobs resume.")
    s3v.create_vector_bucket(vectorBucketName="agent-kb")
    s3v.create_index(vectorBucketName="agent-kb", indexName="kb-index", dataType="float32", dimension=1024,
                     distanceMetric="cosine",
                     metadataConfiguration={"nonFilterableMetadataKeys": ["AMAZON_BEDROCK_TEXT",
                                                                          "AMAZON_BEDROCK_METADATA"]})
    index_arn = s3v.get_index(vectorBucketName="agent-kb", indexName="kb-index")["index"]["indexArn"]
    kb = ag.create_knowledge_base(name="agent-notes", roleArn=lab.role_arn, knowledgeBaseConfiguration={
        "type": "VECTOR", "vectorKnowledgeBaseConfiguration": {
            "embeddingModelArn": "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0"}},
        storageConfiguration={"type": "S3_VECTORS", "s3VectorsConfiguration": {"indexArn": index_arn}})[
        "knowledgeBase"]["knowledgeBaseId"]
    ds = ag.create_data_source(knowledgeBaseId=kb, name="notes", dataSourceConfiguration={
        "type": "S3", "s3Configuration": {"bucketArn": f"arn:aws:s3:::{lab.bucket}",
                                          "inclusionPrefixes": ["agent-kb/"]}})["dataSource"]["dataSourceId"]
    assert ag.start_ingestion_job(knowledgeBaseId=kb, dataSourceId=ds)["ingestionJob"]["status"] == "COMPLETE"
    agent_id = _agent(ag, lab, "kb-agent")
    ag.associate_agent_knowledge_base(agentId=agent_id, agentVersion="DRAFT", knowledgeBaseId=kb,
                                      description="Course notes about training")
    assert ag.get_agent(agentId=agent_id)["agent"]["agentStatus"] == "NOT_PREPARED"
    ag.prepare_agent(agentId=agent_id)
    events = _events(rt.invoke_agent(agentId=agent_id, agentAliasId="TSTALIASID", sessionId="kb-session",
                                     inputText="How much can managed spot training save?", enableTrace=True))
    (chunk,) = [e["chunk"] for e in events if "chunk" in e]
    assert "90 percent" in chunk["bytes"].decode()
    refs = chunk["attribution"]["citations"][0]["retrievedReferences"]
    assert refs[0]["location"]["s3Location"]["uri"] == f"s3://{lab.bucket}/agent-kb/spot.md"
    lookups = [e["trace"]["trace"]["orchestrationTrace"]["invocationInput"] for e in events if "trace" in e
               and "invocationInput" in e["trace"]["trace"]["orchestrationTrace"]]
    assert lookups and lookups[0]["invocationType"] == "KNOWLEDGE_BASE"


def test_openapi_action_groups_are_refused_offline(agents, lab):
    ag, rt = agents
    a = ag.create_agent(agentName="openapi-agent", foundationModel=MODEL, instruction=INSTRUCTION,
                        agentResourceRoleArn=lab.role_arn)["agent"]["agentId"]
    ag.create_agent_action_group(agentId=a, agentVersion="DRAFT", actionGroupName="api",
                                 actionGroupExecutor={"customControl": "RETURN_CONTROL"},
                                 apiSchema={"payload": json.dumps({"openapi": "3.0.0", "paths": {}})})
    ag.prepare_agent(agentId=a)
    with pytest.raises(ClientError) as err:
        _events(rt.invoke_agent(agentId=a, agentAliasId="TSTALIASID", sessionId="s1", inputText="hi"))
    assert "functionSchema" in err.value.response["Error"]["Message"]


def test_invoke_agent_streams_over_the_local_endpoint(agents, lab):
    """What a kernel attached to the shared backend sees: the event stream serialized over HTTP."""
    import os
    import subprocess
    import sys
    import textwrap

    ag, _ = agents
    agent_id = _agent(ag, lab, "http-agent")
    code = textwrap.dedent(f'''
        import json, boto3
        rt = boto3.client("bedrock-agent-runtime")
        r = rt.invoke_agent(agentId="{agent_id}", agentAliasId="TSTALIASID", sessionId="http-1",
                            inputText="What does an ml.g5.xlarge cost per hour?")
        control = [e["returnControl"] for e in r["completion"] if "returnControl" in e][0]
        call = control["invocationInputs"][0]["functionInvocationInput"]
        r = rt.invoke_agent(agentId="{agent_id}", agentAliasId="TSTALIASID", sessionId="http-1", sessionState={{
            "invocationId": control["invocationId"], "returnControlInvocationResults": [{{"functionResult": {{
                "actionGroup": call["actionGroup"], "function": call["function"],
                "responseBody": {{"TEXT": {{"body": "1.408 USD per hour"}}}}}}}}]}})
        chunks = [e["chunk"]["bytes"].decode() for e in r["completion"] if "chunk" in e]
        print(json.dumps([r["sessionId"], call["parameters"], chunks]))
    ''')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-2000:]
    session, params, chunks = json.loads(out.stdout.strip().splitlines()[-1])
    assert session == "http-1" and params[0]["value"] == "ml.g5.xlarge"
    assert len(chunks) == 1 and "1.408 USD per hour" in chunks[0]
