"""What every family's body check shares: Bedrock's JSON-schema wording, and the Converse content shape.

Bedrock validates an InvokeModel body with the model's JSON schema and answers
``Malformed input request: #/path: problem, please reformat your input and try again.``;
the helpers here word each problem that way. :func:`content_blocks` reads content in the
Converse shape (``{"text"}``, ``{"image"}``, ``{"document"}``, ``{"toolUse"}``,
``{"toolResult"}``), which Amazon Nova's native body shares (with base64 text for bytes).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from .. import tokens
from ..chat import Block, ChatRequest, Document, Image, Message, Reasoning, ToolResult, ToolSpec, ToolUse
from ..errors import malformed, validation

IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")


def parse_body(body: bytes | str | None) -> dict[str, Any]:
    if body is None or body in (b"", ""):
        raise malformed("#: expected type: JSONObject, found: Null")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise malformed(f"the body is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise malformed(f"#: expected type: JSONObject, found: {type(data).__name__}")
    return data


def keys(body: dict[str, Any], allowed: set[str], required: tuple[str, ...] = (), path: str = "#") -> None:
    for key in required:
        if key not in body:
            raise malformed(f"{path}: required key [{key}] not found")
    for key in body:
        if key not in allowed:
            raise malformed(f"{path}: extraneous key [{key}] is not permitted")


def number(body: dict[str, Any], key: str, path: str, lo: float | None, hi: float | None,
           integer: bool = False) -> None:
    if key not in body or body[key] is None:
        return
    v = body[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or (integer and not isinstance(v, int)):
        raise malformed(f"{path}/{key}: expected type: {'Integer' if integer else 'Number'}, found: "
                        f"{type(v).__name__}")
    if lo is not None and v < lo:
        raise malformed(f"{path}/{key}: {v} is not greater or equal to {lo}")
    if hi is not None and v > hi:
        raise malformed(f"{path}/{key}: {v} is not less or equal to {hi}")


def string_list(value: Any, path: str, max_items: int | None = None) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise malformed(f"{path}: expected type: JSONArray of strings")
    if max_items is not None and len(value) > max_items:
        raise malformed(f"{path}: expected maxItems: {max_items}, actual: {len(value)}")
    return value


def text(value: Any, path: str, min_length: int = 0) -> str:
    if not isinstance(value, str):
        raise malformed(f"{path}: expected type: String, found: {type(value).__name__}")
    if len(value) < min_length:
        raise malformed(f"{path}: expected minLength: {min_length}, actual: {len(value)}")
    return value


def enum(value: Any, allowed: tuple[Any, ...], path: str) -> Any:
    if value not in allowed:
        raise malformed(f"{path}: {value} is not a valid enum value")
    return value


def b64(value: Any, path: str) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if not isinstance(value, str):
        raise malformed(f"{path}: expected type: String, found: {type(value).__name__}")
    try:
        return base64.b64decode(value.split(",", 1)[1] if value.startswith("data:") else value, validate=True)
    except (binascii.Error, ValueError):
        raise malformed(f"{path}: the value is not valid base64") from None


def deltas(text_: str, per_chunk: int = 4) -> list[str]:
    """``text`` in streaming deltas of a few tokens each; joined they give ``text``."""
    pieces = tokens.chunks(text_)
    return ["".join(pieces[i:i + per_chunk]) for i in range(0, len(pieces), per_chunk)]


def json_deltas(value: Any, size: int = 24) -> list[str]:
    """A tool input's JSON in chunks, as streamed tool-use deltas carry it."""
    data = json.dumps(value)
    return [data[i:i + size] for i in range(0, len(data), size)] or ["{}"]


# --- the Converse content shape (Converse requests; Nova's native body) ------------------------------


def _bytes(source: dict[str, Any], path: str, encoded: bool) -> bytes:
    if "s3Location" in source:
        raise validation(f"{path}.s3Location: Amazon S3 locations are not emulated offline; send the bytes.")
    if "bytes" not in source:
        raise validation(f"{path}: a source needs bytes.")
    data = source["bytes"]
    return b64(data, f"{path}.bytes") if encoded and isinstance(data, str) else bytes(data)


def content_blocks(content: Any, path: str, encoded: bool = False, guarded: list[str] | None = None) -> list[Block]:
    """Converse-shaped content as chat blocks. ``encoded``: bytes arrive as base64 text (Nova's body)."""
    if not isinstance(content, list):
        raise validation(f"{path} must be a list of content blocks.")
    out: list[Block] = []
    for j, block in enumerate(content):
        where = f"{path}.{j}"
        if not isinstance(block, dict) or len(block) != 1:
            raise validation(f"The value at {where} must have exactly one member set.")
        (kind, value), = block.items()
        if kind == "text":
            out.append(str(value))
        elif kind == "guardContent":
            t = value["text"]["text"]
            out.append(t)
            if guarded is not None:
                guarded.append(t)
        elif kind == "image":
            fmt = value.get("format")
            if fmt not in IMAGE_FORMATS:
                raise validation(f"The value at {where}.image.format must be one of: {', '.join(IMAGE_FORMATS)}.")
            out.append(Image(fmt, _bytes(value.get("source") or {}, f"{where}.image.source", encoded)))
        elif kind == "document":
            src = value.get("source") or {}
            if "text" in src:
                body = str(src["text"])
            elif "content" in src:
                body = "\n".join(str(c.get("text", "")) for c in src["content"])
            else:
                body = _bytes(src, f"{where}.document.source", encoded).decode("utf-8", "replace")
            out.append(Document(value.get("name", "document"), body))
        elif kind == "toolUse":
            out.append(ToolUse(value["toolUseId"], value["name"], value.get("input")))
        elif kind == "toolResult":
            status = value.get("status")
            if status == "error" and not value.get("content"):
                raise validation(f"The content field at {where}.toolResult cannot be empty when status value is "
                                 "error.")
            out.append(ToolResult(value["toolUseId"], list(value.get("content") or []), status))
        elif kind == "reasoningContent":
            out.append(Reasoning(str((value.get("reasoningText") or {}).get("text", ""))))
        elif kind in ("cachePoint",):
            continue
        elif kind in ("video", "audio"):
            raise validation(f"{where}.{kind}: {kind} input is not emulated offline.")
        else:
            raise validation(f"{where}: the content block {kind} is not supported by this model.")
    return out


def tool_specs(config: dict[str, Any], where: str) -> list[ToolSpec]:
    tools = config.get("tools")
    if not isinstance(tools, list) or not tools:
        raise validation(f"The value at {where}.tools must contain at least one tool.")
    out = []
    for i, t in enumerate(tools):
        spec = t.get("toolSpec") if isinstance(t, dict) else None
        if spec is None:
            raise validation(f"The value at {where}.tools.{i} must be a toolSpec (other tool types are not "
                             "emulated offline).")
        schema = (spec.get("inputSchema") or {}).get("json") or {}  # checked later: check_schema
        out.append(ToolSpec(spec.get("name", ""), spec.get("description", ""), schema))
    return out


def tool_choice(config: dict[str, Any], specs: list[ToolSpec], where: str) -> tuple[str, str | None]:
    choice = config.get("toolChoice") or {"auto": {}}
    if len(choice) != 1:
        raise validation(f"The value at {where}.toolChoice must have exactly one member set.")
    (kind, value), = choice.items()
    if kind == "tool":
        name = (value or {}).get("name")
        if name not in {s.name for s in specs}:
            raise validation(f"The tool {name} in {where}.toolChoice.tool.name is not one of the tools in "
                             f"{where}.tools.")
        return "tool", name
    return kind, None


def converse_blocks(gen_content: list[Block], encoded: bool = False) -> list[dict[str, Any]]:
    """A generation's blocks in the Converse shape."""
    out: list[dict[str, Any]] = []
    for b in gen_content:
        if isinstance(b, Reasoning):
            out.append({"reasoningContent": {"reasoningText": {"text": b.text}}})
        elif isinstance(b, ToolUse):
            out.append({"toolUse": {"toolUseId": b.tool_use_id, "name": b.name, "input": b.input}})
        elif isinstance(b, str):
            out.append({"text": b})
    return out or [{"text": ""}]


def check_tool_turns(messages: list[Message], path: str = "messages") -> None:
    """Each tool result answers a tool use of the assistant turn just before it, as Bedrock requires."""
    for i, msg in enumerate(messages):
        results = [b for b in msg.content if isinstance(b, ToolResult)]
        previous = messages[i - 1].content if i else []
        uses = [b for b in previous if isinstance(b, ToolUse)]
        if results and len(results) > len(uses):
            raise validation(f"The number of toolResult blocks at {path}.{i}.content exceeds the number of toolUse "
                             "blocks of previous turn.")
        if uses and msg.role == "user":
            answered = {r.tool_use_id for r in results}
            missing = [u.tool_use_id for u in uses if u.tool_use_id not in answered]
            if missing:
                raise validation(f"Expected toolResult blocks at {path}.{i}.content for the following Ids: "
                                 f"{', '.join(missing)}")


def uses_tools(messages: list[Message]) -> bool:
    return any(isinstance(b, ToolUse | ToolResult) for m in messages for b in m.content)


def metrics_of(gen_in: int, gen_out: int, latency_ms: int) -> dict[str, int]:
    return {"inputTokenCount": gen_in, "outputTokenCount": gen_out, "invocationLatency": latency_ms,
            "firstByteLatency": latency_ms}


__all__ = ["ChatRequest", "b64", "check_tool_turns", "content_blocks", "converse_blocks", "deltas", "enum",
           "json_deltas", "keys", "metrics_of", "number", "parse_body", "string_list", "text", "tool_choice",
           "tool_specs", "uses_tools"]
