"""The Converse API offline: one request shape for every text model, checked as Bedrock checks it.

:func:`request` reads a Converse/ConverseStream request into a
:class:`~labkit.bedrock.chat.ChatRequest`, refusing what Bedrock refuses for the model
(the features of each model are in the catalogue: system prompts, documents, images,
tool use, tool use while streaming, the tool choices it accepts):

* ``The toolConfig field must be defined when using toolUse and toolResult content blocks.``
* ``This model doesn't support tool use.`` / ``... tool use in streaming mode.``
* ``This model doesn't support the toolConfig.toolChoice.any field. Remove toolConfig.toolChoice.any and try again.``
* ``The number of toolResult blocks at messages.2.content exceeds the number of toolUse blocks of previous turn.``
* ``Expected toolResult blocks at messages.2.content for the following Ids: ...``
* ``The content field at messages.2.content.0.toolResult cannot be empty when status value is error.``
* a tool's ``inputSchema.json`` that is not a JSON Schema of an object (checked with ``jsonschema``).

:func:`response` and :func:`stream_events` write a generation in Converse's shapes:
``output.message.content`` with ``text``, ``toolUse`` and ``reasoningContent`` blocks,
``stopReason`` (``tool_use`` when the model asks for a tool), ``usage``, ``metrics``; the
stream as ``messageStart``, ``contentBlockStart`` (``toolUse`` with its id and name),
``contentBlockDelta`` (``text``, ``toolUse.input`` JSON chunks, ``reasoningContent``),
``contentBlockStop``, ``messageStop`` and ``metadata``.
"""

from __future__ import annotations

from typing import Any

from . import tools
from .catalog import FoundationModel
from .chat import ChatRequest, Document, Image, Message, Reasoning, ToolUse
from .errors import validation
from .formats import common

NOT_CHAT = ("This action doesn't support the model that you provided. Try again with a supported text or chat "
            "model.")


def request(params: dict[str, Any], model: FoundationModel, stream: bool) -> tuple[ChatRequest, list[str]]:
    """(the chat request, the texts a guardrail must assess) of a Converse call."""
    features = model.converse
    if features is None or not model.is_text:
        raise validation(NOT_CHAT)
    guarded: list[str] = []
    system = []
    for block in params.get("system") or []:
        if "text" in block:
            system.append(block["text"])
        elif "guardContent" in block:
            system.append(block["guardContent"]["text"]["text"])
            guarded.append(block["guardContent"]["text"]["text"])
    if system and not features.system:
        raise validation("This model doesn't support system messages. Try again without system messages or use a "
                         "model that supports them.")
    raw = params.get("messages") or []
    if not raw:
        raise validation("A conversation must start with a user message. Try again with a conversation that starts "
                         "with a user message.")
    turns: list[Message] = []
    for i, msg in enumerate(raw):
        if msg["role"] == "system":
            raise validation("The role system is not supported in messages. Use the system field instead.")
        if i == 0 and msg["role"] != "user":
            raise validation("A conversation must start with a user message. Try again with a conversation that "
                             "starts with a user message.")
        if i and raw[i - 1]["role"] == msg["role"]:
            raise validation("A conversation must alternate between user and assistant roles. Make sure the "
                             "conversation alternates between user and assistant roles and try again.")
        blocks = common.content_blocks(msg["content"], f"messages.{i}.content", guarded=guarded)
        if any(isinstance(b, Image) for b in blocks) and not features.vision:
            raise validation("This model doesn't support the image content block that you provided. Try again with "
                             "a model that supports images.")
        if any(isinstance(b, Document) for b in blocks) and not features.document:
            raise validation("This model doesn't support documents. Try again without the document content block.")
        turns.append(Message(msg["role"], [b for b in blocks if not isinstance(b, Reasoning)]))
    if turns[-1].role != "user" and model.family != "anthropic":
        raise validation("The final message in the conversation must be a user message.")
    common.check_tool_turns(turns)
    specs, choice, forced = [], "auto", None
    config = params.get("toolConfig")
    if config:
        if not features.tool_use:
            raise validation("This model doesn't support tool use.")
        if stream and not features.streaming_tool_use:
            raise validation("This model doesn't support tool use in streaming mode.")
        specs = common.tool_specs(config, "toolConfig")
        tools.check_tools(specs, "toolConfig.tools")
        choice, forced = common.tool_choice(config, specs, "toolConfig")
        if choice not in features.tool_choice:
            raise validation(f"This model doesn't support the toolConfig.toolChoice.{choice} field. Remove "
                             f"toolConfig.toolChoice.{choice} and try again.")
    elif common.uses_tools(turns):
        raise validation("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
    inference = params.get("inferenceConfig") or {}
    max_tokens = inference.get("maxTokens", model.max_output_tokens if model.family == "anthropic" else 512)
    if max_tokens > model.max_output_tokens:
        raise validation(f"The maximum tokens you requested exceeds the model limit of {model.max_output_tokens}. "
                         f"Try again with a maximum tokens value that is lower than {model.max_output_tokens}.")
    if model.temperature_or_top_p and "temperature" in inference and "topP" in inference:
        raise validation("The model returned the following errors: `temperature` and `top_p` cannot both be "
                         "specified for this model. Please use only one.")
    chat = ChatRequest(system=system, messages=turns, max_tokens=max_tokens,
                       stop_sequences=list(inference.get("stopSequences") or []),
                       temperature=inference.get("temperature"), top_p=inference.get("topP"), tools=specs,
                       tool_choice=choice, forced_tool=forced, reasoning=model.family == "deepseek")
    guard_texts = guarded or [m.text() for m in turns if m.text()] + system
    return chat, guard_texts


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {"inputTokens": input_tokens, "outputTokens": output_tokens, "totalTokens": input_tokens + output_tokens}


def response(content: list[Any], stop_reason: str, input_tokens: int, output_tokens: int,
             latency_ms: int) -> dict[str, Any]:
    return {"output": {"message": {"role": "assistant", "content": common.converse_blocks(content)}},
            "stopReason": stop_reason, "usage": _usage(input_tokens, output_tokens),
            "metrics": {"latencyMs": latency_ms}}


def stream_events(content: list[Any], stop_reason: str, input_tokens: int, output_tokens: int,
                  latency_ms: int) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    for index, block in enumerate(content):
        if isinstance(block, ToolUse):
            events.append(("contentBlockStart", {"start": {"toolUse": {"toolUseId": block.tool_use_id,
                                                                      "name": block.name}},
                                                 "contentBlockIndex": index}))
            for piece in common.json_deltas(block.input):
                events.append(("contentBlockDelta", {"delta": {"toolUse": {"input": piece}},
                                                     "contentBlockIndex": index}))
        elif isinstance(block, Reasoning):
            for piece in common.deltas(block.text):
                events.append(("contentBlockDelta", {"delta": {"reasoningContent": {"text": piece}},
                                                     "contentBlockIndex": index}))
        else:  # text blocks open with their first delta: contentBlockStart is for tool use
            for piece in common.deltas(block) or [""]:
                events.append(("contentBlockDelta", {"delta": {"text": piece}, "contentBlockIndex": index}))
        events.append(("contentBlockStop", {"contentBlockIndex": index}))
    events.append(("messageStop", {"stopReason": stop_reason}))
    events.append(("metadata", {"usage": _usage(input_tokens, output_tokens), "metrics": {"latencyMs": latency_ms}}))
    return events
