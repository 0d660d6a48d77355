"""Amazon Titan Text (Express, Lite, Premier): ``inputText`` + ``textGenerationConfig``.

Response: ``{"inputTextTokenCount", "results": [{"tokenCount", "outputText",
"completionReason"}]}`` (``FINISH``, ``LENGTH``, ``STOP_CRITERIA_MET``, ``CONTENT_FILTERED``);
streamed as chunks of ``outputText`` with running token counts.
"""

from __future__ import annotations

from typing import Any

from .. import tokens
from ..catalog import FoundationModel
from ..chat import ChatRequest, Generation
from ..errors import malformed
from . import common

REASONS = {"end_turn": "FINISH", "max_tokens": "LENGTH", "stop_sequence": "STOP_CRITERIA_MET",
           "content_filtered": "CONTENT_FILTERED", "guardrail_intervened": "FINISH"}


def parse(body: dict[str, Any], model: FoundationModel) -> ChatRequest:
    common.keys(body, {"inputText", "textGenerationConfig"}, ("inputText",))
    text = common.text(body["inputText"], "#/inputText", 1)
    config = body.get("textGenerationConfig") or {}
    if not isinstance(config, dict):
        raise malformed("#/textGenerationConfig: expected type: JSONObject")
    path = "#/textGenerationConfig"
    common.keys(config, {"maxTokenCount", "stopSequences", "temperature", "topP"}, (), path)
    common.number(config, "maxTokenCount", path, 0, model.max_output_tokens, integer=True)
    common.number(config, "temperature", path, 0, 1)
    common.number(config, "topP", path, 0, 1)
    stops = common.string_list(config.get("stopSequences", []), f"{path}/stopSequences")
    return ChatRequest.of_text(text, config.get("maxTokenCount", 512), stops)


def body(gen: Generation, model: FoundationModel, request: ChatRequest) -> dict[str, Any]:
    return {"inputTextTokenCount": gen.input_tokens,
            "results": [{"tokenCount": gen.output_tokens, "outputText": gen.text,
                         "completionReason": REASONS[gen.stop_reason]}]}


def chunks(gen: Generation, model: FoundationModel, metrics: dict[str, int],
           request: ChatRequest) -> list[dict[str, Any]]:
    pieces = common.deltas(gen.text) or [""]
    out, total = [], 0
    for i, piece in enumerate(pieces):
        total += tokens.count(piece)
        last = i == len(pieces) - 1
        chunk: dict[str, Any] = {"outputText": piece, "index": 0,
                                 "totalOutputTextTokenCount": gen.output_tokens if last else total,
                                 "completionReason": REASONS[gen.stop_reason] if last else None,
                                 "inputTextTokenCount": gen.input_tokens if i == 0 else None}
        if last:
            chunk["amazon-bedrock-invocationMetrics"] = metrics
        out.append(chunk)
    return out
