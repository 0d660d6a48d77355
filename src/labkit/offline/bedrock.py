"""Offline Bedrock: the protocol layer over :mod:`labkit.bedrock`'s local models.

Registers dispatch handlers for ``bedrock`` (foundation models, inference profiles,
guardrails), ``bedrock-runtime`` (InvokeModel, InvokeModelWithResponseStream, Converse,
ConverseStream, ApplyGuardrail), ``s3vectors`` (QueryVectors on a real index; moto keeps
buckets, indexes and vector records), ``bedrock-agent`` (agents, action groups, aliases and
versions in place of moto's; data sources and ingestion jobs; moto keeps knowledge bases)
and ``bedrock-agent-runtime`` (InvokeAgent, Retrieve, RetrieveAndGenerate). Behaviour lives
in :mod:`labkit.bedrock`; this module only maps parameters to it and its results (and
:class:`BedrockError`) to AWS's responses. Who answered is the ``x-labkit-stand-in`` response
header; response bodies hold nothing AWS would not send.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable
from typing import Any

from labkit.bedrock import catalog, eventstream, throttling, validation
from labkit.bedrock import knowledge_bases as kb
from labkit.bedrock import vectors as vec
from labkit.bedrock.agents import Agents
from labkit.bedrock.errors import BedrockError, not_found
from labkit.bedrock.guardrails import GuardrailStore
from labkit.bedrock.runtime import STAND_IN_HEADER, Runtime, converse_response, converse_stream_events

from . import ACCOUNT_ID, REGION, dispatch, on_reset, persistence, usage


def _opensearch() -> tuple[Any, Any]:
    """OpenSearch Serverless's control plane and indexes (:mod:`labkit.offline.aoss`), for knowledge bases."""
    from .aoss.http import current

    return current.serverless, current.store


class _State:
    def __init__(self) -> None:
        self.guardrails = GuardrailStore(ACCOUNT_ID, REGION)
        self.profiles = catalog.ProfileStore(ACCOUNT_ID, REGION)
        self.runtime = Runtime(self.guardrails, usage.record, self.profiles)
        self.vectors = vec.VectorStore(usage.record)
        self.kb = kb.KnowledgeBases(ACCOUNT_ID, REGION, self.vectors, self.runtime, _opensearch)
        self.agents = Agents(ACCOUNT_ID, REGION, self.runtime, self.kb)


state = _State()


def _restore(saved: _State) -> None:
    global state
    state = saved


persistence.keep("bedrock", lambda: state, _restore)  # guardrails, profiles, knowledge bases, agents


@on_reset
def _reset() -> None:
    global state
    state = _State()
    throttling.reset_from_environment()


throttling.reset_from_environment()


def _op(service: str, name: str) -> Callable[[Callable[[dict[str, Any]], dict[str, Any]]], Any]:
    """Register a handler whose :class:`BedrockError` becomes AWS's error response.

    The request is first checked against the constraints botocore leaves to AWS (enums,
    maximum lengths and values: :mod:`labkit.bedrock.validation`).
    """

    def register(fn: Callable[[dict[str, Any]], dict[str, Any]]):
        @functools.wraps(fn)
        def handler(params: dict[str, Any]) -> dict[str, Any]:
            try:
                validation.check(service, name, params)
                return fn(params)
            except BedrockError as err:
                raise dispatch.AWSError(err.code, err.message, err.status) from None

        dispatch.operation(service, name)(handler)
        return fn

    return register


def _metadata(headers: dict[str, str], status: int = 200) -> dict[str, Any]:
    return {"RequestId": "labkit-offline", "HTTPStatusCode": status,
            "HTTPHeaders": {"x-amzn-requestid": "labkit-offline", **headers}, "RetryAttempts": 0}


def _check_moto_request(service: str, name: str) -> Callable[[dict[str, Any]], None]:
    def check(params: dict[str, Any]) -> None:
        try:
            validation.check(service, name, params)
        except BedrockError as err:
            raise dispatch.AWSError(err.code, err.message, err.status) from None

    return check


# --- bedrock: foundation models --------------------------------------------------------------


@_op("bedrock", "ListFoundationModels")
def list_foundation_models(p: dict[str, Any]) -> dict[str, Any]:
    models = catalog.list_models(p.get("byProvider"), p.get("byOutputModality"), p.get("byInferenceType"),
                                 p.get("byCustomizationType"))
    return {"modelSummaries": [m.summary() for m in models]}


@_op("bedrock", "GetFoundationModel")
def get_foundation_model(p: dict[str, Any]) -> dict[str, Any]:
    ident = p["modelIdentifier"]
    model = catalog.model(ident.rsplit("/", 1)[-1]) if "foundation-model/" in ident or "/" not in ident else None
    if model is None or model.end_of_life():
        raise not_found(f"The model {ident} could not be found.")
    return {"modelDetails": model.summary()}


@_op("bedrock", "GetFoundationModelAvailability")
def get_foundation_model_availability(p: dict[str, Any]) -> dict[str, Any]:
    model = catalog.model(p["modelId"])
    if model is None or model.end_of_life():
        raise not_found(f"The model {p['modelId']} could not be found.")
    return {"modelId": model.model_id, "agreementAvailability": {"status": "AVAILABLE"},
            "authorizationStatus": "AUTHORIZED", "entitlementAvailability": "AVAILABLE",
            "regionAvailability": "AVAILABLE"}


# --- bedrock: inference profiles -------------------------------------------------------------


@_op("bedrock", "ListInferenceProfiles")
def list_inference_profiles(p: dict[str, Any]) -> dict[str, Any]:
    profiles = [x.describe() for x in state.profiles.list(p.get("typeEquals"))]
    start = int(p.get("nextToken") or 0)
    size = p.get("maxResults") or 1000
    out: dict[str, Any] = {"inferenceProfileSummaries": profiles[start:start + size]}
    if start + size < len(profiles):
        out["nextToken"] = str(start + size)
    return out


@_op("bedrock", "GetInferenceProfile")
def get_inference_profile(p: dict[str, Any]) -> dict[str, Any]:
    return state.profiles.get(p["inferenceProfileIdentifier"]).describe()


@_op("bedrock", "CreateInferenceProfile")
def create_inference_profile(p: dict[str, Any]) -> dict[str, Any]:
    profile = state.profiles.create(p["inferenceProfileName"], p["modelSource"]["copyFrom"], p.get("description"),
                                    p.get("tags"))
    return {"inferenceProfileArn": profile.arn, "status": "ACTIVE", "_status": 201}


@_op("bedrock", "DeleteInferenceProfile")
def delete_inference_profile(p: dict[str, Any]) -> dict[str, Any]:
    state.profiles.delete(p["inferenceProfileIdentifier"])
    return {}


# --- bedrock: guardrails ---------------------------------------------------------------------


@_op("bedrock", "CreateGuardrail")
def create_guardrail(p: dict[str, Any]) -> dict[str, Any]:
    return {**state.guardrails.create(p), "_status": 202}


@_op("bedrock", "UpdateGuardrail")
def update_guardrail(p: dict[str, Any]) -> dict[str, Any]:
    return {**state.guardrails.update(p), "_status": 202}


@_op("bedrock", "GetGuardrail")
def get_guardrail(p: dict[str, Any]) -> dict[str, Any]:
    return state.guardrails.describe(p["guardrailIdentifier"], p.get("guardrailVersion"))


@_op("bedrock", "CreateGuardrailVersion")
def create_guardrail_version(p: dict[str, Any]) -> dict[str, Any]:
    return {**state.guardrails.create_version(p["guardrailIdentifier"], p.get("description")), "_status": 202}


@_op("bedrock", "ListGuardrails")
def list_guardrails(p: dict[str, Any]) -> dict[str, Any]:
    return {"guardrails": state.guardrails.list(p.get("guardrailIdentifier"))}


@_op("bedrock", "DeleteGuardrail")
def delete_guardrail(p: dict[str, Any]) -> dict[str, Any]:
    state.guardrails.delete(p["guardrailIdentifier"], p.get("guardrailVersion"))
    return {"_status": 202}


# --- bedrock-runtime -------------------------------------------------------------------------


def _body_bytes(p: dict[str, Any]) -> bytes:
    body = p.get("body", b"")
    if hasattr(body, "read"):
        body = body.read()
    return body.encode() if isinstance(body, str) else bytes(body)


@_op("bedrock-runtime", "InvokeModel")
def invoke_model(p: dict[str, Any]) -> dict[str, Any]:
    ref = state.runtime.guardrail(p.get("guardrailIdentifier"), p.get("guardrailVersion"), p.get("trace"))
    body, headers, _ = state.runtime.invoke(p["modelId"], _body_bytes(p), ref)
    data = json.dumps(body).encode()
    return {"body": dispatch.streaming_body(data), "contentType": "application/json",
            "ResponseMetadata": _metadata({**headers, "content-type": "application/json",
                                           "content-length": str(len(data))})}


@_op("bedrock-runtime", "InvokeModelWithResponseStream")
def invoke_model_with_response_stream(p: dict[str, Any]) -> dict[str, Any]:
    ref = state.runtime.guardrail(p.get("guardrailIdentifier"), p.get("guardrailVersion"), p.get("trace"))
    chunks, headers, _ = state.runtime.invoke(p["modelId"], _body_bytes(p), ref,
                                              operation="InvokeModelWithResponseStream")
    messages = (eventstream.event("chunk", {"bytes": base64.b64encode(json.dumps(c).encode()).decode()})
                for c in chunks)
    return eventstream.parse_stream_response("bedrock-runtime", "InvokeModelWithResponseStream", messages,
                                             {"X-Amzn-Bedrock-Content-Type": "application/json", **headers})


def _trace_on(p: dict[str, Any]) -> bool:
    return (p.get("guardrailConfig") or {}).get("trace", "disabled") in ("enabled", "enabled_full")


@_op("bedrock-runtime", "Converse")
def converse(p: dict[str, Any]) -> dict[str, Any]:
    result = state.runtime.converse(p)
    return {**converse_response(result, _trace_on(p)), "ResponseMetadata": _metadata(
        {"content-type": "application/json", STAND_IN_HEADER: result.gen.label})}


@_op("bedrock-runtime", "ConverseStream")
def converse_stream(p: dict[str, Any]) -> dict[str, Any]:
    result = state.runtime.converse(p, stream=True)
    events = converse_stream_events(result, _trace_on(p))
    messages = (eventstream.event(name, payload) for name, payload in events)
    return eventstream.parse_stream_response("bedrock-runtime", "ConverseStream", messages,
                                             {STAND_IN_HEADER: result.gen.label})


@_op("bedrock-runtime", "ApplyGuardrail")
def apply_guardrail(p: dict[str, Any]) -> dict[str, Any]:
    return state.runtime.apply_guardrail(p["guardrailIdentifier"], p["guardrailVersion"], p["source"],
                                         p["content"], p.get("outputScope", "INTERVENTIONS"))


# --- s3vectors: the index beside moto's records ----------------------------------------------


@_op("s3vectors", "QueryVectors")
def query_vectors(p: dict[str, Any]) -> dict[str, Any]:
    return state.vectors.query(p)


@dispatch.after("s3vectors", "CreateIndex")
def _after_create_index(p: dict[str, Any], parsed: dict[str, Any]) -> None:
    bucket = p.get("vectorBucketName") or (p.get("vectorBucketArn") or "").rsplit("/", 1)[-1] or None
    state.vectors.configure(bucket, p.get("indexName"), None, p.get("metadataConfiguration"))


@dispatch.after("s3vectors", "GetIndex")
def _after_get_index(p: dict[str, Any], parsed: dict[str, Any]) -> None:
    index = parsed.get("index") or {}
    keys = state.vectors.non_filterable.get(index.get("indexArn", ""))
    if keys:
        index["metadataConfiguration"] = {"nonFilterableMetadataKeys": list(keys)}


@dispatch.validate("s3vectors", "PutVectors")
def _check_put(p: dict[str, Any]) -> None:
    try:
        state.vectors.check_put(p)
    except BedrockError as err:
        raise dispatch.AWSError(err.code, err.message, err.status) from None


@dispatch.after("s3vectors", "PutVectors")
def _after_put(p: dict[str, Any], parsed: dict[str, Any]) -> None:
    keys = [v["key"] for v in p.get("vectors", [])]
    state.vectors.sync(p.get("vectorBucketName"), p.get("indexName"), p.get("indexArn"), keys)


@dispatch.after("s3vectors", "DeleteVectors")
def _after_delete(p: dict[str, Any], parsed: dict[str, Any]) -> None:
    state.vectors.sync(p.get("vectorBucketName"), p.get("indexName"), p.get("indexArn"), list(p.get("keys", [])))


@dispatch.after("s3vectors", "DeleteIndex")
def _after_delete_index(p: dict[str, Any], parsed: dict[str, Any]) -> None:
    state.vectors.forget(p.get("vectorBucketName"), p.get("indexName"), p.get("indexArn"))


def _forward(engine: str, method: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A handler calling ``state.<engine>.<method>(params)``, looked up per call (a reset replaces them)."""
    return lambda params: getattr(getattr(state, engine), method)(params)


# --- bedrock-agent: data sources and ingestion -----------------------------------------------

for _name, _method in (("CreateKnowledgeBase", "create_knowledge_base"), ("CreateDataSource", "create_data_source"), ("GetDataSource", "get_data_source"),
                       ("ListDataSources", "list_data_sources"), ("DeleteDataSource", "delete_data_source"),
                       ("StartIngestionJob", "start_ingestion_job"), ("GetIngestionJob", "get_ingestion_job"),
                       ("ListIngestionJobs", "list_ingestion_jobs")):
    _op("bedrock-agent", _name)(_forward("kb", _method))


# --- bedrock-agent: agents, action groups, aliases (moto's agents are replaced) --------------------

for _name, _method in (("CreateAgent", "create_agent"), ("GetAgent", "get_agent"), ("ListAgents", "list_agents"),
                       ("UpdateAgent", "update_agent"), ("DeleteAgent", "delete_agent"),
                       ("PrepareAgent", "prepare_agent"), ("ListAgentVersions", "list_agent_versions"),
                       ("GetAgentVersion", "get_agent_version"), ("DeleteAgentVersion", "delete_agent_version"),
                       ("CreateAgentActionGroup", "create_action_group"), ("GetAgentActionGroup", "get_action_group"),
                       ("ListAgentActionGroups", "list_action_groups"),
                       ("UpdateAgentActionGroup", "update_action_group"),
                       ("DeleteAgentActionGroup", "delete_action_group"),
                       ("AssociateAgentKnowledgeBase", "associate_knowledge_base"),
                       ("GetAgentKnowledgeBase", "get_knowledge_base"),
                       ("ListAgentKnowledgeBases", "list_knowledge_bases"),
                       ("DisassociateAgentKnowledgeBase", "disassociate_knowledge_base"),
                       ("CreateAgentAlias", "create_alias"), ("GetAgentAlias", "get_alias"),
                       ("ListAgentAliases", "list_aliases"), ("UpdateAgentAlias", "update_alias"),
                       ("DeleteAgentAlias", "delete_alias")):
    _op("bedrock-agent", _name)(_forward("agents", _method))


def _agent_event(name: str, payload: dict[str, Any]) -> bytes:
    if name == "chunk":
        payload = {**payload, "bytes": base64.b64encode(payload["bytes"]).decode()}
    return eventstream.event(name, payload)


@_op("bedrock-agent-runtime", "InvokeAgent")
def invoke_agent(p: dict[str, Any]) -> dict[str, Any]:
    events, session_id = state.agents.invoke(p)
    messages = (_agent_event(name, payload) for name, payload in events)
    return eventstream.parse_stream_response("bedrock-agent-runtime", "InvokeAgent", messages, {
        "x-amzn-bedrock-agent-content-type": "application/json", "x-amz-bedrock-agent-session-id": session_id})


@_op("bedrock-agent-runtime", "Retrieve")
def retrieve(p: dict[str, Any]) -> dict[str, Any]:
    return state.kb.retrieve(p)


@_op("bedrock-agent-runtime", "RetrieveAndGenerate")
def retrieve_and_generate(p: dict[str, Any]) -> dict[str, Any]:
    return state.kb.retrieve_and_generate(p)


# Operations moto answers (S3 Vectors buckets, indexes and vectors; knowledge base records)
# get the same enum and maximum checks before moto records them.
for _service in ("s3vectors", "bedrock-agent"):
    for _name in validation.operation_names(_service):
        if not dispatch.handled(_service, _name):
            dispatch.validate(_service, _name)(_check_moto_request(_service, _name))
