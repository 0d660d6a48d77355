"""The offline ``bedrock-runtime``: InvokeModel, streaming, Converse, ApplyGuardrail.

Plain Python over the local models; :mod:`labkit.offline.bedrock` speaks the protocol.
A call names its model by base id, ARN or inference profile (:meth:`catalog.ProfileStore.resolve`
decides as Bedrock does); the family's body is read (:mod:`.formats`), a generator answers
(:mod:`.generation`: the stand-in, or a local OpenAI-compatible model), guardrails wrap it,
and the answer is written back in the family's or Converse's shape. The response headers
carry Bedrock's own (``x-amzn-bedrock-input-token-count``...) and ``x-labkit-stand-in``,
which names who answered (AWS's clients ignore headers they do not know).

Each call is metered: ``usage.record("bedrock:tokens", model_id, model_id=..., input_tokens=...,
output_tokens=..., operation=...)`` (embeddings: ``output_tokens=0``; images: ``images=n``), and
each guardrail assessment ``usage.record("bedrock:guardrail", guardrail_id, ..., <policy>Units=...)``
with the text units per policy that the assessment reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from . import catalog, converse, formats, generation, guardrails, throttling
from .catalog import FoundationModel
from .chat import ChatRequest, Generation, Message
from .errors import BedrockError, validation
from .formats.common import metrics_of

Recorder = Callable[..., Any]
STAND_IN_HEADER = "x-labkit-stand-in"
EMBEDDING_LABEL = "all-MiniLM-L6-v2 mapped to the requested size; images: a pixel descriptor (not the provider's model)"
IMAGE_LABEL = "procedural image drawn from the prompt's hash (labkit offline stand-in, not the provider's model)"


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

    gen: Generation
    model: FoundationModel
    latency_ms: int
    guardrail_action: str | None = None  # "INTERVENED" | "NONE" | None (no guardrail)
    input_assessment: dict[str, Any] | None = None
    output_assessments: list[dict[str, Any]] = field(default_factory=list)
    guardrail_id: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return headers(self.gen.input_tokens, self.gen.output_tokens, self.latency_ms, self.gen.label)


@lru_cache(maxsize=256)
def _priced(model_id: str, usage: str) -> bool:
    from labkit.cost import catalogue

    try:
        catalogue.load().bedrock(model_id, usage)
        return True
    except Exception:  # no price: the call is still served, and the bill says what is unpriced
        return False


class Runtime:
    def __init__(self, store: guardrails.GuardrailStore, record: Recorder, profiles: catalog.ProfileStore):
        self.store = store
        self.record = record
        self.profiles = profiles

    def resolve(self, model_id: str) -> FoundationModel:
        return self.profiles.resolve(model_id)

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
    def generate(self, model: FoundationModel, request: ChatRequest, operation: str,
                 ref: GuardrailRef | None, guard_texts: list[str] | None = None) -> TextResult:
        """Run the generator with the guardrail around it, and meter the tokens."""
        started = time.perf_counter()
        input_assessment = None
        if ref is not None:
            texts = guard_texts if guard_texts is not None else [request.text()]
            check = guardrails.evaluate(ref.config, "INPUT", texts, guardrail=ref.guardrail, version=ref.version)
            self.meter_guardrail(ref.guardrail, ref.version, "INPUT", operation, check.usage)
            input_assessment = check.assessment
            if check.action != "NONE" and check.blocked:
                gen = Generation([check.masked_text or ""], 0, 0, "guardrail_intervened", label="guardrail")
                return TextResult(gen, model, _ms(started), "INTERVENED", input_assessment, [],
                                  ref.guardrail.guardrail_id)
            if check.action != "NONE":  # anonymized input goes on to the model masked
                request = ChatRequest(request.system, [Message("user", [check.masked_text or ""])],
                                      request.max_tokens, request.stop_sequences, request.temperature,
                                      request.top_p, request.tools, request.tool_choice, request.forced_tool,
                                      request.reasoning, request.native)
        gen = generation.generator().generate(request)
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
                gen = gen.with_text(check.masked_text or "", "guardrail_intervened" if check.blocked else None)
            elif input_assessment is not None and any(k.endswith("Policy") for k in input_assessment):
                action = "INTERVENED"  # input was anonymized
        return TextResult(gen, model, _ms(started), action, input_assessment, outputs,
                          ref.guardrail.guardrail_id if ref else None)

    # --- InvokeModel ------------------------------------------------------------------------
    def invoke(self, model_id: str, body: bytes, guardrail: GuardrailRef | None,
               operation: str = "InvokeModel") -> tuple[Any, dict[str, str], TextResult | None]:
        """Returns (the response body as JSON object or chunk list, response headers, text result)."""
        throttling.check()
        model = self.resolve(model_id)
        data = formats.parse_body(body)
        if model.family in formats.EMBED or model.family in formats.IMAGE:
            if operation != "InvokeModel":
                raise validation("The model is unsupported for streaming.")
            return (*self._embed_or_draw(model, data, operation), None)
        family = formats.TEXT[model.family]
        request = family.parse(data, model)
        result = self.generate(model, request, operation, guardrail)
        gen = result.gen
        if gen.stop_reason == "guardrail_intervened":
            gen = gen.with_text(gen.text, "end_turn")
        extra: dict[str, Any] = {}
        if result.guardrail_action is not None:
            extra["amazon-bedrock-guardrailAction"] = result.guardrail_action
            if guardrail is not None and guardrail.trace:
                trace: dict[str, Any] = {"input": {result.guardrail_id: result.input_assessment}}
                if result.output_assessments:
                    trace["outputs"] = [{result.guardrail_id: a} for a in result.output_assessments]
                extra["amazon-bedrock-trace"] = {"guardrail": trace}
        if operation == "InvokeModel":
            return {**family.body(gen, model, request), **extra}, result.headers, result
        chunks = family.chunks(gen, model, metrics_of(gen.input_tokens, gen.output_tokens, result.latency_ms),
                               request)
        if extra:
            chunks[-1].update(extra)
        return chunks, result.headers, result

    def _embed_or_draw(self, model: FoundationModel, data: dict[str, Any],
                       operation: str) -> tuple[dict[str, Any], dict[str, str]]:
        started = time.perf_counter()
        if model.family in formats.EMBED:
            family = formats.EMBED[model.family]
            req = family.parse(data, model)
            out = formats.embed.embed(req)
            n_images = len(req.images) if _priced(model.model_id, "images") else 0
            self.record("bedrock:tokens", model.model_id, model_id=model.model_id, input_tokens=out.input_tokens,
                        output_tokens=0, images=n_images, operation=operation)
            return family.body(req, out, model), headers(out.input_tokens, None, _ms(started), EMBEDDING_LABEL)
        image_family = formats.IMAGE[model.family]
        ireq = image_family.parse(data, model)
        ireq.model_id = model.model_id
        pictures = ireq.draw()
        self.record("bedrock:tokens", model.model_id, model_id=model.model_id, input_tokens=0, output_tokens=0,
                    images=len(pictures), operation=operation)
        return image_family.body(ireq, pictures, model), headers(None, None, _ms(started), IMAGE_LABEL)

    # --- Converse ---------------------------------------------------------------------------
    def converse(self, params: dict[str, Any], stream: bool = False) -> TextResult:
        throttling.check()
        model = self.resolve(params["modelId"])
        request, guard_texts = converse.request(params, model, stream)
        gcfg = params.get("guardrailConfig")
        ref = None
        if gcfg:
            ref = self.guardrail(gcfg.get("guardrailIdentifier"), gcfg.get("guardrailVersion"),
                                 gcfg.get("trace", "disabled"))
        return self.generate(model, request, "ConverseStream" if stream else "Converse", ref, guard_texts)


def converse_response(result: TextResult, trace: bool) -> dict[str, Any]:
    gen = result.gen
    out = converse.response(gen.content, gen.stop_reason, gen.input_tokens, gen.output_tokens, result.latency_ms)
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
    events = converse.stream_events(gen.content, gen.stop_reason, gen.input_tokens, gen.output_tokens,
                                    result.latency_ms)
    if trace and result.guardrail_id:
        events[-1][1]["trace"] = {"guardrail": _converse_trace(result)}
    return events


def headers(n_in: int | None, n_out: int | None, latency_ms: int, label: str) -> dict[str, str]:
    """Bedrock's response headers, and who answered (``x-labkit-stand-in``)."""
    h = {"x-amzn-bedrock-invocation-latency": str(latency_ms), STAND_IN_HEADER: label}
    if n_in is not None:
        h["x-amzn-bedrock-input-token-count"] = str(n_in)
    if n_out is not None:
        h["x-amzn-bedrock-output-token-count"] = str(n_out)
    return h


def _ms(started: float) -> int:
    return max(1, int((time.perf_counter() - started) * 1000))


__all__ = ["STAND_IN_HEADER", "BedrockError", "Runtime", "converse_response", "converse_stream_events", "headers"]
