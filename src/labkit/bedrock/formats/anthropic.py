"""Anthropic Claude on Bedrock: the Messages API body.

Request: ``anthropic_version`` (``bedrock-2023-05-31``), ``max_tokens``, ``messages`` (each a
``user``/``assistant`` turn whose content is a string or a list of ``text``, ``image``
(base64 source), ``document``, ``tool_use`` and ``tool_result`` blocks), optional ``system``
(a string or text blocks, never a message role), ``stop_sequences``, ``temperature``,
``top_p``, ``top_k``, ``tools`` (``name``, ``description``, ``input_schema``), ``tool_choice``
(``auto``, ``any``, ``tool`` with ``name``, ``none``), ``thinking``, ``anthropic_beta``.
Response: ``{"id", "type": "message", "role", "model", "content": [text and tool_use
blocks], "stop_reason", "stop_sequence", "usage"}``; streamed as ``message_start``,
``content_block_start/delta/stop`` (``text_delta``, ``input_json_delta``),
``message_delta`` and ``message_stop`` with Bedrock's invocation metrics.
Errors are worded as Anthropic's validation words them.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..catalog import FoundationModel
from ..chat import Block, ChatRequest, Document, Generation, Image, Message, ToolResult, ToolSpec, ToolUse
from ..errors import malformed, validation
from . import common

ANTHROPIC_VERSION = "bedrock-2023-05-31"
KEYS = {"anthropic_version", "anthropic_beta", "max_tokens", "messages", "system", "stop_sequences",
        "temperature", "top_p", "top_k", "tools", "tool_choice", "metadata", "thinking"}
MEDIA = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}


def _tool_result_content(inner: Any, path: str) -> list[dict[str, Any]]:
    if isinstance(inner, str):
        return [{"text": inner}]
    if not isinstance(inner, list):
        raise malformed(f"{path}: expected type: String or JSONArray")
    out = []
    for block in inner:
        if isinstance(block, dict) and block.get("type") == "text":
            out.append({"text": str(block.get("text", ""))})
    return out


def _content(content: Any, path: str) -> list[Block]:
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise malformed(f"{path}: expected type: String or JSONArray")
    out: list[Block] = []
    for i, block in enumerate(content):
        if not isinstance(block, dict) or "type" not in block:
            raise malformed(f"{path}/{i}: required key [type] not found")
        kind = block["type"]
        if kind == "text":
            out.append(common.text(block.get("text"), f"{path}/{i}/text"))
        elif kind == "image":
            src = block.get("source") or {}
            if src.get("type") != "base64" or src.get("media_type") not in MEDIA:
                raise validation(f"{path[2:].replace('/', '.')}.{i}.source: Input should be a base64 source with "
                                 "media_type image/jpeg, image/png, image/gif or image/webp")
            out.append(Image(MEDIA[src["media_type"]], common.b64(src.get("data"), f"{path}/{i}/source/data")))
        elif kind == "document":
            src = block.get("source") or {}
            data = src.get("data", "")
            out.append(Document(block.get("title", "document"),
                                data if src.get("type") == "text" else common.b64(data, f"{path}/{i}").decode(
                                    "utf-8", "replace")))
        elif kind == "tool_use":
            out.append(ToolUse(str(block.get("id")), str(block.get("name")), block.get("input", {})))
        elif kind == "tool_result":
            out.append(ToolResult(str(block.get("tool_use_id")),
                                  _tool_result_content(block.get("content", ""), f"{path}/{i}/content"),
                                  "error" if block.get("is_error") else "success"))
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise validation(f"messages: Input tag '{kind}' found using 'type' does not match any of the expected "
                             "tags: 'document', 'image', 'text', 'tool_result', 'tool_use'")
    return out


def _tools(body: dict[str, Any]) -> list[ToolSpec]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise malformed("#/tools: expected type: JSONArray")
    out = []
    for i, t in enumerate(tools):
        if not isinstance(t, dict) or "name" not in t:
            raise validation(f"tools.{i}.name: Field required")
        if "input_schema" not in t:
            if t.get("type"):  # Anthropic's server tools (bash, text_editor, web search...)
                raise validation(f"tools.{i}: the tool type {t['type']} is not emulated offline; define a custom "
                                 "tool with input_schema.")
            raise validation(f"tools.{i}.custom.input_schema: Field required")
        out.append(ToolSpec(str(t["name"]), str(t.get("description", "")), t["input_schema"]))
    from .. import tools as tool_policy

    tool_policy.check_tools(out, "tools")
    return out


def parse(body: dict[str, Any], model: FoundationModel) -> ChatRequest:
    if "prompt" in body and "messages" not in body:
        raise validation(f'"{model.api_name}" is not supported on this API. Please use the Messages API instead.')
    common.keys(body, KEYS, ("anthropic_version", "max_tokens", "messages"))
    if body["anthropic_version"] != ANTHROPIC_VERSION:
        raise malformed(f"#/anthropic_version: {body['anthropic_version']} is not a valid enum value")
    common.number(body, "max_tokens", "#", 1, None, integer=True)
    if body["max_tokens"] > model.max_output_tokens:
        raise validation(f"max_tokens: {body['max_tokens']} > {model.max_output_tokens}, which is the maximum "
                         f"allowed number of output tokens for {model.api_name}")
    common.number(body, "temperature", "#", 0, 1)
    common.number(body, "top_p", "#", 0, 1)
    common.number(body, "top_k", "#", 0, 500, integer=True)
    if model.temperature_or_top_p and body.get("temperature") is not None and body.get("top_p") is not None:
        raise validation("`temperature` and `top_p` cannot both be specified for this model. Please use only one.")
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens", 0)
        if not isinstance(budget, int) or budget < 1024:
            raise validation("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if budget >= body["max_tokens"]:
            raise validation("`max_tokens` must be greater than `thinking.budget_tokens`.")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise malformed("#/messages: expected type: JSONArray")
    if not messages:
        raise validation("messages: at least one message is required")
    turns: list[Message] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise malformed(f"#/messages/{i}: expected type: JSONObject")
        common.keys(msg, {"role", "content"}, ("role", "content"), f"#/messages/{i}")
        role = msg["role"]
        if role not in ("user", "assistant"):
            raise validation(f"messages: Unexpected role \"{role}\". Allowed roles are \"user\" or \"assistant\". "
                             "Use the top-level \"system\" parameter for a system prompt.")
        if i == 0 and role != "user":
            raise validation('messages: first message must use the "user" role')
        if i and turns[-1].role == role:
            raise validation(f'messages: roles must alternate between "user" and "assistant", but found multiple '
                             f'"{role}" roles in a row')
        turns.append(Message(role, _content(msg["content"], f"#/messages/{i}/content")))
    _check_tool_pairs(turns)
    tools = _tools(body)
    choice, forced = "auto", None
    if body.get("tool_choice") is not None:
        tc = body["tool_choice"]
        if not tools:
            raise validation("tool_choice may only be specified while providing tools.")
        choice = common.enum(tc.get("type") if isinstance(tc, dict) else None, ("auto", "any", "tool", "none"),
                             "#/tool_choice/type")
        if choice == "tool":
            forced = tc.get("name")
            if forced not in {t.name for t in tools}:
                raise validation(f"tool_choice.name: Tool '{forced}' not found in tools")
    elif any(isinstance(b, ToolUse | ToolResult) for m in turns for b in m.content) and not tools:
        raise validation("Requests which include `tool_use` or `tool_result` blocks must define tools.")
    system = body.get("system")
    system_texts = [] if system is None else [
        "\n".join(b for b in _content(system, "#/system") if isinstance(b, str))]
    return ChatRequest(system=system_texts, messages=turns, max_tokens=body["max_tokens"],
                       stop_sequences=common.string_list(body.get("stop_sequences", []), "#/stop_sequences"),
                       temperature=body.get("temperature"), top_p=body.get("top_p"), tools=tools,
                       tool_choice=choice, forced_tool=forced)


def _check_tool_pairs(turns: list[Message]) -> None:
    for i, msg in enumerate(turns):
        uses = {b.tool_use_id for b in msg.content if isinstance(b, ToolUse)}
        if uses and i + 1 < len(turns):
            answered = {b.tool_use_id for b in turns[i + 1].content if isinstance(b, ToolResult)}
            missing = sorted(uses - answered)
            if missing:
                raise validation(f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately "
                                 f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                                 "`tool_result` block in the next message.")
        results = [b.tool_use_id for b in msg.content if isinstance(b, ToolResult)]
        previous = {b.tool_use_id for b in turns[i - 1].content if isinstance(b, ToolUse)} if i else set()
        for j, rid in enumerate(results):
            if rid not in previous:
                raise validation(f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                                 f"{rid}. Each `tool_result` block must have a corresponding `tool_use` block in the "
                                 "previous message.")


def tool_id(converse_id: str) -> str:
    """Claude's own form of a tool-use id (``toolu_bdrk_...``)."""
    return "toolu_bdrk_" + converse_id.removeprefix("tooluse_") if converse_id.startswith("tooluse_") else converse_id


def _blocks(gen: Generation) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for b in gen.content:
        if isinstance(b, str):
            out.append({"type": "text", "text": b})
        elif isinstance(b, ToolUse):
            out.append({"type": "tool_use", "id": tool_id(b.tool_use_id), "name": b.name, "input": b.input})
    return out


def body(gen: Generation, model: FoundationModel, request: ChatRequest) -> dict[str, Any]:
    return {
        "id": f"msg_bdrk_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model.api_name,
        "content": _blocks(gen),
        "stop_reason": gen.stop_reason,
        "stop_sequence": gen.stop_sequence,
        "usage": {"input_tokens": gen.input_tokens, "output_tokens": gen.output_tokens},
    }


def chunks(gen: Generation, model: FoundationModel, metrics: dict[str, int],
           request: ChatRequest) -> list[dict[str, Any]]:
    whole = body(gen, model, request)
    start = {**whole, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {"input_tokens": gen.input_tokens, "output_tokens": 1}}
    out: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(whole["content"]):
        if block["type"] == "text":
            out.append({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
            for piece in common.deltas(block["text"]):
                out.append({"type": "content_block_delta", "index": index,
                            "delta": {"type": "text_delta", "text": piece}})
        else:
            out.append({"type": "content_block_start", "index": index,
                        "content_block": {**block, "input": {}}})
            for piece in common.json_deltas(block["input"]):
                out.append({"type": "content_block_delta", "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": piece}})
        out.append({"type": "content_block_stop", "index": index})
    out.append({"type": "message_delta", "delta": {"stop_reason": gen.stop_reason, "stop_sequence": gen.stop_sequence},
                "usage": {"output_tokens": gen.output_tokens}})
    out.append({"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics})
    return out
