"""The model catalogue as of late 2026: listing, lifecycle, inference profiles, and how a model may be named."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from labkit.bedrock import catalog
from labkit.cost import catalogue as prices

HAIKU_45 = "anthropic.claude-haiku-4-5-20251001-v1:0"
ON_DEMAND_REFUSED = (f"Invocation of model ID {HAIKU_45} with on-demand throughput isn’t supported. Retry your "
                     "request with the ID or ARN of an inference profile that contains this model.")
CLAUDE_BODY = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 20,
                          "messages": [{"role": "user", "content": "hi"}]})


def _error(call, **kw):
    with pytest.raises(ClientError) as err:
        call(**kw)
    return err.value.response["Error"]


def test_every_entry_is_sourced_dated_and_well_formed():
    ids = [m.model_id for m in catalog.all_models()]
    assert len(ids) == len(set(ids)) >= 50
    for m in catalog.all_models():
        assert m.provenance["source"].startswith("https://") and m.provenance["read_on"] == "2026-12-05"
        assert m.provenance["method"] == "recalled" and m.provenance["verified"] is False, m.model_id
        assert m.confidence in ("high", "medium", "low")
        assert m.status in ("ACTIVE", "LEGACY") and set(m.inference_types) <= {"ON_DEMAND", "INFERENCE_PROFILE",
                                                                                "PROVISIONED"}
        assert not m.on_demand or "ON_DEMAND" in m.inference_types
        if "INFERENCE_PROFILE" in m.inference_types:
            assert m.profiles, f"{m.model_id} is reachable through profiles but names none"
        assert set(m.profiles) <= set(catalog.geographies())
        if m.is_text:
            assert m.context_tokens and m.max_output_tokens
        if m.is_embedding:
            assert m.embedding_dimensions


def test_the_models_learners_meet_are_there():
    for needed in (HAIKU_45, "anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-opus-4-5-20251101-v1:0",
                   "anthropic.claude-3-haiku-20240307-v1:0", "amazon.nova-micro-v1:0", "amazon.nova-lite-v1:0",
                   "amazon.nova-pro-v1:0", "amazon.nova-premier-v1:0", "amazon.titan-embed-g1-text-02",
                   "amazon.titan-embed-text-v2:0", "amazon.titan-embed-image-v1", "amazon.titan-text-express-v1",
                   "amazon.titan-image-generator-v2:0", "amazon.nova-canvas-v1:0", "meta.llama3-1-8b-instruct-v1:0",
                   "meta.llama3-2-11b-instruct-v1:0", "meta.llama3-3-70b-instruct-v1:0",
                   "meta.llama4-maverick-17b-instruct-v1:0", "mistral.mistral-large-2402-v1:0",
                   "cohere.command-r-plus-v1:0", "cohere.embed-english-v3", "ai21.jamba-1-5-large-v1:0",
                   "deepseek.r1-v1:0", "stability.stable-diffusion-xl-v1", "stability.sd3-5-large-v1:0"):
        assert catalog.model(needed) is not None, needed


def test_every_model_is_priced_in_the_dated_catalogue():
    c = prices.load()
    for m in catalog.all_models():
        usage = "images" if m.is_image else "input-tokens"
        price = c.bedrock(m.model_id, usage)
        assert price.price_usd > 0 and price.read_on and price.source, m.model_id


def test_list_foundation_models_and_its_filters(bedrock_clients):
    br, _ = bedrock_clients
    everything = br.list_foundation_models()["modelSummaries"]
    assert {m["modelId"] for m in everything} == {m.model_id for m in catalog.listed()}
    haiku = next(m for m in everything if m["modelId"] == HAIKU_45)
    assert haiku["inferenceTypesSupported"] == ["INFERENCE_PROFILE"]
    assert haiku["inputModalities"] == ["TEXT", "IMAGE"] and haiku["modelLifecycle"]["status"] == "ACTIVE"
    legacy = next(m for m in everything if m["modelId"] == "amazon.titan-text-express-v1")
    assert legacy["modelLifecycle"]["status"] == "LEGACY"
    on_demand = {m["modelId"] for m in br.list_foundation_models(byInferenceType="ON_DEMAND")["modelSummaries"]}
    assert HAIKU_45 not in on_demand and "amazon.nova-pro-v1:0" in on_demand
    images = br.list_foundation_models(byOutputModality="IMAGE")["modelSummaries"]
    assert {m["modelId"] for m in images} >= {"amazon.nova-canvas-v1:0", "stability.stable-diffusion-xl-v1"}
    assert {m["providerName"] for m in br.list_foundation_models(byProvider="anthropic")["modelSummaries"]} == {
        "Anthropic"}
    tunable = br.list_foundation_models(byCustomizationType="FINE_TUNING")["modelSummaries"]
    assert all("FINE_TUNING" in m["customizationsSupported"] for m in tunable) and tunable
    details = br.get_foundation_model(modelIdentifier=f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU_45}")
    assert details["modelDetails"]["modelName"] == "Claude Haiku 4.5"


def test_a_model_past_its_end_of_life_is_gone(bedrock_clients):
    br, rt = bedrock_clients
    gone = "anthropic.claude-3-sonnet-20240229-v1:0"
    assert _error(br.get_foundation_model, modelIdentifier=gone)["Code"] == "ResourceNotFoundException"
    err = _error(rt.invoke_model, modelId=gone, body=CLAUDE_BODY)
    assert err["Code"] == "ResourceNotFoundException" and "end of its life" in err["Message"]
    err = _error(rt.invoke_model, modelId="us." + gone, body=CLAUDE_BODY)
    assert "end of its life" in err["Message"]


def test_system_profiles_from_us_east_1(lab, bedrock_clients):
    br, _ = bedrock_clients
    profiles = br.list_inference_profiles()["inferenceProfileSummaries"]
    ids = {p["inferenceProfileId"] for p in profiles}
    assert f"us.{HAIKU_45}" in ids and f"global.{HAIKU_45}" in ids
    assert not any(i.startswith(("eu.", "apac.", "jp.", "au.")) for i in ids), "those live in their own regions"
    profile = br.get_inference_profile(inferenceProfileIdentifier=f"us.{HAIKU_45}")
    assert profile["type"] == "SYSTEM_DEFINED" and profile["status"] == "ACTIVE"
    assert profile["inferenceProfileArn"] == f"arn:aws:bedrock:us-east-1:{lab.account_id}:inference-profile/us.{HAIKU_45}"
    assert {m["modelArn"] for m in profile["models"]} == {
        f"arn:aws:bedrock:{r}::foundation-model/{HAIKU_45}" for r in ("us-east-1", "us-east-2", "us-west-2")}
    by_arn = br.get_inference_profile(inferenceProfileIdentifier=profile["inferenceProfileArn"])
    assert by_arn["inferenceProfileId"] == f"us.{HAIKU_45}"
    assert _error(br.get_inference_profile, inferenceProfileIdentifier=f"eu.{HAIKU_45}")["Code"] == \
        "ResourceNotFoundException"
    page = br.list_inference_profiles(maxResults=5)
    assert len(page["inferenceProfileSummaries"]) == 5 and page["nextToken"]
    rest = br.list_inference_profiles(maxResults=1000, nextToken=page["nextToken"])["inferenceProfileSummaries"]
    assert len(rest) + 5 == len(profiles)


@pytest.mark.parametrize("identifier,ok", [
    (f"us.{HAIKU_45}", True), (f"global.{HAIKU_45}", True),
    (f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{HAIKU_45}", True),
    (HAIKU_45, False), (f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU_45}", False),
    ("anthropic.claude-3-haiku-20240307-v1:0", True),
    ("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0", True),
    ("us.anthropic.claude-3-haiku-20240307-v1:0", True),
])
def test_invocation_by_base_id_profile_id_and_arn(bedrock_clients, identifier, ok):
    _, rt = bedrock_clients
    if ok:
        body = json.loads(rt.invoke_model(modelId=identifier, body=CLAUDE_BODY)["body"].read())
        assert body["type"] == "message"
        r = rt.converse(modelId=identifier, messages=[{"role": "user", "content": [{"text": "hi"}]}])
        assert r["stopReason"] == "end_turn"
    else:
        for call in (lambda: rt.invoke_model(modelId=identifier, body=CLAUDE_BODY),
                     lambda: rt.converse(modelId=identifier, messages=[{"role": "user", "content": [{"text": "hi"}]}]),
                     lambda: rt.invoke_model_with_response_stream(modelId=identifier, body=CLAUDE_BODY)):
            with pytest.raises(ClientError) as err:
                call()
            assert err.value.response["Error"]["Code"] == "ValidationException"
            assert err.value.response["Error"]["Message"] == ON_DEMAND_REFUSED


@pytest.mark.parametrize("identifier,code", [
    (f"eu.{HAIKU_45}", "ValidationException"), ("acme.rocket-v1:0", "ResourceNotFoundException"),
    ("not a model", "ValidationException"),
    ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.acme.rocket-v1:0", "ValidationException"),
])
def test_unknown_identifiers_fail_as_bedrock_fails_them(bedrock_clients, identifier, code):
    _, rt = bedrock_clients
    assert _error(rt.invoke_model, modelId=identifier, body=CLAUDE_BODY)["Code"] == code


def test_application_profiles_are_created_invoked_billed_and_deleted(lab, bedrock_clients):
    from labkit.offline import usage

    br, rt = bedrock_clients
    source = f"arn:aws:bedrock:us-east-1:{lab.account_id}:inference-profile/us.{HAIKU_45}"
    arn = br.create_inference_profile(inferenceProfileName="team-chat", modelSource={"copyFrom": source},
                                      tags=[{"key": "team", "value": "ml"}])["inferenceProfileArn"]
    assert ":application-inference-profile/" in arn
    profile = br.get_inference_profile(inferenceProfileIdentifier=arn)
    assert profile["type"] == "APPLICATION" and len(profile["models"]) == 3
    assert arn in {p["inferenceProfileArn"] for p in br.list_inference_profiles(typeEquals="APPLICATION")[
        "inferenceProfileSummaries"]}
    usage.reset()
    rt.converse(modelId=arn, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    (event,) = usage.events("bedrock:tokens")
    assert event["model_id"] == HAIKU_45, "billed as its model"
    err = _error(br.create_inference_profile, inferenceProfileName="direct",
                 modelSource={"copyFrom": f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU_45}"})
    assert "on-demand throughput" in err["Message"]
    br.delete_inference_profile(inferenceProfileIdentifier=arn)
    assert _error(rt.converse, modelId=arn, messages=[{"role": "user", "content": [{"text": "hi"}]}])["Code"] == \
        "ValidationException"
    assert _error(br.delete_inference_profile, inferenceProfileIdentifier=f"us.{HAIKU_45}")["Code"] == \
        "ValidationException"
