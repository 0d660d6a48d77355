"""The chat-completion body that Mistral's chat models and AI21 Jamba take on Bedrock.

``messages`` of ``system``, ``user``, ``assistant`` (with ``tool_calls``) and ``tool``
(``tool_call_id``) roles; ``tools`` as ``{"type": "function", "function": {name,
description, parameters}}``. Shared by :mod:`.mistral` and :mod:`.ai21`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..chat import Block, ChatRequest, Message, ToolResult, ToolSpec, ToolUse
from ..errors import malformed, validation
from . import common


def _text_of(content: Any, path: str) -> list[Block]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        out: list[Block] = []
        for i, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "text":
                out.append(str(part.get("text", "")))
            elif isinstance(part, dict) and part.get("type") == "image_url":
                from ..chat import Image

                url = (part.get("image_url") or {}).get("url", "")
                fmt = url[len("data:image/"):].split(";", 1)[0] if url.startswith("data:image/") else "png"
                out.append(Image(fmt, common.b64(url, f"{path}/{i}/image_url/url")))
            else:
                raise malformed(f"{path}/{i}: expected a text or image_url part")
        return out
    raise malformed(f"{path}: expected type: String or JSONArray")


def messages(raw: Any) -> tuple[list[str], list[Message]]:
    """(system texts, turns) of chat-completion messages; tool messages become tool results."""
    if not isinstance(raw, list) or not raw:
        raise malformed("#/messages: expected minItems: 1")
    system: list[str] = []
    turns: list[Message] = []
    for i, msg in enumerate(raw):
        path = f"#/messages/{i}"
        if not isinstance(msg, dict) or "role" not in msg:
            raise malformed(f"{path}: required key [role] not found")
        role = common.enum(msg["role"], ("system", "user", "assistant", "tool"), f"{path}/role")
        if role == "system":
            system += [b for b in _text_of(msg.get("content"), f"{path}/content") if isinstance(b, str)]
            continue
        if role == "tool":
            block: Block = ToolResult(str(msg.get("tool_call_id", "")), [{"text": str(msg.get("content", ""))}],
                                      "success")
            if turns and turns[-1].role == "user":
                turns[-1].content.append(block)
            else:
                turns.append(Message("user", [block]))
            continue
        blocks = _text_of(msg.get("content"), f"{path}/content")
        for call in msg.get("tool_calls") or []:
            fn = call.get("function") or {}
            args = fn.get("arguments", "{}")
            try:
                parsed = json.loads(args) if isinstance(args, str) else args
            except ValueError:
                raise malformed(f"{path}/tool_calls: arguments must be a JSON object string") from None
            blocks.append(ToolUse(str(call.get("id", "")), str(fn.get("name", "")), parsed))
        if turns and turns[-1].role == role:
            turns[-1].content += blocks
        else:
            turns.append(Message(role, blocks))
    if not turns or turns[0].role != "user":
        raise validation("The conversation must start with a user message.")
    return system, turns


def tools(raw: Any) -> list[ToolSpec]:
    if raw is None:
        return []
    out = []
    for i, t in enumerate(raw):
        fn = (t or {}).get("function") if isinstance(t, dict) else None
        if not fn or "name" not in fn:
            raise malformed(f"#/tools/{i}/function: required key [name] not found")
        out.append(ToolSpec(str(fn["name"]), str(fn.get("description", "")),
                            fn.get("parameters") or {"type": "object", "properties": {}}))
    from .. import tools as tool_policy

    tool_policy.check_tools(out, "tools")
    return out


def choice(raw: Any, specs: list[ToolSpec], any_word: str) -> tuple[str, str | None]:
    """``tool_choice`` (``auto``, ``none``, ``any``/``required``, or a named function) in chat terms."""
    if raw is None or raw == "auto":
        return "auto", None
    if raw == "none":
        return "none", None
    if raw == any_word:
        return "any", None
    if isinstance(raw, dict) and (raw.get("function") or {}).get("name") in {s.name for s in specs}:
        return "tool", raw["function"]["name"]
    raise malformed(f"#/tool_choice: {raw} is not a valid tool choice")


def call_id(tool_use_id: str, length: int = 9) -> str:
    """A short alphanumeric id for a tool call, derived from the Converse id (Mistral uses 9 characters)."""
    return hashlib.sha1(tool_use_id.encode()).hexdigest()[:length]


def message(request: ChatRequest, content: list[Block], short_ids: bool = False) -> dict[str, Any]:
    text = "".join(b for b in content if isinstance(b, str))
    calls = [{"id": call_id(b.tool_use_id) if short_ids else b.tool_use_id, "type": "function",
              "function": {"name": b.name, "arguments": json.dumps(b.input)}}
             for b in content if isinstance(b, ToolUse)]
    out: dict[str, Any] = {"role": "assistant", "content": text}
    out["tool_calls"] = calls or None
    return out
