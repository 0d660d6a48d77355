"""Cohere Command R and R+: the chat body with documents and tools.

Request: ``message`` (required), ``chat_history`` (``USER``/``CHATBOT`` turns), ``documents``
(``{"title", "snippet"}``: grounding context), ``preamble`` (the system text),
``max_tokens``, ``temperature``, ``p``, ``k``, ``stop_sequences``, ``tools`` (with
``parameter_definitions``) and ``tool_results`` (``{"call": {...}, "outputs": [...]}``).
Response: ``{"response_id", "text", "generation_id", "chat_history", "finish_reason"}``
(``COMPLETE``, ``MAX_TOKENS``) with ``tool_calls`` when the model calls tools; streamed as
``stream-start``, ``text-generation`` and ``stream-end`` events.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from ..catalog import FoundationModel
from ..chat import Block, ChatRequest, Document, Generation, Message, ToolResult, ToolSpec, ToolUse
from ..errors import malformed
from . import common

KEYS = {"message", "chat_history", "documents", "search_queries_only", "preamble", "max_tokens", "temperature", "p",
        "k", "prompt_truncation", "frequency_penalty", "presence_penalty", "seed", "return_prompt", "tools",
        "tool_results", "stop_sequences", "raw_prompting"}
_TYPES = {"str": "string", "string": "string", "int": "integer", "integer": "integer", "float": "number",
          "number": "number", "bool": "boolean", "boolean": "boolean", "list": "array", "dict": "object"}


def _tools(raw: Any) -> list[ToolSpec]:
    out = []
    for i, t in enumerate(raw or []):
        if not isinstance(t, dict) or "name" not in t:
            raise malformed(f"#/tools/{i}: required key [name] not found")
        props, required = {}, []
        for name, d in (t.get("parameter_definitions") or {}).items():
            kind = _TYPES.get(str(d.get("type", "str")).lower(), "string")
            props[name] = {"type": kind, "description": d.get("description", "")}
            if d.get("required"):
                required.append(name)
        out.append(ToolSpec(t["name"], t.get("description", ""),
                            {"type": "object", "properties": props, "required": required}))
    return out


def parse(body: dict[str, Any], model: FoundationModel) -> ChatRequest:
    common.keys(body, KEYS, ("message",))
    message = common.text(body["message"], "#/message")
    common.number(body, "max_tokens", "#", 1, model.max_output_tokens, integer=True)
    common.number(body, "temperature", "#", 0, 1)
    common.number(body, "p", "#", 0.01, 0.99)
    common.number(body, "k", "#", 0, 500)
    turns: list[Message] = []
    for i, h in enumerate(body.get("chat_history") or []):
        role = common.enum(h.get("role"), ("USER", "CHATBOT", "SYSTEM", "TOOL"), f"#/chat_history/{i}/role")
        if role in ("SYSTEM", "TOOL"):
            continue
        turns.append(Message("user" if role == "USER" else "assistant", [str(h.get("message", ""))]))
    docs = [Document(str(d.get("title", f"doc_{i}")), str(d.get("snippet") or d.get("text") or json.dumps(d)))
            for i, d in enumerate(body.get("documents") or [])]
    specs = _tools(body.get("tools"))
    last: list[Any] = [*docs, message] if message else list(docs)
    if body.get("tool_results"):
        uses: list[Block] = []
        results: list[Block] = []
        for i, r in enumerate(body["tool_results"]):
            call = r.get("call") or {}
            rid = f"call_{i}"
            uses.append(ToolUse(rid, str(call.get("name", "")), call.get("parameters") or {}))
            results.append(ToolResult(rid, [{"json": o} for o in r.get("outputs") or []], "success"))
        if message:
            turns.append(Message("user", last))
        turns.append(Message("assistant", uses))
        turns.append(Message("user", results))
    else:
        turns.append(Message("user", last))
    merged: list[Message] = []
    for t in turns:
        if merged and merged[-1].role == t.role:
            merged[-1].content += t.content
        else:
            merged.append(t)
    preamble = body.get("preamble")
    return ChatRequest(system=[preamble] if preamble else [], messages=merged, max_tokens=body.get("max_tokens", 512),
                       stop_sequences=common.string_list(body.get("stop_sequences", []), "#/stop_sequences"),
                       temperature=body.get("temperature"), top_p=body.get("p"), tools=specs,
                       native={"message": message})


def _reason(gen: Generation) -> str:
    return "MAX_TOKENS" if gen.stop_reason == "max_tokens" else "COMPLETE"


def body(gen: Generation, model: FoundationModel, request: ChatRequest) -> dict[str, Any]:
    history = [{"role": "USER" if m.role == "user" else "CHATBOT", "message": m.text()} for m in request.messages]
    history.append({"role": "CHATBOT", "message": gen.text})
    out: dict[str, Any] = {"response_id": str(uuid.uuid4()), "text": gen.text, "generation_id": str(uuid.uuid4()),
                           "chat_history": history, "finish_reason": _reason(gen)}
    if gen.tool_uses:
        out["tool_calls"] = [{"name": u.name, "parameters": u.input} for u in gen.tool_uses]
    return out


def chunks(gen: Generation, model: FoundationModel, metrics: dict[str, int],
           request: ChatRequest) -> list[dict[str, Any]]:
    whole = body(gen, model, request)
    out: list[dict[str, Any]] = [{"is_finished": False, "event_type": "stream-start",
                                  "generation_id": whole["generation_id"]}]
    for piece in common.deltas(gen.text):
        out.append({"is_finished": False, "event_type": "text-generation", "text": piece})
    out.append({"is_finished": True, "event_type": "stream-end", "response": whole,
                "finish_reason": whole["finish_reason"], "amazon-bedrock-invocationMetrics": metrics})
    return out
