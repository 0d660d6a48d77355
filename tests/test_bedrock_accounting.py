"""Offline Bedrock: constraints botocore leaves to AWS, the throttle switch on both backends,
every call metered and priced, and the stand-in's numbered citations."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from test_bedrock_runtime import COHERE, CONTEXT, EMBED, HAIKU, LLAMA, TITAN

import labkit.bedrock
from labkit.bedrock import catalog, throttling, validation
from labkit.cost import catalogue as cat
from labkit.cost.meter import price_events
from labkit.offline import usage


def _error(call, *a, **kw):
    with pytest.raises(ClientError) as err:
        call(*a, **kw)
    return err.value.response["Error"]


# --- enums and maximums botocore does not check ---------------------------------------------------


def test_seed_guardrail_pii_type_ssn_is_rejected_as_aws_rejects_it(bedrock_clients):
    br, _ = bedrock_clients
    err = _error(br.create_guardrail, name="seed-001", blockedInputMessaging="no", blockedOutputsMessaging="no",
                 sensitiveInformationPolicyConfig={"piiEntitiesConfig": [
                     {"type": "EMAIL", "action": "BLOCK"}, {"type": "SSN", "action": "BLOCK"}]})
    assert err["Code"] == "ValidationException"
    assert ("Value 'SSN' at 'sensitiveInformationPolicyConfig.piiEntitiesConfig.2.member.type' failed to satisfy "
            "constraint: Member must satisfy enum value set: [ADDRESS, AGE,") in err["Message"]
    assert "US_SOCIAL_SECURITY_NUMBER" in err["Message"]
    ok = br.create_guardrail(name="seed-001", blockedInputMessaging="no", blockedOutputsMessaging="no",
                             sensitiveInformationPolicyConfig={"piiEntitiesConfig": [
                                 {"type": "US_SOCIAL_SECURITY_NUMBER", "action": "BLOCK"}]})
    br.delete_guardrail(guardrailIdentifier=ok["guardrailId"])


def test_bad_filter_strength_and_too_long_name(bedrock_clients):
    br, _ = bedrock_clients
    err = _error(br.create_guardrail, name="g", blockedInputMessaging="no", blockedOutputsMessaging="no",
                 contentPolicyConfig={"filtersConfig": [{"type": "VIOLENCE", "inputStrength": "VERY_HIGH",
                                                         "outputStrength": "HIGH"}]})
    assert "Value 'VERY_HIGH' at 'contentPolicyConfig.filtersConfig.1.member.inputStrength'" in err["Message"]
    err = _error(br.create_guardrail, name="n" * 51, blockedInputMessaging="no", blockedOutputsMessaging="no")
    assert err["Code"] == "ValidationException" and "length less than or equal to 50" in err["Message"]


def test_moto_answered_s3vectors_calls_get_the_same_checks(lab):
    s3v = boto3.client("s3vectors")
    s3v.create_vector_bucket(vectorBucketName="accounting-bucket")
    err = _error(s3v.create_index, vectorBucketName="accounting-bucket", indexName="idx", dataType="float32",
                 dimension=8, distanceMetric="manhattan")
    assert err["Code"] == "ValidationException"
    assert err["Message"] == ("1 validation error detected. Value at '/distanceMetric' failed to satisfy constraint: "
                              "Member must satisfy enum value set: [euclidean, cosine]")
    err = _error(s3v.create_index, vectorBucketName="accounting-bucket", indexName="idx", dataType="float32",
                 dimension=5000, distanceMetric="cosine")
    assert "Value at '/dimension' failed to satisfy constraint: Member must be between 1 and 4096" in err["Message"]
    s3v.create_index(vectorBucketName="accounting-bucket", indexName="idx", dataType="float32", dimension=8,
                     distanceMetric="cosine")
    s3v.delete_index(vectorBucketName="accounting-bucket", indexName="idx")
    s3v.delete_vector_bucket(vectorBucketName="accounting-bucket")


def test_validation_walks_nested_lists_and_skips_float_vectors():
    found = validation.problems("bedrock", "CreateGuardrail", {
        "name": "x", "blockedInputMessaging": "a", "blockedOutputsMessaging": "b",
        "topicPolicyConfig": {"topicsConfig": [{"name": "t", "definition": "d", "type": "ALLOW"}]}})
    assert found == ["Value 'ALLOW' at 'topicPolicyConfig.topicsConfig.1.member.type' failed to satisfy constraint: "
                     "Member must satisfy enum value set: [DENY]"]
    assert validation.problems("s3vectors", "PutVectors", {
        "vectorBucketName": "b", "indexName": "i",
        "vectors": [{"key": "k", "data": {"float32": [0.1] * 10}}]}) == []


# --- the throttle switch ---------------------------------------------------------------------------


def test_throttle_counts_every_runtime_operation(bedrock_clients):
    _, rt = bedrock_clients
    agent = boto3.client("bedrock-agent-runtime")
    before = throttling.throttled_calls
    labkit.bedrock.throttle(3)
    try:
        assert _error(rt.converse, modelId=HAIKU,
                      messages=[{"role": "user", "content": [{"text": "hi"}]}])["Code"] == "ThrottlingException"
        assert _error(rt.apply_guardrail, guardrailIdentifier="x", guardrailVersion="DRAFT", source="INPUT",
                      content=[{"text": {"text": "x"}}])["Code"] == "ThrottlingException"
        assert _error(agent.retrieve, knowledgeBaseId="KB12345678",
                      retrievalQuery={"text": "x"})["Code"] == "ThrottlingException"
    finally:
        labkit.bedrock.throttle(0)
    assert throttling.throttled_calls - before == 3
    with pytest.raises(ClientError) as err:
        rt.converse(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "hi"}]}],
                    inferenceConfig={"maxTokens": 99999})
    assert err.value.response["Error"]["Code"] == "ValidationException"  # switch off again
    with pytest.raises(ValueError, match="whole number"):
        labkit.bedrock.throttle(True)


def test_throttle_on_the_sandbox_backend_answers_on_the_client_side(bedrock_clients, monkeypatch):
    """Where no offline backend runs, the switch answers before the request is sent."""
    monkeypatch.setattr(throttling, "_offline_running", lambda: False)
    labkit.bedrock.throttle(2)
    try:
        rt = boto3.Session().client("bedrock-runtime", config=Config(retries={"total_max_attempts": 1}))
        for _ in range(2):
            with pytest.raises(rt.exceptions.ThrottlingException) as err:
                rt.invoke_model(modelId=EMBED, body=json.dumps({"inputText": "x"}))
            assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
        br = boto3.Session().client("bedrock")
        labkit.bedrock.throttle(1)
        assert br.list_foundation_models()["modelSummaries"]  # the control plane never throttles
        assert throttling.remaining() == 1
    finally:
        labkit.bedrock.throttle(0)
    body = json.loads(rt.invoke_model(modelId=EMBED, body=json.dumps({"inputText": "x"}))["body"].read())
    assert len(body["embedding"]) == 1024


# --- every call's tokens reach the meter, at the model's own prices --------------------------------


def test_every_catalogue_model_has_its_prices():
    prices = cat.load()
    for model in catalog.all_models():
        if model.is_image:
            assert prices.bedrock(model.model_id, "images").price_usd > 0, model.model_id
            continue
        assert prices.bedrock(model.model_id, "input-tokens").price_usd > 0, model.model_id
        if not model.is_embedding:
            assert prices.bedrock(model.model_id, "output-tokens").price_usd > 0, model.model_id


def test_every_call_is_metered_and_priced_per_model(bedrock_clients):
    _, rt = bedrock_clients
    usage.reset()
    question = f"{CONTEXT} Where are checkpoints saved?"
    claude = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
              "messages": [{"role": "user", "content": question}]}
    seen: dict[str, list[tuple[int, int]]] = {}

    def note(model, n_in, n_out):
        seen.setdefault(model, []).append((n_in, n_out))

    body = json.loads(rt.invoke_model(modelId=HAIKU, body=json.dumps(claude))["body"].read())
    note(HAIKU, body["usage"]["input_tokens"], body["usage"]["output_tokens"])
    body = json.loads(rt.invoke_model(modelId=TITAN, body=json.dumps({"inputText": question}))["body"].read())
    note(TITAN, body["inputTextTokenCount"], body["results"][0]["tokenCount"])
    chunks = [json.loads(e["chunk"]["bytes"]) for e in rt.invoke_model_with_response_stream(
        modelId=LLAMA, body=json.dumps({"prompt": question}))["body"]]
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    note(LLAMA, metrics["inputTokenCount"], metrics["outputTokenCount"])
    messages = [{"role": "user", "content": [{"text": question}]}]
    r = rt.converse(modelId="us." + HAIKU, messages=messages)  # an inference profile: priced as its model
    note(HAIKU, r["usage"]["inputTokens"], r["usage"]["outputTokens"])
    meta = [e["metadata"] for e in rt.converse_stream(modelId=TITAN, messages=messages)["stream"] if "metadata" in e]
    note(TITAN, meta[0]["usage"]["inputTokens"], meta[0]["usage"]["outputTokens"])
    body = json.loads(rt.invoke_model(modelId=EMBED, body=json.dumps({"inputText": "spot training"}))["body"].read())
    note(EMBED, body["inputTextTokenCount"], 0)
    rt.invoke_model(modelId=COHERE, body=json.dumps({"texts": ["a b", "c"], "input_type": "search_document"}))
    note(COHERE, 3, 0)

    events = usage.events("bedrock:tokens")
    assert len(events) == sum(len(v) for v in seen.values())
    rows, unpriced = price_events(events)
    assert unpriced == []
    prices = cat.load()
    for model, calls in seen.items():
        n_in, n_out = sum(c[0] for c in calls), sum(c[1] for c in calls)
        by_usage = {r.unit: r for r in rows if r.resource == model}
        assert by_usage["input tokens"].quantity == n_in, model
        expected = n_in / 1000 * prices.bedrock(model, "input-tokens").price_usd
        assert by_usage["input tokens"].cost == pytest.approx(expected), model
        if n_out:
            expected = n_out / 1000 * prices.bedrock(model, "output-tokens").price_usd
            assert by_usage["output tokens"].cost == pytest.approx(expected), model
        assert by_usage["input tokens"].note == f"{len(calls)} calls"


def test_blocked_input_is_not_billed_as_model_tokens(bedrock_clients):
    br, rt = bedrock_clients
    g = br.create_guardrail(name="acct-pii", blockedInputMessaging="Blocked.", blockedOutputsMessaging="Blocked.",
                            sensitiveInformationPolicyConfig={"piiEntitiesConfig": [
                                {"type": "US_SOCIAL_SECURITY_NUMBER", "action": "BLOCK"}]})
    usage.reset()
    r = rt.converse(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "My SSN is 123-45-6789"}]}],
                    guardrailConfig={"guardrailIdentifier": g["guardrailId"], "guardrailVersion": "DRAFT"})
    assert r["stopReason"] == "guardrail_intervened" and r["usage"]["outputTokens"] == 0
    assert usage.events("bedrock:tokens") == []
    br.delete_guardrail(guardrailIdentifier=g["guardrailId"])


# --- numbered sources: the stand-in cites them ------------------------------------------------------


def test_stand_in_cites_numbered_sources_and_refuses_without_them(bedrock_clients):
    _, rt = bedrock_clients
    sources = ("[1] Amazon Bedrock offers foundation models through one API.\n"
               f"[2] {CONTEXT}\n")
    ask = f"Answer from the sources and cite them as [n].\n\n{sources}\nQuestion: Where are checkpoints saved?"
    r = rt.converse(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": ask}]}])
    text = r["output"]["message"]["content"][0]["text"]
    assert text.startswith("(offline stand-in)") and text.endswith("[2]") and "S3" in text
    off = ask.replace("Where are checkpoints saved?", "Who painted the Mona Lisa?")
    r = rt.converse(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": off}]}])
    text = r["output"]["message"]["content"][0]["text"]
    assert "cannot find the answer" in text and "[" not in text


def test_current_models_and_images_reach_the_bill(bedrock_clients):
    _, rt = bedrock_clients
    usage.reset()
    rt.converse(modelId="global.anthropic.claude-haiku-4-5-20251001-v1:0",
                messages=[{"role": "user", "content": [{"text": "hi"}]}])
    rt.invoke_model(modelId="amazon.nova-canvas-v1:0", body=json.dumps({
        "taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a lighthouse"},
        "imageGenerationConfig": {"numberOfImages": 2, "width": 320, "height": 320}}))
    rt.invoke_model(modelId="amazon.titan-embed-image-v1", body=json.dumps({"inputText": "a lighthouse"}))
    rows, unpriced = price_events(usage.events("bedrock:tokens"))
    assert unpriced == []
    prices = cat.load()
    (images,) = [r for r in rows if r.resource == "amazon.nova-canvas-v1:0"]
    assert images.quantity == 2 and images.cost == pytest.approx(2 * prices.bedrock("amazon.nova-canvas-v1:0",
                                                                                       "images").price_usd)
    haiku = {r.unit: r for r in rows if r.resource == "anthropic.claude-haiku-4-5-20251001-v1:0"}
    assert haiku["output tokens"].cost > 0 and haiku["input tokens"].quantity > 0
    assert any(r.resource == "amazon.titan-embed-image-v1" for r in rows)
