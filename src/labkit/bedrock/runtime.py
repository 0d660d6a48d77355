"""The offline ``bedrock-runtime``: InvokeModel, streaming, Converse, ApplyGuardrail.

Plain Python over the local models; :mod:`labkit.offline.bedrock` speaks the protocol.
Each call is metered: ``usage.record("bedrock:tokens", model_id, model_id=...,
input_tokens=..., output_tokens=..., operation=...)`` (embeddings: ``output_tokens=0``), and
each guardrail assessment ``usage.record("bedrock:guardrail", guardrail_id, ..., <policy>Units=...)``
with the text units per policy that the assessment reports (ApplyGuardrail and guarded invocations).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import catalog, formats, guardrails, responder, throttling
from .catalog import FoundationModel
from .errors import BedrockError, not_found, validation

Recorder = Callable[..., Any]


@dataclass
class GuardrailRef:
    guardrail: guardrails.Guardrail
    version: str
    trace: bool

    @property
    def config(self) -> dict[str, Any]:
        return self.guardrail.snapshot(self.version)


@dataclass
class TextResult:
    """A text model's answer, after guardrails."""

    gen: responder.Generation
    model: FoundationModel
    latency_ms: int
    guardrail_action: str | None = None  # "INTERVENED" | "NONE" | None (no guardrail)
    input_assessment: dict[str, Any] | None = None
    output_assessments: list[dict[str, Any]] = field(default_factory=list)
    guardrail_id: str | None = None


def resolve_model(model_id: str) -> FoundationModel:
    """The catalogue model for an id; unknown ids fail as Bedrock fails them.

    An id shaped like a foundation model (``provider.name...``) that Bedrock does not
    have: ResourceNotFoundException; anything else: ValidationException.
    """
    model = catalog.find(model_id)
    if model is None:
        if re.fullmatch(r"(arn:aws:bedrock:[a-z0-9-]+::foundation-model/)?[a-z0-9-]{1,63}\.[a-z0-9-.:]+", model_id):
            raise not_found("Could not resolve the foundation model from the provided model identifier.")
        raise validation("The provided model identifier is invalid.")
    return model


class Runtime:
    def __init__(self, store: guardrails.GuardrailStore, record: Recorder):
        self.store = store
        self.record = record

    # --- guardrails ------------------------------------------------------------------------
    def guardrail(self, identifier: str | None, version: str | None, trace: str | None) -> GuardrailRef | None:
        if not identifier:
            if version:
                raise validation("Guardrail identifier is required when guardrail version is provided.")
            return None
        if not version:
            raise validation("Guardrail version is required when guardrail identifier is provided.")
        g = self.store.find(identifier)
        g.snapshot(version)
        return GuardrailRef(g, version, (trace or "DISABLED").upper() in ("ENABLED", "ENABLED_FULL"))

    def apply_guardrail(self, identifier: str, version: str, source: str, content: list[dict[str, Any]],
                        output_scope: str = "INTERVENTIONS") -> dict[str, Any]:
        throttling.check()
        ref = GuardrailRef(self.store.find(identifier), version, False)
        texts = []
        grounding, query = None, None
        for block in content:
            text = block.get("text")
            if not text:
                continue
            qualifiers = text.get("qualifiers") or []
            if "grounding_source" in qualifiers:
                grounding = text["text"]
            elif "query" in qualifiers:
                query = text["text"]
            else:
                texts.append(text["text"])
        result = guardrails.evaluate(ref.config, source, texts, grounding=grounding, query=query,
                                     guardrail=ref.guardrail, version=version, output_scope=output_scope)
        self.meter_guardrail(ref.guardrail, version, source, "ApplyGuardrail", result.usage)
        return {"usage": result.usage, "action": result.action, "actionReason": result.action_reason,
                "outputs": result.outputs, "assessments": [result.assessment],
                "guardrailCoverage": result.assessment["invocationMetrics"]["guardrailCoverage"]}

    def meter_guardrail(self, guardrail: guardrails.Guardrail, version: str, source: str, operation: str,
                        units: dict[str, int]) -> None:
        """Record the text units an assessment used, per policy (what Bedrock bills guardrails on)."""
        if any(units.values()):
            self.record("bedrock:guardrail", guardrail.guardrail_id, guardrail_id=guardrail.guardrail_id,
                        version=version, source=source, operation=operation, **units)

    # --- text generation -------------------------------------------------------------------
    def generate(self, model: FoundationModel, request: formats.TextRequest, operation: str,
                 ref: GuardrailRef | None, guard_texts: list[str] | None = None) -> TextResult:
        """Run the stand-in with the guardrail around it, and meter the tokens."""
        started = time.perf_counter()
        input_assessment = None
        if ref is not None:
            texts = guard_texts if guard_texts is not None else [request.prompt.text()]
            check = guardrails.evaluate(ref.config, "INPUT", texts, guardrail=ref.guardrail, version=ref.version)
            self.meter_guardrail(ref.guardrail, ref.version, "INPUT", operation, check.usage)
            input_assessment = check.assessment
            if check.action != "NONE" and check.blocked:
                gen = responder.Generation(text=check.masked_text or "", input_tokens=0, output_tokens=0,
                                           stop_reason="guardrail_intervened")
                return TextResult(gen, model, _ms(started), "INTERVENED", input_assessment, [],
                                  ref.guardrail.guardrail_id)
            if check.action != "NONE":  # anonymized input goes on to the model masked
                request = formats.TextRequest(
                    responder.Prompt([], [("user", check.masked_text or "")]), request.max_tokens,
                    request.stop_sequences)
        gen = responder.respond(request.prompt, request.max_tokens, request.stop_sequences)
        self.record("bedrock:tokens", model.model_id, model_id=model.model_id, input_tokens=gen.input_tokens,
                    output_tokens=gen.output_tokens, operation=operation)
        action = None
        outputs: list[dict[str, Any]] = []
        if ref is not None:
            action = "NONE"
            check = guardrails.evaluate(ref.config, "OUTPUT", [gen.text], guardrail=ref.guardrail,
                                        version=ref.version)
            self.meter_guardrail(ref.guardrail, ref.version, "OUTPUT", operation, check.usage)
            outputs = [check.assessment]
            if check.action != "NONE":
                action = "INTERVENED"
                gen = responder.Generation(text=check.masked_text or "", input_tokens=gen.input_tokens,
                                           output_tokens=gen.output_tokens,
                                           stop_reason="guardrail_intervened" if check.blocked else gen.stop_reason,
                                           stop_sequence=gen.stop_sequence, found=gen.found, sources=gen.sources)
            elif input_assessment is not None and any(k.endswith("Policy") for k in input_assessment):
                action = "INTERVENED"  # input was anonymized
        return TextResult(gen, model, _ms(started), action, input_assessment, outputs,
                          ref.guardrail.guardrail_id if ref else None)

    # --- InvokeModel ------------------------------------------------------------------------
    def invoke(self, model_id: str, body: bytes, guardrail: GuardrailRef | None,
               operation: str = "InvokeModel") -> tuple[Any, dict[str, Any], TextResult | None]:
        """Returns (the response body as JSON object or chunk list, metadata headers, text result)."""
        throttling.check()
        model = resolve_model(model_id)
        data = formats.parse_body(body)
        if model.family in formats.EMBED_FAMILIES:
            if operation != "InvokeModel":
                raise validation("The model is unsupported for streaming.")
            parse, build = formats.EMBED_FAMILIES[model.family]
            req = parse(data, model)
            started = time.perf_counter()
            vectors, n_tokens = formats.embed(req)
            self.record("bedrock:tokens", model.model_id, model_id=model.model_id, input_tokens=n_tokens,
                        output_tokens=0, operation=operation)
            headers = _headers(n_tokens, None, _ms(started))
            return build(req, vectors, n_tokens, model), headers, None
        parse_text, build_body, build_chunks = formats.TEXT_FAMILIES[model.family]
        request = parse_text(data, model)
        result = self.generate(model, request, operation, guardrail)
        metrics = {"inputTokenCount": result.gen.input_tokens, "outputTokenCount": result.gen.output_tokens,
                   "invocationLatency": result.latency_ms, "firstByteLatency": result.latency_ms}
        gen = result.gen
        if gen.stop_reason == "guardrail_intervened":
            gen = responder.Generation(gen.text, gen.input_tokens, gen.output_tokens, "end_turn")
        extra: dict[str, Any] = {}
        if result.guardrail_action is not None:
            extra["amazon-bedrock-guardrailAction"] = result.guardrail_action
            if guardrail is not None and guardrail.trace:
                trace: dict[str, Any] = {"input": {result.guardrail_id: result.input_assessment}}
                if result.output_assessments:
                    trace["outputs"] = [{result.guardrail_id: a} for a in result.output_assessments]
                extra["amazon-bedrock-trace"] = {"guardrail": trace}
        headers = _headers(result.gen.input_tokens, result.gen.output_tokens, result.latency_ms)
        if operation == "InvokeModel":
            return {**build_body(gen, model), **extra}, headers, result
        chunks = build_chunks(gen, model, metrics)
        if extra:
            chunks[-1].update(extra)
        return chunks, headers, result

    # --- Converse ---------------------------------------------------------------------------
    def converse(self, params: dict[str, Any]) -> TextResult:
        throttling.check()
        model = resolve_model(params["modelId"])
        if model.is_embedding:
            raise validation("This action doesn't support the model that you provided. Try again with a "
                             "supported text or chat model.")
        system, guarded_system = [], []
        for block in params.get("system") or []:
            if "text" in block:
                system.append(block["text"])
            elif "guardContent" in block:
                system.append(block["guardContent"]["text"]["text"])
                guarded_system.append(block["guardContent"]["text"]["text"])
        if system and model.family == "titan-text":
            raise validation("This model doesn't support system messages. Try again without system messages "
                             "or use a model that supports them.")
        messages = params.get("messages") or []
        if not messages:
            raise validation("A conversation must start with a user message. Try again with a conversation that "
                             "starts with a user message.")
        turns, guarded = [], list(guarded_system)
        for i, msg in enumerate(messages):
            if msg["role"] == "system":
                raise validation("The role system is not supported in messages. Use the system field instead.")
            if i == 0 and msg["role"] != "user":
                raise validation("A conversation must start with a user message. Try again with a conversation "
                                 "that starts with a user message.")
            if i and messages[i - 1]["role"] == msg["role"]:
                raise validation("A conversation must alternate between user and assistant roles. Make sure the "
                                 "conversation alternates between user and assistant roles and try again.")
            parts = []
            for block in msg["content"]:
                if "text" in block:
                    parts.append(block["text"])
                elif "guardContent" in block:
                    parts.append(block["guardContent"]["text"]["text"])
                    guarded.append(block["guardContent"]["text"]["text"])
                elif "document" in block:
                    src = block["document"].get("source", {})
                    if "text" in src:
                        parts.append(src["text"])
                    elif "bytes" in src:
                        parts.append(src["bytes"].decode("utf-8", "replace"))
                elif "toolResult" in block:
                    parts.extend(c.get("text", "") for c in block["toolResult"].get("content", []))
            turns.append((msg["role"], "\n".join(p for p in parts if p)))
        if turns[-1][0] != "user":
            raise validation("The final message in the conversation must be a user message.")
        config = params.get("inferenceConfig") or {}
        max_tokens = config.get("maxTokens", model.max_output_tokens if model.family == "anthropic" else 512)
        if max_tokens > model.max_output_tokens:
            raise validation(f"The maximum tokens you requested exceeds the model limit of "
                             f"{model.max_output_tokens}. Try again with a maximum tokens value that is lower than "
                             f"{model.max_output_tokens}.")
        gcfg = params.get("guardrailConfig")
        ref = None
        if gcfg:
            ref = self.guardrail(gcfg.get("guardrailIdentifier"), gcfg.get("guardrailVersion"),
                                 gcfg.get("trace", "disabled"))
        request = formats.TextRequest(responder.Prompt(system, turns), max_tokens,
                                      list(config.get("stopSequences") or []))
        guard_texts = guarded or [t for _, t in turns if t] + system
        return self.generate(model, request, params.get("_operation", "Converse"), ref, guard_texts)


def converse_response(result: TextResult, trace: bool) -> dict[str, Any]:
    gen = result.gen
    out: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": [{"text": gen.text}]}},
        "stopReason": gen.stop_reason,
        "usage": {"inputTokens": gen.input_tokens, "outputTokens": gen.output_tokens,
                  "totalTokens": gen.input_tokens + gen.output_tokens},
        "metrics": {"latencyMs": result.latency_ms},
        "additionalModelResponseFields": {"labkit": formats.STAND_IN_FIELD},
    }
    if trace and result.guardrail_id:
        out["trace"] = {"guardrail": _converse_trace(result)}
    return out


def _converse_trace(result: TextResult) -> dict[str, Any]:
    t: dict[str, Any] = {"modelOutput": [result.gen.text]}
    if result.input_assessment is not None:
        t["inputAssessment"] = {result.guardrail_id: result.input_assessment}
    if result.output_assessments:
        t["outputAssessments"] = {result.guardrail_id: result.output_assessments}
    return t


def converse_stream_events(result: TextResult, trace: bool) -> list[tuple[str, dict[str, Any]]]:
    gen = result.gen
    # Text blocks open with their first delta (contentBlockStart is sent for tool use only).
    events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    for piece in formats._deltas(gen.text):
        events.append(("contentBlockDelta", {"delta": {"text": piece}, "contentBlockIndex": 0}))
    events.append(("contentBlockStop", {"contentBlockIndex": 0}))
    events.append(("messageStop", {"stopReason": gen.stop_reason,
                                   "additionalModelResponseFields": {"labkit": formats.STAND_IN_FIELD}}))
    meta: dict[str, Any] = {"usage": {"inputTokens": gen.input_tokens, "outputTokens": gen.output_tokens,
                                      "totalTokens": gen.input_tokens + gen.output_tokens},
                            "metrics": {"latencyMs": result.latency_ms}}
    if trace and result.guardrail_id:
        meta["trace"] = {"guardrail": _converse_trace(result)}
    events.append(("metadata", meta))
    return events


def _headers(n_in: int, n_out: int | None, latency_ms: int) -> dict[str, str]:
    h = {"x-amzn-bedrock-invocation-latency": str(latency_ms), "x-amzn-bedrock-input-token-count": str(n_in),
         "x-labkit-offline-stand-in": "true"}
    if n_out is not None:
        h["x-amzn-bedrock-output-token-count"] = str(n_out)
    return h


def _ms(started: float) -> int:
    return max(1, int((time.perf_counter() - started) * 1000))


__all__ = ["BedrockError", "Runtime", "converse_response", "converse_stream_events", "resolve_model"]
