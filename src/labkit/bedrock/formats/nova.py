"""Amazon Nova understanding models (Micro, Lite, Pro, Premier): the ``messages-v1`` body.

Request: ``schemaVersion`` (``messages-v1``), ``system`` (text blocks), ``messages`` with
Converse-shaped content (``text``, ``image`` with base64 ``source.bytes``, ``document``,
``toolUse``, ``toolResult``), ``inferenceConfig`` (``max_new_tokens``, ``temperature``,
``top_p``, ``top_k``, ``stopSequences``) and ``toolConfig`` (``tools`` of ``toolSpec``,
``toolChoice``). Response: ``{"output": {"message": {...}}, "stopReason", "usage"}`` (with
Nova's cache token counts); streamed as ``messageStart``, ``contentBlockStart`` (tool use),
``contentBlockDelta``, ``contentBlockStop``, ``messageStop`` and ``metadata`` chunks.
"""

from __future__ import annotations

from typing import Any

from ..catalog import FoundationModel
from ..chat import ChatRequest, Generation, Message, Reasoning, ToolUse
from ..errors import validation
from . import common

KEYS = {"schemaVersion", "system", "messages", "inferenceConfig", "toolConfig"}
INFERENCE_KEYS = {"max_new_tokens", "maxTokens", "temperature", "top_p", "topP", "top_k", "topK", "stopSequences",
                  "reasoningConfig"}


def parse(body: dict[str, Any], model: FoundationModel) -> ChatRequest:
    common.keys(body, KEYS, ("messages",))
    if "schemaVersion" in body:
        common.enum(body["schemaVersion"], ("messages-v1",), "#/schemaVersion")
    config = body.get("inferenceConfig") or {}
    common.keys(config, INFERENCE_KEYS, (), "#/inferenceConfig")
    max_key = "max_new_tokens" if "max_new_tokens" in config else "maxTokens"
    common.number(config, max_key, "#/inferenceConfig", 1, model.max_output_tokens, integer=True)
    common.number(config, "temperature", "#/inferenceConfig", 0, 1)
    for key in ("top_p", "topP"):
        common.number(config, key, "#/inferenceConfig", 0, 1)
    for key in ("top_k", "topK"):
        common.number(config, key, "#/inferenceConfig", 0, 128, integer=True)
    system = []
    for i, block in enumerate(body.get("system") or []):
        if not isinstance(block, dict) or "text" not in block:
            raise validation(f"system.{i}: a system block needs text.")
        system.append(str(block["text"]))
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise validation("A conversation must start with a user message. Try again with a conversation that starts "
                         "with a user message.")
    turns: list[Message] = []
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ("user", "assistant"):
            raise common.malformed(f"#/messages/{i}/role: {role} is not a valid enum value")
        if i == 0 and role != "user":
            raise validation("A conversation must start with a user message. Try again with a conversation that "
                             "starts with a user message.")
        if i and turns[-1].role == role:
            raise validation("A conversation must alternate between user and assistant roles. Make sure the "
                             "conversation alternates between user and assistant roles and try again.")
        turns.append(Message(role, common.content_blocks(msg.get("content"), f"messages.{i}.content", encoded=True)))
    common.check_tool_turns(turns)
    tools, choice, forced = [], "auto", None
    if body.get("toolConfig"):
        from .. import tools as tool_policy

        tools = common.tool_specs(body["toolConfig"], "toolConfig")
        tool_policy.check_tools(tools, "toolConfig.tools")
        choice, forced = common.tool_choice(body["toolConfig"], tools, "toolConfig")
    elif common.uses_tools(turns):
        raise validation("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
    stops = common.string_list(config.get("stopSequences", []), "#/inferenceConfig/stopSequences", 4)
    return ChatRequest(system=system, messages=turns, max_tokens=config.get(max_key, model.max_output_tokens),
                       stop_sequences=stops, temperature=config.get("temperature"),
                       top_p=config.get("top_p", config.get("topP")), tools=tools, tool_choice=choice,
                       forced_tool=forced)


def _usage(gen: Generation) -> dict[str, int]:
    return {"inputTokens": gen.input_tokens, "outputTokens": gen.output_tokens,
            "totalTokens": gen.input_tokens + gen.output_tokens, "cacheReadInputTokenCount": 0,
            "cacheWriteInputTokenCount": 0}


def body(gen: Generation, model: FoundationModel, request: ChatRequest) -> dict[str, Any]:
    return {"output": {"message": {"role": "assistant", "content": common.converse_blocks(gen.content)}},
            "stopReason": gen.stop_reason, "usage": _usage(gen)}


def chunks(gen: Generation, model: FoundationModel, metrics: dict[str, int],
           request: ChatRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"messageStart": {"role": "assistant"}}]
    for index, block in enumerate(b for b in gen.content if not isinstance(b, Reasoning)):
        if isinstance(block, ToolUse):
            out.append({"contentBlockStart": {"start": {"toolUse": {"toolUseId": block.tool_use_id,
                                                                    "name": block.name}}, "contentBlockIndex": index}})
            for piece in common.json_deltas(block.input):
                out.append({"contentBlockDelta": {"delta": {"toolUse": {"input": piece}}, "contentBlockIndex": index}})
        else:
            assert isinstance(block, str), "a model generates text, tool uses and reasoning"
            for piece in common.deltas(block):
                out.append({"contentBlockDelta": {"delta": {"text": piece}, "contentBlockIndex": index}})
        out.append({"contentBlockStop": {"contentBlockIndex": index}})
    out.append({"messageStop": {"stopReason": gen.stop_reason}})
    out.append({"metadata": {"usage": _usage(gen), "metrics": {}, "trace": {}},
                "amazon-bedrock-invocationMetrics": metrics})
    return out
