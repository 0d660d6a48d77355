"""Mistral AI on Bedrock: the text-completion body, and the chat body of Mistral Large/Small and Pixtral.

Text completion (Mistral 7B, Mixtral 8x7B, Large and Small 24.02): ``prompt`` in Mistral's
``<s>[INST] ... [/INST]`` template, ``max_tokens``, ``stop``, ``temperature``, ``top_p``,
``top_k`` -> ``{"outputs": [{"text", "stop_reason"}]}``.
Chat (Mistral Large/Small 24.02, Pixtral Large): ``messages`` with ``tools`` and
``tool_choice`` (``auto``, ``any``, ``none``) -> ``{"choices": [{"index", "message",
"stop_reason"}]}`` (``stop``, ``length``, ``tool_calls``), tool calls with 9-character ids.
"""

from __future__ import annotations

import re
from typing import Any

from ..catalog import FoundationModel
from ..chat import ChatRequest, Generation, Message
from ..errors import validation
from . import chatstyle, common

_INST = re.compile(r"\[INST\](.*?)\[/INST\]", re.S)


def _prompt_turns(prompt: str) -> list[Message]:
    parts = list(_INST.finditer(prompt))
    if not parts:
        return [Message("user", [prompt.replace("<s>", "").replace("</s>", "").strip() or prompt])]
    out: list[Message] = []
    for i, m in enumerate(parts):
        out.append(Message("user", [m.group(1).strip()]))
        end = parts[i + 1].start() if i + 1 < len(parts) else len(prompt)
        answer = prompt[m.end():end].replace("</s>", "").replace("<s>", "").strip()
        if answer:
            out.append(Message("assistant", [answer]))
    return out


def _reason(gen: Generation, chat: bool) -> str:
    if gen.stop_reason == "max_tokens":
        return "length"
    if gen.stop_reason == "tool_use" and chat:
        return "tool_calls"
    return "stop"


def parse(body: dict[str, Any], model: FoundationModel) -> ChatRequest:
    if "messages" in body:
        if model.family != "mistral-chat" and not model.chat_body:
            raise validation(f"{model.name} takes a prompt, not messages: use the Converse API for chat.")
        common.keys(body, {"messages", "max_tokens", "temperature", "top_p", "tools", "tool_choice", "stop"},
                    ("messages",))
        common.number(body, "max_tokens", "#", 1, model.max_output_tokens, integer=True)
        common.number(body, "temperature", "#", 0, 1)
        common.number(body, "top_p", "#", 0, 1)
        system, turns = chatstyle.messages(body["messages"])
        specs = chatstyle.tools(body.get("tools"))
        choice, forced = chatstyle.choice(body.get("tool_choice"), specs, "any")
        return ChatRequest(system=system, messages=turns, max_tokens=body.get("max_tokens", 512),
                           stop_sequences=common.string_list(body.get("stop", []), "#/stop", 10),
                           temperature=body.get("temperature"), top_p=body.get("top_p"), tools=specs,
                           tool_choice=choice, forced_tool=forced, native={"shape": "chat"})
    if model.family == "mistral-chat":
        common.keys(body, set(), ("messages",))
    common.keys(body, {"prompt", "max_tokens", "stop", "temperature", "top_p", "top_k"}, ("prompt",))
    text = common.text(body["prompt"], "#/prompt", 1)
    common.number(body, "max_tokens", "#", 1, model.max_output_tokens, integer=True)
    common.number(body, "temperature", "#", 0, 1)
    common.number(body, "top_p", "#", 0, 1)
    common.number(body, "top_k", "#", 1, 200, integer=True)
    return ChatRequest(messages=_prompt_turns(text), max_tokens=body.get("max_tokens", 512),
                       stop_sequences=common.string_list(body.get("stop", []), "#/stop", 10),
                       temperature=body.get("temperature"), top_p=body.get("top_p"))


def body(gen: Generation, model: FoundationModel, request: ChatRequest) -> dict[str, Any]:
    if request.native.get("shape") == "chat":
        return {"choices": [{"index": 0, "message": chatstyle.message(request, gen.content, short_ids=True),
                             "stop_reason": _reason(gen, True)}]}
    return {"outputs": [{"text": gen.text, "stop_reason": _reason(gen, False)}]}


def chunks(gen: Generation, model: FoundationModel, metrics: dict[str, int],
           request: ChatRequest) -> list[dict[str, Any]]:
    chat = request.native.get("shape") == "chat"
    if chat and gen.tool_uses:  # a tool call arrives whole, in the last chunk
        whole = body(gen, model, request)
        whole["choices"][0]["message"]["index"] = 0
        return [{**whole, "amazon-bedrock-invocationMetrics": metrics}]
    pieces = common.deltas(gen.text) or [""]
    out = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        reason = _reason(gen, chat) if last else None
        chunk: dict[str, Any] = ({"choices": [{"index": 0, "message": {"role": "assistant", "content": piece},
                                               "stop_reason": reason}]} if chat
                                 else {"outputs": [{"text": piece, "stop_reason": reason}]})
        if last:
            chunk["amazon-bedrock-invocationMetrics"] = metrics
        out.append(chunk)
    return out
